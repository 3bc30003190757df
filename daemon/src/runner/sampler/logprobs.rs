//! Log-probabilities of generated tokens, as Ollama reports them (through
//! llama.cpp's server, `n_probs` without `post_sampling_probs`): the log of
//! the full softmax of the model's raw logits at that position, before
//! penalties, temperature, top-k/top-p/min-p and constraints, so that a
//! token's number says what the model thought of it, not what the sampler
//! let through.

use std::collections::VecDeque;

use llmpm_spec::api::{Logprob, TokenLogprob};

use crate::runner::codec::TextCodec;

/// The log-probability reported for a token the model gives no chance
/// (a logit of minus infinity): OpenAI's floor, and a JSON number.
pub const FLOOR: f32 = -9999.0;

/// The log-probability of `chosen` and the `top` most likely tokens with
/// theirs (most likely first; ties by lower id), from `logits`.
pub fn logprobs(logits: &[f32], chosen: u32, top: usize) -> (f32, Vec<(u32, f32)>) {
    let max = logits
        .iter()
        .copied()
        .filter(|l| l.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return (FLOOR, Vec::new());
    }
    // log-sum-exp around the largest logit; the sum in f64, as 150k terms
    // of f32 would lose the small ones.
    let sum: f64 = logits
        .iter()
        .filter(|l| l.is_finite())
        .map(|&l| f64::from(l - max).exp())
        .sum();
    let lse = f64::from(max) + sum.ln();
    let lp = |l: f32| -> f32 {
        if l.is_finite() {
            ((f64::from(l) - lse) as f32).max(FLOOR)
        } else {
            FLOOR
        }
    };
    let chosen_lp = logits.get(chosen as usize).map_or(FLOOR, |&l| lp(l));
    (
        chosen_lp,
        best(logits, top)
            .into_iter()
            .map(|(id, l)| (id, lp(l)))
            .collect(),
    )
}

/// The `n` largest finite logits with their ids, largest first, ties by id:
/// one pass keeping a short sorted list.
fn best(logits: &[f32], n: usize) -> Vec<(u32, f32)> {
    let mut out: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    if n == 0 {
        return out;
    }
    for (i, &l) in logits.iter().enumerate() {
        if !l.is_finite() || (out.len() == n && out.last().is_some_and(|&(_, w)| l <= w)) {
            continue;
        }
        let id = u32::try_from(i).unwrap_or(u32::MAX);
        // After equal logits: a lower id came first and stays first.
        let at = out.partition_point(|&(_, w)| w >= l);
        out.insert(at, (id, l));
        out.truncate(n);
    }
    out
}

/// A generation's log-probabilities, each held until the text of its
/// token starts to be released, so that a line carries the entries of the
/// tokens whose text it carries; the tokens of a matched stop string,
/// whose text is never shown, are never reported.
#[derive(Debug)]
pub struct Reporter {
    top: usize,
    /// Entries not yet released, with the byte offset where their token's
    /// text starts.
    pending: VecDeque<(usize, Logprob)>,
    /// Bytes of text the tokens so far make, and of it the bytes released.
    made: usize,
    released: usize,
}

/// One entry: `id`'s text (as the vocabulary spells a control token) and
/// log-probability.
fn entry(codec: &dyn TextCodec, id: u32, logprob: f32) -> TokenLogprob {
    let bytes = codec.token_text(id);
    TokenLogprob {
        token: String::from_utf8_lossy(&bytes).into_owned(),
        logprob: f64::from(logprob),
        bytes: (!bytes.is_empty()).then_some(bytes),
    }
}

impl Reporter {
    /// A reporter listing `top` alternatives with each token.
    pub fn new(top: u32) -> Reporter {
        Reporter {
            top: usize::try_from(top).unwrap_or(usize::MAX),
            pending: VecDeque::new(),
            made: 0,
            released: 0,
        }
    }

    /// Records the token `id` chosen from `logits`; its text is `len` bytes.
    pub fn token(&mut self, logits: &[f32], id: u32, codec: &dyn TextCodec, len: usize) {
        let (lp, top) = logprobs(logits, id, self.top);
        let entry = Logprob {
            token: entry(codec, id, lp),
            top_logprobs: top.into_iter().map(|(t, l)| entry(codec, t, l)).collect(),
        };
        self.pending.push_back((self.made, entry));
        self.made += len;
    }

    /// The entries whose text has started, now that `n` more bytes of text
    /// are released.
    pub fn release(&mut self, n: usize) -> Vec<Logprob> {
        self.released += n;
        let mut out = Vec::new();
        while let Some((at, _)) = self.pending.front() {
            // A token with no text of its own goes with the text before it.
            if *at > self.released || (*at == self.released && self.released < self.made) {
                break;
            }
            if let Some((_, e)) = self.pending.pop_front() {
                out.push(e);
            }
        }
        out
    }

