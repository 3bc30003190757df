//! One generation in a slot: its prompt (after what the slot's cache
//! already held), sampling, streaming, and the context shift that lets a
//! generation run past `num_ctx`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use super::super::codec::TextCodec;
use super::super::guide::Guide;
use super::super::llama::Cache;
use super::super::sampler::logprobs::Reporter;
use super::super::sampler::Sampler;
use super::super::text::{Piece, TextStream};
use super::{line, nanos, Lines};
use crate::llm::protocol::{CompletionChunk, CompletionRequest, RunnerError};

/// One generation in a slot.
pub(super) struct Seq {
    pub tx: Lines,
    pub cancel: Arc<AtomicBool>,
    pub cache: Cache,
    /// Tokens to evaluate: the prompt (what the cache does not hold of
    /// it), then each sampled token.
    pub pending: Vec<u32>,
    /// How many of `pending` the cache holds.
    pub fed: usize,
    /// The prompt and the tokens sampled since: the cache holds the first
    /// `cache.len()` of them.
    pub history: Vec<u32>,
    /// Prompt tokens the cache held before any was evaluated (another
    /// request's, or copied from another slot).
    pub reused: usize,
    /// Re-evaluating the tokens kept by a context shift.
    refill: bool,
    /// Shift the context when it is full, instead of stopping.
    shift: bool,
    /// Tokens a context shift keeps at the start.
    num_keep: usize,
    /// End with `history` as the answer's `context`.
    return_context: bool,
    sampler: Sampler,
    /// The output constraint, if the request has one.
    guide: Option<Guide>,
    text: TextStream,
    /// Control tokens printed anyway (the request's `preserved_tokens`).
    preserved: Vec<u32>,
    /// Log-probabilities, when the request asked for them.
    logprobs: Option<Reporter>,
    done: CompletionChunk,
    limit: usize,
    /// When the prompt started, then when decoding started.
    t0: Instant,
    t1: Option<Instant>,
}

/// What a sequence starts from.
pub(super) struct Start {
    /// The prompt, fitted to the context ([`fit_prompt`]).
    pub tokens: Vec<u32>,
    /// The slot's cache, holding the first `reused` of `tokens`.
    pub cache: Cache,
    pub reused: usize,
    pub tx: Lines,
    pub cancel: Arc<AtomicBool>,
}

impl Seq {
    pub fn start(
        req: &CompletionRequest,
        guide: Option<Guide>,
        codec: &dyn TextCodec,
        from: Start,
    ) -> Seq {
        let Start {
            tokens,
            cache,
            reused,
            tx,
            cancel,
        } = from;
        Seq {
            tx,
            cancel,
            cache,
            done: CompletionChunk {
                done: true,
                ..CompletionChunk::default()
            },
            pending: tokens[reused..].to_vec(),
            history: tokens,
            fed: 0,
            reused,
            refill: false,
            // "Until the context is full" (-2) never shifts.
            shift: req.shift && req.num_predict != -2,
            num_keep: usize::try_from(req.num_keep).unwrap_or(usize::MAX),
            return_context: req.return_context,
            sampler: Sampler::new(req.sampler.clone()),
            guide,
            text: TextStream::new(&req.stop),
            preserved: req
                .preserved_tokens
                .iter()
                .filter_map(|t| match codec.encode(t, false, true)[..] {
                    [id] => Some(id),
                    _ => None,
                })
                .collect(),
            logprobs: req.logprobs.map(Reporter::new),
            limit: match req.num_predict {
                n if n < 0 => usize::MAX,
                n => usize::try_from(n).unwrap_or(usize::MAX),
            },
            t0: Instant::now(),
            t1: None,
        }
    }

    /// Whether the prompt (or what a context shift kept) is still being
    /// evaluated, rather than one token per step.
    pub fn prefill(&self) -> bool {
        self.t1.is_none() || self.refill
    }

    /// Whether the request's own prompt is still being evaluated (it may
    /// take a prefix from another slot meanwhile).
    pub fn prompting(&self) -> bool {
        self.t1.is_none()
    }

    /// The tokens the cache holds.
    pub fn held(&self) -> &[u32] {
        &self.history[..self.cache.len().min(self.history.len())]
    }

    /// Starts over from the first `n` prompt tokens of `from`'s cache
    /// (another slot's): only the rest of the prompt is left to evaluate.
    pub fn take_prefix(&mut self, from: &Cache, n: usize) {
        if !self.cache.copy_prefix(from, n) {
            return self.restart_from(0);
        }
        self.restart_from(n);
    }

    /// The cache holds the first `n` prompt tokens: evaluate the rest.
    fn restart_from(&mut self, n: usize) {
        self.pending = self.history[n..].to_vec();
        self.fed = 0;
        self.reused = n;
    }

    /// Sends `error` as the answer's last line (the generation ends).
    pub fn fail(&self, error: String) {
        line(&self.tx, &RunnerError { error });
    }

