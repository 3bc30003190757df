//! A random-weight model sampled at temperature 1 under a constraint: every
//! answer that ends parses and validates. The engine runs whole (batched
//! sequences, sampler, guide), as the runner does.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use llmpm_gguf::tiny::{tiny_llama_bytes, TinyLlamaSpec};
use llmpm_gguf::GgufFile;
use serde_json::{json, Value};

use super::*;
use crate::llm::protocol::{CompletionChunk, CompletionRequest, SamplerConfig};
use crate::runner::batch::{Engine, Job};
use crate::runner::codec::VocabCodec;
use crate::runner::model::Model;

/// What one generation gave: its text, and how it ended.
#[derive(Debug)]
struct Answer {
    text: String,
    done_reason: Option<String>,
    error: Option<String>,
}

fn tiny() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, tiny_llama_bytes(&TinyLlamaSpec::default()).unwrap()).unwrap();
    (dir, path)
}

/// Runs `reqs` on the tiny model, four at a time in one engine.
fn run(reqs: Vec<CompletionRequest>, real_tokenizer: bool) -> Vec<Answer> {
    let (_dir, path) = tiny();
    let model = Model::load(&path, &candle_core::Device::Cpu).unwrap();
    let file = GgufFile::open(&path).unwrap();
    let codec: Arc<dyn TextCodec> = if real_tokenizer {
        Arc::new(crate::tokenizer::Tokenizer::from_gguf(&file).unwrap())
    } else {
        Arc::new(VocabCodec::from_gguf(&file).unwrap())
    };
    let engine = Engine::new(model, codec, 512, 64, 4);
    let (jobs, queue) = std::sync::mpsc::channel();
    let mut outs = Vec::new();
    for req in reqs {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));
        jobs.send(Job::Completion {
            req: Box::new(req),
            tx,
            cancel,
        })
        .unwrap();
        outs.push(rx);
    }
    drop(jobs);
    engine.run(queue);
    outs.into_iter()
        .map(|mut rx| {
            let mut a = Answer {
                text: String::new(),
                done_reason: None,
                error: None,
            };
            while let Ok(line) = rx.try_recv() {
                let v: Value = serde_json::from_slice(&line).unwrap();
                if let Some(e) = v.get("error") {
                    a.error = Some(e.as_str().unwrap().to_string());
                    continue;
                }
                let c: CompletionChunk = serde_json::from_value(v).unwrap();
                a.text.push_str(&c.content);
                if c.done {
                    a.done_reason = c.done_reason;
                }
            }
            a
        })
        .collect()
}

fn request(constraint: Constraint, seed: u64, num_predict: i64) -> CompletionRequest {
    CompletionRequest {
        prompt: "The llama answers in JSON:".into(),
        add_bos: true,
        num_predict,
        num_keep: 0,
        shift: true,
        stop: Vec::new(),
        sampler: SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            seed: Some(seed),
            ..SamplerConfig::default()
        },
        constraint: Some(constraint),
        preserved_tokens: Vec::new(),
        logprobs: None,
        context: Vec::new(),
        return_context: false,
    }
}

/// A validator for the keywords these tests use (the interop suite checks
/// the real model's answers with Python's `jsonschema`).
fn valid(v: &Value, s: &Value, root: &Value) -> Result<(), String> {
    let fail = |why: &str| Err(format!("{v} against {s}: {why}"));
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target = root.pointer(r.trim_start_matches('#')).unwrap();
        return valid(v, target, root);
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        if !any.iter().any(|a| valid(v, a, root).is_ok()) {
            return fail("no anyOf branch");
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return fail("not in enum");
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            return fail("not the const");
        }
    }
    let ty_ok = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    };
    match s.get("type") {
        Some(Value::String(t)) if !ty_ok(t) => return fail("type"),
        Some(Value::Array(ts)) if !ts.iter().any(|t| ty_ok(t.as_str().unwrap())) => {
            return fail("type")
        }
        _ => {}
    }
    if let Some(n) = v.as_f64() {
        if s.get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
            || s.get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n > m)
        {
            return fail("range");
        }
    }
    if let Some(t) = v.as_str() {
        let n = t.chars().count() as u64;
        if s.get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
            || s.get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| n < m)
        {
            return fail("length");
        }
    }
    if let Some(items) = v.as_array() {
        let n = items.len() as u64;
        if s.get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
            || s.get("minItems")
                .and_then(Value::as_u64)
                .is_some_and(|m| n < m)
        {
            return fail("item count");
        }
        if let Some(is) = s.get("items") {
            for i in items {
                valid(i, is, root)?;
            }
        }
    }
    if let Some(o) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !o.contains_key(r.as_str().unwrap()) {
                return fail("missing required");
            }
        }
        for (k, x) in o {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => valid(x, ps, root)?,
                None if s.get("additionalProperties") == Some(&json!(false)) => {
                    return fail("additional property")
                }
                None => {}
            }
        }
    }
    Ok(())
}

