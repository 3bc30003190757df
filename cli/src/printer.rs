//! The only place that writes to stdout and stderr.
//!
//! Stdout carries data only (tables, JSON, the text `show` prints), so it can
//! be piped; confirmations, progress, warnings and errors go to stderr. A
//! write to a stdout its reader has closed becomes [`StdoutClosed`], which
//! `error::exit_status` treats as success.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

/// Stdout was closed by its reader (`llmpm list | head`): not a failure.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed")]
pub struct StdoutClosed;

/// Writes the CLI's output.
#[derive(Debug, Clone)]
pub struct Printer {
    stderr_is_terminal: bool,
}

impl Default for Printer {
    fn default() -> Self {
        Printer::new()
    }
}

fn stdout_error(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(e).context("Failed to write to stdout")
    }
}

impl Printer {
    /// A printer on the process's stdout and stderr.
    pub fn new() -> Printer {
        Printer {
            stderr_is_terminal: io::stderr().is_terminal(),
        }
    }

    /// Whether stderr is a terminal (progress bars are drawn only then).
    pub fn stderr_is_terminal(&self) -> bool {
        self.stderr_is_terminal
    }

    /// Writes `text` to stdout as it is.
    pub fn data(&self, text: &str) -> anyhow::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes()).map_err(stdout_error)?;
        out.flush().map_err(stdout_error)
    }

    /// Writes `text` to stdout, ending it with a newline if it lacks one.
    pub fn data_line(&self, text: &str) -> anyhow::Result<()> {
        if text.ends_with('\n') {
            self.data(text)
        } else {
            self.data(&format!("{text}\n"))
        }
    }

    /// Writes `value` to stdout as pretty JSON and a newline: stable for scripts.
    pub fn json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        self.data_line(&text)
    }

    /// A line on stderr: a confirmation or a progress step.
    pub fn status(&self, line: &str) {
        // Nothing useful can be done when stderr itself is gone.
        let _ = writeln!(io::stderr().lock(), "{line}");
    }

    /// A prompt on stderr, without a newline.
    pub fn prompt(&self, text: &str) {
        let mut err = io::stderr().lock();
        let _ = write!(err, "{text}");
        let _ = err.flush();
    }

    /// A warning on stderr.
    pub fn warn(&self, message: &str) {
        self.status(&format!("warning: {message}"));
    }

    /// An error and its causes on stderr, once: `error: …`, `  Caused by: …`,
    /// then a blank line and `hint: …` when there is one.
    pub fn error(&self, err: &anyhow::Error, hint: Option<&str>) {
        let mut text = format!("error: {err}\n");
        for cause in err.chain().skip(1) {
            text.push_str(&format!("  Caused by: {cause}\n"));
        }
        if let Some(hint) = hint {
            text.push_str(&format!("\nhint: {hint}\n"));
        }
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }
}
