//! The runner process (`llmpmd runner --model PATH --socket PATH`): loads
//! one model and answers [`RunnerRequest`]s on its own unix socket, one
//! request at a time. It is a separate process so that a crash or an
//! out-of-memory in inference never takes the daemon down.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::Device;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::codec::{TextCodec, VocabCodec};
use super::json::JsonPrefix;
use super::llama::Cache;
use super::model::Model;
use super::protocol::{
    CompletionChunk, CompletionRequest, Embeddings, Health, RunnerError, RunnerRequest, Tokens,
};
use super::sampler::Sampler;
use super::text::{Piece, TextStream};
use crate::gguf::GgufFile;

/// The usage line of `llmpmd runner`.
pub const USAGE: &str =
    "usage: llmpmd runner --model PATH --socket PATH [--num-ctx N] [--threads N]";

/// A request line longer than this is refused (prompts are text, not files).
const MAX_REQUEST: usize = 64 << 20;
/// Prompt tokens evaluated per forward pass, bounding the attention scratch.
const BATCH: usize = 512;

/// The runner's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerArgs {
    /// The GGUF file.
    pub model: PathBuf,
    /// Where to listen.
    pub socket: PathBuf,
    /// Context size.
    pub num_ctx: usize,
    /// CPU threads (`None`: all cores).
    pub threads: Option<usize>,
}

impl RunnerArgs {
    /// Parses the arguments after `runner`.
    pub fn parse(args: &[String]) -> anyhow::Result<RunnerArgs> {
        let mut model = None;
        let mut socket = None;
        let mut num_ctx = super::options::DEFAULT_NUM_CTX;
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
                "--threads" => {
                    threads = Some(v.parse().with_context(|| format!("`--threads {v}`"))?)
                }
                other => bail!("unknown argument `{other}`\n\n{USAGE}"),
            }
        }
        match (model, socket) {
            (Some(model), Some(socket)) if num_ctx > 0 => Ok(RunnerArgs {
                model,
                socket,
                num_ctx,
                threads,
            }),
            (Some(_), Some(_)) => bail!("`--num-ctx` must be at least 1"),
            _ => bail!("`--model` and `--socket` are required\n\n{USAGE}"),
        }
    }
}

/// The loaded model and its one cache.
struct Engine {
    model: Model,
    codec: Box<dyn TextCodec>,
    cache: Cache,
    num_ctx: usize,
    load_duration: u64,
}

/// Loads the model, then serves until the socket's listener fails or the
/// process is killed.
pub async fn run(args: RunnerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let path = args.model.clone();
    let num_ctx = args.num_ctx;
    let engine = tokio::task::spawn_blocking(move || -> anyhow::Result<Engine> {
        let model = Model::load(&path, &device()?)?;
        let file =
            GgufFile::open(&path).with_context(|| format!("cannot read `{}`", path.display()))?;
        let codec: Box<dyn TextCodec> = match crate::tokenizer::Tokenizer::from_gguf(&file) {
            Ok(t) => Box::new(t),
            Err(e) => {
                tracing::warn!(error = %e, "tokenizer refused the vocabulary; using the plain vocabulary codec");
                Box::new(VocabCodec::from_gguf(&file)?)
            }
        };
        let cache = model.new_cache(num_ctx);
        Ok(Engine {
            model,
            codec,
            cache,
            num_ctx,
            load_duration: 0,
        })
    })
    .await
    .context("the loader panicked")??;
    let engine = Arc::new(Mutex::new(Engine {
        load_duration: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        ..engine
    }));
    let _ = std::fs::remove_file(&args.socket);
    let listener = UnixListener::bind(&args.socket)
        .with_context(|| format!("cannot listen on `{}`", args.socket.display()))?;
    tracing::info!(model = %args.model.display(), socket = %args.socket.display(), "runner ready");
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
        let engine = engine.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, engine).await {
                tracing::debug!(error = %e, "runner connection ended");
            }
        });
    }
}

