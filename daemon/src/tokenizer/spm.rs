//! SentencePiece-style vocabularies (`tokenizer.ggml.model = "llama"`:
//! Llama 2, Gemma): spaces as `▁`, merges chosen by token score, byte
//! fallback through `<0xXX>` tokens.
//!
//! This is llama.cpp's `llm_tokenizer_spm`: start from UTF-8 chars, merge
//! the adjacent pair whose concatenation is the highest-scoring vocab token
//! (leftmost on ties), then resegment any symbol that is not a token into
//! the pieces it was merged from, and finally into bytes.

use std::collections::{BinaryHeap, HashMap};

/// What the SentencePiece merge loop needs from the vocabulary.
#[derive(Debug, Clone)]
pub struct Spm {
    /// The `<0xXX>` token of each byte, where the vocabulary has one.
    pub byte_ids: [Option<u32>; 256],
    /// `<unk>`, for bytes without a byte token.
    pub unk: Option<u32>,
}

#[derive(Clone, Copy)]
struct Symbol {
    /// Byte range in the text.
    start: usize,
    end: usize,
    prev: usize,
    next: usize,
}

const NONE: usize = usize::MAX;

/// A heap entry: higher score first, then lower left index.
#[derive(PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Spm {
    /// Appends the tokens of `text`, already escaped (`▁` for spaces).
    pub fn encode(
        &self,
        text: &str,
        vocab: &HashMap<String, u32>,
        scores: &[f32],
        out: &mut Vec<u32>,
    ) {
        let mut syms: Vec<Symbol> = Vec::new();
        for (i, (start, c)) in text.char_indices().enumerate() {
            syms.push(Symbol {
                start,
                end: start + c.len_utf8(),
                prev: i.checked_sub(1).unwrap_or(NONE),
                next: i + 1,
            });
        }
        if let Some(last) = syms.last_mut() {
            last.next = NONE;
        }
        let mut heap = BinaryHeap::new();
        // Which two symbols each merged span came from, for resegmenting.
        let mut rev_merge: HashMap<(usize, usize), (usize, usize)> = HashMap::new();
        let try_add = |heap: &mut BinaryHeap<Bigram>,
                       rev: &mut HashMap<(usize, usize), (usize, usize)>,
                       syms: &[Symbol],
                       l: usize,
                       r: usize| {
            if l == NONE || r == NONE {
                return;
            }
            let (start, end) = (syms[l].start, syms[r].end);
            let Some(&id) = vocab.get(&text[start..end]) else {
                return;
            };
            let score = scores.get(id as usize).copied().unwrap_or(0.0);
            heap.push(Bigram {
                score,
                left: l,
                right: r,
                len: end - start,
            });
            rev.insert((start, end), (l, r));
        };
        for i in 1..syms.len() {
            try_add(&mut heap, &mut rev_merge, &syms, i - 1, i);
        }
        let mut alive = vec![true; syms.len()];
        while let Some(bg) = heap.pop() {
            let (l, r) = (bg.left, bg.right);
            if !alive[l] || !alive[r] || syms[l].next != r {
                continue;
            }
            if syms[r].end - syms[l].start != bg.len {
                continue;
            }
            syms[l].end = syms[r].end;
            syms[l].next = syms[r].next;
            if syms[r].next != NONE {
                let n = syms[r].next;
                syms[n].prev = l;
            }
            alive[r] = false;
            let prev = syms[l].prev;
            let next = syms[l].next;
            try_add(&mut heap, &mut rev_merge, &syms, prev, l);
            try_add(&mut heap, &mut rev_merge, &syms, l, next);
        }
        let mut i = if syms.is_empty() { NONE } else { 0 };
        while i != NONE {
            self.resegment(
                text,
                syms[i].start,
                syms[i].end,
                vocab,
                &rev_merge,
                &syms,
                out,
            );
            i = syms[i].next;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn resegment(
        &self,
        text: &str,
        start: usize,
        end: usize,
        vocab: &HashMap<String, u32>,
        rev_merge: &HashMap<(usize, usize), (usize, usize)>,
        syms: &[Symbol],
        out: &mut Vec<u32>,
    ) {
        // An explicit stack instead of recursion: a hostile vocabulary
        // cannot make it deep, but a long text could.
        let mut stack = vec![(start, end)];
        while let Some((s, e)) = stack.pop() {
            if let Some(&id) = text.get(s..e).and_then(|t| vocab.get(t)) {
                out.push(id);
                continue;
            }
            if let Some(&(l, r)) = rev_merge.get(&(s, e)) {
                let split = syms[r].start;
                if split > s && split < e && syms[l].start == s {
                    // Right half pushed first so the left pops first.
                    stack.push((split, e));
                    stack.push((s, split));
                    continue;
                }
            }
            for &b in text.as_bytes().get(s..e).unwrap_or_default() {
                if let Some(id) = self.byte_ids[usize::from(b)].or(self.unk) {
                    out.push(id);
                }
            }
        }
    }
}

/// The byte a `<0xXX>` token stands for.
pub fn parse_byte_token(s: &str) -> Option<u8> {
    let hex = s.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
