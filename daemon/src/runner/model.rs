//! Loading a GGUF model for inference: check the architecture, the
//! metadata and every tensor's presence and shape, then build the candle
//! weights. Every refusal names what is wrong.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};

use super::llama::{
    linear, Activation, Arch, Cache, Embeddings, Layer, Linear, Llama, LlamaConfig, MappedTable,
    Part,
};
use super::{weights::QuantWeights, KvType};

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be opened.
    #[error("cannot open model file `{path}`")]
    Open {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a GGUF candle can read.
    #[error("`{path}` is not a readable GGUF file: {message}")]
    Format {
        /// The file.
        path: String,
        /// What candle said.
        message: String,
    },
    /// `general.architecture` names something we cannot run.
    #[error("unsupported model architecture `{0}`; llmpm runs `llama`, `qwen2` and `gemma3`")]
    Architecture(String),
    /// A metadata key is missing or has the wrong type or value.
    #[error("bad model metadata: `{key}` {why}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("the model has no tensor `{0}`")]
    MissingTensor(String),
    /// A tensor has the wrong shape.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The tensor.
        name: String,
        /// Its shape (candle order: rows first).
        found: Vec<usize>,
        /// What the metadata implies.
        expected: Vec<usize>,
    },
    /// A tensor's data could not be read or converted.
    #[error("cannot load tensor `{name}`: {message}")]
    Tensor {
        /// The tensor.
        name: String,
        /// Why.
        message: String,
    },
    /// The forward pass failed.
    #[error("inference failed: {0}")]
    Compute(String),
}

impl From<candle_core::Error> for ModelError {
    fn from(e: candle_core::Error) -> ModelError {
        ModelError::Compute(e.to_string())
    }
}

/// A loaded model: the weights plus what the runner needs to know about them.
#[derive(Debug)]
pub struct Model {
    llama: Llama,
    kv_type: KvType,
}

fn meta_u64(md: &HashMap<String, Value>, key: &str) -> Result<Option<u64>, ModelError> {
    let Some(v) = md.get(key) else {
        return Ok(None);
    };
    let n = match v {
        Value::U8(x) => u64::from(*x),
        Value::U16(x) => u64::from(*x),
        Value::U32(x) => u64::from(*x),
        Value::U64(x) => *x,
        Value::I8(x) => u64::try_from(*x).unwrap_or(0),
        Value::I16(x) => u64::try_from(*x).unwrap_or(0),
        Value::I32(x) => u64::try_from(*x).unwrap_or(0),
        Value::I64(x) => u64::try_from(*x).unwrap_or(0),
        _ => {
            return Err(ModelError::Metadata {
                key: key.into(),
                why: "must be an integer".into(),
            })
        }
    };
    Ok(Some(n))
}

fn meta_f32(md: &HashMap<String, Value>, key: &str) -> Result<Option<f32>, ModelError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::F32(x)) => Ok(Some(*x)),
        Some(Value::F64(x)) => Ok(Some(*x as f32)),
        Some(_) => Err(ModelError::Metadata {
            key: key.into(),
            why: "must be a float".into(),
        }),
    }
}

/// A positive count that must be present, at most `limit`.
fn required(md: &HashMap<String, Value>, key: &str, limit: u64) -> Result<usize, ModelError> {
    match meta_u64(md, key)? {
        None => Err(ModelError::Metadata {
            key: key.into(),
            why: "is missing".into(),
        }),
        Some(0) => Err(ModelError::Metadata {
            key: key.into(),
            why: "must be at least 1".into(),
        }),
        Some(n) if n > limit => Err(ModelError::Metadata {
            key: key.into(),
            why: format!("is {n}, more than {limit}"),
        }),
        Some(n) => usize::try_from(n).map_err(|_| ModelError::Metadata {
            key: key.into(),
            why: "is too large".into(),
        }),
    }
}

