//! The runner process (`llmpmd runner --model PATH --socket PATH`): loads
//! one model and answers [`RunnerRequest`]s on its own unix socket; up to
//! `--parallel` generations run at once, batched by the engine thread
//! ([`super::batch`]). It is a separate process so that a crash or an
//! out-of-memory in inference never takes the daemon down.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::Device;
use llmpm_gguf::GgufFile;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::batch::{line, Engine, Job};
use super::codec::TextCodec;
use super::model::{Model, ModelError};
use super::KvType;
use crate::llm::options::KvCacheType;
use crate::llm::protocol::{Health, RunnerError, RunnerRequest, Tokens};

/// The usage line of `llmpmd runner`.
pub const USAGE: &str =
    "usage: llmpmd runner --model PATH --socket PATH [--num-ctx N] [--batch N] [--parallel N] [--threads N]";

/// A request line longer than this is refused (prompts are text, not files).
const MAX_REQUEST: usize = 64 << 20;

/// The runner's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerArgs {
    /// The GGUF file.
    pub model: PathBuf,
    /// Where to listen.
    pub socket: PathBuf,
    /// Context size of each sequence.
    pub num_ctx: usize,
    /// Prompt tokens per forward pass.
    pub batch: usize,
    /// Sequences served at once, each with its own cache of `num_ctx`.
    pub parallel: usize,
    /// CPU threads (`None`: all cores).
    pub threads: Option<usize>,
}

impl RunnerArgs {
    /// Parses the arguments after `runner`.
    pub fn parse(args: &[String]) -> anyhow::Result<RunnerArgs> {
        let mut model = None;
        let mut socket = None;
        let mut num_ctx = crate::llm::options::DEFAULT_NUM_CTX;
        let mut parallel = 1;
        let mut batch = crate::llm::options::DEFAULT_NUM_BATCH;
        let mut threads = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(v) = it.next() else {
                bail!("`{a}` needs a value\n\n{USAGE}");
            };
            match a.as_str() {
                "--model" => model = Some(PathBuf::from(v)),
                "--socket" => socket = Some(PathBuf::from(v)),
                "--num-ctx" => num_ctx = v.parse().with_context(|| format!("`--num-ctx {v}`"))?,
                "--batch" => batch = v.parse().with_context(|| format!("`--batch {v}`"))?,
                "--parallel" => {
                    parallel = v.parse().with_context(|| format!("`--parallel {v}`"))?
                }
                "--threads" => {
                    threads = Some(v.parse().with_context(|| format!("`--threads {v}`"))?)
                }
                other => bail!("unknown argument `{other}`\n\n{USAGE}"),
            }
        }
        match (model, socket) {
            (Some(model), Some(socket)) if num_ctx > 0 && parallel > 0 && batch > 0 => {
                Ok(RunnerArgs {
                    model,
                    socket,
                    num_ctx,
                    batch,
                    parallel,
                    threads,
                })
            }
            (Some(_), Some(_)) => {
                bail!("`--num-ctx`, `--batch` and `--parallel` must be at least 1")
            }
            _ => bail!("`--model` and `--socket` are required\n\n{USAGE}"),
        }
    }
}

/// What connections answer without the engine.
struct Shared {
    codec: Arc<dyn TextCodec>,
    num_ctx: usize,
    load_duration: u64,
    n_embd: usize,
    /// Whether the weights are on a GPU.
    gpu: bool,
    /// The engine's queue; it stops when the last sender goes.
    jobs: std::sync::mpsc::Sender<Job>,
}

/// Loads the model, then serves until the socket's listener fails or the
/// process is killed.
pub async fn run(args: RunnerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let path = args.model.clone();
    let (num_ctx, batch, parallel) = (args.num_ctx, args.batch, args.parallel);
    let (model, gpu, codec) = tokio::task::spawn_blocking(
        move || -> anyhow::Result<(Model, bool, Arc<dyn TextCodec>)> {
            let kv_type = match KvCacheType::from_env().map_err(anyhow::Error::msg)? {
                KvCacheType::F16 => KvType::F16,
                KvCacheType::F32 => KvType::F32,
                KvCacheType::Q8_0 => KvType::Q8_0,
                KvCacheType::Q4_0 => KvType::Q4_0,
            };
            let codec = |path: &std::path::Path| -> anyhow::Result<Arc<dyn TextCodec>> {
                let file = GgufFile::open(path)
                    .with_context(|| format!("cannot read `{}`", path.display()))?;
                Ok(super::codec::for_gguf(&file)?)
            };
            // The vocabulary is read while the weights load: the loader
            // waits on page faults often enough for it to fit in between.
            std::thread::scope(|s| {
                let vocab = s.spawn(|| codec(&path));
                let model = load(&path);
                let codec = vocab
                    .join()
                    .map_err(|_| anyhow::anyhow!("the tokenizer loader panicked"))?;
                // The weights' error first: it names the file's problem.
                let (mut model, gpu) = model?;
                model.set_kv_type(kv_type);
                Ok((model, gpu, codec?))
            })
        },
    )
    .await
    .context("the loader panicked")??;
    let (jobs, queue) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared {
        codec: codec.clone(),
        num_ctx,
        load_duration: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        n_embd: model.config().n_embd,
        gpu,
        jobs,
    });
    let engine = Engine::new(model, codec, num_ctx, batch, parallel);
    std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
            // A panic in inference leaves sequences half-done: end the
            // process so that the daemon sees the runner die, fails its
            // requests and starts a fresh one.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.run(queue))).is_err()
            {
                std::process::exit(101);
            }
        })
        .context("cannot start the engine thread")?;
    let _ = std::fs::remove_file(&args.socket);
    let listener = UnixListener::bind(&args.socket)
        .with_context(|| format!("cannot listen on `{}`", args.socket.display()))?;
    tracing::info!(model = %args.model.display(), socket = %args.socket.display(), parallel, "runner ready");
    // A runner outlives a daemon that was killed; it goes when its parent does.
    let parent = std::os::unix::process::parent_id();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if std::os::unix::process::parent_id() != parent {
                // No log line: stderr is a pipe to the dead daemon, and
                // tracing-subscriber panics when it cannot report that.
                std::process::exit(0);
            }
        }
    });
    loop {
        let (stream, _) = listener.accept().await.context("accept failed")?;
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, shared).await {
                tracing::debug!(error = %e, "runner connection ended");
            }
        });
    }
}

