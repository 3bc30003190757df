//! Unit tests: the tiny Llama 3 vocabulary, hand-made SentencePiece
//! vocabularies and hostile metadata.

use llmpm_gguf::tiny::{tiny_llama_bytes, tiny_vocab, TinyLlamaSpec};
use llmpm_gguf::writer::GgufWriter;
use llmpm_gguf::Value;

use super::*;

fn tiny() -> Tokenizer {
    let bytes = tiny_llama_bytes(&TinyLlamaSpec::default()).unwrap();
    let g = GgufFile::from_bytes(&bytes).unwrap();
    Tokenizer::from_gguf(&g).unwrap()
}

/// The tiny vocabulary's metadata as entries a test can change.
fn tiny_entries() -> Vec<(String, Value)> {
    let v = tiny_vocab(320, true);
    vec![
        ("tokenizer.ggml.model".into(), "gpt2".into()),
        ("tokenizer.ggml.pre".into(), "llama-bpe".into()),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String(v.tokens)),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(Array::I32(v.token_types)),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(Array::String(v.merges)),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(v.bos)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(v.eos)),
    ]
}

fn build(entries: Vec<(String, Value)>) -> Result<Tokenizer, TokenizerError> {
    let mut w = GgufWriter::new();
    for (k, v) in entries {
        w.add_kv(k, v).unwrap();
    }
    let g = GgufFile::from_bytes(&w.to_bytes()).unwrap();
    Tokenizer::from_gguf(&g)
}

fn set(entries: &mut Vec<(String, Value)>, key: &str, value: Value) {
    entries.retain(|(k, _)| k != key);
    entries.push((key.to_owned(), value));
}

/// BPE by the textbook: rescan all pairs, merge the lowest rank.
fn naive_bpe(t: &Tokenizer, word: &[u8]) -> Vec<u32> {
    let Model::Bpe { merges, .. } = &t.model else {
        panic!("not BPE")
    };
    let mut ids: Vec<u32> = word
        .iter()
        .map(|&b| merges.byte_ids[usize::from(b)])
        .collect();
    loop {
        let best = ids
            .windows(2)
            .enumerate()
            .filter_map(|(i, w)| merges.pairs.get(&(w[0], w[1])).map(|&(r, m)| (r, i, m)))
            .min();
        let Some((_, i, m)) = best else { break ids };
        ids.splice(i..i + 2, [m]);
    }
}

const SAMPLES: &[&str] = &[
    "Hello world! How are you today?",
    "The llamas sleep at the end of the day.",
    "  leading spaces, trailing   ",
    "tabs\tand\nnewlines\r\n\r\n  indented",
    "fn main() { println!(\"{}\", 1234567); }",
    "日本語のテキストと中文",
    "emoji 😀👍🏽 👨‍👩‍👧 and flags 🇫🇷",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "I'm sure they'll say it's John's, we've, you'd, THEY'RE",
    "",
    " ",
    "\u{0}\u{1}\u{7f}",
];

#[test]
fn tiny_vocab_metadata() {
    let t = tiny();
    assert_eq!(t.vocab_size(), 320);
    let bot = t.token_id("<|begin_of_text|>").unwrap();
    let eot = t.token_id("<|eot_id|>").unwrap();
    let eotext = t.token_id("<|end_of_text|>").unwrap();
    assert_eq!(t.bos(), Some(bot));
    assert_eq!(t.eos(), Some(eot));
    assert_eq!(t.stop_tokens(), [eot, eotext]);
    assert!(t.is_control(eot) && !t.is_control(t.token_id("a").unwrap()));
    assert!(t.add_bos_default());
    assert!(!t.add_eos_default());
    assert_eq!(t.pre_tokenizer(), Some(PreTokenizer::Llama3));
    assert_eq!(t.token_str(bot), Some("<|begin_of_text|>"));
    assert_eq!(t.token_str(320), None);
    assert_eq!(t.token_bytes(320), b"");
    assert_eq!(t.token_bytes(t.token_id("Ġ").unwrap()), b" ");
    assert_eq!(t.token_bytes(eot), b"<|eot_id|>");
}

