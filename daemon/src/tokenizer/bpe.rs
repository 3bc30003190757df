//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`): GPT-2's byte↔char
//! mapping and the merge loop.
//!
//! Merging picks the adjacent pair with the lowest merge rank, leftmost on
//! ties, as HF `tokenizers` and llama.cpp do; a heap with lazily dropped
//! stale entries keeps long words (runs of spaces, minified code) at
//! O(n log n) instead of rescanning all pairs after every merge.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use llmpm_gguf::gpt2_byte_chars;

/// The inverse of [`gpt2_byte_chars`]: the byte a vocab char stands for.
#[derive(Debug, Clone)]
pub struct ByteDecoder {
    /// Indexed by code point; byte-level chars are all below U+0144.
    table: Vec<Option<u8>>,
}

impl ByteDecoder {
    pub fn new() -> ByteDecoder {
        let mut table = vec![None; 0x144];
        for (b, c) in gpt2_byte_chars().iter().enumerate() {
            if let Some(slot) = table.get_mut(*c as usize) {
                *slot = u8::try_from(b).ok();
            }
        }
        ByteDecoder { table }
    }

    /// The bytes a vocab string spells. A char outside the mapping (an
    /// added token written as plain text) stands for its own UTF-8, as in
    /// HF's ByteLevel decoder.
    pub fn decode(&self, token: &str, out: &mut Vec<u8>) {
        for c in token.chars() {
            match self.table.get(c as usize).copied().flatten() {
                Some(b) => out.push(b),
                None => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
    }
}

/// What the merge loop needs from the vocabulary.
#[derive(Debug, Clone)]
pub struct Merges {
    /// `(left, right)` → `(rank, merged)`.
    pub pairs: HashMap<(u32, u32), (u32, u32)>,
    /// The token of each single byte.
    pub byte_ids: [u32; 256],
}

#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    prev: usize,
    next: usize,
    alive: bool,
}

const NONE: usize = usize::MAX;

impl Merges {
    /// Appends the tokens of one pre-tokenized word.
    pub fn encode_word(&self, word: &[u8], out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        let mut syms: Vec<Symbol> = word
            .iter()
            .enumerate()
            .map(|(i, &b)| Symbol {
                id: self.byte_ids[usize::from(b)],
                prev: if i == 0 { NONE } else { i - 1 },
                next: if i + 1 == word.len() { NONE } else { i + 1 },
                alive: true,
            })
            .collect();
        // (rank, left index, right index, left id, right id, merged id);
        // the ids tell whether an entry went stale.
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<_>, syms: &[Symbol], l: usize, r: usize| {
            if l == NONE || r == NONE {
                return;
            }
            let (a, b) = (syms[l].id, syms[r].id);
            if let Some(&(rank, merged)) = self.pairs.get(&(a, b)) {
                heap.push(Reverse((rank, l, r, a, b, merged)));
            }
        };
        for i in 1..syms.len() {
            push(&mut heap, &syms, i - 1, i);
        }
        while let Some(Reverse((_, l, r, a, b, merged))) = heap.pop() {
            let (left, right) = (syms[l], syms[r]);
            if !left.alive || !right.alive || left.next != r || left.id != a || right.id != b {
                continue;
            }
            syms[l].id = merged;
            syms[l].next = right.next;
            if right.next != NONE {
                syms[right.next].prev = l;
            }
            syms[r].alive = false;
            push(&mut heap, &syms, left.prev, l);
            push(&mut heap, &syms, l, right.next);
        }
        let mut i = 0;
        while i != NONE {
            out.push(syms[i].id);
            i = syms[i].next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_chars_round_trip() {
        let chars = gpt2_byte_chars();
        assert_eq!(chars[usize::from(b' ')], 'Ġ');
        assert_eq!(chars[usize::from(b'\n')], 'Ċ');
        assert_eq!(chars[usize::from(b'A')], 'A');
        let dec = ByteDecoder::new();
        let mut out = Vec::new();
        let all: String = chars.iter().collect();
        dec.decode(&all, &mut out);
        assert_eq!(out, (0..=255u8).collect::<Vec<_>>());
    }

    #[test]
    fn merges_lowest_rank_first_leftmost_on_ties() {
        // Bytes a=0, b=1 in a toy table; "ab" = 256, "aab"... ranks below.
        let mut byte_ids = [0u32; 256];
        for (i, slot) in byte_ids.iter_mut().enumerate() {
            *slot = i as u32;
        }
        let (a, b) = (u32::from(b'a'), u32::from(b'b'));
        let mut pairs = HashMap::new();
        pairs.insert((a, a), (1, 300)); // aa
        pairs.insert((a, b), (0, 301)); // ab
        pairs.insert((300, 301), (2, 302)); // aaab
        let m = Merges { pairs, byte_ids };
        let mut out = Vec::new();
        m.encode_word(b"aaab", &mut out);
        // ab first (rank 0), then aa, then aa+ab.
        assert_eq!(out, [302]);
        out.clear();
        m.encode_word(b"aaaa", &mut out);
        assert_eq!(out, [300, 300]);
        out.clear();
        m.encode_word(b"aaa", &mut out);
        assert_eq!(out, [300, a]);
    }
}