async fn connection(stream: UnixStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line_buf = Vec::new();
    let n = (&mut read)
        .take(MAX_REQUEST as u64)
        .read_until(b'\n', &mut line_buf)
        .await?;
    if n == 0 {
        return Ok(());
    }
    let request: RunnerRequest = match serde_json::from_slice(&line_buf) {
        Ok(r) => r,
        Err(e) => {
            return send(
                &mut write,
                &RunnerError {
                    error: format!("bad runner request: {e}"),
                },
            )
            .await
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    // The client closing its end cancels the work.
    let cancel = Arc::new(AtomicBool::new(false));
    let job = match request {
        RunnerRequest::Health => {
            line(
                &tx,
                &Health {
                    status: "ok".into(),
                    num_ctx: shared.num_ctx,
                    load_duration: shared.load_duration,
                    n_embd: shared.n_embd,
                    gpu: shared.gpu,
                },
            );
            None
        }
        RunnerRequest::Tokenize { content, add_bos } => {
            let tokens = shared.codec.encode(&content, add_bos, true);
            line(&tx, &Tokens { tokens });
            None
        }
        RunnerRequest::Embed { input, truncate } => Some(Job::Embed {
            input,
            truncate,
            tx: tx.clone(),
        }),
        RunnerRequest::Rerank { query, documents } => Some(Job::Rerank {
            query,
            documents,
            tx: tx.clone(),
        }),
        RunnerRequest::Completion(req) => Some(Job::Completion {
            req,
            tx: tx.clone(),
            cancel: cancel.clone(),
        }),
    };
    if let Some(job) = job {
        if shared.jobs.send(job).is_err() {
            line(
                &tx,
                &RunnerError {
                    error: "the runner's engine has stopped".into(),
                },
            );
        }
    }
    // The engine holds the only sender from here: the stream ends with
    // the job.
    drop(tx);
    let watcher = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            cancel.store(true, Ordering::Relaxed);
        })
    };
    while let Some(mut bytes) = rx.recv().await {
        bytes.push(b'\n');
        if write.write_all(&bytes).await.is_err() {
            cancel.store(true, Ordering::Relaxed);
            break;
        }
    }
    // Closing the receiver also tells the engine the client is gone.
    drop(rx);
    watcher.abort();
    write.shutdown().await
}

async fn send<T: serde::Serialize>(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    value: &T,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    w.write_all(&bytes).await
}

/// Loads the weights where they go: the first CUDA GPU when built with the
/// `cuda` feature and one can be used, else the CPU. A `cuda` build on a
/// machine without a GPU or the driver (its CUDA libraries are loaded at
/// run time: bench/cuda-shim.py) says why and runs on the CPU.
/// Returns the model and whether it is on the GPU.
fn load(path: &std::path::Path) -> Result<(Model, bool), ModelError> {
    #[cfg(feature = "cuda")]
    match Device::new_cuda(0) {
        Ok(gpu) => match Model::load(path, &gpu) {
            Ok(model) => {
                tracing::info!("runner device: CUDA GPU 0");
                return Ok((model, true));
            }
            Err(e) => {
                tracing::warn!(reason = %first_line(&e), "cannot load the model on the GPU, running on the CPU")
            }
        },
        Err(e) => {
            tracing::warn!(reason = %first_line(&e), "no CUDA device, running on the CPU")
        }
    }
    Ok((Model::load(path, &Device::Cpu)?, false))
}

/// An error's first line: candle appends a backtrace when RUST_BACKTRACE is
/// set, too much for one log line.
#[cfg(feature = "cuda")]
fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// `llmpmd runner …`: parses, sets the thread count, runs.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let args = RunnerArgs::parse(args)?;
    llmpm_kernels::pages::keep_freed_memory();
    if let Some(n) = args.threads {
        // candle sizes its CPU thread pool from this; it must be set before
        // the first tensor operation.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run(args))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        let a: Vec<String> = ["--model", "m.gguf", "--socket", "s", "--num-ctx", "64"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = RunnerArgs::parse(&a).unwrap();
        assert_eq!(r.num_ctx, 64);
        assert!(RunnerArgs::parse(&a[..2]).is_err());
    }
}
