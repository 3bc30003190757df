//! The daemon's side of one runner process: starting `llmpmd runner` and
//! waiting until it is ready, and the request/answer exchange on its socket.
//! Which runners exist, and for how long, is the scheduler's (`crate::sched`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};

use super::protocol::{Health, RunnerRequest};

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

/// How to start a runner.
#[derive(Debug, Clone, Copy)]
pub struct RunnerSpec<'a> {
    /// The GGUF file.
    pub model: &'a Path,
    /// Where it listens.
    pub socket: &'a Path,
    /// Context of each sequence.
    pub num_ctx: usize,
    /// Prompt tokens per forward pass.
    pub num_batch: usize,
    /// CPU threads; 0 for every core.
    pub num_thread: usize,
    /// Sequences served at once.
    pub parallel: usize,
}

/// Starts `exe runner` as `spec` says and waits until it answers a health
/// check, whose answer comes with the process. A runner that exits first
/// fails with its last `error:` line; one still loading after `timeout` is
/// killed.
pub async fn spawn(
    exe: &Path,
    spec: &RunnerSpec<'_>,
    timeout: Duration,
) -> Result<(Child, Health), ClientError> {
    let RunnerSpec {
        model,
        socket,
        num_ctx,
        parallel,
        ..
    } = *spec;
    let started = Instant::now();
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(socket);
    let mut cmd = Command::new(exe);
    cmd.arg("runner")
        .arg("--model")
        .arg(model)
        .arg("--socket")
        .arg(socket)
        .arg("--num-ctx")
        .arg(num_ctx.to_string())
        .arg("--batch")
        .arg(spec.num_batch.to_string())
        .arg("--parallel")
        .arg(parallel.to_string());
    if spec.num_thread > 0 {
        cmd.arg("--threads").arg(spec.num_thread.to_string());
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ClientError::Spawn {
            exe: exe.to_path_buf(),
            source,
        })?;
    tracing::debug!(model = %model.display(), pid = ?child.id(), num_ctx, parallel, "runner process started");
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
        if started.elapsed() > timeout {
            let _ = child.start_kill();
            return Err(failed(format!(
                "killed: still loading after {timeout:?} (load_timeout)"
            )));
        }
        if let Ok(mut s) = call(socket, &RunnerRequest::Health).await {
            if let Ok(Some(health)) = s.next::<Health>().await {
                return Ok((child, health));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How `child` exited, or `None` while it runs.
pub fn describe_exit(child: &mut Child) -> Option<String> {
    match child.try_wait() {
        Ok(Some(status)) => Some(status.to_string()),
        Ok(None) => None,
        Err(e) => Some(format!("unknown status: {e}")),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A runner that never becomes ready is killed after the load timeout,
    /// and the error says so.
    #[tokio::test]
    async fn a_runner_that_never_answers_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("stuck-runner");
        let pid_file = dir.path().join("pid");
        std::fs::write(
            &exe,
            format!(
                "#!/bin/sh\necho $$ > {}\nexec sleep 60\n",
                pid_file.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("r.sock");
        let timeout = Duration::from_millis(300);
        let spec = RunnerSpec {
            model: Path::new("m.gguf"),
            socket: &socket,
            num_ctx: 64,
            num_batch: 512,
            num_thread: 0,
            parallel: 1,
        };
        let e = spawn(&exe, &spec, timeout).await.unwrap_err().to_string();
        assert!(e.contains("load_timeout"), "{e}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let proc_dir = PathBuf::from(format!("/proc/{}", pid.trim()));
        // Gone, or a zombie until reaped: never still sleeping.
        for _ in 0..100 {
            let state = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
            if state.is_empty() || state.contains(") Z") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the stuck runner still runs");
    }
}
