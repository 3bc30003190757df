//! The tiny models' vocabularies: byte-level BPE learned from a small
//! built-in corpus (Llama 3 and Qwen 3 shaped), and a SentencePiece one
//! made from the same pieces (Phi-3 shaped).

use std::collections::{BTreeMap, HashSet};

use super::super::gpt2_byte_chars;

/// Llama 3's special tokens, written as the last five tokens of the vocab.
pub const SPECIAL_TOKENS: [&str; 5] = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
];

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
pub const TOKEN_TYPE_NORMAL: i32 = 1;
/// An unknown-token marker (SentencePiece's `<unk>`).
pub const TOKEN_TYPE_UNKNOWN: i32 = 2;
/// A control token, never produced from plain text.
pub const TOKEN_TYPE_CONTROL: i32 = 3;
/// A user-defined token, matched in plain text (Qwen 3's `<think>`).
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;
/// A SentencePiece byte token (`<0x0A>`).
pub const TOKEN_TYPE_BYTE: i32 = 6;

/// Byte-level tokens, plus special tokens (Llama 3).
#[cfg(test)]
pub(crate) const MIN_VOCAB: u32 = 256 + SPECIAL_TOKENS.len() as u32;
/// Text the tokenizer's merges are learned from, so that common English
/// pieces (` the`, `ll`) become tokens as in a real vocab.
const CORPUS: &str = "The quick brown fox jumps over the lazy dog. A llama is a \
domesticated South American camelid, widely used as a meat and pack animal by \
Andean cultures since the pre-Columbian era. Llamas are social animals and live \
with others as a herd. Their wool is soft and contains only a small amount of \
lanolin. Hello world! How are you today? I am fine, thank you. The model reads \
the question, thinks, and then answers the question in the shortest way. There \
is a house in the hills where the llamas sleep at the end of the day, and in \
the morning they walk down to the river to drink the cold water.";

/// A byte-level BPE vocabulary in the shape of Llama 3's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyVocab {
    /// Token texts in GPT-2's byte-to-unicode spelling; ids are indices.
    pub tokens: Vec<String>,
    /// [`TOKEN_TYPE_NORMAL`] or [`TOKEN_TYPE_CONTROL`] per token.
    pub token_types: Vec<i32>,
    /// Merges in rank order, `"left right"`.
    pub merges: Vec<String>,
    /// `<|begin_of_text|>`.
    pub bos: u32,
    /// `<|eot_id|>` or `<|end_of_text|>`.
    pub eos: u32,
}

/// A vocabulary of exactly `n_vocab` tokens (at least 261): the 256 byte
/// tokens ordered as in GPT-2 and Llama 3, tokens learned by BPE from a
/// small built-in corpus, `<|reserved_special_token_N|>` fillers if the
/// corpus runs out, then [`SPECIAL_TOKENS`].
pub fn tiny_vocab(n_vocab: u32, eos_is_eot: bool) -> TinyVocab {
    let specials = SPECIAL_TOKENS.map(|s| (s, TOKEN_TYPE_CONTROL));
    let (tokens, token_types, merges, first_special) =
        bpe_vocab(n_vocab, &specials, "<|reserved_special_token_");
    TinyVocab {
        tokens,
        token_types,
        merges,
        bos: first_special,
        eos: first_special + if eos_is_eot { 4 } else { 1 },
    }
}

/// A byte-level BPE vocabulary of `n_vocab` tokens (at least 256 plus the
/// specials) ending in `specials` (text and token type), fillers named
/// `{filler}N|>` between the learned tokens and them. Returns the tokens,
/// their types, the merges and the id of the first special token.
pub(crate) fn bpe_vocab(
    n_vocab: u32,
    specials: &[(&str, i32)],
    filler: &str,
) -> (Vec<String>, Vec<i32>, Vec<String>, u32) {
    let byte_chars = gpt2_byte_chars();
    let mut base: Vec<char> = byte_chars.to_vec();
    base.sort_unstable();
    let mut ordinary: Vec<String> = base.iter().map(|c| c.to_string()).collect();
    let mut known: HashSet<String> = ordinary.iter().cloned().collect();
    let n_vocab = (n_vocab as usize).max(256 + specials.len());
    let target = n_vocab - specials.len();

    let merges = learn_merges(&byte_chars, &mut ordinary, &mut known, target);

    let mut tokens = ordinary;
    let mut token_types = vec![TOKEN_TYPE_NORMAL; tokens.len()];
    let mut reserved = 0;
    while tokens.len() < target {
        tokens.push(format!("{filler}{reserved}|>"));
        token_types.push(TOKEN_TYPE_CONTROL);
        reserved += 1;
    }
    let first_special = tokens.len() as u32;
    for (s, t) in specials {
        tokens.push((*s).to_owned());
        token_types.push(*t);
    }
    (tokens, token_types, merges, first_special)
}

