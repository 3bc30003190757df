//! The prompt cache: slots keep their caches between requests, a request
//! takes the free slot whose cache shares the longest prefix with its
//! prompt, and a prompt being evaluated takes a longer shared prefix from
//! another slot's cache (or waits for an earlier request to evaluate it)
//! instead of computing it again. As llama.cpp's server picks slots.

use super::super::llama::Cache;
use super::seq::Seq;

/// Fewer shared tokens than this are evaluated rather than copied or
/// waited for: a copy moves the whole prefix.
const MIN_SHARE: usize = 8;

/// A free slot.
pub(super) struct Slot {
    pub cache: Cache,
    /// The tokens `cache` holds.
    tokens: Vec<u32>,
    /// When it was last given back (a tick of [`Slots`]).
    used: u64,
}

/// The slots no sequence holds.
pub(super) struct Slots {
    free: Vec<Slot>,
    clock: u64,
}

impl Slots {
    /// Slots of these empty caches.
    pub fn new(caches: impl Iterator<Item = Cache>) -> Slots {
        Slots {
            free: caches
                .map(|cache| Slot {
                    cache,
                    tokens: Vec::new(),
                    used: 0,
                })
                .collect(),
            clock: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }

    /// The slot given back longest ago (the least likely to be continued).
    pub fn take_oldest(&mut self) -> Option<Slot> {
        let i = (0..self.free.len()).min_by_key(|&i| self.free[i].used)?;
        Some(self.free.swap_remove(i))
    }

    /// The cache for a request of `prompt`: the free slot's that shares
    /// the longest prefix with it (the oldest when none shares any), cut
    /// to that prefix; and how many tokens of `prompt` it holds. At least
    /// the last token of the prompt is left to evaluate, for its logits.
    pub fn take_for(&mut self, prompt: &[u32]) -> Option<(Cache, usize)> {
        let i = (0..self.free.len()).max_by_key(|&i| {
            let s = &self.free[i];
            (common(&s.tokens, prompt), std::cmp::Reverse(s.used))
        })?;
        let mut slot = self.free.swap_remove(i);
        let shared = common(&slot.tokens, prompt).min(prompt.len().saturating_sub(1));
        let reused = if slot.cache.truncate(shared) {
            shared
        } else {
            0
        };
        Some((slot.cache, reused))
    }

    /// Returns a slot whose cache holds `held`.
    pub fn give_back(&mut self, cache: Cache, held: &[u32]) {
        self.clock += 1;
        let mut tokens = held.to_vec();
        tokens.truncate(cache.len());
        self.free.push(Slot {
            cache,
            tokens,
            used: self.clock,
        });
    }
}

/// How many leading tokens `a` and `b` share.
pub(super) fn common(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Before a step: each sequence still evaluating its prompt takes the
/// longest prefix of it that another active sequence's cache holds, when
/// that is more than its own; and waits (the `true`s returned) while an
/// earlier sequence is evaluating more of that prefix than any cache
/// holds yet, so that a system prompt that several requests share is
/// evaluated once. The earliest never waits on a later one, so every
/// step makes progress.
pub(super) fn share(active: &mut [Seq]) -> Vec<bool> {
    let mut waiting = vec![false; active.len()];
    for i in 0..active.len() {
        if !active[i].prompting() {
            continue;
        }
        let prompt = &active[i].history;
        // The last prompt token is evaluated here, for its logits.
        let usable = prompt.len().saturating_sub(1);
        let own = active[i].cache.len();
        if !active[i].cache.can_copy() {
            continue;
        }
        let mut best: Option<(usize, usize)> = None;
        let mut coming = 0;
        for (j, o) in active.iter().enumerate() {
            if j == i {
                continue;
            }
            let held = common(o.held(), prompt).min(usize::min(usable, o.cache.len()));
            if held >= own + MIN_SHARE && best.is_none_or(|(n, _)| held > n) {
                best = Some((held, j));
            }
            if j < i && o.prompting() {
                coming = coming.max(common(&o.history, prompt).min(usable));
            }
        }
        let mut have = own;
        if let Some((n, j)) = best {
            let (dst, src) = pair(active, i, j);
            dst.take_prefix(&src.cache, n);
            have = dst.cache.len();
        }
        waiting[i] = coming >= have + MIN_SHARE;
    }
    waiting
}

/// `active[i]` mutably and `active[j]` shared (`i != j`).
fn pair(active: &mut [Seq], i: usize, j: usize) -> (&mut Seq, &Seq) {
    if i < j {
        let (a, b) = active.split_at_mut(j);
        (&mut a[i], &b[0])
    } else {
        let (a, b) = active.split_at_mut(i);
        (&mut b[0], &a[j])
    }
}
