//! The scheduler's task: the loop that owns the set of runners and
//! handles each message in order, the idle policy (`keep_alive`), loads
//! that finish, runners that exit, unloading and `ps`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use super::{KeepAlive, Msg, Pending, RunnerProcess, RunnerStatus, SchedError, State};
use crate::llm::client::ClientError;
use crate::llm::Endpoint;

/// A time that reads as "forever" (what Ollama reports: now plus the
/// largest Go duration, about 292 years).
pub(super) fn far_future(now: SystemTime) -> SystemTime {
    now.checked_add(Duration::from_nanos(i64::MAX.unsigned_abs()))
        .unwrap_or(now)
}

impl State {
    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Acquire { req, reply } => {
                    // Clients that gave up waiting do not hold places.
                    self.pending.retain(|p| !p.reply.is_closed());
                    if self.pending.len() >= self.config.max_queue.max(1) {
                        tracing::warn!(model = %req.name, queued = self.pending.len(), "request refused: the queue is full (max_queue)");
                        let _ = reply.send(Err(SchedError::Busy));
                    } else {
                        self.pending.push_back(Pending { req: *req, reply });
                    }
                }
                Msg::Release { id } => {
                    if let Some(r) = self.runners.iter_mut().find(|r| r.id == id) {
                        r.in_flight = r.in_flight.saturating_sub(1);
                        r.last_used = Instant::now();
                    }
                }
                Msg::Unload { model, reply } => {
                    let mut any = false;
                    for r in self.runners.iter_mut().filter(|r| r.model == model) {
                        any = true;
                        r.retire = Some("stop requested");
                        r.settled = false;
                    }
                    let _ = reply.send(any);
                }
                Msg::Expired { id, generation } => {
                    if let Some(i) = self
                        .runners
                        .iter()
                        .position(|r| r.id == id && r.generation == generation && r.in_flight == 0)
                    {
                        self.unload(i, "keep_alive expired");
                    }
                }
                Msg::Loaded {
                    id,
                    result,
                    load_duration,
                } => self.loaded(id, result, load_duration),
                Msg::Exited { id, status } => {
                    if let Some(i) = self.runners.iter().position(|r| r.id == id) {
                        let r = self.runners.remove(i);
                        let _ = std::fs::remove_file(&r.socket);
                        crate::metrics::runner_exited();
                        tracing::warn!(model = %r.name, %status, in_flight = r.in_flight, "model runner exited unexpectedly; it will be started again on the next request");
                    }
                }
                Msg::Ps { reply } => {
                    let _ = reply.send(self.ps());
                }
                Msg::Shutdown { reply } => {
                    for p in self.pending.drain(..) {
                        let _ = p.reply.send(Err(SchedError::Stopped));
                    }
                    for r in self.runners.drain(..) {
                        tracing::info!(model = %r.name, "unloading model: shutdown");
                        let _ = std::fs::remove_file(&r.socket);
                        // Dropping `r` drops `kill`, which kills the process.
                    }
                    let _ = reply.send(());
                    return;
                }
            }
            self.tick();
            crate::metrics::queue_depth(self.pending.len());
        }
    }

    /// Serves what can be served, then settles idle runners, until nothing changes.
    fn tick(&mut self) {
        loop {
            let mut changed = self.serve_pending();
            let mut i = 0;
            while i < self.runners.len() {
                let r = &self.runners[i];
                if r.idle() && !r.settled {
                    changed = true;
                    if self.settle(i) {
                        continue; // unloaded: the same index is the next runner
                    }
                }
                i += 1;
            }
            if !changed {
                return;
            }
        }
    }

    /// Applies the idle policy to runner `i`; whether it was unloaded.
    fn settle(&mut self, i: usize) -> bool {
        let r = &mut self.runners[i];
        r.settled = true;
        if let Some(why) = r.retire {
            self.unload(i, why);
            return true;
        }
        match r.keep_alive {
            KeepAlive::Forever => {
                r.expires_at = None;
            }
            KeepAlive::For(d) if d.is_zero() => {
                self.unload(i, "keep_alive 0");
                return true;
            }
            KeepAlive::For(d) => {
                r.generation += 1;
                r.expires_at = SystemTime::now().checked_add(d);
                let (id, generation, tx) = (r.id, r.generation, self.tx.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = tx.send(Msg::Expired { id, generation });
                });
            }
        }
        false
    }
}

