//! `POST /v1/responses`: OpenAI's Responses API, the stateless subset
//! Ollama serves. The request (`input` as a string or items, `instructions`,
//! function `tools`, `tool_choice`, `reasoning.effort`, `text.format`,
//! `max_output_tokens`, `temperature`, `top_p`) becomes a chat; the answer
//! is a `response` object whose `output` holds `reasoning`, `function_call`
//! and `message` items, or the Responses event stream (`response.created`
//! … `response.completed`). Nothing is stored, so `previous_response_id`
//! and `conversation` are refused.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use llmpm_spec::api::{check_tools, Message, Tool, ToolCall, ToolCallFunction};
use serde_json::{json, Map, Value};

use super::{chat_events, id, unix_now, ChatAsk, OpenAiError};
use crate::api::error::ApiError;
use crate::api::extract::{field, list_of, model_name, numbers_into};
use crate::api::openai_tools;
use crate::api::stream::{self, Frames, Framing};
use crate::api::AppState;
use crate::llm::grammar;
use crate::llm::handle::collect;
use crate::llm::protocol::{CompletionChunk, Constraint};
use crate::llm::{Event, ToolChoice};

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// The text of a `content` (or `output`): a string, or parts whose text is read.
fn text_of(v: &Value, at: &str) -> Result<String, ApiError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for (i, p) in parts.iter().enumerate() {
                match p.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text" | "text" | "summary_text") => {
                        out.push_str(p.get("text").and_then(Value::as_str).unwrap_or_default());
                    }
                    Some(t) => {
                        return Err(bad(format!(
                            "`{at}[{i}]` is a {t:?} part, which llmpm cannot read: send input_text"
                        )))
                    }
                    None => return Err(bad(format!("`{at}[{i}]` has no `type`"))),
                }
            }
            Ok(out)
        }
        other => Err(bad(format!(
            "invalid `{at}` {other}: send a string or text parts"
        ))),
    }
}

/// `instructions` and `input` as Ollama's messages, as Ollama converts them:
/// `developer` is `system`, a `function_call` joins the assistant message
/// before it, a `reasoning` item's text goes to the next assistant message.
pub(crate) fn messages(body: &Value) -> Result<Vec<Message>, ApiError> {
    let mut out: Vec<Message> = Vec::new();
    if let Some(i) = field(body, "instructions") {
        let text = i
            .as_str()
            .ok_or_else(|| bad("`instructions` must be a string".into()))?;
        if !text.is_empty() {
            out.push(Message::new("system", text.to_owned()));
        }
    }
    let items = match field(body, "input") {
        Some(Value::String(s)) => {
            out.push(Message::new("user", s.clone()));
            return Ok(out);
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(bad(format!(
                "invalid `input` {other}: send a string or a list of items"
            )))
        }
        None => {
            return Err(bad(
                "missing `input`: send a string or a list of items".into()
            ))
        }
    };
    let mut thinking = String::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        let kind = match item.get("type").and_then(Value::as_str) {
            Some(t) => t,
            None if item.get("role").is_some() => "message",
            None => return Err(bad(format!("`{at}` has no `type`"))),
        };
        let str_of = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
        match kind {
            "message" => {
                let role = match str_of("role") {
                    "developer" | "system" => "system",
                    r @ ("user" | "assistant") => r,
                    other => {
                        return Err(bad(format!(
                        "invalid `{at}.role` {other:?}: use user, assistant, system or developer"
                    )))
                    }
                };
                let content = text_of(
                    item.get("content").unwrap_or(&Value::Null),
                    &format!("{at}.content"),
                )?;
                let mut m = Message::new(role, content);
                if role == "assistant" {
                    m.thinking = std::mem::take(&mut thinking);
                }
                out.push(m);
            }
            "function_call" => {
                let args = match str_of("arguments") {
                    "" => Map::new(),
                    s => match serde_json::from_str::<Value>(s) {
                        Ok(Value::Object(o)) => o,
                        _ => {
                            return Err(bad(format!("invalid `{at}.arguments`: not a JSON object")))
                        }
                    },
                };
                let call = ToolCall {
                    id: str_of("call_id").to_owned(),
                    function: ToolCallFunction {
                        index: 0,
                        name: str_of("name").to_owned(),
                        arguments: args,
                    },
                };
                if call.function.name.is_empty() {
                    return Err(bad(format!("`{at}` has no `name`")));
                }
                let last = match out.last_mut() {
                    Some(m) if m.role == "assistant" => m,
                    _ => {
                        out.push(Message::new("assistant", String::new()));
                        out.last_mut().ok_or_else(|| bad(format!("`{at}`")))?
                    }
                };
                if !thinking.is_empty() {
                    last.thinking = std::mem::take(&mut thinking);
                }
                let mut call = call;
                call.function.index = last.tool_calls.len();
                last.tool_calls.push(call);
            }
            "function_call_output" => {
                let call_id = str_of("call_id");
                let name = out
                    .iter()
                    .rev()
                    .flat_map(|m| &m.tool_calls)
                    .find(|c| !call_id.is_empty() && c.id == call_id)
                    .map(|c| c.function.name.clone())
                    .ok_or_else(|| {
                        bad(format!(
                            "`{at}.call_id` {call_id:?} answers no earlier `function_call` item: \
                             send the call before its output (llmpm keeps no conversation state)"
                        ))
                    })?;
                let content = text_of(
                    item.get("output").unwrap_or(&Value::Null),
                    &format!("{at}.output"),
                )?;
                out.push(Message {
                    tool_name: name,
                    tool_call_id: call_id.to_owned(),
                    ..Message::new("tool", content)
                });
            }
            "reasoning" => {
                thinking = match str_of("encrypted_content") {
                    "" => text_of(
                        item.get("summary").unwrap_or(&Value::Null),
                        &format!("{at}.summary"),
                    )?,
                    s => s.to_owned(),
                };
            }
            other => {
                return Err(bad(format!(
                    "unknown `{at}.type` {other:?}: llmpm reads message, function_call, \
                     function_call_output and reasoning items"
                )))
            }
        }
    }
    if !thinking.is_empty() {
        out.push(Message {
            thinking,
            ..Message::new("assistant", String::new())
        });
    }
    Ok(out)
}

