//! The local HTTP API's request, response and progress types: Ollama's shapes, field for field.
//!
//! The CLI and any Rust client depend on these, never on the daemon. Field
//! names follow Ollama's `api/types.go` so its clients work unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod archive;
mod signing;
mod tools;

pub use archive::{ImportResponse, OCI_ARCHIVE};

pub use signing::{
    ExportRequest, ExportResponse, KeygenRequest, KeygenResponse, SignRequest, SignResponse,
    SignatureInfo, SignaturesRequest, SignaturesResponse,
};

pub use tools::{check_tools, Think, ThinkLevel, Tool, ToolCall, ToolCallFunction, ToolFunction};
mod model_name;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use model_name::model_or_name;

/// `{"error": "…"}`: every non-2xx body, and the last line of a stream that failed after it began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong, for a person.
    pub error: String,
}

/// `GET /api/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResponse {
    /// The daemon's version.
    pub version: String,
}

/// What `list` and `show` say about a model, read from its config blob and GGUF.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDetails {
    /// The model it was created from, if any.
    #[serde(default)]
    pub parent_model: String,
    /// `gguf`.
    #[serde(default)]
    pub format: String,
    /// Architecture family.
    #[serde(default)]
    pub family: String,
    /// All families.
    #[serde(default)]
    pub families: Option<Vec<String>>,
    /// Human parameter count (`8.0B`).
    #[serde(default)]
    pub parameter_size: String,
    /// Quantization (`Q4_K_M`).
    #[serde(default)]
    pub quantization_level: String,
}

/// One entry of `GET /api/tags`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListModel {
    /// Short name (`llama3:latest`).
    pub name: String,
    /// Same as `name`.
    pub model: String,
    /// RFC 3339 time of the last change.
    pub modified_at: String,
    /// Total bytes of config and layers.
    pub size: u64,
    /// The manifest digest, hex only (as Ollama sends it).
    pub digest: String,
    /// Details.
    pub details: ModelDetails,
    /// What the model can do (`completion`, `tools`, …), as in `/api/show`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// `GET /api/tags`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResponse {
    /// The models, most recently modified first.
    pub models: Vec<ListModel>,
}

/// One entry of `GET /api/ps`: a loaded model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessModel {
    /// Short name it was loaded under (`llama3:latest`).
    pub name: String,
    /// Same as `name`.
    pub model: String,
    /// Estimated bytes it holds in memory.
    pub size: u64,
    /// The manifest digest, hex only.
    pub digest: String,
    /// Details, as `/api/tags` gives them.
    #[serde(default)]
    pub details: ModelDetails,
    /// RFC 3339 time it will be unloaded if idle (centuries ahead: never).
    pub expires_at: String,
    /// Of `size`, the bytes in GPU memory (0 on CPU).
    #[serde(default)]
    pub size_vram: u64,
    /// Its context size.
    #[serde(default)]
    pub context_length: u64,
}

/// `GET /api/ps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessResponse {
    /// The loaded models, the one that expires last first.
    pub models: Vec<ProcessModel>,
}

/// `POST /api/show`. A legacy `name` is read as `model` when `model` is unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ShowRequest {
    /// The model name.
    #[serde(default)]
    pub model: String,
    /// Include large arrays in `model_info`.
    #[serde(default)]
    pub verbose: bool,
}
model_or_name!(ShowRequest);

/// `POST /api/show` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShowResponse {
    /// License texts, joined.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub license: String,
    /// A Modelfile that recreates the model.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub modelfile: String,
    /// PARAMETER lines.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parameters: String,
    /// The template.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template: String,
    /// The system prompt.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system: String,
    /// Details.
    #[serde(default)]
    pub details: ModelDetails,
    /// Seed messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    /// GGUF metadata.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub model_info: serde_json::Map<String, serde_json::Value>,
    /// `completion`, `tools`, `insert`, `embedding`, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// RFC 3339 time of the last change.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub modified_at: String,
    /// llmpm: the model's stored signatures, checked against the trust policy's keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<SignatureInfo>,
}

