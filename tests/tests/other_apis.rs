//! The other APIs local clients speak, against the real daemon with the tiny
//! generated models: OpenAI Responses (`/v1/responses`), Anthropic Messages
//! (`/v1/messages`, `count_tokens`) and rerank (`/api/rerank`,
//! `/v1/rerank`): their answer and event-stream shapes, each bad input a
//! clear 4xx in the API's own error shape after which the daemon serves on,
//! and `x-api-key` and `/metrics` behind the API key on TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use llmpm_gguf::tiny::{TinyArch, TinyLlamaSpec};
use llmpm_tests::http::{call_tcp, get_unix};
use llmpm_tests::{assert_ok, TestContext};
use serde_json::{json, Value};

/// The SSE events of a body: `(event name, data)`.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let name = f.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
            let data = f.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name.to_owned(), serde_json::from_str(data).unwrap())
        })
        .collect()
}

fn serves_on(ctx: &TestContext) {
    assert_eq!(get_unix(&ctx.socket(), "/api/tags").unwrap().status, 200);
}

#[test]
fn responses_answer_and_stream_in_openai_shapes() {
    let ctx = TestContext::with_tiny_model(256);
    let ask = json!({"model": "tiny", "input": "hello", "instructions": "be brief",
                     "max_output_tokens": 5, "temperature": 0});
    let r = ctx.post_json("/v1/responses", &ask);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["object"].as_str(), v["status"].as_str()),
        (Some("response"), Some("completed"))
    );
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(v["usage"]["output_tokens"], 5);
    assert_eq!(v["instructions"], "be brief");

    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let r = ctx.post_json("/v1/responses", &streamed);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let evs = events(&r.text());
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["response.created", "response.in_progress"]);
    assert_eq!(names.last(), Some(&"response.completed"));
    for (i, (name, data)) in evs.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i);
    }
    let deltas: String = evs
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    let done = &evs.last().unwrap().1["response"];
    assert_eq!(
        done["output"][0]["content"][0]["text"].as_str(),
        Some(deltas.as_str())
    );
    assert_eq!(
        deltas,
        v["output"][0]["content"][0]["text"].as_str().unwrap()
    );
}

#[test]
fn responses_bad_input_is_a_400_naming_it() {
    let ctx = TestContext::with_tiny_model(256);
    for (body, says) in [
        (
            json!({"model": "tiny", "input": [{"type": "computer_call", "id": "x"}]}),
            "unknown `input[0].type` \"computer_call\"",
        ),
        (
            json!({"model": "tiny", "input": "hi", "previous_response_id": "resp_1"}),
            "`previous_response_id` is not supported",
        ),
        (
            json!({"model": "tiny", "input": [{"type": "function_call_output", "call_id": "c9", "output": "1"}]}),
            "`input[0].call_id` \"c9\"",
        ),
        (
            json!({"model": "tiny", "input": "hi", "tools": [{"type": "web_search"}]}),
            "`tools[0]`",
        ),
        (
            json!({"model": "tiny", "input": "hi", "text": {"format": {"type": "json_schema"}}}),
            "`text.format`",
        ),
        (json!({"model": "tiny"}), "missing `input`"),
    ] {
        let r = ctx.post_json("/v1/responses", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let e = r.json();
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{}",
            r.text()
        );
        serves_on(&ctx);
    }
}

#[test]
fn messages_answer_and_stream_in_anthropic_shapes() {
    let ctx = TestContext::with_tiny_model(256);
    let ask = json!({"model": "tiny", "max_tokens": 4, "system": "be brief",
                     "messages": [{"role": "user", "content": "hello"}], "temperature": 0});
    let r = ctx.post_json("/v1/messages", &ask);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["type"].as_str(), v["role"].as_str()),
        (Some("message"), Some("assistant"))
    );
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["output_tokens"], 4);
    let input = v["usage"]["input_tokens"].as_u64().unwrap();
    assert!(input > 0);

    let mut counted = ask.clone();
    counted.as_object_mut().unwrap().remove("max_tokens");
    let c = ctx.post_json("/v1/messages/count_tokens", &counted);
    assert_eq!(c.status, 200, "{}", c.text());
    assert_eq!(c.json()["input_tokens"].as_u64(), Some(input));

    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let r = ctx.post_json("/v1/messages", &streamed);
    assert_eq!(r.status, 200);
    let evs = events(&r.text());
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    let text: String = evs
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(text, v["content"][0]["text"].as_str().unwrap_or_default());
    assert_eq!(evs[evs.len() - 2].1["delta"]["stop_reason"], "max_tokens");
}

