//! Structured outputs end to end on a tiny generated model: a JSON schema in
//! `format` (`/api/generate`, `/api/chat`) or `response_format` (`/v1/*`)
//! holds a random model to the schema; a schema that is not one, or that
//! uses a keyword the engine cannot enforce, is a 400 naming it, answered
//! before any model is loaded, and the daemon serves on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use llmpm_tests::http::get_unix;
use llmpm_tests::TestContext;
use serde_json::{json, Value};

/// A request for `schema` on each route, the schema where that route takes it.
fn requests(schema: &Value) -> Vec<(&'static str, Value)> {
    let opts = json!({"temperature": 1, "seed": 3, "num_predict": 200});
    let messages = json!([{"role": "user", "content": "Pick a color."}]);
    let rf = json!({"type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": true}});
    vec![
        (
            "/api/generate",
            json!({"model": "tiny", "prompt": "Pick a color.", "format": schema,
                "stream": false, "options": opts}),
        ),
        (
            "/api/chat",
            json!({"model": "tiny", "messages": messages, "format": schema,
                "stream": false, "options": opts}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny", "messages": messages, "response_format": rf,
                "temperature": 1, "seed": 3, "max_tokens": 200}),
        ),
        (
            "/v1/completions",
            json!({"model": "tiny", "prompt": "Pick a color.", "response_format": rf,
                "temperature": 1, "seed": 3, "max_tokens": 200}),
        ),
    ]
}

/// The answer's text on any of the routes.
fn text(path: &str, v: &Value) -> String {
    let t = match path {
        "/api/generate" => &v["response"],
        "/api/chat" => &v["message"]["content"],
        "/v1/chat/completions" => &v["choices"][0]["message"]["content"],
        _ => &v["choices"][0]["text"],
    };
    t.as_str().expect("text").to_string()
}

fn loaded(ctx: &TestContext) -> usize {
    let r = get_unix(&ctx.socket(), "/api/ps").unwrap();
    r.json()["models"].as_array().unwrap().len()
}

#[test]
fn bad_schemas_are_refused_by_name_before_loading() {
    let ctx = TestContext::with_tiny_model(512);
    let cases = [
        // Not a schema.
        (json!({"type": "objekt"}), "objekt"),
        (json!({"type": "object", "properties": ["a"]}), "properties"),
        (json!({"type": "string", "format": "colour"}), "colour"),
        // A keyword the engine does not enforce, however deep.
        (
            json!({"type": "object", "properties": {"tags": {"type": "array",
                "items": {"type": "string"}, "uniqueItems": true}}}),
            "uniqueItems",
        ),
        (
            json!({"oneOf": [{"type": "string"}, {"type": "null"}]}),
            "oneOf",
        ),
    ];
    for (schema, named) in &cases {
        for (path, body) in requests(schema) {
            let r = ctx.post_json(path, &body);
            assert_eq!(r.status, 400, "{path} {schema}: {}", r.text());
            let msg = if path.starts_with("/v1") {
                r.json()["error"]["message"].as_str().unwrap().to_string()
            } else {
                r.json()["error"].as_str().unwrap().to_string()
            };
            let field = if path.starts_with("/v1") {
                "`response_format`"
            } else {
                "`format`"
            };
            assert!(msg.contains(field), "{path}: {msg}");
            assert!(msg.contains(named), "{path}: {msg}");
        }
    }
    for (path, body) in [
        (
            "/api/chat",
            json!({"model": "tiny", "format": "yaml",
                "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny", "response_format": {"type": "json_schema"},
                "messages": [{"role": "user", "content": "x"}]}),
        ),
    ] {
        let r = ctx.post_json(path, &body);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
    assert_eq!(loaded(&ctx), 0, "a refused request loaded the model");

    // The daemon serves on, and holds the random model to the schema.
    let schema = json!({"type": "object", "properties": {
        "color": {"enum": ["red", "green", "blue"]},
        "shade": {"type": "integer", "minimum": 0, "maximum": 9}},
        "required": ["color", "shade"], "additionalProperties": false});
    for (path, body) in requests(&schema) {
        let r = ctx.post_json(path, &body);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let t = text(path, &r.json());
        let v: Value = serde_json::from_str(&t).unwrap_or_else(|e| panic!("{path}: {e}: {t:?}"));
        assert!(
            ["red", "green", "blue"].contains(&v["color"].as_str().unwrap()),
            "{path}: {t}"
        );
        assert!(v["shade"].as_u64().unwrap() <= 9, "{path}: {t}");
        assert_eq!(v.as_object().unwrap().len(), 2, "{path}: {t}");
    }
}

#[test]
fn json_object_and_streamed_schema() {
    let ctx = TestContext::with_tiny_model(512);
    // `json_object`: an object, and nothing after it.
    let r = ctx.post_json(
        "/v1/chat/completions",
        &json!({"model": "tiny", "response_format": {"type": "json_object"},
            "temperature": 0, "max_tokens": 300,
            "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let t = text("/v1/chat/completions", &v);
    assert!(t.starts_with('{'), "{t:?}");
    if v["choices"][0]["finish_reason"] == "stop" {
        assert!(
            serde_json::from_str::<Value>(&t).unwrap().is_object(),
            "{t}"
        );
    }

    // Streamed: the pieces join into a valid answer.
    let schema = json!({"type": "array", "items": {"type": "boolean"},
        "minItems": 2, "maxItems": 2});
    let r = ctx.post_json(
        "/api/generate",
        &json!({"model": "tiny", "prompt": "Two booleans:", "format": schema,
            "options": {"temperature": 1, "seed": 11, "num_predict": 100}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let lines = r.ndjson();
    let joined: String = lines
        .iter()
        .filter_map(|l| l["response"].as_str())
        .collect();
    let v: Value = serde_json::from_str(&joined).unwrap_or_else(|e| panic!("{e}: {joined:?}"));
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 2, "{joined}");
    assert!(a.iter().all(Value::is_boolean), "{joined}");
    assert_eq!(lines.last().unwrap()["done_reason"], "stop");
}