/// A chat message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` (or `tool`).
    pub role: String,
    /// The text (`null` reads as empty).
    #[serde(default, deserialize_with = "tools::null_as_empty")]
    pub content: String,
    /// The model's reasoning (an answer's, or an earlier one sent back).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    /// The tools the assistant called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the tool whose result this is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_name: String,
    /// For a `tool` message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_call_id: String,
}

impl Message {
    /// A message with only a role and a text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
            ..Message::default()
        }
    }
}

/// `POST /api/copy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRequest {
    /// Existing model.
    pub source: String,
    /// New name.
    pub destination: String,
}

/// `DELETE /api/delete`. A legacy `name` is read as `model` when `model` is unset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct DeleteRequest {
    /// The model name.
    pub model: String,
}
model_or_name!(DeleteRequest);

/// `license` in a create request: one text or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum License {
    /// One text.
    One(String),
    /// Several texts, one layer each.
    Many(Vec<String>),
}

impl License {
    /// The texts, in order.
    pub fn texts(&self) -> Vec<String> {
        match self {
            License::One(s) => vec![s.clone()],
            License::Many(v) => v.clone(),
        }
    }
}

/// `POST /api/create`: Ollama's current shape (`from`, `files`, …). A
/// legacy `name` is read as `model` when `model` is unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CreateRequest {
    /// The name to create.
    #[serde(default)]
    pub model: String,
    /// An existing model to start from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// File name → digest of blobs already uploaded with `POST /api/blobs/:digest` (the weights).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// File name → digest of uploaded LoRA adapters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub adapters: BTreeMap<String, String>,
    /// Prompt template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// License text(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<License>,
    /// System prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// PARAMETER values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    /// Seed messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Message>>,
    /// Requantize to this type (not supported yet: refused with a clear error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantize: Option<String>,
    /// Stream NDJSON progress (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
}
model_or_name!(CreateRequest);

/// `POST /api/pull` and `POST /api/push`. A legacy `name` is read as
/// `model` when `model` is unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct PullRequest {
    /// The model name.
    #[serde(default)]
    pub model: String,
    /// Allow plain HTTP and unverified TLS.
    #[serde(default)]
    pub insecure: bool,
    /// Stream NDJSON progress (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// llmpm: the most bytes per second this transfer may move, on top of
    /// the daemon's own limit; a number, or a rate such as `"50MB/s"`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "rate"
    )]
    pub limit_rate: Option<u64>,
}
model_or_name!(PullRequest);

/// A rate as a number of bytes per second or a string (`"50M"`, `"50MB/s"`).
fn rate<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let bad = |what: String| {
        serde::de::Error::custom(format!(
            "limit_rate {what} is not a rate; use bytes per second (more than 0) or a size per second such as 50M or 50MB/s"
        ))
    };
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(t)) => crate::size::parse_rate(&t)
            .map(Some)
            .ok_or_else(|| bad(format!("`{t}`"))),
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| bad(format!("`{v}`"))),
    }
}

/// One NDJSON progress line of pull, push and create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressResponse {
    /// `pulling manifest`, `using existing layer sha256:…`, `success`, …
    pub status: String,
    /// The blob this line is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Bytes done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
    /// llmpm, pull: where this blob's bytes come from (a mirror's or the
    /// upstream's URL, `http://mirror:5000`); absent for a blob already stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl ProgressResponse {
    /// A line with only a status.
    pub fn status(s: impl Into<String>) -> ProgressResponse {
        ProgressResponse {
            status: s.into(),
            ..ProgressResponse::default()
        }
    }
}

/// `POST /api/prune` (llmpm): what was removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneResponse {
    /// Unreferenced blobs deleted.
    pub blobs_removed: u64,
    /// Bytes freed by them.
    pub bytes_freed: u64,
    /// Stale temporary files deleted.
    pub temp_files_removed: u64,
}

