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
    check_tools, ChatRequest, ChatResponse, ContextLimits, DebugInfo, EmbedInput, EmbedRequest,
    EmbedResponse, EmbeddingRequest, EmbeddingResponse, GenerateRequest, GenerateResponse, Logprob,
    Message, Metrics, ToolCall,
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
use crate::llm::options::Options;
use crate::llm::protocol::{CompletionChunk, Constraint};
use crate::llm::{Capability, Event, Events, LlmError, Prompt, ToolChoice};
use crate::sched::Lease;
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
        prompt_cache_count: Some(c.prompt_cache_count as u64),
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

/// An answer line that carries the log-probabilities of its tokens.
trait WithLogprobs {
    fn logprobs(&mut self) -> &mut Vec<Logprob>;
}

impl WithLogprobs for GenerateResponse {
    fn logprobs(&mut self) -> &mut Vec<Logprob> {
        &mut self.logprobs
    }
}

impl WithLogprobs for ChatResponse {
    fn logprobs(&mut self) -> &mut Vec<Logprob> {
        &mut self.logprobs
    }
}

/// `line` with `logprobs` on it.
fn with_logprobs<T: WithLogprobs>(mut line: T, logprobs: Vec<Logprob>) -> T {
    *line.logprobs() = logprobs;
    line
}

/// A request's `logprobs`/`top_logprobs`, checked: the top count to ask
/// the runner for.
fn logprobs_wanted(l: &llmpm_spec::api::Logprobs) -> Result<Option<u32>, ApiError> {
    l.requested().map_err(ApiError::BadRequest)
}

/// Answers a generation: NDJSON lines made by `line` (text, last chunk),
/// or one body with the whole text; each line carries the log-probabilities
/// of its tokens, the one body all of them.
async fn respond<T: Serialize + WithLogprobs + Send + 'static>(
    events: Events,
    stream: bool,
    line: impl Fn(Delta, Option<&CompletionChunk>) -> T + Send + 'static,
) -> Response {
    let ended = || ApiError::Internal("the generation ended without a result".into());
    if !stream {
        return match collect(events).await {
            Ok(Some(mut all)) => {
                let logprobs = std::mem::take(&mut all.last.logprobs);
                let delta = Delta {
                    text: all.text,
                    thinking: all.thinking,
                    tool_calls: all.tool_calls,
                };
                Json(with_logprobs(line(delta, Some(&all.last)), logprobs)).into_response()
            }
            Ok(None) => ended().into_response(),
            Err(e) => ApiError::from(e).into_response(),
        };
    }
    let mut pending = Vec::new();
    stream::respond_framed(
        events.map(|e| e.map_err(ApiError::from)),
        Framing::Ndjson,
        move |event, frames| match event {
            Event::Logprobs(l) => {
                pending.extend(l);
                false
            }
            Event::Text(t) => {
                let d = line(Delta::text(t), None);
                frames.push(&with_logprobs(d, std::mem::take(&mut pending)));
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
            Event::Done(mut c) => {
                pending.append(&mut c.logprobs);
                let last = line(Delta::text(c.content.clone()), Some(&c));
                frames.push(&with_logprobs(last, std::mem::take(&mut pending)));
                true
            }
        },
        |e| e.unwrap_or_else(ended).into_response(),
    )
    .await
}

/// `opts` with the request's `truncate` and `shift` (both on by default,
/// as in Ollama).
fn with_request_limits(mut opts: Options, limits: ContextLimits) -> Options {
    opts.truncate = limits.truncate.unwrap_or(true);
    opts.shift = limits.shift.unwrap_or(true);
    opts
}

/// What a generate request asks that this model or llmpm cannot give,
/// refused rather than dropped: images without vision, `context` beside
/// `raw` (as Ollama refuses it), and `suffix` without the `insert`
/// capability or beside `raw` or `system`, which the fill-in-the-middle
/// prompt has no room for.
fn refuse_unsupported(req: &GenerateRequest, model: &super::Model) -> Result<(), ApiError> {
    if !req.images.is_empty() {
        model.require(&req.model, Capability::Vision, "generate")?;
        return Err(ApiError::BadRequest(
            "`images`: llmpm's runner cannot read images yet".into(),
        ));
    }
    if req.raw && req.context.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(ApiError::BadRequest(
            "`context` cannot be combined with `raw`: raw prompts are sent as given".into(),
        ));
    }
    if !req.suffix.is_empty() {
        model.require(&req.model, Capability::Insert, "generate")?;
        for (set, field) in [(req.raw, "raw"), (req.system.is_some(), "system")] {
            if set {
                return Err(ApiError::BadRequest(format!(
                    "`suffix` cannot be combined with `{field}`: the fill-in-the-middle prompt is built from `prompt` and `suffix` alone"
                )));
            }
        }
    }
    Ok(())
}

/// The answer of `_debug_render_only`: the prompt, not a generation.
fn rendered(model: String, prompt: &Prompt, lease: &Lease, started: Instant) -> Response {
    Json(GenerateResponse {
        model,
        ..rendered_body(prompt, lease, started)
    })
    .into_response()
}

fn rendered_body(prompt: &Prompt, lease: &Lease, started: Instant) -> GenerateResponse {
    GenerateResponse {
        created_at: now(),
        done: true,
        metrics: Metrics {
            total_duration: Some(nanos(started)),
            load_duration: Some(lease.load_duration()),
            ..Metrics::default()
        },
        debug_info: Some(DebugInfo {
            rendered_template: prompt.text.clone(),
            image_count: 0,
        }),
        ..GenerateResponse::default()
    }
}

