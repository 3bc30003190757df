//! The content-addressed store: blobs as files under `blobs/sha256/<hex>`, references and counts in sled.
//!
//! Layout under the store root (see `SPEC.md`, "Store layout"):
//!
//! ```text
//! blobs/sha256/<hex>   every blob: weights, text layers, configs and manifests
//! tmp/                 blobs being written (`*.partial`); never visible as blobs
//! quarantine/          blobs `verify` found corrupt
//! index/               the sled database: refs, blob sizes and reference counts,
//!                      and the pull journal (see `transfer::download`)
//! ```
//!
//! Crash safety rests on two rules. A blob is written to `tmp/`, hashed,
//! fsynced and only then renamed into `blobs/`, so a blob file that exists is
//! whole. A reference changes in one sled transaction that also moves the
//! reference counts, so the index is always either the old or the new state;
//! a blob whose count drops to zero is deleted only after that transaction,
//! and one left behind by a crash is merely unreferenced, which `prune` removes.

mod blob;
mod index;
mod referrers;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use llmpm_spec::{Digest, Manifest, Reference};
use sha2::{Digest as _, Sha256};

pub use blob::{BlobWriter, HeldBlob};
use index::{BlobEntry, Index, RefEntry};
pub use referrers::Referrer;

/// A store error. Each names what it was about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("cannot {op} `{}`", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The index database failed.
    #[error("the store index failed")]
    Db(#[from] sled::Error),
    /// The index database is held by another process.
    #[error("the store at `{}` is in use by another llmpmd; stop it or set LLMPM_HOME to another directory", .0.display())]
    Locked(PathBuf),
    /// An index record could not be read.
    #[error("the store index holds a malformed record for `{0}`; run `llmpm verify`")]
    Record(String),
    /// No such model.
    #[error("model `{0}` not found")]
    ModelNotFound(String),
    /// No such blob.
    #[error("blob `{0}` not found")]
    BlobNotFound(Digest),
    /// Bytes did not hash to the digest they were sent as.
    #[error("blob digest mismatch: expected `{expected}`, the bytes hash to `{actual}`")]
    DigestMismatch {
        /// Claimed.
        expected: Digest,
        /// Computed.
        actual: Digest,
    },
    /// The byte count did not match.
    #[error("blob `{digest}` should be {expected} bytes but {actual} arrived")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// Claimed.
        expected: u64,
        /// Received.
        actual: u64,
    },
    /// A manifest blob in the store does not parse.
    #[error("manifest `{digest}` in the store is unreadable; run `llmpm verify`")]
    BadManifest {
        /// The manifest blob.
        digest: Digest,
        /// Why.
        #[source]
        source: llmpm_spec::ManifestError,
    },
    /// A manifest refers to a blob the store lacks.
    #[error("manifest refers to blob `{0}`, which is not in the store")]
    MissingLayer(Digest),
    /// Only sha256 blobs are written.
    #[error("digest `{0}` uses an algorithm llmpm does not store; use sha256")]
    Algorithm(Digest),
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> StoreError {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// A model as the store knows it.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    /// Its name.
    pub reference: Reference,
    /// The digest of its manifest: the model's id.
    pub digest: Digest,
    /// The manifest.
    pub manifest: Manifest,
    /// When the name last changed.
    pub modified: SystemTime,
}

/// What `prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Unreferenced blobs deleted.
    pub blobs_removed: u64,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Stale temp files deleted.
    pub temp_files_removed: u64,
}

/// One blob `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt {
    /// The blob.
    pub digest: Digest,
    /// What is wrong.
    pub problem: String,
    /// Where it now lies.
    pub quarantined_to: PathBuf,
    /// The models that need it.
    pub models: Vec<Reference>,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blobs re-hashed.
    pub blobs_checked: u64,
    /// Bytes re-hashed.
    pub bytes_checked: u64,
    /// Blobs whose bytes did not match, now quarantined.
    pub corrupt: Vec<Corrupt>,
    /// Blobs a manifest needs that the store lacks.
    pub missing: Vec<Digest>,
    /// Reference counts that had drifted and were corrected.
    pub counts_fixed: u64,
}

