//! `POST /v1/messages` and `/v1/messages/count_tokens`: Anthropic's
//! Messages API as Ollama serves it. `system`, `messages` of text,
//! `tool_use`, `tool_result` and `thinking` blocks, `tools`, `tool_choice`,
//! `thinking`, `max_tokens` (required, as Anthropic requires it),
//! `stop_sequences` and sampling become a chat; the answer is a `message`
//! with `thinking`, `text` and `tool_use` blocks, or Anthropic's event
//! stream (`message_start`, `content_block_*`, `message_delta`,
//! `message_stop`). Errors are Anthropic's `{"type": "error", "error":
//! {"type", "message"}}`, so its SDKs raise the right exceptions.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use llmpm_spec::api::{check_tools, Message, Think, Tool, ToolCall, ToolCallFunction};
use serde_json::{json, Map, Value};

use super::error::{ApiError, Classify};
use super::extract::{field, list_of, model_name, numbers_into};
use super::openai::{chat_events, chat_prompt_tokens, ChatAsk};
use super::stream::{self, Frames, Framing};
use super::AppState;
use crate::llm::handle::collect;
use crate::llm::{Event, ToolChoice};

/// An [`ApiError`] in Anthropic's shape.
#[derive(Debug)]
pub struct AnthropicError(ApiError);

impl From<ApiError> for AnthropicError {
    fn from(e: ApiError) -> Self {
        AnthropicError(e)
    }
}

impl<E: Classify> From<E> for AnthropicError {
    fn from(e: E) -> Self {
        AnthropicError(e.into())
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let kind = match status {
            StatusCode::BAD_REQUEST => "invalid_request_error",
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::SERVICE_UNAVAILABLE => "overloaded_error",
            _ => "api_error",
        };
        let mut resp = (
            status,
            Json(json!({"type": "error", "error": {"type": kind, "message": self.0.to_string()}})),
        )
            .into_response();
        if let Some(v) = self.0.into_response().headers().get(header::RETRY_AFTER) {
            resp.headers_mut().insert(header::RETRY_AFTER, v.clone());
        }
        resp
    }
}

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// The text of `system` or a `tool_result`'s `content`: a string or text blocks.
fn text_of(v: &Value, at: &str) -> Result<String, ApiError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| match b.get("type").and_then(Value::as_str) {
                Some("text") => Ok(b.get("text").and_then(Value::as_str).unwrap_or_default()),
                t => Err(bad(format!(
                    "`{at}[{i}]` is a {} block, which llmpm cannot read here: send text blocks",
                    t.unwrap_or("typeless")
                ))),
            })
            .collect(),
        other => Err(bad(format!(
            "invalid `{at}` {other}: send a string or text blocks"
        ))),
    }
}

/// `system` and `messages` as Ollama's messages, as Ollama converts them:
/// a user turn's `tool_result` blocks become `tool` messages before its
/// text, an assistant turn's `tool_use` blocks its calls. A `tool_result`
/// must answer a `tool_use` of an earlier turn.
pub(crate) fn messages(body: &Value) -> Result<Vec<Message>, ApiError> {
    let mut out = Vec::new();
    if let Some(system) = field(body, "system") {
        let text = text_of(system, "system")?;
        if !text.is_empty() {
            out.push(Message::new("system", text));
        }
    }
    let list = match field(body, "messages") {
        Some(Value::Array(l)) if !l.is_empty() => l,
        Some(Value::Array(_)) => return Err(bad("`messages` must not be empty".into())),
        Some(_) => return Err(bad("`messages` must be a list".into())),
        None => return Err(bad("missing `messages`".into())),
    };
    for (i, m) in list.iter().enumerate() {
        let role = match m.get("role").and_then(Value::as_str) {
            Some(r @ ("user" | "assistant")) => r,
            other => {
                return Err(bad(format!(
                    "invalid `messages[{i}].role` {}: use user or assistant (the system prompt goes in `system`)",
                    other.map_or_else(|| "(none)".to_owned(), |r| format!("{r:?}"))
                )))
            }
        };
        let blocks = match m.get("content") {
            Some(Value::String(s)) => {
                out.push(Message::new(role, s.clone()));
                continue;
            }
            Some(Value::Array(b)) => b,
            _ => {
                return Err(bad(format!(
                    "invalid `messages[{i}].content`: send a string or content blocks"
                )))
            }
        };
        let mut msg = Message::new(role, String::new());
        let mut results = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let at = format!("messages[{i}].content[{j}]");
            let s = |k: &str| {
                b.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            match b.get("type").and_then(Value::as_str).unwrap_or_default() {
                "text" => msg.content.push_str(&s("text")),
                "thinking" => msg.thinking = s("thinking"),
                // Its content is encrypted by Anthropic; nothing a local model can read.
                "redacted_thinking" => {}
                "tool_use" if role == "assistant" => {
                    let (id, name) = (s("id"), s("name"));
                    if id.is_empty() || name.is_empty() {
                        return Err(bad(format!("`{at}` (tool_use) needs `id` and `name`")));
                    }
                    let arguments = match b.get("input") {
                        None | Some(Value::Null) => Map::new(),
                        Some(Value::Object(o)) => o.clone(),
                        Some(_) => return Err(bad(format!("`{at}.input` must be an object"))),
                    };
                    let index = msg.tool_calls.len();
                    msg.tool_calls.push(ToolCall {
                        id,
                        function: ToolCallFunction { index, name, arguments },
                    });
                }
                "tool_result" if role == "user" => {
                    let id = s("tool_use_id");
                    let name = out
                        .iter()
                        .rev()
                        .flat_map(|m: &Message| &m.tool_calls)
                        .find(|c| !id.is_empty() && c.id == id)
                        .map(|c| c.function.name.clone())
                        .ok_or_else(|| {
                            bad(format!(
                                "`{at}.tool_use_id` {id:?} answers no `tool_use` block of an earlier \
                                 assistant message: send the assistant turn with the call first"
                            ))
                        })?;
                    let content = text_of(b.get("content").unwrap_or(&Value::Null), &format!("{at}.content"))?;
                    results.push(Message {
                        tool_name: name,
                        tool_call_id: id,
                        ..Message::new("tool", content)
                    });
                }
                other => {
                    return Err(bad(format!(
                        "`{at}` is a {other:?} block, which llmpm cannot read in a {role} message: \
                         it reads text, thinking, tool_use (assistant) and tool_result (user) blocks"
                    )))
                }
            }
        }
        out.extend(results);
        if !msg.content.is_empty() || !msg.tool_calls.is_empty() || !msg.thinking.is_empty() {
            out.push(msg);
        }
    }
    Ok(out)
}

