//! The OpenAI-compatible surface: `/v1/chat/completions` and
//! `/v1/completions` (JSON or SSE ending in `data: [DONE]`),
//! `/v1/embeddings` and `/v1/models`, with OpenAI's error bodies
//! (`{"error": {"message", "type", …}}`) so the `openai` SDKs raise the
//! right exceptions. Framing only: the model, its prompt and the runner are
//! `crate::llm`'s, the stream writer is `stream.rs`'s.

mod fields;
mod logprobs;
mod responses;

pub use responses::responses;
#[cfg(test)]
pub(super) use responses::tests as responses_tests;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use llmpm_spec::api::{check_tools, Tool};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{ApiError, Classify};
use super::models::resolve;
use super::openai_tools::{self, OaMessage};
use super::stream::{self, Framing};
use super::{AppState, Model};
use crate::llm::grammar;
use crate::llm::handle::collect;
use crate::llm::protocol::{CompletionChunk, Constraint};
use crate::llm::{Capability, Event, Events, Prompt};
use crate::sched::{Lease, LoadRequest};

/// An [`ApiError`] in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError(ApiError);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        OpenAiError(e)
    }
}

impl<E: Classify> From<E> for OpenAiError {
    fn from(e: E) -> Self {
        OpenAiError(e.into())
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let kind = match status {
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST => "invalid_request_error",
            StatusCode::UNAUTHORIZED => "authentication_error",
            _ => "api_error",
        };
        let code = (status == StatusCode::NOT_FOUND).then_some("model_not_found");
        let mut resp = (
            status,
            Json(json!({"error": {"message": self.0.to_string(), "type": kind, "param": null, "code": code}})),
        )
            .into_response();
        // The SDKs retry a 503 and honour Retry-After; take it from the Ollama-shaped answer.
        if let Some(v) = self.0.into_response().headers().get(header::RETRY_AFTER) {
            resp.headers_mut().insert(header::RETRY_AFTER, v.clone());
        }
        resp
    }
}

/// The body of both completion routes; unknown fields are ignored, as OpenAI's clients send many.
#[derive(Debug, Deserialize)]
pub struct CompletionBody {
    model: String,
    #[serde(default)]
    messages: Vec<OaMessage>,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    max_completion_tokens: Option<i64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    stop: Option<Value>,
    #[serde(default)]
    frequency_penalty: Option<f64>,
    #[serde(default)]
    presence_penalty: Option<f64>,
    #[serde(default)]
    stream_options: Option<Value>,
    /// `{"type": "json_object"}` or `{"type": "json_schema", …}` ask for JSON.
    #[serde(default)]
    response_format: Option<Value>,
    /// Tools the model may call.
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    /// `auto`, `none`, `required` or a named function.
    #[serde(default)]
    tool_choice: Option<Value>,
    /// How hard a reasoning model thinks (`none` … `high`).
    #[serde(default)]
    reasoning_effort: Option<String>,
    /// `{"effort": …}`, the Responses-style spelling.
    #[serde(default)]
    reasoning: Option<Value>,
    /// `suffix`, `logprobs`, and the fields refused by name.
    #[serde(flatten)]
    extra: fields::Extra,
}

impl CompletionBody {
    /// The constraint `response_format` asks for, checked.
    fn constraint(&self) -> Result<Option<Constraint>, ApiError> {
        grammar::from_response_format(self.response_format.as_ref())
            .map_err(|e| ApiError::BadRequest(format!("invalid `response_format`: {e}")))
    }

