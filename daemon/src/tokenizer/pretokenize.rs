//! Pre-tokenizers: split text into the words that BPE merges within.
//!
//! Each is a hand-written scanner equivalent to one regular expression of
//! the reference tokenizers (HF `tokenizers`, llama.cpp's
//! `unicode_regex_split_custom_llama3`). A scanner instead of a regex
//! engine because the patterns need a negative lookahead (`\s+(?!\S)`),
//! which the `regex` crate lacks, and because a scanner is a few dozen
//! lines with no dependency and no backtracking cost.

use super::unicode_tables::{LETTER, NUMBER};

/// Which splitting pattern a vocabulary was trained with
/// (`tokenizer.ggml.pre`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// Llama 3 (`llama-bpe`):
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    Llama3,
    /// Qwen2: Llama 3's pattern with single digits (`\p{N}` for
    /// `\p{N}{1,3}`).
    Qwen2,
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|
    /// \s+(?!\S)|\s+`.
    Gpt2,
    /// o200k (`gpt-4o`, gpt-oss), as llama.cpp writes it: a word is an
    /// optional prefix char, then letters split where lower case turns to
    /// upper (`[^a-z]*[^A-Z]+` or `[^a-z]+[^A-Z]*` over letters) with a
    /// contraction attached; numbers in threes; punctuation runs with
    /// trailing newlines and slashes; whitespace as Llama 3's.
    Gpt4o,
}

impl PreTokenizer {
    /// The pre-tokenizer for a `tokenizer.ggml.pre` value, `None` when it
    /// is not one of these. Aliases as in llama.cpp's `llama-vocab.cpp`.
    pub fn from_name(name: &str) -> Option<PreTokenizer> {
        match name {
            "llama3" | "llama-v3" | "llama-bpe" | "smaug-bpe" | "dbrx" | "falcon3" => {
                Some(PreTokenizer::Llama3)
            }
            "qwen2" | "deepseek-r1-qwen" => Some(PreTokenizer::Qwen2),
            "gpt-2" | "gpt2" => Some(PreTokenizer::Gpt2),
            "gpt-4o" | "llama4" => Some(PreTokenizer::Gpt4o),
            _ => None,
        }
    }

    /// Appends the words of `text` to `out`; together they spell `text`.
    pub fn split<'t>(self, text: &'t str, out: &mut Vec<&'t str>) {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut pos = 0;
        while pos < chars.len() {
            let end = match self {
                PreTokenizer::Llama3 => llama3_word(&chars, pos, 3),
                PreTokenizer::Qwen2 => llama3_word(&chars, pos, 1),
                PreTokenizer::Gpt2 => gpt2_word(&chars, pos),
                PreTokenizer::Gpt4o => gpt4o_word(&chars, pos),
            };
            // Every branch consumes at least one char; `max` keeps a bug
            // from looping forever.
            let end = end.max(pos + 1).min(chars.len());
            let from = chars[pos].0;
            let to = chars.get(end).map_or(text.len(), |&(i, _)| i);
            out.push(&text[from..to]);
            pos = end;
        }
    }
}

/// `\p{L}`: general category Lu, Ll, Lt, Lm or Lo. Not
/// `char::is_alphabetic`, which also holds combining marks.
pub fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    in_table(LETTER, c)
}

/// `\p{N}`: general category Nd, Nl or No.
pub fn is_number(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    in_table(NUMBER, c)
}

/// `\s`: the White_Space property, which Oniguruma's and Rust's agree on.
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

fn is_crlf(c: char) -> bool {
    c == '\r' || c == '\n'
}

/// `[^\s\p{L}\p{N}]`.
fn is_other(c: char) -> bool {
    !is_space(c) && !is_letter(c) && !is_number(c)
}

/// Whether `c` lies in one of `table`'s sorted, disjoint `(lo, hi)` ranges.
pub(super) fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let c = u32::from(c);
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Case folding for `(?i:…)` over the contraction letters. Oniguruma
/// folds `ſ` (U+017F, long s) to `s`, so `'ſ` is a contraction too; no
/// other non-ASCII char folds to these letters.
fn fold(c: char) -> char {
    if c == '\u{17F}' {
        's'
    } else {
        c.to_ascii_lowercase()
    }
}

