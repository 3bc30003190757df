//! One blob from a registry: parallel Range parts into `tmp/<hex>.download`, journaled, hashed as the prefix grows.
//!
//! The blob is split into parts of `part_size` bytes, fetched `concurrency`
//! at a time, each written at its offset in one preallocated temp file named
//! by the digest. The sled journal (`Store::journal`) records how much of
//! every part is on disk (data fsynced before the record), so a dropped
//! connection retries only the rest of its part and a killed daemon resumes
//! from the journal. A hasher thread reads the contiguous prefix back as it
//! grows, so the sha256 is ready moments after the last byte; only a matching
//! digest and size make the file a blob. `+zstd` layers are decompressed by
//! the same thread into a second blob while the compressed bytes are hashed.
//!
//! Downloads are shared: a second pull of a digest already in flight waits
//! on the first one's progress instead of fetching again. When every waiter
//! has gone (clients disconnected), the download is cancelled and its
//! journal kept for next time.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmpm_spec::media_type::Compression;
use llmpm_spec::{Descriptor, Digest};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::client::Registry;
use super::{TransferError, TransferOptions};
use crate::store::Store;

/// How often progress is published.
const TICK: Duration = Duration::from_millis(100);
/// How long the journal thread waits between rounds when nothing is new.
const JOURNAL_IDLE: Duration = Duration::from_millis(20);
/// Bytes gathered from the network before one positioned write.
const WRITE_BUF: usize = 1 << 20;
/// Bytes the hasher reads back at a time.
const HASH_BUF: usize = 4 << 20;

/// What a finished download gives the pull: the blob the model will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The stored blob: the layer's own digest, or for a `+zstd` layer the
    /// digest of its decompressed bytes.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// Progress and outcome of one in-flight download, as its waiters see it.
#[derive(Debug, Clone, Default)]
struct Status {
    completed: u64,
    total: u64,
    outcome: Option<Result<Fetched, Arc<TransferError>>>,
}

struct Shared {
    status: watch::Sender<Status>,
    waiters: AtomicUsize,
    cancel: CancellationToken,
}

/// The downloads in flight, keyed by digest, so two pulls share one.
#[derive(Default)]
pub struct InFlight {
    map: Mutex<HashMap<Digest, Arc<Shared>>>,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").finish_non_exhaustive()
    }
}

/// The journal record of one download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Journal {
    size: u64,
    part_size: u64,
    /// Bytes on disk at the start of each part.
    done: Vec<u64>,
}

/// The journal record of a decompressed `+zstd` layer: compressed digest → stored blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Unpacked {
    digest: Digest,
    size: u64,
}

fn journal_key(d: &Digest) -> String {
    format!("part:{d}")
}

fn unpacked_key(d: &Digest) -> String {
    format!("zstd:{d}")
}

/// One range of the blob and how much of it is on disk.
#[derive(Debug)]
struct Part {
    offset: u64,
    len: u64,
    done: AtomicU64,
}

/// Splits `size` bytes into parts of `part_size` (the last one shorter).
fn plan_parts(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    let part_size = part_size.max(1);
    let mut out = Vec::new();
    let mut off = 0;
    while off < size {
        let len = part_size.min(size - off);
        out.push((off, len));
        off += len;
    }
    out
}

/// The end of the contiguous prefix of parts that is on disk.
fn prefix_end(parts: &[Part]) -> u64 {
    let mut end = 0;
    for p in parts {
        let d = p.done.load(Ordering::Acquire).min(p.len);
        end = p.offset + d;
        if d < p.len {
            break;
        }
    }
    end
}

/// Parses `Content-Range: bytes a-b/total` into `(a, b, total)`; total may be `*`.
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?, total))
}

/// Where a blob comes from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The registry.
    pub registry: Arc<Registry>,
    /// `namespace/model`.
    pub repository: String,
}

impl Source {
    fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }
}

/// Whether the store already holds what this layer becomes; if so, the blob.
pub fn stored(store: &Store, desc: &Descriptor) -> Option<Fetched> {
    if desc.media_type.compression() == Compression::Zstd {
        let v = store
            .journal()
            .get(unpacked_key(&desc.digest).as_bytes())
            .ok()??;
        let u: Unpacked = serde_json::from_slice(&v).ok()?;
        return (store.blob_size(&u.digest) == Some(u.size)).then_some(Fetched {
            digest: u.digest,
            size: u.size,
        });
    }
    (store.blob_size(&desc.digest) == Some(desc.size)).then(|| Fetched {
        digest: desc.digest.clone(),
        size: desc.size,
    })
}

