#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use candle_core::Device;
use llmpm_gguf::tiny::{tiny_llama_bytes, TinyLlamaSpec};
use llmpm_gguf::GgufFile;

use super::*;
use crate::llm::protocol::{CompletionChunk, CompletionRequest, SamplerConfig};

#[test]
fn fit_keeps_start_and_end_and_room_to_answer() {
    let t: Vec<u32> = (0..20).collect();
    // Ollama's limit: 11 - (11 - 4) / 2 = 8 tokens, 3 left to answer.
    let f = fit_prompt(t.clone(), 11, 4);
    assert_eq!(f, [0, 1, 2, 3, 16, 17, 18, 19]);
    assert_eq!(fit_prompt(t[..5].to_vec(), 11, 4).len(), 5);
    assert_eq!(fit_prompt(t[..10].to_vec(), 11, 4).len(), 10);
    // A negative num_keep keeps the start.
    assert_eq!(fit_prompt(t.clone(), 11, -1), (0..10).collect::<Vec<u32>>());
    // num_keep past the context: the start, one token of room.
    assert_eq!(fit_prompt(t, 11, 50).len(), 10);
}

/// The tiny model and its tokenizer.
fn tiny() -> (Model, Arc<dyn TextCodec>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, tiny_llama_bytes(&TinyLlamaSpec::default()).unwrap()).unwrap();
    let model = Model::load(&path, &Device::Cpu).unwrap();
    let codec = crate::tokenizer::Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    (model, Arc::new(codec))
}

fn request(prompt: &str) -> CompletionRequest {
    CompletionRequest {
        prompt: prompt.into(),
        add_bos: true,
        num_predict: 12,
        num_keep: 4,
        shift: true,
        stop: Vec::new(),
        sampler: SamplerConfig {
            temperature: 0.0,
            ..SamplerConfig::default()
        },
        constraint: None,
        preserved_tokens: Vec::new(),
        logprobs: None,
        context: Vec::new(),
        return_context: false,
    }
}

/// Runs `rounds` of prompts on one engine of `parallel` slots evaluating
/// `batch` tokens a step: each round's prompts are queued together before
/// the engine sees them, and a round starts when the last ended. Returns
/// each answer's text and last line.
fn run(
    rounds: &[Vec<String>],
    parallel: usize,
    batch: usize,
) -> Vec<Vec<(String, CompletionChunk)>> {
    let (model, codec) = tiny();
    let engine = Engine::new(model, codec, 2048, batch, parallel);
    let (jobs, queue) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || engine.run(queue));
    let mut out = Vec::new();
    for prompts in rounds {
        let mut rxs = Vec::new();
        for p in prompts {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            jobs.send(Job::Completion {
                req: Box::new(request(p)),
                tx,
                cancel: Arc::new(AtomicBool::new(false)),
            })
            .unwrap();
            rxs.push(rx);
        }
        out.push(
            rxs.into_iter()
                .map(|mut rx| {
                    let mut text = String::new();
                    loop {
                        let line = rx.blocking_recv().expect("an answer");
                        let c: CompletionChunk = serde_json::from_slice(&line)
                            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&line)));
                        text.push_str(&c.content);
                        if c.done {
                            break (text, c);
                        }
                    }
                })
                .collect(),
        );
    }
    drop(jobs);
    thread.join().unwrap();
    out
}

/// Prompt tokens evaluated, not taken from a cache.
fn evaluated(c: &CompletionChunk) -> usize {
    c.prompt_eval_count - c.prompt_cache_count
}

fn words(tag: &str, n: usize) -> String {
    (0..n).map(|i| format!("{tag}{i} ")).collect()
}

#[test]
fn parallel_prompts_share_a_prefix_evaluated_once() {
    let system = words("sys", 80);
    let prompts: Vec<String> = (0..4)
        .map(|i| format!("{system}\nquestion {i}: {}", words(&format!("q{i}x"), 4)))
        .collect();
    // Alone: each on an engine of its own.
    let alone: Vec<(String, CompletionChunk)> = prompts
        .iter()
        .map(|p| run(&[vec![p.clone()]], 1, 64).remove(0).remove(0))
        .collect();
    // Together, arriving at once, prefilled 64 tokens a step.
    let together = run(std::slice::from_ref(&prompts), 4, 64).remove(0);
    let full: usize = alone.iter().map(|(_, c)| c.prompt_eval_count).sum();
    let evaluated: usize = together.iter().map(|(_, c)| evaluated(c)).sum();
    for ((t, _), (a, _)) in together.iter().zip(&alone) {
        assert_eq!(t, a, "the same answer with a copied prefix");
    }
    let one = alone[0].1.prompt_eval_count;
    let suffix = one - common_len(&prompts);
    assert!(
        evaluated <= one + 3 * (suffix + 8),
        "evaluated {evaluated} of {full} prompt tokens (one prompt: {one}, its own part ~{suffix})"
    );
}

/// Roughly the tokens the prompts share (by bytes; the tiny tokenizer
/// spells most bytes alone).
fn common_len(prompts: &[String]) -> usize {
    let a = prompts[0].as_bytes();
    let n = prompts[1..]
        .iter()
        .map(|p| {
            a.iter()
                .zip(p.as_bytes())
                .take_while(|(x, y)| x == y)
                .count()
        })
        .min()
        .unwrap_or(0);
    let (_, codec) = tiny();
    codec.encode(&prompts[0][..n], true, true).len()
}

#[test]
fn a_warm_slot_answers_as_a_cold_one() {
    let p = words("w", 50);
    let q = format!("{} and more", words("w", 30));
    let rounds = [
        vec![p.clone()],
        vec![p.clone()],
        vec![q.clone()],
        vec![p.clone()],
    ];
    let out = run(&rounds, 1, 32);
    let cold_q = run(&[vec![q]], 1, 32).remove(0).remove(0);
    assert_eq!(out[1][0].0, out[0][0].0);
    assert_eq!(evaluated(&out[1][0].1), 1);
    assert_eq!(out[1][0].1.prompt_eval_count, out[0][0].1.prompt_eval_count);
    assert_eq!(out[2][0].0, cold_q.0);
    assert!(evaluated(&out[2][0].1) < evaluated(&cold_q.1));
    assert_eq!(cold_q.1.prompt_cache_count, 0);
    assert_eq!(out[3][0].0, out[0][0].0);
}
