//! `/api/generate`, `/api/chat` and `/api/embed`: resolve the model and its
//! options, render the prompt, and relay the model runner's answer as
//! Ollama's NDJSON lines (or one JSON body with `"stream": false`).
//!
//! Errors before the first line are HTTP statuses; after it, an `{"error"}`
//! line (see `stream.rs`). A client that disconnects drops the stream, which
//! closes the runner connection, which stops the generation.

use std::path::PathBuf;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use llmpm_spec::api::{
    ChatRequest, ChatResponse, EmbedInput, EmbedRequest, EmbedResponse, ErrorResponse,
    GenerateRequest, GenerateResponse, Message, Metrics, ModelDetails,
};
use llmpm_spec::params::Parameters;
use llmpm_spec::LayerKind;
use serde::Serialize;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::extract::ApiJson;
use super::models::parse_name;
use super::AppState;
use crate::runner::client::{self, ClientError};
use crate::runner::options::{self, Options};
use crate::runner::protocol::{CompletionChunk, CompletionRequest, Embeddings, RunnerRequest};
use crate::sched::{KeepAlive, Lease, LoadRequest, ModelShape, RunnerSettings};
use crate::template::{ChatMessage, ChatTemplate, GoTemplate, SelectedTemplate};

/// What a request needs to know about its model.
pub(super) struct ModelInfo {
    pub(super) blob: PathBuf,
    /// The short name, the manifest digest (hex) and the details, for `ps`.
    name: String,
    digest: String,
    details: ModelDetails,
    /// For the scheduler's memory estimate.
    shape: ModelShape,
    pub(super) params: Parameters,
    pub(super) system: Option<String>,
    /// The chat template (TEMPLATE layer, recognised built-in, or the GGUF's Jinja).
    pub(super) template: SelectedTemplate,
    /// BOS/EOS texts for Jinja templates.
    bos: String,
    eos: String,
}

impl ModelInfo {
    /// The prompt for `messages` (the model's SYSTEM first unless they
    /// bring their own) and whether the runner should still add BOS (a
    /// Jinja template writes it itself).
    pub(super) fn render(
        &self,
        template: Option<&ChatTemplate>,
        system: Option<&str>,
        messages: &[Message],
    ) -> Result<(String, bool), ApiError> {
        let msgs: Vec<ChatMessage> = messages
            .iter()
            .map(|m| ChatMessage::new(m.role.clone(), m.content.clone()))
            .collect();
        let t = template.unwrap_or(&self.template.template);
        let text = t
            .render_chat(system, &msgs, None, &self.bos, &self.eos)
            .map_err(|e| {
                ApiError::BadRequest(format!("cannot render the model's template: {e}"))
            })?;
        Ok((text, !matches!(t, ChatTemplate::Jinja(_))))
    }

    /// Like [`render`](Self::render), but drops the oldest messages (never a
    /// system message, never the last one) until the prompt fits `num_ctx`,
    /// as Ollama does; the runner of `lease` counts the tokens.
    pub(super) async fn render_fitting(
        &self,
        lease: &Lease,
        system: Option<&str>,
        messages: &[Message],
    ) -> Result<(String, bool), ApiError> {
        let mut kept = messages.to_vec();
        let (mut text, mut add_bos) = self.render(None, system, &kept)?;
        if kept.len() < 2 {
            return Ok((text, add_bos));
        }
        let limit = lease.num_ctx().saturating_sub(1);
        loop {
            let mut answer = client::call(
                lease.socket(),
                &RunnerRequest::Tokenize {
                    content: text.clone(),
                    add_bos,
                },
            )
            .await?;
            let count = match answer.next::<crate::runner::protocol::Tokens>().await? {
                Some(t) => t.tokens.len(),
                None => return Err(ClientError::Died("it closed the connection".into()).into()),
            };
            let droppable = kept[..kept.len() - 1]
                .iter()
                .position(|m| m.role != "system");
            match droppable {
                Some(i) if count > limit => {
                    kept.remove(i);
                    (text, add_bos) = self.render(None, system, &kept)?;
                }
                _ => return Ok((text, add_bos)),
            }
        }
    }