#[test]
fn round_trips_and_matches_naive_bpe() {
    let t = tiny();
    for s in SAMPLES {
        let ids = t.encode(s, false, true);
        assert_eq!(t.decode(&ids), s.as_bytes(), "{s:?}");
        // Word by word the heap merge equals the textbook one.
        let mut words = Vec::new();
        PreTokenizer::Llama3.split(s, &mut words);
        let naive: Vec<u32> = words
            .iter()
            .flat_map(|w| naive_bpe(&t, w.as_bytes()))
            .collect();
        // The tiny vocab's tokens are all reachable by merges, so looking
        // whole words up first changes nothing.
        assert_eq!(ids, naive, "{s:?}");
    }
}

#[test]
fn merges_common_words() {
    let t = tiny();
    let ids = t.encode(" the", false, false);
    assert_eq!(ids, [t.token_id("Ġthe").unwrap()]);
    let ids = t.encode("Hello", true, false);
    assert_eq!(ids[0], t.bos().unwrap());
    assert!(ids.len() < 6, "{ids:?}");
}

#[test]
fn special_tokens() {
    let t = tiny();
    let bot = t.bos().unwrap();
    let eot = t.token_id("<|eot_id|>").unwrap();
    let text = "<|begin_of_text|>Hi<|eot_id|><|eot_id|>x<|eot_id";
    let ids = t.encode(text, false, true);
    assert_eq!(ids[0], bot);
    let n = ids.len();
    assert_eq!(ids.iter().filter(|&&i| i == eot).count(), 2);
    assert!(
        !ids[n - 3..].contains(&eot),
        "the unterminated one is text: {ids:?}"
    );
    assert_eq!(t.decode(&ids), text.as_bytes());
    // Without parse_special, control tokens are plain text.
    let plain = t.encode(text, false, false);
    assert!(plain.iter().all(|&i| !t.is_control(i)), "{plain:?}");
    assert_eq!(t.decode(&plain), text.as_bytes());
}

#[test]
fn user_defined_tokens_always_match_longest_first() {
    let mut e = tiny_entries();
    let v = tiny_vocab(320, true);
    let mut tokens = v.tokens.clone();
    let mut types = v.token_types.clone();
    // Two user-defined tokens replace reserved fillers or extend the vocab.
    tokens.push("<x>".into());
    types.push(4);
    tokens.push("<x>y".into());
    types.push(4);
    set(
        &mut e,
        "tokenizer.ggml.tokens",
        Value::Array(Array::String(tokens)),
    );
    set(
        &mut e,
        "tokenizer.ggml.token_type",
        Value::Array(Array::I32(types)),
    );
    let t = build(e).unwrap();
    let (x, xy) = (t.token_id("<x>").unwrap(), t.token_id("<x>y").unwrap());
    let ids = t.encode("a<x>y<x>", false, false);
    assert_eq!(&ids[1..], [xy, x]);
}

#[test]
fn stream_decoder_holds_split_characters() {
    let t = tiny();
    let text = "a😀中b";
    let ids = t.encode(text, false, false);
    let mut d = StreamDecoder::new();
    let pieces: Vec<String> = ids.iter().map(|&i| d.push(&t, i)).collect();
    assert_eq!(pieces.concat() + &d.finish(), text);
    // The emoji's four byte tokens give nothing until the last.
    assert!(pieces
        .iter()
        .all(|p| std::str::from_utf8(p.as_bytes()).is_ok()));
    assert!(
        pieces.iter().filter(|p| p.is_empty()).count() >= 3,
        "{pieces:?}"
    );
}

