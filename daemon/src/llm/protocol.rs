//! The runner's wire protocol on its unix socket: one JSON request line per
//! connection, answered by NDJSON lines. Closing the connection cancels the
//! request (that is how a client disconnect stops a generation).

use serde::{Deserialize, Serialize};

/// A request to the runner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RunnerRequest {
    /// Is the model loaded? Answered by one [`Health`] line.
    Health,
    /// Text to token ids. Answered by one [`Tokens`] line.
    Tokenize {
        /// The text.
        content: String,
        /// Prepend BOS when the model wants one.
        #[serde(default)]
        add_bos: bool,
    },
    /// Generate. Answered by [`CompletionChunk`] lines, the last with `done`.
    Completion(Box<CompletionRequest>),
    /// Embeddings of each input. Answered by one [`Embeddings`] line.
    Embed {
        /// The texts.
        input: Vec<String>,
        /// Cut inputs longer than the context instead of failing.
        #[serde(default = "yes")]
        truncate: bool,
    },
    /// A reranker's scores of each document for the query. Answered by one
    /// [`Embeddings`] line: each document's head logits (the first is its score).
    Rerank {
        /// The query.
        query: String,
        /// The documents.
        documents: Vec<String>,
    },
}

fn yes() -> bool {
    true
}

/// A generation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The rendered prompt (special-token text is parsed).
    pub prompt: String,
    /// Prepend BOS when the model wants one (false when the template wrote it).
    #[serde(default = "yes")]
    pub add_bos: bool,
    /// Tokens to generate: -1 no limit, -2 until the context is full.
    pub num_predict: i64,
    /// Prompt tokens kept at the start when the prompt must be cut or the
    /// context shifted.
    pub num_keep: i64,
    /// When the generation fills the context: shift it and go on (Ollama's
    /// default), or stop with `length`.
    #[serde(default = "yes")]
    pub shift: bool,
    /// Stop strings.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Sampling.
    pub sampler: SamplerConfig,
    /// What the output must match, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<Constraint>,
    /// Texts of control tokens to print anyway (a tool-call tag such as
    /// Mistral's `[TOOL_CALLS]`, which the daemon's parser must see).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preserved_tokens: Vec<String>,
    /// Report each generated token's log-probability with this many most
    /// likely alternatives (`None`: no log-probabilities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    /// Tokens before the prompt (an earlier answer's `context`); BOS is
    /// then not added again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<u32>,
    /// End with the tokens of the prompt and the generation (`context`).
    #[serde(default)]
    pub return_context: bool,
}

impl CompletionRequest {
    /// This request, reporting log-probabilities with `top` alternatives
    /// each when `top` is `Some`.
    pub fn with_logprobs(mut self, top: Option<u32>) -> CompletionRequest {
        self.logprobs = top;
        self
    }
}

/// A constraint on a generation's output, enforced while sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Constraint {
    /// Any one JSON object (`format: "json"`, `response_format: json_object`).
    Json,
    /// A JSON value valid against this JSON schema (`format: {schema}`,
    /// `response_format: json_schema`).
    JsonSchema {
        /// The schema.
        schema: serde_json::Value,
    },
    /// Text matching this grammar, in llguidance's Lark dialect (forced tool
    /// calls: the template's call prefix, then a JSON schema).
    Lark {
        /// The grammar.
        grammar: String,
    },
}

/// Answer to [`RunnerRequest::Health`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The context size the runner was started with.
    pub num_ctx: usize,
    /// How long loading took, in nanoseconds.
    pub load_duration: u64,
    /// The model's hidden size (the embedding length).
    pub n_embd: usize,
    /// Whether the weights are on a GPU (a `cuda` build that found one).
    #[serde(default)]
    pub gpu: bool,
}

/// Answer to [`RunnerRequest::Tokenize`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tokens {
    /// The ids.
    pub tokens: Vec<u32>,
}

/// Answer to [`RunnerRequest::Embed`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Embeddings {
    /// One vector per input.
    pub embeddings: Vec<Vec<f32>>,
    /// Tokens evaluated in all.
    pub prompt_eval_count: usize,
}

/// One line of a completion.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CompletionChunk {
    /// Text generated since the last line.
    #[serde(default)]
    pub content: String,
    /// Whether this is the last line.
    #[serde(default)]
    pub done: bool,
    /// `stop` or `length` on the last line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// Prompt tokens, those the cache held included (last line).
    #[serde(default)]
    pub prompt_eval_count: usize,
    /// Of those, how many the prompt cache held (last line).
    #[serde(default)]
    pub prompt_cache_count: usize,
    /// The tokens of the prompt and the generation, when asked (last line).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<u32>,
    /// Nanoseconds spent on the prompt (last line).
    #[serde(default)]
    pub prompt_eval_duration: u64,
    /// Tokens generated (last line).
    #[serde(default)]
    pub eval_count: usize,
    /// Nanoseconds spent generating (last line).
    #[serde(default)]
    pub eval_duration: u64,
    /// The log-probabilities of the tokens whose text this line releases
    /// (when the request asked for them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<llmpm_spec::api::Logprob>,
}

/// A failure, sent as the last line of any answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunnerError {
    /// What went wrong.
    pub error: String,
}

/// The sampling settings (a subset of [`super::options::Options`]; the runner's
/// sampler (`crate::runner::sampler`) applies it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerConfig {
    /// 0 (or below) is greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens; 0 or below keeps all.
    pub top_k: i64,
    /// Keep the smallest set whose probabilities reach p; 1 keeps all.
    pub top_p: f32,
    /// Drop tokens below `min_p` times the best one's probability.
    pub min_p: f32,
    /// Divides positive (multiplies negative) logits of recent tokens.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties see; 0 off, -1 all of the context.
    pub repeat_last_n: i64,
    /// Subtracted once from the logit of any recent token.
    pub presence_penalty: f32,
    /// Subtracted per occurrence from the logit of a recent token.
    pub frequency_penalty: f32,
    /// The random seed; `None` draws one.
    pub seed: Option<u64>,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: None,
        }
    }
}
