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
use crate::llm::protocol::{CompletionRequest, Constraint, Embeddings, RunnerError};

mod seq;
mod slots;

use seq::{fit_prompt, Seq, Start};
use slots::Slots;

/// The most token rows one embedding forward pass holds (more inputs go in
/// further passes; one longer input is a pass alone).
const EMBED_BATCH_TOKENS: usize = 4096;

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

pub(super) fn nanos(since: Instant) -> u64 {
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
    /// The slots no sequence holds, with what their caches keep.
    free: Slots,
    /// The vocabulary compiled for constrained sampling, when a request
    /// first has a constraint.
    vocab: LazyVocab,
    /// Constrained requests waiting for the vocabulary, in arrival order.
    parked: Vec<Job>,
}

/// Runs `f` on a thread of the kernels' pool (rayon's global one) and waits
/// for it. Each parallel product started inside then takes that thread as
/// one of its workers, where from the engine's own thread it would hand
/// the work over and sleep until it was done: two thread switches per
/// product, hundreds per token (a mixture of experts: 9% of a decoding
/// step on one core). The engine waits for jobs outside, on its own
/// thread, so a pool thread is never held idle.
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
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
        let free = Slots::new((0..parallel.max(1)).map(|_| model.new_cache(num_ctx)));
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
                on_pool(|| self.admit(job, &mut active));
            }
            on_pool(|| self.step(&mut active));
        }
    }

    fn admit(&mut self, job: Job, active: &mut Vec<Seq>) {
        match job {
            Job::Embed {
                input,
                truncate,
                tx,
            } => self.on_spare_cache(&tx, |e, cache| e.embed(&input, truncate, cache)),
            Job::Rerank {
                query,
                documents,
                tx,
            } => self.on_spare_cache(&tx, |e, cache| e.rerank(&query, &documents, cache)),
            Job::Completion { req, tx, cancel } => {
                let fail = |error: String| line(&tx, &RunnerError { error });
                let guide = match &req.constraint {
                    None => Ok(None),
                    Some(c) => self.guide(c).map(Some),
                };
                let guide = match guide {
                    Ok(g) => g,
                    Err(error) => {
                        fail(error);
                        return;
                    }
                };
                let n_vocab = self.model.config().n_vocab;
                if let Some(bad) = req.context.iter().find(|&&t| t as usize >= n_vocab) {
                    fail(format!(
                        "`context` holds token {bad}, past this model's vocabulary of {n_vocab}: send the `context` this model answered"
                    ));
                    return;
                }
                let mut tokens = req.context.clone();
                tokens.extend(self.codec.encode(
                    &req.prompt,
                    req.add_bos && tokens.is_empty(),
                    true,
                ));
                if tokens.is_empty() {
                    fail("the prompt is empty after tokenization".into());
                    return;
                }
                let given = tokens.len();
                let tokens = fit_prompt(tokens, self.num_ctx, req.num_keep);
                if tokens.len() < given {
                    // As Ollama does; the model sees only the prompt's ends.
                    tracing::warn!(
                        given,
                        kept = tokens.len(),
                        num_ctx = self.num_ctx,
                        "prompt longer than num_ctx truncated; raise num_ctx to keep all of it"
                    );
                }
                let Some((cache, reused)) = self.free.take_for(&tokens) else {
                    return;
                };
                // How well the prompt cache serves a client shows here first
                // (a client that rewrites its system prompt each turn reuses nothing).
                tracing::debug!(prompt = tokens.len(), reused, "prompt admitted");
                let start = Start {
                    tokens,
                    cache,
                    reused,
                    tx: tx.clone(),
                    cancel,
                };
                active.push(Seq::start(&req, guide, self.codec.as_ref(), start));
            }
        }
    }

    /// Runs `work` (a whole pass between steps: embeddings, scores) in the
    /// cache of the slot given back longest ago and sends its answer. The
    /// cache is emptied: what it held for the prompt cache is gone.
    fn on_spare_cache<T: serde::Serialize>(
        &mut self,
        tx: &Lines,
        work: impl FnOnce(&Self, &mut Cache) -> Result<T, String>,
    ) {
        let Some(mut slot) = self.free.take_oldest() else {
            return;
        };
        match work(self, &mut slot.cache) {
            Ok(out) => line(tx, &out),
            Err(error) => line(tx, &RunnerError { error }),
        };
        slot.cache.reset();
        self.free.give_back(slot.cache, &[]);
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
        let mut all = Vec::with_capacity(input.len());
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
            all.push(tokens);
        }
        // Several inputs per forward pass (as llama.cpp batches
        // llama-embedding's prompts): its matrix products then see enough
        // rows to be compute-bound. Bounded so that a large request does
        // not hold all its activations at once.
        let mut start = 0;
        while start < all.len() {
            let mut end = start;
            let mut rows = 0;
            while end < all.len() && (end == start || rows + all[end].len() <= EMBED_BATCH_TOKENS) {
                rows += all[end].len();
                end += 1;
            }
            let seqs: Vec<&[u32]> = all[start..end].iter().map(Vec::as_slice).collect();
            let vs = self
                .model
                .embed_batch(&seqs, cache)
                .map_err(|e| e.to_string())?;
            out.prompt_eval_count += rows;
            out.embeddings.extend(vs);
            start = end;
        }
        Ok(out)
    }

    /// Appends the vector (or scores) of `tokens` to `out`, counting them.
    fn embed_into(
        &self,
        out: &mut Embeddings,
        tokens: &[u32],
        cache: &mut Cache,
    ) -> Result<(), String> {
        out.prompt_eval_count += tokens.len();
        let v = self.model.embed(tokens, cache).map_err(|e| e.to_string())?;
        out.embeddings.push(v);
        Ok(())
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
            self.embed_into(&mut out, &tokens, cache)?;
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
        let waiting = slots::share(active);
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
        for (s, wait) in active.iter().zip(&waiting) {
            let left = s.pending.len() - s.fed;
            let n = if *wait {
                0
            } else if s.prefill() {
                // Chunks end at multiples of `batch` counted from the start
                // of the context, however much of it a cache already held.
                let n = left.min(batch - s.cache.len() % batch);
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

    fn release(&mut self, seq: Seq) {
        let held = seq.held().to_vec();
        self.free.give_back(seq.cache, &held);
    }
}

#[cfg(test)]
mod tests;
