//! `llmpmd`: parse the arguments, load the configuration, run the daemon.

use std::process::ExitCode;

use anyhow::Context;
use llmpmd::config::{Config, ProcessEnv};

const USAGE: &str = "usage: llmpmd [serve]\n       llmpmd runner --model PATH --socket PATH [--num-ctx N] [--threads N]\n\nThe llmpm daemon. Configuration: LLMPM_* environment variables and\n$XDG_CONFIG_HOME/llmpm/config.yaml (see the README).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => {}
        Some("runner") => {
            // The inference process the daemon spawns per model.
            llmpmd::logging::init();
            return match llmpmd::runner::serve::main(&args[1..]) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("runner: {e:#}");
                    #[allow(clippy::print_stderr)]
                    {
                        eprintln!("error: {e:#}");
                    }
                    ExitCode::FAILURE
                }
            };
        }
        Some("--version" | "-V") => {
            #[allow(clippy::print_stdout)]
            {
                println!("llmpmd {}", env!("CARGO_PKG_VERSION"));
            }
            return ExitCode::SUCCESS;
        }
        Some("--help" | "-h") => {
            #[allow(clippy::print_stdout)]
            {
                println!("{USAGE}");
            }
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: unknown argument `{other}`\n\n{USAGE}");
            }
            return ExitCode::from(2);
        }
    }
    llmpmd::logging::init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let config = Config::load(&ProcessEnv).context("invalid configuration")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(llmpmd::server::run(config))
}
