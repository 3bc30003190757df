//! The runner's engine thread: it owns the model and `num_parallel`
//! sequence slots, and advances every active sequence in one batched
//! forward pass per step (continuous batching), so that concurrent
//! requests share each read of the weights instead of taking turns.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::codec::TextCodec;
use super::guide::{Guide, LazyVocab};
use super::llama::{Cache, Part};
use super::model::Model;
use super::sampler::logprobs::Reporter;
use super::sampler::Sampler;
use super::text::{Piece, TextStream};
use crate::llm::protocol::{
    CompletionChunk, CompletionRequest, Constraint, Embeddings, RunnerError,
};

/// Where a job's answer lines go (JSON, without the newline). Unbounded so
/// that one client that stops reading never stalls the others' step; what
/// it holds is bounded by the generation's length.
pub type Lines = UnboundedSender<Vec<u8>>;

/// Work for the engine.
pub enum Job {
    /// A generation.
    Completion {
        /// The request.
        req: Box<CompletionRequest>,
        /// Answer lines.
        tx: Lines,
        /// Set when the client is gone.
        cancel: Arc<AtomicBool>,
    },
    /// Embeddings (run whole, between steps).
    Embed {
        /// The texts.
        input: Vec<String>,
        /// Cut inputs longer than the context instead of failing.
        truncate: bool,
        /// Answer lines.
        tx: Lines,
    },
    /// A reranker's scores (run whole, between steps).
    Rerank {
        /// The query.
        query: String,
        /// The documents.
        documents: Vec<String>,
        /// Answer lines.
        tx: Lines,
    },
}

/// Sends `value` as one line; false when the client is gone.
pub fn line<T: serde::Serialize>(tx: &Lines, value: &T) -> bool {
    match serde_json::to_vec(value) {
        Ok(b) => tx.send(b).is_ok(),
        Err(_) => false,
    }
}

