//! Pull and push over the OCI distribution protocol: registry client, auth, ranged resumable downloads, uploads.
//!
//! - `client`: HTTP to one registry (Accept headers, error bodies, redirects
//!   that never carry `Authorization` to another host, retries).
//! - `auth`: `WWW-Authenticate` challenges, Bearer tokens and Basic.
//! - `body`: bounded reads of answers and the messages of error answers
//!   (below both `client` and `auth`).
//! - `credentials`: the `llmpm login` file the daemon reads.
//! - `options`: how transfers behave (part size, concurrency, retries) and
//!   the retry backoff, below `client` and `download`.
//! - `download`: one blob as parallel Range parts with a resume journal,
//!   hashing the contiguous prefix as it grows; in-flight downloads shared.
//! - `manifest`: one manifest fetched, bounded and its digest checked.
//! - `mirrors`: the mirrors configured per upstream registry, and the
//!   sources one pull tries in order.
//! - `ratelimit`: the token buckets that bound download and upload rates.
//! - `pull` and `push`: a model's manifest and blobs, with Ollama's progress.
//! - `referrers`: a manifest's signature artifacts at the registry (the
//!   referrers API or its fallback tag), checked against the trust policy.
//!
//! Spec: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md>.

mod auth;
mod body;
mod client;
pub mod credentials;
mod download;
mod error;
mod manifest;
mod mirrors;
mod options;
mod pull;
mod push;
pub mod ratelimit;
mod referrers;

use std::sync::Arc;

pub use error::TransferError;
pub use mirrors::Mirrors;
pub use options::{TransferOptions, DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE};
pub use pull::{index_entry, pull, Reporter};
pub use push::push;

/// The daemon's transfer machinery: pooled HTTP clients, options, and the
/// downloads in flight (shared by every pull). One per daemon, in `AppState`.
#[derive(Debug)]
pub struct Transfers {
    http: client::Http,
    options: TransferOptions,
    inflight: download::InFlight,
    trust: crate::trust::TrustPolicy,
    mirrors: Mirrors,
    /// The daemon's download limit, shared by every pull.
    download_limit: Option<Arc<ratelimit::RateLimit>>,
    /// The daemon's upload limit, shared by every push.
    upload_limit: Option<Arc<ratelimit::RateLimit>>,
}

impl Transfers {
    /// Builds the HTTP clients for `options`.
    pub fn new(options: TransferOptions) -> Result<Transfers, TransferError> {
        let http =
            client::Http::new(options.stall_timeout).map_err(|source| TransferError::Connect {
                url: "(building the HTTP client)".into(),
                source,
            })?;
        Ok(Transfers {
            http,
            options,
            inflight: download::InFlight::default(),
            trust: crate::trust::TrustPolicy::default(),
            mirrors: Mirrors::default(),
            download_limit: None,
            upload_limit: None,
        })
    }

    /// The same, checking pulls against `policy` (`trust_policy` in the config).
    pub fn with_trust_policy(mut self, policy: crate::trust::TrustPolicy) -> Transfers {
        self.trust = policy;
        self
    }

    /// The same, trying `mirrors` before each upstream (`registry_mirrors`).
    pub fn with_mirrors(mut self, mirrors: Mirrors) -> Transfers {
        self.mirrors = mirrors;
        self
    }

    /// The same, with the daemon's download and upload limits in bytes per
    /// second (`max_download_speed`, `max_upload_speed`), each one bucket
    /// shared by every transfer.
    pub fn with_rate_limits(mut self, download: Option<u64>, upload: Option<u64>) -> Transfers {
        self.download_limit = download.filter(|r| *r > 0).map(ratelimit::RateLimit::new);
        self.upload_limit = upload.filter(|r| *r > 0).map(ratelimit::RateLimit::new);
        self
    }

    /// The options in force.
    pub fn options(&self) -> &TransferOptions {
        &self.options
    }
}