#[test]
fn unknown_pre_falls_back_to_llama3() {
    let mut e = tiny_entries();
    set(&mut e, "tokenizer.ggml.pre", "something-new".into());
    let t = build(e).unwrap();
    assert_eq!(t.pre_tokenizer(), Some(PreTokenizer::Llama3));
    let mut e = tiny_entries();
    set(&mut e, "tokenizer.ggml.pre", "qwen2".into());
    let t = build(e).unwrap();
    assert_eq!(t.pre_tokenizer(), Some(PreTokenizer::Qwen2));
    // Qwen2 defaults to no BOS.
    assert!(!t.add_bos_default());
    let mut e = tiny_entries();
    set(&mut e, "tokenizer.ggml.add_bos_token", Value::Bool(false));
    set(&mut e, "tokenizer.ggml.add_eos_token", Value::Bool(true));
    let t = build(e).unwrap();
    assert!(!t.add_bos_default() && t.add_eos_default());
    let ids = t.encode("x", true, false);
    assert_eq!(
        (ids.first(), ids.last()),
        (t.bos().as_ref(), t.eos().as_ref())
    );
}

#[test]
fn hostile_metadata_is_refused() {
    type Edit = fn(&mut Vec<(String, Value)>);
    let cases: Vec<(Edit, &str)> = vec![
        (
            |e| e.retain(|(k, _)| k != "tokenizer.ggml.model"),
            "no `tokenizer.ggml.model`",
        ),
        (
            |e| set(e, "tokenizer.ggml.model", "ugm".into()),
            "`ugm` is not supported",
        ),
        (
            |e| set(e, "tokenizer.ggml.model", Value::U32(1)),
            "`tokenizer.ggml.model` is not a string",
        ),
        (
            |e| e.retain(|(k, _)| k != "tokenizer.ggml.tokens"),
            "no `tokenizer.ggml.tokens`",
        ),
        (
            |e| {
                set(
                    e,
                    "tokenizer.ggml.tokens",
                    Value::Array(Array::String(vec![])),
                )
            },
            "is empty",
        ),
        (
            |e| {
                set(
                    e,
                    "tokenizer.ggml.tokens",
                    Value::Array(Array::U32(vec![1])),
                )
            },
            "not an array of strings",
        ),
        (
            |e| e.retain(|(k, _)| k != "tokenizer.ggml.merges"),
            "no `tokenizer.ggml.merges`",
        ),
        (
            |e| {
                set(
                    e,
                    "tokenizer.ggml.token_type",
                    Value::Array(Array::I32(vec![1; 3])),
                )
            },
            "has 3 entries but the vocabulary has 320",
        ),
        (
            |e| {
                set(
                    e,
                    "tokenizer.ggml.token_type",
                    Value::Array(Array::I32(vec![9; 320])),
                )
            },
            "entry 0 is 9",
        ),
        (
            |e| {
                set(
                    e,
                    "tokenizer.ggml.token_type",
                    Value::Array(Array::F32(vec![1.0; 320])),
                )
            },
            "not an array of integers",
        ),
        (
            |e| set(e, "tokenizer.ggml.bos_token_id", Value::U32(320)),
            "`tokenizer.ggml.bos_token_id` is 320, outside",
        ),
        (
            |e| set(e, "tokenizer.ggml.eot_token_id", Value::U64(u64::MAX)),
            "is not an integer",
        ),
        (
            |e| set(e, "tokenizer.ggml.padding_token_id", Value::I64(1 << 40)),
            "outside the vocabulary",
        ),
        (
            |e| set(e, "tokenizer.ggml.add_bos_token", Value::U8(1)),
            "is not a boolean",
        ),
        (
            |e| set(e, "tokenizer.ggml.merges", vec!["Ġ t", "nospace"].into()),
            "merge 1 `nospace` is not two tokens",
        ),
        (
            |e| set(e, "tokenizer.ggml.merges", vec!["zz q"].into()),
            "left token that is not",
        ),
        (
            |e| set(e, "tokenizer.ggml.merges", vec!["Ġ <|eot_id|>"].into()),
            "makes a token that is not",
        ),
        (
            |e| {
                let mut v = tiny_vocab(320, true).tokens;
                v[0] = "nope".into();
                set(e, "tokenizer.ggml.tokens", Value::Array(Array::String(v)));
                set(
                    e,
                    "tokenizer.ggml.merges",
                    Value::Array(Array::String(vec![])),
                );
            },
            "no token for byte 0x21",
        ),
    ];
    for (edit, want) in cases {
        let mut e = tiny_entries();
        edit(&mut e);
        let err = build(e).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(want), "{err:?} does not contain {want:?}");
    }
    // Negative ids mean "none".
    let mut e = tiny_entries();
    set(&mut e, "tokenizer.ggml.eos_token_id", Value::I32(-1));
    assert_eq!(build(e).unwrap().eos(), None);
}