/// Decrements the waiter count when a waiting pull goes away; the last one
/// to leave an unfinished download cancels it.
struct WaiterGuard(Arc<Shared>);

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        if self.0.waiters.fetch_sub(1, Ordering::AcqRel) == 1
            && self.0.status.borrow().outcome.is_none()
        {
            self.0.cancel.cancel();
        }
    }
}

impl InFlight {
    /// Fetches `desc` into `store` (or joins the download already fetching
    /// it), calling `progress(completed, total)` as it advances.
    pub async fn fetch(
        &self,
        store: &Store,
        source: &Source,
        desc: &Descriptor,
        opts: &TransferOptions,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Fetched, TransferError> {
        if let Some(f) = stored(store, desc) {
            progress(desc.size, desc.size);
            return Ok(f);
        }
        let (shared, mut rx) = {
            let mut map = self
                .map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let reusable = map
                .get(&desc.digest)
                .filter(|s| !s.cancel.is_cancelled())
                .cloned();
            let shared = match reusable {
                Some(s) => s,
                None => {
                    let previous = map.get(&desc.digest).map(|s| s.status.subscribe());
                    let (tx, _) = watch::channel(Status {
                        total: desc.size,
                        ..Status::default()
                    });
                    let shared = Arc::new(Shared {
                        status: tx,
                        waiters: AtomicUsize::new(0),
                        cancel: CancellationToken::new(),
                    });
                    map.insert(desc.digest.clone(), shared.clone());
                    let job = Job {
                        store: store.clone(),
                        source: source.clone(),
                        desc: desc.clone(),
                        opts: opts.clone(),
                        shared: shared.clone(),
                    };
                    tokio::spawn(job.run(previous));
                    shared
                }
            };
            shared.waiters.fetch_add(1, Ordering::AcqRel);
            let rx = shared.status.subscribe();
            (shared, rx)
        };
        let _guard = WaiterGuard(shared.clone());
        loop {
            let st = rx.borrow_and_update().clone();
            progress(st.completed, st.total);
            if let Some(outcome) = st.outcome {
                self.forget(&desc.digest, &shared);
                return outcome.map_err(TransferError::Shared);
            }
            if rx.changed().await.is_err() {
                return Err(TransferError::Cancelled);
            }
        }
    }

    fn forget(&self, digest: &Digest, shared: &Arc<Shared>) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.get(digest).is_some_and(|s| Arc::ptr_eq(s, shared)) {
            map.remove(digest);
        }
    }
}

/// A finished part's message to the journal thread: answered once recorded.
type PartDone = tokio::sync::oneshot::Sender<()>;

/// One download task.
#[derive(Clone)]
struct Job {
    store: Store,
    source: Source,
    desc: Descriptor,
    opts: TransferOptions,
    shared: Arc<Shared>,
}

/// Removes the temp file from `prune`'s protection when the job ends.
struct ActiveTmp(Store, PathBuf);

impl Drop for ActiveTmp {
    fn drop(&mut self) {
        self.0.set_tmp_active(&self.1, false);
    }
}

impl Job {
    async fn run(self, previous: Option<watch::Receiver<Status>>) {
        // A cancelled download of the same digest may still be winding down
        // on the same temp file: let it finish first.
        if let Some(mut prev) = previous {
            let _ = prev.wait_for(|s| s.outcome.is_some()).await;
        }
        let res = self.download().await;
        if let Err(e) = &res {
            if !e.is_cancelled() {
                tracing::warn!(blob = %self.desc.digest, error = %crate::errors::chain(e), "download failed");
            }
        }
        let outcome = res.map_err(Arc::new);
        self.shared.status.send_modify(|s| {
            if outcome.is_ok() {
                s.completed = s.total;
            }
            s.outcome = Some(outcome);
        });
    }