/// Schemas whose every value is bounded, so that a random model finishes
/// them within the token budget.
fn bounded_schemas() -> Vec<Value> {
    vec![
        json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 6},
            "age": {"type": "integer", "minimum": 0, "maximum": 120}},
            "required": ["name", "age"], "additionalProperties": false}),
        json!({"type": "object", "properties": {
            "color": {"enum": ["red", "green", "blue"]},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]},
                "minItems": 1, "maxItems": 3}},
            "required": ["color", "ok", "tags"], "additionalProperties": false}),
        json!({"$defs": {"point": {"type": "object", "properties": {
                "x": {"type": "integer", "minimum": -9, "maximum": 9},
                "y": {"type": "integer", "minimum": -9, "maximum": 9}},
                "required": ["x", "y"], "additionalProperties": false}},
            "type": "object", "properties": {
                "from": {"$ref": "#/$defs/point"}, "to": {"$ref": "#/$defs/point"}},
            "required": ["from", "to"], "additionalProperties": false}),
        json!({"type": "object", "properties": {
            "v": {"anyOf": [{"type": "null"}, {"type": "boolean"},
                {"type": "string", "maxLength": 3}]},
            "kind": {"const": "answer"}},
            "required": ["kind", "v"], "additionalProperties": false}),
        json!({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 99},
            "minItems": 2, "maxItems": 4}),
    ]
}

#[test]
fn random_model_output_always_validates() {
    let schemas = bounded_schemas();
    let mut reqs = Vec::new();
    for s in &schemas {
        for seed in 0..4 {
            reqs.push(request(
                Constraint::JsonSchema { schema: s.clone() },
                seed,
                300,
            ));
        }
    }
    let answers = run(reqs, true);
    for (i, a) in answers.iter().enumerate() {
        let s = &schemas[i / 4];
        assert_eq!(a.error, None, "{s}");
        assert_eq!(a.done_reason.as_deref(), Some("stop"), "{s}: {a:?}");
        let v: Value = serde_json::from_str(&a.text).unwrap_or_else(|e| panic!("{e}: {a:?}"));
        valid(&v, s, s).unwrap();
    }
    // Properties come in the schema's order, one line, `": "` and `", "`.
    let first = &answers[0].text;
    assert!(first.starts_with("{\"name\": \""), "{first}");
    assert!(first.contains("\", \"age\": "), "{first}");
}

#[test]
fn the_vocabulary_codec_is_guided_too() {
    // The fallback codec is not canonical: the engine forces no tokens.
    let s = bounded_schemas().remove(1);
    let reqs = (0..3)
        .map(|seed| request(Constraint::JsonSchema { schema: s.clone() }, seed, 300))
        .collect();
    for a in run(reqs, false) {
        assert_eq!(a.done_reason.as_deref(), Some("stop"), "{a:?}");
        valid(&serde_json::from_str(&a.text).unwrap(), &s, &s).unwrap();
    }
}

#[test]
fn any_json_object_and_a_tool_call_grammar() {
    let tool = r#"start: "<tool_call>\n" %json{"type":"object","properties":{"name":{"const":"f"}},"required":["name"]} "\n</tool_call>""#;
    let mut reqs = Vec::new();
    for seed in 0..4 {
        reqs.push(request(Constraint::Json, seed, 400));
        reqs.push(request(
            Constraint::Lark {
                grammar: tool.into(),
            },
            seed,
            400,
        ));
    }
    let answers = run(reqs, true);
    let mut ended = 0;
    for pair in answers.chunks(2) {
        let (obj, call) = (&pair[0], &pair[1]);
        assert_eq!((&obj.error, &call.error), (&None, &None));
        // An unbounded object may run out of tokens; what ends is whole.
        assert!(obj.text.starts_with('{'), "{obj:?}");
        if obj.done_reason.as_deref() == Some("stop") {
            ended += 1;
            let v: Value = serde_json::from_str(&obj.text).unwrap();
            assert!(v.is_object());
        }
        assert!(call.text.starts_with("<tool_call>\n{"), "{call:?}");
        if call.done_reason.as_deref() == Some("stop") {
            ended += 1;
            let inner = call.text["<tool_call>\n".len()..]
                .strip_suffix("\n</tool_call>")
                .unwrap_or_else(|| panic!("{call:?}"));
            let v: Value = serde_json::from_str(inner).unwrap();
            assert_eq!(v["name"], "f", "{call:?}");
        }
    }
    assert!(ended > 0, "no answer ended: {answers:?}");
}

#[test]
fn a_grammar_that_does_not_compile_is_an_error_line() {
    let answers = run(
        vec![request(
            Constraint::Lark {
                grammar: "start: nowhere".into(),
            },
            0,
            10,
        )],
        true,
    );
    let e = answers[0].error.as_deref().unwrap();
    assert!(e.contains("constraint"), "{e}");
}

#[test]
fn a_complete_output_keeps_what_a_stop_string_held_back() {
    // "b" could start the stop string "bc": the stream holds it until it
    // knows, and the grammar's end must release it.
    let mut req = request(
        Constraint::Lark {
            grammar: r#"start: "ab""#.into(),
        },
        0,
        10,
    );
    req.stop = vec!["bc".into()];
    let a = run(vec![req], true).remove(0);
    assert_eq!(
        (a.text.as_str(), a.done_reason.as_deref()),
        ("ab", Some("stop")),
        "{a:?}"
    );
}

#[test]
fn free_requests_go_on_while_the_vocabulary_compiles() {
    // The first constrained request waits for the vocabulary; the free one
    // behind it is served meanwhile; none is lost.
    let s = bounded_schemas().remove(0);
    let constrained = |seed| request(Constraint::JsonSchema { schema: s.clone() }, seed, 300);
    let mut free = request(Constraint::Json, 9, 5);
    free.constraint = None;
    let answers = run(vec![constrained(1), free, constrained(2)], true);
    assert_eq!(answers[1].error, None);
    assert!(answers[1].done_reason.is_some(), "{:?}", answers[1]);
    for a in [&answers[0], &answers[2]] {
        assert_eq!(a.done_reason.as_deref(), Some("stop"), "{a:?}");
        valid(&serde_json::from_str(&a.text).unwrap(), &s, &s).unwrap();
    }
}
