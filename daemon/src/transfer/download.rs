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
//! A blob is fetched from the first of its sources (the mirrors, then the
//! upstream) that works: a part that fails at a mirror continues from the
//! next source where it stopped, and a blob whose bytes came partly from a
//! mirror and do not verify is fetched again, whole, from the upstream.
//! Every byte passes the transfer's rate limits on its way in.
//!
//! Downloads are shared: a second pull of a digest already in flight waits
//! on the first one's progress instead of fetching again. When every waiter
//! has gone (clients disconnected), the download is cancelled and its
//! journal kept for next time.
//!
//! Here: the shared downloads and one download's steps; `journal`, `hash`
//! and `worker` hold the journal records, the hasher thread and the
//! Range-fetching workers.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmpm_spec::media_type::Compression;
use llmpm_spec::{Descriptor, Digest};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::client::Registry;
use super::options::TransferOptions;
use super::ratelimit::Limits;
use super::TransferError;
use crate::store::Store;
use hash::hash_prefix;
use journal::{journal_key, unpacked_key, Unpacked};
use worker::Worker;

mod hash;
mod journal;
#[cfg(test)]
mod tests;
mod worker;

/// How often progress is published.
const TICK: Duration = Duration::from_millis(100);

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
    /// The origin bytes come from now (a mirror or the upstream).
    source: Option<String>,
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

/// Where a blob comes from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The registries to try, in order: the mirrors, then the upstream,
    /// always last (so never empty).
    pub registries: Arc<[Arc<Registry>]>,
    /// `namespace/model`.
    pub repository: String,
    /// The rate limits its bytes pass.
    pub limits: Limits,
}

