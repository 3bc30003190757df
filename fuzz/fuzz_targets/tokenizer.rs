//! Tokenizers (the tiny model's byte-level BPE, and a SentencePiece one):
//! any text in, ids out, and decoding gives the text back; any ids decode.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use llmpm_gguf::tiny::{write_tiny_llama, TinyLlamaSpec};
use llmpm_gguf::GgufFile;
use llmpmd::tokenizer::Tokenizer;

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let mut bytes = Vec::new();
        write_tiny_llama(&TinyLlamaSpec::default(), &mut bytes).expect("tiny model");
        let g = GgufFile::from_bytes(&bytes).expect("tiny model parses");
        Tokenizer::from_gguf(&g).expect("tiny tokenizer")
    })
}

fuzz_target!(|data: &[u8]| {
    let t = tokenizer();
    let text = String::from_utf8_lossy(data);
    let ids = t.encode(&text, false, false);
    assert!(ids.iter().all(|&id| (id as usize) < t.vocab_size()));
    assert_eq!(
        t.decode(&ids),
        text.as_bytes(),
        "encode then decode of {text:?} gave {ids:?}"
    );
    let _ = t.encode(&text, true, true);
    let raw: Vec<u32> = data
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .collect();
    let _ = t.decode(&raw);
    for &id in raw.iter().take(16) {
        let _ = t.token_bytes(id);
        let _ = t.token_str(id);
    }
});