    /// What the scheduler needs to give this request a runner.
    pub(super) fn load_request(
        &self,
        opts: &Options,
        keep_alive: Option<KeepAlive>,
    ) -> LoadRequest {
        LoadRequest {
            model: self.blob.clone(),
            name: self.name.clone(),
            digest: self.digest.clone(),
            details: self.details.clone(),
            shape: self.shape,
            num_ctx: opts.num_ctx,
            settings: RunnerSettings {
                num_batch: opts.num_batch,
                num_thread: opts.num_thread,
            },
            keep_alive,
        }
    }

    /// The options, with the template's stop strings when the model sets none.
    pub(super) fn options(&self, request: Option<&serde_json::Value>) -> Result<Options, ApiError> {
        let mut opts = options::from_request(&self.params, request)?;
        if opts.stop.is_empty() {
            opts.stop = self.template.stops.clone();
        }
        Ok(opts)
    }
}

fn now() -> String {
    crate::describe::rfc3339(std::time::SystemTime::now())
}

pub(super) fn nanos(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        ApiError::internal(&e)
    }
}

impl From<options::OptionsError> for ApiError {
    fn from(e: options::OptionsError) -> ApiError {
        ApiError::BadRequest(e.to_string())
    }
}

pub(super) async fn model_info(state: &AppState, name: &str) -> Result<ModelInfo, ApiError> {
    let reference = parse_name(name)?;
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let entry = store.get(&reference)?;
        let layer = entry
            .manifest
            .layers_of(LayerKind::Model)
            .next()
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`{}` has no model weights (a model layer)",
                    reference.display_short()
                ))
            })?;
        // The runner cannot apply a LoRA yet: answering as the base model
        // would pass off one model's output as another's.
        if entry
            .manifest
            .layers_of(LayerKind::Adapter)
            .next()
            .is_some()
        {
            return Err(ApiError::BadRequest(format!(
                "`{}` has an ADAPTER (LoRA) layer, and applying adapters is not supported yet; \
                 create the model without ADAPTER, or from weights with the adapter merged in",
                reference.display_short()
            )));
        }
        let blob = store.blob_path(&layer.digest);
        let params = crate::describe::parameters(&store, &entry.manifest)?;
        let system =
            crate::describe::text_layers(&store, &entry.manifest, LayerKind::System)?.pop();
        let layer =
            crate::describe::text_layers(&store, &entry.manifest, LayerKind::Template)?.pop();
        let gguf = llmpm_gguf::GgufFile::open(&blob).ok();
        let shape = gguf.as_ref().map(ModelShape::from_gguf).unwrap_or_default();
        let details = crate::describe::details(&store, &entry.manifest);
        let meta = |k: &str| gguf.as_ref().and_then(|f| f.get_str(k)).map(str::to_string);
        let token = |k: &str| {
            gguf.as_ref().and_then(|f| {
                let id = usize::try_from(f.get_u64(k)?).ok()?;
                f.get("tokenizer.ggml.tokens")?
                    .as_array()?
                    .as_strings()?
                    .get(id)
                    .cloned()
            })
        };
        let jinja = meta("tokenizer.chat_template");
        let arch = meta("general.architecture").unwrap_or_default();
        let template = ChatTemplate::select(layer.as_deref(), jinja.as_deref(), &arch)
            .map_err(|e| ApiError::BadRequest(format!("the model's template is invalid: {e}")))?;
        Ok(ModelInfo {
            blob,
            name: entry.reference.display_short(),
            digest: entry.digest.hex().to_owned(),
            details,
            shape,
            params,
            system,
            template,
            bos: token("tokenizer.ggml.bos_token_id").unwrap_or_default(),
            eos: token("tokenizer.ggml.eos_token_id").unwrap_or_default(),
        })
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
}

