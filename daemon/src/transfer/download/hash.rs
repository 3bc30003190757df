//! The hasher thread: reads a download's contiguous prefix back as the parts fill it, hashing it (and unpacking a `+zstd` layer) so the digest is ready moments after the last byte.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::Path;

use llmpm_spec::Digest;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use super::{prefix_end, Fetched, Part};
use crate::store::Store;
use crate::transfer::TransferError;

/// Bytes the hasher reads back at a time.
const HASH_BUF: usize = 4 << 20;

/// Hashes the file's contiguous prefix as the parts fill it; with `unpack`,
/// also decompresses it (zstd) into a new blob. `None` when cancelled.
#[allow(clippy::type_complexity)]
pub(super) fn hash_prefix(
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
