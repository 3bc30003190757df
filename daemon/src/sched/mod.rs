//! The scheduler: the one owner of the set of loaded model runners.
//!
//! A single task holds the set and is fed by messages (a request wants a
//! runner, a request ended, a timer fired, a load finished, a runner
//! died, `stop`, `ps`), so every decision about what is resident is made in
//! one place and in order. Handlers get a [`Lease`] on a ready runner;
//! dropping it tells the scheduler the request is over.
//!
//! Policy, as Ollama's: a runner stays loaded for its last request's
//! `keep_alive` after that request ends; a load that does not fit
//! `max_loaded_models` or the memory budget unloads the idle runner used
//! least recently, and waits when every runner is serving (a serving
//! runner is never unloaded); a model that cannot fit even alone is
//! refused; a runner that dies is dropped from the set and started again
//! by the next request; past `max_queue` waiting requests, new ones are
//! refused with 503. A runner serves `num_parallel` requests at a time
//! (the runner itself runs them one after another: batched decoding is
//! not implemented), others wait in the queue.

pub mod keep_alive;
pub mod launch;
pub mod memory;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod scenarios;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use llmpm_spec::api::ModelDetails;
use tokio::sync::{mpsc, oneshot, watch};

pub use keep_alive::KeepAlive;
pub use launch::{Launcher, ProcessLauncher, RunnerProcess};
pub use memory::{Budget, ModelShape};

use crate::runner::client::ClientError;

/// Ollama's words for a full queue; clients match on them.
pub const BUSY_MESSAGE: &str = "server busy, please try again.  maximum pending requests exceeded";

/// How the scheduler is set up (from the daemon's configuration).
#[derive(Debug)]
pub struct SchedConfig {
    /// Starts runners (`llmpmd runner` processes; a fake in tests).
    pub launcher: Arc<dyn Launcher>,
    /// Where runner sockets go.
    pub dir: PathBuf,
    /// `keep_alive` for requests that give none.
    pub keep_alive: KeepAlive,
    /// Most runners loaded at once (at least 1).
    pub max_loaded_models: usize,
    /// Requests one runner takes at once (at least 1).
    pub num_parallel: usize,
    /// Most requests waiting for a runner before 503s (at least 1).
    pub max_queue: usize,
    /// What the runners may use together.
    pub budget: Budget,
    /// A runner not ready after this long is killed.
    pub load_timeout: Duration,
}

/// What a request needs a runner for.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// The weights file; runners are shared by every name of the same file.
    pub model: PathBuf,
    /// The name it was asked for (shown by `ps`).
    pub name: String,
    /// The manifest digest, hex (shown by `ps`).
    pub digest: String,
    /// Family, size, quantization (shown by `ps`).
    pub details: ModelDetails,
    /// For the memory estimate.
    pub shape: ModelShape,
    /// Context size; a runner with another one is reloaded.
    pub num_ctx: usize,
    /// The rest of what the runner is started with; likewise.
    pub settings: RunnerSettings,
    /// The request's `keep_alive`; `None` takes the configured default.
    pub keep_alive: Option<KeepAlive>,
}

/// What a runner process is started with besides its model and context:
/// a request that needs other values gets another runner, as in Ollama
/// (the loaded one goes once idle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerSettings {
    /// Prompt tokens per forward pass.
    pub num_batch: usize,
    /// CPU threads; 0 lets the runner use every core.
    pub num_thread: usize,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        RunnerSettings {
            num_batch: crate::runner::options::DEFAULT_NUM_BATCH,
            num_thread: 0,
        }
    }
}

/// Why no runner was given.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    /// `max_queue` requests are already waiting.
    #[error("{BUSY_MESSAGE}")]
    Busy,
    /// The model can never fit the memory budget.
    #[error(
        "model `{name}` needs {} but the memory budget is {}; {hint}, or use a smaller num_ctx",
        memory::human_bytes(*needs),
        memory::human_bytes(*budget)
    )]
    TooLarge {
        /// The model.
        name: String,
        /// Its estimate, bytes.
        needs: u64,
        /// The whole budget, bytes.
        budget: u64,
        /// What to change.
        hint: &'static str,
    },
    /// The runner could not be started.
    #[error(transparent)]
    Runner(Arc<ClientError>),
    /// The daemon is shutting down.
    #[error("the scheduler has stopped; the daemon is shutting down")]
    Stopped,
}