fn read_config(md: &HashMap<String, Value>, arch_name: &str) -> Result<LlamaConfig, ModelError> {
    let arch =
        Arch::from_name(arch_name).ok_or_else(|| ModelError::Architecture(arch_name.into()))?;
    let k = |s: &str| format!("{arch_name}.{s}");
    let n_layer = required(md, &k("block_count"), 1 << 12)?;
    let n_embd = required(md, &k("embedding_length"), 1 << 20)?;
    let n_head = required(md, &k("attention.head_count"), 1 << 12)?;
    let n_head_kv = match meta_u64(md, &k("attention.head_count_kv"))? {
        None => n_head,
        Some(_) => required(md, &k("attention.head_count_kv"), 1 << 12)?,
    };
    let n_ff = required(md, &k("feed_forward_length"), 1 << 24)?;
    let head_dim = match meta_u64(md, &k("attention.key_length"))? {
        Some(_) => required(md, &k("attention.key_length"), 1 << 16)?,
        None if n_embd % n_head != 0 => {
            return Err(ModelError::Metadata {
                key: k("embedding_length"),
                why: format!("({n_embd}) is not a multiple of the head count ({n_head})"),
            })
        }
        None => n_embd / n_head,
    };
    if let Some(v) = meta_u64(md, &k("attention.value_length"))? {
        if v != head_dim as u64 {
            return Err(ModelError::Metadata {
                key: k("attention.value_length"),
                why: format!(
                    "({v}) differs from the key length ({head_dim}); llmpm needs them equal"
                ),
            });
        }
    }
    if n_head % n_head_kv != 0 {
        return Err(ModelError::Metadata {
            key: k("attention.head_count_kv"),
            why: format!("({n_head_kv}) does not divide the head count ({n_head})"),
        });
    }
    let rope_dim = match meta_u64(md, &k("rope.dimension_count"))? {
        None => head_dim,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    };
    if rope_dim == 0 || rope_dim > head_dim || rope_dim % 2 != 0 {
        return Err(ModelError::Metadata {
            key: k("rope.dimension_count"),
            why: format!("({rope_dim}) must be even and at most the head size ({head_dim})"),
        });
    }
    let rope_freq_base = meta_f32(md, &k("rope.freq_base"))?.unwrap_or(10_000.0);
    // llama.cpp's default for Gemma 3's local layers when the file is silent.
    let rope_freq_base_swa = meta_f32(md, &k("rope.freq_base_swa"))?.unwrap_or(10_000.0);
    let sliding_window = match (arch, meta_u64(md, &k("attention.sliding_window"))?) {
        (Arch::Gemma3, Some(_)) => Some(required(md, &k("attention.sliding_window"), 1 << 24)?),
        _ => None,
    };
    let rms_eps = meta_f32(md, &k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5);
    let scaling = match md.get(&k("rope.scaling.type")) {
        Some(Value::String(s)) => s.as_str(),
        _ => "none",
    };
    let rope_freq_scale = match scaling {
        "linear" => match meta_f32(md, &k("rope.scaling.factor"))? {
            Some(f) if f > 0.0 => 1.0 / f,
            _ => 1.0,
        },
        // Llama 3.1's scaling lives in the `rope_freqs` tensor instead.
        "none" | "llama3" => 1.0,
        other => {
            return Err(ModelError::Metadata {
                key: k("rope.scaling.type"),
                why: format!("`{other}` is not supported (use none, linear or llama3)"),
            })
        }
    };
    let context_length = match meta_u64(md, &k("context_length"))? {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => 2048,
    };
    Ok(LlamaConfig {
        arch,
        n_layer,
        n_embd,
        n_head,
        n_head_kv,
        n_ff,
        n_vocab: 0,
        head_dim,
        rope_dim,
        rope_freq_base,
        rope_freq_scale,
        rms_eps,
        context_length,
        sliding_window,
        rope_freq_base_swa,
        attn_scale: 1.0 / (head_dim as f64).sqrt(),
    })
}

struct Loader<'a> {
    content: &'a Content,
    reader: &'a mut BufReader<File>,
    device: &'a Device,
    /// The file mapped, where matrices are repacked straight from it.
    map: Option<Arc<memmap2::Mmap>>,
}

