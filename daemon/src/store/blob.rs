//! Writing one blob: into `tmp/`, hashed as it goes, verified, fsynced, then renamed into place.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use llmpm_spec::digest::Algorithm;
use llmpm_spec::Digest;
use sha2::{Digest as _, Sha256};

use super::{fsync_dir, Store, StoreError};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A blob being written. Dropping it without [`BlobWriter::commit_sync`]
/// deletes the temp file, so a failed or cancelled write leaves nothing behind.
pub struct BlobWriter {
    store: Store,
    path: PathBuf,
    file: Option<fs::File>,
    hasher: Sha256,
    written: u64,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("path", &self.path)
            .field("written", &self.written)
            .finish()
    }
}

impl BlobWriter {
    pub(super) fn create(store: Store) -> Result<BlobWriter, StoreError> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("{}-{n}-{nanos:08x}.partial", std::process::id());
        let path = store.tmp_dir().join(name);
        // Live before it exists: `prune` sweeps `tmp/` under the same lock,
        // so it either sees the mark or runs before the file is there.
        store.track_tmp(&path, true);
        let file = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) => {
                store.track_tmp(&path, false);
                return Err(StoreError::io("create", &path, e));
            }
        };
        Ok(BlobWriter {
            store,
            path,
            file: Some(file),
            hasher: Sha256::new(),
            written: 0,
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends bytes. Blocking: call from a blocking context for large writes.
    pub fn write_sync(&mut self, buf: &[u8]) -> Result<(), StoreError> {
        let file = self.file.as_mut().ok_or_else(|| {
            StoreError::io(
                "write",
                &self.path,
                io::Error::other("blob writer already finished"),
            )
        })?;
        file.write_all(buf)
            .map_err(|e| StoreError::io("write", &self.path, e))?;
        self.hasher.update(buf);
        self.written += buf.len() as u64;
        Ok(())
    }

    /// Checks the digest (if one was claimed), fsyncs and renames the blob into
    /// place. If the store already has the blob the new copy is discarded.
    pub fn commit_sync(mut self, expected: Option<&Digest>) -> Result<Digest, StoreError> {
        if let Some(e) = expected {
            if e.algorithm() != Algorithm::Sha256 {
                return Err(StoreError::Algorithm(e.clone()));
            }
        }
        let actual = Digest::sha256_from_bytes(std::mem::take(&mut self.hasher).finalize().into());
        if let Some(e) = expected {
            if *e != actual {
                crate::metrics::verification_failed();
                return Err(StoreError::DigestMismatch {
                    expected: e.clone(),
                    actual,
                });
            }
        }
        let Some(file) = self.file.take() else {
            return Err(StoreError::io(
                "commit",
                &self.path,
                io::Error::other("blob writer already finished"),
            ));
        };
        file.sync_all()
            .map_err(|e| StoreError::io("fsync", &self.path, e))?;
        drop(file);
        let dest = self.store.blob_path(&actual);
        if self.store.has_blob(&actual) {
            return Ok(actual); // Drop removes the temp file.
        }
        fs::rename(&self.path, &dest).map_err(|e| StoreError::io("rename", &dest, e))?;
        self.store.track_tmp(&self.path, false);
        if let Some(dir) = dest.parent() {
            fsync_dir(dir)?;
        }
        Ok(actual)
    }
}

/// A blob whose bytes are whole and verified but that still lies in `tmp/`:
/// [`HeldBlob::install`] makes it visible, dropping it deletes it. For
/// writers that must check more than one blob before any may appear
/// (loading an archive).
#[derive(Debug)]
pub struct HeldBlob {
    writer: BlobWriter,
    digest: Digest,
}

impl HeldBlob {
    /// The blob's digest (verified).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Its size.
    pub fn size(&self) -> u64 {
        self.writer.written
    }

    /// The temp file, to read it back before it is installed.
    pub fn path(&self) -> &std::path::Path {
        &self.writer.path
    }

    /// fsyncs and renames it into `blobs/` (dropping the writer then finds no temp file).
    pub fn install(self) -> Result<(), StoreError> {
        self.writer
            .store
            .install_verified(&self.writer.path, &self.digest)
    }
}

impl BlobWriter {
    /// Checks the bytes against `expected` and closes the file, but leaves it
    /// in `tmp/` (see [`HeldBlob`]).
    pub fn hold_sync(mut self, expected: &Digest) -> Result<HeldBlob, StoreError> {
        if expected.algorithm() != Algorithm::Sha256 {
            return Err(StoreError::Algorithm(expected.clone()));
        }
        let actual = Digest::sha256_from_bytes(std::mem::take(&mut self.hasher).finalize().into());
        if *expected != actual {
            crate::metrics::verification_failed();
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        self.file = None;
        Ok(HeldBlob {
            writer: self,
            digest: actual,
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        self.file = None;
        // After a successful rename the temp path no longer exists: ignore.
        let _ = fs::remove_file(&self.path);
        self.store.track_tmp(&self.path, false);
    }
}
