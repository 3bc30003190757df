//! Log-probabilities end to end on a generated model: Ollama's
//! `logprobs`/`top_logprobs` on /api/generate and /api/chat, OpenAI's on
//! /v1/chat/completions and the legacy shape on /v1/completions, streamed
//! and not, and the 400s for values out of range.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use llmpm_tests::TestContext;
use serde_json::{json, Value};

const GREEDY: &str = r#"{"temperature": 0, "num_predict": 10}"#;

fn greedy() -> Value {
    serde_json::from_str(GREEDY).unwrap()
}

/// Checks one token's entry: a log-probability, its bytes, `n` sorted
/// alternatives of which (greedy) the first is the token itself.
fn check_entry(e: &Value, n: usize, token_key: &str) {
    let lp = e["logprob"].as_f64().unwrap();
    assert!(lp <= 0.0, "{e}");
    let top = e["top_logprobs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    assert_eq!(top.len(), n, "{e}");
    let lps: Vec<f64> = top.iter().map(|t| t["logprob"].as_f64().unwrap()).collect();
    assert!(lps.windows(2).all(|w| w[0] >= w[1]), "{e}");
    if n > 0 {
        assert_eq!(
            top[0][token_key], e[token_key],
            "greedy takes the best: {e}"
        );
        assert!((lps[0] - lp).abs() < 1e-6, "{e}");
    }
}

/// The bytes of the tokens, as the answer's text shows them.
fn text_of(entries: &[Value]) -> String {
    let bytes: Vec<u8> = entries
        .iter()
        .flat_map(|e| e["bytes"].as_array().cloned().unwrap_or_default())
        .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The same tokens with the same alternatives, log-probabilities equal up
/// to rounding: the second request of a pair finds its prompt in the
/// prompt cache and evaluates only its last token, whose F32 products
/// candle sums in another order than within the whole prompt.
fn assert_same_entries(a: &[Value], b: &[Value]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    let strip = |e: &Value| -> (Value, Vec<f64>) {
        let mut e = e.clone();
        let mut lps = vec![e["logprob"].as_f64().unwrap()];
        e["logprob"] = Value::Null;
        for t in e["top_logprobs"].as_array_mut().into_iter().flatten() {
            lps.push(t["logprob"].as_f64().unwrap());
            t["logprob"] = Value::Null;
        }
        (e, lps)
    };
    for (x, y) in a.iter().zip(b) {
        let ((ex, lx), (ey, ly)) = (strip(x), strip(y));
        assert_eq!(ex, ey);
        for (p, q) in lx.iter().zip(&ly) {
            assert!((p - q).abs() < 1e-4, "{x} vs {y}");
        }
    }
}

#[test]
fn ollama_generate_and_chat_report_logprobs() {
    let ctx = TestContext::with_tiny_model(256);
    let body = json!({"model": "tiny", "prompt": "Hello", "raw": true, "options": greedy(),
        "logprobs": true, "top_logprobs": 3, "stream": false});
    let one = ctx.post_json("/api/generate", &body).json();
    let entries = one["logprobs"].as_array().unwrap().clone();
    assert_eq!(
        entries.len() as u64,
        one["eval_count"].as_u64().unwrap(),
        "{one}"
    );
    for e in &entries {
        check_entry(e, 3, "token");
    }
    assert_eq!(text_of(&entries), one["response"].as_str().unwrap());

    // Streamed: the lines' entries are the same tokens, each line with those
    // of its own text.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let lines = ctx.post_json("/api/generate", &streamed).ndjson();
    let all: Vec<Value> = lines
        .iter()
        .flat_map(|l| l["logprobs"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_same_entries(&all, &entries);
    assert!(lines.iter().filter(|l| l.get("logprobs").is_some()).count() > 1);

    // Without top_logprobs: the chosen token only.
    let mut plain = body.clone();
    plain["top_logprobs"] = json!(0);
    let r = ctx.post_json("/api/generate", &plain).json();
    let e = &r["logprobs"][0];
    assert!(e.get("top_logprobs").is_none(), "{e}");
    assert_eq!(e["logprob"], entries[0]["logprob"]);
    // Not asked: no field at all.
    let r = ctx.post_json("/api/generate",
        &json!({"model": "tiny", "prompt": "Hello", "raw": true, "options": greedy(), "stream": false}))
        .json();
    assert!(r.get("logprobs").is_none(), "{r}");

    // Chat, both ways.
    let chat = json!({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}],
        "options": greedy(), "logprobs": true, "top_logprobs": 2, "stream": false});
    let one = ctx.post_json("/api/chat", &chat).json();
    let entries = one["logprobs"].as_array().unwrap().clone();
    assert_eq!(
        entries.len() as u64,
        one["eval_count"].as_u64().unwrap(),
        "{one}"
    );
    entries.iter().for_each(|e| check_entry(e, 2, "token"));
    assert_eq!(
        text_of(&entries),
        one["message"]["content"].as_str().unwrap()
    );
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let all: Vec<Value> = ctx
        .post_json("/api/chat", &streamed)
        .ndjson()
        .iter()
        .flat_map(|l| l["logprobs"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_same_entries(&all, &entries);
}

#[test]
fn openai_routes_report_logprobs() {
    let ctx = TestContext::with_tiny_model(256);
    let body = json!({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0, "max_tokens": 10, "logprobs": true, "top_logprobs": 2});
    let r = ctx.post_json("/v1/chat/completions", &body).json();
    let content = r["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        content.len() as u64,
        r["usage"]["completion_tokens"].as_u64().unwrap()
    );
    content.iter().for_each(|e| check_entry(e, 2, "token"));
    assert_eq!(
        text_of(&content),
        r["choices"][0]["message"]["content"].as_str().unwrap()
    );
    // Streamed: each chunk's delta with its tokens' entries.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let text = ctx.post_json("/v1/chat/completions", &streamed).text();
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| *l != "[DONE]")
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let all: Vec<Value> = chunks
        .iter()
        .flat_map(|c| {
            c["choices"][0]["logprobs"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert_same_entries(&all, &content);
    // Not asked: null, as OpenAI answers.
    let r = ctx.post_json("/v1/chat/completions",
        &json!({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}),
    )
    .json();
    assert_eq!(r["choices"][0]["logprobs"], Value::Null);

    // Legacy completions: tokens, their logprobs, alternatives, offsets.
    let body = json!({"model": "tiny", "prompt": "Hello", "temperature": 0, "max_tokens": 10, "logprobs": 2});
    let r = ctx.post_json("/v1/completions", &body).json();
    let lp = &r["choices"][0]["logprobs"];
    let tokens: Vec<&str> = lp["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let text = r["choices"][0]["text"].as_str().unwrap();
    assert_eq!(
        tokens.len() as u64,
        r["usage"]["completion_tokens"].as_u64().unwrap(),
        "{r}"
    );
    let offsets: Vec<u64> = lp["text_offset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_u64().unwrap())
        .collect();
    assert_eq!(offsets.first(), Some(&0));
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    assert!(offsets.last().copied().unwrap_or(0) <= text.chars().count() as u64);
    for (i, top) in lp["top_logprobs"].as_array().unwrap().iter().enumerate() {
        let top = top.as_object().unwrap();
        // The two best and the chosen one (which greedy is among them).
        assert!((1..=2).contains(&top.len()), "{top:?}");
        let chosen = lp["token_logprobs"][i].as_f64().unwrap();
        let best = top
            .values()
            .map(|v| v.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!((best - chosen).abs() < 1e-6, "{top:?} vs {chosen}");
    }
    // Streamed legacy chunks add up to the same tokens and offsets.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let sse = ctx.post_json("/v1/completions", &streamed).text();
    let (mut st, mut so) = (Vec::new(), Vec::new());
    for l in sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|l| *l != "[DONE]")
    {
        let c: Value = serde_json::from_str(l).unwrap();
        let lp = &c["choices"][0]["logprobs"];
        st.extend(lp["tokens"].as_array().cloned().unwrap_or_default());
        so.extend(lp["text_offset"].as_array().cloned().unwrap_or_default());
    }
    assert_eq!(st, lp["tokens"].as_array().unwrap().clone());
    assert_eq!(so, lp["text_offset"].as_array().unwrap().clone());
}

#[test]
fn logprobs_out_of_range_is_a_400_naming_the_field() {
    let ctx = TestContext::with_tiny_model(256);
    for (path, body) in [
        (
            "/api/generate",
            json!({"model": "tiny", "prompt": "x", "logprobs": true, "top_logprobs": 99}),
        ),
        (
            "/api/chat",
            json!({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": -1}),
        ),
        (
            "/api/generate",
            json!({"model": "tiny", "prompt": "x", "top_logprobs": 2}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 99}),
        ),
        (
            "/v1/completions",
            json!({"model": "tiny", "prompt": "x", "logprobs": 21}),
        ),
    ] {
        let r = ctx.post_json(path, &body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text());
        assert!(
            r.text().contains("top_logprobs") || r.text().contains("`logprobs`"),
            "{path}: {}",
            r.text()
        );
    }
    // The daemon serves on.
    let r = ctx.post_json(
        "/api/generate",
        &json!({"model": "tiny", "prompt": "x", "stream": false, "options": {"num_predict": 2}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}
