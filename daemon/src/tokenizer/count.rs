//! Counting a prompt's tokens again and again as messages leave it (the
//! daemon's render-and-fit): the count of each text fragment between
//! special tokens is remembered, so that a message's text is tokenized
//! once however many of the renders being tried contain it.

use std::collections::HashMap;

use super::{Fragment, Model, Tokenizer};

/// Token counts of the text fragments seen so far, for one tokenizer.
#[derive(Debug, Default)]
pub struct CountMemo {
    /// By fragment text; SentencePiece counts a fragment that follows a
    /// special token (or starts the text) apart: it gets the space prefix.
    counts: [HashMap<String, usize>; 2],
    /// Fragments tokenized (not found in the memo), for the tests.
    tokenized: usize,
}

impl CountMemo {
    /// How many fragments were tokenized rather than found.
    pub fn tokenized(&self) -> usize {
        self.tokenized
    }
}

impl Tokenizer {
    /// The number of tokens [`Tokenizer::encode`] gives for `text`, each
    /// fragment's count taken from `memo` when it has it.
    pub fn count(
        &self,
        text: &str,
        add_bos: bool,
        parse_special: bool,
        memo: &mut CountMemo,
    ) -> usize {
        let mut n = 0;
        if add_bos {
            n += usize::from(self.bos.is_some());
            n += usize::from(self.add_eos && self.eos.is_some());
        }
        let spm = matches!(self.model, Model::Spm { .. });
        let (mut words, mut scratch, mut out) = (Vec::new(), String::new(), Vec::new());
        let mut prev_special = true;
        for fragment in self.fragments(text, parse_special) {
            match fragment {
                Fragment::Token(_) => {
                    n += 1;
                    prev_special = true;
                }
                Fragment::Text(t) => {
                    let seen = &mut memo.counts[usize::from(spm && prev_special)];
                    n += match seen.get(t) {
                        Some(&c) => c,
                        None => {
                            out.clear();
                            self.encode_text(t, prev_special, &mut words, &mut scratch, &mut out);
                            seen.insert(t.to_owned(), out.len());
                            memo.tokenized += 1;
                            out.len()
                        }
                    };
                    prev_special = false;
                }
            }
        }
        n
    }
}
