//! `/api/generate`, `/api/chat` and `/api/embed`: Ollama's request and
//! answer shapes around the model ([`crate::llm`]): the request's options,
//! `keep_alive` and `format` checked, a lease from the scheduler, and the
//! runner's answer relayed as Ollama's NDJSON lines (or one JSON body with
//! `"stream": false`).
//!
//! Errors before the first line are HTTP statuses; after it, an `{"error"}`
//! line (see `stream.rs`). A client that disconnects drops the stream, which
//! closes the runner connection, which stops the generation.

use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use llmpm_spec::api::{
    ChatRequest, ChatResponse, EmbedInput, EmbedRequest, EmbedResponse, GenerateRequest,
    GenerateResponse, Message, Metrics,
};
use serde::Serialize;

use super::error::ApiError;
use super::extract::ApiJson;
use super::models::resolve;
use super::stream::{self, Framing};
use super::AppState;
use crate::llm::client::ClientError;
use crate::llm::handle::collect;
use crate::llm::protocol::{CompletionChunk, Constraint};
use crate::llm::{Event, Events, LlmError, Prompt};
use crate::sched::{KeepAlive, LoadRequest};

fn now() -> String {
    crate::describe::rfc3339(std::time::SystemTime::now())
}

fn nanos(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A request's `keep_alive`, checked (`None`: the configured default).
fn keep_alive(v: Option<&serde_json::Value>) -> Result<Option<KeepAlive>, ApiError> {
    match v {
        None => Ok(None),
        Some(v) => KeepAlive::from_json(v).map_err(|e| ApiError::BadRequest(e.to_string())),
    }
}

/// Whether a request's `format` asks for JSON: `"json"`, or a JSON schema
/// (an object), which llmpm answers with a valid JSON object without yet
/// holding it to the schema; absent or `""` is free text.
fn wants_json(format: Option<&serde_json::Value>) -> Result<bool, ApiError> {
    match format {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(false),
        Some(serde_json::Value::String(s)) if s == "json" => Ok(true),
        Some(serde_json::Value::Object(_)) => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid `format` {other}: use \"json\" or a JSON schema object"
        ))),
    }
}

fn metrics(c: &CompletionChunk, load: u64, started: Instant) -> Metrics {
    Metrics {
        total_duration: Some(nanos(started)),
        load_duration: Some(load),
        prompt_eval_count: Some(c.prompt_eval_count as u64),
        prompt_eval_duration: Some(c.prompt_eval_duration),
        eval_count: Some(c.eval_count as u64),
        eval_duration: Some(c.eval_duration),
    }
}

/// Answers a generation: NDJSON lines made by `line` (text, last chunk),
/// or one body with the whole text.
async fn respond<T: Serialize + Send + 'static>(
    events: Events,
    stream: bool,
    line: impl Fn(String, Option<&CompletionChunk>) -> T + Send + 'static,
) -> Response {
    let ended = || ApiError::Internal("the generation ended without a result".into());
    if !stream {
        return match collect(events).await {
            Ok(Some((text, last))) => Json(line(text, Some(&last))).into_response(),
            Ok(None) => ended().into_response(),
            Err(e) => ApiError::from(e).into_response(),
        };
    }
    stream::respond_framed(
        events.map(|e| e.map_err(ApiError::from)),
        Framing::Ndjson,
        move |event, frames| match event {
            Event::Text(t) => {
                frames.push(&line(t, None));
                false
            }
            Event::Done(c) => {
                frames.push(&line(c.content.clone(), Some(&c)));
                true
            }
        },
        |e| e.unwrap_or_else(ended).into_response(),
    )
    .await
}

