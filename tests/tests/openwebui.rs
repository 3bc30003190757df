//! What Open WebUI sends, replayed against the real daemon: its model
//! management requests carry both `name` and `model` (Ollama answers for
//! `model`), its RAG setup may call the legacy `/api/embeddings`, it lists
//! models through `/v1/models`, and every request leaves one line in the
//! daemon's log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use llmpm_tests::http::{call_unix, get_unix};
use llmpm_tests::registry::TestRegistry;
use llmpm_tests::{TestContext, TinyLlamaSpec};
use serde_json::{json, Value};

fn call(ctx: &TestContext, method: &str, path: &str, body: &Value) -> llmpm_tests::http::Response {
    call_unix(&ctx.socket(), method, path, body.to_string().as_bytes()).unwrap()
}

fn names(ctx: &TestContext) -> Vec<String> {
    get_unix(&ctx.socket(), "/api/tags").unwrap().json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn name_and_model_together_are_answered_for_model() {
    let ctx = TestContext::with_tiny_model(256);
    let registry = TestRegistry::start();
    let remote = format!("{}/team/tiny:1", registry.host());

    // show: `model` wins over a `name` that names nothing.
    let r = call(
        &ctx,
        "POST",
        "/api/show",
        &json!({"name": "nosuch", "model": "tiny"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["model_info"]["general.architecture"], "llama");
    // `name` alone still works (older clients).
    let r = call(&ctx, "POST", "/api/show", &json!({"name": "tiny"}));
    assert_eq!(r.status, 200, "{}", r.text());

    // create from the model under a new name.
    let r = call(
        &ctx,
        "POST",
        "/api/create",
        &json!({"name": "ignored", "model": "copy", "from": "tiny", "stream": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "success");
    assert!(names(&ctx).contains(&"copy:latest".to_owned()));
    assert!(!names(&ctx).iter().any(|n| n.starts_with("ignored")));

    // push and pull, as Open WebUI's model page sends them.
    let r = call(
        &ctx,
        "POST",
        "/api/copy",
        &json!({"source": "copy", "destination": remote}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        &ctx,
        "POST",
        "/api/push",
        &json!({"name": remote, "model": remote, "insecure": true, "stream": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "success");

    // delete both local names, then pull the pushed one back.
    for m in ["copy", remote.as_str()] {
        let r = call(
            &ctx,
            "DELETE",
            "/api/delete",
            &json!({"name": "tiny", "model": m}),
        );
        assert_eq!(r.status, 200, "{m}: {}", r.text());
    }
    let left = names(&ctx);
    assert!(left.contains(&"tiny:latest".to_owned()), "{left:?}");
    assert!(!left.iter().any(|n| n.contains("team/tiny")), "{left:?}");
    let r = call(
        &ctx,
        "POST",
        "/api/pull",
        &json!({"name": remote, "model": remote, "insecure": true, "stream": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "success");
    assert!(names(&ctx).iter().any(|n| n.contains("team/tiny:1")));
}

#[test]
fn legacy_embeddings_route() {
    let ctx = TestContext::with_tiny_model(256);
    let r = call(
        &ctx,
        "POST",
        "/api/embeddings",
        &json!({"model": "tiny", "prompt": "hello world", "options": {"temperature": 0}, "keep_alive": "1m"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let e = v["embedding"].as_array().unwrap();
    // The tiny model's hidden size, and the vector `/api/embed` gives.
    assert_eq!(e.len(), TinyLlamaSpec::default().n_embd as usize);
    let r = call(
        &ctx,
        "POST",
        "/api/embed",
        &json!({"model": "tiny", "input": "hello world"}),
    );
    assert_eq!(r.json()["embeddings"][0], v["embedding"]);
    // An empty prompt loads the model and answers an empty vector (Ollama).
    let r = call(
        &ctx,
        "POST",
        "/api/embeddings",
        &json!({"model": "tiny", "prompt": ""}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"embedding": []}));
    // An unknown model is a 404, a bad option a 400 naming it.
    let r = call(
        &ctx,
        "POST",
        "/api/embeddings",
        &json!({"model": "nosuch", "prompt": "x"}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = call(
        &ctx,
        "POST",
        "/api/embeddings",
        &json!({"model": "tiny", "prompt": "x", "options": {"num_ctx": -5}}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("num_ctx"), "{}", r.text());
}

#[test]
fn v1_models_owner_and_time_as_ollama() {
    let ctx = TestContext::with_tiny_model(256);
    let r = call(
        &ctx,
        "POST",
        "/api/copy",
        &json!({"source": "tiny", "destination": "acme/tiny:v2"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let tags = get_unix(&ctx.socket(), "/api/tags").unwrap().json();
    let list = get_unix(&ctx.socket(), "/v1/models").unwrap().json();
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{list}");
    for (id, owner) in [("tiny:latest", "library"), ("acme/tiny:v2", "acme")] {
        let m = data
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {list}"));
        assert_eq!(m["owned_by"], owner, "{m}");
        assert_eq!(m["object"], "model");
        // `created` is the model's modification time, as /api/tags has it.
        let t = tags["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == id)
            .unwrap();
        let modified = t["modified_at"].as_str().unwrap();
        let created = m["created"].as_u64().unwrap();
        assert!(created > 1_600_000_000, "{m}");
        let modified = humantime::parse_rfc3339(modified)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(modified, created, "{m}");
    }
    let r = get_unix(&ctx.socket(), "/v1/models/acme/tiny:v2").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], "acme/tiny:v2");
    assert_eq!(r.json()["owned_by"], "acme");
    let r = get_unix(&ctx.socket(), "/v1/models/nosuch").unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.json()["error"]["message"].is_string(), "{}", r.text());
}

#[test]
fn one_log_line_per_request() {
    let ctx = TestContext::with_tiny_model(256);
    let r = call(&ctx, "POST", "/api/show", &json!({"model": "tiny"}));
    assert_eq!(r.status, 200);
    let r = call(&ctx, "POST", "/api/show", &json!({"model": "nosuch"}));
    assert_eq!(r.status, 404);
    let r = call(
        &ctx,
        "POST",
        "/api/generate",
        &json!({"model": "tiny", "prompt": "hi", "options": {"num_predict": 3}}),
    );
    assert_eq!(r.status, 200);
    let r = get_unix(&ctx.socket(), "/api/nowhere").unwrap();
    assert_eq!(r.status, 404);
    let log = ctx.daemon_log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" request ")).collect();
    let has = |parts: &[&str]| lines.iter().any(|l| parts.iter().all(|p| l.contains(p)));
    assert!(
        has(&[
            "method=POST",
            "path=/api/show",
            "status=200",
            "model=tiny",
            "duration_ms="
        ]),
        "{log}"
    );
    assert!(
        has(&["path=/api/show", "status=404", "model=nosuch"]),
        "{log}"
    );
    assert!(
        has(&["path=/api/generate", "status=200", "model=tiny"]),
        "{log}"
    );
    assert!(
        has(&["method=GET", "path=/api/nowhere", "status=404"]),
        "{log}"
    );
    // One line per request: the streamed generation is not logged twice.
    let gen = lines
        .iter()
        .filter(|l| l.contains("path=/api/generate"))
        .count();
    assert_eq!(gen, 1, "{log}");
}

#[test]
fn embedding_dimensions_and_base64_are_honoured() {
    let ctx = TestContext::with_tiny_model(256);
    let full = call(
        &ctx,
        "POST",
        "/api/embed",
        &json!({"model": "tiny", "input": "hello"}),
    )
    .json();
    let full: Vec<f64> = full["embeddings"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let r = call(
        &ctx,
        "POST",
        "/api/embed",
        &json!({"model": "tiny", "input": "hello", "dimensions": 8}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let short: Vec<f64> = r.json()["embeddings"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    // The first 8 values, normalized again (Ollama's `dimensions`).
    assert_eq!(short.len(), 8);
    let norm: f64 = full[..8].iter().map(|x| x * x).sum::<f64>().sqrt();
    for (s, f) in short.iter().zip(&full) {
        assert!((s - f / norm).abs() < 1e-5, "{s} vs {}", f / norm);
    }
    // OpenAI's base64: the same floats, little-endian f32.
    let v1 = |extra: Value| {
        let mut body = json!({"model": "tiny", "input": ["hello"]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        call(&ctx, "POST", "/v1/embeddings", &body)
    };
    let b64 = v1(json!({"encoding_format": "base64", "dimensions": 8})).json();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let floats: Vec<f64> = bytes
        .chunks(4)
        .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
        .collect();
    assert_eq!(floats.len(), 8);
    for (a, b) in floats.iter().zip(&short) {
        assert!((a - b).abs() < 1e-6);
    }
    for (extra, field) in [
        (json!({"encoding_format": "hex"}), "encoding_format"),
        (json!({"dimensions": 0}), "dimensions"),
    ] {
        let r = v1(extra);
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains(field), "{}", r.text());
    }
}
