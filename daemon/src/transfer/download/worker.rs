//! The download workers: each takes the next unfinished part, asks the current source for the rest of it with a Range request, and writes what arrives at its offset, moving past a failing mirror or retrying the upstream with backoff.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use llmpm_spec::Descriptor;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use super::{Part, PartDone, Source};
use crate::transfer::options::{backoff, TransferOptions};
use crate::transfer::TransferError;

/// Bytes gathered from the network before one positioned write.
const WRITE_BUF: usize = 1 << 20;

/// Parses `Content-Range: bytes a-b/total` into `(a, b, total)`; total may be `*`.
pub(super) fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?, total))
}

/// One connection's worth of a download: takes parts until none are left.
pub(super) struct Worker {
    pub(super) source: Source,
    pub(super) desc: Descriptor,
    pub(super) opts: TransferOptions,
    pub(super) file: Arc<File>,
    pub(super) parts: Arc<Vec<Part>>,
    pub(super) next: Arc<AtomicUsize>,
    pub(super) completed: Arc<AtomicU64>,
    pub(super) ping: std::sync::mpsc::SyncSender<()>,
    pub(super) cancel: CancellationToken,
    pub(super) path: PathBuf,
    /// Tells the journal thread a part is whole, and hears when it is on record.
    pub(super) part_done: std::sync::mpsc::Sender<PartDone>,
    /// The job's source in use, shared by its workers.
    pub(super) current: Arc<AtomicUsize>,
    /// Set once a mirror delivers bytes of this blob.
    pub(super) from_mirror: Arc<AtomicBool>,
    /// The source that last answered with bytes, plus one, for progress.
    pub(super) serving: Arc<AtomicUsize>,
}

impl Worker {
    pub(super) async fn run(self) -> Result<(), TransferError> {
        loop {
            let i = self.next.fetch_add(1, Ordering::AcqRel);
            let Some(part) = self.parts.get(i) else {
                return Ok(());
            };
            if part.done.load(Ordering::Acquire) >= part.len {
                continue;
            }
            let last = i + 1 == self.parts.len();
            self.fetch_part(part, last).await?;
            let (ack, recorded) = tokio::sync::oneshot::channel();
            if self.part_done.send(ack).is_ok() {
                let _ = recorded.await;
            }
        }
    }