/// `tools`: custom tools (`name`, `description`, `input_schema`).
fn tools(body: &Value) -> Result<Vec<Tool>, ApiError> {
    list_of(body, "tools", |i, t| {
        match t.get("type").and_then(Value::as_str) {
            None | Some("custom") => {
                let s = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or_default();
                let schema = t.get("input_schema").cloned().unwrap_or(Value::Null);
                Ok(Tool::function(s("name"), s("description"), schema))
            }
            Some(other) => Err(bad(format!(
                "`tools[{i}]` is Anthropic's server tool {other:?}, which llmpm does not run: \
             declare a custom tool with `input_schema`"
            ))),
        }
    })
}

/// `tool_choice`: `{"type": "auto" | "any" | "none" | "tool", "name"}`.
fn tool_choice(body: &Value) -> Result<ToolChoice, ApiError> {
    let Some(c) = field(body, "tool_choice") else {
        return Ok(ToolChoice::Auto);
    };
    match (
        c.get("type").and_then(Value::as_str),
        c.get("name").and_then(Value::as_str),
    ) {
        (Some("auto"), _) => Ok(ToolChoice::Auto),
        (Some("any"), _) => Ok(ToolChoice::Required),
        (Some("none"), _) => Ok(ToolChoice::None),
        (Some("tool"), Some(n)) => Ok(ToolChoice::Function(n.to_owned())),
        _ => Err(bad(format!(
            "invalid `tool_choice` {c}: use {{\"type\": \"auto\"}}, \"any\", \"none\" or \
             {{\"type\": \"tool\", \"name\": …}}"
        ))),
    }
}

/// `thinking`: `{"type": "enabled", "budget_tokens": n}` or `{"type": "disabled"}`.
fn think(body: &Value) -> Result<Option<Think>, ApiError> {
    let Some(t) = field(body, "thinking") else {
        return Ok(None);
    };
    match t.get("type").and_then(Value::as_str) {
        Some("enabled" | "adaptive") => Ok(Some(Think::Bool(true))),
        Some("disabled") => Ok(Some(Think::Bool(false))),
        _ => Err(bad(format!(
            "invalid `thinking` {t}: use {{\"type\": \"enabled\", \"budget_tokens\": n}} or {{\"type\": \"disabled\"}}"
        ))),
    }
}