/// The store. Cheap to clone; all clones share one index.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    index: Index,
    /// Serialises reference changes: they read then write several records.
    refs_lock: Mutex<()>,
    /// Temp files being written now, which `prune` must leave alone.
    active_tmp: Mutex<HashSet<PathBuf>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.root)
            .finish()
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::io("fsync directory", dir, e))
}

impl Store {
    /// Opens (creating if needed) the store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        for sub in ["blobs/sha256", "tmp", "quarantine"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| StoreError::io("create directory", &p, e))?;
        }
        let index = Index::open(&root.join("index"))?;
        // Holding the index lock, no other process writes here: every
        // `.partial` is left by a daemon that was killed mid-write (an upload,
        // a create, a load) and is never resumed, unlike a pull's `.download`.
        remove_stale_partials(&root.join("tmp"));
        Ok(Store {
            inner: Arc::new(Inner {
                root,
                index,
                refs_lock: Mutex::new(()),
                active_tmp: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where a blob lives (whether or not it exists). The digest's hex is validated, so this is safe.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.inner
            .root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// The size of a stored blob, if it is stored.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Whether the store has this blob.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_size(digest).is_some()
    }

    /// Starts writing a new blob into `tmp/`; [`BlobWriter::commit`] makes it visible.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        BlobWriter::create(self.clone())
    }

    /// The pull journal: a sled tree the transfer module owns (keys and values
    /// are its business), kept in the index so it survives a killed daemon.
    pub fn journal(&self) -> &sled::Tree {
        self.inner.index.journal()
    }

    /// Flushes the index (the journal included) to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.index.flush()
    }

    /// The temp file a download of `digest` writes into: one deterministic
    /// name per digest, so a restarted daemon finds and resumes it.
    pub fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.tmp_dir().join(format!("{}.download", digest.hex()))
    }

    /// Marks a temp file as being written (or no longer), so `prune` spares it.
    pub fn set_tmp_active(&self, path: &Path, active: bool) {
        self.track_tmp(path, active);
    }

    /// Makes a fully written and already verified temp file the blob
    /// `digest`: fsync, rename into `blobs/`, fsync the directory. The caller
    /// vouches that the file's bytes hash to `digest` (a download hashes as
    /// it goes); nothing else may call this.
    pub fn install_verified(&self, tmp: &Path, digest: &Digest) -> Result<(), StoreError> {
        if digest.algorithm() != llmpm_spec::digest::Algorithm::Sha256 {
            return Err(StoreError::Algorithm(digest.clone()));
        }
        fs::File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::io("fsync", tmp, e))?;
        let dest = self.blob_path(digest);
        fs::rename(tmp, &dest).map_err(|e| StoreError::io("rename", &dest, e))?;
        self.track_tmp(tmp, false);
        if let Some(dir) = dest.parent() {
            fsync_dir(dir)?;
        }
        Ok(())
    }

    /// Stores a small blob from memory and returns its digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let mut w = self.blob_writer()?;
        w.write_sync(bytes)?;
        w.commit_sync(None)
    }

    /// Reads a whole blob into memory, refusing any larger than `limit` bytes.
    pub fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let f = fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobNotFound(digest.clone()),
            _ => StoreError::io("open", &path, e),
        })?;
        let mut buf = Vec::new();
        f.take(limit.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| StoreError::io("read", &path, e))?;
        if buf.len() as u64 > limit {
            return Err(StoreError::io(
                "read",
                &path,
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("larger than {limit} bytes"),
                ),
            ));
        }
        Ok(buf)
    }

    fn read_manifest(&self, digest: &Digest) -> Result<Manifest, StoreError> {
        let bytes = self.read_blob(digest, llmpm_spec::manifest::MAX_MANIFEST_BYTES as u64)?;
        Manifest::from_slice(&bytes).map_err(|source| StoreError::BadManifest {
            digest: digest.clone(),
            source,
        })
    }

    fn lock_refs(&self) -> MutexGuard<'_, ()> {
        // A poisoned lock only means another thread panicked mid-update; the
        // index itself is transactional, so carrying on is safe.
        self.inner
            .refs_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn track_tmp(&self, path: &Path, active: bool) {
        let mut set = self
            .inner
            .active_tmp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if active {
            set.insert(path.to_owned());
        } else {
            set.remove(path);
        }
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.inner.root.join("tmp")
    }

    /// Makes `reference` point at `manifest`: stores the manifest blob and moves
    /// the reference counts, all in one transaction. Every blob the manifest
    /// names must already be stored with its declared size. Returns the
    /// manifest digest and the blobs the change left unreferenced (deleted).
    pub fn put_manifest(
        &self,
        reference: &Reference,
        manifest: &Manifest,
    ) -> Result<(Digest, Vec<Digest>), StoreError> {
        self.put_manifest_bytes(reference, manifest, &manifest.to_bytes())
    }

    /// [`Store::put_manifest`] with the manifest's exact bytes, as a registry
    /// served them, so the stored digest is the registry's. `bytes` must be
    /// what `manifest` was parsed from.
    pub fn put_manifest_bytes(
        &self,
        reference: &Reference,
        manifest: &Manifest,
        bytes: &[u8],
    ) -> Result<(Digest, Vec<Digest>), StoreError> {
        // Under the lock, so a concurrent delete cannot free a blob between
        // this check and the count that keeps it.
        let _guard = self.lock_refs();
        self.check_blobs(manifest)?;
        let digest = self.put_bytes(bytes)?;
        let key = reference.key();
        let old = self.inner.index.get_ref(&key)?;
        let mut entry = RefEntry::new(digest.clone(), reference);
        if let Some(o) = &old {
            // A name keeps the spelling it was first stored under (Ollama's
            // rule): `hf.co/a/b` and `hf.co/A/B` are one model, never two.
            entry.name.clone_from(&o.name);
        }
        let old_blobs = match &old {
            Some(e) if e.manifest == digest => {
                // Same content: only the time changes.
                self.inner.index.set_ref_only(&key, &entry)?;
                return Ok((digest, Vec::new()));
            }
            Some(e) => self.manifest_blob_set(&e.manifest)?,
            None => BTreeMap::new(),
        };
        let mut new_blobs = self.manifest_blob_set_of(manifest);
        new_blobs.insert(digest.clone(), bytes.len() as u64);
        let freed = self
            .inner
            .index
            .swap_ref(&key, Some(entry), &new_blobs, &old_blobs)?;
        self.delete_blob_files(&freed);
        self.release_referrers(&freed)?;
        Ok((digest, freed))
    }

    /// Checks that every blob `m` names is stored with its declared size.
    fn check_blobs(&self, m: &Manifest) -> Result<(), StoreError> {
        for d in m.blobs() {
            match self.blob_size(&d.digest) {
                Some(size) if size == d.size => {}
                Some(size) => {
                    return Err(StoreError::SizeMismatch {
                        digest: d.digest.clone(),
                        expected: d.size,
                        actual: size,
                    })
                }
                None => return Err(StoreError::MissingLayer(d.digest.clone())),
            }
        }
        Ok(())
    }

    /// The distinct blobs of a stored manifest, the manifest itself included.
    fn manifest_blob_set(&self, digest: &Digest) -> Result<BTreeMap<Digest, u64>, StoreError> {
        let mut set = match self.read_manifest(digest) {
            Ok(m) => self.manifest_blob_set_of(&m),
            // An unreadable old manifest still releases itself.
            Err(StoreError::BlobNotFound(_) | StoreError::BadManifest { .. }) => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        set.insert(digest.clone(), self.blob_size(digest).unwrap_or(0));
        Ok(set)
    }

    fn manifest_blob_set_of(&self, m: &Manifest) -> BTreeMap<Digest, u64> {
        m.blobs().map(|d| (d.digest.clone(), d.size)).collect()
    }

    fn delete_blob_files(&self, digests: &[Digest]) {
        for d in digests {
            let p = self.blob_path(d);
            if let Err(e) = fs::remove_file(&p) {
                if e.kind() != io::ErrorKind::NotFound {
                    // Left for prune: the index already says it is unreferenced.
                    tracing::warn!(path = %p.display(), error = %e, "could not delete unreferenced blob");
                }
            }
        }
    }

    /// The index record of a name (checked against a pinned digest).
    fn lookup(&self, reference: &Reference) -> Result<RefEntry, StoreError> {
        let key = reference.key();
        let entry = self
            .inner
            .index
            .get_ref(&key)?
            .ok_or_else(|| StoreError::ModelNotFound(reference.display_short()))?;
        if let Some(pinned) = reference.digest() {
            if *pinned != entry.manifest {
                return Err(StoreError::ModelNotFound(format!(
                    "{}@{pinned}",
                    reference.display_short()
                )));
            }
        }
        Ok(entry)
    }

    /// The digest of the manifest a name points at: one index lookup, the
    /// manifest itself is not read (for caches keyed by it).
    pub fn manifest_digest(&self, reference: &Reference) -> Result<Digest, StoreError> {
        self.lookup(reference).map(|e| e.manifest)
    }

    /// Looks a model up by name.
    pub fn get(&self, reference: &Reference) -> Result<ModelEntry, StoreError> {
        let entry = self.lookup(reference)?;
        let manifest = self.read_manifest(&entry.manifest)?;
        // The name as stored: its spelling, not the one asked with.
        let stored = match &entry.name {
            Some(n) => n.parse().ok(),
            None => reference.key().parse().ok(),
        };
        Ok(ModelEntry {
            reference: stored.unwrap_or_else(|| reference.untagged_digest()),
            modified: entry.modified(),
            digest: entry.manifest,
            manifest,
        })
    }

    /// Every model, most recently modified first. Unreadable entries are skipped with a warning.
    pub fn list(&self) -> Result<Vec<ModelEntry>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.index.refs() {
            let (key, entry) = item?;
            let Ok(reference) = key.parse::<Reference>() else {
                tracing::warn!(key, "skipping index entry with an invalid name");
                continue;
            };
            match self.read_manifest(&entry.manifest) {
                Ok(manifest) => out.push(ModelEntry {
                    reference,
                    digest: entry.manifest.clone(),
                    manifest,
                    modified: entry.modified(),
                }),
                Err(e) => tracing::warn!(model = key, error = %e, "skipping unreadable model"),
            }
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.modified));
        Ok(out)
    }

    /// Every name with the digest of its manifest, the manifests unread (for
    /// listings that only need names, such as the `/v2/` catalog).
    pub fn names(&self) -> Result<Vec<(Reference, Digest)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.index.refs() {
            let (key, entry) = item?;
            match key.parse::<Reference>() {
                Ok(reference) => out.push((reference, entry.manifest)),
                Err(_) => tracing::warn!(key, "skipping index entry with an invalid name"),
            }
        }
        Ok(out)
    }

    /// Points `dst` at the manifest of `src`. Adds no blob.
    pub fn copy(&self, src: &Reference, dst: &Reference) -> Result<Digest, StoreError> {
        let entry = self.get(src)?;
        // The exact bytes, so a pulled model's copy keeps the registry's digest.
        let bytes = self.read_blob(
            &entry.digest,
            llmpm_spec::manifest::MAX_MANIFEST_BYTES as u64,
        )?;
        let (digest, _) = self.put_manifest_bytes(dst, &entry.manifest, &bytes)?;
        Ok(digest)
    }

    /// Removes a name; blobs no other model uses are deleted. Returns them.
    pub fn delete(&self, reference: &Reference) -> Result<Vec<Digest>, StoreError> {
        let _guard = self.lock_refs();
        let key = reference.key();
        let entry = self
            .inner
            .index
            .get_ref(&key)?
            .ok_or_else(|| StoreError::ModelNotFound(reference.display_short()))?;
        let old_blobs = self.manifest_blob_set(&entry.manifest)?;
        let freed = self
            .inner
            .index
            .swap_ref(&key, None, &BTreeMap::new(), &old_blobs)?;
        self.delete_blob_files(&freed);
        self.release_referrers(&freed)?;
        Ok(freed)
    }

    /// The models whose manifests need `digest`.
    pub fn models_using(&self, digest: &Digest) -> Result<Vec<Reference>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.index.refs() {
            let (key, entry) = item?;
            let Ok(reference) = key.parse::<Reference>() else {
                continue;
            };
            let uses = entry.manifest == *digest
                || self
                    .read_manifest(&entry.manifest)
                    .map(|m| m.blobs().any(|d| d.digest == *digest))
                    .unwrap_or(false);
            if uses {
                out.push(reference);
            }
        }
        Ok(out)
    }

    fn blob_files(&self) -> Result<Vec<(Digest, u64)>, StoreError> {
        let dir = self.inner.root.join("blobs/sha256");
        let rd = fs::read_dir(&dir).map_err(|e| StoreError::io("read directory", &dir, e))?;
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| StoreError::io("read directory", &dir, e))?;
            let name = ent.file_name();
            let Some(d) = name
                .to_str()
                .and_then(|n| format!("sha256:{n}").parse::<Digest>().ok())
            else {
                tracing::warn!(file = ?name, "ignoring a file in blobs/ that is not named by a digest");
                continue;
            };
            let len = ent.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((d, len));
        }
        Ok(out)
    }

    /// Deletes every blob no model references and every temp file not being written now.
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        let _guard = self.lock_refs();
        let mut report = PruneReport::default();
        let referenced = self.inner.index.referenced_blobs()?;
        for (d, len) in self.blob_files()? {
            if !referenced.contains(&d) {
                let p = self.blob_path(&d);
                match fs::remove_file(&p) {
                    Ok(()) => {
                        report.blobs_removed += 1;
                        report.bytes_freed += len;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io("delete", &p, e)),
                }
                self.inner.index.forget_blob(&d)?;
            }
        }
        let tmp = self.tmp_dir();
        // Held over the sweep: a writer marks its file live (under this
        // lock) before creating it, so none is swept between the two.
        let active = self
            .inner
            .active_tmp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rd = fs::read_dir(&tmp).map_err(|e| StoreError::io("read directory", &tmp, e))?;
        for ent in rd.flatten() {
            let p = ent.path();
            if !active.contains(&p) && fs::remove_file(&p).is_ok() {
                report.temp_files_removed += 1;
            }
        }
        Ok(report)
    }

    /// Re-hashes every blob, quarantines those that do not match, lists those
    /// missing, and corrects reference counts recomputed from the manifests.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        for (d, _) in self.blob_files()? {
            let path = self.blob_path(&d);
            let (actual, len) = match hash_file(&path) {
                Ok(v) => v,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("read", &path, e)),
            };
            report.blobs_checked += 1;
            report.bytes_checked += len;
            if actual != d {
                let q =
                    self.inner
                        .root
                        .join("quarantine")
                        .join(format!("{}.{}", d.hex(), now_secs()));
                fs::rename(&path, &q).map_err(|e| StoreError::io("quarantine", &path, e))?;
                tracing::warn!(blob = %d, actual = %actual, to = %q.display(), "corrupt blob quarantined");
                report.corrupt.push(Corrupt {
                    models: self.models_using(&d)?,
                    digest: d,
                    problem: format!("its bytes hash to `{actual}`"),
                    quarantined_to: q,
                });
            }
        }
        let _guard = self.lock_refs();
        // Recompute counts from the manifests themselves.
        let mut counts: BTreeMap<Digest, (u64, u64)> = BTreeMap::new();
        for item in self.inner.index.refs() {
            let (_, entry) = item?;
            let blobs = self.manifest_blob_set(&entry.manifest)?;
            for (d, size) in blobs {
                let c = counts.entry(d).or_insert((0, size));
                c.0 += 1;
            }
        }
        // Signatures kept for a model count like its own blobs.
        for blobs in self.referrer_blob_sets()? {
            for (d, size) in blobs {
                counts.entry(d).or_insert((0, size)).0 += 1;
            }
        }
        for (d, (refs, size)) in &counts {
            if !self.has_blob(d) && !report.missing.contains(d) {
                report.missing.push(d.clone());
            }
            let want = BlobEntry {
                size: *size,
                refs: *refs,
                last_used: now_secs(),
            };
            let fixed = self.inner.index.fix_blob_count(d, &want)?;
            report.counts_fixed += u64::from(fixed);
        }
        report.counts_fixed += self.inner.index.zero_blobs_not_in(&counts)?;
        Ok(report)
    }
}

fn remove_stale_partials(tmp: &Path) {
    let Ok(rd) = fs::read_dir(tmp) else { return };
    for ent in rd.flatten() {
        let p = ent.path();
        if p.extension().is_some_and(|e| e == "partial") {
            if let Err(e) = fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "could not delete a stale partial blob");
            }
        }
    }
}

/// Hashes a file with sha256, returning its digest and length.
pub fn hash_file(path: &Path) -> io::Result<(Digest, u64)> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((Digest::sha256_from_bytes(h.finalize().into()), n))
}

#[cfg(test)]
mod tests;