    async fn fetch_part(&self, part: &Part, last: bool) -> Result<(), TransferError> {
        let max = self.opts.max_attempts.max(1);
        let mut failures = 0;
        let upstream = self.source.upstream();
        loop {
            let before = part.done.load(Ordering::Acquire);
            let at = self.current.load(Ordering::Acquire).min(upstream);
            let res = tokio::select! {
                r = self.attempt(part, last, at) => r,
                () = self.cancel.cancelled() => Err(TransferError::Cancelled),
            };
            match res {
                Ok(()) => return Ok(()),
                // A mirror that fails (a miss, a fault, a cut stream, a wrong
                // size) is left for the rest of this blob; the part goes on
                // from where it stopped at the next source. Local failures
                // (the disk) are not the mirror's.
                Err(e)
                    if at < upstream
                        && !e.is_cancelled()
                        && !matches!(e, TransferError::Io { .. }) =>
                {
                    let _ = self.current.compare_exchange(
                        at,
                        at + 1,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    tracing::warn!(blob = %self.desc.digest, mirror = self.source.origin(at).unwrap_or_default(), error = %crate::errors::chain(&e), "mirror failed; trying the next source");
                }
                Err(e) if e.is_retryable() => {
                    // A try that moved the part forward starts the count anew:
                    // a flaky link that keeps delivering is not a failure.
                    if part.done.load(Ordering::Acquire) > before {
                        failures = 0;
                    }
                    failures += 1;
                    if failures >= max {
                        return Err(TransferError::Exhausted {
                            what: format!("blob `{}`", self.desc.digest),
                            attempts: failures,
                            last: Box::new(e),
                        });
                    }
                    tracing::info!(blob = %self.desc.digest, offset = part.offset, error = %crate::errors::chain(&e), "part failed; retrying");
                    tokio::select! {
                        () = backoff(self.opts.retry_base, failures) => {}
                        () = self.cancel.cancelled() => return Err(TransferError::Cancelled),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One request for the rest of a part, to source `at`.
    async fn attempt(&self, part: &Part, last: bool, at: usize) -> Result<(), TransferError> {
        let size = self.desc.size;
        let digest = &self.desc.digest;
        let done = part.done.load(Ordering::Acquire);
        let start = part.offset + done;
        let want = part.len - done;
        // The last part asks for one byte past the declared end: a blob
        // larger than its descriptor says then shows itself.
        let end_incl = part.offset + part.len - 1 + u64::from(last);
        let reg = self
            .source
            .registries
            .get(at)
            .ok_or(TransferError::Cancelled)?;
        let url = reg.url(&format!("{}/blobs/{digest}", self.source.repository))?;
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&format!("bytes={start}-{end_incl}")) {
            headers.insert(RANGE, v);
        }
        let resp = reg
            .send(Method::GET, url, headers, None, &self.source.scope())
            .await?;
        let resp = reg.check(resp, &Method::GET).await?;
        let mismatch = |actual: u64| TransferError::SizeMismatch {
            digest: digest.clone(),
            declared: size,
            actual,
        };
        // Bytes to drop before ours: a registry that ignores Range sends it all.
        let mut skip = 0u64;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                if let Some(cr) = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                {
                    let (a, _, total) = parse_content_range(cr)
                        .ok_or_else(|| reg.invalid(format!("unreadable `Content-Range: {cr}`")))?;
                    if let Some(t) = total {
                        if t != size {
                            return Err(mismatch(t));
                        }
                    }
                    if a != start {
                        return Err(reg.invalid(format!(
                            "asked for bytes from {start}, got `Content-Range: {cr}`"
                        )));
                    }
                }
            }
            StatusCode::OK => {
                if let Some(len) = resp.content_length() {
                    if len != size {
                        return Err(mismatch(len));
                    }
                }
                skip = start;
            }
            s => return Err(reg.invalid(format!("answered {s} to a Range request"))),
        }
        if at < self.source.upstream() {
            self.from_mirror.store(true, Ordering::Release);
        }
        self.serving.store(at + 1, Ordering::Release);
        let limits = &self.source.limits;
        let mut resp = resp;
        let mut got = 0u64;
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUF);
        let url = resp.url().to_string();
        let stall = self.opts.stall_timeout;
        loop {
            let chunk = match tokio::time::timeout(stall, resp.chunk()).await {
                Err(_) => {
                    self.flush(part, &mut buf, &mut got)?;
                    return Err(TransferError::Stalled {
                        secs: stall.as_secs(),
                    });
                }
                Ok(Err(source)) => {
                    self.flush(part, &mut buf, &mut got)?;
                    return Err(TransferError::Connect { url, source });
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            if limits.is_limited() {
                limits.acquire(chunk.len()).await;
            }
            let mut data: &[u8] = &chunk;
            if skip > 0 {
                let k = usize::try_from(skip).unwrap_or(usize::MAX).min(data.len());
                data = &data[k..];
                skip -= k as u64;
            }
            let room = usize::try_from(want - got - buf.len() as u64).unwrap_or(usize::MAX);
            if data.len() > room {
                if last {
                    self.flush(part, &mut buf, &mut got)?;
                    return Err(mismatch(size + 1));
                }
                // More than asked for: keep ours, drop the connection.
                buf.extend_from_slice(&data[..room]);
                break;
            }
            buf.extend_from_slice(data);
            if buf.len() >= WRITE_BUF {
                self.flush(part, &mut buf, &mut got)?;
            }
            if got + buf.len() as u64 == want && !last {
                break;
            }
        }
        self.flush(part, &mut buf, &mut got)?;
        if got < want {
            return Err(TransferError::ShortBody { got, want });
        }
        Ok(())
    }

    /// Writes the gathered bytes at their place and counts them done.
    fn flush(&self, part: &Part, buf: &mut Vec<u8>, got: &mut u64) -> Result<(), TransferError> {
        if buf.is_empty() {
            return Ok(());
        }
        let at = part.offset + part.done.load(Ordering::Acquire);
        let file = &self.file;
        tokio::task::block_in_place(|| file.write_all_at(buf, at))
            .map_err(|e| TransferError::io("write", &self.path, e))?;
        let n = buf.len() as u64;
        part.done.fetch_add(n, Ordering::AcqRel);
        self.completed.fetch_add(n, Ordering::Relaxed);
        crate::metrics::pulled(n);
        *got += n;
        buf.clear();
        let _ = self.ping.try_send(());
        Ok(())
    }
}
