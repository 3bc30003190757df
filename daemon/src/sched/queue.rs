//! Serving the waiting requests: a lease on a loaded runner with a free
//! slot, else a load (evicting idle runners as [`plan`] says), else a wait;
//! a model that can never fit is refused.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::lease::Lease;
use super::plan::{plan, Candidate, Plan};
use super::{memory, Msg, Runner, SchedError, State};

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What became of one waiting request.
enum Step {
    /// Answered (a lease or an error); it left the queue.
    Answered,
    /// A load was started for it; it waits for that.
    Started,
    /// It waits for a runner to load or to become free.
    Wait,
    /// It waits for room that only a serving runner can free.
    WaitForRoom,
}

impl State {
    pub(super) fn serve_pending(&mut self) -> bool {
        let mut changed = false;
        let mut room_blocked = false;
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].reply.is_closed() {
                // The client went away while waiting.
                self.pending.remove(i);
                continue;
            }
            match self.try_serve(i, room_blocked) {
                Step::Answered => {
                    changed = true;
                    self.pending.remove(i);
                }
                Step::Started => {
                    changed = true;
                    i += 1;
                }
                Step::Wait => i += 1,
                Step::WaitForRoom => {
                    // Later loads must not take the room this one waits for.
                    room_blocked = true;
                    i += 1;
                }
            }
        }
        changed
    }

    /// Tries to serve waiting request `p`. When it is answered, its reply
    /// has been used (the caller removes it).
    fn try_serve(&mut self, p: usize, room_blocked: bool) -> Step {
        let req = &self.pending[p].req;
        let slots = self.config.num_parallel.max(1);
        if let Some(ri) = self
            .runners
            .iter()
            .position(|r| r.model == req.model && r.retire.is_none() && r.serves(req))
        {
            let r = &self.runners[ri];
            if r.process.is_some() && r.in_flight < slots {
                self.grant(ri, p);
                return Step::Answered;
            }
            return Step::Wait;
        }
        // Each of the runner's slots has its own cache of num_ctx.
        let need = req
            .shape
            .estimate((req.num_ctx as u64).saturating_mul(slots as u64));
        let ours: u64 = self.runners.iter().map(|r| r.size).sum();
        let budget = self.config.budget.total(ours);
        if let Some(budget) = budget.filter(|b| need > *b) {
            let err = SchedError::TooLarge {
                name: req.name.clone(),
                needs: need,
                budget,
                hint: self.config.budget.hint(),
            };
            tracing::warn!(model = %req.name, error = %err, "model refused");
            self.answer(p, Err(err));
            return Step::Answered;
        }
        // Runners of this model with other options go once idle; the new
        // one loads after, so the two never hold memory together. One that
        // a request ahead in the queue can use stays until it has served
        // it: else two waiters with different options retire each other's
        // runner before either is served, forever (found by bench/soak.py).
        let (mut others, mut retired) = (false, false);
        let ahead = &self.pending;
        for r in self.runners.iter_mut().filter(|r| r.model == req.model) {
            others = true;
            let wanted_ahead = ahead
                .iter()
                .take(p)
                .any(|w| w.req.model == r.model && r.serves(&w.req));
            if r.retire.is_none() && !wanted_ahead {
                tracing::info!(model = %r.name, from_num_ctx = r.num_ctx, to_num_ctx = req.num_ctx, from = ?r.settings, to = ?req.settings, "reloading model with other options");
                r.retire = Some("reloading with other options");
                r.settled = false;
                retired = true;
            }
        }
        if others {
            return if retired { Step::Started } else { Step::Wait };
        }
        if room_blocked {
            return Step::WaitForRoom;
        }
        let candidates: Vec<Candidate> = self
            .runners
            .iter()
            .map(|r| Candidate {
                size: r.size,
                idle: r.idle() && r.retire.is_none(),
                last_used: r.last_used,
            })
            .collect();
        match plan(&candidates, need, self.config.max_loaded_models, budget) {
            // Checked above; the budget has not changed since.
            Plan::Never { .. } | Plan::Wait => Step::WaitForRoom,
            Plan::Load { evict } => {
                let victims: Vec<u64> = evict.iter().map(|&i| self.runners[i].id).collect();
                let name = self.pending[p].req.name.clone();
                for id in victims {
                    if let Some(i) = self.runners.iter().position(|r| r.id == id) {
                        tracing::info!(model = %self.runners[i].name, for_model = %name, "evicting the least recently used idle model");
                        self.unload(i, "evicted to make room");
                    }
                }
                self.start_load(p, need);
                Step::Started
            }
        }
    }

    fn grant(&mut self, ri: usize, p: usize) {
        let default = self.config.keep_alive;
        let tx = self.tx.clone();
        let r = &mut self.runners[ri];
        let Some(process) = r.process.clone() else {
            return;
        };
        let keep_alive = self.pending[p].req.keep_alive;
        r.in_flight += 1;
        r.last_used = Instant::now();
        r.keep_alive = keep_alive.unwrap_or(default);
        r.expires_at = None;
        r.settled = false;
        r.generation += 1;
        let lease = Lease::new(r.id, process, std::mem::take(&mut r.load_duration), tx);
        // A client that left: the returned lease drops and releases itself.
        self.answer(p, Ok(lease));
    }

    /// Answers waiting request `p`; the caller removes its entry.
    fn answer(&mut self, p: usize, result: Result<Lease, SchedError>) {
        let (closed, _) = oneshot::channel();
        let reply = std::mem::replace(&mut self.pending[p].reply, closed);
        let _ = reply.send(result);
    }

    fn start_load(&mut self, p: usize, size: u64) {
        let req = self.pending[p].req.clone();
        self.next_id += 1;
        let id = self.next_id;
        let socket = self
            .config
            .dir
            .join(format!("runner-{}-{id}.sock", std::process::id()));
        tracing::info!(model = %req.name, num_ctx = req.num_ctx, estimate = %memory::human_bytes(size), "loading model");
        self.runners.push(Runner {
            id,
            model: req.model.clone(),
            name: req.name.clone(),
            digest: req.digest.clone(),
            details: req.details.clone(),
            num_ctx: req.num_ctx,
            settings: req.settings,
            size,
            on_gpu: false,
            socket: socket.clone(),
            process: None,
            pid: None,
            kill: None,
            load_duration: 0,
            in_flight: 0,
            last_used: Instant::now(),
            keep_alive: req.keep_alive.unwrap_or(self.config.keep_alive),
            expires_at: None,
            settled: false,
            generation: 0,
            retire: None,
        });
        let launch = self.config.launcher.launch(
            req.model.clone(),
            socket,
            req.num_ctx,
            req.settings,
            self.config.num_parallel.max(1),
            self.config.load_timeout,
        );
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = launch.await;
            let _ = tx.send(Msg::Loaded {
                id,
                result,
                load_duration: nanos(started.elapsed()),
            });
        });
    }
}
