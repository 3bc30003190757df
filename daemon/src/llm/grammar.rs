//! Constraints as grammars for the constrained-decoding engine (llguidance):
//! the request fields that ask for one (Ollama's `format`, OpenAI's
//! `response_format`) read into a [`Constraint`], each constraint checked
//! before a model is loaded (a schema keyword the engine cannot enforce is
//! refused by name, never ignored), and the grammar the runner compiles.
//!
//! Checking needs no tokenizer: the daemon compiles the grammar once without
//! one, the runner again with its model's vocabulary.

use llguidance::api::{GrammarInit, ParserLimits, TopLevelGrammar};
use llguidance::JsonCompileOptions;
use serde_json::{json, Value};

use super::protocol::Constraint;

/// JSON-schema keywords that llguidance does not enforce, or enforces only
/// approximately (`oneOf` as `anyOf`): refused rather than dropped.
/// `x-guidance` is llguidance's own option block, which could turn the
/// checks off (`lenient`).
const UNSUPPORTED: [&str; 22] = [
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
    "$vocabulary",
    "contentSchema",
    "x-guidance",
];

/// Keywords whose value is a schema, or holds schemas (by name or in a
/// list), where [`unsupported`] looks further. `enum` and `const` hold data.
const NESTED: [&str; 16] = [
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "additionalProperties",
    "items",
    "prefixItems",
    "additionalItems",
    "anyOf",
    "allOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
];

/// The keywords llmpm enforces, for error messages.
const SUPPORTED: &str = "type, properties, required, additionalProperties, patternProperties, \
     minProperties, maxProperties, items, prefixItems, minItems, maxItems, enum, const, anyOf, \
     allOf, $ref/$defs, minLength, maxLength, pattern, format, minimum, maximum, \
     exclusiveMinimum, exclusiveMaximum, multipleOf";

/// Why a constraint cannot be enforced. The message names no request
/// field: the caller knows which one it read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    /// A JSON-schema keyword the engine does not enforce.
    #[error(
        "the JSON schema keyword `{keyword}` (at `{at}`) is not supported; remove it \
         (supported: {SUPPORTED})"
    )]
    Unsupported {
        /// The keyword.
        keyword: String,
        /// A JSON pointer to the schema that has it (`/` the root).
        at: String,
    },
    /// Not a JSON schema, or one the engine cannot compile.
    #[error("not a JSON schema llmpm can enforce: {0}")]
    Schema(String),
    /// A Lark grammar that does not compile.
    #[error("invalid grammar: {0}")]
    Lark(String),
    /// The request field is neither of the accepted shapes.
    #[error("{0}")]
    Shape(String),
}

/// How generated JSON is laid out: one line, `", "` and `": "` between
/// items, as models write it unprompted. The engine's default allows any
/// whitespace anywhere, which a sampled model can fill without end.
fn json_options() -> JsonCompileOptions {
    JsonCompileOptions {
        item_separator: ", ".into(),
        key_separator: ": ".into(),
        whitespace_flexible: false,
        ..JsonCompileOptions::default()
    }
}

/// The grammar that enforces `c`.
pub fn top_level(c: &Constraint) -> TopLevelGrammar {
    let schema = |mut schema: Value| {
        if schema.is_object() {
            json_options().apply_to(&mut schema);
        }
        TopLevelGrammar::from_json_schema(schema)
    };
    match c {
        // Ollama's `format: "json"`: the root is an object.
        Constraint::Json => schema(json!({"type": "object"})),
        Constraint::JsonSchema { schema: s } => schema(s.clone()),
        Constraint::Lark { grammar } => TopLevelGrammar::from_lark(grammar.clone()),
    }
}

/// Checks that `c` can be enforced, without a tokenizer.
pub fn check(c: &Constraint) -> Result<(), GrammarError> {
    if let Constraint::JsonSchema { schema } = c {
        if let Some((keyword, at)) = unsupported(schema, "") {
            return Err(GrammarError::Unsupported { keyword, at });
        }
    }
    let init = GrammarInit::Serialized(top_level(c));
    match init.validate(None, ParserLimits::default()).into_error() {
        None => Ok(()),
        Some(e) if matches!(c, Constraint::Lark { .. }) => Err(GrammarError::Lark(e)),
        Some(e) => Err(GrammarError::Schema(e)),
    }
}

/// The first unsupported keyword in `schema` and where it is.
fn unsupported(schema: &Value, at: &str) -> Option<(String, String)> {
    let obj = schema.as_object()?;
    let here = || {
        if at.is_empty() {
            "/".to_string()
        } else {
            at.to_string()
        }
    };
    if let Some(k) = obj.keys().find(|k| UNSUPPORTED.contains(&k.as_str())) {
        return Some((k.clone(), here()));
    }
    for key in NESTED {
        let Some(v) = obj.get(key) else { continue };
        let path = format!("{at}/{}", pointer_escape(key));
        let found = match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, s)| unsupported(s, &format!("{path}/{i}"))),
            // A map of schemas by name, or (`items`, `not`, …) one schema.
            Value::Object(m)
                if matches!(
                    key,
                    "properties"
                        | "patternProperties"
                        | "$defs"
                        | "definitions"
                        | "dependentSchemas"
                ) =>
            {
                m.iter().find_map(|(name, s)| {
                    unsupported(s, &format!("{path}/{}", pointer_escape(name)))
                })
            }
            other => unsupported(other, &path),
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// A JSON-pointer segment (RFC 6901).
fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Ollama's `format`: absent, `""` or null is free text, `"json"` any JSON
/// object, an object a JSON schema (checked).
pub fn from_format(format: Option<&Value>) -> Result<Option<Constraint>, GrammarError> {
    let c = match format {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) if s == "json" => Constraint::Json,
        Some(schema @ Value::Object(_)) => Constraint::JsonSchema {
            schema: schema.clone(),
        },
        Some(other) => {
            return Err(GrammarError::Shape(format!(
                "{other} is neither \"json\" nor a JSON schema object"
            )))
        }
    };
    check(&c)?;
    Ok(Some(c))
}

/// OpenAI's `response_format`: `{"type": "text"}`, `{"type":
/// "json_object"}`, or `{"type": "json_schema", "json_schema": {"name",
/// "schema", "strict"}}` (checked; enforced strictly whatever `strict` says).
pub fn from_response_format(f: Option<&Value>) -> Result<Option<Constraint>, GrammarError> {
    let Some(f) = f.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    let c = match f.get("type").and_then(Value::as_str) {
        Some("text") => return Ok(None),
        Some("json_object") => Constraint::Json,
        Some("json_schema") => match f.get("json_schema").and_then(|j| j.get("schema")) {
            Some(schema @ Value::Object(_)) => Constraint::JsonSchema {
                schema: schema.clone(),
            },
            Some(other) => {
                return Err(GrammarError::Shape(format!(
                    "`json_schema.schema` must be a JSON schema object, not {other}"
                )))
            }
            None => {
                return Err(GrammarError::Shape(
                    "`type` json_schema needs `json_schema.schema`, the JSON schema".into(),
                ))
            }
        },
        _ => {
            return Err(GrammarError::Shape(
                "`type` must be text, json_object or json_schema".into(),
            ))
        }
    };
    check(&c)?;
    Ok(Some(c))
}

#[cfg(test)]
mod tests;
