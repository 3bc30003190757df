//! The eviction plan and the "forever" time, without a scheduler task.

use std::time::{Duration, Instant, SystemTime};

use super::plan::{plan, Candidate, Plan};
use super::task::far_future;

fn c(size: u64, idle: bool, age_s: u64, now: Instant) -> Candidate {
    Candidate {
        size,
        idle,
        last_used: now - Duration::from_secs(age_s),
    }
}

#[test]
fn plans() {
    let now = Instant::now();
    // Room: load without evicting.
    assert_eq!(plan(&[], 10, 3, Some(100)), Plan::Load { evict: vec![] });
    assert_eq!(plan(&[], 10, 3, None), Plan::Load { evict: vec![] });
    // More than the whole budget: never.
    assert_eq!(plan(&[], 101, 3, Some(100)), Plan::Never { budget: 100 });
    // Count: the least recently used idle one goes.
    let loaded = [c(1, true, 5, now), c(1, true, 50, now), c(1, true, 1, now)];
    assert_eq!(plan(&loaded, 1, 3, None), Plan::Load { evict: vec![1] });
    // A serving one is never chosen, even when it is the oldest.
    let loaded = [c(1, false, 99, now), c(1, true, 5, now)];
    assert_eq!(plan(&loaded, 1, 2, None), Plan::Load { evict: vec![1] });
    // All serving: wait.
    let loaded = [c(1, false, 9, now), c(1, false, 5, now)];
    assert_eq!(plan(&loaded, 1, 2, None), Plan::Wait);
    // Memory: evict as many idle ones as it takes, oldest first.
    let loaded = [
        c(40, true, 1, now),
        c(30, true, 9, now),
        c(20, true, 5, now),
    ];
    assert_eq!(
        plan(&loaded, 40, 9, Some(100)),
        Plan::Load { evict: vec![1] }
    );
    assert_eq!(
        plan(&loaded, 75, 9, Some(100)),
        Plan::Load {
            evict: vec![1, 2, 0]
        }
    );
    // Not enough even after every idle one: evict nothing, wait.
    let loaded = [c(60, false, 9, now), c(30, true, 5, now)];
    assert_eq!(plan(&loaded, 50, 9, Some(100)), Plan::Wait);
}

#[test]
fn forever_reads_as_far_future() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let years = far_future(now)
        .duration_since(now)
        .map(|d| d.as_secs() / 31_557_600)
        .unwrap_or(0);
    assert_eq!(years, 292);
}
