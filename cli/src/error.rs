//! The CLI's errors and what each means to the user: its exit code and the hint printed under it, decided in one place.
//!
//! Every error type the CLI raises lives here (the daemon's answers
//! [`StatusError`], [`StreamError`] and [`Unreachable`] included), so the
//! modules that raise them and this module's mapping import one place
//! and never each other.
//!
//! Exit codes:
//! - 0 ([`ExitStatus::Success`]): done; also when stdout was closed by its
//!   reader (`llmpm list | head`), which is how pipelines end;
//! - 1 ([`ExitStatus::Failure`]): the operation failed and may succeed later
//!   or elsewhere: the daemon is unreachable or answered 5xx, a stream broke
//!   off, a local I/O error, or `verify` found damage;
//! - 2 ([`ExitStatus::UserError`]): what was asked is wrong and retrying it
//!   unchanged cannot help: bad usage (clap's own code), an invalid model name,
//!   an unreadable or invalid Modelfile, a missing FROM/ADAPTER file, or any
//!   4xx answer from the daemon (unknown model, rejected request, missing API
//!   key).

use std::io;
use std::process::ExitCode;

use crate::printer::{Printer, StdoutClosed};

/// The process's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0.
    Success,
    /// 1: the operation failed.
    Failure,
    /// 2: the request was wrong.
    UserError,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> ExitCode {
        match s {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failure => ExitCode::from(1),
            ExitStatus::UserError => ExitCode::from(2),
        }
    }
}

/// A mistake in what the user asked for (exit 2), with what to do instead.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UserError {
    message: String,
    hint: Option<String>,
}

impl UserError {
    /// A user error with this one-clause message.
    pub fn new(message: impl Into<String>) -> UserError {
        UserError {
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> UserError {
        self.hint = Some(hint.into());
        self
    }
}

/// A failure that is not the user's request's fault (exit 1), with a hint.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    message: String,
    hint: Option<String>,
}

impl Failure {
    /// A failure with this one-clause message.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
}

/// The daemon answered with a non-2xx status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StatusError {
    /// The HTTP status code.
    pub status: u16,
    /// The daemon's `{"error"}` message (or the body's text, or the reason phrase).
    pub message: String,
}

impl StatusError {
    /// Whether the request was at fault (4xx): a user error.
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status)
    }
}

/// A progress stream ended with an `{"error"}` line.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StreamError {
    /// The daemon's message.
    pub message: String,
}

/// Nothing is listening where the daemon should be.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach llmpmd at `{target}`")]
pub struct Unreachable {
    /// The socket path or URL.
    pub target: String,
    /// Why the connection failed.
    #[source]
    pub source: io::Error,
}

/// The first `T` in the error: a context, the root, or a `source()` of it.
fn find<T: std::error::Error + Send + Sync + 'static>(err: &anyhow::Error) -> Option<&T> {
    // `downcast_ref` sees context values too, which `chain()` hides behind
    // anyhow's wrapper type; `chain()` sees sources inside foreign errors.
    err.downcast_ref::<T>()
        .or_else(|| err.chain().find_map(|c| c.downcast_ref::<T>()))
}

/// The exit status an error maps to.
pub fn exit_status(err: &anyhow::Error) -> ExitStatus {
    if find::<StdoutClosed>(err).is_some() {
        return ExitStatus::Success;
    }
    if find::<UserError>(err).is_some()
        || find::<StatusError>(err).is_some_and(|e| e.is_client_error())
    {
        return ExitStatus::UserError;
    }
    ExitStatus::Failure
}

/// What to do next, if the error says.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    if let Some(h) = find::<UserError>(err).and_then(|e| e.hint.clone()) {
        return Some(h);
    }
    if let Some(h) = find::<Failure>(err).and_then(|e| e.hint.clone()) {
        return Some(h);
    }
    if find::<Unreachable>(err).is_some() {
        return Some("start it with `llmpm serve`".to_owned());
    }
    let status = find::<StatusError>(err)?;
    match status.status {
        401 => Some("set `LLMPM_API_KEY` to the key the daemon was started with".to_owned()),
        404 if status.message.contains("not found") && !status.message.contains("blob") => {
            Some("see the local models with `llmpm list`".to_owned())
        }
        _ => None,
    }
}

/// Prints `err` once (unless stdout was merely closed) and returns the exit code.
pub fn report(printer: &Printer, err: &anyhow::Error) -> ExitCode {
    let status = exit_status(err);
    if status != ExitStatus::Success {
        printer.error(err, hint(err).as_deref());
    }
    status.into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use anyhow::Context;

    use super::*;

    fn status_error(status: u16, message: &str) -> anyhow::Error {
        StatusError {
            status,
            message: message.to_owned(),
        }
        .into()
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_status(&anyhow::anyhow!("boom")), ExitStatus::Failure);
        let e = anyhow::Error::from(UserError::new("bad name")).context("Failed to show `x`");
        assert_eq!(exit_status(&e), ExitStatus::UserError);
        let e = status_error(404, "model `x` not found").context("Failed to show `x`");
        assert_eq!(exit_status(&e), ExitStatus::UserError);
        assert_eq!(
            exit_status(&status_error(400, "bad")),
            ExitStatus::UserError
        );
        assert_eq!(exit_status(&status_error(500, "disk")), ExitStatus::Failure);
        assert_eq!(exit_status(&status_error(507, "full")), ExitStatus::Failure);
        let e = anyhow::Error::from(StdoutClosed).context("Failed to print");
        assert_eq!(exit_status(&e), ExitStatus::Success);
        // A broken pipe to the daemon is not a closed stdout.
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let e = Err::<(), _>(io).context("Failed to upload").unwrap_err();
        assert_eq!(exit_status(&e), ExitStatus::Failure);
        let e = anyhow::Error::from(Failure::new("corrupt"));
        assert_eq!(exit_status(&e), ExitStatus::Failure);
    }

    #[test]
    fn hints() {
        let e = status_error(404, "model `x` not found").context("Failed to show `x`");
        assert_eq!(
            hint(&e).as_deref(),
            Some("see the local models with `llmpm list`")
        );
        let e = status_error(401, "missing or wrong API key");
        assert!(hint(&e).unwrap().contains("LLMPM_API_KEY"));
        let e = anyhow::Error::from(UserError::new("x").with_hint("do y"));
        assert_eq!(hint(&e).as_deref(), Some("do y"));
        assert_eq!(hint(&anyhow::anyhow!("boom")), None);
    }
}
