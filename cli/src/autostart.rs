//! Finding the `llmpmd` binary, and starting it in the background when the CLI finds no daemon.
//!
//! `llmpmd` is looked for next to the running `llmpm` first (an install or a
//! cargo target dir ships both together, and that copy matches this CLI's
//! version), then on `PATH`. A background daemon gets its own process group
//! so the terminal's Ctrl-C does not reach it, no stdin, and its output
//! appended to `<home>/llmpmd.log`; it inherits the environment, so it
//! resolves the same home and socket as this process.

use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use anyhow::Context;

use crate::error::Failure;
use crate::settings::Settings;

/// The daemon's binary name.
pub const DAEMON: &str = "llmpmd";

/// Where `llmpmd` is: next to the current executable, else on `PATH`.
pub fn find_daemon() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().ok();
    let beside = exe
        .as_deref()
        .and_then(Path::parent)
        .map(|dir| dir.join(DAEMON));
    if let Some(p) = beside.as_deref().filter(|p| is_executable(p)) {
        return Ok(p.to_owned());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(DAEMON);
            if is_executable(&p) {
                return Ok(p);
            }
        }
    }
    let beside = beside
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_else(|| "the llmpm binary".to_owned());
    Err(
        Failure::new(format!("cannot find `{DAEMON}` in `{beside}` or on `PATH`"))
            .with_hint(format!(
                "install `{DAEMON}` beside `llmpm`, or add its directory to `PATH`"
            ))
            .into(),
    )
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A daemon this process started.
#[derive(Debug)]
pub struct Started {
    child: Child,
    /// Where its output goes.
    pub log: PathBuf,
}

impl Started {
    /// The exit status, if it has already exited.
    pub fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child
            .try_wait()
            .context("Failed to check on the llmpmd it started")
    }
}

/// Starts `llmpmd` in the background, its output appended to `<home>/llmpmd.log`.
pub fn spawn(settings: &Settings) -> anyhow::Result<Started> {
    let daemon = find_daemon()?;
    let home = settings.home.as_deref().ok_or_else(|| {
        Failure::new("cannot start llmpmd: no home directory for its store")
            .with_hint("set `LLMPM_HOME`, or start it yourself with `llmpm serve`")
    })?;
    std::fs::create_dir_all(home)
        .with_context(|| format!("Failed to create `{}`", home.display()))?;
    let log = home.join("llmpmd.log");
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("Failed to open the daemon log `{}`", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("Failed to open the daemon log `{}`", log.display()))?;
    let child = Command::new(&daemon)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: Ctrl-C on this CLI must not stop it.
        .process_group(0)
        .spawn()
        .with_context(|| format!("Failed to start `{}`", daemon.display()))?;
    Ok(Started { child, log })
}

/// The error for a daemon that exited right after starting: its last log
/// line is usually the reason.
pub fn exited_early(log: &Path, status: ExitStatus) -> anyhow::Error {
    let last = std::fs::read_to_string(log).ok().and_then(|t| {
        t.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(str::to_owned)
    });
    let message = match last {
        Some(line) => format!(
            "llmpmd exited right after starting ({status}): {}",
            line.trim()
        ),
        None => format!("llmpmd exited right after starting ({status})"),
    };
    Failure::new(message)
        .with_hint(format!("see its log `{}`", log.display()))
        .into()
}

/// Replaces this process with `llmpmd` in the foreground (`llmpm serve`).
pub fn exec(settings: &Settings) -> anyhow::Error {
    let daemon = match find_daemon() {
        Ok(d) => d,
        Err(e) => return e,
    };
    let mut cmd = Command::new(&daemon);
    if let Some(host) = &settings.host_override {
        // `llmpm serve --host X` means the daemon should listen there.
        cmd.env("LLMPM_HOST", host);
    }
    let err = cmd.exec();
    anyhow::Error::new(err).context(format!("Failed to run `{}`", daemon.display()))
}
