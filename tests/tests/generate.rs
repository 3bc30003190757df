//! End to end: the real `llmpmd` spawns the real `llmpmd runner` for a tiny
//! generated GGUF and answers `/api/generate`, `/api/chat` and `/api/embed`;
//! bad options are refused; a killed runner is an error and then restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use llmpm_tests::http::{call_unix, Stream};
use llmpm_tests::{assert_ok, TestContext};
use serde_json::{json, Value};

#[test]
fn generate_chat_embed_and_bad_options() {
    let ctx = TestContext::with_tiny_model(256);
    let opts = json!({"temperature": 0, "num_predict": 8});

    // Streamed: text lines, then a last line with Ollama's timing fields.
    let r = ctx.post_json(
        "/api/generate",
        &json!({"model": "tiny", "prompt": "Hello", "options": opts}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let lines = r.ndjson();
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true, "{lines:?}");
    for field in [
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ] {
        assert!(last[field].is_u64(), "{field} missing: {last}");
    }
    assert!(last["eval_count"].as_u64().unwrap() <= 8);
    let streamed: String = lines
        .iter()
        .filter_map(|l| l["response"].as_str())
        .collect();

    // Not streamed, greedy: the same text in one body.
    let r = ctx.post_json(
        "/api/generate",
        &json!({"model": "tiny", "prompt": "Hello", "options": opts, "stream": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let one = r.json();
    assert_eq!(one["response"].as_str().unwrap(), streamed);
    assert!(["stop", "length"].contains(&one["done_reason"].as_str().unwrap()));

    // Same seed, same output at a high temperature.
    let seeded = json!({"model": "tiny", "prompt": "Hi", "stream": false,
        "options": {"temperature": 1.5, "seed": 42, "num_predict": 12}});
    let a = ctx.post_json("/api/generate", &seeded).json();
    let b = ctx.post_json("/api/generate", &seeded).json();
    assert_eq!(a["response"], b["response"]);

    // Chat.
    let r = ctx.post_json(
        "/api/chat",
        &json!({"model": "tiny", "stream": false, "options": opts,
            "messages": [{"role": "user", "content": "Hi"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["message"]["role"], "assistant");

    // Empty prompt loads; with keep_alive 0 it unloads.
    let r = ctx.post_json("/api/generate", &json!({"model": "tiny"}));
    assert_eq!(r.json()["done_reason"], "load");
    let r = ctx.post_json("/api/generate", &json!({"model": "tiny", "keep_alive": 0}));
    assert_eq!(r.json()["done_reason"], "unload");

    // Embeddings: unit vectors of the hidden size.
    let r = ctx.post_json(
        "/api/embed",
        &json!({"model": "tiny", "input": ["a", "b c"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let e = r.json();
    let vs = e["embeddings"].as_array().unwrap();
    assert_eq!(vs.len(), 2);
    let norm: f64 = vs[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap().powi(2))
        .sum();
    assert!((norm - 1.0).abs() < 1e-3);

    // Bad options: 400 naming the field.
    for (opt, field) in [
        (json!({"num_ctx": 1_000_000_000}), "num_ctx"),
        (json!({"num_predict": -3}), "num_predict"),
        (json!({"top_p": 7}), "top_p"),
        (json!({"nonsense": 1}), "nonsense"),
    ] {
        let r = ctx.post_json(
            "/api/generate",
            &json!({"model": "tiny", "prompt": "x", "options": opt}),
        );
        assert_eq!(r.status, 400, "{opt}: {}", r.text());
        assert!(r.text().contains(field), "{opt}: {}", r.text());
    }
}

#[test]
fn killed_runner_is_an_error_then_restarts() {
    let ctx = TestContext::with_tiny_model(2048);
    let daemon_pid = ctx.daemon.as_ref().unwrap().pid();
    // A long streamed generation, read up to its first line: the runner is busy.
    let mut stream = Stream::open(
        &ctx.socket(),
        "/api/generate",
        &json!({"model": "tiny", "prompt": "Hello",
            "options": {"temperature": 0, "num_predict": 1500}}),
    );
    assert_eq!(stream.next().unwrap()["done"], false);
    let killed = llmpm_tests::child_pids(daemon_pid);
    assert_eq!(killed.len(), 1, "one runner: {killed:?}");
    std::process::Command::new("kill")
        .args(["-9", &killed[0]])
        .status()
        .unwrap();
    // The request it was serving ends with Ollama's error line, not a
    // truncated stream or a made-up `done`.
    let last = stream.finish();
    let err = last["error"].as_str().unwrap_or_default();
    assert!(err.contains("stopped unexpectedly"), "{last}");
    assert!(last.get("done").is_none(), "{last}");
    // The daemon still serves, and the next request starts a new runner.
    let req = json!({"model": "tiny", "prompt": "Hello", "stream": false,
        "options": {"temperature": 0, "num_predict": 4}});
    let r = ctx.post_json("/api/generate", &req);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["done"], true);
    let now = llmpm_tests::child_pids(daemon_pid);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, killed, "a new runner answered");
}

#[test]
fn openai_routes() {
    let ctx = TestContext::with_tiny_model(256);
    let chat = json!({"model": "tiny", "max_tokens": 6, "temperature": 0,
        "messages": [{"role": "user", "content": "Hi"}]});
    let r = ctx.post_json("/v1/chat/completions", &chat);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 6);

    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let r = ctx.post_json("/v1/chat/completions", &streamed);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = r.text();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(text.contains("chat.completion.chunk"), "{text}");

    let r = ctx.post_json(
        "/v1/completions",
        &json!({"model": "tiny", "prompt": "Once", "max_tokens": 4}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "text_completion");

    let r = ctx.post_json(
        "/v1/embeddings",
        &json!({"model": "tiny", "input": "hello"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["data"][0]["object"], "embedding");

    let r = llmpm_tests::http::get_unix(&ctx.socket(), "/v1/models").unwrap();
    assert!(r.text().contains("\"tiny"), "{}", r.text());

    // OpenAI's error shape.
    let r = ctx.post_json(
        "/v1/chat/completions",
        &json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.json()["error"]["message"].is_string(), "{}", r.text());
    let r = ctx.post_json(
        "/v1/chat/completions",
        &json!({"model": "tiny", "top_p": 7, "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
}

#[test]
fn cli_run_one_shot_and_piped() {
    let ctx = TestContext::with_tiny_model(256);
    std::fs::write(
        ctx.work.join("Modelfile"),
        "FROM ./tiny.gguf\nPARAMETER num_ctx 256\nPARAMETER num_predict 5\n",
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", "short", "-f", "Modelfile"]));
    let out = ctx.cli(&["run", "short", "Hello", "there", "--verbose"]);
    assert_ok(&out);
    assert!(
        llmpm_tests::stderr(&out).contains("eval count"),
        "{}",
        llmpm_tests::stderr(&out)
    );
    let mut cmd = ctx.cli_cmd(&["run", "short"]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"Hello from a pipe\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    assert!(llmpm_tests::stdout(&out).ends_with('\n'));
}

#[test]
fn long_chat_is_cut_to_the_context() {
    let ctx = TestContext::with_tiny_model(256);
    let mut messages = vec![json!({"role": "system", "content": "You are terse."})];
    for i in 0..40 {
        messages
            .push(json!({"role": "user", "content": format!("Question number {i} about llamas?")}));
        messages.push(json!({"role": "assistant", "content": "The llama is a camelid."}));
    }
    messages.push(json!({"role": "user", "content": "And now?"}));
    let r = ctx.post_json(
        "/api/chat",
        &json!({"model": "tiny", "stream": false, "messages": messages,
            "options": {"num_ctx": 128, "num_predict": 4, "temperature": 0}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let n = r.json()["prompt_eval_count"].as_u64().unwrap();
    assert!(n > 0 && n < 128, "prompt of {n} tokens");
}

/// `format: "json"` holds even a random model to a JSON object; a format
/// that is neither "json" nor a schema is refused.
#[test]
fn format_json_constrains_the_output() {
    let ctx = TestContext::with_tiny_model(256);
    let r = ctx.post_json(
        "/api/generate",
        &json!({"model": "tiny", "prompt": "Hello", "format": "json", "stream": false,
            "options": {"temperature": 0.8, "seed": 7, "num_predict": 200}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let text = v["response"].as_str().unwrap();
    // Whole JSON when the grammar ended it; when num_predict cut it, a
    // prefix of JSON (the parser runs out of input, nothing else is wrong).
    match serde_json::from_str::<Value>(text) {
        Ok(parsed) => {
            assert_eq!(v["done_reason"], "stop", "{v}");
            assert!(parsed.is_object(), "{text:?}");
        }
        Err(e) => {
            assert_eq!(v["done_reason"], "length", "{v}");
            assert!(e.is_eof(), "not a prefix of JSON ({e}): {text:?}");
        }
    }
    let r = ctx.post_json(
        "/api/generate",
        &json!({"model": "tiny", "prompt": "Hello", "format": 5, "stream": false}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("`format`"), "{}", r.text());
}

/// A model the runner cannot load: the client gets the runner's reason,
/// not a pointer to a log, and the daemon keeps serving. An architecture
/// the runner does not know is refused at create, naming it and the ones
/// it runs.
#[test]
fn unloadable_model_says_why() {
    use llmpm_gguf::writer::GgufWriter;
    let ctx = TestContext::started();
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", "mamba9").unwrap();
    w.add_kv("mamba9.block_count", 1u32).unwrap();
    std::fs::write(ctx.work.join("odd.gguf"), w.to_bytes()).unwrap();
    std::fs::write(ctx.work.join("Modelfile"), "FROM ./odd.gguf\n").unwrap();
    let out = ctx.cli(&["create", "odd", "-f", "Modelfile"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unsupported model architecture `mamba9`")
            && err.contains("`qwen3`")
            && err.contains("`phi3`"),
        "{err}"
    );
    // A known architecture whose file lacks what it needs loads in the
    // runner, which says what is missing.
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", "llama").unwrap();
    w.add_kv("llama.block_count", 1u32).unwrap();
    std::fs::write(ctx.work.join("odd.gguf"), w.to_bytes()).unwrap();
    assert_ok(&ctx.cli(&["create", "odd", "-f", "Modelfile"]));
    let r = ctx.post_json(
        "/api/generate",
        &json!({"model": "odd", "prompt": "hi", "stream": false}),
    );
    assert_eq!(r.status, 500, "{}", r.text());
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(msg.contains("`llama.embedding_length`"), "{msg}");
    let r = call_unix(&ctx.socket(), "GET", "/api/version", b"").unwrap();
    assert_eq!(r.status, 200);
}