#[test]
fn messages_bad_input_is_a_400_in_anthropic_shape() {
    let ctx = TestContext::with_tiny_model(256);
    let user = json!([{"role": "user", "content": "hi"}]);
    for (body, says) in [
        (
            json!({"model": "tiny", "max_tokens": 8, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_nope", "content": "42"}]}]}),
            "`messages[0].content[0].tool_use_id` \"toolu_nope\" answers no `tool_use` block",
        ),
        (
            json!({"model": "tiny", "messages": user}),
            "missing `max_tokens`",
        ),
        (
            json!({"model": "tiny", "max_tokens": 8, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {}}]}]}),
            "`messages[0].content[0]` is a \"image\" block",
        ),
        (
            json!({"model": "tiny", "max_tokens": 8, "messages": user,
                "tools": [{"type": "bash_20250124", "name": "bash"}]}),
            "`tools[0]`",
        ),
        (
            json!({"model": "tiny", "max_tokens": 8, "messages": []}),
            "`messages` must not be empty",
        ),
    ] {
        let r = ctx.post_json("/v1/messages", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let e = r.json();
        assert_eq!(e["type"], "error");
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{}",
            r.text()
        );
        serves_on(&ctx);
    }
    let r = ctx.post_json(
        "/v1/messages",
        &json!({"model": "nosuch", "max_tokens": 8, "messages": user}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
}

#[test]
fn rerank_needs_a_reranker_and_bounded_input() {
    let ctx = TestContext::with_tiny_model(256);
    let spec = TinyLlamaSpec {
        arch: TinyArch::Bert,
        n_layer: 2,
        n_embd: 64,
        n_head: 2,
        n_head_kv: 2,
        n_ff: 128,
        n_vocab: 300,
        context_length: 512,
        pooling: Some(4),
        ..TinyLlamaSpec::default()
    };
    ctx.tiny_gguf("rr.gguf", &spec);
    std::fs::write(ctx.work.join("Rerank"), "FROM ./rr.gguf\n").unwrap();
    assert_ok(&ctx.cli(&["create", "rr", "-f", "Rerank"]));
    let show = ctx.post_json("/api/show", &json!({"model": "rr"})).json();
    assert_eq!(show["capabilities"], json!(["rerank"]));

    let many: Vec<String> = (0..10_000).map(|i| format!("document {i}")).collect();
    for path in ["/api/rerank", "/v1/rerank"] {
        let r = ctx.post_json(
            path,
            &json!({"model": "rr", "query": "q", "documents": many}),
        );
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().contains("at most 1024"),
            "{}",
            r.text()
        );
        serves_on(&ctx);
    }
    let r = ctx.post_json(
        "/api/rerank",
        &json!({"model": "tiny", "query": "q", "documents": ["a"]}),
    );
    assert_eq!(r.status, 400);
    let e = r.json()["error"].as_str().unwrap().to_owned();
    assert!(e.contains("\"tiny\" is not a reranker"), "{e}");
    for (path, body) in [
        ("/api/embed", json!({"model": "rr", "input": "a"})),
        ("/v1/embeddings", json!({"model": "rr", "input": "a"})),
    ] {
        let r = ctx.post_json(path, &body);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.text().contains("is a reranker"), "{}", r.text());
    }
    let r = ctx.post_json(
        "/v1/rerank",
        &json!({"model": "rr", "query": "q", "documents": []}),
    );
    assert_eq!(r.status, 400);
    serves_on(&ctx);
}