/// The function `tools` (the Responses shape: `name` and `parameters` at the top).
fn tools(body: &Value) -> Result<Vec<Tool>, ApiError> {
    list_of(body, "tools", |i, t| {
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {
                let s = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or_default();
                let params = t.get("parameters").cloned().unwrap_or(Value::Null);
                Ok(Tool::function(s("name"), s("description"), params))
            }
            other => Err(bad(format!(
                "`tools[{i}]` is of type {}: llmpm runs function tools only",
                other.map_or_else(|| "(none)".to_owned(), |t| format!("{t:?}"))
            ))),
        }
    })
}

/// `tool_choice`: `auto`, `none`, `required`, or `{"type": "function", "name": …}`.
fn tool_choice(body: &Value) -> Result<ToolChoice, ApiError> {
    match field(body, "tool_choice") {
        Some(v @ Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("function") => {
            match o.get("name").and_then(Value::as_str) {
                Some(n) => Ok(ToolChoice::Function(n.to_owned())),
                // The chat-completions spelling works too.
                None => openai_tools::tool_choice(Some(v)),
            }
        }
        v => openai_tools::tool_choice(v),
    }
}

/// `text.format` as a constraint: `text`, `json_object`, or `json_schema` with `schema`.
fn constraint(body: &Value) -> Result<Option<Constraint>, ApiError> {
    let Some(f) = body.pointer("/text/format").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let wrap = |e: grammar::GrammarError| bad(format!("invalid `text.format`: {e}"));
    match f.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => grammar::from_format(Some(&json!("json"))).map_err(wrap),
        Some("json_schema") => match f.get("schema") {
            Some(s @ Value::Object(_)) => grammar::from_format(Some(s)).map_err(wrap),
            _ => Err(bad(
                "`text.format` of type json_schema needs `schema`, a JSON schema object".into(),
            )),
        },
        _ => Err(bad(
            "invalid `text.format.type`: use text, json_object or json_schema".into(),
        )),
    }
}

/// Sampling as Ollama `options`.
fn options(body: &Value) -> Result<Value, ApiError> {
    let mut m = Map::new();
    let sampling = [
        ("max_output_tokens", "num_predict"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
    ];
    numbers_into(body, &mut m, &sampling)?;
    Ok(Value::Object(m))
}

/// What needs state llmpm does not keep, refused by name.
fn refuse_stateful(body: &Value) -> Result<(), ApiError> {
    if field(body, "previous_response_id").is_some() {
        return Err(bad(
            "`previous_response_id` is not supported: llmpm stores no responses; \
             send the whole conversation in `input` instead"
                .into(),
        ));
    }
    if field(body, "conversation").is_some() {
        return Err(bad(
            "`conversation` is not supported: llmpm stores no conversations; \
             send the whole conversation in `input` instead"
                .into(),
        ));
    }
    if body.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(bad(
            "`background` is not supported: llmpm answers in the request".into(),
        ));
    }
    Ok(())
}

/// What the answer echoes of the request.
#[derive(Debug, Clone)]
struct Echo {
    id: String,
    model: String,
    created: u64,
    body: Value,
}