    /// Samples the next token from `logits` and streams it. False when the
    /// generation is over (its last line sent, or the client gone).
    pub fn advance(&mut self, logits: &[f32], codec: &dyn TextCodec, num_ctx: usize) -> bool {
        if self.t1.is_none() {
            // As Ollama counts (llama.cpp's `cache_n + prompt_n`): all the
            // prompt's tokens, and apart how many a cache held.
            self.done.prompt_eval_count = self.history.len();
            self.done.prompt_cache_count = self.reused;
            self.done.prompt_eval_duration = nanos(self.t0);
            self.t1 = Some(Instant::now());
        }
        self.refill = false;
        let reason = match self.next(logits, codec, num_ctx) {
            Ok(None) => return true,
            Ok(Some(reason)) => reason,
            Err(()) => return false,
        };
        let rest = if reason == "stop" {
            String::new()
        } else {
            self.text.finish()
        };
        if let Some(r) = self.logprobs.as_mut() {
            // A stop string's tokens (and what a stop token cut) are not shown.
            if reason != "stop" {
                r.release(rest.len());
                self.done.logprobs = r.rest();
            }
        }
        self.done.content = rest;
        self.done.done_reason = Some(reason.into());
        if self.return_context {
            self.done.context = self.history.clone();
        }
        self.done.eval_duration = self.t1.map_or(0, nanos);
        line(&self.tx, &self.done);
        false
    }

    /// One token: `Ok(None)` to go on, `Ok(Some(reason))` when done,
    /// `Err` when the client is gone.
    fn next(
        &mut self,
        logits: &[f32],
        codec: &dyn TextCodec,
        num_ctx: usize,
    ) -> Result<Option<&'static str>, ()> {
        if self.done.eval_count >= self.limit {
            return Ok(Some("length"));
        }
        let next = match self.guide.as_mut() {
            None => self.sampler.sample(logits, &self.history),
            Some(g) => {
                let allowed = g.allowed().map_err(|e| self.fail(e.to_string()))?;
                match self
                    .sampler
                    .sample_allowed(logits, &self.history, allowed.as_slice())
                {
                    Some(t) => t,
                    // The model's tokens cannot spell what the grammar needs
                    // next (a tiny vocabulary).
                    None => return Ok(Some("length")),
                }
            }
        };
        if codec.is_eog(next) {
            return Ok(Some("stop"));
        }
        if let Some(g) = self.guide.as_mut() {
            g.commit(next).map_err(|e| self.fail(e.to_string()))?;
        }
        self.done.eval_count += 1;
        self.history.push(next);
        let bytes = if self.preserved.contains(&next) {
            codec.token_text(next)
        } else {
            codec.decode(&[next])
        };
        if let Some(r) = self.logprobs.as_mut() {
            r.token(logits, next, codec, bytes.len());
        }
        let closed = self.guide.as_ref().is_some_and(Guide::finished);
        let (mut t, stop) = match self.text.push(&bytes) {
            Piece::Stop(t) => (t, true),
            Piece::Text(t) => (t, false),
        };
        if closed && !stop {
            // The output is complete: what the stream held back (the start
            // of a stop string, part of a character) is part of it.
            t.push_str(&self.text.finish());
        }
        let logprobs = match self.logprobs.as_mut() {
            Some(r) => r.release(t.len()),
            None => Vec::new(),
        };
        if (!t.is_empty() || !logprobs.is_empty()) && !line(&self.tx, &piece(t, logprobs)) {
            return Err(());
        }
        if stop || closed {
            // A stop string, or the constraint's output complete: as with
            // Ollama's grammar, nothing follows.
            return Ok(Some("stop"));
        }
        if self.done.eval_count >= self.limit {
            return Ok(Some("length"));
        }
        if self.cache.len() >= num_ctx && !self.shift_context() {
            return Ok(Some("length"));
        }
        if !self.refill {
            self.pending.clear();
            self.pending.push(next);
            self.fed = 0;
        }
        Ok(None)
    }

    /// Makes room in a full context as Ollama's runner does: keeps the
    /// first `num_keep` tokens, discards half of those after them, and
    /// goes on. The kept tokens after the gap are evaluated again at their
    /// new positions (one prompt's work every `num_ctx / 2` tokens), where
    /// llama.cpp rotates the cached keys instead: the same numbers as a
    /// fresh prompt of those tokens, for every architecture and cache type.
    /// False when shifting is off or nothing can be discarded.
    fn shift_context(&mut self) -> bool {
        let held = self.cache.len();
        let Some(&next) = self.history.last() else {
            return false;
        };
        let keep = self.num_keep.min(held.saturating_sub(1));
        let discard = ((held - keep) / 2).max(1);
        if !self.shift || keep + discard >= held {
            return false;
        }
        tracing::debug!(held, keep, discard, "context shift");
        let mut kept = self.history[..keep].to_vec();
        kept.extend_from_slice(&self.history[keep + discard..held]);
        kept.push(next);
        self.history = kept;
        let from = if self.cache.truncate(keep) { keep } else { 0 };
        self.pending = self.history[from..].to_vec();
        self.fed = 0;
        self.refill = true;
        true
    }
}

/// Cuts a prompt that does not fit as Ollama does: the first `num_keep`
/// tokens, then the most recent ones, leaving half of what follows
/// `num_keep` free for the answer (a negative `num_keep` keeps the start).
pub(super) fn fit_prompt(tokens: Vec<u32>, num_ctx: usize, num_keep: i64) -> Vec<u32> {
    let room = num_ctx.saturating_sub(1).max(1);
    if tokens.len() <= room {
        return tokens;
    }
    let keep = usize::try_from(num_keep).unwrap_or(room).min(room);
    let limit = num_ctx
        .saturating_sub(((num_ctx - keep) / 2).max(1))
        .max(keep);
    let tail = limit - keep;
    let mut out = tokens[..keep].to_vec();
    out.extend_from_slice(&tokens[tokens.len() - tail..]);
    out
}

fn piece(content: String, logprobs: Vec<llmpm_spec::api::Logprob>) -> CompletionChunk {
    CompletionChunk {
        content,
        logprobs,
        ..CompletionChunk::default()
    }
}