/// One blob that failed `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptBlob {
    /// The digest it should have.
    pub digest: String,
    /// What is wrong.
    pub problem: String,
    /// Where it was moved.
    pub quarantined_to: String,
    /// Models that need it (to pull or create again).
    pub models: Vec<String>,
}

/// `POST /api/verify` (llmpm): every blob re-hashed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResponse {
    /// Blobs checked.
    pub blobs_checked: u64,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Those that did not match, now quarantined.
    pub corrupt: Vec<CorruptBlob>,
    /// Blobs a manifest needs that are not in the store.
    pub missing: Vec<String>,
}

/// Timings and counts on the last line of a generation (nanoseconds), as Ollama reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    /// Whole request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_duration: Option<u64>,
    /// Loading the model (0 when it was loaded already).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_duration: Option<u64>,
    /// Prompt tokens, those a cache held included (Ollama's count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_count: Option<u64>,
    /// Of those, how many the prompt cache held (not evaluated again): an
    /// llmpm field, llama.cpp's `cache_n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_count: Option<u64>,
    /// Time on the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_duration: Option<u64>,
    /// Tokens generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_count: Option<u64>,
    /// Time generating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_duration: Option<u64>,
}

/// `POST /api/generate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The model name.
    pub model: String,
    /// The prompt; empty only loads the model.
    #[serde(default)]
    pub prompt: String,
    /// Overrides the model's system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Overrides the model's template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Send the prompt as is, without the template.
    #[serde(default)]
    pub raw: bool,
    /// `"json"` or a JSON schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<serde_json::Value>,
    /// Model options (`temperature`, `num_ctx`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
    /// Stream NDJSON (the default) or answer once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// How long the model stays loaded (`"5m"`, seconds, 0, negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<serde_json::Value>,
    /// Whether (and how hard) a thinking model thinks; absent: on for a model that can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
    /// Fill-in-the-middle: the text after the gap (`prompt` is the text
    /// before it); needs the `insert` capability.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub suffix: String,
    /// Base64 images (needs the `vision` capability).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Ollama's deprecated token context from an earlier answer: its
    /// tokens go before this prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<i64>>,
    /// Log-probabilities and top alternatives (see [`Logprobs`]).
    #[serde(flatten)]
    pub logprobs: Logprobs,
    /// `truncate` and `shift` (see [`ContextLimits`]).
    #[serde(flatten)]
    pub limits: ContextLimits,
    /// Answer with the rendered prompt instead of generating.
    #[serde(
        default,
        rename = "_debug_render_only",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub debug_render_only: bool,
}

/// `truncate` and `shift` of a generate or chat request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextLimits {
    /// Drop the oldest messages of a prompt longer than the context (the
    /// default), or refuse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    /// Shift the context when a generation fills it (the default), or stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<bool>,
}

/// `logprobs` and `top_logprobs` of a generate or chat request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logprobs {
    /// Report the log-probability of each generated token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logprobs: bool,
    /// How many most likely alternatives to report with each (0 to 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<i64>,
}

impl Logprobs {
    /// How many alternatives to list with each token's log-probability, or
    /// `None` when `logprobs` is off; the error is Ollama's text for a
    /// `top_logprobs` out of range, or says that `top_logprobs` needs
    /// `logprobs: true` (Ollama would drop it without a word).
    pub fn requested(&self) -> Result<Option<u32>, String> {
        let top = match self.top_logprobs {
            None => 0,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n <= 20)
                .ok_or_else(|| "top_logprobs must be between 0 and 20".to_owned())?,
        };
        match (self.logprobs, top) {
            (true, top) => Ok(Some(top)),
            (false, 0) => Ok(None),
            (false, _) => Err("`top_logprobs` needs `logprobs: true`".to_owned()),
        }
    }
}

/// One alternative at a generated token's position, or the token itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's text (invalid UTF-8 of a split character replaced).
    pub token: String,
    /// Its log-probability under the model's distribution.
    pub logprob: f64,
    /// The token's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<u8>>,
}