/// A loaded runner process, as a lease sees it.
#[derive(Debug)]
struct Process {
    socket: PathBuf,
    num_ctx: usize,
    /// How it exited, once it has.
    exit: watch::Receiver<Option<String>>,
}

/// A request's hold on a ready runner; the runner is not unloaded while a
/// lease on it exists. Dropping it ends the request for the scheduler.
#[derive(Debug)]
pub struct Lease {
    id: u64,
    process: Arc<Process>,
    load_duration: u64,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Lease {
    /// The runner's socket.
    pub fn socket(&self) -> &Path {
        &self.process.socket
    }

    /// The runner's context size.
    pub fn num_ctx(&self) -> usize {
        self.process.num_ctx
    }

    /// Nanoseconds spent loading the runner for this request (0 when it was loaded).
    pub fn load_duration(&self) -> u64 {
        self.load_duration
    }

    /// How the runner exited, when a broken answer suggests it did; waits a
    /// moment for the OS to report it.
    pub async fn exit_status(&self) -> Option<String> {
        let mut rx = self.process.exit.clone();
        let wait = async move { rx.wait_for(Option::is_some).await.ok()?.clone() };
        tokio::time::timeout(Duration::from_millis(500), wait)
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Release { id: self.id });
    }
}

/// One loaded (or loading) runner, as `ps` shows it.
#[derive(Debug, Clone)]
pub struct RunnerStatus {
    /// The name it was loaded under.
    pub name: String,
    /// The manifest digest, hex.
    pub digest: String,
    /// Details as `/api/tags` gives them.
    pub details: ModelDetails,
    /// The memory estimate, bytes.
    pub size: u64,
    /// How much of it is in GPU memory (all of it when the budget is a
    /// GPU's, none otherwise).
    pub size_vram: u64,
    /// Its context size.
    pub num_ctx: usize,
    /// When it will be unloaded if no request comes (far future: never).
    pub expires_at: SystemTime,
    /// Its process id, once started.
    pub pid: Option<u32>,
}

enum Msg {
    Acquire {
        req: Box<LoadRequest>,
        reply: oneshot::Sender<Result<Lease, SchedError>>,
    },
    Release {
        id: u64,
    },
    Unload {
        model: PathBuf,
        reply: oneshot::Sender<bool>,
    },
    Expired {
        id: u64,
        generation: u64,
    },
    Loaded {
        id: u64,
        result: Result<Box<dyn RunnerProcess>, ClientError>,
        load_duration: u64,
    },
    Exited {
        id: u64,
        status: String,
    },
    Ps {
        reply: oneshot::Sender<Vec<RunnerStatus>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Acquire { .. } => "Acquire",
            Msg::Release { .. } => "Release",
            Msg::Unload { .. } => "Unload",
            Msg::Expired { .. } => "Expired",
            Msg::Loaded { .. } => "Loaded",
            Msg::Exited { .. } => "Exited",
            Msg::Ps { .. } => "Ps",
            Msg::Shutdown { .. } => "Shutdown",
        })
    }
}

