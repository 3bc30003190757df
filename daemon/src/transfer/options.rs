//! How transfers behave: part size, concurrency, stall timeout and retries (from the daemon's configuration), and the backoff between retries.

use std::time::Duration;

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

/// Sleeps before retry `attempt` (1-based): exponential backoff with full
/// jitter between half and the whole delay, so many parts retrying at once
/// do not hit the registry together.
pub(super) async fn backoff(base: Duration, attempt: u32) {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let cap = exp.min(Duration::from_secs(10));
    let jitter = 0.5 + fastrand::f64() * 0.5;
    tokio::time::sleep(cap.mul_f64(jitter)).await;
}