#[test]
fn anthropic_key_header_and_metrics_behind_the_api_key() {
    let mut ctx = TestContext::new();
    ctx.daemon_env
        .push(("LLMPM_API_KEY".into(), "s3cret".into()));
    ctx.start();
    let get = |path: &str, header: Option<(&str, &str)>| {
        let headers: Vec<(&str, &str)> = header.into_iter().collect();
        call_tcp(ctx.port(), "GET", path, &headers, b"").unwrap()
    };
    assert_eq!(get("/metrics", None).status, 401);
    assert_eq!(get("/metrics", Some(("x-api-key", "wrong"))).status, 401);
    let r = get("/metrics", Some(("x-api-key", "s3cret")));
    assert_eq!(r.status, 200);
    let refused = "llmpm_requests_total{route=\"/metrics\",status=\"401\"} 2";
    assert!(r.text().contains(refused), "{}", r.text());
    let bearer = get("/api/tags", Some(("Authorization", "Bearer s3cret")));
    assert_eq!(bearer.status, 200);
}

/// A generated reranker served end to end: `/api/rerank` and `/v1/rerank`
/// answer each document's score as the model computes it in process for
/// the pair the runner lays out (its own codec, llama-server's layout; the
/// head itself is checked against llama.cpp in reference_embed.rs), best
/// first, cut to `top_n`.
#[test]
fn rerank_scores_pairs_as_the_model_does() {
    use candle_core::Device;
    use llmpmd::runner::{codec, model::Model};
    let ctx = TestContext::started();
    let spec = TinyLlamaSpec {
        arch: TinyArch::Bert,
        n_layer: 2,
        n_embd: 64,
        n_head: 2,
        n_head_kv: 2,
        n_ff: 128,
        n_vocab: 300,
        context_length: 512,
        pooling: Some(4),
        ..TinyLlamaSpec::default()
    };
    let path = ctx.tiny_gguf("rr.gguf", &spec);
    std::fs::write(ctx.work.join("Rerank"), "FROM ./rr.gguf\n").unwrap();
    assert_ok(&ctx.cli(&["create", "rr", "-f", "Rerank"]));

    let query = "the quick brown fox";
    let docs = [
        "a lazy dog",
        "the fox jumps over the dog",
        "hello world",
        "cat sat on mat",
    ];
    let model = Model::load(&path, &Device::Cpu).unwrap();
    let file = llmpm_gguf::GgufFile::open(&path).unwrap();
    let codec = codec::for_gguf(&file).unwrap();
    let format = model.pair_format().unwrap();
    let q = codec.encode(query, false, false);
    let mut cache = model.new_cache(64);
    let want: Vec<f32> = docs
        .iter()
        .map(|d| {
            let pair = format.pair(&q, &codec.encode(d, false, false));
            model.embed(&pair, &mut cache).unwrap()[0]
        })
        .collect();

    for path in ["/api/rerank", "/v1/rerank"] {
        let r = ctx.post_json(
            path,
            &json!({"model": "rr", "query": query, "documents": docs, "top_n": 3,
                    "return_documents": true}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let results = v["results"].as_array().unwrap();
        assert_eq!(results.len(), 3);
        let mut previous = f64::INFINITY;
        for res in results {
            let i = usize::try_from(res["index"].as_u64().unwrap()).unwrap();
            let score = res["relevance_score"].as_f64().unwrap();
            assert!(
                (score - f64::from(want[i])).abs() < 1e-6,
                "{i}: {score} vs {}",
                want[i]
            );
            assert!(score <= previous, "best first");
            previous = score;
            assert_eq!(res["document"]["text"], docs[i]);
        }
        // The one left out is the worst.
        let worst = want.iter().copied().fold(f32::INFINITY, f32::min);
        assert!(f64::from(worst) <= previous);
        assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    }
}

/// `llmpm_pull_bytes_total` counts what pulls receive and
/// `llmpm_blob_verification_failures_total` a blob whose bytes do not match
/// its digest.
#[test]
fn pull_metrics_move() {
    use llmpm_tests::http::call_unix;
    use llmpm_tests::registry::{Fault, TestRegistry};
    let metric = |ctx: &TestContext, name: &str| -> f64 {
        let text = get_unix(&ctx.socket(), "/metrics").unwrap().text();
        let line = text
            .lines()
            .find(|l| l.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let reg = TestRegistry::start();
    let ctx = TestContext::started();
    let weights: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let layers = |w: &[u8]| {
        vec![
            ("application/vnd.ollama.image.model", w.to_vec()),
            ("application/vnd.ollama.image.template", b"t".to_vec()),
        ]
    };
    let publish = |repo: &str, w: &[u8]| {
        let l = layers(w);
        let l: Vec<(&str, &[u8])> = l.iter().map(|(m, b)| (*m, b.as_slice())).collect();
        reg.publish_ollama_model(repo, "v1", &l);
    };
    let pull = |repo: &str| {
        let body = json!({"model": reg.model(repo, "v1"), "insecure": true, "stream": false});
        call_unix(
            &ctx.socket(),
            "POST",
            "/api/pull",
            body.to_string().as_bytes(),
        )
        .unwrap()
    };
    publish("ns/good", &weights);
    let before = metric(&ctx, "llmpm_pull_bytes_total");
    assert_eq!(pull("ns/good").status, 200);
    assert!(metric(&ctx, "llmpm_pull_bytes_total") - before >= weights.len() as f64);

    let mut other = weights.clone();
    other[0] ^= 1;
    publish("ns/bad", &other);
    reg.faults().set(Fault::WrongBytes {
        digest: llmpm_tests::registry::sha256_digest(&other),
    });
    let failures = metric(&ctx, "llmpm_blob_verification_failures_total");
    assert_ne!(pull("ns/bad").status, 200);
    assert_eq!(
        metric(&ctx, "llmpm_blob_verification_failures_total") - failures,
        1.0
    );
}

/// A runner killed under the daemon counts in `llmpm_runner_restarts_total`
/// and the next request starts it again.
#[test]
fn a_killed_runner_counts_as_a_restart() {
    let mut ctx = TestContext::with_tiny_model(256);
    let gen = json!({"model": "tiny", "prompt": "hi", "stream": false,
                     "options": {"num_predict": 2}});
    assert_eq!(ctx.post_json("/api/generate", &gen).status, 200);
    let daemon = ctx.daemon().pid();
    let runners = llmpm_tests::child_pids(daemon);
    assert_eq!(runners.len(), 1, "{runners:?}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &runners[0]])
        .status()
        .unwrap();
    assert!(killed.success());
    let restarts = || {
        let text = get_unix(&ctx.socket(), "/metrics").unwrap().text();
        text.lines()
            .find_map(|l| l.strip_prefix("llmpm_runner_restarts_total "))
            .map(str::to_owned)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while restarts().as_deref() != Some("1") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(restarts().as_deref(), Some("1"));
    assert_eq!(ctx.post_json("/api/generate", &gen).status, 200);
}

/// A deleted model's series leave `/metrics` (a store whose names come and
/// go must not grow the daemon), and the other models' stay.
#[test]
fn a_deleted_models_metrics_are_forgotten() {
    let ctx = TestContext::with_tiny_model(256);
    let copy = json!({"source": "tiny", "destination": "gone"});
    assert_eq!(ctx.post_json("/api/copy", &copy).status, 200);
    for model in ["tiny", "gone"] {
        let gen = json!({"model": model, "prompt": "hi", "stream": false,
                         "options": {"num_predict": 2}});
        assert_eq!(ctx.post_json("/api/generate", &gen).status, 200);
    }
    let series = |ctx: &TestContext, model: &str| {
        let text = get_unix(&ctx.socket(), "/metrics").unwrap().text();
        let label = format!("llmpm_prompt_tokens_total{{model=\"{model}:latest\"}}");
        text.lines().any(|l| l.starts_with(&label))
    };
    assert!(series(&ctx, "tiny") && series(&ctx, "gone"));
    let del = llmpm_tests::http::call_unix(
        &ctx.socket(),
        "DELETE",
        "/api/delete",
        json!({"model": "gone"}).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(del.status, 200);
    assert!(
        !series(&ctx, "gone"),
        "the deleted model's series is still there"
    );
    assert!(series(&ctx, "tiny"));
}