impl Echo {
    /// The `response` object in `status` with `output` and `usage`.
    fn response(&self, status: &str, output: Vec<Value>, usage: Value) -> Value {
        let b = &self.body;
        let get = |k: &str, d: Value| field(b, k).cloned().unwrap_or(d);
        let format = b
            .pointer("/text/format")
            .cloned()
            .unwrap_or(json!({"type": "text"}));
        json!({
            "id": self.id, "object": "response", "created_at": self.created,
            "completed_at": (status == "completed").then(unix_now),
            "status": status, "incomplete_details": null, "model": self.model,
            "previous_response_id": null, "instructions": get("instructions", Value::Null),
            "output": output, "error": null, "tools": get("tools", json!([])),
            "tool_choice": get("tool_choice", json!("auto")), "truncation": "disabled",
            "parallel_tool_calls": true, "text": {"format": format},
            "top_p": get("top_p", json!(1.0)), "temperature": get("temperature", json!(1.0)),
            "presence_penalty": 0, "frequency_penalty": 0, "top_logprobs": 0,
            "reasoning": get("reasoning", Value::Null), "usage": usage,
            "max_output_tokens": get("max_output_tokens", Value::Null), "max_tool_calls": null,
            "store": false, "background": false, "service_tier": "default",
            "metadata": get("metadata", json!({})),
        })
    }
}

fn usage(c: &CompletionChunk) -> Value {
    json!({
        "input_tokens": c.prompt_eval_count, "output_tokens": c.eval_count,
        "total_tokens": c.prompt_eval_count + c.eval_count,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    })
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    let content = if status == "completed" {
        json!([text_part(text)])
    } else {
        json!([])
    };
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

fn reasoning_item(id: &str, thinking: &str) -> Value {
    json!({"id": id, "type": "reasoning",
           "summary": [{"type": "summary_text", "text": thinking}],
           "encrypted_content": thinking})
}

fn call_item(id: &str, c: &ToolCall, status: &str) -> Value {
    let args = if status == "completed" {
        Value::Object(c.function.arguments.clone()).to_string()
    } else {
        String::new()
    };
    json!({"id": id, "type": "function_call", "status": status, "call_id": c.id,
           "name": c.function.name, "arguments": args})
}

/// `POST /v1/responses`.
pub async fn responses(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, OpenAiError> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("invalid JSON request body: {e}")))?;
    if !body.is_object() {
        return Err(bad("the request body must be a JSON object".into()).into());
    }
    let model = model_name(&body)?;
    refuse_stateful(&body)?;
    let messages = messages(&body)?;
    let tools = tools(&body)?;
    check_tools(&tools).map_err(ApiError::BadRequest)?;
    let choice = tool_choice(&body)?;
    let effort = body.pointer("/reasoning/effort").and_then(Value::as_str);
    let think = openai_tools::think(effort)?;
    let constraint = constraint(&body)?;
    let ask = ChatAsk {
        model: model.clone(),
        messages,
        tools,
        think,
        choice,
        options: options(&body)?,
        constraint,
        logprobs: None,
    };
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let echo = Echo {
        id: id("resp").replace('-', "_"),
        model,
        created: unix_now(),
        body,
    };
    let events = chat_events(&state, ask).await?;
    let ended = || ApiError::Internal("the generation ended without a result".into());
    if !stream {
        let all = match collect(events).await {
            Ok(Some(all)) => all,
            Ok(None) => return Err(ended().into()),
            Err(e) => return Err(e.into()),
        };
        let mut output = Vec::new();
        if !all.thinking.is_empty() {
            output.push(reasoning_item(&format!("rs_{}", echo.id), &all.thinking));
        }
        for (i, c) in all.tool_calls.iter().enumerate() {
            output.push(call_item(&format!("fc_{}_{i}", echo.id), c, "completed"));
        }
        if all.tool_calls.is_empty() || !all.text.trim().is_empty() {
            output.push(message_item(
                &format!("msg_{}", echo.id),
                &all.text,
                "completed",
            ));
        }
        return Ok(Json(echo.response("completed", output, usage(&all.last))).into_response());
    }
    let mut s = Streamer::new(echo);
    Ok(stream::respond_framed(
        events.map(|e| e.map_err(ApiError::from)),
        Framing::Events,
        move |event, frames| s.on(event, frames),
        |e| OpenAiError(e.unwrap_or_else(ended)).into_response(),
    )
    .await)
}

/// The Responses event stream's state: which item is open, what it holds.
struct Streamer {
    echo: Echo,
    seq: u64,
    started: bool,
    /// The output index of the next item.
    index: usize,
    /// The open reasoning item's text, when one is open.
    reasoning: Option<String>,
    /// The open message item's text, when one is open.
    text: Option<String>,
    /// The items done so far, for `response.completed`.
    done: Vec<Value>,
}

