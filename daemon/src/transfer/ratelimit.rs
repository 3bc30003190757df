//! Bandwidth limits: a token bucket in bytes per second, shared by every part of every transfer that holds it.
//!
//! The bucket may go into debt: a taker asking for more than is there takes
//! it all the same and sleeps until the debt is paid back at the rate. So a
//! chunk larger than the bucket never deadlocks, and takers that come while
//! the bucket is in debt queue behind it, which keeps the sum of everyone's
//! throughput at the rate however many parts and pulls share it. A full
//! bucket holds a tenth of a second of bytes (at least 64 KiB): an idle
//! link can burst that much, no more.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The smallest burst, so a tiny rate still moves whole network chunks.
const MIN_BURST: f64 = 64.0 * 1024.0;

/// The bucket's arithmetic, on a clock the caller passes in.
#[derive(Debug, Clone)]
struct Bucket {
    /// Bytes per second.
    rate: f64,
    /// The most tokens it holds.
    burst: f64,
    /// Tokens now; negative while in debt.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
}

impl Bucket {
    fn new(rate: u64, now: Instant) -> Bucket {
        let rate = rate.max(1) as f64;
        let burst = (rate / 10.0).max(MIN_BURST);
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes `n` bytes' worth at `now`; how long the taker must wait before
    /// sending them (zero when the bucket held enough).
    fn take(&mut self, n: u64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// One limit (bytes per second), shared by whoever holds a clone of its `Arc`.
#[derive(Debug)]
pub struct RateLimit {
    bucket: Mutex<Bucket>,
}

impl RateLimit {
    /// A limit of `bytes_per_sec`.
    pub fn new(bytes_per_sec: u64) -> Arc<RateLimit> {
        Arc::new(RateLimit {
            bucket: Mutex::new(Bucket::new(bytes_per_sec, Instant::now())),
        })
    }

    /// The limit in bytes per second.
    pub fn rate(&self) -> u64 {
        self.lock().rate as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until `n` bytes may pass.
    pub async fn acquire(&self, n: usize) {
        let wait = self.lock().take(n as u64, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The limits one transfer obeys: the daemon's, and its own (`--limit-rate`).
/// Bytes pass when every limit lets them.
#[derive(Debug, Clone, Default)]
pub struct Limits(Vec<Arc<RateLimit>>);

impl Limits {
    /// The daemon's limit (if any) and the transfer's own (if any).
    pub fn new(shared: Option<&Arc<RateLimit>>, own: Option<u64>) -> Limits {
        let mut v: Vec<Arc<RateLimit>> = shared.into_iter().cloned().collect();
        v.extend(own.filter(|r| *r > 0).map(RateLimit::new));
        Limits(v)
    }

    /// Waits until `n` bytes may pass every limit.
    pub async fn acquire(&self, n: usize) {
        // Each bucket is charged at once and the waits overlap: the slowest
        // limit sets the pace, and the others are not charged a second time.
        let now = Instant::now();
        let wait = self
            .0
            .iter()
            .map(|l| l.lock().take(n as u64, now))
            .max()
            .unwrap_or(Duration::ZERO);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Whether any limit applies.
    pub fn is_limited(&self) -> bool {
        !self.0.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    /// Whether `d` is `secs` to the microsecond (the arithmetic is in f64).
    fn close(d: Duration, secs: f64) -> bool {
        (d.as_secs_f64() - secs).abs() < 1e-6
    }

    #[test]
    fn a_full_bucket_lets_its_burst_through_then_paces_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10 * MB, t0);
        // The burst is a tenth of a second's worth.
        assert_eq!(b.take(MB, t0), Duration::ZERO);
        // The next megabyte is owed: a tenth of a second.
        assert!(close(b.take(MB, t0), 0.1));
        // Another taker at the same instant queues behind the debt.
        assert!(close(b.take(MB, t0), 0.2));
        // 200 ms later the debt is paid and the bucket is empty, not full.
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(b.take(0, t1), Duration::ZERO);
        assert!(b.tokens.abs() < 1.0, "{}", b.tokens);
    }

    #[test]
    fn the_rate_holds_over_many_takes_whatever_the_chunk_size() {
        // 1 GiB at 50 MiB/s in chunks of 16 KiB, each sent the moment it is
        // allowed: the last is allowed once 1 GiB less the 5 MiB burst is
        // paid for, 1019/50 s.
        let t0 = Instant::now();
        let mut b = Bucket::new(50 * MB, t0);
        let mut now = t0;
        let chunk = 16 * 1024;
        for _ in 0..(1024 * MB / chunk) {
            now += b.take(chunk, now);
        }
        let secs = (now - t0).as_secs_f64();
        assert!((secs - 20.38).abs() < 0.001, "{secs}");
    }

    #[test]
    fn an_idle_bucket_refills_only_up_to_its_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::new(256 * 1024, t0);
        let later = t0 + Duration::from_secs(3600);
        // An hour idle still allows only the 64 KiB minimum burst at once.
        assert_eq!(b.take(64 * 1024, later), Duration::ZERO);
        assert!(close(b.take(64 * 1024, later), 0.25));
    }

    #[test]
    fn a_clock_that_goes_back_does_not_mint_tokens() {
        let t1 = Instant::now() + Duration::from_secs(10);
        let mut b = Bucket::new(MB, t1);
        b.take(64 * 1024, t1);
        let before = b.tokens;
        b.take(0, t1 - Duration::from_secs(5));
        assert!((b.tokens - before).abs() < f64::EPSILON);
        // Time then runs on from the later instant, not the earlier one.
        let w = b.take(MB, t1);
        assert!(w > Duration::from_millis(900), "{w:?}");
    }

    #[test]
    fn the_slowest_limit_sets_the_pace() {
        let t0 = Instant::now();
        let mut fast = Bucket::new(100 * MB, t0);
        let mut slow = Bucket::new(MB, t0);
        let n = 2 * MB;
        let w = fast.take(n, t0).max(slow.take(n, t0));
        // 2 MiB against a 1 MiB/s bucket holding a tenth of a second.
        assert!(close(w, 1.9), "{w:?}");
    }
}
