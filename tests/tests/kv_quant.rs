//! The quantized KV cache (`LLMPM_KV_CACHE_TYPE=q8_0|q4_0`) on the real
//! Qwen2.5-Coder-0.5B: the greedy answers to the fixture's prompts match
//! f16's for 16 tokens with q8_0 (parting only where f16's own choice is a
//! near tie), and the perplexity over a fixed
//! text rises by less than 1 % (q4_0's is printed: on this model it is as
//! poor as llama.cpp's). Needs the model of
//! tests/fetch-models.sh: without it this test says so and skips, and
//! fails under `LLMPM_TEST_STRICT=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use candle_core::Device;
use llmpm_gguf::GgufFile;
use llmpmd::runner::model::Model;
use llmpmd::runner::KvType;

const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

const TEXT: &str = "The river ran low that autumn, and the people of the valley \
walked its dry bed to look at stones that no one living had seen. Some were \
smooth and grey, others striped with red, and a few held the shapes of shells \
from a sea that had left long ago. The schoolteacher brought her class and \
told them how water carves a canyon grain by grain, how a flood can move in \
an hour what a century of quiet rain cannot. When the rains came back in \
November the stones went under again, but the children kept the ones they \
had carried home, and for years afterwards they argued about which of them \
had found the oldest.";

fn model_path() -> Option<PathBuf> {
    llmpm_tests::real_model(QWEN)
}

fn load(path: &std::path::Path, kv: KvType) -> Model {
    let mut m = Model::load(path, &Device::Cpu).unwrap();
    m.set_kv_type(kv);
    m
}

/// Perplexity of `tokens` (each predicted from those before it).
fn perplexity(m: &Model, tokens: &[u32]) -> f64 {
    let mut cache = m.new_cache(tokens.len());
    let mut logits = m.forward(&tokens[..1], &mut cache).unwrap();
    let mut nll = 0f64;
    for &next in &tokens[1..] {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
        nll -= f64::from(logits[next as usize] - max) - sum.ln();
        logits = m.forward(&[next], &mut cache).unwrap();
    }
    (nll / (tokens.len() - 1) as f64).exp()
}

/// Greedy ids for `n` steps and, at each, the top-2 logit margin.
fn greedy_with_margins(m: &Model, prompt: &[u32], n: usize) -> (Vec<u32>, Vec<f32>) {
    let mut cache = m.new_cache(prompt.len() + n);
    let mut logits = m.forward(prompt, &mut cache).unwrap();
    let (mut ids, mut margins) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let next = llmpmd::runner::model::argmax(&logits);
        let second = logits
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != next as usize)
            .map(|(_, &l)| l)
            .fold(f32::NEG_INFINITY, f32::max);
        ids.push(next);
        margins.push(logits[next as usize] - second);
        logits = m.forward(&[next], &mut cache).unwrap();
    }
    (ids, margins)
}

/// Where f16's top-2 margin is below this, a q8_0 cache may choose the
/// other token: its rounding moves this model's logits by a few hundredths
/// (and activations rounded to Q8 blocks amplify a flip), as two correct
/// implementations part on a near tie (llama.cpp's own margin on the first
/// prompt's third token is 0.09).
const NEAR_TIE: f32 = 0.25;

#[test]
#[allow(clippy::print_stderr)] // The figures for the closing note.
fn q8_0_cache_keeps_qwens_answers_and_perplexity() {
    let Some(path) = model_path() else { return };
    let prompts: Vec<Vec<u32>> = llmpm_tests::real_fixture_cases(QWEN)
        .iter()
        .map(|case| {
            case["prompt"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
                .collect()
        })
        .collect();
    assert!(prompts.len() >= 2, "the fixture has two Qwen prompts");
    let codec = llmpmd::tokenizer::Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    let text = codec.encode(TEXT, false, false);
    assert!(text.len() > 100, "{} tokens", text.len());

    let f16 = load(&path, KvType::F16);
    let want: Vec<_> = prompts
        .iter()
        .map(|p| greedy_with_margins(&f16, p, 16))
        .collect();
    let base = perplexity(&f16, &text);
    drop(f16);
    let q8 = load(&path, KvType::Q8_0);
    let mut whole = 0;
    for (prompt, (ids, margins)) in prompts.iter().zip(&want) {
        let (got, _) = greedy_with_margins(&q8, prompt, 16);
        let same = got.iter().zip(ids).take_while(|(a, b)| a == b).count();
        eprintln!("q8_0 equals f16 for {same} of 16 tokens (f16 margins {margins:.3?})");
        if same < ids.len() {
            assert!(
                margins[same] < NEAR_TIE,
                "q8_0 chose {} where f16 chose {} with a margin of {} (prompt {prompt:?})",
                got[same],
                ids[same],
                margins[same]
            );
        } else {
            whole += 1;
        }
    }
    // A prompt whose 16 steps are all clear (the counting one) matches whole.
    let clear = want
        .iter()
        .filter(|(_, m)| m.iter().all(|&x| x >= NEAR_TIE))
        .count();
    assert!(clear >= 1, "no fixture prompt with 16 clear steps");
    assert!(
        whole >= clear,
        "{whole} whole matches, {clear} clear prompts"
    );
    let ppl8 = perplexity(&q8, &text);
    drop(q8);
    let ppl4 = perplexity(&load(&path, KvType::Q4_0), &text);
    eprintln!(
        "perplexity over {} tokens: f16 {base:.4}, q8_0 {ppl8:.4} ({:+.3} %), q4_0 {ppl4:.4} ({:+.3} %)",
        text.len(),
        (ppl8 / base - 1.0) * 100.0,
        (ppl4 / base - 1.0) * 100.0
    );
    assert!(
        ppl8 < base * 1.01,
        "q8_0 perplexity {ppl8} against f16's {base}"
    );
    // q4_0 is not held to anything on this model: llama.cpp's own q4_0
    // cache (rotated as ours) turns its greedy answer into nonsense from the
    // first token (bench/llamacpp/greedy.cpp with LLMPM_GREEDY_KV=q4_0).
    assert!(ppl4.is_finite());
}