    /// Every entry left: the generation ended and its text is all out.
    pub fn rest(&mut self) -> Vec<Logprob> {
        self.pending.drain(..).map(|(_, e)| e).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..300)
            .map(|i| ((i * 37) % 101) as f32 * 0.13 - 4.0)
            .collect()
    }

    /// log-softmax written the plain way, in f64.
    fn direct(logits: &[f32], id: usize) -> f64 {
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        f64::from(logits[id]) - z.ln()
    }

    #[test]
    fn chosen_logprob_is_the_log_softmax() {
        let l = logits();
        for id in [0u32, 7, 150, 299] {
            let (lp, _) = logprobs(&l, id, 0);
            assert!(
                (f64::from(lp) - direct(&l, id as usize)).abs() < 1e-4,
                "{id}"
            );
            assert!(lp <= 0.0);
        }
        // Probabilities sum to one: exp of every token's logprob.
        let total: f64 = (0..l.len())
            .map(|i| f64::from(logprobs(&l, i as u32, 0).0).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
    }

    #[test]
    fn top_list_is_sorted_and_holds_the_best() {
        let l = logits();
        let (_, top) = logprobs(&l, 3, 20);
        assert_eq!(top.len(), 20);
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "{top:?}");
        assert!(top.iter().all(|&(_, lp)| lp <= 0.0));
        // The same as sorting everything.
        let mut all: Vec<(u32, f32)> = (0..l.len() as u32).map(|i| (i, l[i as usize])).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let ids: Vec<u32> = top.iter().map(|t| t.0).collect();
        let want: Vec<u32> = all[..20].iter().map(|t| t.0).collect();
        assert_eq!(ids, want);
        // Their probabilities sum to at most one.
        let mass: f32 = top.iter().map(|t| t.1.exp()).sum();
        assert!(mass <= 1.0 + 1e-5, "{mass}");
        // The best token's entry is the chosen one's number when it is chosen.
        let (lp, top1) = logprobs(&l, top[0].0, 1);
        assert_eq!(top1, vec![(top[0].0, lp)]);
    }

    #[test]
    fn masked_and_degenerate_logits() {
        let mut l = vec![f32::NEG_INFINITY; 5];
        l[2] = 1.0;
        l[4] = 1.0;
        let (lp, top) = logprobs(&l, 2, 5);
        assert!((lp - 0.5f32.ln()).abs() < 1e-6);
        // Masked tokens are not listed; equal logits keep id order.
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(logprobs(&l, 0, 0).0, FLOOR);
        assert_eq!(logprobs(&l, 99, 0).0, FLOOR);
        assert_eq!(logprobs(&[f32::NAN; 3], 0, 2), (FLOOR, Vec::new()));
    }

    /// Tokens 0..4 spell "a", "b", "", "cd" (4 shows as nothing, `<x>` by name).
    struct Codec;

    impl TextCodec for Codec {
        fn encode(&self, _: &str, _: bool, _: bool) -> Vec<u32> {
            Vec::new()
        }
        fn decode(&self, ids: &[u32]) -> Vec<u8> {
            ids.iter()
                .flat_map(|&i| ["a", "b", "", "cd", ""][i as usize].bytes())
                .collect()
        }
        fn is_eog(&self, _: u32) -> bool {
            false
        }
        fn vocab_len(&self) -> usize {
            5
        }
        fn token_entry(&self, id: u32) -> (Vec<u8>, bool) {
            (self.token_text(id), id == 4)
        }
        fn canonical(&self) -> bool {
            false
        }
        fn token_text(&self, id: u32) -> Vec<u8> {
            if id == 4 {
                b"<x>".to_vec()
            } else {
                self.decode(&[id])
            }
        }
    }

    #[test]
    fn entries_go_out_with_their_text() {
        let l = [0.0f32, 1.0, -1.0, 2.0, 0.5];
        let mut r = Reporter::new(2);
        let tokens = |r: &[Logprob]| r.iter().map(|e| e.token.token.clone()).collect::<Vec<_>>();
        // "a": released at once, with the two best alternatives by name.
        r.token(&l, 0, &Codec, 1);
        let out = r.release(1);
        assert_eq!(tokens(&out), ["a"]);
        let top: Vec<&str> = out[0]
            .top_logprobs
            .iter()
            .map(|t| t.token.as_str())
            .collect();
        assert_eq!(top, ["cd", "b"]);
        assert_eq!(out[0].token.bytes.as_deref(), Some(&b"a"[..]));
        // "cd" held back (a stop string may start there): nothing yet.
        r.token(&l, 3, &Codec, 2);
        assert!(r.release(0).is_empty());
        // An empty token goes with the text before it once that is out.
        r.token(&l, 2, &Codec, 0);
        assert!(r.release(0).is_empty());
        let out = r.release(2);
        assert_eq!(tokens(&out), ["cd", ""]);
        assert_eq!(out[1].token.bytes, None);
        // What is left at the end comes out with the last line.
        r.token(&l, 1, &Codec, 1);
        assert_eq!(tokens(&r.rest()), ["b"]);
        assert!(r.rest().is_empty());
    }
}