/// The handle to the scheduler task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Scheduler {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Scheduler {
    /// Starts the scheduler task (on the current tokio runtime).
    pub fn start(config: SchedConfig) -> Scheduler {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = State {
            config,
            runners: Vec::new(),
            pending: VecDeque::new(),
            next_id: 0,
            tx: tx.clone(),
        };
        tokio::spawn(state.run(rx));
        Scheduler { tx }
    }

    /// A lease on a ready runner for `req`: at once when one is loaded and
    /// free, else after loading (and evicting) or waiting its turn.
    pub async fn acquire(&self, req: LoadRequest) -> Result<Lease, SchedError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Acquire {
                req: Box::new(req),
                reply,
            })
            .map_err(|_| SchedError::Stopped)?;
        rx.await.map_err(|_| SchedError::Stopped)?
    }

    /// Unloads the runners of `model` now, or when their requests end if
    /// they are serving; whether any was loaded.
    pub async fn unload(&self, model: &Path) -> bool {
        let (reply, rx) = oneshot::channel();
        let msg = Msg::Unload {
            model: model.to_path_buf(),
            reply,
        };
        if self.tx.send(msg).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// The loaded runners, the one that expires last first (as Ollama lists them).
    pub async fn ps(&self) -> Vec<RunnerStatus> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Ps { reply }).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Stops every runner and the scheduler (daemon shutdown).
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown { reply }).is_ok() {
            let _ = rx.await;
        }
    }
}

/// A runner in the set.
struct Runner {
    id: u64,
    model: PathBuf,
    name: String,
    digest: String,
    details: ModelDetails,
    num_ctx: usize,
    settings: RunnerSettings,
    size: u64,
    socket: PathBuf,
    /// `None` while loading.
    process: Option<Arc<Process>>,
    pid: Option<u32>,
    /// Dropping it kills the process (see `watch_process`).
    kill: Option<oneshot::Sender<()>>,
    /// Reported by the first lease after the load.
    load_duration: u64,
    in_flight: usize,
    last_used: Instant,
    /// The last request's keep_alive.
    keep_alive: KeepAlive,
    /// Set while idle with a timer running.
    expires_at: Option<SystemTime>,
    /// Whether the idle policy has been applied since the last request.
    settled: bool,
    /// Invalidates older timers.
    generation: u64,
    /// Takes no new requests and is unloaded once idle, and why
    /// (`stop`, or requests that need other options).
    retire: Option<&'static str>,
}

impl Runner {
    /// Whether it was started with what `req` needs.
    fn serves(&self, req: &LoadRequest) -> bool {
        self.num_ctx == req.num_ctx && self.settings == req.settings
    }

    fn idle(&self) -> bool {
        self.process.is_some() && self.in_flight == 0
    }
}

struct Pending {
    req: LoadRequest,
    reply: oneshot::Sender<Result<Lease, SchedError>>,
}

/// What `plan` decided for a load.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Load now, after unloading these runners (indexes into the candidates).
    Load {
        /// Idle runners to unload first, least recently used first.
        evict: Vec<usize>,
    },
    /// Not now: the runners that would have to go are serving.
    Wait,
    /// Never: more than the whole budget.
    Never {
        /// The budget, bytes.
        budget: u64,
    },
}

/// A loaded runner as `plan` weighs it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// Its estimate, bytes.
    pub size: u64,
    /// Whether it could be unloaded now.
    pub idle: bool,
    /// When it last served a request.
    pub last_used: Instant,
}

/// Decides how a load of `need` bytes fits among `loaded` runners: within
/// `max_loaded` runners and `budget` bytes (`None`: unknown, count only),
/// by unloading the idle ones least recently used first, and only as many
/// as it takes; if even unloading every idle one is not enough, nothing is
/// unloaded and the load waits.
pub fn plan(loaded: &[Candidate], need: u64, max_loaded: usize, budget: Option<u64>) -> Plan {
    if let Some(b) = budget {
        if need > b {
            return Plan::Never { budget: b };
        }
    }
    let mut count = loaded.len();
    let mut used: u64 = loaded.iter().map(|c| c.size).sum();
    let fits = |count: usize, used: u64| {
        count < max_loaded.max(1) && budget.is_none_or(|b| used.saturating_add(need) <= b)
    };
    let mut idle: Vec<usize> = (0..loaded.len()).filter(|&i| loaded[i].idle).collect();
    idle.sort_by_key(|&i| loaded[i].last_used);
    let mut evict = Vec::new();
    for i in idle {
        if fits(count, used) {
            break;
        }
        evict.push(i);
        count -= 1;
        used = used.saturating_sub(loaded[i].size);
    }
    if fits(count, used) {
        Plan::Load { evict }
    } else {
        Plan::Wait
    }
}

