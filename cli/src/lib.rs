//! `llmpm`, the command line of llmpmd: turns a parsed command line into HTTP calls to the daemon.
//!
//! The binary (`main.rs`) only parses and reports; everything else lives here
//! so that tests can reach it. The CLI never touches the store: every command
//! is one or a few requests to `llmpmd` (see `client`), which is started in the
//! background when it is not running (see `autostart`).

pub mod autostart;
pub mod cli;
pub mod client;
pub mod commands;
pub mod error;
pub mod format;
pub mod printer;
pub mod progress;
pub mod settings;

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::Cli;
use crate::printer::Printer;
use crate::settings::{ProcessEnv, Settings};

/// Runs one command line to completion.
pub fn run(cli: Cli, printer: &Printer) -> anyhow::Result<ExitCode> {
    let settings = Settings::resolve(&cli.global, &ProcessEnv)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("Failed to start the async runtime")?;
    runtime.block_on(commands::dispatch(cli.command, &settings, printer))
}