/// A SentencePiece vocabulary: specials, byte tokens, then `pieces` with
/// their scores.
fn spm(pieces: &[(&str, f32, i32)], add_space_prefix: Option<bool>) -> Tokenizer {
    let mut tokens = vec!["<unk>".to_owned(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0, 0.0, 0.0];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for &(p, s, ty) in pieces {
        tokens.push(p.to_owned());
        types.push(ty);
        scores.push(s);
    }
    let mut e: Vec<(String, Value)> = vec![
        ("tokenizer.ggml.model".into(), "llama".into()),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String(tokens)),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(Array::I32(types)),
        ),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array(Array::F32(scores)),
        ),
    ];
    if let Some(b) = add_space_prefix {
        e.push(("tokenizer.ggml.add_space_prefix".into(), Value::Bool(b)));
    }
    build(e).unwrap()
}

#[test]
fn sentencepiece_merges_by_score_with_byte_fallback() {
    let t = spm(
        &[
            ("▁", -1.0, 1),
            ("h", -2.0, 1),
            ("e", -2.0, 1),
            ("l", -2.0, 1),
            ("o", -2.0, 1),
            ("▁h", -3.0, 1),
            ("ll", -1.5, 1),
            ("he", -4.0, 1),
            ("▁he", -3.5, 1),
            ("hell", -5.0, 1),
            ("▁hell", -6.0, 1),
            ("▁hello", -7.0, 1),
            ("<eot>", 0.0, 3),
        ],
        None,
    );
    let id = |s: &str| t.token_id(s).unwrap();
    assert_eq!(t.bos(), Some(1));
    assert_eq!(t.eos(), Some(2));
    assert!(t.add_bos_default());
    assert_eq!(t.encode("hello", true, false), [1, id("▁hello")]);
    assert_eq!(
        t.encode("hello hell", false, false),
        [id("▁hello"), id("▁hell")]
    );
    // é has no piece: its two UTF-8 bytes.
    assert_eq!(
        t.encode("é", false, false),
        [id("▁"), id("<0xC3>"), id("<0xA9>")]
    );
    // After a special token the space prefix comes back.
    assert_eq!(
        t.encode("<eot>hello", false, true),
        [id("<eot>"), id("▁hello")]
    );
    let ids = t.encode("hello héllo", false, false);
    assert_eq!(t.decode(&ids), b" hello h\xc3\xa9llo");
    let t = spm(
        &[("h", -1.0, 1), ("i", -1.0, 1), ("hi", -1.0, 1)],
        Some(false),
    );
    assert_eq!(t.encode("hi", false, false), [t.token_id("hi").unwrap()]);
}

#[test]
fn sentencepiece_resegments_unknown_merges() {
    // A char with no piece and no byte tokens in range still decodes: its
    // bytes come from the `<0xXX>` tokens.
    let t = spm(
        &[("a", -1.0, 1), ("b", -1.0, 1), ("ab", -0.5, 1)],
        Some(false),
    );
    assert_eq!(
        t.encode("abab", false, false),
        [t.token_id("ab").unwrap(); 2]
    );
    let ids = t.encode("a\u{1F600}", false, false);
    assert_eq!(t.decode(&ids), "a\u{1F600}".as_bytes());
}

#[test]
fn duplicate_tokens_and_merges_do_not_panic() {
    let mut e = tiny_entries();
    let mut v = tiny_vocab(320, true);
    v.tokens[300] = v.tokens[100].clone();
    v.merges.extend(v.merges.clone());
    set(
        &mut e,
        "tokenizer.ggml.tokens",
        Value::Array(Array::String(v.tokens)),
    );
    set(
        &mut e,
        "tokenizer.ggml.merges",
        Value::Array(Array::String(v.merges)),
    );
    if let Ok(t) = build(e) {
        for s in SAMPLES {
            let ids = t.encode(s, true, true);
            let _ = t.decode(&ids);
        }
    }
}

