//! The JSON/schema constraint engine: a `format` value (JSON from the
//! input) compiled for the tiny model's vocabulary, then followed for a few
//! tokens chosen by the input among those it allows.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use llmpm_gguf::tiny::{write_tiny_llama, TinyLlamaSpec};
use llmpm_gguf::GgufFile;
use llmpmd::llm::grammar;
use llmpmd::runner::guide::{Guide, Vocab};
use llmpmd::tokenizer::Tokenizer;

fn vocab() -> &'static Vocab {
    static V: OnceLock<Vocab> = OnceLock::new();
    V.get_or_init(|| {
        let mut bytes = Vec::new();
        write_tiny_llama(&TinyLlamaSpec::default(), &mut bytes).expect("tiny model");
        let g = GgufFile::from_bytes(&bytes).expect("tiny model parses");
        let t = Tokenizer::from_gguf(&g).expect("tiny tokenizer");
        let n = t.vocab_size();
        Vocab::new(Arc::new(t), n).expect("vocabulary compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (json, picks) = data.split_at(split);
    let Ok(format) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    let Ok(Some(c)) = grammar::from_format(Some(&format)) else {
        return;
    };
    if grammar::check(&c).is_err() {
        return;
    }
    let Ok(mut guide) = Guide::new(vocab(), &c) else {
        return;
    };
    for &p in picks.iter().take(32) {
        let Ok(mask) = guide.allowed() else {
            return;
        };
        let allowed: Vec<u32> = (0..mask.len() as u32)
            .filter(|&i| mask.is_allowed(i))
            .collect();
        if allowed.is_empty() || guide.finished() {
            return;
        }
        let tok = allowed[usize::from(p) % allowed.len()];
        if guide.commit(tok).is_err() {
            return;
        }
    }
});