    fn load_journal(&self, path: &Path) -> Option<Journal> {
        let v = self
            .store
            .journal()
            .get(journal_key(&self.desc.digest).as_bytes())
            .ok()??;
        let j: Journal = serde_json::from_slice(&v).ok()?;
        let len = std::fs::metadata(path).ok()?.len();
        let parts = plan_parts(j.size, j.part_size);
        (j.size == self.desc.size && len == j.size && parts.len() == j.done.len()).then_some(j)
    }

    fn save_journal(
        &self,
        file: &File,
        parts: &[Part],
        part_size: u64,
    ) -> Result<(), TransferError> {
        let done: Vec<u64> = parts
            .iter()
            .map(|p| p.done.load(Ordering::Acquire))
            .collect();
        // The bytes the record counts must be on disk before the record is.
        file.sync_data().map_err(|e| {
            TransferError::io("fsync", &self.store.partial_path(&self.desc.digest), e)
        })?;
        let j = Journal {
            size: self.desc.size,
            part_size,
            done,
        };
        let bytes = serde_json::to_vec(&j).unwrap_or_default();
        self.store
            .journal()
            .insert(journal_key(&self.desc.digest).as_bytes(), bytes)
            .map_err(|e| TransferError::Store(e.into()))?;
        // sled would otherwise keep the record in memory for up to half a
        // second, and a killed daemon would forget it.
        self.store.flush()?;
        Ok(())
    }

