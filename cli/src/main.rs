//! `llmpm`: parse the command line, run it, report the outcome as an exit code.
//!
//! Exit codes (decided in `error::exit_status`):
//! - 0: success, including a reader closing stdout early (`llmpm list | head`);
//! - 1: the operation failed: the daemon is unreachable or answered 5xx, a
//!   stream broke off, an I/O error, or `verify` found damage;
//! - 2: the request was wrong and retrying it unchanged cannot help: bad
//!   usage, an invalid model name, an unreadable or invalid Modelfile, a
//!   missing FROM/ADAPTER file, or any 4xx answer (model not found, …).

use std::process::ExitCode;

use clap::Parser;
use llmpm::cli::Cli;
use llmpm::printer::Printer;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let printer = Printer::new();
    match llmpm::run(cli, &printer) {
        Ok(code) => code,
        Err(err) => llmpm::error::report(&printer, &err),
    }
}