async fn connection(stream: UnixStream, engine: Arc<Mutex<Engine>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    let n = (&mut read)
        .take(MAX_REQUEST as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Ok(());
    }
    let request: RunnerRequest = match serde_json::from_slice(&line) {
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
    // The client closing its end cancels the work.
    let cancel = Arc::new(AtomicBool::new(false));
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
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let work = {
        let cancel = cancel.clone();
        tokio::task::spawn_blocking(move || handle(&engine, request, &tx, &cancel))
    };
    while let Some(mut bytes) = rx.recv().await {
        bytes.push(b'\n');
        if write.write_all(&bytes).await.is_err() {
            cancel.store(true, Ordering::Relaxed);
            break;
        }
    }
    // The work may be blocked sending into a full channel (its client
    // stopped reading, then left): closing it lets the send fail, so the
    // work ends and releases the model instead of holding it forever.
    drop(rx);
    let _ = work.await;
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

fn line<T: serde::Serialize>(tx: &mpsc::Sender<Vec<u8>>, value: &T) -> bool {
    match serde_json::to_vec(value) {
        Ok(b) => tx.blocking_send(b).is_ok(),
        Err(_) => false,
    }
}

fn handle(
    engine: &Mutex<Engine>,
    request: RunnerRequest,
    tx: &mpsc::Sender<Vec<u8>>,
    cancel: &AtomicBool,
) {
    // A panic in an earlier request poisons the lock; the model itself is
    // read-only and the cache is reset per request, so carry on.
    let mut engine = engine
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let result = match request {
        RunnerRequest::Health => {
            line(
                tx,
                &Health {
                    status: "ok".into(),
                    num_ctx: engine.num_ctx,
                    load_duration: engine.load_duration,
                    n_embd: engine.model.config().n_embd,
                },
            );
            Ok(())
        }
        RunnerRequest::Tokenize { content, add_bos } => {
            let tokens = engine.codec.encode(&content, add_bos, true);
            line(tx, &Tokens { tokens });
            Ok(())
        }
        RunnerRequest::Embed { input, truncate } => embed(&mut engine, &input, truncate, tx),
        RunnerRequest::Completion(req) => complete(&mut engine, &req, tx, cancel),
    };
    if let Err(error) = result {
        line(tx, &RunnerError { error });
    }
}

fn nanos(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn embed(
    engine: &mut Engine,
    input: &[String],
    truncate: bool,
    tx: &mpsc::Sender<Vec<u8>>,
) -> Result<(), String> {
    let Engine {
        model,
        codec,
        cache,
        num_ctx,
        ..
    } = engine;
    let mut out = Embeddings {
        embeddings: Vec::with_capacity(input.len()),
        prompt_eval_count: 0,
    };
    for text in input {
        let mut tokens = codec.encode(text, true, true);
        if tokens.len() > *num_ctx {
            if !truncate {
                return Err(format!(
                    "the input is {} tokens, longer than the context ({num_ctx}); set `truncate` or a larger `num_ctx`",
                    tokens.len()
                ));
            }
            tokens.truncate(*num_ctx);
        }
        out.prompt_eval_count += tokens.len();
        let v = model.embed(&tokens, cache).map_err(|e| e.to_string())?;
        out.embeddings.push(v);
    }
    line(tx, &out);
    Ok(())
}

/// Cuts a prompt that does not fit, keeping the first `num_keep` tokens and
/// the most recent ones, and leaving room for at least one new token.
fn fit_prompt(tokens: Vec<u32>, num_ctx: usize, num_keep: i64) -> Vec<u32> {
    let room = num_ctx.saturating_sub(1).max(1);
    if tokens.len() <= room {
        return tokens;
    }
    let keep = if num_keep < 0 {
        room
    } else {
        usize::try_from(num_keep).unwrap_or(room).min(room / 2)
    };
    let tail = room - keep;
    let mut out = tokens[..keep].to_vec();
    out.extend_from_slice(&tokens[tokens.len() - tail..]);
    out
}

fn complete(
    engine: &mut Engine,
    req: &CompletionRequest,
    tx: &mpsc::Sender<Vec<u8>>,
    cancel: &AtomicBool,
) -> Result<(), String> {
    let Engine {
        model,
        codec,
        cache,
        num_ctx,
        ..
    } = engine;
    let mut tokens = codec.encode(&req.prompt, req.add_bos, true);
    if tokens.is_empty() {
        return Err("the prompt is empty after tokenization".into());
    }
    tokens = fit_prompt(tokens, *num_ctx, req.num_keep);
    cache.reset();
    let mut sampler = Sampler::new(req.sampler.clone());
    let mut json = req.json.then(JsonPrefix::default);
    let mut text = TextStream::new(&req.stop);
    let mut done = CompletionChunk {
        done: true,
        prompt_eval_count: tokens.len(),
        ..CompletionChunk::default()
    };
    let t0 = Instant::now();
    let mut logits = Vec::new();
    for chunk in tokens.chunks(BATCH) {
        if cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
        logits = model.forward(chunk, cache).map_err(|e| e.to_string())?;
    }
    done.prompt_eval_duration = nanos(t0);
    let t1 = Instant::now();
    let limit = match req.num_predict {
        n if n < 0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let mut history = tokens;
    let mut reason = "length";
    while done.eval_count < limit {
        if cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
        let next = match json.as_ref() {
            None => sampler.sample(&logits, &history),
            Some(j) => match sample_json(&mut sampler, &logits, &history, codec.as_ref(), j) {
                Some(t) => t,
                // Nothing can continue the object (a tiny vocabulary).
                None => break,
            },
        };
        if codec.is_eog(next) {
            reason = "stop";
            break;
        }
        done.eval_count += 1;
        history.push(next);
        let bytes = codec.decode(&[next]);
        let closed = json
            .as_mut()
            .is_some_and(|j| j.push_all(&bytes) && j.is_complete());
        match text.push(&bytes) {
            Piece::Stop(t) => {
                if !t.is_empty() && !line(tx, &piece(t)) {
                    return Ok(());
                }
                reason = "stop";
                break;
            }
            Piece::Text(t) => {
                if !t.is_empty() && !line(tx, &piece(t)) {
                    return Ok(());
                }
            }
        }
        if closed {
            // The object is whole: as with Ollama's grammar, nothing follows.
            reason = "stop";
            break;
        }
        if cache.len() >= *num_ctx || done.eval_count >= limit {
            break;
        }
        logits = model.forward(&[next], cache).map_err(|e| e.to_string())?;
    }
    let rest = if reason == "stop" {
        String::new()
    } else {
        text.finish()
    };
    done.content = rest;
    done.done_reason = Some(reason.into());
    done.eval_duration = nanos(t1);
    line(tx, &done);
    Ok(())
}

/// Samples a token that keeps the output a valid JSON-object prefix: the
/// unconstrained choice when it does (the common case, one check), else a
/// draw from the logits with every token that does not masked out. `None`
/// when no token can continue.
fn sample_json(
    sampler: &mut Sampler,
    logits: &[f32],
    history: &[u32],
    codec: &dyn TextCodec,
    json: &JsonPrefix,
) -> Option<u32> {
    let first = sampler.sample(logits, history);
    if json.accepts(&codec.decode(&[first])) {
        return Some(first);
    }
    let mut masked = logits.to_vec();
    let mut any = false;
    for (id, l) in masked.iter_mut().enumerate() {
        let ok = u32::try_from(id).is_ok_and(|id| json.accepts(&codec.decode(&[id])));
        if ok {
            any = true;
        } else {
            *l = f32::NEG_INFINITY;
        }
    }
    any.then(|| sampler.sample(&masked, history))
}

fn piece(content: String) -> CompletionChunk {
    CompletionChunk {
        content,
        ..CompletionChunk::default()
    }
}

/// Where the weights go: the first CUDA GPU when built with the `cuda`
/// feature and one is present, else the CPU.
fn device() -> anyhow::Result<Device> {
    #[cfg(feature = "cuda")]
    {
        let d = Device::cuda_if_available(0).context("cannot initialise CUDA")?;
        tracing::info!(cuda = d.is_cuda(), "runner device");
        Ok(d)
    }
    #[cfg(not(feature = "cuda"))]
    Ok(Device::Cpu)
}

/// `llmpmd runner …`: parses, sets the thread count, runs.
pub fn main(args: &[String]) -> anyhow::Result<()> {
    let args = RunnerArgs::parse(args)?;
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
    fn fit_keeps_start_and_end() {
        let t: Vec<u32> = (0..20).collect();
        let f = fit_prompt(t.clone(), 11, 4);
        assert_eq!(f.len(), 10);
        assert_eq!(&f[..4], &[0, 1, 2, 3]);
        assert_eq!(f[9], 19);
        assert_eq!(fit_prompt(t[..5].to_vec(), 11, 4).len(), 5);
    }

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
