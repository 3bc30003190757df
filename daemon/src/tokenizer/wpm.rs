//! WordPiece vocabularies (`tokenizer.ggml.model = "bert"`: all-minilm,
//! mxbai-embed-large, nomic-embed-text), as llama.cpp's `llm_tokenizer_wpm`
//! reads them.
//!
//! llama.cpp's converter stores a WordPiece vocabulary in phantom-space
//! form: a piece that starts a word is `▁word`, a continuation (`##ing` in
//! BERT's `vocab.txt`) is plain `ing`. Text is normalised as BERT's
//! `BasicTokenizer` does, in llama.cpp's simplified way: each code point
//! replaced by the first code point of its canonical decomposition (so
//! `é` is `e` and a Hangul syllable its leading consonant), marks dropped,
//! lower-cased by the simple case mapping, controls dropped; words split
//! at whitespace, and every punctuation mark, ASCII symbol and CJK
//! ideograph is a word of its own. Each word is then cut greedily into the
//! longest pieces the vocabulary has, `▁` prefixed; a word with a part no
//! piece covers is one `[UNK]`.

use std::collections::HashMap;

use icu_normalizer::properties::{CanonicalDecompositionBorrowed, Decomposed};

use super::pretokenize::in_table;
use super::wpm_tables::{CONTROL, MARK, PUNCTUATION};
use super::SPM_SPACE;

/// What the WordPiece encoder needs besides the vocabulary.
#[derive(Debug, Clone)]
pub struct Wpm {
    /// `[UNK]`, for a word no pieces cover.
    pub unk: Option<u32>,
    /// The longest token, in bytes: no match is tried past it.
    pub max_token_len: usize,
    /// `tokenizer.ggml.normalizer.lowercase` (default true).
    pub lowercase: bool,
    /// `tokenizer.ggml.normalizer.strip_accents` (default: `lowercase`).
    pub strip_accents: bool,
}

impl Wpm {
    /// Appends the tokens of `text` (no `[CLS]`/`[SEP]`).
    pub fn encode(&self, text: &str, vocab: &HashMap<String, u32>, out: &mut Vec<u32>) {
        let mut word = String::new();
        for w in self.words(text) {
            word.clear();
            word.push(SPM_SPACE);
            word.push_str(&w);
            let before = out.len();
            if !self.pieces(&word, vocab, out) {
                out.truncate(before);
            }
            if out.len() == before {
                out.extend(self.unk);
            }
        }
    }

    /// Longest-match-first pieces of `word`; false when some part of it
    /// matches no piece.
    fn pieces(&self, word: &str, vocab: &HashMap<String, u32>, out: &mut Vec<u32>) -> bool {
        let mut i = 0;
        while i < word.len() {
            let mut j = (i + self.max_token_len).min(word.len());
            let mut found = None;
            while j > i {
                if word.is_char_boundary(j) {
                    if let Some(&id) = word.get(i..j).and_then(|p| vocab.get(p)) {
                        found = Some((id, j));
                        break;
                    }
                }
                j -= 1;
            }
            match found {
                Some((id, end)) => {
                    out.push(id);
                    i = end;
                }
                None => return false,
            }
        }
        true
    }

    /// The normalised words of `text`, in order.
    pub fn words(&self, text: &str) -> Vec<String> {
        let nfd = CanonicalDecompositionBorrowed::new();
        let mut words = Vec::new();
        let mut current = String::new();
        for c in text.chars() {
            let c = if self.strip_accents {
                first_of_decomposition(&nfd, c)
            } else {
                c
            };
            if c.is_whitespace() {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
                continue;
            }
            if c == '\0' || c == '\u{FFFD}' || in_table(CONTROL, c) {
                continue;
            }
            if self.strip_accents && in_table(MARK, c) {
                continue;
            }
            let shown = if self.lowercase {
                simple_lowercase(c)
            } else {
                c
            };
            if is_split_char(c) {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
                words.push(shown.to_string());
            } else {
                current.push(shown);
            }
        }
        if !current.is_empty() {
            words.push(current);
        }
        words
    }
}

/// A character that is a word by itself: punctuation, an ASCII symbol
/// (`$ + < = > ^ ` | ~`; symbols past ASCII stay inside words, as in
/// llama.cpp), a CJK ideograph.
fn is_split_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    in_table(PUNCTUATION, c) || is_cjk(c)
}

/// The CJK ideograph blocks of BERT's `_is_chinese_char` (with its
/// U+2B920 start of extension E, which llama.cpp keeps).
fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B920..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

/// The first code point of `c`'s full canonical decomposition (llama.cpp's
/// one-for-one "NFD").
fn first_of_decomposition(nfd: &CanonicalDecompositionBorrowed<'_>, c: char) -> char {
    if c.is_ascii() {
        return c;
    }
    let mut c = c;
    // Each step shortens the character's decomposition; a bound anyway.
    for _ in 0..8 {
        match nfd.decompose(c) {
            Decomposed::Default => break,
            Decomposed::Singleton(a) | Decomposed::Expansion(a, _) => c = a,
        }
    }
    c
}

/// The simple lower-case mapping (UnicodeData's field 13). `to_lowercase`
/// is the full mapping, which differs only for U+0130 (`i` + U+0307),
/// whose simple mapping is the first of those.
fn simple_lowercase(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    c.to_lowercase().next().unwrap_or(c)
}

/// llama.cpp's clean-up of decoded WordPiece text (`clean_spaces`): no
/// space before `?`, `!`, `.` or `,`; `a ' b` is `a'b`; and `'s`, `'m`,
/// `'re`, `'ve` join the word before.
pub fn clean_spaces(text: &mut Vec<u8>) {
    // Pass 1: " ?", " !", " .", " ,".
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    for (i, &x) in text.iter().enumerate() {
        if i > 0 && text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            out.pop();
        }
        out.push(x);
    }
    // Pass 2: " ' " loses both spaces. The dropped space after reads as
    // no space for the next character (as llama.cpp, which zeroes it).
    let mut src = std::mem::take(&mut out);
    let mut i = 0;
    while i < src.len() {
        let x = src[i];
        if i > 0 && x == b'\'' && i + 1 < src.len() && src[i - 1] == b' ' && src[i + 1] == b' ' {
            out.pop();
            out.push(x);
            src[i + 1] = 0;
            i += 2;
            continue;
        }
        out.push(x);
        i += 1;
    }
    // Pass 3: " 's", " 'm", " 're", " 've".
    let src = std::mem::take(&mut out);
    for (i, &x) in src.iter().enumerate() {
        if i > 0 && src[i - 1] == b' ' && x == b'\'' {
            let joins = matches!(
                (src.get(i + 1), src.get(i + 2)),
                (Some(b's' | b'm'), _) | (Some(b'r' | b'v'), Some(b'e'))
            );
            if joins {
                out.pop();
            }
        }
        out.push(x);
    }
    *text = out;
}