    /// Keeps the disk busy behind the network until every sender of `pings`
    /// is gone: fsync what has arrived, record it, repeat. The data reaches
    /// the disk while the rest is still downloading, so the blob's final
    /// fsync has little left, and a killed daemon loses only the last round.
    /// A worker that finishes a part waits for this record before it starts
    /// the next, so a killed daemon never loses a whole part.
    fn journal_loop(
        &self,
        file: &File,
        parts: &[Part],
        part_size: u64,
        pings: &std::sync::mpsc::Receiver<PartDone>,
    ) {
        let total = || -> u64 { parts.iter().map(|p| p.done.load(Ordering::Acquire)).sum() };
        let mut last = total();
        loop {
            let ack = match pings.recv_timeout(JOURNAL_IDLE) {
                Ok(ack) => Some(ack),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let now = total();
            if now != last {
                last = now;
                if let Err(e) = self.save_journal(file, parts, part_size) {
                    tracing::warn!(error = %e, "cannot write the download journal");
                }
            }
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
        }
    }

    fn discard(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
        let _ = self
            .store
            .journal()
            .remove(journal_key(&self.desc.digest).as_bytes());
    }

    async fn download(&self) -> Result<Fetched, TransferError> {
        let digest = &self.desc.digest;
        if digest.algorithm() != llmpm_spec::digest::Algorithm::Sha256 {
            return Err(TransferError::Store(crate::store::StoreError::Algorithm(
                digest.clone(),
            )));
        }
        let size = self.desc.size;
        let path = self.store.partial_path(digest);
        self.store.set_tmp_active(&path, true);
        let _active = ActiveTmp(self.store.clone(), path.clone());
        let resumed = self.load_journal(&path);
        let part_size = resumed
            .as_ref()
            .map_or(self.opts.part_size, |j| j.part_size);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(resumed.is_none())
            .open(&path)
            .map_err(|e| TransferError::io("create", &path, e))?;
        if resumed.is_none() {
            file.set_len(size)
                .map_err(|e| TransferError::io("preallocate", &path, e))?;
        }
        let parts: Arc<Vec<Part>> = Arc::new(
            plan_parts(size, part_size)
                .into_iter()
                .enumerate()
                .map(|(i, (offset, len))| Part {
                    offset,
                    len,
                    done: AtomicU64::new(
                        resumed
                            .as_ref()
                            .and_then(|j| j.done.get(i).copied())
                            .unwrap_or(0)
                            .min(len),
                    ),
                })
                .collect(),
        );
        let already: u64 = parts.iter().map(|p| p.done.load(Ordering::Relaxed)).sum();
        if already > 0 {
            tracing::info!(blob = %digest, resumed_bytes = already, "resuming download");
        }
        self.save_journal(&file, &parts, part_size)?;
        let file = Arc::new(file);
        let completed = Arc::new(AtomicU64::new(already));

        // The hasher: reads the contiguous prefix back as it grows.
        let (ping_tx, ping_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let zstd = self.desc.media_type.compression() == Compression::Zstd;
        let hasher = {
            let file = file.clone();
            let parts = parts.clone();
            let store = self.store.clone();
            let digest = digest.clone();
            let path = path.clone();
            let cancel = self.shared.cancel.clone();
            tokio::task::spawn_blocking(move || {
                hash_prefix(
                    &file,
                    &path,
                    &parts,
                    size,
                    ping_rx,
                    &cancel,
                    zstd.then_some((store, digest)),
                )
            })
        };

        let (journal_ping, journal_rx) = std::sync::mpsc::channel::<PartDone>();
        let journaler = {
            let job = self.clone();
            let file = file.clone();
            let parts = parts.clone();
            tokio::task::spawn_blocking(move || {
                job.journal_loop(&file, &parts, part_size, &journal_rx);
            })
        };

        // The workers: each takes the next unfinished part.
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        let todo = parts
            .iter()
            .filter(|p| p.done.load(Ordering::Relaxed) < p.len)
            .count();
        for _ in 0..self.opts.concurrency.max(1).min(todo.max(1)) {
            let w = Worker {
                source: self.source.clone(),
                desc: self.desc.clone(),
                opts: self.opts.clone(),
                file: file.clone(),
                parts: parts.clone(),
                next: next.clone(),
                completed: completed.clone(),
                ping: ping_tx.clone(),
                cancel: self.shared.cancel.clone(),
                path: path.clone(),
                part_done: journal_ping.clone(),
            };
            workers.spawn(w.run());
        }
        drop(ping_tx);

        let mut failure: Option<TransferError> = None;
        let mut interval = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                joined = workers.join_next() => match joined {
                    None => break,
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => {
                        if failure.is_none() {
                            failure = Some(e);
                            // One part failed for good: stop the others.
                            self.shared.cancel.cancel();
                        }
                    }
                    Some(Err(join)) => {
                        failure.get_or_insert(TransferError::io("download", &path, std::io::Error::other(join)));
                        self.shared.cancel.cancel();
                    }
                },
                _ = interval.tick() => {
                    let c = completed.load(Ordering::Relaxed);
                    self.shared.status.send_modify(|s| s.completed = c.min(size));
                }
            }
        }
        drop(journal_ping);
        let _ = journaler.await;
        // Keep what arrived, whatever happens next.
        {
            let (job, file, parts) = (self.clone(), file.clone(), parts.clone());
            let _ = tokio::task::spawn_blocking(move || job.save_journal(&file, &parts, part_size))
                .await;
        }
        if let Some(e) = failure {
            let e = if self.shared.cancel.is_cancelled() && e.is_cancelled() {
                TransferError::Cancelled
            } else {
                e
            };
            if matches!(e, TransferError::SizeMismatch { .. }) {
                self.discard(&path);
            }
            // The hasher sees its channel close and stops.
            let _ = hasher.await;
            return Err(e);
        }
        let hashed = hasher
            .await
            .map_err(|e| TransferError::io("hash", &path, std::io::Error::other(e)))??;
        let Some((actual, unpacked)) = hashed else {
            return Err(TransferError::Cancelled);
        };
        if actual != *digest {
            self.discard(&path);
            return Err(TransferError::DigestMismatch {
                digest: digest.clone(),
                actual,
            });
        }
        let store = self.store.clone();
        let d = digest.clone();
        let p = path.clone();
        let fetched = tokio::task::spawn_blocking(move || -> Result<Fetched, TransferError> {
            match unpacked {
                None => {
                    store.install_verified(&p, &d)?;
                    Ok(Fetched { digest: d, size })
                }
                Some(f) => {
                    let rec = Unpacked {
                        digest: f.digest.clone(),
                        size: f.size,
                    };
                    store
                        .journal()
                        .insert(
                            unpacked_key(&d).as_bytes(),
                            serde_json::to_vec(&rec).unwrap_or_default(),
                        )
                        .map_err(|e| TransferError::Store(e.into()))?;
                    let _ = std::fs::remove_file(&p);
                    Ok(f)
                }
            }
        })
        .await
        .map_err(|e| TransferError::io("install", &path, std::io::Error::other(e)))??;
        let _ = self.store.journal().remove(journal_key(digest).as_bytes());
        let _ = self.store.flush();
        tracing::info!(blob = %digest, size, "blob downloaded and verified");
        Ok(fetched)
    }
}

