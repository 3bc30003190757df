//! The scheduler's policies with a fake launcher (no processes): which
//! runner is loaded, kept, evicted or refused, and when.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;

use super::launch::{BoxFuture, Launcher, RunnerProcess};
use super::memory::{Budget, ModelShape};
use super::{KeepAlive, LoadRequest, RunnerSettings, SchedConfig, SchedError, Scheduler};
use crate::llm::client::ClientError;

#[derive(Debug, Default)]
struct Record {
    launched: Vec<(PathBuf, usize)>,
    killed: Vec<PathBuf>,
    /// Models whose load fails.
    broken: Vec<PathBuf>,
    /// Makes a running fake exit, by model.
    crash: HashMap<PathBuf, oneshot::Sender<()>>,
}

#[derive(Debug, Default, Clone)]
struct Fake(Arc<Mutex<Record>>);

impl Fake {
    fn with<T>(&self, f: impl FnOnce(&mut Record) -> T) -> T {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn launched(&self) -> Vec<(PathBuf, usize)> {
        self.with(|r| r.launched.clone())
    }

    fn killed(&self) -> Vec<PathBuf> {
        self.with(|r| r.killed.clone())
    }
}

struct FakeProcess {
    model: PathBuf,
    fake: Fake,
    crash: oneshot::Receiver<()>,
    killed: bool,
    exited: Option<String>,
}

impl Launcher for Fake {
    fn launch(
        &self,
        model: PathBuf,
        _socket: PathBuf,
        num_ctx: usize,
        _settings: RunnerSettings,
        _parallel: usize,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<Box<dyn RunnerProcess>, ClientError>> {
        let fake = self.clone();
        Box::pin(async move {
            let (tx, crash) = oneshot::channel();
            let broken = fake.with(|r| {
                r.launched.push((model.clone(), num_ctx));
                r.crash.insert(model.clone(), tx);
                r.broken.contains(&model)
            });
            if broken {
                return Err(ClientError::Load {
                    model,
                    reason: "unsupported model architecture `mamba9`".into(),
                    status: "exit status: 1".into(),
                });
            }
            Ok(Box::new(FakeProcess {
                model,
                fake,
                crash,
                killed: false,
                exited: None,
            }) as Box<dyn RunnerProcess>)
        })
    }
}

impl RunnerProcess for FakeProcess {
    fn pid(&self) -> Option<u32> {
        Some(4242)
    }

    fn wait(&mut self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            if self.exited.is_none() {
                if !self.killed {
                    let _ = (&mut self.crash).await;
                }
                let how = if self.killed {
                    "signal: 9 (SIGKILL)"
                } else {
                    "exit status: 1"
                };
                self.exited = Some(how.to_owned());
            }
            self.exited.clone().unwrap_or_default()
        })
    }

    fn kill(&mut self) {
        self.killed = true;
        let model = self.model.clone();
        self.fake.with(|r| r.killed.push(model));
    }
}

fn start(tune: impl FnOnce(&mut SchedConfig)) -> (Scheduler, Fake) {
    let fake = Fake::default();
    let mut config = SchedConfig {
        launcher: Arc::new(fake.clone()),
        dir: std::env::temp_dir().join("llmpm-sched-scenarios"),
        keep_alive: super::keep_alive::DEFAULT,
        max_loaded_models: 3,
        num_parallel: 1,
        max_queue: 16,
        budget: Budget::Fixed(1 << 40),
        load_timeout: Duration::from_secs(10),
    };
    tune(&mut config);
    (Scheduler::start(config), fake)
}

fn req(model: &str, keep_alive: Option<KeepAlive>) -> LoadRequest {
    LoadRequest {
        model: PathBuf::from(model),
        name: format!("{model}:latest"),
        digest: "0".repeat(64),
        details: Default::default(),
        shape: ModelShape {
            weights: 1000,
            ..ModelShape::default()
        },
        num_ctx: 128,
        settings: RunnerSettings::default(),
        keep_alive,
    }
}

fn ms(n: u64) -> KeepAlive {
    KeepAlive::For(Duration::from_millis(n))
}

async fn names(s: &Scheduler) -> Vec<String> {
    let mut v: Vec<String> = s.ps().await.into_iter().map(|r| r.name).collect();
    v.sort();
    v
}

