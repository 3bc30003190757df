//! Pull and push over the OCI distribution protocol: registry client, auth, ranged resumable downloads, uploads.
//!
//! - `client`: HTTP to one registry (Accept headers, error bodies, redirects
//!   that never carry `Authorization` to another host, retries).
//! - `auth`: `WWW-Authenticate` challenges, Bearer tokens and Basic.
//! - `body`: bounded reads of answers and the messages of error answers
//!   (below both `client` and `auth`).
//! - `credentials`: the `llmpm login` file the daemon reads.
//! - `download`: one blob as parallel Range parts with a resume journal,
//!   hashing the contiguous prefix as it grows; in-flight downloads shared.
//! - `pull` and `push`: a model's manifest and blobs, with Ollama's progress.
//!
//! Spec: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md>.

mod auth;
mod body;
mod client;
pub mod credentials;
mod download;
mod error;
mod pull;
mod push;

use std::time::Duration;

pub use error::TransferError;
pub use pull::{pull, Reporter};
pub use push::push;

/// Default size of one Range part of a blob download.
pub const DEFAULT_PART_SIZE: u64 = 64 * 1024 * 1024;
/// Default number of parts (of all blobs of one pull) fetched at once.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// How downloads behave; from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// Bytes per Range part.
    pub part_size: u64,
    /// Parts of one blob fetched at once.
    pub concurrency: usize,
    /// A part that delivers no byte for this long is restarted.
    pub stall_timeout: Duration,
    /// Attempts per request before a pull gives up (429, 5xx, broken connections).
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles, with jitter, up to 10 s.
    pub retry_base: Duration,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            stall_timeout: Duration::from_secs(30),
            max_attempts: 6,
            retry_base: Duration::from_millis(200),
        }
    }
}

/// The daemon's transfer machinery: pooled HTTP clients, options, and the
/// downloads in flight (shared by every pull). One per daemon, in `AppState`.
#[derive(Debug)]
pub struct Transfers {
    http: client::Http,
    options: TransferOptions,
    inflight: download::InFlight,
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
        })
    }

    /// The options in force.
    pub fn options(&self) -> &TransferOptions {
        &self.options
    }
}

/// Sleeps before retry `attempt` (1-based): exponential backoff with full
/// jitter between half and the whole delay, so many parts retrying at once
/// do not hit the registry together.
pub(crate) async fn backoff(base: Duration, attempt: u32) {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let cap = exp.min(Duration::from_secs(10));
    let jitter = 0.5 + fastrand::f64() * 0.5;
    tokio::time::sleep(cap.mul_f64(jitter)).await;
}