/// The log-probability of one generated token, and the most likely
/// alternatives at its position when asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logprob {
    /// The token.
    #[serde(flatten)]
    pub token: TokenLogprob,
    /// The `top_logprobs` most likely tokens, most likely first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_logprobs: Vec<TokenLogprob>,
}

/// What `_debug_render_only` answers with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebugInfo {
    /// The prompt the model would have been given.
    pub rendered_template: String,
    /// Images in the request.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub image_count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One line of `/api/generate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateResponse {
    /// The model name as asked.
    pub model: String,
    /// RFC 3339 time.
    pub created_at: String,
    /// Text since the last line.
    pub response: String,
    /// Reasoning since the last line (a thinking model with `think` on).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    /// Whether this is the last line.
    pub done: bool,
    /// `stop`, `length` or `load` on the last line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// The tokens of the prompt and the answer (last line, not `raw`), to
    /// send back as the next request's `context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Vec<u32>>,
    /// Timings (last line).
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Log-probabilities of the tokens of this line (of all, unstreamed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<Logprob>,
    /// The rendered prompt (`_debug_render_only`).
    #[serde(
        default,
        rename = "_debug_info",
        skip_serializing_if = "Option::is_none"
    )]
    pub debug_info: Option<DebugInfo>,
}

/// `POST /api/chat`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model name.
    pub model: String,
    /// The conversation; empty only loads the model.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// `"json"` or a JSON schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<serde_json::Value>,
    /// Model options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
    /// Stream NDJSON (the default) or answer once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// How long the model stays loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<serde_json::Value>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Whether (and how hard) a thinking model thinks; absent: on for a model that can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Think>,
    /// Log-probabilities and top alternatives (see [`Logprobs`]).
    #[serde(flatten)]
    pub logprobs: Logprobs,
    /// `truncate` and `shift` (see [`ContextLimits`]).
    #[serde(flatten)]
    pub limits: ContextLimits,
    /// Answer with the rendered prompt instead of generating.
    #[serde(
        default,
        rename = "_debug_render_only",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub debug_render_only: bool,
}

/// One line of `/api/chat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The model name as asked.
    pub model: String,
    /// RFC 3339 time.
    pub created_at: String,
    /// The assistant's text since the last line.
    pub message: Message,
    /// Whether this is the last line.
    pub done: bool,
    /// `stop`, `length` or `load` on the last line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// Timings (last line).
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Log-probabilities of the tokens of this line (of all, unstreamed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<Logprob>,
    /// The rendered prompt (`_debug_render_only`).
    #[serde(
        default,
        rename = "_debug_info",
        skip_serializing_if = "Option::is_none"
    )]
    pub debug_info: Option<DebugInfo>,
}

/// `input` of `/api/embed`: one text or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbedInput {
    /// One text.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `POST /api/embed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedRequest {
    /// The model name.
    pub model: String,
    /// The text(s).
    pub input: EmbedInput,
    /// Cut inputs longer than the context (default) or fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    /// Keep the first this many values of each vector, normalized again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<i64>,
    /// Model options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
    /// How long the model stays loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<serde_json::Value>,
}

/// `POST /api/embeddings`: the legacy one-text embedding request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    /// The model name.
    pub model: String,
    /// The text; empty only loads the model (and answers an empty vector).
    #[serde(default)]
    pub prompt: String,
    /// Model options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
    /// How long the model stays loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<serde_json::Value>,
}

/// Answer of `/api/embeddings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    /// The vector (as `/api/embed` computes it).
    pub embedding: Vec<f32>,
}

/// Answer of `/api/embed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedResponse {
    /// The model name as asked.
    pub model: String,
    /// One L2-normalised vector per input.
    pub embeddings: Vec<Vec<f32>>,
    /// Whole request (ns).
    #[serde(default)]
    pub total_duration: u64,
    /// Loading (ns).
    #[serde(default)]
    pub load_duration: u64,
    /// Tokens evaluated.
    #[serde(default)]
    pub prompt_eval_count: u64,
}