    /// The sampling fields as an Ollama `options` object.
    fn options(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        put(
            "num_predict",
            self.max_completion_tokens
                .or(self.max_tokens)
                .map(Value::from),
        );
        put("temperature", self.temperature.map(Value::from));
        put("top_p", self.top_p.map(Value::from));
        put("seed", self.seed.map(Value::from));
        put("frequency_penalty", self.frequency_penalty.map(Value::from));
        put("presence_penalty", self.presence_penalty.map(Value::from));
        put("stop", self.stop.clone().filter(|v| !v.is_null()));
        Value::Object(m)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn id(prefix: &str) -> String {
    format!("{prefix}-{:x}", fastrand::u64(..))
}

/// OpenAI's `finish_reason`: `tool_calls` when the model stopped after calling one.
fn finish(reason: Option<&str>, called: bool) -> &'static str {
    match reason {
        Some("length") => "length",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// A chat-shaped request, whatever API it came in by (chat completions,
/// Responses, Anthropic Messages): what [`chat_events`] runs.
#[derive(Debug, Default)]
pub(super) struct ChatAsk {
    /// The model as the request names it.
    pub model: String,
    /// The conversation, in Ollama's shape.
    pub messages: Vec<llmpm_spec::api::Message>,
    /// Tools the model may call.
    pub tools: Vec<Tool>,
    /// Thinking asked for.
    pub think: Option<llmpm_spec::api::Think>,
    /// Which calls are allowed or forced.
    pub choice: crate::llm::ToolChoice,
    /// Sampling, as an Ollama `options` object.
    pub options: Value,
    /// What the output must match.
    pub constraint: Option<Constraint>,
    /// Log-probabilities with this many alternatives.
    pub logprobs: Option<u32>,
}

/// The model of `ask` resolved and checked for what it asks (completion,
/// tools, thinking), its options and a lease on its runner.
async fn prepare(
    state: &AppState,
    ask: &mut ChatAsk,
) -> Result<
    (
        std::sync::Arc<Model>,
        crate::llm::Features,
        crate::llm::Options,
        Lease,
    ),
    ApiError,
> {
    let resolved = resolve(state, &ask.model).await?;
    let tools = std::mem::take(&mut ask.tools);
    let choice = std::mem::take(&mut ask.choice);
    let features = resolved.features(&ask.model, tools, ask.think, choice)?;
    let opts = resolved.options(Some(&ask.options))?;
    resolved.require(&ask.model, Capability::Completion, "chat")?;
    // The tokenizer that fits the chat is built while the model loads.
    let (lease, _) = tokio::join!(
        state
            .sched
            .acquire(LoadRequest::new(&resolved, &opts, None)),
        resolved.tokenizer()
    );
    Ok((resolved, features, opts, lease?))
}

/// Runs a chat: [`prepare`]d, the conversation fitted to the context, and
/// the answer's events (text, reasoning, calls, the last chunk).
pub(super) async fn chat_events(state: &AppState, mut ask: ChatAsk) -> Result<Events, ApiError> {
    let (resolved, features, opts, lease) = prepare(state, &mut ask).await?;
    let ropts = resolved.render_options(&features);
    let prompt = resolved
        .fit_chat(lease.runner(), &ask.messages, &ropts, true)
        .await?;
    let events = resolved
        .generate(
            lease.runner(),
            prompt,
            &opts,
            ask.constraint,
            &features,
            ask.logprobs,
        )
        .await?;
    Ok(events)
}

/// The number of tokens of the prompt [`chat_events`] would run for `ask`
/// (rendered whole, with the tools and thinking, counted as the runner
/// will read it).
pub(super) async fn chat_prompt_tokens(
    state: &AppState,
    mut ask: ChatAsk,
) -> Result<usize, ApiError> {
    let (resolved, features, _, lease) = prepare(state, &mut ask).await?;
    let ropts = resolved.render_options(&features);
    let prompt = resolved.render(None, resolved.system.as_deref(), &ask.messages, &ropts)?;
    Ok(resolved.count_tokens(lease.runner(), &prompt).await?)
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, OpenAiError> {
    let req: CompletionBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON request body: {e}")))?;
    if req.messages.is_empty() {
        return Err(ApiError::BadRequest("`messages` must not be empty".into()).into());
    }
    let constraint = req.constraint()?;
    let messages = openai_tools::messages(&req.messages)?;
    let tools = req.tools.clone().unwrap_or_default();
    check_tools(&tools).map_err(ApiError::BadRequest)?;
    let choice = openai_tools::tool_choice(req.tool_choice.as_ref())?;
    let effort = req.reasoning_effort.as_deref().or_else(|| {
        req.reasoning
            .as_ref()
            .and_then(|r| r.get("effort"))
            .and_then(Value::as_str)
    });
    let think = openai_tools::think(effort)?;
    req.extra.refuse_unsupported()?;
    if req.extra.suffix.is_some() {
        return Err(
            ApiError::BadRequest("`suffix` belongs to /v1/completions, not chat".into()).into(),
        );
    }
    let logprobs = req.extra.chat_logprobs()?;
    let events = chat_events(
        &state,
        ChatAsk {
            model: req.model.clone(),
            messages,
            tools,
            think,
            choice,
            options: req.options(),
            constraint,
            logprobs,
        },
    )
    .await?;
    let usage = req
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let shape = logprobs::Choices::new(logprobs.is_some(), true);
    Ok(answer(events, req.stream, usage, shape, req.model).await)
}

/// `POST /v1/completions`.
pub async fn completions(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, OpenAiError> {
    let req: CompletionBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON request body: {e}")))?;
    let prompt = match &req.prompt {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 => a[0].as_str().unwrap_or_default().to_string(),
        _ => {
            return Err(ApiError::BadRequest("`prompt` must be one string".into()).into());
        }
    };
    let constraint = req.constraint()?;
    req.extra.refuse_unsupported()?;
    let logprobs = req.extra.completion_logprobs()?;
    let resolved = resolve(&state, &req.model).await?;
    let opts = resolved.options(Some(&req.options()))?;
    resolved.require(&req.model, Capability::Completion, "generate")?;
    let suffix = req.extra.suffix.as_deref().filter(|s| !s.is_empty());
    if suffix.is_some() {
        resolved.require(&req.model, Capability::Insert, "generate")?;
    }
    let lease = state
        .sched
        .acquire(LoadRequest::new(&resolved, &opts, None))
        .await?;
    let prompt = match suffix {
        Some(suffix) => resolved.fim_prompt(&req.model, &prompt, suffix, None)?,
        None => Prompt::raw(prompt),
    };
    let events = lease
        .runner()
        .complete(prompt.completion(&opts, constraint).with_logprobs(logprobs))
        .await?;
    let events = crate::llm::handle::metered(&resolved.name, events);
    let shape = logprobs::Choices::new(logprobs.is_some(), false);
    Ok(answer(events, req.stream, false, shape, req.model).await)
}

fn usage_json(c: &CompletionChunk) -> Value {
    json!({
        "prompt_tokens": c.prompt_eval_count,
        "completion_tokens": c.eval_count,
        "total_tokens": c.prompt_eval_count + c.eval_count,
        "prompt_tokens_details": {"cached_tokens": c.prompt_cache_count},
    })
}

/// Answers a completion: SSE chunks ending in `data: [DONE]`, or one body.
/// A chat's reasoning goes in `reasoning` beside `content` and its calls in
/// `tool_calls`, as Ollama's OpenAI layer sends them.
async fn answer(
    events: Events,
    stream: bool,
    include_usage: bool,
    mut logprobs: logprobs::Choices,
    model: String,
) -> Response {
    let chat = logprobs.chat();
    let id = id(if chat { "chatcmpl" } else { "cmpl" });
    let created = unix_now();
    let ended = || ApiError::Internal("the generation ended without a result".into());
    if !stream {
        let all = match collect(events).await {
            Ok(Some(all)) => all,
            Ok(None) => return OpenAiError(ended()).into_response(),
            Err(e) => return OpenAiError::from(e).into_response(),
        };
        let object = if chat {
            "chat.completion"
        } else {
            "text_completion"
        };
        let reason = finish(all.last.done_reason.as_deref(), !all.tool_calls.is_empty());
        let lp = logprobs.value(&all.last.logprobs);
        let choice = if chat {
            let mut message = json!({"role": "assistant", "content": all.text});
            if !all.thinking.is_empty() {
                message["reasoning"] = Value::String(all.thinking);
            }
            if !all.tool_calls.is_empty() {
                let calls = all.tool_calls.iter().map(openai_tools::call_json).collect();
                message["tool_calls"] = Value::Array(calls);
            }
            json!({"index": 0, "message": message, "logprobs": lp, "finish_reason": reason})
        } else {
            json!({"index": 0, "text": all.text, "logprobs": lp, "finish_reason": reason})
        };
        return Json(json!({
            "id": id, "object": object, "created": created, "model": model,
            "system_fingerprint": "fp_llmpm",
            "choices": [choice], "usage": usage_json(&all.last),
        }))
        .into_response();
    }
    let chunk_object = if chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    // A chat chunk's delta, or (`None`) the empty one of the finish chunk.
    let chunk = move |delta: Option<Value>, reason: Option<&str>| {
        let choice = if chat {
            json!({"index": 0, "delta": delta.unwrap_or_else(|| json!({})), "finish_reason": reason})
        } else {
            let text = delta
                .as_ref()
                .and_then(|d| d.get("content"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            json!({"index": 0, "text": text, "logprobs": null, "finish_reason": reason})
        };
        json!({"id": id, "object": chunk_object, "created": created, "model": model,
               "system_fingerprint": "fp_llmpm", "choices": [choice]})
    };
    let text = |t: String| Some(json!({"role": "assistant", "content": t}));
    let mut called = false;
    let mut pending = Vec::new();
    stream::respond_framed(
        events.map(|e| e.map_err(ApiError::from)),
        Framing::Sse,
        move |event, frames| match event {
            Event::Logprobs(l) => {
                pending.extend(l);
                false
            }
            Event::Text(t) => {
                let mut ch = chunk(text(t), None);
                ch["choices"][0]["logprobs"] = logprobs.value(&std::mem::take(&mut pending));
                frames.push(&ch);
                false
            }
            Event::Thinking(t) => {
                let d = json!({"role": "assistant", "content": "", "reasoning": t});
                frames.push(&chunk(Some(d), None));
                false
            }
            Event::ToolCall(c) => {
                called = true;
                let d = json!({"role": "assistant", "content": "",
                               "tool_calls": [openai_tools::call_json(&c)]});
                frames.push(&chunk(Some(d), None));
                false
            }
            Event::Done(mut c) => {
                pending.append(&mut c.logprobs);
                if !c.content.is_empty() || !pending.is_empty() {
                    let mut ch = chunk(text(c.content.clone()), None);
                    ch["choices"][0]["logprobs"] = logprobs.value(&std::mem::take(&mut pending));
                    frames.push(&ch);
                }
                let reason = finish(c.done_reason.as_deref(), called);
                frames.push(&chunk(None, Some(reason)));
                if include_usage {
                    let mut u = chunk(None, None);
                    u["choices"] = json!([]);
                    u["usage"] = usage_json(&c);
                    frames.push(&u);
                }
                frames.finish();
                true
            }
        },
        |e| OpenAiError(e.unwrap_or_else(ended)).into_response(),
    )
    .await
}

/// One `/v1/models` entry, as Ollama's `ToListCompletion` makes it: the
/// owner is the name's namespace, `created` the model's modification time.
fn model_json(id: String, reference: &llmpm_spec::Reference, modified: SystemTime) -> Value {
    let created = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({"id": id, "object": "model", "created": created, "owned_by": reference.namespace()})
}

/// `GET /v1/models`.
pub async fn models(State(state): State<AppState>) -> Result<Json<Value>, OpenAiError> {
    let store = state.store.clone();
    let list = tokio::task::spawn_blocking(move || store.list())
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(ApiError::from)?;
    let data: Vec<Value> = list
        .iter()
        .map(|m| model_json(m.reference.display_short(), &m.reference, m.modified))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// `GET /v1/models/{model}`: one entry, its `id` the name as asked.
pub async fn model(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    let reference = super::models::parse_name(&name)?;
    let store = state.store.clone();
    let entry = tokio::task::spawn_blocking(move || store.get(&reference))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(ApiError::from)?;
    Ok(Json(model_json(name, &entry.reference, entry.modified)))
}

/// The body of `/v1/embeddings`.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsBody {
    model: String,
    input: Value,
    /// `float` (the default) or `base64` (little-endian f32s, which the
    /// OpenAI SDKs ask for when the caller does not say).
    #[serde(default)]
    encoding_format: Option<String>,
    /// Keep the first this many values, normalized again (Ollama's rule).
    #[serde(default)]
    dimensions: Option<i64>,
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, OpenAiError> {
    let req: EmbeddingsBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON request body: {e}")))?;
    let input: Vec<String> = match &req.input {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::BadRequest("`input` must be strings".into()))?,
        _ => return Err(ApiError::BadRequest("`input` must be a string or strings".into()).into()),
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid `encoding_format` {other:?}: use \"float\" or \"base64\""
            ))
            .into())
        }
    };
    let dimensions = match req.dimensions {
        None => None,
        Some(d) => Some(usize::try_from(d).ok().filter(|d| *d > 0).ok_or_else(|| {
            ApiError::BadRequest(format!("invalid `dimensions` {d}: must be at least 1"))
        })?),
    };
    let resolved = resolve(&state, &req.model).await?;
    super::rerank::refuse_reranker(&resolved, &req.model)?;
    let opts = resolved.options(None)?;
    let lease = state
        .sched
        .acquire(LoadRequest::new(&resolved, &opts, None))
        .await?;
    let e = lease.runner().embed(input, true).await?;
    let data: Vec<Value> = e
        .embeddings
        .into_iter()
        .map(|v| crate::llm::shorten_embedding(v, dimensions))
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                use base64::Engine as _;
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list", "data": data, "model": req.model,
        "usage": {"prompt_tokens": e.prompt_eval_count, "total_tokens": e.prompt_eval_count},
    })))
}
