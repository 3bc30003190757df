//! Which idle runners a load evicts: the least recently used first, and
//! only as many as it takes to fit the count and the memory budget.

use std::time::Instant;

/// What `plan` decided for a load.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Load now, after unloading these runners (indexes into the candidates).
    Load {
        /// Idle runners to unload first, least recently used first.
        evict: Vec<usize>,
    },
    /// Not now: the runners that would have to go are serving.
    Wait,
    /// Never: more than the whole budget.
    Never {
        /// The budget, bytes.
        budget: u64,
    },
}

/// A loaded runner as `plan` weighs it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// Its estimate, bytes.
    pub size: u64,
    /// Whether it could be unloaded now.
    pub idle: bool,
    /// When it last served a request.
    pub last_used: Instant,
}

/// Decides how a load of `need` bytes fits among `loaded` runners: within
/// `max_loaded` runners and `budget` bytes (`None`: unknown, count only),
/// by unloading the idle ones least recently used first, and only as many
/// as it takes; if even unloading every idle one is not enough, nothing is
/// unloaded and the load waits.
pub fn plan(loaded: &[Candidate], need: u64, max_loaded: usize, budget: Option<u64>) -> Plan {
    if let Some(b) = budget {
        if need > b {
            return Plan::Never { budget: b };
        }
    }
    let mut count = loaded.len();
    let mut used: u64 = loaded.iter().map(|c| c.size).sum();
    let fits = |count: usize, used: u64| {
        count < max_loaded.max(1) && budget.is_none_or(|b| used.saturating_add(need) <= b)
    };
    let mut idle: Vec<usize> = (0..loaded.len()).filter(|&i| loaded[i].idle).collect();
    idle.sort_by_key(|&i| loaded[i].last_used);
    let mut evict = Vec::new();
    for i in idle {
        if fits(count, used) {
            break;
        }
        evict.push(i);
        count -= 1;
        used = used.saturating_sub(loaded[i].size);
    }
    if fits(count, used) {
        Plan::Load { evict }
    } else {
        Plan::Wait
    }
}