fn nanos(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The engine: the model, the codec and the slots' caches.
pub struct Engine {
    model: Model,
    codec: Arc<dyn TextCodec>,
    num_ctx: usize,
    /// Tokens evaluated per step across all sequences (`num_batch`):
    /// bounds the activations and the attention scratch, and how long a
    /// long prompt holds up the decoding of the others (its prefill is cut
    /// into steps of this size).
    batch: usize,
    /// Caches of the slots no sequence holds.
    free: Vec<Cache>,
    /// The vocabulary compiled for constrained sampling, when a request
    /// first has a constraint.
    vocab: LazyVocab,
    /// Constrained requests waiting for the vocabulary, in arrival order.
    parked: Vec<Job>,
}

impl Engine {
    /// An engine with `parallel` slots of `num_ctx` tokens each, evaluating
    /// up to `batch` prompt tokens per step.
    pub fn new(
        model: Model,
        codec: Arc<dyn TextCodec>,
        num_ctx: usize,
        batch: usize,
        parallel: usize,
    ) -> Engine {
        let vocab = LazyVocab::new(codec.clone(), model.config().n_vocab);
        let free = (0..parallel.max(1))
            .map(|_| model.new_cache(num_ctx))
            .collect();
        Engine {
            model,
            codec,
            num_ctx,
            batch: batch.max(1),
            free,
            vocab,
            parked: Vec::new(),
        }
    }

    /// Serves jobs until every sender is gone. Jobs beyond the free slots
    /// wait in arrival order.
    pub fn run(mut self, jobs: std::sync::mpsc::Receiver<Job>) {
        let mut waiting = VecDeque::new();
        let mut active: Vec<Seq> = Vec::new();
        loop {
            if !self.parked.is_empty() {
                if active.is_empty() && waiting.is_empty() {
                    // Nothing else to do meanwhile.
                    self.vocab.wait();
                }
                if self.vocab.poll().is_some() {
                    for j in self.parked.drain(..).rev() {
                        waiting.push_front(j);
                    }
                }
            }
            if active.is_empty() && waiting.is_empty() {
                match jobs.recv() {
                    Ok(j) => waiting.push_back(j),
                    Err(_) => return,
                }
            }
            while let Ok(j) = jobs.try_recv() {
                waiting.push_back(j);
            }
            while !self.free.is_empty() {
                let Some(job) = waiting.pop_front() else {
                    break;
                };
                let constrained =
                    matches!(&job, Job::Completion { req, .. } if req.constraint.is_some());
                if constrained && self.vocab.poll().is_none() {
                    self.parked.push(job);
                    continue;
                }
                self.admit(job, &mut active);
            }
            self.step(&mut active);
        }
    }

    fn admit(&mut self, job: Job, active: &mut Vec<Seq>) {
        let Some(mut cache) = self.free.pop() else {
            return;
        };
        match job {
            Job::Embed {
                input,
                truncate,
                tx,
            } => {
                match self.embed(&input, truncate, &mut cache) {
                    Ok(out) => line(&tx, &out),
                    Err(error) => line(&tx, &RunnerError { error }),
                };
                self.free.push(cache);
            }
            Job::Rerank {
                query,
                documents,
                tx,
            } => {
                match self.rerank(&query, &documents, &mut cache) {
                    Ok(out) => line(&tx, &out),
                    Err(error) => line(&tx, &RunnerError { error }),
                };
                self.free.push(cache);
            }
            Job::Completion { req, tx, cancel } => {
                let guide = match &req.constraint {
                    None => Ok(None),
                    Some(c) => self.guide(c).map(Some),
                };
                let guide = match guide {
                    Ok(g) => g,
                    Err(error) => {
                        line(&tx, &RunnerError { error });
                        self.free.push(cache);
                        return;
                    }
                };
                match Seq::start(
                    &req,
                    guide,
                    self.codec.as_ref(),
                    self.num_ctx,
                    tx.clone(),
                    cancel,
                    cache,
                ) {
                    Ok(seq) => active.push(seq),
                    Err((error, cache)) => {
                        line(&tx, &RunnerError { error });
                        self.free.push(cache);
                    }
                }
            }
        }
    }

    /// A guide for `c` (the vocabulary is ready: see `run`).
    fn guide(&mut self, c: &Constraint) -> Result<Guide, String> {
        match self.vocab.poll() {
            Some(Ok(vocab)) => Guide::new(vocab, c).map_err(|e| e.to_string()),
            Some(Err(e)) => Err(format!(
                "cannot prepare the vocabulary for constrained sampling: {e}"
            )),
            None => Err("the vocabulary for constrained sampling is not ready".into()),
        }
    }

    fn embed(
        &self,
        input: &[String],
        truncate: bool,
        cache: &mut Cache,
    ) -> Result<Embeddings, String> {
        let num_ctx = self.num_ctx;
        let mut out = Embeddings {
            embeddings: Vec::with_capacity(input.len()),
            prompt_eval_count: 0,
        };
        for text in input {
            let mut tokens = self.codec.encode(text, true, true);
            if tokens.len() > num_ctx {
                if !truncate {
                    return Err(format!(
                        "the input is {} tokens, longer than the context ({num_ctx}); set `truncate` or a larger `num_ctx`",
                        tokens.len()
                    ));
                }
                tokens.truncate(num_ctx);
            }
            out.prompt_eval_count += tokens.len();
            let v = self
                .model
                .embed(&tokens, cache)
                .map_err(|e| e.to_string())?;
            out.embeddings.push(v);
        }
        Ok(out)
    }

    /// Each document's scores for `query`, the pair laid out as the
    /// reranker says and its document cut to fit the context.
    fn rerank(
        &self,
        query: &str,
        documents: &[String],
        cache: &mut Cache,
    ) -> Result<Embeddings, String> {
        let Some(format) = self.model.pair_format() else {
            return Err("this model is not a reranker".into());
        };
        let q = self.codec.encode(query, false, false);
        let mut out = Embeddings {
            embeddings: Vec::with_capacity(documents.len()),
            prompt_eval_count: 0,
        };
        for doc in documents {
            let d = self.codec.encode(doc, false, false);
            let mut tokens = format.pair(&q, &d);
            if tokens.len() > self.num_ctx {
                let over = tokens.len() - self.num_ctx;
                if over > d.len() {
                    return Err(format!(
                        "the query is {} tokens, too long for the context ({}) with any document",
                        q.len(),
                        self.num_ctx
                    ));
                }
                tokens = format.pair(&q, &d[..d.len() - over]);
            }
            out.prompt_eval_count += tokens.len();
            let v = self
                .model
                .embed(&tokens, cache)
                .map_err(|e| e.to_string())?;
            out.embeddings.push(v);
        }
        Ok(out)
    }

    /// One forward pass over every active sequence: one token for each that
    /// is decoding, then prompt chunks in arrival order while the step has
    /// room. Finished and cancelled sequences give their slot back.
    fn step(&mut self, active: &mut Vec<Seq>) {
        let mut i = 0;
        while i < active.len() {
            if active[i].cancel.load(Ordering::Relaxed) || active[i].tx.is_closed() {
                let seq = active.remove(i);
                self.release(seq);
            } else {
                i += 1;
            }
        }
        if active.is_empty() {
            return;
        }
        // Decoding sequences need one token; prompts take what is left, in
        // chunks that end where they would alone (at multiples of `batch`), so
        // that a sequence's numbers never depend on its company (F16
        // products differ in the last bits between one chunk and two). A
        // chunk that does not fit waits for the next step, unless it would
        // be the step's only prompt work.
        let batch = self.batch;
        let mut room = batch.saturating_sub(active.iter().filter(|s| !s.prefill()).count());
        let mut any_prompt = false;
        let mut ends = Vec::with_capacity(active.len());
        for s in active.iter() {
            let left = s.pending.len() - s.fed;
            let n = if s.prefill() {
                let n = left.min(batch - s.fed % batch);
                if n <= room || !any_prompt {
                    room = room.saturating_sub(n);
                    any_prompt = true;
                    n
                } else {
                    0
                }
            } else {
                left
            };
            ends.push(s.fed + n);
        }
        let result = {
            let mut parts: Vec<Part<'_>> = active
                .iter_mut()
                .zip(&ends)
                .filter(|(s, &end)| end > s.fed)
                .map(|(s, &end)| Part {
                    tokens: &s.pending[s.fed..end],
                    cache: &mut s.cache,
                    logits: end == s.pending.len(),
                })
                .collect();
            self.model.forward_batch(&mut parts)
        };
        let mut logits = match result {
            Ok(l) => l.into_iter(),
            Err(e) => {
                // Nothing in the batch can go on from a failed pass.
                let error = e.to_string();
                for (s, &end) in active.iter().zip(&ends) {
                    if end > s.fed {
                        line(
                            &s.tx,
                            &RunnerError {
                                error: error.clone(),
                            },
                        );
                        s.cancel.store(true, Ordering::Relaxed);
                    }
                }
                return;
            }
        };
        let mut i = 0;
        while i < active.len() {
            let end = ends[i];
            let s = &mut active[i];
            if end == s.fed {
                i += 1;
                continue;
            }
            s.fed = end;
            if s.fed < s.pending.len() {
                // More of the prompt to come.
                i += 1;
                continue;
            }
            let Some(l) = logits.next() else {
                break;
            };
            if s.advance(&l, self.codec.as_ref(), self.num_ctx) {
                i += 1;
            } else {
                let seq = active.remove(i);
                ends.remove(i);
                self.release(seq);
            }
        }
    }

    fn release(&mut self, mut seq: Seq) {
        seq.cache.reset();
        self.free.push(seq.cache);
    }
}

/// One generation in a slot.
struct Seq {
    tx: Lines,
    cancel: Arc<AtomicBool>,
    cache: Cache,
    /// Tokens to evaluate: the prompt, then each sampled token.
    pending: Vec<u32>,
    /// How many of `pending` the cache holds.
    fed: usize,
    history: Vec<u32>,
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

impl Seq {
    fn start(
        req: &CompletionRequest,
        guide: Option<Guide>,
        codec: &dyn TextCodec,
        num_ctx: usize,
        tx: Lines,
        cancel: Arc<AtomicBool>,
        cache: Cache,
    ) -> Result<Seq, (String, Cache)> {
        let tokens = codec.encode(&req.prompt, req.add_bos, true);
        if tokens.is_empty() {
            return Err(("the prompt is empty after tokenization".into(), cache));
        }
        let tokens = fit_prompt(tokens, num_ctx, req.num_keep);
        Ok(Seq {
            tx,
            cancel,
            cache,
            done: CompletionChunk {
                done: true,
                prompt_eval_count: tokens.len(),
                ..CompletionChunk::default()
            },
            history: tokens.clone(),
            pending: tokens,
            fed: 0,
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
        })
    }

    /// Whether the prompt is still being evaluated.
    fn prefill(&self) -> bool {
        self.t1.is_none()
    }

    /// Sends `error` as the answer's last line (the generation ends).
    fn fail(&self, error: String) {
        line(&self.tx, &RunnerError { error });
    }

    /// Samples the next token from `logits` and streams it. False when the
    /// generation is over (its last line sent, or the client gone).
    fn advance(&mut self, logits: &[f32], codec: &dyn TextCodec, num_ctx: usize) -> bool {
        if self.t1.is_none() {
            self.done.prompt_eval_duration = nanos(self.t0);
            self.t1 = Some(Instant::now());
        }
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
        if self.cache.len() >= num_ctx || self.done.eval_count >= self.limit {
            return Ok(Some("length"));
        }
        self.pending.clear();
        self.pending.push(next);
        self.fed = 0;
        Ok(None)
    }
}

/// Cuts a prompt that does not fit, keeping the first `num_keep` tokens and
/// the most recent ones, and leaving room for at least one new token.
fn fit_prompt(tokens: Vec<u32>, num_ctx: usize, num_keep: i64) -> Vec<u32> {
    let room = num_ctx.saturating_sub(1).max(1);
    if tokens.len() <= room {
        return tokens;
    }
    let keep = if num_keep < 0 {
        room
    } else {
        usize::try_from(num_keep).unwrap_or(room).min(room / 2)
    };
    let tail = room - keep;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_start_and_end() {
        let t: Vec<u32> = (0..20).collect();
        let f = fit_prompt(t.clone(), 11, 4);
        assert_eq!(f.len(), 10);
        assert_eq!(&f[..4], &[0, 1, 2, 3]);
        assert_eq!(f[9], 19);
        assert_eq!(fit_prompt(t[..5].to_vec(), 11, 4).len(), 5);
    }
}
