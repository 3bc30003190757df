//! OpenAI's shapes for tools and reasoning on `/v1/chat/completions`, and
//! their Ollama counterparts, as Ollama's `openai` package converts them:
//! messages whose `content` may be `null` or parts and whose `tool_calls`
//! carry `arguments` as a JSON string; `tool_choice`; `reasoning_effort`
//! (or `reasoning.effort`) into `think`; calls out with an `id`, a `type`
//! and string `arguments`.

use llmpm_spec::api::{Message, Think, ThinkLevel, ToolCall, ToolCallFunction};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use crate::llm::ToolChoice;

/// A message as OpenAI clients send it.
#[derive(Debug, Clone, Deserialize)]
pub struct OaMessage {
    role: String,
    #[serde(default)]
    content: Value,
    /// Earlier reasoning sent back (Ollama's name; `reasoning_content` is
    /// what some clients use).
    #[serde(default, alias = "reasoning_content")]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<OaToolCall>>,
    /// For a `tool` message, the tool's name.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct OaToolCall {
    #[serde(default)]
    id: String,
    function: OaFunction,
}

#[derive(Debug, Clone, Deserialize)]
struct OaFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

/// The messages as Ollama's: text parts joined, `arguments` parsed, a
/// `tool` message's tool named by the call it answers when it has no `name`.
pub fn messages(msgs: &[OaMessage]) -> Result<Vec<Message>, ApiError> {
    let mut out = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let content = match &m.content {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .map(|p| match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => Ok(t.as_str()),
                    _ => Err(ApiError::BadRequest(format!(
                        "`messages[{i}].content` has a part llmpm cannot read: only text parts are supported"
                    ))),
                })
                .collect::<Result<String, _>>()?,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "invalid `messages[{i}].content` {other}: send a string or text parts"
                )))
            }
        };
        let mut tool_calls = Vec::new();
        for (j, c) in m.tool_calls.iter().flatten().enumerate() {
            let arguments = match &c.function.arguments {
                Value::Null => Map::new(),
                Value::Object(o) => o.clone(),
                Value::String(s) if s.trim().is_empty() => Map::new(),
                Value::String(s) => match serde_json::from_str::<Value>(s) {
                    Ok(Value::Object(o)) => o,
                    _ => {
                        return Err(ApiError::BadRequest(format!(
                            "invalid `messages[{i}].tool_calls[{j}].function.arguments`: not a JSON object"
                        )))
                    }
                },
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "invalid `messages[{i}].tool_calls[{j}].function.arguments`: not a JSON object"
                    )))
                }
            };
            tool_calls.push(ToolCall {
                id: c.id.clone(),
                function: ToolCallFunction {
                    index: j,
                    name: c.function.name.clone(),
                    arguments,
                },
            });
        }
        let role = m.role.to_lowercase();
        let tool_call_id = m.tool_call_id.clone().unwrap_or_default();
        let tool_name = if role == "tool" {
            m.name
                .clone()
                .or_else(|| name_of_call(&out, &tool_call_id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        out.push(Message {
            role,
            content,
            thinking: m.reasoning.clone().unwrap_or_default(),
            tool_calls,
            tool_name,
            tool_call_id,
        });
    }
    Ok(out)
}

/// The tool of the latest call with this id.
fn name_of_call(earlier: &[Message], id: &str) -> Option<String> {
    if id.is_empty() {
        return None;
    }
    earlier
        .iter()
        .rev()
        .flat_map(|m| &m.tool_calls)
        .find(|c| c.id == id)
        .map(|c| c.function.name.clone())
}

/// `tool_choice`: `auto`, `none`, `required`, or `{"type": "function",
/// "function": {"name": …}}`.
pub fn tool_choice(v: Option<&Value>) -> Result<ToolChoice, ApiError> {
    let bad = |v: &Value| {
        ApiError::BadRequest(format!(
            "invalid `tool_choice` {v}: use \"auto\", \"none\", \"required\" or \
             {{\"type\": \"function\", \"function\": {{\"name\": …}}}}"
        ))
    };
    match v {
        None | Some(Value::Null) => Ok(ToolChoice::Auto),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(bad(&Value::String(s.clone()))),
        },
        Some(v @ Value::Object(_)) => v
            .pointer("/function/name")
            .and_then(Value::as_str)
            .filter(|_| v.get("type").and_then(Value::as_str) == Some("function"))
            .map(|n| ToolChoice::Function(n.to_owned()))
            .ok_or_else(|| bad(v)),
        Some(v) => Err(bad(v)),
    }
}

