//! [`Lease`]: a request's hold on a ready runner, and the handle it gives out.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::Msg;
use crate::llm::{Endpoint, Runner};

/// A request's hold on a ready runner; the runner is not unloaded while a
/// lease on it, or a handle it gave out, exists. When the last of them
/// goes, the request is over for the scheduler.
#[derive(Debug)]
pub struct Lease {
    runner: Runner,
    load_duration: u64,
}

/// Tells the scheduler that a request ended, when the last handle goes.
#[derive(Debug)]
struct Release {
    id: u64,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Release { id: self.id });
    }
}

impl Lease {
    /// A lease on runner `id`, reached at `endpoint`.
    pub(super) fn new(
        id: u64,
        endpoint: Arc<Endpoint>,
        load_duration: u64,
        tx: mpsc::UnboundedSender<Msg>,
    ) -> Lease {
        Lease {
            runner: Runner::new(endpoint, Arc::new(Release { id, tx })),
            load_duration,
        }
    }

    /// The runner: tokenize, complete, embed. A clone (or a generation
    /// from it) holds the runner like the lease does.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Nanoseconds spent loading the runner for this request (0 when it was loaded).
    pub fn load_duration(&self) -> u64 {
        self.load_duration
    }
}
