//! The model's shape numbers (layers, heads, KV heads, head size,
//! feed-forward and embedding sizes, rope, context length), read once from
//! the `{arch}.*` metadata with one strictness: the runner builds its graph
//! from them and the scheduler estimates a load's memory from them.
//!
//! A count must be a positive integer within a sanity limit; a key that
//! llama.cpp defaults when absent gets llama.cpp's default. Whether the
//! runner supports what they describe (the architecture, a rope scaling
//! kind) is the runner's to say.

use crate::read::GgufFile;
use crate::types::divides;
use crate::value::Value;

/// Why a model's hyperparameters cannot be read: the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad model metadata: `{key}` {why}")]
pub struct HyperparameterError {
    /// The metadata key.
    pub key: String,
    /// What is wrong with it (`is missing`, `must be at least 1`).
    pub why: String,
}

/// How positions are scaled before the rotary embedding
/// (`{arch}.rope.scaling.type`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// No scaling (also when the key is absent or not a string).
    None,
    /// Positions divided by `rope.scaling.factor`: the rope frequency scale
    /// is its inverse (1 when the factor is absent or not positive).
    Linear {
        /// `1 / factor`.
        freq_scale: f32,
    },
    /// Llama 3.1's scaling, which lives in the `rope_freqs` tensor.
    Llama3,
    /// YaRN (gpt-oss): interpolation by `rope.scaling.factor` blended with
    /// extrapolation per dimension, magnitudes scaled up (ggml's
    /// `rope_yarn`); the original context is `rope_orig_context`.
    Yarn {
        /// `1 / factor` (1 when the factor is absent or not positive).
        freq_scale: f32,
    },
    /// Phi-3's `longrope` (also `su`): per-dimension factors in the
    /// `rope_factors_short` / `rope_factors_long` tensors.
    LongRope,
    /// Another kind, named as in the file.
    Other(String),
}

/// A model's shape, from its GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperparameters {
    /// `general.architecture` (`llama`, `qwen2`, `gemma3`).
    pub architecture: String,
    /// Transformer blocks (`block_count`).
    pub n_layer: usize,
    /// Hidden size (`embedding_length`).
    pub n_embd: usize,
    /// Attention heads (`attention.head_count`).
    pub n_head: usize,
    /// Key/value heads (`attention.head_count_kv`, else `n_head`); divides `n_head`.
    pub n_head_kv: usize,
    /// Feed-forward size (`feed_forward_length`).
    pub n_ff: usize,
    /// Size of one key head (`attention.key_length`, else `n_embd / n_head`).
    pub key_length: usize,
    /// Size of one value head (`attention.value_length`, else `key_length`), as declared.
    pub value_length: u64,
    /// Dimensions rotated per head (`rope.dimension_count`, else
    /// `key_length`): even and at most `key_length`.
    pub rope_dim: usize,
    /// `rope.freq_base`, else 10000.
    pub rope_freq_base: f32,
    /// `rope.freq_base_swa` (Gemma 3's local layers), else 10000 as llama.cpp.
    pub rope_freq_base_swa: f32,
    /// `rope.scaling.type` (and `rope.scaling.factor`).
    pub rope_scaling: RopeScaling,
    /// `attention.sliding_window` as declared (see [`Hyperparameters::sliding_window`]).
    pub sliding_window: Option<u64>,
    /// `rope.scaling.original_context_length`, else `context_length`: past
    /// it, `longrope` models use their long factors.
    pub rope_orig_context: usize,
    /// `rope.scaling.attn_factor`, else 1: RoPE's cos/sin are multiplied by it.
    pub rope_attn_factor: f32,
    /// `attention.layer_norm_rms_epsilon`, else 1e-5.
    pub rms_eps: f32,
    /// `context_length` when positive, else 2048.
    pub context_length: usize,
    /// Mixture of experts (`expert_count`): 0 for a dense model.
    pub n_expert: usize,
    /// Experts each token runs (`expert_used_count`): 1 to `n_expert`, 0
    /// for a dense model.
    pub n_expert_used: usize,
    /// One expert's feed-forward size (`expert_feed_forward_length`, else
    /// `n_ff / n_expert_used` as llama.cpp); 0 for a dense model.
    pub n_ff_exp: usize,
}