/// Learns merges until `ordinary` holds `target` tokens or no pair is left
/// to merge: first from [`CORPUS`], then by extending existing tokens with
/// a letter. Each merge's halves are tokens and so is their concatenation,
/// as llama.cpp's BPE expects.
fn learn_merges(
    byte_chars: &[char; 256],
    ordinary: &mut Vec<String>,
    known: &mut HashSet<String>,
    target: usize,
) -> Vec<String> {
    let mut merges = Vec::new();
    // Words as llama-bpe pre-tokenizes roughly: runs of letters (with the
    // space before them) and runs of other characters.
    let mut counts: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    for word in CORPUS.split_whitespace() {
        let mut pieces: Vec<String> = Vec::new();
        let mut prev_alpha = None;
        for ch in word.chars() {
            let alpha = ch.is_alphabetic();
            match pieces.last_mut() {
                Some(last) if prev_alpha == Some(alpha) => last.push(ch),
                _ => pieces.push(if pieces.is_empty() {
                    format!(" {ch}")
                } else {
                    ch.to_string()
                }),
            }
            prev_alpha = Some(alpha);
        }
        for piece in pieces {
            let symbols = piece
                .bytes()
                .map(|b| byte_chars[usize::from(b)].to_string())
                .collect();
            *counts.entry(symbols).or_default() += 1;
        }
    }
    let mut words: Vec<(Vec<String>, u64)> = counts.into_iter().collect();

    while ordinary.len() < target {
        let mut pairs: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for (symbols, count) in &words {
            for pair in symbols.windows(2) {
                if let [l, r] = pair {
                    *pairs.entry((l.as_str(), r.as_str())).or_default() += count;
                }
            }
        }
        // Most frequent pair; ties go to the smallest pair, for determinism.
        let best = pairs
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|((l, r), _)| ((*l).to_owned(), (*r).to_owned()));
        let Some((left, right)) = best else { break };
        let merged = format!("{left}{right}");
        merges.push(format!("{left} {right}"));
        if known.insert(merged.clone()) {
            ordinary.push(merged.clone());
        }
        for (symbols, _) in &mut words {
            let mut out = Vec::with_capacity(symbols.len());
            let mut i = 0;
            while i < symbols.len() {
                if i + 1 < symbols.len() && symbols[i] == left && symbols[i + 1] == right {
                    out.push(merged.clone());
                    i += 2;
                } else {
                    out.push(symbols[i].clone());
                    i += 1;
                }
            }
            *symbols = out;
        }
    }

    // The corpus is used up: grow tokens by one letter each.
    let mut i = 0;
    while ordinary.len() < target && i < ordinary.len() {
        let left = ordinary[i].clone();
        for letter in 'a'..='z' {
            if ordinary.len() >= target {
                break;
            }
            let merged = format!("{left}{letter}");
            if known.insert(merged.clone()) {
                merges.push(format!("{left} {letter}"));
                ordinary.push(merged);
            }
        }
        i += 1;
    }
    merges
}

/// A SentencePiece vocabulary in the shape of Phi-3's.
#[derive(Debug, Clone, PartialEq)]
pub struct SpmVocab {
    /// Pieces, spaces written `▁`; ids are indices.
    pub tokens: Vec<String>,
    /// Scores: higher merges first.
    pub scores: Vec<f32>,
    /// Token types: unknown, control, byte, normal, user-defined.
    pub token_types: Vec<i32>,
}

/// A SentencePiece vocabulary of exactly `n_vocab` tokens: `<unk>`, `<s>`,
/// `</s>`, the 256 byte tokens `<0x00>`.., the pieces the BPE vocabulary
/// learns (as text, spaces as `▁`, scored by rank), `<|placeholderN|>`
/// fillers, then `specials`.
pub(crate) fn spm_vocab(n_vocab: u32, specials: &[(&str, i32)]) -> SpmVocab {
    const FIXED: usize = 3 + 256;
    let n_vocab = (n_vocab as usize).max(FIXED + specials.len() + 1);
    let target = n_vocab - specials.len();
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut token_types = vec![TOKEN_TYPE_UNKNOWN, TOKEN_TYPE_CONTROL, TOKEN_TYPE_CONTROL];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    token_types.extend([TOKEN_TYPE_BYTE; 256]);
    let mut scores = vec![0.0f32; tokens.len()];
    let byte_of: std::collections::HashMap<char, u8> = gpt2_byte_chars()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect();
    let (bpe, ..) = bpe_vocab(n_vocab.saturating_mul(2) as u32, &[], "<|unused_");
    let mut seen: HashSet<String> = tokens.iter().cloned().collect();
    for piece in bpe {
        if tokens.len() >= target {
            break;
        }
        let Some(bytes) = piece
            .chars()
            .map(|c| byte_of.get(&c).copied())
            .collect::<Option<Vec<u8>>>()
        else {
            continue;
        };
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        if text.chars().any(|c| c.is_control()) {
            continue;
        }
        let text = text.replace(' ', "\u{2581}");
        if seen.insert(text.clone()) {
            scores.push(-(tokens.len() as f32));
            tokens.push(text);
            token_types.push(TOKEN_TYPE_NORMAL);
        }
    }
    let mut n = 0;
    while tokens.len() < target {
        tokens.push(format!("<|placeholder{n}|>"));
        token_types.push(TOKEN_TYPE_CONTROL);
        scores.push(0.0);
        n += 1;
    }
    for (s, t) in specials {
        tokens.push((*s).to_owned());
        token_types.push(*t);
        scores.push(0.0);
    }
    SpmVocab {
        tokens,
        scores,
        token_types,
    }
}