/// `POST /api/generate`.
pub async fn generate(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<GenerateRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let resolved = resolve(&state, &req.model).await?;
    resolved.completes(&req.model, "generate")?;
    let opts = resolved.options(req.options.as_ref())?;
    let keep = keep_alive(req.keep_alive.as_ref())?;
    let json = wants_json(req.format.as_ref())?;
    let model = req.model.clone();
    if req.prompt.is_empty() && keep.is_some_and(KeepAlive::is_zero) {
        // `keep_alive: 0` with no prompt unloads, as in Ollama (`ollama
        // stop`); a runner that is serving goes when its requests end.
        state.sched.unload(&resolved.blob).await;
        return Ok(Json(GenerateResponse {
            model,
            created_at: now(),
            response: String::new(),
            done: true,
            done_reason: Some("unload".into()),
            metrics: Metrics::default(),
        })
        .into_response());
    }
    let lease = state
        .sched
        .acquire(LoadRequest::new(&resolved, &opts, keep))
        .await?;
    let load = lease.load_duration();
    if req.prompt.is_empty() {
        // An empty prompt only loads the model, as in Ollama.
        return Ok(Json(GenerateResponse {
            model,
            created_at: now(),
            response: String::new(),
            done: true,
            done_reason: Some("load".into()),
            metrics: Metrics {
                total_duration: Some(nanos(started)),
                load_duration: Some(load),
                ..Metrics::default()
            },
        })
        .into_response());
    }
    let prompt = if req.raw {
        Prompt::raw(req.prompt.clone())
    } else {
        resolved.generate_prompt(&req.prompt, req.system.as_deref(), req.template.as_deref())?
    };
    let events = lease
        .runner()
        .complete(prompt.completion(&opts, json.then_some(Constraint::Json)))
        .await?;
    Ok(
        respond(events, req.stream.unwrap_or(true), move |text, last| {
            GenerateResponse {
                model: model.clone(),
                created_at: now(),
                response: text,
                done: last.is_some(),
                done_reason: last.and_then(|c| c.done_reason.clone()),
                metrics: last.map(|c| metrics(c, load, started)).unwrap_or_default(),
            }
        })
        .await,
    )
}

/// `POST /api/chat`.
pub async fn chat(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let resolved = resolve(&state, &req.model).await?;
    resolved.completes(&req.model, "chat")?;
    let opts = resolved.options(req.options.as_ref())?;
    let json = wants_json(req.format.as_ref())?;
    let model = req.model.clone();
    let assistant = |content: String| Message {
        role: "assistant".into(),
        content,
    };
    let keep = keep_alive(req.keep_alive.as_ref())?;
    if req.messages.is_empty() && keep.is_some_and(KeepAlive::is_zero) {
        state.sched.unload(&resolved.blob).await;
        return Ok(Json(ChatResponse {
            model,
            created_at: now(),
            message: assistant(String::new()),
            done: true,
            done_reason: Some("unload".into()),
            metrics: Metrics::default(),
        })
        .into_response());
    }
    let lease = state
        .sched
        .acquire(LoadRequest::new(&resolved, &opts, keep))
        .await?;
    let load = lease.load_duration();
    if req.messages.is_empty() {
        return Ok(Json(ChatResponse {
            model,
            created_at: now(),
            message: assistant(String::new()),
            done: true,
            done_reason: Some("load".into()),
            metrics: Metrics {
                total_duration: Some(nanos(started)),
                load_duration: Some(load),
                ..Metrics::default()
            },
        })
        .into_response());
    }
    let prompt = resolved.fit_chat(lease.runner(), &req.messages).await?;
    let events = lease
        .runner()
        .complete(prompt.completion(&opts, json.then_some(Constraint::Json)))
        .await?;
    Ok(
        respond(events, req.stream.unwrap_or(true), move |text, last| {
            ChatResponse {
                model: model.clone(),
                created_at: now(),
                message: assistant(text),
                done: last.is_some(),
                done_reason: last.and_then(|c| c.done_reason.clone()),
                metrics: last.map(|c| metrics(c, load, started)).unwrap_or_default(),
            }
        })
        .await,
    )
}

/// `POST /api/embed`.
pub async fn embed(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EmbedRequest>,
) -> Result<Json<EmbedResponse>, ApiError> {
    let started = Instant::now();
    let resolved = resolve(&state, &req.model).await?;
    let opts = resolved.options(req.options.as_ref())?;
    let input = match req.input {
        EmbedInput::One(s) => vec![s],
        EmbedInput::Many(v) => v,
    };
    if input.iter().any(String::is_empty) {
        return Err(ApiError::BadRequest("`input` has an empty text".into()));
    }
    let keep = keep_alive(req.keep_alive.as_ref())?;
    let lease = state
        .sched
        .acquire(LoadRequest::new(&resolved, &opts, keep))
        .await?;
    let truncate = req.truncate.unwrap_or(true);
    let e = match lease.runner().embed(input, truncate).await {
        Ok(e) => e,
        // What the runner refuses here is the input (too long without `truncate`).
        Err(LlmError::Runner(ClientError::Runner(msg))) => return Err(ApiError::BadRequest(msg)),
        Err(e) => return Err(e.into()),
    };
    Ok(Json(EmbedResponse {
        model: req.model,
        embeddings: e.embeddings,
        total_duration: nanos(started),
        load_duration: lease.load_duration(),
        prompt_eval_count: e.prompt_eval_count as u64,
    }))
}
