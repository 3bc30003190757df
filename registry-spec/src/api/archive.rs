//! `POST /api/import` (`llmpm load`): the answer to an OCI archive sent as the request body.

use serde::{Deserialize, Serialize};

/// `format` of an [`super::ExportRequest`] that asks for an OCI image-layout tar.
pub const OCI_ARCHIVE: &str = "oci-archive";

/// The answer to `POST /api/import`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportResponse {
    /// The models now in the store, by full name.
    pub models: Vec<String>,
    /// Blobs written.
    pub blobs_written: u64,
    /// Blobs the store had already (checked, not written again).
    pub blobs_present: u64,
    /// Bytes written.
    pub bytes_written: u64,
}