#[test]
fn long_words_and_sharing() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Tokenizer>();
    let t = tiny();
    // One 200k-letter word and one 200k-space word: the heap merge keeps
    // these fast even unoptimized.
    let start = std::time::Instant::now();
    for text in [
        "ab".repeat(100_000),
        " ".repeat(200_000),
        "<".repeat(100_000),
    ] {
        let ids = t.encode(&text, false, true);
        assert_eq!(t.decode(&ids), text.as_bytes());
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

/// The WordPiece vocabulary `llmpm-gen-gguf --arch bert --vocab n` writes.
fn wordpiece(n_vocab: u32) -> Tokenizer {
    let spec = TinyLlamaSpec {
        arch: llmpm_gguf::tiny::TinyArch::Bert,
        n_layer: 1,
        n_embd: 64,
        n_head: 2,
        n_head_kv: 2,
        n_ff: 128,
        n_vocab,
        context_length: 512,
        ..TinyLlamaSpec::default()
    };
    let bytes = tiny_llama_bytes(&spec).unwrap();
    Tokenizer::from_gguf(&GgufFile::from_bytes(&bytes).unwrap()).unwrap()
}

/// Every sentence of the fixture (accents, CJK, punctuation, controls,
/// special tokens written in the text, words no piece covers) tokenizes to
/// the ids llama.cpp gives, with and without [CLS]/[SEP], and decodes to
/// llama.cpp's text (`tests/fixtures/llamacpp_wpm_tokens.json`, made by
/// bench/gen-reference-wpm.py).
#[test]
fn wordpiece_matches_llama_cpp() {
    let fx: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/llamacpp_wpm_tokens.json"
    ))
    .unwrap();
    let t = wordpiece(u32::try_from(fx["vocab"].as_u64().unwrap()).unwrap());
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
            .collect()
    };
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let with = t.encode(text, t.add_bos_default(), true);
        assert_eq!(with, ids(&case["ids"]), "{text:?} with [CLS]/[SEP]");
        assert_eq!(
            t.encode(text, false, false),
            ids(&case["plain"]),
            "{text:?}"
        );
        let decoded = String::from_utf8(t.decode(&with)).unwrap();
        assert_eq!(
            decoded,
            case["decoded"].as_str().unwrap(),
            "{text:?} decoded"
        );
    }
}

#[test]
fn wordpiece_frames_with_cls_and_sep() {
    let t = wordpiece(400);
    assert!(t.add_bos_default());
    assert_eq!((t.bos(), t.sep(), t.pad()), (Some(101), Some(102), Some(0)));
    let ids = t.encode("Hello World", true, true);
    assert_eq!(ids.first(), Some(&101));
    assert_eq!(ids.last(), Some(&102));
    // Uncased: the same ids whatever the case and accents.
    assert_eq!(ids, t.encode("hello world", true, true));
    assert_eq!(ids, t.encode("HÉLLO  wörld", true, true));
    // A word with a character no piece covers is one [UNK].
    assert_eq!(t.encode("a €uro b", false, false).len(), 3);
    assert_eq!(t.encode("€uro", false, false), [100]);
}