/// Hashes the file's contiguous prefix as the parts fill it; with `unpack`,
/// also decompresses it (zstd) into a new blob. `None` when cancelled.
#[allow(clippy::type_complexity)]
fn hash_prefix(
    file: &File,
    path: &Path,
    parts: &[Part],
    size: u64,
    ping: std::sync::mpsc::Receiver<()>,
    cancel: &CancellationToken,
    unpack: Option<(Store, Digest)>,
) -> Result<Option<(Digest, Option<Fetched>)>, TransferError> {
    let mut hasher = Sha256::new();
    let mut decoder = match &unpack {
        Some((store, _)) => Some(
            zstd::stream::write::Decoder::new(BlobSink(store.blob_writer()?))
                .map_err(|e| TransferError::io("start decompressing", path, e))?,
        ),
        None => None,
    };
    let mut hashed = 0u64;
    let mut buf = vec![0u8; HASH_BUF];
    let mut closed = false;
    loop {
        let end = prefix_end(parts);
        while hashed < end {
            let n = usize::try_from(end - hashed)
                .unwrap_or(HASH_BUF)
                .min(HASH_BUF);
            file.read_exact_at(&mut buf[..n], hashed)
                .map_err(|e| TransferError::io("read back", path, e))?;
            hasher.update(&buf[..n]);
            if let (Some(dec), Some((_, d))) = (decoder.as_mut(), unpack.as_ref()) {
                dec.write_all(&buf[..n])
                    .map_err(|source| TransferError::Decompress {
                        digest: d.clone(),
                        source,
                    })?;
            }
            hashed += n as u64;
        }
        if hashed >= size {
            break;
        }
        if closed || cancel.is_cancelled() {
            return Ok(None);
        }
        if ping.recv().is_err() {
            // Workers are gone: one last look, then stop.
            closed = true;
        }
    }
    let digest = Digest::sha256_from_bytes(hasher.finalize().into());
    let unpacked = match (decoder, unpack) {
        (Some(mut dec), Some((_, d))) => {
            dec.flush().map_err(|source| TransferError::Decompress {
                digest: d.clone(),
                source,
            })?;
            if digest != d {
                // Not committed: the caller reports the mismatch.
                return Ok(Some((digest, None)));
            }
            let sink = dec.into_inner();
            let size = sink.0.written();
            let stored = sink.0.commit_sync(None)?;
            Some(Fetched {
                digest: stored,
                size,
            })
        }
        _ => None,
    };
    Ok(Some((digest, unpacked)))
}

/// `io::Write` over a store blob writer, for the zstd decoder.
struct BlobSink(crate::store::BlobWriter);

