//! Our candle Llama against llama.cpp: greedy decoding of a fixed prompt on
//! deterministic tiny GGUFs (Q8_0 and F16) must give exactly the token ids
//! llama.cpp gave (`tests/fixtures/llamacpp_greedy.json`, made by
//! `bench/gen-reference.sh`). The GGUFs are regenerated here from the
//! generator parameters the fixture records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use candle_core::Device;
use llmpmd::gguf::tiny::{write_tiny_llama, TinyLlamaSpec};
use llmpmd::gguf::FileType;
use llmpmd::runner::model::Model;
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/llamacpp_greedy.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

fn spec(gen: &Value, ftype: &str) -> TinyLlamaSpec {
    let n = |k: &str| u32::try_from(gen[k].as_u64().unwrap()).unwrap();
    TinyLlamaSpec {
        n_layer: n("layers"),
        n_embd: n("embd"),
        n_head: n("heads"),
        n_head_kv: n("kv_heads"),
        n_ff: n("ff"),
        n_vocab: n("vocab"),
        context_length: n("ctx"),
        seed: gen["seed"].as_u64().unwrap(),
        ftype: match ftype {
            "q8_0" => FileType::Q8_0,
            "q4_0" => FileType::Q4_0,
            "f16" => FileType::F16,
            other => panic!("fixture ftype {other}"),
        },
        // `llmpm-gen-gguf`'s default, which the fixture was made with.
        ..TinyLlamaSpec::default()
    }
}

/// How far our logits may be from llama.cpp's. F16 differs only in float
/// summation order and F16 rounding of activations; Q8_0 also in which
/// activations land on the other side of a rounding step, a discrete change
/// (see `daemon/src/runner/q8.rs`).
fn tolerance(ftype: &str) -> f32 {
    match ftype {
        "f16" => 2e-3,
        _ => 1e-2,
    }
}

fn load(dir: &std::path::Path, gen: &Value, ftype: &str) -> Model {
    let path = dir.join(format!("{ftype}.gguf"));
    let mut f = std::fs::File::create(&path).unwrap();
    write_tiny_llama(&spec(gen, ftype), &mut f).unwrap();
    drop(f);
    Model::load(&path, &Device::Cpu).unwrap()
}

#[test]
fn greedy_ids_match_llama_cpp() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 3, "the fixture covers Q8_0, Q4_0 and F16");
    for case in cases {
        let ftype = case["ftype"].as_str().unwrap();
        let model = load(dir.path(), &fx["gen"], ftype);
        let prompt = ids(&case["prompt"]);
        let expected = ids(&case["expected"]);
        let got = model.greedy(&prompt, expected.len()).unwrap();
        assert_eq!(
            got, expected,
            "{ftype}: our greedy ids differ from llama.cpp's"
        );
    }
}

/// Teacher-forced: on llama.cpp's own context at every step, our logits of
/// its top-4 tokens are within [`tolerance`] of its logits.
#[test]
fn logits_match_llama_cpp() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    for case in fx["cases"].as_array().unwrap() {
        let ftype = case["ftype"].as_str().unwrap();
        let tol = tolerance(ftype);
        let model = load(dir.path(), &fx["gen"], ftype);
        let prompt = ids(&case["prompt"]);
        let expected = ids(&case["expected"]);
        let mut cache = model.new_cache(prompt.len() + expected.len());
        let mut logits = model.forward(&prompt, &mut cache).unwrap();
        let mut worst = 0.0f32;
        for (step, top) in case["top"].as_array().unwrap().iter().enumerate() {
            for pair in top.as_array().unwrap() {
                let id = pair[0].as_u64().unwrap() as usize;
                let theirs = pair[1].as_f64().unwrap() as f32;
                let diff = (logits[id] - theirs).abs();
                worst = worst.max(diff);
                assert!(
                    diff <= tol,
                    "{ftype} step {step}: logit of token {id} is {} here, {theirs} in llama.cpp",
                    logits[id]
                );
            }
            logits = model.forward(&[expected[step]], &mut cache).unwrap();
        }
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{ftype}: largest logit difference from llama.cpp {worst:.6}");
        }
    }
}