/// A time that reads as "forever" (what Ollama reports: now plus the
/// largest Go duration, about 292 years).
fn far_future(now: SystemTime) -> SystemTime {
    now.checked_add(Duration::from_nanos(i64::MAX.unsigned_abs()))
        .unwrap_or(now)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

struct State {
    config: SchedConfig,
    runners: Vec<Runner>,
    pending: VecDeque<Pending>,
    next_id: u64,
    tx: mpsc::UnboundedSender<Msg>,
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
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
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

    fn serve_pending(&mut self) -> bool {
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
        // one loads after, so the two never hold memory together.
        let (mut others, mut retired) = (false, false);
        for r in self.runners.iter_mut().filter(|r| r.model == req.model) {
            others = true;
            if r.retire.is_none() {
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
        let lease = Lease {
            id: r.id,
            process,
            load_duration: std::mem::take(&mut r.load_duration),
            tx,
        };
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
                tokio::spawn(watch_process(child, kill_rx, exit_tx, id, self.tx.clone()));
                let r = &mut self.runners[i];
                r.process = Some(Arc::new(Process {
                    socket: r.socket.clone(),
                    num_ctx: r.num_ctx,
                    exit: exit_rx,
                }));
                r.pid = pid;
                r.kill = Some(kill_tx);
                r.load_duration = load_duration;
                r.last_used = Instant::now();
                tracing::info!(model = %r.name, pid = ?pid, num_ctx = r.num_ctx, seconds = load_duration as f64 / 1e9, "model loaded");
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

    fn unload(&mut self, i: usize, reason: &str) {
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
                size_vram: if self.config.budget.on_gpu() {
                    r.size
                } else {
                    0
                },
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

#[cfg(test)]
mod tests {
    use super::*;

    fn c(size: u64, idle: bool, age_s: u64, now: Instant) -> Candidate {
        Candidate {
            size,
            idle,
            last_used: now - Duration::from_secs(age_s),
        }
    }

    #[test]
    fn plans() {
        let now = Instant::now();
        // Room: load without evicting.
        assert_eq!(plan(&[], 10, 3, Some(100)), Plan::Load { evict: vec![] });
        assert_eq!(plan(&[], 10, 3, None), Plan::Load { evict: vec![] });
        // More than the whole budget: never.
        assert_eq!(plan(&[], 101, 3, Some(100)), Plan::Never { budget: 100 });
        // Count: the least recently used idle one goes.
        let loaded = [c(1, true, 5, now), c(1, true, 50, now), c(1, true, 1, now)];
        assert_eq!(plan(&loaded, 1, 3, None), Plan::Load { evict: vec![1] });
        // A serving one is never chosen, even when it is the oldest.
        let loaded = [c(1, false, 99, now), c(1, true, 5, now)];
        assert_eq!(plan(&loaded, 1, 2, None), Plan::Load { evict: vec![1] });
        // All serving: wait.
        let loaded = [c(1, false, 9, now), c(1, false, 5, now)];
        assert_eq!(plan(&loaded, 1, 2, None), Plan::Wait);
        // Memory: evict as many idle ones as it takes, oldest first.
        let loaded = [
            c(40, true, 1, now),
            c(30, true, 9, now),
            c(20, true, 5, now),
        ];
        assert_eq!(
            plan(&loaded, 40, 9, Some(100)),
            Plan::Load { evict: vec![1] }
        );
        assert_eq!(
            plan(&loaded, 75, 9, Some(100)),
            Plan::Load {
                evict: vec![1, 2, 0]
            }
        );
        // Not enough even after every idle one: evict nothing, wait.
        let loaded = [c(60, false, 9, now), c(30, true, 5, now)];
        assert_eq!(plan(&loaded, 50, 9, Some(100)), Plan::Wait);
    }

    #[test]
    fn forever_reads_as_far_future() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let years = far_future(now)
            .duration_since(now)
            .map(|d| d.as_secs() / 31_557_600)
            .unwrap_or(0);
        assert_eq!(years, 292);
    }
}