impl std::io::Write for BlobSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_sync(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One connection's worth of a download: takes parts until none are left.
struct Worker {
    source: Source,
    desc: Descriptor,
    opts: TransferOptions,
    file: Arc<File>,
    parts: Arc<Vec<Part>>,
    next: Arc<AtomicUsize>,
    completed: Arc<AtomicU64>,
    ping: std::sync::mpsc::SyncSender<()>,
    cancel: CancellationToken,
    path: PathBuf,
    /// Tells the journal thread a part is whole, and hears when it is on record.
    part_done: std::sync::mpsc::Sender<PartDone>,
}

impl Worker {
    async fn run(self) -> Result<(), TransferError> {
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
        loop {
            let before = part.done.load(Ordering::Acquire);
            let res = tokio::select! {
                r = self.attempt(part, last) => r,
                () = self.cancel.cancelled() => Err(TransferError::Cancelled),
            };
            match res {
                Ok(()) => return Ok(()),
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
                        () = super::backoff(self.opts.retry_base, failures) => {}
                        () = self.cancel.cancelled() => return Err(TransferError::Cancelled),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One request for the rest of a part.
    async fn attempt(&self, part: &Part, last: bool) -> Result<(), TransferError> {
        let size = self.desc.size;
        let digest = &self.desc.digest;
        let done = part.done.load(Ordering::Acquire);
        let start = part.offset + done;
        let want = part.len - done;
        // The last part asks for one byte past the declared end: a blob
        // larger than its descriptor says then shows itself.
        let end_incl = part.offset + part.len - 1 + u64::from(last);
        let reg = &self.source.registry;
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
        *got += n;
        buf.clear();
        let _ = self.ping.try_send(());
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn range_plan_covers_the_blob_exactly() {
        assert_eq!(plan_parts(0, 10), vec![]);
        assert_eq!(plan_parts(10, 10), vec![(0, 10)]);
        assert_eq!(plan_parts(25, 10), vec![(0, 10), (10, 10), (20, 5)]);
        assert_eq!(plan_parts(3, 0), vec![(0, 1), (1, 1), (2, 1)]);
        let big = plan_parts(2 << 30, 64 << 20);
        assert_eq!(big.len(), 32);
        assert_eq!(big.iter().map(|p| p.1).sum::<u64>(), 2 << 30);
    }

    #[test]
    fn prefix_stops_at_the_first_gap() {
        let mk = |v: &[(u64, u64, u64)]| -> Vec<Part> {
            v.iter()
                .map(|&(offset, len, done)| Part {
                    offset,
                    len,
                    done: AtomicU64::new(done),
                })
                .collect()
        };
        assert_eq!(prefix_end(&mk(&[(0, 10, 10), (10, 10, 4), (20, 5, 5)])), 14);
        assert_eq!(prefix_end(&mk(&[(0, 10, 3), (10, 10, 10)])), 3);
        assert_eq!(prefix_end(&mk(&[(0, 10, 10), (10, 10, 10)])), 20);
        assert_eq!(prefix_end(&[]), 0);
    }

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range("bytes 0-9/100"),
            Some((0, 9, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes x-1/2"), None);
    }

    #[test]
    fn journal_resumes_only_a_matching_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let http = super::super::client::Http::new(Duration::from_secs(5)).unwrap();
        let reg =
            Registry::new(&http, "127.0.0.1:1", true, None, TransferOptions::default()).unwrap();
        let job = Job {
            store: store.clone(),
            source: Source {
                registry: reg,
                repository: "a/b".into(),
            },
            desc: Descriptor::new(llmpm_spec::MediaType::new("x"), digest.clone(), 25),
            opts: TransferOptions::default(),
            shared: Arc::new(Shared {
                status: watch::channel(Status::default()).0,
                waiters: AtomicUsize::new(0),
                cancel: CancellationToken::new(),
            }),
        };
        let path = store.partial_path(&digest);
        assert!(job.load_journal(&path).is_none());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(25).unwrap();
        let parts: Vec<Part> = plan_parts(25, 10)
            .into_iter()
            .zip([10, 4, 0])
            .map(|((offset, len), d)| Part {
                offset,
                len,
                done: AtomicU64::new(d),
            })
            .collect();
        job.save_journal(&file, &parts, 10).unwrap();
        let j = job.load_journal(&path).unwrap();
        assert_eq!(j.done, vec![10, 4, 0]);
        assert_eq!(j.part_size, 10);
        // A file of the wrong length (truncated by hand) is not resumed.
        file.set_len(7).unwrap();
        assert!(job.load_journal(&path).is_none());
        job.discard(&path);
        assert!(!path.exists());
        assert!(store.journal().get(journal_key(&digest)).unwrap().is_none());
    }

    #[test]
    fn zstd_unpacks_while_hashing_the_compressed_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let plain = b"GGUF and then some weights, repeated ".repeat(1000);
        let packed = zstd::stream::encode_all(&plain[..], 3).unwrap();
        let d = Digest::sha256_from_bytes(Sha256::digest(&packed).into());
        let path = dir.path().join("z");
        std::fs::write(&path, &packed).unwrap();
        let file = File::open(&path).unwrap();
        let n = packed.len() as u64;
        let parts = vec![Part {
            offset: 0,
            len: n,
            done: AtomicU64::new(n),
        }];
        let (_tx, rx) = std::sync::mpsc::sync_channel(1);
        let (got, unpacked) = hash_prefix(
            &file,
            &path,
            &parts,
            n,
            rx,
            &CancellationToken::new(),
            Some((store.clone(), d.clone())),
        )
        .unwrap()
        .unwrap();
        assert_eq!(got, d);
        let f = unpacked.unwrap();
        assert_eq!(f.size, plain.len() as u64);
        assert_eq!(store.read_blob(&f.digest, 1 << 20).unwrap(), plain);
    }
}