/// `POST /api/generate`.
pub async fn generate(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<GenerateRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let resolved = resolve(&state, &req.model).await?;
    let opts = with_request_limits(resolved.options(req.options.as_ref())?, req.limits);
    let keep = keep_alive(req.keep_alive.as_ref())?;
    let constraint = constraint(req.format.as_ref())?;
    let logprobs = logprobs_wanted(&req.logprobs)?;
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
            logprobs: Vec::new(),
            debug_info: None,
            done_reason: Some("unload".into()),
            ..GenerateResponse::default()
        })
        .into_response());
    }
    resolved.require(&req.model, Capability::Completion, "generate")?;
    refuse_unsupported(&req, &resolved)?;
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
            logprobs: Vec::new(),
            debug_info: None,
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
    } else if !req.suffix.is_empty() {
        resolved.fim_prompt(
            &req.model,
            &req.prompt,
            &req.suffix,
            req.template.as_deref(),
        )?
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
        return Ok(rendered(model, &prompt, &lease, started));
    }
    // Ollama's deprecated `context`: an earlier answer's tokens go before
    // this prompt, and the last line carries them on (not for `raw`).
    let prompt = Prompt {
        context: context_tokens(req.context.as_deref())?,
        return_context: !req.raw,
        ..prompt
    };
    let events = resolved
        .generate(
            lease.runner(),
            prompt,
            &opts,
            constraint,
            &features,
            logprobs,
        )
        .await?;
    Ok(respond(events, req.stream.unwrap_or(true), move |d, last| {
        GenerateResponse {
            model: model.clone(),
            created_at: now(),
            response: d.text,
            thinking: d.thinking,
            done: last.is_some(),
            logprobs: Vec::new(),
            debug_info: None,
            done_reason: last.and_then(|c| c.done_reason.clone()),
            metrics: last.map(|c| metrics(c, load, started)).unwrap_or_default(),
            context: last.map(|c| c.context.clone()).filter(|c| !c.is_empty()),
        }
    })
    .await)
}

/// `context` as token ids; a value no token id can be is a 400.
fn context_tokens(context: Option<&[i64]>) -> Result<Vec<u32>, ApiError> {
    context
        .unwrap_or_default()
        .iter()
        .map(|&t| {
            u32::try_from(t).map_err(|_| {
                ApiError::BadRequest(format!(
                    "`context` holds {t}, which is not a token id: send back the `context` of an earlier answer"
                ))
            })
        })
        .collect()
}

/// `POST /api/chat`.
pub async fn chat(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let resolved = resolve(&state, &req.model).await?;
    let opts = with_request_limits(resolved.options(req.options.as_ref())?, req.limits);
    let constraint = constraint(req.format.as_ref())?;
    let logprobs = logprobs_wanted(&req.logprobs)?;
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
            logprobs: Vec::new(),
            debug_info: None,
            done_reason: Some("unload".into()),
            metrics: Metrics::default(),
        })
        .into_response());
    }
    resolved.require(&req.model, Capability::Completion, "chat")?;
    // The tokenizer that fits the chat is built while the model loads.
    let (lease, _) = tokio::join!(
        state
            .sched
            .acquire(LoadRequest::new(&resolved, &opts, keep)),
        resolved.tokenizer()
    );
    let lease = lease?;
    let load = lease.load_duration();
    if req.messages.is_empty() {
        return Ok(Json(ChatResponse {
            model,
            created_at: now(),
            message: assistant(String::new()),
            done: true,
            logprobs: Vec::new(),
            debug_info: None,
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
        .fit_chat(lease.runner(), &req.messages, &ropts, opts.truncate)
        .await?;
    if req.debug_render_only {
        let GenerateResponse {
            created_at,
            metrics,
            debug_info,
            ..
        } = rendered_body(&prompt, &lease, started);
        return Ok(Json(ChatResponse {
            model,
            created_at,
            message: assistant(String::new()),
            done: true,
            done_reason: None,
            metrics,
            logprobs: Vec::new(),
            debug_info,
        })
        .into_response());
    }
    let events = resolved
        .generate(
            lease.runner(),
            prompt,
            &opts,
            constraint,
            &features,
            logprobs,
        )
        .await?;
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
            logprobs: Vec::new(),
            debug_info: None,
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
    super::rerank::refuse_reranker(&resolved, &req.model)?;
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
    let dimensions = match req.dimensions {
        None => None,
        Some(d) => Some(usize::try_from(d).ok().filter(|d| *d > 0).ok_or_else(|| {
            ApiError::BadRequest(format!("invalid `dimensions` {d}: must be at least 1"))
        })?),
    };
    Ok(Json(EmbedResponse {
        model: req.model,
        embeddings: e
            .embeddings
            .into_iter()
            .map(|v| crate::llm::shorten_embedding(v, dimensions))
            .collect(),
        total_duration: nanos(started),
        load_duration: lease.load_duration(),
        prompt_eval_count: e.prompt_eval_count as u64,
    }))
}

/// `POST /api/embeddings`: Ollama's legacy route, one text in, one vector
/// out; an empty `prompt` only loads the model and answers an empty vector.
pub async fn embeddings(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EmbeddingRequest>,
) -> Result<Json<EmbeddingResponse>, ApiError> {
    let resolved = resolve(&state, &req.model).await?;
    super::rerank::refuse_reranker(&resolved, &req.model)?;
    let opts = resolved.options(req.options.as_ref())?;
    let keep = keep_alive(req.keep_alive.as_ref())?;
    let lease = state
        .sched
        .acquire(LoadRequest::new(&resolved, &opts, keep))
        .await?;
    if req.prompt.is_empty() {
        return Ok(Json(EmbeddingResponse::default()));
    }
    let mut e = lease.runner().embed(vec![req.prompt], true).await?;
    Ok(Json(EmbeddingResponse {
        embedding: e.embeddings.pop().unwrap_or_default(),
    }))
}