/// `reasoning_effort` (or `reasoning.effort`) as `think`, as Ollama maps
/// it: `none` off, `minimal` low, `xhigh` and `ultra` the most.
pub fn think(effort: Option<&str>) -> Result<Option<Think>, ApiError> {
    let Some(e) = effort else { return Ok(None) };
    Ok(Some(match e {
        "" => return Ok(None),
        "none" => Think::Bool(false),
        "minimal" => Think::Level(ThinkLevel::Low),
        "xhigh" | "ultra" => Think::Level(ThinkLevel::Max),
        other => match ThinkLevel::parse(other) {
            Some(l) => Think::Level(l),
            None => {
                return Err(ApiError::BadRequest(format!(
                    "invalid `reasoning_effort` {other:?}: use \"none\", \"minimal\", \"low\", \
                     \"medium\", \"high\" or \"xhigh\""
                )))
            }
        },
    }))
}

/// A call as OpenAI sends it: an `id`, its `index`, `type: function`, and
/// the arguments as a JSON string.
pub fn call_json(c: &ToolCall) -> Value {
    json!({
        "id": c.id,
        "index": c.function.index,
        "type": "function",
        "function": {
            "name": c.function.name,
            "arguments": Value::Object(c.function.arguments.clone()).to_string(),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn openai_messages_become_ollama_messages() {
        let msgs: Vec<OaMessage> = serde_json::from_value(json!([
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ]))
        .unwrap();
        let m = messages(&msgs).unwrap();
        assert_eq!(m[0].content, "ab");
        assert_eq!(m[1].tool_calls[0].function.arguments["x"], 1);
        assert_eq!(
            (m[2].tool_name.as_str(), m[2].tool_call_id.as_str()),
            ("f", "call_1")
        );
        let bad: Vec<OaMessage> = serde_json::from_value(json!([{"role": "assistant",
            "tool_calls": [{"function": {"name": "f", "arguments": "[1"}}]}]))
        .unwrap();
        assert!(messages(&bad)
            .unwrap_err()
            .to_string()
            .contains("messages[0].tool_calls[0].function.arguments"));
    }

    #[test]
    fn tool_choice_and_effort_are_read_or_refused_by_name() {
        assert_eq!(
            tool_choice(Some(&json!("required"))).unwrap(),
            ToolChoice::Required
        );
        assert_eq!(
            tool_choice(Some(
                &json!({"type": "function", "function": {"name": "f"}})
            ))
            .unwrap(),
            ToolChoice::Function("f".into())
        );
        assert!(tool_choice(Some(&json!("always")))
            .unwrap_err()
            .to_string()
            .contains("`tool_choice`"));
        assert_eq!(think(Some("none")).unwrap(), Some(Think::Bool(false)));
        assert_eq!(
            think(Some("minimal")).unwrap(),
            Some(Think::Level(ThinkLevel::Low))
        );
        assert!(think(Some("huge"))
            .unwrap_err()
            .to_string()
            .contains("`reasoning_effort`"));
        let c = ToolCall {
            id: "call_x".into(),
            function: ToolCallFunction {
                index: 1,
                name: "f".into(),
                arguments: Map::new(),
            },
        };
        assert_eq!(call_json(&c)["function"]["arguments"], "{}");
    }
}