/// Polls until the fake has killed exactly `want` (the kill follows the
/// unload on the runner's own task); a generous deadline.
async fn until_killed(fake: &Fake, want: &[&str]) {
    let want: Vec<PathBuf> = want.iter().map(PathBuf::from).collect();
    for _ in 0..400 {
        if fake.killed() == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(fake.killed(), want);
}

/// Polls until `s` has exactly `want` loaded; a generous deadline.
async fn until_loaded(s: &Scheduler, want: &[&str]) {
    for _ in 0..400 {
        if names(s).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(names(s).await, want);
}

#[tokio::test]
async fn keep_alive_decides_when_an_idle_runner_goes() {
    let (s, fake) = start(|_| {});
    // 0: gone as soon as the request ends.
    drop(s.acquire(req("a", Some(ms(0)))).await.unwrap());
    until_loaded(&s, &[]).await;
    until_killed(&fake, &["a"]).await;

    // A short timer: loaded, then unloaded by it.
    drop(s.acquire(req("a", Some(ms(100)))).await.unwrap());
    until_loaded(&s, &[]).await;

    // A new request cancels the running timer; forever stays.
    drop(s.acquire(req("a", Some(ms(100)))).await.unwrap());
    drop(s.acquire(req("a", Some(KeepAlive::Forever))).await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(names(&s).await, ["a:latest"]);
    let ps = s.ps().await;
    let years = ps[0]
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs()
        / 31_557_600;
    assert!(years > 200, "{years}");
    // The default when the request says nothing.
    drop(s.acquire(req("a", None)).await.unwrap());
    let left = s.ps().await[0]
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(290) && left <= Duration::from_secs(300));
    assert_eq!(fake.launched().len(), 3);
}

#[tokio::test]
async fn the_least_recently_used_idle_runner_is_evicted() {
    let (s, fake) = start(|c| c.max_loaded_models = 2);
    drop(s.acquire(req("a", None)).await.unwrap());
    drop(s.acquire(req("b", None)).await.unwrap());
    drop(s.acquire(req("a", None)).await.unwrap());
    drop(s.acquire(req("c", None)).await.unwrap());
    assert_eq!(names(&s).await, ["a:latest", "c:latest"]);
    until_killed(&fake, &["b"]).await;
}

#[tokio::test]
async fn a_serving_runner_is_never_evicted_the_load_waits() {
    let (s, fake) = start(|c| c.max_loaded_models = 1);
    let a = s.acquire(req("a", None)).await.unwrap();
    let mut b = Box::pin(s.acquire(req("b", None)));
    assert!(tokio::time::timeout(Duration::from_millis(200), &mut b)
        .await
        .is_err());
    assert!(fake.killed().is_empty());
    assert_eq!(names(&s).await, ["a:latest"]);
    drop(a);
    let b = b.await.unwrap();
    until_killed(&fake, &["a"]).await;
    assert_eq!(names(&s).await, ["b:latest"]);
    drop(b);
}

#[tokio::test]
async fn past_max_queue_requests_are_refused() {
    let (s, _) = start(|c| c.max_queue = 1);
    let first = s.acquire(req("a", None)).await.unwrap();
    // The second waits for the one slot (polled once, so it is queued first).
    let mut second = Box::pin(s.acquire(req("a", None)));
    assert!(tokio::time::timeout(Duration::from_millis(1), &mut second)
        .await
        .is_err());
    let third = s.acquire(req("a", None)).await;
    assert!(matches!(third, Err(SchedError::Busy)), "{third:?}");
    drop(first);
    drop(second.await.unwrap());
}

#[tokio::test]
async fn a_failed_load_fails_its_requests_and_the_next_one_retries() {
    let (s, fake) = start(|_| {});
    fake.with(|r| r.broken.push(PathBuf::from("x")));
    let e = s.acquire(req("x", None)).await.unwrap_err();
    assert!(e.to_string().contains("mamba9"), "{e}");
    assert!(names(&s).await.is_empty());
    fake.with(|r| r.broken.clear());
    drop(s.acquire(req("x", None)).await.unwrap());
    assert_eq!(names(&s).await, ["x:latest"]);
}

#[tokio::test]
async fn a_runner_that_dies_is_dropped_and_started_again() {
    let (s, fake) = start(|_| {});
    let lease = s.acquire(req("a", None)).await.unwrap();
    let crash = fake.with(|r| r.crash.remove(Path::new("a")));
    let _ = crash.unwrap().send(());
    // Its request learns why; the set forgets it.
    assert_eq!(
        lease.runner().exit_status().await.as_deref(),
        Some("exit status: 1")
    );
    until_loaded(&s, &[]).await;
    drop(lease);
    drop(s.acquire(req("a", None)).await.unwrap());
    assert_eq!(fake.launched().len(), 2);
    assert_eq!(names(&s).await, ["a:latest"]);
}

#[tokio::test]
async fn a_model_larger_than_the_budget_is_refused() {
    let (s, fake) = start(|c| c.budget = Budget::Fixed(1 << 20));
    let e = s.acquire(req("a", None)).await.unwrap_err().to_string();
    assert!(
        e.contains("needs 64 MiB but the memory budget is 1.0 MiB"),
        "{e}"
    );
    assert!(e.contains("memory_budget"), "{e}");
    assert!(fake.launched().is_empty());
}

#[tokio::test]
async fn the_memory_budget_evicts_like_the_count() {
    let one = req("a", None).shape.estimate(128);
    let (s, fake) = start(|c| c.budget = Budget::Fixed(one * 2));
    drop(s.acquire(req("a", None)).await.unwrap());
    drop(s.acquire(req("b", None)).await.unwrap());
    drop(s.acquire(req("c", None)).await.unwrap());
    assert_eq!(names(&s).await, ["b:latest", "c:latest"]);
    until_killed(&fake, &["a"]).await;
}

#[tokio::test]
async fn stop_waits_for_the_serving_request() {
    let (s, fake) = start(|_| {});
    let lease = s.acquire(req("a", None)).await.unwrap();
    assert!(s.unload(Path::new("a")).await);
    assert_eq!(names(&s).await, ["a:latest"]);
    assert!(fake.killed().is_empty());
    drop(lease);
    until_loaded(&s, &[]).await;
    assert!(!s.unload(Path::new("a")).await);
}

/// Two waiters for one weights file with different options (two names of
/// one file, each with its own num_ctx) are both served: neither retires the
/// runner loading for the other before it has served (this livelocked).
#[tokio::test]
async fn waiters_with_different_options_are_each_served() {
    let (s, fake) = start(|_| {});
    let mut bigger = req("a", None);
    bigger.num_ctx = 256;
    for _ in 0..3 {
        // Each lease is given back as soon as it is granted.
        let both = async {
            tokio::join!(
                async { drop(s.acquire(req("a", None)).await.unwrap()) },
                async { drop(s.acquire(bigger.clone()).await.unwrap()) }
            )
        };
        let served = tokio::time::timeout(Duration::from_secs(10), both).await;
        assert!(served.is_ok(), "both served");
    }
    assert!(fake.launched().len() <= 6, "{:?}", fake.launched());
}

#[tokio::test]
async fn another_num_ctx_reloads() {
    let (s, fake) = start(|_| {});
    drop(s.acquire(req("a", None)).await.unwrap());
    let mut bigger = req("a", None);
    bigger.num_ctx = 256;
    let lease = s.acquire(bigger).await.unwrap();
    assert_eq!(lease.runner().num_ctx(), 256);
    assert_eq!(
        fake.launched(),
        [(PathBuf::from("a"), 128), (PathBuf::from("a"), 256)]
    );
    let ps = s.ps().await;
    assert_eq!((ps.len(), ps[0].num_ctx), (1, 256));
}

#[tokio::test]
async fn shutdown_stops_everything() {
    let (s, fake) = start(|_| {});
    drop(s.acquire(req("a", None)).await.unwrap());
    s.shutdown().await;
    assert!(matches!(
        s.acquire(req("a", None)).await,
        Err(SchedError::Stopped)
    ));
    // The watcher kills the process once the scheduler lets go of it.
    until_killed(&fake, &["a"]).await;
}

#[tokio::test]
async fn the_default_budget_is_the_memory_the_machine_has_free() {
    #[derive(Debug)]
    struct Machine(u64);
    impl super::memory::MemoryInventory for Machine {
        fn available(&self) -> Option<u64> {
            Some(self.0)
        }
    }
    let (s, fake) = start(|c| c.budget = Budget::Available(Box::new(Machine(10 << 20))));
    let e = s.acquire(req("a", None)).await.unwrap_err().to_string();
    assert!(
        e.contains("needs 64 MiB but the memory budget is 10 MiB; free some memory"),
        "{e}"
    );
    assert!(fake.launched().is_empty());
    // What our own runners hold counts as free: unloading them gives it back.
    let one = req("a", None).shape.estimate(128);
    let (s, fake) = start(|c| c.budget = Budget::Available(Box::new(Machine(one))));
    drop(s.acquire(req("a", None)).await.unwrap());
    drop(s.acquire(req("b", None)).await.unwrap());
    assert_eq!(names(&s).await, ["a:latest", "b:latest"]);
    assert!(fake.killed().is_empty());
}