/// Sampling as Ollama `options`; `max_tokens` is required.
fn options(body: &Value) -> Result<Value, ApiError> {
    let max =
        match field(body, "max_tokens") {
            Some(v) => v.as_i64().filter(|n| *n >= 1).ok_or_else(|| {
                bad(format!(
                    "invalid `max_tokens` {v}: must be an integer of at least 1"
                ))
            })?,
            None => return Err(bad(
                "missing `max_tokens`: the Messages API requires it (the most tokens to generate)"
                    .into(),
            )),
        };
    let mut m = Map::new();
    m.insert("num_predict".into(), json!(max));
    let sampling = [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),
    ];
    numbers_into(body, &mut m, &sampling)?;
    if let Some(v) = field(body, "stop_sequences") {
        if !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
            return Err(bad("`stop_sequences` must be a list of strings".into()));
        }
        m.insert("stop".into(), v.clone());
    }
    Ok(Value::Object(m))
}

fn parse(body: &[u8]) -> Result<(Value, String), ApiError> {
    let body: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON request body: {e}")))?;
    let model = model_name(&body)?;
    Ok((body, model))
}

fn ask(body: &Value, model: String, options: Value) -> Result<ChatAsk, ApiError> {
    let tools = tools(body)?;
    check_tools(&tools).map_err(ApiError::BadRequest)?;
    Ok(ChatAsk {
        model,
        messages: messages(body)?,
        tools,
        think: think(body)?,
        choice: tool_choice(body)?,
        options,
        constraint: None,
        logprobs: None,
    })
}

/// Anthropic's `stop_reason`.
fn stop_reason(reason: Option<&str>, called: bool) -> &'static str {
    match reason {
        _ if called => "tool_use",
        Some("length") => "max_tokens",
        _ => "end_turn",
    }
}

