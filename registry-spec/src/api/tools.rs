//! Tools and thinking on the wire: the `tools` a chat offers the model, the
//! `tool_calls` it answers with, and `think`, in Ollama's shapes
//! (`api/types.go`: `Tool`, `ToolCall`, `ThinkValue`).

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// One tool a chat offers: `{"type": "function", "function": {name, description, parameters}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tool {
    /// `function` (the only kind).
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// Set by some clients next to `function`; carried as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Value>,
    /// The function.
    #[serde(default)]
    pub function: ToolFunction,
}

fn function_kind() -> String {
    "function".into()
}

/// A tool's function: its name, what it does, and a JSON schema of its arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolFunction {
    /// The name the model calls it by.
    #[serde(default)]
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A JSON schema object of the arguments (absent: none).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub parameters: Value,
}

impl Tool {
    /// A function tool.
    pub fn function(name: &str, description: &str, parameters: Value) -> Tool {
        Tool {
            kind: function_kind(),
            items: None,
            function: ToolFunction {
                name: name.into(),
                description: description.into(),
                parameters,
            },
        }
    }
}

/// Checks a request's `tools`: each a `function` with a name and, if it
/// has `parameters`, a JSON schema object. The error names the field
/// (`tools[1].function.name`) and what to send instead.
pub fn check_tools(tools: &[Tool]) -> Result<(), String> {
    for (i, t) in tools.iter().enumerate() {
        if t.kind != "function" {
            return Err(format!(
                "invalid `tools[{i}].type` {:?}: the only tool type is \"function\"",
                t.kind
            ));
        }
        if t.function.name.trim().is_empty() {
            return Err(format!(
                "`tools[{i}].function.name` is missing: every tool needs the name the model calls it by"
            ));
        }
        match &t.function.parameters {
            Value::Null | Value::Object(_) => {}
            other => {
                return Err(format!(
                    "invalid `tools[{i}].function.parameters` {other}: it must be a JSON schema object, \
                     such as {{\"type\": \"object\", \"properties\": {{…}}}}"
                ))
            }
        }
    }
    Ok(())
}

/// A tool call the model made (or an earlier one sent back in a message).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// An id for the call (`call_…`), which a `tool` message answering it may quote.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The function called.
    pub function: ToolCallFunction,
}

/// The function of a [`ToolCall`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallFunction {
    /// Its position among the calls of one answer.
    #[serde(default)]
    pub index: usize,
    /// The tool's name.
    pub name: String,
    /// The arguments, a JSON object (a JSON text of one is accepted too, as
    /// OpenAI-style clients send it).
    #[serde(default, deserialize_with = "arguments")]
    pub arguments: Map<String, Value>,
}

fn arguments<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Map::new()),
        Value::Object(m) => Ok(m),
        Value::String(s) if s.trim().is_empty() => Ok(Map::new()),
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(de::Error::custom(format!(
                "invalid tool call `arguments` {s:?}: send a JSON object"
            ))),
        },
        other => Err(de::Error::custom(format!(
            "invalid tool call `arguments` {other}: send a JSON object"
        ))),
    }
}

