//! The `PARAMETER` table itself: every parameter name Ollama knows, its value's type and whether llmpm's runner uses it.

use std::fmt;

/// The type of a parameter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    /// A 64-bit signed integer.
    Int,
    /// A finite floating-point number.
    Float,
    /// `true` or `false`.
    Bool,
    /// A string. Only `stop` has this kind, and it holds a list of strings.
    String,
}

impl ParamKind {
    /// What a value of this kind looks like, for error messages
    /// ("expected an integer").
    pub fn describe(self) -> &'static str {
        match self {
            ParamKind::Int => "an integer",
            ParamKind::Float => "a number",
            ParamKind::Bool => "a boolean (`true` or `false`)",
            ParamKind::String => "a string",
        }
    }

    /// The short type name used in the PARAMETER table: `int`, `float`,
    /// `bool` or `string`.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamKind::Int => "int",
            ParamKind::Float => "float",
            ParamKind::Bool => "bool",
            ParamKind::String => "string",
        }
    }
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether current Ollama still honours a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamStatus {
    /// In Ollama's current `Options`/`Runner` structs.
    Current,
    /// Ollama still parses it in a Modelfile, warns that it is deprecated
    /// and drops it.
    Deprecated,
    /// Removed from Ollama, which now rejects it in a Modelfile; older
    /// Ollama versions wrote it into params layers, so llmpm still accepts
    /// it for models pulled from a registry and for old Modelfiles.
    Legacy,
}

/// One row of the PARAMETER table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    /// The name, as written after `PARAMETER` and as the JSON key.
    pub name: &'static str,
    /// The type of its value.
    pub kind: ParamKind,
    /// Whether Ollama still honours it.
    pub status: ParamStatus,
    /// Ollama's default, in words (the value used when it is not set).
    pub default: &'static str,
    /// What it does, in one sentence.
    pub summary: &'static str,
}

const fn spec(
    name: &'static str,
    kind: ParamKind,
    status: ParamStatus,
    default: &'static str,
    summary: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        kind,
        status,
        default,
        summary,
    }
}

/// The PARAMETER table: every parameter name llmpm accepts, in the order of
/// Ollama's structs (sampling options, then runner options, then the
/// deprecated and legacy ones).
#[rustfmt::skip]
pub const PARAMS: &[ParamSpec] = {
    use ParamKind::{Bool, Float, Int, String};
    use ParamStatus::{Current, Deprecated, Legacy};
    &[
        spec("num_keep", Int, Current, "4", "Tokens from the start of the prompt kept when the context window shifts."),
        spec("seed", Int, Current, "-1 (random)", "Random seed; a fixed seed makes the output reproducible for the same prompt."),
        spec("num_predict", Int, Current, "-1 (no limit)", "Maximum number of tokens to generate."),
        spec("top_k", Int, Current, "40", "Sample only from the k most likely tokens."),
        spec("top_p", Float, Current, "0.9", "Sample only from the smallest set of tokens whose probabilities add up to p."),
        spec("min_p", Float, Current, "0.0", "Drop tokens whose probability is below p times that of the most likely token."),
        spec("typical_p", Float, Current, "1.0 (off)", "Locally typical sampling threshold."),
        spec("repeat_last_n", Int, Current, "64 (0 = off, -1 = num_ctx)", "How many recent tokens the repetition penalties look at."),
        spec("temperature", Float, Current, "0.8", "Sampling temperature; higher is more creative, 0 is greedy."),
        spec("repeat_penalty", Float, Current, "1.0 (off)", "Penalty applied to tokens repeated within the last repeat_last_n tokens."),
        spec("presence_penalty", Float, Current, "0.0", "Penalty for tokens that already appeared at all."),
        spec("frequency_penalty", Float, Current, "0.0", "Penalty that grows with how often a token already appeared."),
        spec("stop", String, Current, "none (the model's own)", "A stop sequence; generation ends when it is produced. Repeatable."),
        spec("num_ctx", Int, Current, "chosen by the server (Ollama: 4096 or more, by memory)", "Context window size in tokens."),
        spec("num_batch", Int, Current, "512", "Prompt-processing batch size."),
        spec("num_gpu", Int, Current, "-1 (automatic)", "Number of layers to offload to the GPU(s)."),
        spec("main_gpu", Int, Current, "0", "The GPU used for small tensors and scratch buffers."),
        spec("use_mmap", Bool, Current, "automatic", "Memory-map the model file instead of reading it."),
        spec("num_thread", Int, Current, "0 (automatic)", "CPU threads used for generation."),
        spec("draft_num_predict", Int, Current, "4", "Speculative draft tokens per step when a draft model is present (0 = off)."),
        spec("penalize_newline", Bool, Deprecated, "true", "Apply the repetition penalties to the newline token."),
        spec("low_vram", Bool, Deprecated, "false", "Reduce VRAM use at the cost of speed."),
        spec("f16_kv", Bool, Deprecated, "true", "Store the KV cache in 16-bit floats."),
        spec("logits_all", Bool, Deprecated, "false", "Return logits for all tokens, not just the last."),
        spec("vocab_only", Bool, Deprecated, "false", "Load only the vocabulary, not the weights."),
        spec("use_mlock", Bool, Deprecated, "false", "Lock the model in memory so it is never swapped out."),
        spec("mirostat", Int, Deprecated, "0 (off; 1 = Mirostat, 2 = Mirostat 2.0)", "Mirostat sampling mode."),
        spec("mirostat_tau", Float, Deprecated, "5.0", "Mirostat target entropy."),
        spec("mirostat_eta", Float, Deprecated, "0.1", "Mirostat learning rate."),
        spec("numa", Bool, Legacy, "false", "NUMA-aware memory placement."),
        spec("tfs_z", Float, Legacy, "1.0 (off)", "Tail-free sampling parameter."),
        spec("num_gqa", Int, Legacy, "from the model", "Grouped-query attention groups (old GGML models)."),
        spec("rope_frequency_base", Float, Legacy, "from the model", "RoPE base frequency."),
        spec("rope_frequency_scale", Float, Legacy, "from the model", "RoPE frequency scaling factor."),
        spec("embedding_only", Bool, Legacy, "false", "Load the model for embeddings only."),
    ]
};

/// Every parameter name llmpm accepts, in the order of [`PARAMS`].
pub const PARAM_NAMES: &[&str] = &[
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "repeat_last_n",
    "temperature",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "use_mmap",
    "num_thread",
    "draft_num_predict",
    "penalize_newline",
    "low_vram",
    "f16_kv",
    "logits_all",
    "vocab_only",
    "use_mlock",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "numa",
    "tfs_z",
    "num_gqa",
    "rope_frequency_base",
    "rope_frequency_scale",
    "embedding_only",
];

/// The table row for `name` (exact, case-sensitive, like Ollama's JSON keys).
pub fn param_spec(name: &str) -> Option<&'static ParamSpec> {
    PARAMS.iter().find(|spec| spec.name == name)
}

/// The type of parameter `name`, or `None` if there is no such parameter.
pub fn param_kind(name: &str) -> Option<ParamKind> {
    param_spec(name).map(|spec| spec.kind)
}
