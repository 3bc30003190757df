//! How the scheduler starts a runner and watches its process, behind two
//! traits so the scheduler's tests can use fakes instead of processes
//! (as Ollama's scheduler tests replace `newServerFn`).

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::process::Child;

use super::RunnerSettings;
use crate::llm::client::{self, ClientError};

/// A boxed future, for the object-safe traits below.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts runners.
pub trait Launcher: Send + Sync + fmt::Debug {
    /// Starts a runner for `model` on `socket` serving `parallel`
    /// sequences of `num_ctx` tokens with `settings`; resolves once it
    /// answers requests, or fails (killing it) after `timeout`.
    fn launch(
        &self,
        model: PathBuf,
        socket: PathBuf,
        num_ctx: usize,
        settings: RunnerSettings,
        parallel: usize,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Box<dyn RunnerProcess>, ClientError>>;
}

/// A started runner's process.
pub trait RunnerProcess: Send {
    /// Its process id.
    fn pid(&self) -> Option<u32>;
    /// Resolves when it exits, with how.
    fn wait(&mut self) -> BoxFuture<'_, String>;
    /// Asks it to stop now (SIGKILL for a process).
    fn kill(&mut self);
    /// Whether it put the model on a GPU (`ps`'s `size_vram`).
    fn on_gpu(&self) -> bool {
        false
    }
}

/// Runners as `exe runner …` processes: the daemon's own binary.
#[derive(Debug, Clone)]
pub struct ProcessLauncher {
    /// The executable.
    pub exe: PathBuf,
}

impl Launcher for ProcessLauncher {
    fn launch(
        &self,
        model: PathBuf,
        socket: PathBuf,
        num_ctx: usize,
        settings: RunnerSettings,
        parallel: usize,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Box<dyn RunnerProcess>, ClientError>> {
        let exe = self.exe.clone();
        Box::pin(async move {
            let spec = client::RunnerSpec {
                model: &model,
                socket: &socket,
                num_ctx,
                num_batch: settings.num_batch,
                num_thread: settings.num_thread,
                parallel,
            };
            let (child, health) = client::spawn(&exe, &spec, timeout).await?;
            Ok(Box::new(ChildRunner {
                child,
                gpu: health.gpu,
            }) as Box<dyn RunnerProcess>)
        })
    }
}

/// A runner process, with where it said it put the model.
#[derive(Debug)]
struct ChildRunner {
    child: Child,
    gpu: bool,
}

impl RunnerProcess for ChildRunner {
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn wait(&mut self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            match self.child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("unknown status: {e}"),
            }
        })
    }

    fn kill(&mut self) {
        let _ = self.child.start_kill();
    }

    fn on_gpu(&self) -> bool {
        self.gpu
    }
}