/// How hard a model thinks when `think` names a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkLevel {
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high`.
    High,
    /// `max` (Ollama's newest level; templates that know only three read it as `high`).
    Max,
}

impl ThinkLevel {
    /// The level as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            ThinkLevel::Low => "low",
            ThinkLevel::Medium => "medium",
            ThinkLevel::High => "high",
            ThinkLevel::Max => "max",
        }
    }

    /// Parses `low`, `medium`, `high` or `max`.
    pub fn parse(s: &str) -> Option<ThinkLevel> {
        Some(match s {
            "low" => ThinkLevel::Low,
            "medium" => ThinkLevel::Medium,
            "high" => ThinkLevel::High,
            "max" => ThinkLevel::Max,
            _ => return None,
        })
    }
}

/// `think`: `true`/`false`, or a level (`"low"`, `"medium"`, `"high"`),
/// which also turns thinking on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Think {
    /// On or off.
    Bool(bool),
    /// On, at this level.
    Level(ThinkLevel),
}

impl Think {
    /// Whether the model should think.
    pub fn enabled(self) -> bool {
        match self {
            Think::Bool(b) => b,
            Think::Level(_) => true,
        }
    }

    /// The level as Ollama's `.ThinkLevel` has it: the level sent, `medium`
    /// for `true`, empty for `false`.
    pub fn level(self) -> &'static str {
        match self {
            Think::Bool(true) => "medium",
            Think::Bool(false) => "",
            Think::Level(l) => l.as_str(),
        }
    }

    /// The level when one was named (not for a plain `true`).
    pub fn named_level(self) -> Option<ThinkLevel> {
        match self {
            Think::Level(l) => Some(l),
            Think::Bool(_) => None,
        }
    }
}

impl fmt::Display for Think {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Think::Bool(b) => write!(f, "{b}"),
            Think::Level(l) => f.write_str(l.as_str()),
        }
    }
}

impl std::str::FromStr for Think {
    type Err = String;

    /// `true`, `false`, `low`, `medium`, `high` or `max`, as the CLI takes it.
    fn from_str(s: &str) -> Result<Think, String> {
        match s {
            "true" => Ok(Think::Bool(true)),
            "false" => Ok(Think::Bool(false)),
            other => ThinkLevel::parse(other)
                .map(Think::Level)
                .ok_or_else(|| think_error(&format!("{other:?}"))),
        }
    }
}

fn think_error(got: &str) -> String {
    format!("invalid `think` value {got}: use true, false, \"low\", \"medium\" or \"high\"")
}

impl Serialize for Think {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Think::Bool(b) => s.serialize_bool(*b),
            Think::Level(l) => s.serialize_str(l.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for Think {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Think, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(Think::Bool(b)),
            Value::String(s) => ThinkLevel::parse(&s)
                .map(Think::Level)
                .ok_or_else(|| de::Error::custom(think_error(&format!("{s:?}")))),
            other => Err(de::Error::custom(think_error(&other.to_string()))),
        }
    }
}

/// Content that may be `null` (as Ollama and OpenAI clients send for an
/// assistant message that only calls tools) reads as empty.
pub(super) fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn think_takes_booleans_and_levels_and_names_itself_when_wrong() {
        for (v, t) in [
            (json!(true), Think::Bool(true)),
            (json!(false), Think::Bool(false)),
            (json!("high"), Think::Level(ThinkLevel::High)),
            (json!("low"), Think::Level(ThinkLevel::Low)),
        ] {
            let got: Think = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(got, t);
            assert_eq!(serde_json::to_value(got).unwrap(), v);
        }
        for bad in [json!("extreme"), json!(1), json!(null), json!({"a": 1})] {
            let err = serde_json::from_value::<Think>(bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains("`think`"), "{err}");
        }
        assert_eq!(Think::Bool(true).level(), "medium");
        assert_eq!(Think::Bool(false).level(), "");
        assert!(Think::Level(ThinkLevel::Low).enabled());
        assert_eq!("false".parse::<Think>(), Ok(Think::Bool(false)));
        assert!("extreme".parse::<Think>().is_err());
    }

    #[test]
    fn tools_are_checked_field_by_field() {
        let ok: Vec<Tool> = serde_json::from_value(json!([
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},
            {"function": {"name": "g"}}
        ]))
        .unwrap();
        assert_eq!(check_tools(&ok), Ok(()));
        assert_eq!(ok[1].kind, "function");
        for (tools, field) in [
            (
                json!([{"type": "function", "function": {"description": "x"}}]),
                "tools[0].function.name",
            ),
            (json!([{"type": "function"}]), "tools[0].function.name"),
            (
                json!([{"function": {"name": "f"}}, {"function": {"name": "g", "parameters": "x"}}]),
                "tools[1].function.parameters",
            ),
            (
                json!([{"type": "retrieval", "function": {"name": "f"}}]),
                "tools[0].type",
            ),
        ] {
            let tools: Vec<Tool> = serde_json::from_value(tools).unwrap();
            let err = check_tools(&tools).unwrap_err();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn call_arguments_are_an_object_or_its_json_text() {
        let c: ToolCall =
            serde_json::from_value(json!({"function": {"name": "f", "arguments": "{\"a\": 1}"}}))
                .unwrap();
        assert_eq!(c.function.arguments["a"], 1);
        let c: ToolCall = serde_json::from_value(
            json!({"id": "call_1", "function": {"index": 2, "name": "f", "arguments": {"b": [1]}}}),
        )
        .unwrap();
        assert_eq!((c.id.as_str(), c.function.index), ("call_1", 2));
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"id": "call_1", "function": {"index": 2, "name": "f", "arguments": {"b": [1]}}})
        );
        assert!(serde_json::from_value::<ToolCall>(
            json!({"function": {"name": "f", "arguments": "[1]"}})
        )
        .is_err());
    }
}
