//! The daemon's side of the runners: spawns one `llmpmd runner` process per
//! model on first use, talks to it over its socket, and notices when it has
//! died (crash, kill, out-of-memory) so the request gets a clear error and
//! the next one starts a fresh runner. The full scheduler (keep_alive,
//! eviction, memory limits) replaces the "one per model, forever" policy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use super::protocol::{Health, RunnerRequest};

/// How long a model may take to load before we give up on its runner.
const LOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a runner could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The runner process could not be started.
    #[error("cannot start the model runner `{}`", exe.display())]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runner exited while loading (bad model file, out of memory, …).
    #[error("the model runner failed to load `{}`: {reason} ({status})", model.display())]
    Load {
        /// The model file.
        model: PathBuf,
        /// What the runner said last (its `error:` line), or a pointer to the log.
        reason: String,
        /// How it exited.
        status: String,
    },
    /// The runner stopped during a request.
    #[error(
        "the model runner stopped unexpectedly ({0}); it will be restarted on the next request"
    )]
    Died(String),
    /// The runner answered with an error.
    #[error("{0}")]
    Runner(String),
    /// Talking to the runner failed.
    #[error("cannot talk to the model runner: {0}")]
    Io(#[from] std::io::Error),
}

struct Handle {
    child: Child,
    socket: PathBuf,
    num_ctx: usize,
}

/// The running runners, by model file. Cheap to clone.
#[derive(Clone)]
pub struct Runners {
    inner: Arc<Mutex<HashMap<PathBuf, Handle>>>,
    exe: PathBuf,
    dir: PathBuf,
    next: Arc<AtomicU64>,
}

impl std::fmt::Debug for Runners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runners")
            .field("exe", &self.exe)
            .field("dir", &self.dir)
            .finish()
    }
}

/// A model's runner, ready for requests.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Its socket.
    pub socket: PathBuf,
    /// Nanoseconds spent starting it for this request (0 when it was running).
    pub load_duration: u64,
    /// Its context size.
    pub num_ctx: usize,
}

fn describe_exit(child: &mut Child) -> Option<String> {
    match child.try_wait() {
        Ok(Some(status)) => Some(status.to_string()),
        Ok(None) => None,
        Err(e) => Some(format!("unknown status: {e}")),
    }
}

impl Runners {
    /// Runners started as `exe runner …`, with sockets in `dir`.
    pub fn new(exe: PathBuf, dir: PathBuf) -> Runners {
        Runners {
            inner: Arc::new(Mutex::new(HashMap::new())),
            exe,
            dir,
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The runner for `model` with context `num_ctx`, started (or restarted
    /// after a crash, or for another context size) when needed.
    pub async fn ensure(&self, model: &Path, num_ctx: usize) -> Result<Ready, ClientError> {
        let mut map = self.inner.lock().await;
        if let Some(h) = map.get_mut(model) {
            if let Some(status) = describe_exit(&mut h.child) {
                tracing::warn!(model = %model.display(), %status, "model runner had exited; restarting");
                map.remove(model);
            } else if h.num_ctx == num_ctx {
                return Ok(Ready {
                    socket: h.socket.clone(),
                    load_duration: 0,
                    num_ctx,
                });
            } else {
                // Another context size needs another cache: reload.
                let _ = h.child.start_kill();
                map.remove(model);
            }
        }
        let started = Instant::now();
        std::fs::create_dir_all(&self.dir)?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let socket = self
            .dir
            .join(format!("runner-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let mut child = Command::new(&self.exe)
            .arg("runner")
            .arg("--model")
            .arg(model)
            .arg("--socket")
            .arg(&socket)
            .arg("--num-ctx")
            .arg(num_ctx.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ClientError::Spawn {
                exe: self.exe.clone(),
                source,
            })?;
        tracing::info!(model = %model.display(), pid = ?child.id(), num_ctx, "starting model runner");
        let last_error = relay_stderr(&mut child);
        let failed = |status: String| {
            let reason = last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
                .unwrap_or_else(|| "see the daemon log".into());
            ClientError::Load {
                model: model.to_path_buf(),
                reason,
                status,
            }
        };
        loop {
            if let Some(status) = describe_exit(&mut child) {
                // Let the relay read the runner's last words first.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(failed(status));
            }
            if started.elapsed() > LOAD_TIMEOUT {
                let _ = child.start_kill();
                return Err(failed(format!(
                    "still loading after {}s",
                    LOAD_TIMEOUT.as_secs()
                )));
            }
            if let Ok(mut s) = call(&socket, &RunnerRequest::Health).await {
                if let Ok(Some(_)) = s.next::<Health>().await {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        map.insert(
            model.to_path_buf(),
            Handle {
                child,
                socket: socket.clone(),
                num_ctx,
            },
        );
        Ok(Ready {
            socket,
            load_duration: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            num_ctx,
        })
    }

    /// Why the runner of `model` is gone, if it is (for the error after a
    /// stream broke off).
    pub async fn exit_status(&self, model: &Path) -> Option<String> {
        let mut map = self.inner.lock().await;
        let h = map.get_mut(model)?;
        describe_exit(&mut h.child)
    }

    /// Stops the runner of `model`; whether one was running.
    pub async fn stop(&self, model: &Path) -> bool {
        let mut map = self.inner.lock().await;
        match map.remove(model) {
            Some(mut h) => {
                let _ = h.child.start_kill();
                let _ = std::fs::remove_file(&h.socket);
                true
            }
            None => false,
        }
    }

    /// Stops every runner (daemon shutdown).
    pub async fn stop_all(&self) {
        let mut map = self.inner.lock().await;
        for (_, mut h) in map.drain() {
            let _ = h.child.start_kill();
            let _ = std::fs::remove_file(&h.socket);
        }
    }
}

/// One request's answer lines. Dropping it closes the connection, which
/// cancels the request in the runner.
#[derive(Debug)]
pub struct Answer {
    lines: Lines<BufReader<UnixStream>>,
}

impl Answer {
    /// The next line, `None` at the end. A runner error line is an `Err`.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ClientError> {
        let Some(line) = self.lines.next_line().await? else {
            return Ok(None);
        };
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| ClientError::Runner(format!("bad line from the runner: {e}")))?;
        if let Some(err) = value.get("error").and_then(serde_json::Value::as_str) {
            return Err(ClientError::Runner(err.to_string()));
        }
        serde_json::from_value(value)
            .map(Some)
            .map_err(|e| ClientError::Runner(format!("bad line from the runner: {e}")))
    }
}

/// Sends `req` to the runner at `socket`.
pub async fn call(socket: &Path, req: &RunnerRequest) -> Result<Answer, ClientError> {
    let mut stream = UnixStream::connect(socket).await?;
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    Ok(Answer {
        lines: BufReader::new(stream).lines(),
    })
}

/// Forwards the runner's stderr to our log, line by line, and keeps its last
/// `error: …` line: the reason a failed load gives the client.
fn relay_stderr(child: &mut Child) -> Arc<std::sync::Mutex<Option<String>>> {
    let last = Arc::new(std::sync::Mutex::new(None));
    if let Some(err) = child.stderr.take() {
        let pid = child.id();
        let keep = last.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(e) = line.strip_prefix("error: ") {
                    *keep
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e.to_string());
                }
                tracing::info!(runner = ?pid, "{line}");
            }
        });
    }
    last
}
