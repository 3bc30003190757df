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
    check_tools, ChatRequest, ChatResponse, DebugInfo, DebugRenderResponse, EmbedInput,
    EmbedRequest, EmbedResponse, GenerateRequest, GenerateResponse, Message, Metrics, ToolCall,
};
use serde::Serialize;

use super::error::ApiError;
use super::extract::ApiJson;
use super::models::resolve;
use super::stream::{self, Framing};
use super::AppState;
use crate::llm::client::ClientError;
use crate::llm::grammar;
use crate::llm::handle::collect;
use crate::llm::parse::parse_events;
use crate::llm::protocol::{CompletionChunk, Constraint};
use crate::llm::{Capability, Event, Events, LlmError, Prompt, ToolChoice};
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

/// A request's `format` as the constraint it asks for, checked before any
/// model is loaded: `"json"`, a JSON schema, or none.
fn constraint(format: Option<&serde_json::Value>) -> Result<Option<Constraint>, ApiError> {
    grammar::from_format(format).map_err(|e| ApiError::BadRequest(format!("invalid `format`: {e}")))
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

/// What one line carries: text, reasoning, tool calls.
#[derive(Debug, Default)]
struct Delta {
    text: String,
    thinking: String,
    tool_calls: Vec<ToolCall>,
}

impl Delta {
    fn text(text: String) -> Delta {
        Delta {
            text,
            ..Delta::default()
        }
    }
}

/// Answers a generation: NDJSON lines made by `line` (what the line
/// carries, the last chunk), or one body with all of it.
async fn respond<T: Serialize + Send + 'static>(
    events: Events,
    stream: bool,
    line: impl Fn(Delta, Option<&CompletionChunk>) -> T + Send + 'static,
) -> Response {
    let ended = || ApiError::Internal("the generation ended without a result".into());
    if !stream {
        return match collect(events).await {
            Ok(Some(all)) => {
                let delta = Delta {
                    text: all.text,
                    thinking: all.thinking,
                    tool_calls: all.tool_calls,
                };
                Json(line(delta, Some(&all.last))).into_response()
            }
            Ok(None) => ended().into_response(),
            Err(e) => ApiError::from(e).into_response(),
        };
    }
    stream::respond_framed(
        events.map(|e| e.map_err(ApiError::from)),
        Framing::Ndjson,
        move |event, frames| match event {
            Event::Text(t) => {
                frames.push(&line(Delta::text(t), None));
                false
            }
            Event::Thinking(thinking) => {
                let d = Delta {
                    thinking,
                    ..Delta::default()
                };
                frames.push(&line(d, None));
                false
            }
            Event::ToolCall(c) => {
                let d = Delta {
                    tool_calls: vec![c],
                    ..Delta::default()
                };
                frames.push(&line(d, None));
                false
            }
            Event::Done(c) => {
                frames.push(&line(Delta::text(c.content.clone()), Some(&c)));
                true
            }
        },
        |e| e.unwrap_or_else(ended).into_response(),
    )
    .await
}

/// `_debug_render_only`: the prompt instead of an answer, as Ollama sends it.
fn rendered(model: String, prompt: Prompt) -> Response {
    Json(DebugRenderResponse {
        model,
        created_at: now(),
        debug_info: DebugInfo {
            rendered_template: prompt.text,
            image_count: 0,
        },
    })
    .into_response()
}

/// `POST /api/generate`.
pub async fn generate(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<GenerateRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let resolved = resolve(&state, &req.model).await?;
    let opts = resolved.options(req.options.as_ref())?;
    let keep = keep_alive(req.keep_alive.as_ref())?;
    let constraint = constraint(req.format.as_ref())?;
    let model = req.model.clone();
    let features = resolved.features(&req.model, Vec::new(), req.think, ToolChoice::Auto)?;
    if req.prompt.is_empty() && keep.is_some_and(KeepAlive::is_zero) {
        // `keep_alive: 0` with no prompt unloads, as in Ollama (`ollama
        // stop`); a runner that is serving goes when its requests end.
        state.sched.unload(&resolved.blob).await;
        return Ok(Json(GenerateResponse {
            model,
            created_at: now(),
            done: true,
            done_reason: Some("unload".into()),
            ..GenerateResponse::default()
        })
        .into_response());
    }
    resolved.require(&req.model, Capability::Completion, "generate")?;
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
            done: true,
            done_reason: Some("load".into()),
            metrics: Metrics {
                total_duration: Some(nanos(started)),
                load_duration: Some(load),
                ..Metrics::default()
            },
            ..GenerateResponse::default()
        })
        .into_response());
    }
    let prompt = if req.raw {
        Prompt::raw(req.prompt.clone())
    } else {
        let ropts = resolved.render_options(&features);
        resolved.generate_prompt(
            &req.prompt,
            req.system.as_deref(),
            req.template.as_deref(),
            &ropts,
        )?
    };
    if req.debug_render_only {
        return Ok(rendered(model, prompt));
    }
    let parser = resolved.output_parser(&features, &prompt);
    let request = resolved.completion_request(prompt, &opts, constraint, &features);
    let events = parse_events(lease.runner().complete(request).await?, parser);
    Ok(respond(events, req.stream.unwrap_or(true), move |d, last| {
        GenerateResponse {
            model: model.clone(),
            created_at: now(),
            response: d.text,
            thinking: d.thinking,
            done: last.is_some(),
            done_reason: last.and_then(|c| c.done_reason.clone()),
            metrics: last.map(|c| metrics(c, load, started)).unwrap_or_default(),
        }
    })
    .await)
}

/// `POST /api/chat`.
pub async fn chat(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let resolved = resolve(&state, &req.model).await?;
    let opts = resolved.options(req.options.as_ref())?;
    let constraint = constraint(req.format.as_ref())?;
    let model = req.model.clone();
    let assistant = |content: String| Message::new("assistant", content);
    let keep = keep_alive(req.keep_alive.as_ref())?;
    let tools = req.tools.clone().unwrap_or_default();
    check_tools(&tools).map_err(ApiError::BadRequest)?;
    let features = resolved.features(&req.model, tools, req.think, ToolChoice::Auto)?;
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
    resolved.require(&req.model, Capability::Completion, "chat")?;
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
    let ropts = resolved.render_options(&features);
    let prompt = resolved
        .fit_chat(lease.runner(), &req.messages, &ropts)
        .await?;
    if req.debug_render_only {
        return Ok(rendered(model, prompt));
    }
    let parser = resolved.output_parser(&features, &prompt);
    let request = resolved.completion_request(prompt, &opts, constraint, &features);
    let events = parse_events(lease.runner().complete(request).await?, parser);
    Ok(respond(events, req.stream.unwrap_or(true), move |d, last| {
        ChatResponse {
            model: model.clone(),
            created_at: now(),
            message: Message {
                thinking: d.thinking,
                tool_calls: d.tool_calls,
                ..assistant(d.text)
            },
            done: last.is_some(),
            done_reason: last.and_then(|c| c.done_reason.clone()),
            metrics: last.map(|c| metrics(c, load, started)).unwrap_or_default(),
        }
    })
    .await)
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