impl Loader<'_> {
    fn dims(&self, name: &str) -> Result<Vec<usize>, ModelError> {
        self.content
            .tensor_infos
            .get(name)
            .map(|t| t.shape.dims().to_vec())
            .ok_or_else(|| ModelError::MissingTensor(name.into()))
    }

    fn check(&self, name: &str, expected: &[usize]) -> Result<(), ModelError> {
        let found = self.dims(name)?;
        if found != expected {
            return Err(ModelError::Shape {
                name: name.into(),
                found,
                expected: expected.to_vec(),
            });
        }
        Ok(())
    }

    fn qtensor(&mut self, name: &str, expected: &[usize]) -> Result<QTensor, ModelError> {
        self.check(name, expected)?;
        self.content
            .tensor(self.reader, name, self.device)
            .map_err(|e| ModelError::Tensor {
                name: name.into(),
                message: e.to_string(),
            })
    }

    /// The weight matrix `name` of shape `expected` (rows, columns), in the
    /// layout its kernel wants: the types our kernels take repacked straight
    /// from the mapped file (no intermediate copy, and each group of file
    /// pages dropped once repacked), the rest through candle's reader.
    fn matrix(&mut self, name: &str, expected: &[usize]) -> Result<Linear, ModelError> {
        self.check(name, expected)?;
        let err = |e: candle_core::Error| ModelError::Tensor {
            name: name.into(),
            message: e.to_string(),
        };
        let info = self.content.tensor_infos.get(name);
        if let (Some(map), Some(info), [n, k]) = (&self.map, info, expected) {
            let len = QuantWeights::file_bytes(info.ggml_dtype, *n, *k);
            if let (true, Some(len)) = (self.device.is_cpu(), len) {
                let range = self.data_range(name, len)?;
                let at = range.start;
                let m =
                    QuantWeights::from_bytes(info.ggml_dtype, *n, *k, &map[range], &mut |done| {
                        release(map, at + done.start..at + done.end)
                    })
                    .map_err(err)?;
                return Ok(Linear::Quant(m));
            }
        }
        let q = self.qtensor(name, expected)?;
        linear(Arc::new(q)).map_err(err)
    }

    /// Where the `len` bytes of tensor `name` lie in the mapped file,
    /// checked to lie inside it.
    fn data_range(&self, name: &str, len: usize) -> Result<std::ops::Range<usize>, ModelError> {
        let file_len = self.map.as_ref().map_or(0, |m| m.len());
        let start = self
            .content
            .tensor_infos
            .get(name)
            .and_then(|info| self.content.tensor_data_offset.checked_add(info.offset))
            .and_then(|s| usize::try_from(s).ok());
        start
            .and_then(|s| Some(s..s.checked_add(len)?))
            .filter(|r| r.end <= file_len)
            .ok_or_else(|| ModelError::Tensor {
                name: name.into(),
                message: format!("its data lies past the end of the file ({file_len} bytes)"),
            })
    }

    /// The table `name` of shape `expected` (rows, values) read in place
    /// from the mapped file, on the CPU; `None` where it cannot be (no
    /// mapping, another device, rows that are not whole blocks).
    fn mapped_table(
        &self,
        name: &str,
        expected: &[usize],
    ) -> Result<Option<MappedTable>, ModelError> {
        self.check(name, expected)?;
        let (Some(map), Some(info), &[rows, hidden]) =
            (&self.map, self.content.tensor_infos.get(name), expected)
        else {
            return Ok(None);
        };
        let Some(row) = MappedTable::row_bytes(info.ggml_dtype, hidden) else {
            return Ok(None);
        };
        let Some(len) = rows.checked_mul(row) else {
            return Ok(None);
        };
        if !self.device.is_cpu() {
            return Ok(None);
        }
        Ok(Some(MappedTable {
            map: map.clone(),
            range: self.data_range(name, len)?,
            dtype: info.ggml_dtype,
            rows,
            hidden,
        }))
    }

    fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// `f32` of `name` when `want`; a missing tensor is an error only then.
    fn f32_if(
        &mut self,
        want: bool,
        name: &str,
        expected: &[usize],
    ) -> Result<Option<Tensor>, ModelError> {
        want.then(|| self.f32(name, expected)).transpose()
    }

    fn f32(&mut self, name: &str, expected: &[usize]) -> Result<Tensor, ModelError> {
        let q = self.qtensor(name, expected)?;
        q.dequantize(self.device)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| ModelError::Tensor {
                name: name.into(),
                message: e.to_string(),
            })
    }
}

/// Drops the mapped pages of `range` from this process: once a matrix is
/// repacked its file bytes are not read again, and keeping them mapped
/// would count them in the runner's memory beside the copy.
#[allow(unsafe_code)]
fn release(map: &memmap2::Mmap, range: std::ops::Range<usize>) {
    // SAFETY: the mapping is read-only and shared; MADV_DONTNEED only
    // unmaps our pages of it, and a later read would fault them in from the
    // file again. Nothing holds a reference into the range.
    let _ = unsafe {
        map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, range.start, range.len())
    };
}

