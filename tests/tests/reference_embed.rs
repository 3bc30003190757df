//! Our BERT-family encoders against llama.cpp: on tiny generated `bert`
//! (mean and CLS pooling) and `nomic-bert` models with a WordPiece
//! vocabulary, in F32 and F16, our tokenizer turns the fixture's texts into
//! the ids llama.cpp's did, and every embedding of them (different lengths,
//! which llama.cpp ran as one batch; ours one by one and as one batch) has
//! cosine similarity >= 0.9999 with
//! llama.cpp's (`tests/fixtures/llamacpp_embed.json`, made by
//! bench/gen-reference-embed.py).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use candle_core::Device;
use llmpm_gguf::tiny::{write_tiny_llama, TinyArch, TinyLlamaSpec};
use llmpm_gguf::{FileType, GgufFile};
use llmpmd::runner::model::Model;
use llmpmd::tokenizer::Tokenizer;
use serde_json::Value;

fn fixture() -> Value {
    llmpm_tests::llamacpp_fixture("llamacpp_embed.json")
}

fn spec(arch: &str, gen: &Value, ftype: &str) -> TinyLlamaSpec {
    let n = |k: &str| u32::try_from(gen[k].as_u64().unwrap()).unwrap();
    TinyLlamaSpec {
        arch: TinyArch::from_name(arch).unwrap(),
        n_layer: n("layers"),
        n_embd: n("embd"),
        n_head: n("heads"),
        n_head_kv: n("heads"),
        n_ff: n("ff"),
        n_vocab: n("vocab"),
        context_length: n("ctx"),
        pooling: Some(n("pooling")),
        seed: gen["seed"].as_u64().unwrap(),
        ftype: match ftype {
            "f32" => FileType::F32,
            "f16" => FileType::F16,
            other => panic!("fixture ftype {other}"),
        },
        ..TinyLlamaSpec::default()
    }
}

#[test]
fn embeddings_match_llama_cpp() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let sentences: Vec<Vec<u32>> = fx["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
                .collect()
        })
        .collect();
    let texts: Vec<&str> = fx["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), sentences.len());
    assert!(texts.len() >= 8, "a batch of sentences");
    let models = fx["models"].as_array().unwrap();
    assert!(models.len() >= 3, "bert (mean, CLS) and nomic-bert");
    for m in models {
        let arch = m["arch"].as_str().unwrap();
        let pooling = m["gen"]["pooling"].as_u64().unwrap();
        let mut worst = 1.0f64;
        for case in m["cases"].as_array().unwrap() {
            let ftype = case["ftype"].as_str().unwrap();
            let path = dir.path().join(format!("{arch}-{pooling}-{ftype}.gguf"));
            let mut f = std::fs::File::create(&path).unwrap();
            write_tiny_llama(&spec(arch, &m["gen"], ftype), &mut f).unwrap();
            drop(f);
            let model = Model::load(&path, &Device::Cpu).unwrap();
            assert!(model.embeds_only());
            let tokenizer = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
            for (text, want) in texts.iter().zip(&sentences) {
                let got = tokenizer.encode(text, tokenizer.add_bos_default(), true);
                assert_eq!(&got, want, "{arch}: WordPiece ids of {text:?}");
            }
            let theirs = case["embeddings"].as_array().unwrap();
            assert_eq!(theirs.len(), sentences.len());
            let mut cache = model.new_cache(64);
            // One by one, and all in one batch as the runner embeds a
            // request's inputs (and llama.cpp ran them).
            let refs: Vec<&[u32]> = sentences.iter().map(Vec::as_slice).collect();
            let batch = model.embed_batch(&refs, &mut cache).unwrap();
            let one_by_one = sentences
                .iter()
                .map(|s| model.embed(s, &mut cache).unwrap());
            let ours = one_by_one.chain(batch);
            for ((s, want), got) in sentences
                .iter()
                .cycle()
                .zip(theirs.iter().cycle())
                .zip(ours)
            {
                let want: Vec<f64> = want
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                assert_eq!(got.len(), want.len(), "{arch} {ftype}: dimension");
                let norm: f64 = got.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
                assert!((norm.sqrt() - 1.0).abs() < 1e-4, "{arch}: normalised");
                let dot: f64 = got.iter().zip(&want).map(|(&a, b)| f64::from(a) * b).sum();
                let cos = dot / want.iter().map(|b| b * b).sum::<f64>().sqrt();
                worst = worst.min(cos);
                assert!(
                    cos >= 0.9999,
                    "{arch} pooling {pooling} {ftype}, {} tokens: cosine {cos}",
                    s.len()
                );
            }
        }
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{arch} pooling {pooling}: smallest cosine with llama.cpp {worst:.7}");
        }
    }
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

/// A tiny `bert` reranker (rank pooling, the `cls`/`cls.output` head) in
/// F32 and F16: each query/document pair laid out as llama-server lays it
/// out, and its score within 1e-4 of llama.cpp's
/// (`tests/fixtures/llamacpp_rerank.json`).
#[test]
fn rerank_scores_match_llama_cpp() {
    let fx = llmpm_tests::llamacpp_fixture("llamacpp_rerank.json");
    let dir = tempfile::tempdir().unwrap();
    let query = ids(&fx["query"]);
    let docs: Vec<Vec<u32>> = fx["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(ids)
        .collect();
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "f32 and f16");
    for case in cases {
        let ftype = case["ftype"].as_str().unwrap();
        let path = dir.path().join(format!("rerank-{ftype}.gguf"));
        let mut f = std::fs::File::create(&path).unwrap();
        write_tiny_llama(&spec("bert", &fx["gen"], ftype), &mut f).unwrap();
        drop(f);
        let model = Model::load(&path, &Device::Cpu).unwrap();
        let format = model.pair_format().expect("a reranker");
        let mut cache = model.new_cache(64);
        let mut worst = 0.0f64;
        let scores = case["scores"].as_array().unwrap();
        for (i, doc) in docs.iter().enumerate() {
            let pair = format.pair(&query, doc);
            assert_eq!(pair, ids(&case["pairs"][i]), "{ftype}: pair {i}");
            let got = model.embed(&pair, &mut cache).unwrap();
            let want: Vec<f64> = scores[i]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(got.len(), want.len(), "{ftype}: labels");
            for (g, w) in got.iter().zip(&want) {
                let d = (f64::from(*g) - w).abs();
                worst = worst.max(d);
                assert!(d < 1e-4, "{ftype} pair {i}: ours {g}, llama.cpp {w}");
            }
        }
        #[allow(clippy::print_stderr)]
        {
            eprintln!("rerank {ftype}: largest score difference from llama.cpp {worst:.2e}");
        }
    }
    // Not a reranker: no pair layout.
    let plain = dir.path().join("embed.gguf");
    let mut gen = fx["gen"].clone();
    gen["pooling"] = 2.into();
    let mut f = std::fs::File::create(&plain).unwrap();
    write_tiny_llama(&spec("bert", &gen, "f32"), &mut f).unwrap();
    drop(f);
    assert!(Model::load(&plain, &Device::Cpu)
        .unwrap()
        .pair_format()
        .is_none());
}
