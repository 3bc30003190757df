//! Progress on stderr: spinners for steps, byte bars for transfers, and the rendering of NDJSON progress streams.
//!
//! On a terminal each step is a spinner that stays behind as a finished line
//! when the next step starts, and lines carrying `total`/`completed` get a byte
//! bar per digest (pull and push will send many). Off a terminal nothing is
//! animated: each distinct status is printed once, as a plain line, so logs
//! and tests see a stable transcript.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use llmpm_spec::api::ProgressResponse;

use crate::printer::Printer;

const TICK: Duration = Duration::from_millis(100);

/// Draws the progress of one command.
pub struct Progress {
    printer: Printer,
    multi: MultiProgress,
    spinner: Option<ProgressBar>,
    bars: HashMap<String, ProgressBar>,
    last_status: Option<String>,
    quiet: bool,
}

impl Progress {
    /// Progress on stderr, animated only when stderr is a terminal.
    pub fn new(printer: &Printer) -> Progress {
        let target = if printer.stderr_is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Progress {
            printer: printer.clone(),
            multi: MultiProgress::with_draw_target(target),
            spinner: None,
            bars: HashMap::new(),
            last_status: None,
            quiet: false,
        }
    }

    /// Progress that draws and prints nothing (tests).
    pub fn quiet() -> Progress {
        Progress {
            printer: Printer::new(),
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            spinner: None,
            bars: HashMap::new(),
            last_status: None,
            quiet: true,
        }
    }

    fn animated(&self) -> bool {
        !self.multi.is_hidden()
    }

    /// A new step: on a terminal a spinner (the previous one stays as a
    /// finished line); otherwise the status printed once.
    pub fn step(&mut self, status: &str) {
        if self.last_status.as_deref() == Some(status) {
            return;
        }
        self.last_status = Some(status.to_owned());
        self.finish_spinner();
        if self.animated() {
            let style = ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let s = self.multi.add(ProgressBar::new_spinner().with_style(style));
            s.set_message(status.to_owned());
            s.enable_steady_tick(TICK);
            self.spinner = Some(s);
        } else if !self.quiet {
            self.printer.status(status);
        }
    }

    fn finish_spinner(&mut self) {
        if let Some(s) = self.spinner.take() {
            s.set_style(
                ProgressStyle::with_template("  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            s.finish();
        }
    }

    /// A byte bar labelled `label` (hidden off a terminal), for the caller to
    /// advance; finish it with [`Progress::done`].
    pub fn bytes(&mut self, label: &str, total: u64) -> ProgressBar {
        self.finish_spinner();
        if !self.animated() {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template(
            "{msg} {wide_bar} {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar = self.multi.add(ProgressBar::new(total).with_style(style));
        bar.set_message(label.to_owned());
        bar
    }

    /// Ends a bar from [`Progress::bytes`], leaving it on screen complete.
    pub fn done(&self, bar: &ProgressBar) {
        bar.finish();
    }

    /// Renders one line of an NDJSON progress stream.
    pub fn update(&mut self, p: &ProgressResponse) {
        match (&p.digest, p.total) {
            (Some(digest), Some(total)) if total > 0 => {
                if !self.bars.contains_key(digest) {
                    if !self.animated() {
                        self.step(&p.status);
                    }
                    let short = crate::format::short_id(digest);
                    // Pull and push lines already end with the short id (Ollama's shape).
                    let label = if p.status.ends_with(short) {
                        p.status.clone()
                    } else {
                        format!("{} {short}", p.status)
                    };
                    let bar = self.bytes(&label, total);
                    self.bars.insert(digest.clone(), bar);
                }
                if let Some(bar) = self.bars.get(digest) {
                    bar.set_length(total);
                    bar.set_position(p.completed.unwrap_or(0).min(total));
                    if p.completed.is_some_and(|c| c >= total) {
                        bar.finish();
                    }
                }
            }
            _ => self.step(&p.status),
        }
    }

    /// Ends all animation, leaving finished lines in place.
    pub fn finish(&mut self) {
        self.finish_spinner();
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
        self.last_status = None;
    }

    /// Runs `f` (which prints to stderr) without tearing the bars.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