/// The length (in chars, 2 or 3) of a contraction at `pos`, if any.
fn contraction(chars: &[(usize, char)], pos: usize, fold: impl Fn(char) -> char) -> Option<usize> {
    if chars.get(pos)?.1 != '\'' {
        return None;
    }
    let c1 = fold(chars.get(pos + 1)?.1);
    if matches!(c1, 's' | 't' | 'm' | 'd') {
        return Some(2);
    }
    let c2 = fold(chars.get(pos + 2)?.1);
    matches!((c1, c2), ('r', 'e') | ('v', 'e') | ('l', 'l')).then_some(3)
}

/// Skips chars matching `pred` from `pos`, returning the first one that
/// does not (or the end), taking at most `max` chars.
fn run(chars: &[(usize, char)], mut pos: usize, max: usize, pred: impl Fn(char) -> bool) -> usize {
    let start = pos;
    while pos < chars.len() && pos - start < max && pred(chars[pos].1) {
        pos += 1;
    }
    pos
}

/// The end of the whitespace word at `pos` (a whitespace char), for the
/// three alternatives `\s*[\r\n]+|\s+(?!\S)|\s+`.
fn whitespace_word(chars: &[(usize, char)], pos: usize, crlf_rule: bool) -> usize {
    let end = run(chars, pos, usize::MAX, is_space);
    if crlf_rule {
        // `\s*[\r\n]+`: the greedy `\s*` backs off to the last CR or LF
        // of the run.
        if let Some(last) = (pos..end).rev().find(|&i| is_crlf(chars[i].1)) {
            return last + 1;
        }
    }
    // `\s+(?!\S)`: before a non-space, leave the last space to it.
    if end - pos > 1 && end < chars.len() {
        return end - 1;
    }
    // `\s+`.
    end
}

