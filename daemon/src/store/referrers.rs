//! Referrers: artifacts (signature bundles) whose `subject` is a stored model's manifest, kept while that manifest is.
//!
//! A referrer is an OCI image manifest with a `subject`; it and its blobs are
//! ordinary blobs, counted like a model's, and the index's `referrers` tree
//! maps `<subject> <artifact>` to it. When no name points at the subject any
//! more (its manifest blob is freed), its referrers are released with it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmpm_spec::{Digest, Manifest};
use sha2::{Digest as _, Sha256};

use super::index::ReferrerEntry;
use super::{now_secs, Store, StoreError};

/// A stored referrer.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// The artifact manifest's digest.
    pub digest: Digest,
    /// The artifact manifest.
    pub manifest: Manifest,
    /// Its `artifactType` (else its config's media type).
    pub artifact_type: String,
    /// When it was stored here.
    pub stored: SystemTime,
}

impl Store {
    /// Stores an artifact manifest (its blobs must be stored already) as a
    /// referrer of its `subject`, which must be the manifest of a stored model.
    pub fn put_referrer(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let m = Manifest::from_slice(bytes).map_err(|source| StoreError::BadManifest {
            digest: Digest::sha256_from_bytes(Sha256::digest(bytes).into()),
            source,
        })?;
        let subject = m
            .subject
            .as_ref()
            .map(|s| s.digest.clone())
            .ok_or_else(|| StoreError::Record("referrer without a subject".into()))?;
        let _guard = self.lock_refs();
        let mut in_use = false;
        for item in self.inner.index.refs() {
            if item?.1.manifest == subject {
                in_use = true;
                break;
            }
        }
        if !in_use {
            return Err(StoreError::ModelNotFound(format!("@{subject}")));
        }
        self.check_blobs(&m)?;
        let mut blobs = self.manifest_blob_set_of(&m);
        let digest = self.put_bytes(bytes)?;
        blobs.insert(digest.clone(), bytes.len() as u64);
        let entry = ReferrerEntry {
            artifact_type: m
                .artifact_type
                .clone()
                .unwrap_or_else(|| m.config.media_type.as_str().to_owned()),
            stored: now_secs(),
        };
        self.inner
            .index
            .add_referrer(&subject, &digest, &entry, &blobs)?;
        Ok(digest)
    }

    /// The referrers of a manifest, oldest first; unreadable ones are skipped with a warning.
    pub fn referrers(&self, subject: &Digest) -> Result<Vec<Referrer>, StoreError> {
        let mut out = Vec::new();
        for (digest, entry) in self.inner.index.referrers_of(subject)? {
            match self.read_manifest(&digest) {
                Ok(manifest) => out.push(Referrer {
                    digest,
                    manifest,
                    artifact_type: entry.artifact_type,
                    stored: UNIX_EPOCH + Duration::from_secs(entry.stored),
                }),
                Err(e) => {
                    tracing::warn!(referrer = %digest, error = %e, "skipping unreadable referrer")
                }
            }
        }
        out.sort_by_key(|r| r.stored);
        Ok(out)
    }

    /// Removes one referrer of `subject`; its blobs no one else uses are deleted.
    pub fn remove_referrer(&self, subject: &Digest, artifact: &Digest) -> Result<(), StoreError> {
        let _guard = self.lock_refs();
        let blobs = self.manifest_blob_set(artifact)?;
        let freed = self
            .inner
            .index
            .remove_referrer(subject, artifact, &blobs)?;
        self.delete_blob_files(&freed);
        Ok(())
    }

    /// Releases the referrers of manifests that were just freed (called under the refs lock).
    pub(super) fn release_referrers(&self, freed: &[Digest]) -> Result<(), StoreError> {
        for subject in freed {
            for (artifact, _) in self.inner.index.referrers_of(subject)? {
                let blobs = self.manifest_blob_set(&artifact)?;
                let gone = self
                    .inner
                    .index
                    .remove_referrer(subject, &artifact, &blobs)?;
                self.delete_blob_files(&gone);
            }
        }
        Ok(())
    }

    /// The blobs referrers keep, each with its size, once per referrer (for `verify`'s recount).
    pub(super) fn referrer_blob_sets(&self) -> Result<Vec<BTreeMap<Digest, u64>>, StoreError> {
        self.inner
            .index
            .all_referrers()?
            .into_iter()
            .map(|(_, a)| self.manifest_blob_set(&a))
            .collect()
    }
}
