//! Fill-in-the-middle end to end: `suffix` on `/api/generate` and
//! `/v1/completions` builds the model's FIM prompt, from a TEMPLATE that
//! reads `.Suffix` or from the FIM tokens its GGUF declares, and the runner
//! is given exactly that prompt (the same answer and prompt size as the
//! expected prompt sent raw). Continue's autocomplete request is answered;
//! a model without the `insert` capability gets Ollama's 400.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use llmpm_gguf::tiny::tiny_llama_writer;
use llmpm_tests::http::call_unix;
use llmpm_tests::{assert_ok, TestContext, TinyLlamaSpec};
use serde_json::{json, Value};

/// A template that reads `.Suffix`, with markers that are plain text to the
/// tiny vocabulary.
const FIM_TEMPLATE: &str = "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\
                            {{- else }}[user] {{ .Prompt }}{{ end }}";

const PREFIX: &str = "def add(a, b):\n    ";
const SUFFIX: &str = "\n    return c\n";

fn post(ctx: &TestContext, path: &str, body: &Value) -> llmpm_tests::http::Response {
    call_unix(&ctx.socket(), "POST", path, body.to_string().as_bytes()).unwrap()
}

/// Three models: `fimtmpl` (TEMPLATE with `.Suffix`), `fimtok` (FIM token
/// ids declared in the GGUF, the built-in Llama 3 template) and `plain`.
fn setup() -> TestContext {
    let ctx = TestContext::started();
    ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    let mut w = tiny_llama_writer(&TinyLlamaSpec::default()).unwrap();
    // Ids of three of the tiny vocabulary's special tokens (its last five:
    // begin_of_text, end_of_text, start_header, end_header, eot).
    let n = TinyLlamaSpec::default().n_vocab;
    w.add_kv("tokenizer.ggml.fim_pre_token_id", n - 3).unwrap();
    w.add_kv("tokenizer.ggml.fim_suf_token_id", n - 2).unwrap();
    w.add_kv("tokenizer.ggml.fim_mid_token_id", n - 5).unwrap();
    std::fs::write(ctx.work.join("fimtok.gguf"), w.to_bytes()).unwrap();
    for (name, modelfile) in [
        (
            "fimtmpl",
            format!(
                "FROM ./tiny.gguf\nPARAMETER num_ctx 256\nTEMPLATE \"\"\"{FIM_TEMPLATE}\"\"\"\n"
            ),
        ),
        (
            "fimtok",
            "FROM ./fimtok.gguf\nPARAMETER num_ctx 256\n".to_owned(),
        ),
        (
            "plain",
            "FROM ./tiny.gguf\nPARAMETER num_ctx 256\n".to_owned(),
        ),
    ] {
        std::fs::write(ctx.work.join(name), modelfile).unwrap();
        assert_ok(&ctx.cli(&["create", name, "-f", name]));
    }
    ctx
}