/// A vocabulary without the default ids' tokens, or with normalisation
/// turned off, still tokenizes; keys override the defaults.
#[test]
fn wordpiece_keys_and_small_vocabularies() {
    let tokens: Vec<String> = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "\u{2581}a",
        "b",
        "\u{2581}A",
    ]
    .map(String::from)
    .to_vec();
    let types = vec![3, 3, 3, 3, 1, 1, 1];
    let entries = |lower: Option<bool>| {
        let mut e: Vec<(String, Value)> = vec![
            ("tokenizer.ggml.model".into(), "bert".into()),
            (
                "tokenizer.ggml.tokens".into(),
                Value::Array(Array::String(tokens.clone())),
            ),
            (
                "tokenizer.ggml.token_type".into(),
                Value::Array(Array::I32(types.clone())),
            ),
            ("tokenizer.ggml.unknown_token_id".into(), Value::U32(1)),
            ("tokenizer.ggml.bos_token_id".into(), Value::U32(2)),
            ("tokenizer.ggml.seperator_token_id".into(), Value::U32(3)),
        ];
        // A hostile key is still an error.
        if lower == Some(true) {
            e.push((
                "tokenizer.ggml.normalizer.strip_accents".into(),
                Value::U32(7),
            ));
        }
        if let Some(l) = lower {
            e.push(("tokenizer.ggml.normalizer.lowercase".into(), Value::Bool(l)));
        }
        e
    };
    let t = build(entries(None)).unwrap();
    assert_eq!(t.encode("A ab Ab c", true, false), [2, 4, 4, 5, 4, 5, 1, 3]);
    let cased = build(entries(Some(false))).unwrap();
    assert_eq!(cased.encode("A ab Ab", false, false), [6, 4, 5, 6, 5]);
    // No keys at all and ids 100..102 past the vocabulary: no framing
    // tokens, no [UNK], but no panic either.
    let mut bare = entries(None);
    bare.retain(|(k, _)| !k.ends_with("_id"));
    let t = build(bare).unwrap();
    assert_eq!(t.encode("a c", true, false), [4]);
    let err = build(entries(Some(true))).err().map(|e| e.to_string());
    assert!(err
        .unwrap_or_default()
        .contains("strip_accents` is not a boolean"));
}

/// Counting gives `encode`'s length, each fragment between special tokens
/// tokenized once however many texts share it; SentencePiece's space
/// prefix (only after a special token) is counted where it applies.
#[test]
fn counts_match_encode_and_reuse_fragments() {
    let spm = spm(
        &[
            ("▁", -1.0, 1),
            ("h", -2.0, 1),
            ("i", -2.0, 1),
            ("▁hi", -3.0, 1),
            ("<eot>", 0.0, 3),
        ],
        None,
    );
    let mut rng = fastrand::Rng::with_seed(3);
    for (t, special) in [(tiny(), "<|eot_id|>"), (spm, "<eot>")] {
        let pieces = ["hi", " hi", "héllo wörld", "\n\n", "12345", "hi hi"];
        let mut memo = CountMemo::default();
        for _ in 0..200 {
            let text: String = (0..rng.usize(0..8))
                .map(|_| match rng.usize(0..4) {
                    0 => special.to_owned(),
                    _ => pieces[rng.usize(0..pieces.len())].to_owned(),
                })
                .collect();
            for (bos, parse) in [(true, true), (false, true), (true, false)] {
                let want = t.encode(&text, bos, parse).len();
                assert_eq!(t.count(&text, bos, parse, &mut memo), want, "{text:?}");
            }
        }
        // The same texts again: every fragment is remembered.
        let before = memo.tokenized();
        let text = format!("hi{special} hi{special}héllo wörld");
        t.count(&text, true, true, &mut memo);
        t.count(&text, true, true, &mut memo);
        assert!(memo.tokenized() <= before + 3);
        let after = memo.tokenized();
        t.count(&text, true, true, &mut memo);
        assert_eq!(memo.tokenized(), after);
    }
}

/// Harmony's vocabulary (gpt-oss) stops on `<|return|>` and `<|call|>` and
/// not on `<|end|>`, which ends one message of several; Phi's `<|end|>`
/// still stops where those two are absent.
#[test]
fn harmony_stops_on_return_and_call_not_end() {
    let harmony = [
        "<|endoftext|>",
        "<|return|>",
        "<|call|>",
        "<|end|>",
        "<|start|>",
    ];
    let names = stop_token_names(|t| harmony.contains(&t));
    assert_eq!(names, ["<|endoftext|>", "<|return|>", "<|call|>"]);
    let phi = ["<|endoftext|>", "<|end|>"];
    assert_eq!(
        stop_token_names(|t| phi.contains(&t)),
        ["<|endoftext|>", "<|end|>"]
    );
}