impl Source {
    fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }

    /// The index of the upstream, the last source.
    fn upstream(&self) -> usize {
        self.registries.len().saturating_sub(1)
    }

    /// Where source `i` is, for progress.
    fn origin(&self, i: usize) -> Option<String> {
        self.registries.get(i).map(|r| r.origin().to_owned())
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
    /// it), calling `progress(completed, total, source)` as it advances,
    /// `source` being where the bytes come from (`None` for a stored blob).
    pub async fn fetch(
        &self,
        store: &Store,
        source: &Source,
        desc: &Descriptor,
        opts: &TransferOptions,
        mut progress: impl FnMut(u64, u64, Option<&str>),
    ) -> Result<Fetched, TransferError> {
        if let Some(f) = stored(store, desc) {
            progress(desc.size, desc.size, None);
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
                        current: Arc::new(AtomicUsize::new(0)),
                        from_mirror: Arc::new(AtomicBool::new(false)),
                        serving: Arc::new(AtomicUsize::new(0)),
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
            progress(st.completed, st.total, st.source.as_deref());
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
    /// The source in use (index into `source.registries`); only moves on.
    current: Arc<AtomicUsize>,
    /// Whether a mirror delivered any of the bytes on disk.
    from_mirror: Arc<AtomicBool>,
    /// The source that last answered with bytes, plus one (0: none yet).
    serving: Arc<AtomicUsize>,
}

/// Removes the temp file from `prune`'s protection when the job ends.
struct ActiveTmp(Store, PathBuf);

impl Drop for ActiveTmp {
    fn drop(&mut self) {
        self.0.set_tmp_active(&self.1, false);
    }
}

/// The partial file of one download, open and planned into parts.
struct Partial {
    file: File,
    parts: Arc<Vec<Part>>,
    part_size: u64,
    /// Bytes already on disk (from the journal).
    already: u64,
}

/// What the hasher thread hands back: the digest of the bytes, and the
/// unpacked blob of a `+zstd` layer; `None` when cancelled.
type Hashed = Option<(Digest, Option<Fetched>)>;

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

    /// The download, fetched again from the upstream alone when bytes a
    /// mirror sent do not verify.
    async fn download(&self) -> Result<Fetched, TransferError> {
        match self.download_once().await {
            // (A wrong size at a mirror already moved its part on to the
            // next source; only the hash, at the end, can catch the rest.)
            Err(e @ TransferError::DigestMismatch { .. })
                if self.from_mirror.swap(false, Ordering::AcqRel) =>
            {
                tracing::warn!(blob = %self.desc.digest, error = %crate::errors::chain(&e), "bytes from a mirror did not verify; fetching the blob again from the upstream");
                self.current
                    .store(self.source.upstream(), Ordering::Release);
                self.download_once().await
            }
            r => r,
        }
    }

    /// One try at the whole download: plan (or resume) the parts, fetch them
    /// while the journal and the hasher follow, then verify the digest and install.
    async fn download_once(&self) -> Result<Fetched, TransferError> {
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
        let Partial {
            file,
            parts,
            part_size,
            already,
        } = self.open_partial(&path)?;
        self.save_journal(&file, &parts, part_size)?;
        let file = Arc::new(file);

        let (ping_tx, ping_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let hasher = self.spawn_hasher(&file, &parts, &path, ping_rx);
        let (journal_ping, journal_rx) = std::sync::mpsc::channel::<PartDone>();
        let journaler = {
            let job = self.clone();
            let file = file.clone();
            let parts = parts.clone();
            tokio::task::spawn_blocking(move || {
                job.journal_loop(&file, &parts, part_size, &journal_rx);
            })
        };
        let failure = self
            .fetch_parts(&file, &parts, &path, already, ping_tx, journal_ping)
            .await;
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
                crate::metrics::verification_failed();
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
            crate::metrics::verification_failed();
            self.discard(&path);
            return Err(TransferError::DigestMismatch {
                digest: digest.clone(),
                actual,
            });
        }
        let fetched = self.install(&path, unpacked).await?;
        let _ = self.store.journal().remove(journal_key(digest).as_bytes());
        let _ = self.store.flush();
        tracing::info!(blob = %digest, size, "blob downloaded and verified");
        Ok(fetched)
    }

    /// Opens the temp file: resumed from the journal when it matches, else
    /// created at full size; and its parts, with what each already holds.
    fn open_partial(&self, path: &Path) -> Result<Partial, TransferError> {
        let size = self.desc.size;
        let resumed = self.load_journal(path);
        let part_size = resumed
            .as_ref()
            .map_or(self.opts.part_size, |j| j.part_size);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(resumed.is_none())
            .open(path)
            .map_err(|e| TransferError::io("create", path, e))?;
        if resumed.is_none() {
            file.set_len(size)
                .map_err(|e| TransferError::io("preallocate", path, e))?;
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
            tracing::info!(blob = %self.desc.digest, resumed_bytes = already, "resuming download");
        }
        Ok(Partial {
            file,
            parts,
            part_size,
            already,
        })
    }

    /// Starts the hasher thread, which reads the contiguous prefix back as
    /// it grows (a ping on `ping_rx` says it grew).
    fn spawn_hasher(
        &self,
        file: &Arc<File>,
        parts: &Arc<Vec<Part>>,
        path: &Path,
        ping_rx: std::sync::mpsc::Receiver<()>,
    ) -> JoinHandle<Result<Hashed, TransferError>> {
        let zstd = self.desc.media_type.compression() == Compression::Zstd;
        let file = file.clone();
        let parts = parts.clone();
        let store = self.store.clone();
        let digest = self.desc.digest.clone();
        let path = path.to_owned();
        let size = self.desc.size;
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
    }

    /// Runs the workers until every part is whole or one fails for good,
    /// publishing progress each tick; the first lasting failure, if any.
    /// The workers hold the only senders of `ping` and `part_done`, so the
    /// hasher and the journal thread see them close when this returns.
    async fn fetch_parts(
        &self,
        file: &Arc<File>,
        parts: &Arc<Vec<Part>>,
        path: &Path,
        already: u64,
        ping: std::sync::mpsc::SyncSender<()>,
        part_done: std::sync::mpsc::Sender<PartDone>,
    ) -> Option<TransferError> {
        let size = self.desc.size;
        let completed = Arc::new(AtomicU64::new(already));
        // Progress names the source that is sending, once one is.
        let mut shown = 0;
        let publish = |c: u64, shown: &mut usize| {
            let now = self.serving.load(Ordering::Acquire);
            let moved = now != *shown;
            *shown = now;
            self.shared.status.send_modify(|s| {
                s.completed = c.min(size);
                if moved {
                    s.source = now.checked_sub(1).and_then(|i| self.source.origin(i));
                }
            });
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
                ping: ping.clone(),
                cancel: self.shared.cancel.clone(),
                path: path.to_owned(),
                part_done: part_done.clone(),
                current: self.current.clone(),
                from_mirror: self.from_mirror.clone(),
                serving: self.serving.clone(),
            };
            workers.spawn(w.run());
        }
        drop(ping);

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
                        failure.get_or_insert(TransferError::io("download", path, std::io::Error::other(join)));
                        self.shared.cancel.cancel();
                    }
                },
                _ = interval.tick() => {
                    publish(completed.load(Ordering::Relaxed), &mut shown);
                }
            }
        }
        publish(completed.load(Ordering::Relaxed), &mut shown);
        drop(part_done);
        failure
    }

    /// Makes the verified file a blob, or for a `+zstd` layer records where
    /// its unpacked blob went and drops the compressed file.
    async fn install(
        &self,
        path: &Path,
        unpacked: Option<Fetched>,
    ) -> Result<Fetched, TransferError> {
        let store = self.store.clone();
        let d = self.desc.digest.clone();
        let size = self.desc.size;
        let p = path.to_owned();
        tokio::task::spawn_blocking(move || -> Result<Fetched, TransferError> {
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
        .map_err(|e| TransferError::io("install", path, std::io::Error::other(e)))?
    }
}