impl Streamer {
    fn new(echo: Echo) -> Streamer {
        Streamer {
            echo,
            seq: 0,
            started: false,
            index: 0,
            reasoning: None,
            text: None,
            done: Vec::new(),
        }
    }

    fn emit(&mut self, frames: &mut Frames, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        frames.event(kind, &data);
    }

    /// Ends the open output item with `item`, kept for `response.completed`.
    fn item_done(&mut self, frames: &mut Frames, item: Value) {
        let index = self.index;
        self.emit(
            frames,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        self.done.push(item);
        self.index += 1;
    }

    fn item_id(&self, prefix: &str) -> String {
        format!("{prefix}_{}_{}", self.echo.id, self.index)
    }

    fn close_reasoning(&mut self, frames: &mut Frames) {
        let Some(text) = self.reasoning.take() else {
            return;
        };
        let (id, index) = (self.item_id("rs"), self.index);
        self.emit(
            frames,
            "response.reasoning_summary_text.done",
            json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text}),
        );
        self.item_done(frames, reasoning_item(&id, &text));
    }

    fn close_text(&mut self, frames: &mut Frames) {
        let Some(text) = self.text.take() else {
            return;
        };
        let (id, index) = (self.item_id("msg"), self.index);
        let at = json!({"item_id": id, "output_index": index, "content_index": 0});
        let mut done = at.clone();
        done["text"] = json!(text);
        done["logprobs"] = json!([]);
        self.emit(frames, "response.output_text.done", done);
        let mut part = at;
        part["part"] = text_part(&text);
        self.emit(frames, "response.content_part.done", part);
        self.item_done(frames, message_item(&id, &text, "completed"));
    }

    /// Writes the events for one generation event; true after the last.
    fn on(&mut self, event: Event, frames: &mut Frames) -> bool {
        if !self.started {
            self.started = true;
            let r = self.echo.response("in_progress", Vec::new(), Value::Null);
            self.emit(frames, "response.created", json!({"response": r}));
            self.emit(frames, "response.in_progress", json!({"response": r}));
        }
        match event {
            Event::Logprobs(_) => {}
            Event::Thinking(t) => {
                self.close_text(frames);
                let (id, index) = (self.item_id("rs"), self.index);
                if self.reasoning.is_none() {
                    self.reasoning = Some(String::new());
                    self.emit(
                        frames,
                        "response.output_item.added",
                        json!({"output_index": index,
                        "item": {"id": id, "type": "reasoning", "summary": []}}),
                    );
                }
                if let Some(r) = self.reasoning.as_mut() {
                    r.push_str(&t);
                }
                self.emit(
                    frames,
                    "response.reasoning_summary_text.delta",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": t}),
                );
            }
            Event::Text(t) => self.on_text(t, frames),
            Event::ToolCall(c) => {
                self.close_reasoning(frames);
                self.close_text(frames);
                let (id, index) = (self.item_id("fc"), self.index);
                let args = Value::Object(c.function.arguments.clone()).to_string();
                self.emit(
                    frames,
                    "response.output_item.added",
                    json!({"output_index": index, "item": call_item(&id, &c, "in_progress")}),
                );
                self.emit(
                    frames,
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": index, "delta": args}),
                );
                self.emit(
                    frames,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "arguments": args}),
                );
                self.item_done(frames, call_item(&id, &c, "completed"));
            }
            Event::Done(c) => {
                if !c.content.is_empty() {
                    self.on_text(c.content.clone(), frames);
                }
                self.close_reasoning(frames);
                if self.done.is_empty() && self.text.is_none() {
                    // An empty answer is still one (empty) message.
                    self.on_text(String::new(), frames);
                }
                self.close_text(frames);
                let r = self
                    .echo
                    .response("completed", std::mem::take(&mut self.done), usage(&c));
                self.emit(frames, "response.completed", json!({"response": r}));
                return true;
            }
        }
        false
    }

    fn on_text(&mut self, t: String, frames: &mut Frames) {
        self.close_reasoning(frames);
        let (id, index) = (self.item_id("msg"), self.index);
        if self.text.is_none() {
            self.text = Some(String::new());
            self.emit(
                frames,
                "response.output_item.added",
                json!({"output_index": index, "item": message_item(&id, "", "in_progress")}),
            );
            self.emit(
                frames,
                "response.content_part.added",
                json!({"item_id": id,
                "output_index": index, "content_index": 0, "part": text_part("")}),
            );
        }
        if let Some(s) = self.text.as_mut() {
            s.push_str(&t);
        }
        if !t.is_empty() {
            self.emit(
                frames,
                "response.output_text.delta",
                json!({"item_id": id,
                "output_index": index, "content_index": 0, "delta": t, "logprobs": []}),
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