fn msg_id() -> String {
    format!("msg_{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..))
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens as the model counts them.
pub async fn count_tokens(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AnthropicError> {
    let (body, model) = parse(&body)?;
    let n = chat_prompt_tokens(&state, ask(&body, model, json!({}))?).await?;
    Ok(Json(json!({"input_tokens": n})))
}

/// `POST /v1/messages`.
pub async fn messages_route(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, AnthropicError> {
    let (body, model) = parse(&body)?;
    let options = options(&body)?;
    let ask = ask(&body, model.clone(), options)?;
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let events = chat_events(&state, ask).await?;
    let id = msg_id();
    let ended = || ApiError::Internal("the generation ended without a result".into());
    if !stream {
        let all = match collect(events).await {
            Ok(Some(all)) => all,
            Ok(None) => return Err(ended().into()),
            Err(e) => return Err(e.into()),
        };
        let mut content = Vec::new();
        if !all.thinking.is_empty() {
            content.push(json!({"type": "thinking", "thinking": all.thinking, "signature": ""}));
        }
        if !all.text.is_empty() {
            content.push(json!({"type": "text", "text": all.text}));
        }
        for c in &all.tool_calls {
            content.push(tool_use(c));
        }
        let reason = stop_reason(all.last.done_reason.as_deref(), !all.tool_calls.is_empty());
        return Ok(Json(json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": reason, "stop_sequence": null,
            "usage": {"input_tokens": all.last.prompt_eval_count, "output_tokens": all.last.eval_count},
        }))
        .into_response());
    }
    let mut s = Streamer {
        id,
        model,
        started: false,
        open: None,
        index: 0,
        called: false,
    };
    Ok(stream::respond_framed(
        events.map(|e| e.map_err(ApiError::from)),
        Framing::Events,
        move |event, frames| s.on(event, frames),
        |e| AnthropicError(e.unwrap_or_else(ended)).into_response(),
    )
    .await)
}

fn tool_use(c: &ToolCall) -> Value {
    json!({"type": "tool_use", "id": c.id, "name": c.function.name,
           "input": Value::Object(c.function.arguments.clone())})
}

/// Which content block is open in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Thinking,
    Text,
}

struct Streamer {
    id: String,
    model: String,
    started: bool,
    open: Option<Open>,
    /// The index of the open block, or of the next one.
    index: usize,
    called: bool,
}

impl Streamer {
    fn emit(frames: &mut Frames, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        frames.event(kind, &data);
    }

    fn close(&mut self, frames: &mut Frames) {
        if self.open.take().is_some() {
            Self::emit(frames, "content_block_stop", json!({"index": self.index}));
            self.index += 1;
        }
    }

    /// Opens a block of `kind` unless one is open; then writes `delta` to it.
    fn delta(&mut self, frames: &mut Frames, kind: Open, delta: Value) {
        if self.open != Some(kind) {
            self.close(frames);
            let block = match kind {
                Open::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
                Open::Text => json!({"type": "text", "text": ""}),
            };
            Self::emit(
                frames,
                "content_block_start",
                json!({"index": self.index, "content_block": block}),
            );
            self.open = Some(kind);
        }
        Self::emit(
            frames,
            "content_block_delta",
            json!({"index": self.index, "delta": delta}),
        );
    }

    fn on(&mut self, event: Event, frames: &mut Frames) -> bool {
        if !self.started {
            self.started = true;
            let message = json!({"id": self.id, "type": "message", "role": "assistant",
                "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}});
            Self::emit(frames, "message_start", json!({"message": message}));
        }
        match event {
            Event::Logprobs(_) => {}
            Event::Thinking(t) => {
                self.delta(
                    frames,
                    Open::Thinking,
                    json!({"type": "thinking_delta", "thinking": t}),
                );
            }
            Event::Text(t) if t.is_empty() => {}
            Event::Text(t) => {
                self.delta(frames, Open::Text, json!({"type": "text_delta", "text": t}))
            }
            Event::ToolCall(c) => {
                self.close(frames);
                self.called = true;
                let mut block = tool_use(&c);
                block["input"] = json!({});
                Self::emit(
                    frames,
                    "content_block_start",
                    json!({"index": self.index, "content_block": block}),
                );
                let partial = Value::Object(c.function.arguments.clone()).to_string();
                Self::emit(
                    frames,
                    "content_block_delta",
                    json!({"index": self.index,
                    "delta": {"type": "input_json_delta", "partial_json": partial}}),
                );
                Self::emit(frames, "content_block_stop", json!({"index": self.index}));
                self.index += 1;
            }
            Event::Done(c) => {
                if !c.content.is_empty() {
                    let t = c.content.clone();
                    self.delta(frames, Open::Text, json!({"type": "text_delta", "text": t}));
                }
                self.close(frames);
                let reason = stop_reason(c.done_reason.as_deref(), self.called);
                Self::emit(
                    frames,
                    "message_delta",
                    json!({
                    "delta": {"stop_reason": reason, "stop_sequence": null},
                    "usage": {"input_tokens": c.prompt_eval_count, "output_tokens": c.eval_count}}),
                );
                Self::emit(frames, "message_stop", json!({}));
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn blocks_become_messages() {
        let body = json!({"system": [{"type": "text", "text": "sys"}], "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "x"},
                {"type": "text", "text": "let me look"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "thanks"}]},
        ]});
        let m = messages(&body).unwrap();
        let roles: Vec<&str> = m.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
        assert_eq!(m[2].thinking, "hmm");
        assert_eq!(m[2].tool_calls[0].function.arguments["city"], "Paris");
        assert_eq!(
            (m[3].tool_name.as_str(), m[3].content.as_str()),
            ("get_weather", "sunny")
        );
    }

    #[tokio::test]
    async fn thinking_text_and_a_call_stream_as_content_blocks() {
        use crate::api::openai::responses_tests::{parse_events, sample_events};
        let mut s = Streamer {
            id: "msg_1".into(),
            model: "m".into(),
            started: false,
            open: None,
            index: 0,
            called: false,
        };
        let body = crate::api::stream::events_body(sample_events(), move |e, f| s.on(e, f)).await;
        let evs = parse_events(&body);
        let seq: Vec<String> = evs
            .iter()
            .map(|(n, d)| match d["delta"]["type"].as_str() {
                Some(t) => format!("{n}:{t}"),
                None => n.clone(),
            })
            .collect();
        assert_eq!(
            seq,
            [
                "message_start",
                "content_block_start",
                "content_block_delta:thinking_delta",
                "content_block_delta:thinking_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta:text_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta:input_json_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let blocks: Vec<(u64, &str)> = evs
            .iter()
            .filter(|(n, _)| n == "content_block_start")
            .map(|(_, d)| {
                let kind = d["content_block"]["type"].as_str().unwrap();
                (d["index"].as_u64().unwrap(), kind)
            })
            .collect();
        assert_eq!(blocks, [(0, "thinking"), (1, "text"), (2, "tool_use")]);
        assert_eq!(evs[11].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(evs[11].1["usage"]["output_tokens"], 5);
    }

    #[test]
    fn bad_requests_name_the_field() {
        let unknown = json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]}]});
        let e = messages(&unknown).unwrap_err().to_string();
        assert!(
            e.contains("`messages[0].content[0].tool_use_id` \"toolu_9\""),
            "{e}"
        );
        let e = options(&json!({"model": "m"})).unwrap_err().to_string();
        assert!(e.contains("missing `max_tokens`"), "{e}");
        assert!(options(&json!({"max_tokens": 0})).is_err());
        let e = tools(&json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}));
        assert!(e.unwrap_err().to_string().contains("`tools[0]`"));
        assert_eq!(
            tool_choice(&json!({"tool_choice": {"type": "any"}})).unwrap(),
            ToolChoice::Required
        );
        assert!(think(&json!({"thinking": {"type": "sometimes"}})).is_err());
        let e = messages(&json!({"messages": [{"role": "system", "content": "x"}]}));
        assert!(e.unwrap_err().to_string().contains("`messages[0].role`"));
    }
}
