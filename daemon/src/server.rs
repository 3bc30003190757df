//! Listeners and lifetime: the unix socket (mode 0600) and loopback TCP, serving one router until a signal.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::net::{TcpListener, UnixListener};

use crate::api::{self, AppState};
use crate::config::Config;
use crate::store::Store;

/// Binds the unix socket, refusing to steal one a live daemon is answering on.
pub async fn bind_unix(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create socket directory `{}`", dir.display()))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            bail!(
                "another llmpmd is already listening on `{}`; stop it first or set LLMPM_SOCKET",
                path.display()
            );
        }
        // Left behind by a daemon that was killed.
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket `{}`", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on unix socket `{}`", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set mode 0600 on `{}`", path.display()))?;
    Ok(listener)
}

/// Serves `state` on the given listeners until `shutdown` resolves.
pub async fn serve(
    unix: Option<UnixListener>,
    tcp: Option<TcpListener>,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(l) = unix {
        let app = api::router(state.clone());
        let rx = stop_rx.clone();
        tasks.spawn(async move { axum::serve(l, app).with_graceful_shutdown(wait(rx)).await });
    }
    if let Some(l) = tcp {
        let app = api::tcp_router(state.clone());
        let rx = stop_rx.clone();
        tasks.spawn(async move { axum::serve(l, app).with_graceful_shutdown(wait(rx)).await });
    }
    while let Some(res) = tasks.join_next().await {
        res.map_err(io::Error::other)??;
    }
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// Runs the daemon with `config` until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = Store::open(&config.home)
        .with_context(|| format!("cannot open the store at `{}`", config.home.display()))?;
    let unix = bind_unix(&config.socket).await?;
    let tcp = match config.tcp {
        Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen on {addr}; is another server (Ollama?) using it? Set LLMPM_HOST to another port")
        })?),
        None => None,
    };
    let tcp_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
    tracing::info!(
        home = %config.home.display(),
        socket = %config.socket.display(),
        tcp = ?tcp_addr,
        version = env!("CARGO_PKG_VERSION"),
        "llmpmd listening"
    );
    let socket: PathBuf = config.socket.clone();
    // Lets scripts and `llmpm` find the process a background start left running.
    let pid_file = config.home.join("llmpmd.pid");
    if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        tracing::warn!(path = %pid_file.display(), error = %e, "cannot write pid file");
    }
    let transfers = crate::transfer::Transfers::new(crate::transfer::TransferOptions {
        part_size: config.pull_part_size,
        concurrency: usize::try_from(config.pull_concurrency).unwrap_or(1),
        stall_timeout: config.pull_stall_timeout,
        ..crate::transfer::TransferOptions::default()
    })
    .context("cannot set up registry transfers")?
    .with_trust_policy(config.trust_policy.clone())
    .with_mirrors(config.registry_mirrors.clone())
    .with_rate_limits(config.max_download_speed, config.max_upload_speed);
    // Runners are this same binary (`llmpmd runner`), one per loaded model.
    let exe = std::env::current_exe().context("cannot find the llmpmd executable")?;
    let sched = crate::sched::Scheduler::start(sched_config(&config, exe));
    let models = crate::llm::Models::new(store.clone(), crate::sched::ModelShape::from_gguf);
    let state = AppState {
        store,
        config: Arc::new(config),
        transfers: Arc::new(transfers),
        sched: sched.clone(),
        models,
    };
    let res = serve(Some(unix), tcp, state, shutdown_signal()).await;
    sched.shutdown().await;
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(&pid_file);
    res.context("server failed")
}

/// What the runners' memory is: the first GPU's when built for one and it
/// is there (runners load onto it), else the system's.
fn inventory() -> Box<dyn crate::sched::memory::MemoryInventory> {
    #[cfg(feature = "nvml")]
    match crate::sched::memory::GpuMemory::open(0) {
        Ok(gpu) => {
            tracing::info!("memory budget: free memory of GPU 0");
            return Box::new(gpu);
        }
        Err(e) => tracing::info!(reason = %e, "no GPU inventory; memory budget: system memory"),
    }
    Box::new(crate::sched::memory::SystemMemory)
}

/// The scheduler's settings from the daemon's.
fn sched_config(config: &Config, exe: PathBuf) -> crate::sched::SchedConfig {
    use crate::sched::memory::Budget;
    let size = |n: u32| usize::try_from(n).unwrap_or(usize::MAX).max(1);
    crate::sched::SchedConfig {
        launcher: Arc::new(crate::sched::ProcessLauncher { exe }),
        dir: config.home.join("runners"),
        keep_alive: config.keep_alive,
        max_loaded_models: size(config.max_loaded_models),
        num_parallel: size(config.num_parallel),
        max_queue: size(config.max_queue),
        budget: match config.memory_budget {
            Some(n) => Budget::Fixed(n),
            None => Budget::Available(inventory()),
        },
        load_timeout: config.load_timeout,
    }
}
