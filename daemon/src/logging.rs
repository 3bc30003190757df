//! Log setup: `tracing` to stderr, filtered by `LLMPM_LOG` (default `info`).

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LLMPM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A failed write would be reported with `eprintln!`, which panics
        // when stderr is gone: a runner whose daemon was killed (its stderr
        // is a pipe nobody reads) would lose the task that notices and exits.
        .log_internal_errors(false)
        // Colour only on a terminal: the log usually goes to a file.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .try_init();
}
