//! OCI image-layout archives (`llmpm save` / `llmpm load`): models written as one tar stream from the store's blobs, and read back verified.
//!
//! - `tar`: the tar headers written and read (our own; why is there).
//! - `save`: the archive of some models, planned up front (so its length is
//!   known) and streamed straight from the blob files.
//! - `load`: an archive read as it arrives, each blob hashed into `tmp/` as
//!   it lands, everything checked, and only then blobs installed and names
//!   made visible.
//!
//! The archive is the OCI image layout (image-spec `image-layout.md`) in a
//! tar, what `skopeo copy … oci-archive:` writes: `oci-layout`, `index.json`
//! (one manifest descriptor per model, its name in
//! `org.opencontainers.image.ref.name`; a model's signature artifacts as
//! further descriptors without a name) and `blobs/sha256/<hex>`.
//! See `SPEC.md`, "Archives".

mod load;
mod save;
pub mod tar;

#[cfg(test)]
mod tests;

use llmpm_spec::{Descriptor, Digest, NameError};
use serde::{Deserialize, Serialize};

use crate::store::StoreError;
pub use load::{load, LoadOptions, Loaded};
pub use save::{plan, SavePlan};

/// The annotation that names a model in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The full name containerd and Docker write beside [`REF_NAME`]; preferred when present.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// `oci-layout`'s content.
pub const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// At most this many descriptors in `index.json`.
pub const MAX_INDEX_ENTRIES: usize = 4096;

/// `index.json`: an OCI image index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// One per model (and per signature artifact).
    pub manifests: Vec<Descriptor>,
}

/// Why an archive could not be written or read. Each names the entry or blob at fault.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The tar stream itself is broken.
    #[error(transparent)]
    Tar(#[from] tar::TarError),
    /// An entry's path is not one an OCI archive may hold.
    #[error("the archive entry `{path}` {why}; refusing the archive")]
    Path {
        /// The path as written.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An entry declares more bytes than the upload has left.
    #[error("the archive entry `{path}` declares {size} bytes but only {left} bytes of the archive remain (a tar bomb or a truncated upload)")]
    Declared {
        /// The entry.
        path: String,
        /// Its declared size.
        size: u64,
        /// What the request body has left.
        left: u64,
    },
    /// Something is bigger than its cap.
    #[error("the archive's {what} is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        /// What.
        what: String,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// A blob's bytes do not hash to its name.
    #[error("the archive entry `{path}` is corrupt")]
    Blob {
        /// The entry.
        path: String,
        /// The mismatch.
        #[source]
        source: StoreError,
    },
    /// A blob's size differs from the descriptor that names it.
    #[error("blob `{digest}` is {actual} bytes in the archive but {needed_by} says {declared}")]
    Size {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        declared: u64,
        /// The archive's.
        actual: u64,
        /// Who declared it.
        needed_by: String,
    },
    /// `oci-layout` is missing or wrong.
    #[error("not an OCI image layout archive: {0}")]
    Layout(String),
    /// `index.json` is missing or wrong.
    #[error("the archive's index.json {0}")]
    Index(String),
    /// A blob something needs is not in the archive.
    #[error("{needed_by} refers to blob `{digest}`, which is not in the archive")]
    Missing {
        /// The blob.
        digest: Digest,
        /// Who needs it.
        needed_by: String,
    },
    /// A manifest does not parse.
    #[error("manifest `{digest}` in the archive is not a valid image manifest")]
    Manifest {
        /// The manifest blob.
        digest: Digest,
        /// Why.
        #[source]
        source: llmpm_spec::ManifestError,
    },
    /// A model could not be named.
    #[error("{0}")]
    Name(String),
    /// A name does not parse.
    #[error("the archive names a model `{name}`, which is not a valid model name; pass `--name`")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: NameError,
    },
    /// A model to save is unknown (or its store copy is damaged).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ArchiveError {
    /// Whether this is the sender's fault (a bad archive or request) rather than the store's.
    pub fn is_input(&self) -> bool {
        !matches!(
            self,
            ArchiveError::Store(_) | ArchiveError::Tar(tar::TarError::Io(_))
        )
    }
}

/// The descriptor `d` with its descriptor-level size checked against an archive's.
pub(crate) fn check_size(
    digest: &Digest,
    declared: u64,
    actual: u64,
    needed_by: &str,
) -> Result<(), ArchiveError> {
    if declared == actual {
        return Ok(());
    }
    Err(ArchiveError::Size {
        digest: digest.clone(),
        declared,
        actual,
        needed_by: needed_by.to_owned(),
    })
}
