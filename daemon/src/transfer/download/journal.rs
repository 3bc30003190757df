//! The download journal: how much of each part is on disk, recorded in the store's sled tree so a killed daemon resumes; and where a `+zstd` layer was unpacked to.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use llmpm_spec::Digest;
use serde::{Deserialize, Serialize};

use super::{plan_parts, Job, Part, PartDone};
use crate::transfer::TransferError;

/// How long the journal thread waits between rounds when nothing is new.
const JOURNAL_IDLE: Duration = Duration::from_millis(20);

/// The journal record of one download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Journal {
    pub(super) size: u64,
    pub(super) part_size: u64,
    /// Bytes on disk at the start of each part.
    pub(super) done: Vec<u64>,
}

/// The journal record of a decompressed `+zstd` layer: compressed digest → stored blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Unpacked {
    pub(super) digest: Digest,
    pub(super) size: u64,
}

pub(super) fn journal_key(d: &Digest) -> String {
    format!("part:{d}")
}

pub(super) fn unpacked_key(d: &Digest) -> String {
    format!("zstd:{d}")
}

impl Job {
    pub(super) fn load_journal(&self, path: &Path) -> Option<Journal> {
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

    pub(super) fn save_journal(
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
    pub(super) fn journal_loop(
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

    pub(super) fn discard(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
        let _ = self
            .store
            .journal()
            .remove(journal_key(&self.desc.digest).as_bytes());
    }
}