/// The end of the Llama 3 (`max_digits` 3) or Qwen2 (1) word at `pos`.
fn llama3_word(chars: &[(usize, char)], pos: usize, max_digits: usize) -> usize {
    let c = chars[pos].1;
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if let Some(n) = contraction(chars, pos, fold) {
        return pos + n;
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if is_letter(c) {
        return run(chars, pos, usize::MAX, is_letter);
    }
    if !is_crlf(c) && !is_number(c) && chars.get(pos + 1).is_some_and(|&(_, n)| is_letter(n)) {
        return run(chars, pos + 1, usize::MAX, is_letter);
    }
    // \p{N}{1,3}
    if is_number(c) {
        return run(chars, pos, max_digits, is_number);
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let p = if c == ' ' { pos + 1 } else { pos };
    if chars.get(p).is_some_and(|&(_, n)| is_other(n)) {
        let end = run(chars, p, usize::MAX, is_other);
        return run(chars, end, usize::MAX, is_crlf);
    }
    // Only whitespace is left: every char is a letter, a number, a space
    // or `[^\s\p{L}\p{N}]`.
    whitespace_word(chars, pos, true)
}

/// The end of the GPT-2 word at `pos`.
fn gpt2_word(chars: &[(usize, char)], pos: usize) -> usize {
    // 's|'t|'re|'ve|'m|'ll|'d, case-sensitive.
    if let Some(n) = contraction(chars, pos, |c| c) {
        return pos + n;
    }
    let c = chars[pos].1;
    let p = if c == ' ' { pos + 1 } else { pos };
    if let Some(&(_, n)) = chars.get(p) {
        // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`
        for class in [is_letter as fn(char) -> bool, is_number, is_other] {
            if class(n) {
                return run(chars, p, usize::MAX, class);
            }
        }
    }
    whitespace_word(chars, pos, false)
}

/// `(?=\p{L})[^a-z]`: a letter other than ASCII lower case.
fn upperish(c: char) -> bool {
    is_letter(c) && !c.is_ascii_lowercase()
}

/// `(?=\p{L})[^A-Z]`: a letter other than ASCII upper case.
fn lowerish(c: char) -> bool {
    is_letter(c) && !c.is_ascii_uppercase()
}

/// The end of the o200k letters word whose letters start at `p`, if any:
/// `U*L+` (the `U*` backing off until an `L` follows), else `U+L*`, then
/// an optional case-insensitive contraction.
fn gpt4o_letters(chars: &[(usize, char)], p: usize) -> Option<usize> {
    let u_end = run(chars, p, usize::MAX, upperish);
    let end = (p..=u_end)
        .rev()
        .map(|k| (k, run(chars, k, usize::MAX, lowerish)))
        .find(|&(k, l_end)| l_end > k)
        .map(|(_, l_end)| l_end)
        .or_else(|| (u_end > p).then(|| run(chars, u_end, usize::MAX, lowerish)))?;
    Some(end + contraction(chars, end, |c| c.to_ascii_lowercase()).unwrap_or(0))
}

/// The end of the o200k word at `pos`.
fn gpt4o_word(chars: &[(usize, char)], pos: usize) -> usize {
    let c = chars[pos].1;
    // `[^\r\n\p{L}\p{N}]?` before the letters.
    let p = if !is_crlf(c) && !is_letter(c) && !is_number(c) {
        pos + 1
    } else {
        pos
    };
    if let Some(end) = gpt4o_letters(chars, p) {
        return end;
    }
    // \p{N}{1,3}
    if is_number(c) {
        return run(chars, pos, 3, is_number);
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
    let p = if c == ' ' { pos + 1 } else { pos };
    if chars.get(p).is_some_and(|&(_, n)| is_other(n)) {
        let end = run(chars, p, usize::MAX, is_other);
        return run(chars, end, usize::MAX, |c| is_crlf(c) || c == '/');
    }
    whitespace_word(chars, pos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pre: PreTokenizer, text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        pre.split(text, &mut out);
        out
    }

    #[test]
    fn llama3_words() {
        let cases: &[(&str, &[&str])] = &[
            ("Hello world", &["Hello", " world"]),
            (
                "I'm he'LL 'sound x'sound",
                &["I", "'m", " he", "'LL", " '", "sound", " x", "'s", "ound"],
            ),
            ("x'ſ", &["x", "'ſ"]),
            ("12345 6", &["123", "45", " ", "6"]),
            ("a  b", &["a", " ", " b"]),
            ("a  \n\n  b  ", &["a", "  \n\n", " ", " b", "  "]),
            ("fn(){\n}\n", &["fn", "(){\n", "}\n"]),
            (" ?!x", &[" ?!", "x"]),
            ("\tword", &["\tword"]),
            ("\nword", &["\n", "word"]),
            ("नमस्ते", &["नमस", "्त", "े"]),
            ("😀😀 x", &["😀😀", " x"]),
            ("½²Ⅻ3", &["½²Ⅻ", "3"]),
            ("", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(split(PreTokenizer::Llama3, text), *want, "{text:?}");
        }
    }

    #[test]
    fn qwen2_splits_single_digits() {
        assert_eq!(split(PreTokenizer::Qwen2, "x123"), ["x", "1", "2", "3"]);
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            split(PreTokenizer::Gpt2, "It's 2024!!  ok\n"),
            ["It", "'s", " 2024", "!!", " ", " ok", "\n"]
        );
    }

    /// o200k's words, as the regex llama.cpp runs for `gpt-4o` splits them
    /// (each case checked against o200k's original regex and llama.cpp's
    /// rewrite of it with Python's `regex` module).
    #[test]
    fn gpt4o_words() {
        let cases: &[(&str, &[&str])] = &[
            ("HelloWorld", &["Hello", "World"]),
            ("HELLOWorld x", &["HELLOWorld", " x"]),
            ("HELLO", &["HELLO"]),
            ("I'm don'T", &["I'm", " don'T"]),
            ("hello, world!", &["hello", ",", " world", "!"]),
            ("1234567", &["123", "456", "7"]),
            (
                "a//b

c",
                &[
                    "a", "//", "b", "

", "c",
                ],
            ),
            (
                "x.
/y",
                &[
                    "x", ".
/", "y",
                ],
            ),
            ("  foo", &[" ", " foo"]),
            ("$Dollar", &["$Dollar"]),
            ("Élan", &["Élan"]),
            ("中文字 abc", &["中文字", " abc"]),
            ("camelCaseXML parser", &["camel", "Case", "XML", " parser"]),
            ("", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(split(PreTokenizer::Gpt4o, text), *want, "{text:?}");
        }
        assert_eq!(PreTokenizer::from_name("gpt-4o"), Some(PreTokenizer::Gpt4o));
    }

    #[test]
    fn tables_are_sorted_ranges() {
        for table in [LETTER, NUMBER] {
            assert!(table.iter().all(|&(lo, hi)| lo <= hi));
            assert!(table.windows(2).all(|w| w[0].1 < w[1].0));
        }
    }

    #[test]
    fn categories() {
        assert!(is_letter('é') && is_letter('中') && is_letter('ʰ'));
        // Combining marks are not letters, though `is_alphabetic` says so.
        assert!(!is_letter('\u{94D}') && '\u{947}'.is_alphabetic() && !is_letter('\u{947}'));
        assert!(is_number('٣') && is_number('½') && is_number('Ⅻ') && !is_number('x'));
    }
}