/// The most blocks and heads accepted.
const MAX_LAYERS: u64 = 1 << 12;
const MAX_HEADS: u64 = 1 << 12;
const MAX_EMBD: u64 = 1 << 20;
const MAX_FF: u64 = 1 << 24;
const MAX_HEAD_SIZE: u64 = 1 << 16;
const MAX_WINDOW: u64 = 1 << 24;
/// llama.cpp's `LLAMA_MAX_EXPERTS`.
const MAX_EXPERTS: u64 = 1024;

fn bad(key: &str, why: impl Into<String>) -> HyperparameterError {
    HyperparameterError {
        key: key.to_owned(),
        why: why.into(),
    }
}

/// An integer key; a negative value reads as 0 (which a count refuses).
fn meta_u64(file: &GgufFile, key: &str) -> Result<Option<u64>, HyperparameterError> {
    let Some(v) = file.get(key) else {
        return Ok(None);
    };
    let n = match *v {
        Value::U8(x) => u64::from(x),
        Value::U16(x) => u64::from(x),
        Value::U32(x) => u64::from(x),
        Value::U64(x) => x,
        Value::I8(x) => u64::try_from(x).unwrap_or(0),
        Value::I16(x) => u64::try_from(x).unwrap_or(0),
        Value::I32(x) => u64::try_from(x).unwrap_or(0),
        Value::I64(x) => u64::try_from(x).unwrap_or(0),
        _ => return Err(bad(key, "must be an integer")),
    };
    Ok(Some(n))
}

fn meta_f32(file: &GgufFile, key: &str) -> Result<Option<f32>, HyperparameterError> {
    match file.get(key) {
        None => Ok(None),
        Some(Value::F32(x)) => Ok(Some(*x)),
        Some(Value::F64(x)) => Ok(Some(*x as f32)),
        Some(_) => Err(bad(key, "must be a float")),
    }
}

/// `n` as a count of `key`: at least 1, at most `limit`.
fn count(key: &str, n: u64, limit: u64) -> Result<usize, HyperparameterError> {
    match n {
        0 => Err(bad(key, "must be at least 1")),
        n if n > limit => Err(bad(key, format!("is {n}, more than {limit}"))),
        n => usize::try_from(n).map_err(|_| bad(key, "is too large")),
    }
}

/// A count that must be present.
fn required(file: &GgufFile, key: &str, limit: u64) -> Result<usize, HyperparameterError> {
    match meta_u64(file, key)? {
        None => Err(bad(key, "is missing")),
        Some(n) => count(key, n, limit),
    }
}

/// A mixture of experts' counts, `(n_expert, n_expert_used, n_ff_exp)`,
/// all 0 without `expert_count`: the used count within the expert count,
/// so that a router's top-k can always be taken.
fn experts(
    file: &GgufFile,
    arch: &str,
    n_ff: usize,
) -> Result<(usize, usize, usize), HyperparameterError> {
    let k = |s: &str| format!("{arch}.{s}");
    let n_expert = match meta_u64(file, &k("expert_count"))? {
        None | Some(0) => return Ok((0, 0, 0)),
        Some(n) => count(&k("expert_count"), n, MAX_EXPERTS)?,
    };
    let key = k("expert_used_count");
    let used = match meta_u64(file, &key)? {
        None => return Err(bad(&key, "is missing (the model has experts)")),
        Some(n) if n > n_expert as u64 => {
            return Err(bad(
                &key,
                format!("is {n}, more than the expert count ({n_expert})"),
            ))
        }
        Some(n) => count(&key, n, MAX_EXPERTS)?,
    };
    let n_ff_exp = match meta_u64(file, &k("expert_feed_forward_length"))? {
        Some(n) => count(&k("expert_feed_forward_length"), n, MAX_FF)?,
        None => count(&k("feed_forward_length"), (n_ff / used) as u64, MAX_FF)?,
    };
    Ok((n_expert, used, n_ff_exp))
}

/// Whether layer `i` of a model of `arch` with a sliding window is one of
/// its sliding-window layers, as llama.cpp's patterns say: gpt-oss's even
/// layers (pattern 2), else Gemma 3's all but every sixth (pattern 6).
pub fn is_local_layer(arch: &str, i: usize) -> bool {
    match arch {
        "gpt-oss" | "gptoss" => divides(2, i as u64),
        _ => !divides(6, i as u64 + 1),
    }
}

