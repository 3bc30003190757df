//! The scheduler: the one owner of the set of loaded model runners.
//!
//! A single task holds the set and is fed by messages (a request wants a
//! runner, a request ended, a timer fired, a load finished, a runner
//! died, `stop`, `ps`), so every decision about what is resident is made in
//! one place and in order ([`task`]). Handlers get a [`Lease`] on a ready
//! runner, which gives out the typed handle they call it through
//! ([`crate::llm::Runner`]); dropping it tells the scheduler the request
//! is over.
//!
//! Policy, as Ollama's: a runner stays loaded for its last request's
//! `keep_alive` after that request ends; a load that does not fit
//! `max_loaded_models` or the memory budget unloads the idle runner used
//! least recently ([`plan`]), and waits when every runner is serving (a
//! serving runner is never unloaded); a model that cannot fit even alone
//! is refused; a runner that dies is dropped from the set and started
//! again by the next request; past `max_queue` waiting requests, new ones
//! are refused with 503 ([`queue`]). A runner serves `num_parallel`
//! requests at once, batched together (continuous batching: every step
//! evaluates all of its sequences in one pass); others wait in the queue.

pub mod keep_alive;
pub mod launch;
mod lease;
pub mod memory;
pub mod plan;
mod queue;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod scenarios;
mod task;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use llmpm_spec::api::ModelDetails;
use tokio::sync::{mpsc, oneshot};

pub use keep_alive::KeepAlive;
pub use launch::{Launcher, ProcessLauncher, RunnerProcess};
pub use lease::Lease;
pub use memory::{Budget, ModelShape};
pub use plan::{plan, Candidate, Plan};

use crate::llm::client::ClientError;
use crate::llm::{Endpoint, Options, ResolvedModel};

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

impl LoadRequest {
    /// What a request for `model` with `opts` needs.
    pub fn new(
        model: &ResolvedModel<ModelShape>,
        opts: &Options,
        keep_alive: Option<KeepAlive>,
    ) -> LoadRequest {
        LoadRequest {
            model: model.blob.clone(),
            name: model.name.clone(),
            digest: model.digest.clone(),
            details: model.details.clone(),
            shape: model.shape,
            num_ctx: opts.num_ctx,
            settings: RunnerSettings {
                num_batch: opts.num_batch,
                num_thread: opts.num_thread,
            },
            keep_alive,
        }
    }
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
            num_batch: crate::llm::options::DEFAULT_NUM_BATCH,
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
    /// Whether the runner put the model on a GPU (set once loaded).
    on_gpu: bool,
    socket: PathBuf,
    /// `None` while loading.
    process: Option<Arc<Endpoint>>,
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

struct State {
    config: SchedConfig,
    runners: Vec<Runner>,
    pending: VecDeque<Pending>,
    next_id: u64,
    tx: mpsc::UnboundedSender<Msg>,
}