/// The prompt `_debug_render_only` says the model would get.
fn rendered(ctx: &TestContext, model: &str) -> String {
    let r = post(
        ctx,
        "/api/generate",
        &json!({"model": model, "prompt": PREFIX, "suffix": SUFFIX,
            "_debug_render_only": true, "stream": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["_debug_info"]["rendered_template"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Greedy text and prompt size of a non-streamed `/api/generate`.
fn generated(ctx: &TestContext, body: Value) -> (String, u64) {
    let mut body = body;
    body["stream"] = json!(false);
    body["options"] = json!({"temperature": 0, "num_predict": 6});
    let r = post(ctx, "/api/generate", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    (
        v["response"].as_str().unwrap().to_owned(),
        v["prompt_eval_count"].as_u64().unwrap(),
    )
}

#[test]
fn suffix_builds_the_models_fim_prompt() {
    let ctx = setup();
    let framed =
        "<|start_header_id|>def add(a, b):\n    <|end_header_id|>\n    return c\n<|begin_of_text|>";
    for (model, expected) in [
        ("fimtmpl", format!("<PRE> {PREFIX} <SUF>{SUFFIX} <MID>")),
        ("fimtok", framed.to_owned()),
    ] {
        assert_eq!(rendered(&ctx, model), expected, "{model}");
        // The runner gets that prompt: the same tokens, the same answer.
        let fim = generated(
            &ctx,
            json!({"model": model, "prompt": PREFIX, "suffix": SUFFIX}),
        );
        let raw = generated(
            &ctx,
            json!({"model": model, "prompt": expected, "raw": true}),
        );
        assert_eq!(fim, raw, "{model}");
        // /v1/completions' `suffix` is the same request.
        let r = post(
            &ctx,
            "/v1/completions",
            &json!({"model": model, "prompt": PREFIX, "suffix": SUFFIX,
                "temperature": 0, "max_tokens": 6}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["choices"][0]["text"], fim.0.as_str(), "{model}: {v}");
        assert_eq!(v["usage"]["prompt_tokens"], fim.1, "{model}: {v}");
    }
    // The declared FIM tokens are special tokens: each is one prompt token.
    let (_, fimtok_tokens) = generated(
        &ctx,
        json!({"model": "fimtok", "prompt": PREFIX, "suffix": SUFFIX}),
    );
    let (_, text_tokens) = generated(
        &ctx,
        json!({"model": "plain", "prompt": format!("{PREFIX}{SUFFIX}"), "raw": true}),
    );
    assert!(
        fimtok_tokens <= text_tokens + 3,
        "{fimtok_tokens} vs {text_tokens}"
    );
    // Both advertise it, as Ollama computes capabilities.
    for model in ["fimtmpl", "fimtok"] {
        let caps = post(&ctx, "/api/show", &json!({"model": model})).json()["capabilities"].clone();
        assert!(
            caps.as_array().unwrap().contains(&json!("insert")),
            "{model}: {caps}"
        );
    }
    // Without `suffix` the template's chat branch is used as before.
    let r = post(
        &ctx,
        "/api/generate",
        &json!({"model": "fimtmpl", "prompt": "hi", "_debug_render_only": true}),
    );
    assert_eq!(r.json()["_debug_info"]["rendered_template"], "[user] hi");
}

#[test]
fn continue_autocomplete_request_is_answered() {
    let ctx = setup();
    // What Continue's Ollama provider sends for FIM (`_streamFim`): no
    // `raw`, its own stop words, keep_alive in seconds, streamed.
    let body = json!({
        "model": "fimtmpl",
        "prompt": PREFIX,
        "suffix": SUFFIX,
        "options": {"temperature": 0.01, "top_p": 0.9, "num_predict": 6,
            "stop": ["\n\n", "<END>"], "num_ctx": 256},
        "keep_alive": 1800,
        "stream": true,
    });
    let r = post(&ctx, "/api/generate", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let lines = r.ndjson();
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true, "{lines:?}");
    assert!(last["prompt_eval_count"].as_u64().unwrap() > 0);
    let text: String = lines
        .iter()
        .filter_map(|l| l["response"].as_str())
        .collect();
    assert!(!text.contains("\n\n"), "a stop string leaked: {text:?}");
}

#[test]
fn suffix_without_insert_or_with_what_it_cannot_use_is_refused() {
    let ctx = setup();
    let r = post(
        &ctx,
        "/api/generate",
        &json!({"model": "plain", "prompt": PREFIX, "suffix": SUFFIX}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], "\"plain\" does not support insert");
    let r = post(
        &ctx,
        "/v1/completions",
        &json!({"model": "plain", "prompt": PREFIX, "suffix": SUFFIX}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("does not support insert"), "{}", r.text());
    for (extra, field) in [
        (json!({"raw": true}), "`raw`"),
        (json!({"system": "be brief"}), "`system`"),
        (json!({"template": "{{ .Prompt }}"}), "`template`"),
    ] {
        let mut body = json!({"model": "fimtmpl", "prompt": PREFIX, "suffix": SUFFIX});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = post(&ctx, "/api/generate", &body);
        assert_eq!(r.status, 400, "{extra}: {}", r.text());
        assert!(r.text().contains(field), "{extra}: {}", r.text());
    }
    // A request template that reads `.Suffix` is used.
    let r = post(
        &ctx,
        "/api/generate",
        &json!({"model": "plain", "prompt": "a", "suffix": "b",
            "template": "{{ .Prompt }}|{{ .Suffix }}", "_debug_render_only": true}),
    );
    // `plain` lacks `insert`, so even its own template does not make it FIM.
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post(
        &ctx,
        "/api/generate",
        &json!({"model": "fimtok", "prompt": "a", "suffix": "b",
            "template": "{{ .Prompt }}|{{ .Suffix }}", "_debug_render_only": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["_debug_info"]["rendered_template"], "a|b");
    // The daemon serves on.
    let (text, _) = generated(&ctx, json!({"model": "fimtmpl", "prompt": "hi"}));
    assert!(text.len() < 200);
}
