//! Loading a GGUF model for inference: check the architecture, the
//! metadata and every tensor's presence and shape, then build the candle
//! weights. Every refusal names what is wrong.

use std::path::Path;

use candle_core::Device;
use llmpm_gguf::{GgufError, MappedGguf};

use llmpm_gguf::Hyperparameters;

use super::arch::Arch;
use super::bert::Bert;
use super::llama::{Cache, Llama, LlamaConfig, Part};
use super::loader::Loader;
pub use super::loader::ModelError;
use super::KvType;

/// A loaded model: the weights plus what the runner needs to know about them.
#[derive(Debug)]
pub struct Model {
    net: Net,
    kv_type: KvType,
}

/// The network: a decoder (generates and embeds) or an encoder (embeds).
#[derive(Debug)]
enum Net {
    Decoder(Llama),
    Encoder(Bert),
}

impl Model {
    /// Loads and validates the GGUF at `path` on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Model, ModelError> {
        let shown = path.display().to_string();
        let gguf = MappedGguf::open(path).map_err(|e| match e {
            GgufError::Open { source, .. } | GgufError::Map { source, .. } => ModelError::Open {
                path: shown.clone(),
                source,
            },
            e => ModelError::Format {
                path: shown.clone(),
                message: e.to_string(),
            },
        })?;
        let name = Hyperparameters::architecture(gguf.file())?;
        let arch = Arch::from_name(name).ok_or_else(|| ModelError::Architecture(name.into()))?;
        let mut l = Loader {
            gguf: &gguf,
            device,
        };
        let net = if arch.embeds_only() {
            Net::Encoder(super::bert::load(&mut l, arch, device)?)
        } else {
            let config = super::llama::read_config(gguf.file())?;
            Net::Decoder(super::llama::load(&mut l, config, device)?)
        };
        Ok(Model {
            kv_type: KvType::F16,
            net,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        match &self.net {
            Net::Decoder(m) => m.config(),
            Net::Encoder(m) => &m.config,
        }
    }

    /// Whether the model only embeds (an encoder: no generation).
    pub fn embeds_only(&self) -> bool {
        matches!(self.net, Net::Encoder(_))
    }

    /// The decoder, or why a generation cannot run.
    fn decoder(&self) -> Result<&Llama, ModelError> {
        match &self.net {
            Net::Decoder(m) => Ok(m),
            Net::Encoder(_) => Err(ModelError::Compute(
                "this model only embeds; it cannot generate".into(),
            )),
        }
    }

    /// An empty cache for up to `max_len` tokens.
    pub fn new_cache(&self, max_len: usize) -> Cache {
        match &self.net {
            Net::Decoder(m) => m.new_cache(max_len, self.kv_type),
            Net::Encoder(_) => Cache::empty(max_len),
        }
    }

    /// The element type of the caches made from now on (f16 unless set).
    pub fn set_kv_type(&mut self, kv_type: KvType) {
        self.kv_type = kv_type;
    }

    /// Evaluates `tokens` after those in `cache` and returns the next-token logits.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>, ModelError> {
        self.check_tokens(tokens)?;
        Ok(self.decoder()?.forward(tokens, cache)?)
    }

    /// Evaluates several sequences in one pass (see [`Llama::hidden_batch`])
    /// and returns each one's next-token logits, in order.
    pub fn forward_batch(&self, parts: &mut [Part<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        for p in parts.iter() {
            self.check_tokens(p.tokens)?;
        }
        Ok(self.decoder()?.forward_batch(parts)?)
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<(), ModelError> {
        match tokens
            .iter()
            .find(|&&t| t as usize >= self.config().n_vocab)
        {
            Some(bad) => Err(ModelError::Compute(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.config().n_vocab
            ))),
            None => Ok(()),
        }
    }

    /// An embedding of `tokens`, L2-normalised (what Ollama returns for
    /// `/api/embed`): an encoder's pooling, else the mean of a decoder's
    /// final hidden states.
    pub fn embed(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::Compute("nothing to embed".into()));
        }
        self.check_tokens(tokens)?;
        let llama = match &self.net {
            Net::Encoder(m) => return Ok(m.embed(tokens)?),
            Net::Decoder(m) => m,
        };
        cache.reset();
        let h = llama.hidden(tokens, cache)?;
        cache.reset();
        let mean: Vec<f32> = h.mean(0)?.to_vec1()?;
        let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        Ok(if norm > 0.0 {
            mean.iter().map(|x| x / norm).collect()
        } else {
            mean
        })
    }

    /// [`Self::embed`] of each of `seqs`: an encoder runs them as one
    /// batch (its matrices on all rows at once), a decoder one by one.
    pub fn embed_batch(
        &self,
        seqs: &[&[u32]],
        cache: &mut Cache,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let Net::Encoder(m) = &self.net else {
            return seqs.iter().map(|s| self.embed(s, cache)).collect();
        };
        for s in seqs {
            if s.is_empty() {
                return Err(ModelError::Compute("nothing to embed".into()));
            }
            self.check_tokens(s)?;
        }
        Ok(m.embed_batch(seqs)?)
    }

    /// How a reranker lays out a query and a document as one input
    /// (`None`: the model is not a reranker).
    pub fn pair_format(&self) -> Option<&super::rank::PairFormat> {
        match &self.net {
            Net::Encoder(m) => m.cls_head().map(|h| &h.pair),
            Net::Decoder(_) => None,
        }
    }

    /// Greedy decoding of `n` tokens after `prompt` (the reference check).
    pub fn greedy(&self, prompt: &[u32], n: usize) -> Result<Vec<u32>, ModelError> {
        let mut cache = self.new_cache(prompt.len() + n);
        let mut out = Vec::with_capacity(n);
        let mut logits = self.forward(prompt, &mut cache)?;
        for i in 0..n {
            let next = argmax(&logits);
            out.push(next);
            if i + 1 < n {
                logits = self.forward(&[next], &mut cache)?;
            }
        }
        Ok(out)
    }
}

/// The index of the largest logit (the first on ties, as llama.cpp's loop).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    u32::try_from(best).unwrap_or(0)
}

#[cfg(test)]
mod tests;