impl State {
    fn loaded(
        &mut self,
        id: u64,
        result: Result<Box<dyn RunnerProcess>, ClientError>,
        load_duration: u64,
    ) {
        let Some(i) = self.runners.iter().position(|r| r.id == id) else {
            // Nobody wants it any more.
            if let Ok(mut child) = result {
                child.kill();
            }
            return;
        };
        match result {
            Ok(child) => {
                let (exit_tx, exit_rx) = watch::channel(None);
                let (kill_tx, kill_rx) = oneshot::channel();
                let pid = child.pid();
                let on_gpu = child.on_gpu();
                tokio::spawn(watch_process(child, kill_rx, exit_tx, id, self.tx.clone()));
                let r = &mut self.runners[i];
                r.process = Some(Arc::new(Endpoint {
                    socket: r.socket.clone(),
                    num_ctx: r.num_ctx,
                    exit: exit_rx,
                }));
                r.pid = pid;
                r.on_gpu = on_gpu;
                r.kill = Some(kill_tx);
                r.load_duration = load_duration;
                r.last_used = Instant::now();
                tracing::info!(model = %r.name, pid = ?pid, num_ctx = r.num_ctx, gpu = on_gpu, seconds = load_duration as f64 / 1e9, "model loaded");
            }
            Err(e) => {
                let r = self.runners.remove(i);
                let _ = std::fs::remove_file(&r.socket);
                tracing::warn!(model = %r.name, error = %crate::errors::chain(&e), "model failed to load");
                let e = Arc::new(e);
                let mut k = 0;
                while k < self.pending.len() {
                    let q = &self.pending[k].req;
                    if q.model == r.model && r.serves(q) {
                        if let Some(p) = self.pending.remove(k) {
                            let _ = p.reply.send(Err(SchedError::Runner(e.clone())));
                        }
                    } else {
                        k += 1;
                    }
                }
            }
        }
    }

    pub(super) fn unload(&mut self, i: usize, reason: &str) {
        let r = self.runners.remove(i);
        tracing::info!(model = %r.name, pid = ?r.pid, reason, "unloading model");
        let _ = std::fs::remove_file(&r.socket);
        // Dropping `r.kill` kills the process.
        drop(r);
    }

    fn ps(&self) -> Vec<RunnerStatus> {
        let now = SystemTime::now();
        let mut out: Vec<RunnerStatus> = self
            .runners
            .iter()
            .map(|r| RunnerStatus {
                name: r.name.clone(),
                digest: r.digest.clone(),
                details: r.details.clone(),
                size: r.size,
                // Where the runner put the model, not where the budget
                // hoped: a `cuda` build without a usable GPU runs on the CPU.
                size_vram: if r.on_gpu { r.size } else { 0 },
                num_ctx: r.num_ctx,
                // Serving or loading: it stays at least its keep_alive from now.
                expires_at: r.expires_at.unwrap_or_else(|| match r.keep_alive {
                    KeepAlive::Forever => far_future(now),
                    KeepAlive::For(d) => now.checked_add(d).unwrap_or(now),
                }),
                pid: r.pid,
            })
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.expires_at));
        out
    }
}

/// Owns a runner's process: reports its exit (to leases, and to the
/// scheduler when nobody asked for it) and kills it when `kill` resolves
/// or is dropped.
async fn watch_process(
    mut child: Box<dyn RunnerProcess>,
    kill: oneshot::Receiver<()>,
    exit: watch::Sender<Option<String>>,
    id: u64,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let asked = tokio::select! {
        _ = child.wait() => false,
        _ = kill => {
            child.kill();
            true
        }
    };
    let status = child.wait().await;
    let _ = exit.send(Some(status.clone()));
    if !asked {
        let _ = tx.send(Msg::Exited { id, status });
    }
}
