//! Request options: the model's `PARAMETER`s overlaid with a request's
//! `options`, checked for names, types (via `llmpm_spec::params`) and
//! ranges, so a bad value is a 400 that names the field rather than a
//! runner that tries to allocate a billion-token context.

use llmpm_spec::params::{ParamError, ParamValue, Parameters};
use serde_json::Value;

use super::protocol::SamplerConfig;

/// The context a request gets when neither it nor the model says (Ollama's default).
pub const DEFAULT_NUM_CTX: usize = 4096;
/// Prompt tokens per forward pass when neither the request nor the model
/// says (Ollama's default).
pub const DEFAULT_NUM_BATCH: usize = 512;
/// The largest context we accept: 1 Mi tokens, past any model we can run here.
pub const MAX_NUM_CTX: i64 = 1 << 20;

/// A refused option.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// Unknown name or wrong type.
    #[error("invalid option: {0}")]
    Param(#[from] ParamError),
    /// The value is out of range.
    #[error("invalid option `{name}` = {value}: {why}")]
    Range {
        /// The option.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        why: &'static str,
    },
    /// `options` is not a JSON object.
    #[error("`options` must be a JSON object")]
    NotObject,
}

/// The element type of the runners' key/value cache, as
/// `LLMPM_KV_CACHE_TYPE` names it: the scheduler sizes the cache with it
/// and the runner (which inherits the variable) stores its cache in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvCacheType {
    /// Half the memory; llama.cpp's and Ollama's default.
    F16,
    /// The activations as computed.
    F32,
    /// ggml's 8-bit blocks (34 bytes per 32 values).
    Q8_0,
    /// ggml's 4-bit blocks (18 bytes per 32 values).
    Q4_0,
}

impl KvCacheType {
    /// The type `LLMPM_KV_CACHE_TYPE` names (`f16`, the default, `f32`,
    /// `q8_0` or `q4_0`, as Ollama's `OLLAMA_KV_CACHE_TYPE`); an unknown
    /// name is an error that lists the known ones.
    pub fn from_env() -> Result<KvCacheType, String> {
        match std::env::var("LLMPM_KV_CACHE_TYPE") {
            Err(_) => Ok(KvCacheType::F16),
            Ok(v) => KvCacheType::parse(&v),
        }
    }

    /// The type `name` names, as [`from_env`](Self::from_env) reads it.
    pub fn parse(name: &str) -> Result<KvCacheType, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "f16" => Ok(KvCacheType::F16),
            "f32" => Ok(KvCacheType::F32),
            "q8_0" => Ok(KvCacheType::Q8_0),
            "q4_0" => Ok(KvCacheType::Q4_0),
            other => Err(format!(
                "LLMPM_KV_CACHE_TYPE={other} is not a cache type: use f16, f32, q8_0 or q4_0"
            )),
        }
    }

    /// Bytes of `values` cached values.
    pub fn bytes_for(self, values: u64) -> u64 {
        match self {
            KvCacheType::F16 => values.saturating_mul(2),
            KvCacheType::F32 => values.saturating_mul(4),
            KvCacheType::Q8_0 => values.saturating_mul(34) / 32,
            KvCacheType::Q4_0 => values.saturating_mul(18) / 32,
        }
    }
}

/// Everything a generation needs to know from the options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Context window in tokens.
    pub num_ctx: usize,
    /// Tokens to generate: -1 no limit, -2 until the context is full.
    pub num_predict: i64,
    /// Prompt tokens kept when the prompt must be truncated.
    pub num_keep: i64,
    /// Stop strings; generation ends before any of them.
    pub stop: Vec<String>,
    /// CPU threads (0: the runner decides).
    pub num_thread: usize,
    /// Prompt tokens evaluated per forward pass.
    pub num_batch: usize,
    /// Sampling.
    pub sampler: SamplerConfig,
    /// A generation that fills the context shifts it and goes on (the
    /// request's `shift`, not a model option).
    pub shift: bool,
    /// A conversation longer than the context loses its oldest messages
    /// (the request's `truncate`, not a model option); else it is refused.
    pub truncate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            num_ctx: DEFAULT_NUM_CTX,
            num_predict: -1,
            num_keep: 4,
            stop: Vec::new(),
            num_thread: 0,
            num_batch: DEFAULT_NUM_BATCH,
            sampler: SamplerConfig::default(),
            shift: true,
            truncate: true,
        }
    }
}

fn int(p: &Parameters, name: &'static str) -> Option<i64> {
    p.get(name).and_then(ParamValue::as_i64)
}

fn float(p: &Parameters, name: &'static str) -> Option<f64> {
    p.get(name).and_then(ParamValue::as_f64)
}

fn range<T: PartialOrd + std::fmt::Display>(
    name: &'static str,
    value: Option<T>,
    ok: impl Fn(&T) -> bool,
    why: &'static str,
) -> Result<Option<T>, OptionsError> {
    match value {
        Some(v) if !ok(&v) => Err(OptionsError::Range {
            name,
            value: v.to_string(),
            why,
        }),
        v => Ok(v),
    }
}

/// Parses a request's `options` object (refusing unknown names and wrong types).
pub fn parse_request(options: Option<&Value>) -> Result<Parameters, OptionsError> {
    match options {
        None | Some(Value::Null) => Ok(Parameters::new()),
        Some(Value::Object(m)) => Ok(Parameters::from_json(m)?),
        Some(_) => Err(OptionsError::NotObject),
    }
}