impl Hyperparameters {
    /// `general.architecture`, which must be a string.
    pub fn architecture(file: &GgufFile) -> Result<&str, HyperparameterError> {
        const KEY: &str = "general.architecture";
        match file.get(KEY) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(bad(KEY, "must be a string")),
            None => Err(bad(KEY, "is missing")),
        }
    }

    /// Reads the shape of the model in `file`.
    pub fn read(file: &GgufFile) -> Result<Hyperparameters, HyperparameterError> {
        let arch = Hyperparameters::architecture(file)?;
        let k = |s: &str| format!("{arch}.{s}");
        let n_layer = required(file, &k("block_count"), MAX_LAYERS)?;
        let n_embd = required(file, &k("embedding_length"), MAX_EMBD)?;
        let n_head = required(file, &k("attention.head_count"), MAX_HEADS)?;
        let n_head_kv = match meta_u64(file, &k("attention.head_count_kv"))? {
            None => n_head,
            Some(n) => count(&k("attention.head_count_kv"), n, MAX_HEADS)?,
        };
        let n_ff = required(file, &k("feed_forward_length"), MAX_FF)?;
        let key_length = match meta_u64(file, &k("attention.key_length"))? {
            Some(n) => count(&k("attention.key_length"), n, MAX_HEAD_SIZE)?,
            None if n_embd % n_head != 0 => {
                return Err(bad(
                    &k("embedding_length"),
                    format!("({n_embd}) is not a multiple of the head count ({n_head})"),
                ))
            }
            None => n_embd / n_head,
        };
        let value_length =
            meta_u64(file, &k("attention.value_length"))?.unwrap_or(key_length as u64);
        if n_head % n_head_kv != 0 {
            return Err(bad(
                &k("attention.head_count_kv"),
                format!("({n_head_kv}) does not divide the head count ({n_head})"),
            ));
        }
        let rope_dim = match meta_u64(file, &k("rope.dimension_count"))? {
            None => key_length,
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        if rope_dim == 0 || rope_dim > key_length || rope_dim % 2 != 0 {
            return Err(bad(
                &k("rope.dimension_count"),
                format!("({rope_dim}) must be even and at most the head size ({key_length})"),
            ));
        }
        let rope_freq_base = meta_f32(file, &k("rope.freq_base"))?.unwrap_or(10_000.0);
        let rope_freq_base_swa = meta_f32(file, &k("rope.freq_base_swa"))?.unwrap_or(10_000.0);
        let sliding_window = meta_u64(file, &k("attention.sliding_window"))?;
        let rms_eps = meta_f32(file, &k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5);
        let freq_scale = match meta_f32(file, &k("rope.scaling.factor"))? {
            Some(f) if f > 0.0 => 1.0 / f,
            _ => 1.0,
        };
        let rope_scaling = match file.get_str(&k("rope.scaling.type")).unwrap_or("none") {
            "none" => RopeScaling::None,
            "linear" => RopeScaling::Linear { freq_scale },
            "yarn" => RopeScaling::Yarn { freq_scale },
            "llama3" => RopeScaling::Llama3,
            "longrope" | "su" => RopeScaling::LongRope,
            other => RopeScaling::Other(other.to_owned()),
        };
        let context_length = match meta_u64(file, &k("context_length"))? {
            Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => 2048,
        };
        let rope_orig_context = match meta_u64(file, &k("rope.scaling.original_context_length"))? {
            Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => context_length,
        };
        let rope_attn_factor = match meta_f32(file, &k("rope.scaling.attn_factor"))? {
            None => 1.0,
            Some(f) if f.is_finite() && f > 0.0 => f,
            Some(f) => {
                return Err(bad(
                    &k("rope.scaling.attn_factor"),
                    format!("({f}) must be a positive number"),
                ))
            }
        };
        let (n_expert, n_expert_used, n_ff_exp) = experts(file, arch, n_ff)?;
        Ok(Hyperparameters {
            architecture: arch.to_owned(),
            n_layer,
            n_embd,
            n_head,
            n_head_kv,
            n_ff,
            key_length,
            value_length,
            rope_dim,
            rope_freq_base,
            rope_freq_base_swa,
            rope_scaling,
            sliding_window,
            rope_orig_context,
            rope_attn_factor,
            rms_eps,
            context_length,
            n_expert,
            n_expert_used,
            n_ff_exp,
        })
    }

    /// The metadata key `{arch}.{suffix}` of this model.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.architecture)
    }

    /// The sliding window of the local attention layers, checked as a count
    /// (1 to 2^24), for the architectures that have them; `None` if absent.
    pub fn sliding_window(&self) -> Result<Option<usize>, HyperparameterError> {
        self.sliding_window
            .map(|n| count(&self.key("attention.sliding_window"), n, MAX_WINDOW))
            .transpose()
    }
}

#[cfg(test)]
mod tests;