/// Maps `file` for reading.
#[allow(unsafe_code)]
fn map(file: &File) -> Option<memmap2::Mmap> {
    // SAFETY: a mapping is undefined behaviour if the file changes under
    // it. Models are blobs of the content-addressed store, written once
    // under a temporary name, verified and renamed into place, never written
    // again; a file truncated by someone else would kill this runner
    // (SIGBUS), which the daemon handles like any runner crash.
    unsafe { memmap2::Mmap::map(file) }.ok()
}

impl Model {
    /// Loads and validates the GGUF at `path` on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Model, ModelError> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|source| ModelError::Open {
            path: shown.clone(),
            source,
        })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| ModelError::Format {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let arch = match content.metadata.get("general.architecture") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(ModelError::Metadata {
                    key: "general.architecture".into(),
                    why: "must be a string".into(),
                })
            }
            None => {
                return Err(ModelError::Metadata {
                    key: "general.architecture".into(),
                    why: "is missing".into(),
                })
            }
        };
        let mut config = read_config(&content.metadata, &arch)?;
        let map = map(reader.get_ref()).map(Arc::new);
        let mut l = Loader {
            content: &content,
            reader: &mut reader,
            device,
            map,
        };
        let embd_dims = l.dims("token_embd.weight")?;
        let n_vocab = match embd_dims.as_slice() {
            [v, e] if *e == config.n_embd && *v > 0 => *v,
            _ => {
                return Err(ModelError::Shape {
                    name: "token_embd.weight".into(),
                    found: embd_dims,
                    expected: vec![0, config.n_embd],
                })
            }
        };
        config.n_vocab = n_vocab;
        let (e, ff, qd, kv) = (
            config.n_embd,
            config.n_ff,
            config.n_head * config.head_dim,
            config.n_head_kv * config.head_dim,
        );
        let (qwen2, gemma3) = (config.arch == Arch::Qwen2, config.arch == Arch::Gemma3);
        let hd = config.head_dim;
        // Gemma 3: every sixth layer is global, the rest see a window.
        const SWA_PATTERN: usize = 6;
        // Models with tied embeddings (Llama 3.2 1B/3B) ship no
        // `output.weight`: the table is the output matrix too. When that
        // matrix's layout gives rows back, one copy serves both.
        let (tok_embd, tied_output) = if l.has("output.weight") {
            match l.mapped_table("token_embd.weight", &[n_vocab, e])? {
                Some(t) => (Embeddings::Mapped(t), None),
                None => {
                    let t = Arc::new(l.qtensor("token_embd.weight", &[n_vocab, e])?);
                    (Embeddings::Table(t), None)
                }
            }
        } else {
            let output = l.matrix("token_embd.weight", &[n_vocab, e])?;
            if output.has_rows() {
                (Embeddings::Output, Some(output))
            } else {
                let t = Arc::new(l.qtensor("token_embd.weight", &[n_vocab, e])?);
                let output = linear(t.clone()).map_err(|e| ModelError::Tensor {
                    name: "token_embd.weight".into(),
                    message: e.to_string(),
                })?;
                (Embeddings::Table(t), Some(output))
            }
        };
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let n = |p: &str| format!("blk.{i}.{p}.weight");
            let mm = |l: &mut Loader<'_>, name: String, shape: &[usize]| l.matrix(&name, shape);
            let b = |p: &str| format!("blk.{i}.{p}.bias");
            // Biases are qwen2's; any architecture may carry them.
            let (bq, bk, bv) = (b("attn_q"), b("attn_k"), b("attn_v"));
            let (hq, hk, hv) = (
                qwen2 || l.has(&bq),
                qwen2 || l.has(&bk),
                qwen2 || l.has(&bv),
            );
            layers.push(Layer {
                attn_norm: l.f32(&n("attn_norm"), &[e])?,
                wq: mm(&mut l, n("attn_q"), &[qd, e])?,
                wk: mm(&mut l, n("attn_k"), &[kv, e])?,
                wv: mm(&mut l, n("attn_v"), &[kv, e])?,
                bq: l.f32_if(hq, &bq, &[qd])?,
                bk: l.f32_if(hk, &bk, &[kv])?,
                bv: l.f32_if(hv, &bv, &[kv])?,
                q_norm: l.f32_if(gemma3, &n("attn_q_norm"), &[hd])?,
                k_norm: l.f32_if(gemma3, &n("attn_k_norm"), &[hd])?,
                wo: mm(&mut l, n("attn_output"), &[e, qd])?,
                post_attn_norm: l.f32_if(gemma3, &n("post_attention_norm"), &[e])?,
                ffn_norm: l.f32(&n("ffn_norm"), &[e])?,
                w_gate: mm(&mut l, n("ffn_gate"), &[ff, e])?,
                w_up: mm(&mut l, n("ffn_up"), &[ff, e])?,
                w_down: mm(&mut l, n("ffn_down"), &[e, ff])?,
                post_ffw_norm: l.f32_if(gemma3, &n("post_ffw_norm"), &[e])?,
                local: config.sliding_window.is_some() && (i + 1) % SWA_PATTERN != 0,
            });
        }
        let output_norm = l.f32("output_norm.weight", &[e])?;
        // Models with tied embeddings (Llama 3.2 1B/3B) ship no `output.weight`.
        let output = match tied_output {
            Some(output) => output,
            None => l.matrix("output.weight", &[n_vocab, e])?,
        };
        let half = config.rope_dim / 2;
        let freqs = |base: f32| -> Vec<f32> {
            (0..half)
                .map(|i| base.powf(-2.0 * i as f32 / config.rope_dim as f32))
                .collect()
        };
        let mut inv_freq = freqs(config.rope_freq_base);
        let inv_freq_swa = freqs(config.rope_freq_base_swa);
        if config.arch == Arch::Llama && content.tensor_infos.contains_key("rope_freqs.weight") {
            let factors = l.f32("rope_freqs.weight", &[half])?.to_vec1::<f32>()?;
            for (f, k) in inv_freq.iter_mut().zip(factors) {
                if !(k.is_finite() && k > 0.0) {
                    return Err(ModelError::Tensor {
                        name: "rope_freqs.weight".into(),
                        message: format!("factor {k} is not a positive number"),
                    });
                }
                *f /= k;
            }
        }
        Ok(Model {
            kv_type: KvType::F16,
            llama: Llama {
                config,
                tok_embd,
                layers,
                output_norm,
                output,
                inv_freq,
                inv_freq_swa,
                embd_scale: gemma3.then_some((e as f64).sqrt()),
                activation: if gemma3 {
                    Activation::Gelu
                } else {
                    Activation::Silu
                },
                device: device.clone(),
            },
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        self.llama.config()
    }

    /// An empty cache for up to `max_len` tokens.
    pub fn new_cache(&self, max_len: usize) -> Cache {
        self.llama.new_cache(max_len, self.kv_type)
    }

    /// The element type of the caches made from now on (f16 unless set).
    pub fn set_kv_type(&mut self, kv_type: KvType) {
        self.kv_type = kv_type;
    }

    /// Evaluates `tokens` after those in `cache` and returns the next-token logits.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>, ModelError> {
        self.check_tokens(tokens)?;
        Ok(self.llama.forward(tokens, cache)?)
    }

    /// Evaluates several sequences in one pass (see [`Llama::hidden_batch`])
    /// and returns each one's next-token logits, in order.
    pub fn forward_batch(&self, parts: &mut [Part<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        for p in parts.iter() {
            self.check_tokens(p.tokens)?;
        }
        Ok(self.llama.forward_batch(parts)?)
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

    /// An embedding of `tokens`: the mean of the final hidden states,
    /// L2-normalised (what Ollama returns for `/api/embed`).
    pub fn embed(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::Compute("nothing to embed".into()));
        }
        cache.reset();
        let h = self.llama.hidden(tokens, cache)?;
        cache.reset();
        let mean: Vec<f32> = h.mean(0)?.to_vec1()?;
        let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        Ok(if norm > 0.0 {
            mean.iter().map(|x| x / norm).collect()
        } else {
            mean
        })
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::gguf::tiny::{tiny_llama_bytes, TinyLlamaSpec};
    use crate::gguf::writer::GgufWriter;
    use crate::gguf::GgmlType;

    fn load_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, bytes).unwrap();
        Model::load(&path, &Device::Cpu)
    }

    /// A llama header (embd 32, 1 layer) with only the tensors given.
    fn partial(arch: &str, tensors: &[(&str, &[u64])]) -> Vec<u8> {
        let mut w = GgufWriter::new();
        w.add_kv("general.architecture", arch).unwrap();
        w.add_kv(format!("{arch}.block_count"), 1u32).unwrap();
        w.add_kv(format!("{arch}.embedding_length"), 32u32).unwrap();
        w.add_kv(format!("{arch}.feed_forward_length"), 64u32)
            .unwrap();
        w.add_kv(format!("{arch}.attention.head_count"), 4u32)
            .unwrap();
        for (name, dims) in tensors {
            let n: u64 = dims.iter().product();
            let values = vec![0.0f32; usize::try_from(n).unwrap()];
            w.add_tensor_f32(*name, dims, GgmlType::F32, &values)
                .unwrap();
        }
        w.to_bytes()
    }

    #[test]
    fn loads_the_tiny_model() {
        let m = load_bytes(&tiny_llama_bytes(&TinyLlamaSpec::default()).unwrap()).unwrap();
        assert_eq!(m.config().n_vocab, 320);
        assert_eq!(m.greedy(&[315, 1, 2], 3).unwrap().len(), 3);
    }

    /// The token table read in place from the mapped file gives the rows
    /// candle's loaded copy gives, and refuses an id past its end.
    #[test]
    fn mapped_token_table_gives_the_files_rows() {
        use crate::gguf::FileType;
        for ftype in [FileType::F32, FileType::F16, FileType::Q8_0, FileType::Q4_0] {
            let spec = TinyLlamaSpec {
                ftype,
                ..TinyLlamaSpec::default()
            };
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("m.gguf");
            std::fs::write(&path, tiny_llama_bytes(&spec).unwrap()).unwrap();
            let m = Model::load(&path, &Device::Cpu).unwrap();
            let Embeddings::Mapped(table) = &m.llama.tok_embd else {
                panic!("{ftype:?}: the token table is not read from the mapped file");
            };
            let mut reader = BufReader::new(File::open(&path).unwrap());
            let content = Content::read(&mut reader).unwrap();
            let copy = content
                .tensor(&mut reader, "token_embd.weight", &Device::Cpu)
                .unwrap();
            let ids = [0u32, 7, 319, 7];
            let want = copy
                .embedding(&Tensor::new(&ids[..], &Device::Cpu).unwrap())
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let got = table
                .rows(&ids, &Device::Cpu)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            assert_eq!(got, want, "{ftype:?}");
            let e = table.rows(&[320], &Device::Cpu).unwrap_err().to_string();
            assert!(e.contains("320"), "{e}");
        }
    }

    #[test]
    fn refuses_unknown_architecture() {
        let e = load_bytes(&partial("mamba9", &[])).unwrap_err();
        assert!(e.to_string().contains("`mamba9`"), "{e}");
    }

    #[test]
    fn names_a_missing_tensor() {
        let e = load_bytes(&partial("llama", &[("token_embd.weight", &[32, 100])])).unwrap_err();
        assert!(e.to_string().contains("`blk.0.attn_norm.weight`"), "{e}");
    }

    #[test]
    fn names_a_wrong_shape() {
        let e = load_bytes(&partial(
            "llama",
            &[
                ("token_embd.weight", &[32, 100]),
                ("blk.0.attn_norm.weight", &[16]),
            ],
        ))
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("`blk.0.attn_norm.weight`") && msg.contains("[16]"),
            "{msg}"
        );
    }

    /// Every cut of a quantized file's tensor data is an error that names
    /// a tensor, never a panic or a read past the end (the strip layout
    /// repacks straight from the mapped file).
    #[test]
    fn a_truncated_file_names_a_tensor() {
        use crate::gguf::FileType;
        for ftype in [FileType::Q8_0, FileType::Q4_0, FileType::F32] {
            let spec = TinyLlamaSpec {
                ftype,
                ..TinyLlamaSpec::default()
            };
            let good = tiny_llama_bytes(&spec).unwrap();
            for cut in [1, 100, good.len() / 3] {
                let e = load_bytes(&good[..good.len() - cut])
                    .unwrap_err()
                    .to_string();
                assert!(e.contains(".weight"), "{ftype:?} cut {cut}: {e}");
            }
        }
    }

    #[test]
    fn names_missing_metadata() {
        let mut w = GgufWriter::new();
        w.add_kv("general.architecture", "llama").unwrap();
        let e = load_bytes(&w.to_bytes()).unwrap_err();
        assert!(e.to_string().contains("`llama.block_count`"), "{e}");
    }
}
