//! Cross-encoder rerankers (`{arch}.pooling_type` 4, "rank"): the
//! classification head on the `[CLS]` state (`cls`: dense + tanh, then
//! `cls.output`: one logit per label; either may be absent) as llama.cpp's
//! rank pooling applies it, and a query/document pair's tokens as
//! llama-server's `format_prompt_rerank` lays them out (BOS, query, EOS,
//! SEP, document, EOS, each by the vocabulary's `add_*` flags).

use candle_core::Tensor;
use llmpm_gguf::GgufFile;

use super::loader::{Loader, ModelError};
use super::weights::Linear;

/// One dense layer of the head and its optional bias.
struct Dense {
    w: Linear,
    b: Option<Tensor>,
    n_out: usize,
}

impl Dense {
    fn load(l: &mut Loader<'_>, name: &str, n_in: usize) -> Result<Option<Dense>, ModelError> {
        let weight = format!("{name}.weight");
        if !l.has(&weight) {
            return Ok(None);
        }
        let n_out = match l.dims(&weight)?.as_slice() {
            [o, i] if *i == n_in && *o > 0 => *o,
            other => {
                return Err(ModelError::Shape {
                    name: weight,
                    found: other.to_vec(),
                    expected: vec![1, n_in],
                })
            }
        };
        let w = l.matrix(&weight, &[n_out, n_in])?;
        let bias = format!("{name}.bias");
        let has = l.has(&bias);
        let b = l.f32_if(has, &bias, &[n_out])?;
        Ok(Some(Dense { w, b, n_out }))
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.w.forward(x)?;
        match &self.b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// The classification head of a reranker.
pub struct ClsHead {
    /// `cls`: `n_embd` to `n_embd`, then tanh.
    dense: Option<Dense>,
    /// `cls.output`: to one logit per label.
    out: Option<Dense>,
    /// How a query and a document make one input.
    pub pair: PairFormat,
}

impl std::fmt::Debug for ClsHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClsHead")
            .field("dense", &self.dense.as_ref().map(|d| d.n_out))
            .field("out", &self.out.as_ref().map(|d| d.n_out))
            .field("pair", &self.pair)
            .finish()
    }
}

impl ClsHead {
    /// Reads the head of an encoder of width `n_embd` and the pair layout
    /// from the vocabulary's metadata.
    pub(crate) fn load(l: &mut Loader<'_>, n_embd: usize) -> Result<ClsHead, ModelError> {
        let dense = Dense::load(l, "cls", n_embd)?;
        if let Some(d) = &dense {
            if d.n_out != n_embd {
                return Err(ModelError::Shape {
                    name: "cls.weight".into(),
                    found: vec![d.n_out, n_embd],
                    expected: vec![n_embd, n_embd],
                });
            }
        }
        let out = Dense::load(l, "cls.output", n_embd)?;
        let pair = PairFormat::read(l.gguf.file());
        Ok(ClsHead { dense, out, pair })
    }

    /// The logits of the `[CLS]` state `cls` (`(n_embd,)`), unnormalised:
    /// llama.cpp's rank pooling output, whose first value is the score.
    pub fn scores(&self, cls: &Tensor) -> candle_core::Result<Vec<f32>> {
        let mut x = cls.unsqueeze(0)?;
        if let Some(d) = &self.dense {
            x = d.forward(&x)?.tanh()?;
        }
        if let Some(o) = &self.out {
            x = o.forward(&x)?;
        }
        x.squeeze(0)?.to_vec1()
    }
}

/// Where a pair's special tokens go (llama.cpp's WordPiece defaults: BOS
/// `[CLS]` first, SEP between, no EOS; the GGUF's keys override them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairFormat {
    /// BOS, when added.
    pub bos: Option<u32>,
    /// EOS (or SEP when the vocabulary has no EOS), when added.
    pub eos: Option<u32>,
    /// SEP, when added.
    pub sep: Option<u32>,
}

impl PairFormat {
    /// Reads the flags and ids of `file`'s vocabulary.
    pub fn read(file: &GgufFile) -> PairFormat {
        let id = |k: &str| {
            file.get(&format!("tokenizer.ggml.{k}"))
                .and_then(|v| v.as_u64())
                .and_then(|v| u32::try_from(v).ok())
        };
        let flag = |k: &str, default: bool| {
            file.get(&format!("tokenizer.ggml.{k}"))
                .and_then(|v| v.as_bool())
                .unwrap_or(default)
        };
        // llama.cpp spells the key "seperator".
        let sep = id("seperator_token_id").unwrap_or(102);
        let bos = id("bos_token_id").unwrap_or(101);
        let eos = id("eos_token_id").unwrap_or(sep);
        PairFormat {
            bos: flag("add_bos_token", true).then_some(bos),
            eos: flag("add_eos_token", false).then_some(eos),
            sep: flag("add_sep_token", true).then_some(sep),
        }
    }

    /// The input for `query` and `doc` (their tokens without specials).
    pub fn pair(&self, query: &[u32], doc: &[u32]) -> Vec<u32> {
        let mut out = Vec::with_capacity(query.len() + doc.len() + 4);
        out.extend(self.bos);
        out.extend_from_slice(query);
        out.extend(self.eos);
        out.extend(self.sep);
        out.extend_from_slice(doc);
        out.extend(self.eos);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_as_llama_server_lays_them_out() {
        let bert = PairFormat {
            bos: Some(2),
            eos: None,
            sep: Some(3),
        };
        assert_eq!(bert.pair(&[10, 11], &[20]), [2, 10, 11, 3, 20]);
        let roberta = PairFormat {
            bos: Some(0),
            eos: Some(2),
            sep: Some(2),
        };
        assert_eq!(roberta.pair(&[10], &[20]), [0, 10, 2, 2, 20, 2]);
    }
}