/// The model's parameters overlaid with the request's, checked.
pub fn resolve(model: &Parameters, request: &Parameters) -> Result<Options, OptionsError> {
    let mut p = model.clone();
    for (name, value) in request.iter() {
        if name == "stop" {
            continue;
        }
        p.insert(name, value.clone())?;
    }
    let request_stop = request.stop();
    let stop: Vec<String> = if request_stop.is_empty() {
        p.stop().into_iter().map(str::to_string).collect()
    } else {
        request_stop.into_iter().map(str::to_string).collect()
    };
    let d = Options::default();
    let s = SamplerConfig::default();
    let num_ctx = range(
        "num_ctx",
        int(&p, "num_ctx"),
        |v| (1..=MAX_NUM_CTX).contains(v),
        "must be between 1 and 1048576",
    )?;
    let num_predict = range(
        "num_predict",
        int(&p, "num_predict"),
        |v| *v >= -2,
        "must be -2 (fill the context), -1 (no limit) or at least 0",
    )?;
    let temperature = range(
        "temperature",
        float(&p, "temperature"),
        |v| (0.0..=100.0).contains(v),
        "must be between 0 and 100",
    )?;
    let top_p = range(
        "top_p",
        float(&p, "top_p"),
        |v| (0.0..=1.0).contains(v),
        "must be between 0 and 1",
    )?;
    let min_p = range(
        "min_p",
        float(&p, "min_p"),
        |v| (0.0..=1.0).contains(v),
        "must be between 0 and 1",
    )?;
    let top_k = range(
        "top_k",
        int(&p, "top_k"),
        |v| *v >= -1,
        "must be at least 0 (0 or -1: no limit)",
    )?;
    let repeat_last_n = range(
        "repeat_last_n",
        int(&p, "repeat_last_n"),
        |v| *v >= -1,
        "must be -1 (the whole context), 0 (off) or more",
    )?;
    let repeat_penalty = range(
        "repeat_penalty",
        float(&p, "repeat_penalty"),
        |v| (0.0..=100.0).contains(v),
        "must be between 0 and 100",
    )?;
    let presence_penalty = range(
        "presence_penalty",
        float(&p, "presence_penalty"),
        |v| (-100.0..=100.0).contains(v),
        "must be between -100 and 100",
    )?;
    let frequency_penalty = range(
        "frequency_penalty",
        float(&p, "frequency_penalty"),
        |v| (-100.0..=100.0).contains(v),
        "must be between -100 and 100",
    )?;
    let num_thread = range(
        "num_thread",
        int(&p, "num_thread"),
        |v| (0..=1024).contains(v),
        "must be between 0 (automatic) and 1024",
    )?;
    let num_batch = range(
        "num_batch",
        int(&p, "num_batch"),
        |v| (1..=1 << 16).contains(v),
        "must be between 1 and 65536",
    )?;
    let num_keep = range(
        "num_keep",
        int(&p, "num_keep"),
        |v| *v >= -1,
        "must be -1 (all) or at least 0",
    )?;
    // A negative seed asks for a random one, as in Ollama.
    let seed = int(&p, "seed").and_then(|v| u64::try_from(v).ok());
    Ok(Options {
        num_ctx: num_ctx
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(d.num_ctx),
        num_predict: num_predict.unwrap_or(d.num_predict),
        num_keep: num_keep.unwrap_or(d.num_keep),
        shift: d.shift,
        truncate: d.truncate,
        stop,
        num_thread: num_thread
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(0),
        num_batch: num_batch
            .and_then(|v| usize::try_from(v).ok())
            .unwrap_or(d.num_batch),
        sampler: SamplerConfig {
            temperature: temperature.map_or(s.temperature, |v| v as f32),
            top_k: top_k.unwrap_or(s.top_k),
            top_p: top_p.map_or(s.top_p, |v| v as f32),
            min_p: min_p.map_or(s.min_p, |v| v as f32),
            repeat_penalty: repeat_penalty.map_or(s.repeat_penalty, |v| v as f32),
            repeat_last_n: repeat_last_n.unwrap_or(s.repeat_last_n),
            presence_penalty: presence_penalty.map_or(s.presence_penalty, |v| v as f32),
            frequency_penalty: frequency_penalty.map_or(s.frequency_penalty, |v| v as f32),
            seed,
        },
    })
}

/// Parses and resolves in one step, for handlers.
pub fn from_request(model: &Parameters, options: Option<&Value>) -> Result<Options, OptionsError> {
    resolve(model, &parse_request(options)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        match from_request(&Parameters::new(), Some(&v)) {
            Ok(o) => panic!("accepted {v}: {o:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn refuses_bad_values_naming_the_field() {
        assert!(err(json!({"num_ctx": 1_000_000_000})).contains("`num_ctx`"));
        assert!(err(json!({"num_predict": -3})).contains("`num_predict`"));
        assert!(err(json!({"top_p": 7})).contains("`top_p`"));
        assert!(err(json!({"bogus": 1})).contains("`bogus`"));
        assert!(err(json!({"temperature": "hot"})).contains("`temperature`"));
        assert!(err(json!([1])).contains("`options`"));
    }

    #[test]
    fn request_overrides_model() {
        let mut model = Parameters::new();
        model.insert_raw("temperature", "0.2").unwrap();
        model.insert_raw("stop", "<end>").unwrap();
        let o = from_request(&model, Some(&json!({"top_k": 3, "seed": 5}))).unwrap();
        assert_eq!(o.sampler.temperature, 0.2);
        assert_eq!(o.sampler.top_k, 3);
        assert_eq!(o.sampler.seed, Some(5));
        assert_eq!(o.stop, vec!["<end>".to_string()]);
        let o = from_request(&model, Some(&json!({"stop": ["x"], "num_predict": -2}))).unwrap();
        assert_eq!(o.stop, vec!["x".to_string()]);
        assert_eq!(o.num_predict, -2);
    }
}