/// A request's `keep_alive`, checked (`None`: the configured default).
pub(super) fn keep_alive(v: Option<&serde_json::Value>) -> Result<Option<KeepAlive>, ApiError> {
    match v {
        None => Ok(None),
        Some(v) => KeepAlive::from_json(v).map_err(|e| ApiError::BadRequest(e.to_string())),
    }
}

/// Whether a request's `format` asks for JSON: `"json"`, or a JSON schema
/// (an object), which llmpm answers with a valid JSON object without yet
/// holding it to the schema; absent or `""` is free text.
pub(super) fn wants_json(format: Option<&serde_json::Value>) -> Result<bool, ApiError> {
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

/// A generation's events, as the runner reports them.
pub(super) enum Event {
    /// Text since the last event.
    Text(String),
    /// The last chunk, with the counts and timings.
    Done(CompletionChunk),
}

/// Starts a completion on the runner of `lease`; the receiver yields text
/// pieces then the last chunk. The lease is held until the generation ends
/// or the client goes away, so the runner is not unloaded under it.
pub(super) async fn start(
    lease: Lease,
    opts: &Options,
    prompt: String,
    add_bos: bool,
    json: bool,
) -> Result<mpsc::Receiver<Result<Event, ApiError>>, ApiError> {
    let req = RunnerRequest::Completion(CompletionRequest {
        prompt,
        add_bos,
        num_predict: opts.num_predict,
        num_keep: opts.num_keep,
        stop: opts.stop.clone(),
        sampler: opts.sampler.clone(),
        json,
    });
    let mut answer = client::call(lease.socket(), &req).await?;
    let (tx, rx) = mpsc::channel(32);
    tokio::spawn(async move {
        loop {
            let item = match answer.next::<CompletionChunk>().await {
                Ok(Some(c)) if c.done => {
                    let _ = tx.send(Ok(Event::Done(c))).await;
                    return;
                }
                Ok(Some(c)) => Ok(Event::Text(c.content)),
                Ok(None) => {
                    let why = lease
                        .exit_status()
                        .await
                        .unwrap_or_else(|| "it closed the connection".into());
                    Err(ApiError::from(ClientError::Died(why)))
                }
                Err(e) => Err(ApiError::from(e)),
            };
            let end = item.is_err();
            // The client went away: dropping `answer` cancels the runner's work.
            if tx.send(item).await.is_err() || end {
                return;
            }
        }
    });
    Ok(rx)
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

/// Streams `rx` as NDJSON lines made by `line` (text, last chunk), or
/// answers once with the whole text.
async fn respond<T: Serialize + Send + 'static>(
    mut rx: mpsc::Receiver<Result<Event, ApiError>>,
    stream: bool,
    line: impl Fn(String, Option<&CompletionChunk>) -> T + Send + 'static,
) -> Response {
    if !stream {
        let mut text = String::new();
        while let Some(item) = rx.recv().await {
            match item {
                Ok(Event::Text(t)) => text.push_str(&t),
                Ok(Event::Done(c)) => {
                    text.push_str(&c.content);
                    return Json(line(text, Some(&c))).into_response();
                }
                Err(e) => return e.into_response(),
            }
        }
        return ApiError::Internal("the generation ended without a result".into()).into_response();
    }
    // Hold the first item back so an immediate error still gets a real status.
    let first = match rx.recv().await {
        Some(Err(e)) => return e.into_response(),
        Some(Ok(ev)) => ev,
        None => {
            return ApiError::Internal("the generation ended without a result".into())
                .into_response()
        }
    };
    let lines = futures_util::stream::unfold(
        (Some(first), rx, false, line),
        |(pending, mut rx, done, line)| async move {
            if done {
                return None;
            }
            let item = match pending {
                Some(ev) => Ok(ev),
                None => rx.recv().await?,
            };
            let (mut bytes, end) = match item {
                Ok(Event::Text(t)) => (
                    serde_json::to_vec(&line(t, None)).unwrap_or_default(),
                    false,
                ),
                Ok(Event::Done(c)) => (
                    serde_json::to_vec(&line(c.content.clone(), Some(&c))).unwrap_or_default(),
                    true,
                ),
                Err(e) => (
                    serde_json::to_vec(&ErrorResponse {
                        error: e.to_string(),
                    })
                    .unwrap_or_default(),
                    true,
                ),
            };
            bytes.push(b'\n');
            Some((
                Ok::<_, std::convert::Infallible>(bytes),
                (None, rx, end, line),
            ))
        },
    );
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

/// `POST /api/generate`.
pub async fn generate(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<GenerateRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let info = model_info(&state, &req.model).await?;
    let opts = info.options(req.options.as_ref())?;
    let keep = keep_alive(req.keep_alive.as_ref())?;
    let json = wants_json(req.format.as_ref())?;
    let model = req.model.clone();
    if req.prompt.is_empty() && keep.is_some_and(KeepAlive::is_zero) {
        // `keep_alive: 0` with no prompt unloads, as in Ollama (`ollama
        // stop`); a runner that is serving goes when its requests end.
        state.sched.unload(&info.blob).await;
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
    let lease = state.sched.acquire(info.load_request(&opts, keep)).await?;
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
    let (prompt, add_bos) = if req.raw {
        (req.prompt.clone(), true)
    } else {
        let own = match &req.template {
            Some(t) => Some(ChatTemplate::Go(GoTemplate::parse(t).map_err(|e| {
                ApiError::BadRequest(format!("invalid `template`: {e}"))
            })?)),
            None => None,
        };
        let system = req.system.clone().or_else(|| info.system.clone());
        let messages = [Message {
            role: "user".into(),
            content: req.prompt.clone(),
        }];
        info.render(own.as_ref(), system.as_deref(), &messages)?
    };
    let rx = start(lease, &opts, prompt, add_bos, json).await?;
    Ok(respond(rx, req.stream.unwrap_or(true), move |text, last| {
        GenerateResponse {
            model: model.clone(),
            created_at: now(),
            response: text,
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
    let info = model_info(&state, &req.model).await?;
    let opts = info.options(req.options.as_ref())?;
    let json = wants_json(req.format.as_ref())?;
    let model = req.model.clone();
    let assistant = |content: String| Message {
        role: "assistant".into(),
        content,
    };
    let keep = keep_alive(req.keep_alive.as_ref())?;
    if req.messages.is_empty() && keep.is_some_and(KeepAlive::is_zero) {
        state.sched.unload(&info.blob).await;
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
    let lease = state.sched.acquire(info.load_request(&opts, keep)).await?;
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
    let (prompt, add_bos) = info
        .render_fitting(&lease, info.system.as_deref(), &req.messages)
        .await?;
    let rx = start(lease, &opts, prompt, add_bos, json).await?;
    Ok(respond(rx, req.stream.unwrap_or(true), move |text, last| {
        ChatResponse {
            model: model.clone(),
            created_at: now(),
            message: assistant(text),
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
    let info = model_info(&state, &req.model).await?;
    let opts = info.options(req.options.as_ref())?;
    let input = match req.input {
        EmbedInput::One(s) => vec![s],
        EmbedInput::Many(v) => v,
    };
    if input.iter().any(String::is_empty) {
        return Err(ApiError::BadRequest("`input` has an empty text".into()));
    }
    let keep = keep_alive(req.keep_alive.as_ref())?;
    let lease = state.sched.acquire(info.load_request(&opts, keep)).await?;
    let mut answer = client::call(
        lease.socket(),
        &RunnerRequest::Embed {
            input,
            truncate: req.truncate.unwrap_or(true),
        },
    )
    .await?;
    let e: Embeddings = match answer.next().await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return Err(ClientError::Died(
                lease
                    .exit_status()
                    .await
                    .unwrap_or_else(|| "it closed the connection".into()),
            )
            .into())
        }
        Err(ClientError::Runner(msg)) => return Err(ApiError::BadRequest(msg)),
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
