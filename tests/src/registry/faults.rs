//! Fault injection for [`super::TestRegistry`]: what goes wrong, for which requests, and how many times.
//!
//! Faults are set at runtime (`registry.faults().set(…)`) and apply to the
//! requests that arrive afterwards. A fault with a `times` budget disarms
//! itself once spent, so "fail twice, then work" is one line in a test.

use std::sync::Mutex;
use std::time::Duration;

/// A `times` budget that never runs out.
pub const ALWAYS: u32 = u32::MAX;

/// One thing the registry does wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Closes the connection after `after` body bytes of a blob GET
    /// (`digest: None`: any blob), for the first `times` matching requests.
    DropAfter {
        /// The blob, or any.
        digest: Option<String>,
        /// Body bytes sent before the connection drops.
        after: u64,
        /// How many requests it hits.
        times: u32,
    },
    /// Serves every byte of `digest` inverted (same length, wrong content), every time.
    WrongBytes {
        /// The blob.
        digest: String,
    },
    /// Answers `status` (429, 503, …) with `Retry-After` when given, for the
    /// first `times` requests whose path contains `path`.
    Status {
        /// Substring of the request path (`/blobs/`, a digest, `/manifests/`).
        path: String,
        /// The status code.
        status: u16,
        /// Seconds for `Retry-After`.
        retry_after: Option<u32>,
        /// How many requests it hits.
        times: u32,
    },
    /// Every `/v2/` request needs a Bearer token: a 401 with a
    /// `WWW-Authenticate: Bearer realm=…/token,service="test",scope=…`
    /// challenge otherwise. `/token` checks Basic `credentials` when set.
    BearerAuth {
        /// `(user, password)` that `/token` demands; `None` serves anonymous tokens.
        credentials: Option<(String, String)>,
    },
    /// Blob GETs answer `307` to the second listener (`localhost:PORT2`),
    /// which serves the bytes and records whether `Authorization` came along.
    RedirectBlobs,
    /// Stops sending for `pause` after `after` body bytes of a blob GET
    /// (`digest: None`: any blob), for the first `times` matching requests.
    Stall {
        /// The blob, or any.
        digest: Option<String>,
        /// Body bytes sent before the pause.
        after: u64,
        /// How long nothing is sent.
        pause: Duration,
        /// How many requests it hits.
        times: u32,
    },
    /// Declares `Content-Length: declared` on blob GETs of `digest` while
    /// sending the blob's real bytes (more or fewer than declared).
    LyingContentLength {
        /// The blob.
        digest: String,
        /// The length announced.
        declared: u64,
    },
    /// Manifest and blob GETs whose path contains `path` answer 200 with a
    /// chunked body of spaces that never ends (no `Content-Length`).
    EndlessBody {
        /// Substring of the request path.
        path: String,
    },
}

#[derive(Debug)]
struct Armed {
    fault: Fault,
    left: u32,
}

/// The faults in force; shared by the registry's handlers and the test.
#[derive(Debug, Default)]
pub struct Faults {
    armed: Mutex<Vec<Armed>>,
}

/// What a blob GET must do wrong, decided once when the request arrives.
#[derive(Debug, Clone, Default)]
pub(crate) struct BlobPlan {
    pub drop_after: Option<u64>,
    pub stall: Option<(u64, Duration)>,
    pub wrong_bytes: bool,
    pub declared_len: Option<u64>,
}

impl Faults {
    /// Arms a fault (in addition to those already armed).
    pub fn set(&self, fault: Fault) {
        let left = match &fault {
            Fault::DropAfter { times, .. }
            | Fault::Status { times, .. }
            | Fault::Stall { times, .. } => *times,
            _ => ALWAYS,
        };
        self.lock().push(Armed { fault, left });
    }

    /// Disarms every fault.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The faults still armed (spent ones are gone).
    pub fn armed(&self) -> Vec<Fault> {
        self.lock().iter().map(|a| a.fault.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Armed>> {
        // A test that panicked while holding the lock must not hide the real failure.
        self.armed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one use of the first matching fault and keeps the rest.
    fn take<T>(&self, mut pick: impl FnMut(&Fault) -> Option<T>) -> Option<T> {
        let mut armed = self.lock();
        let i = armed.iter().position(|a| pick(&a.fault).is_some())?;
        let out = pick(&armed[i].fault);
        if armed[i].left != ALWAYS {
            armed[i].left -= 1;
            if armed[i].left == 0 {
                armed.remove(i);
            }
        }
        out
    }

    fn any(&self, pick: impl Fn(&Fault) -> bool) -> bool {
        self.lock().iter().any(|a| pick(&a.fault))
    }

    /// `(status, retry_after)` when a status fault hits this path.
    pub(crate) fn status_for(&self, path: &str) -> Option<(u16, Option<u32>)> {
        self.take(|f| match f {
            Fault::Status {
                path: p,
                status,
                retry_after,
                ..
            } if path.contains(p.as_str()) => Some((*status, *retry_after)),
            _ => None,
        })
    }

    /// `Some(credentials)` when Bearer auth is demanded.
    pub(crate) fn bearer(&self) -> Option<Option<(String, String)>> {
        self.lock().iter().find_map(|a| match &a.fault {
            Fault::BearerAuth { credentials } => Some(credentials.clone()),
            _ => None,
        })
    }

    pub(crate) fn redirect_blobs(&self) -> bool {
        self.any(|f| matches!(f, Fault::RedirectBlobs))
    }

    pub(crate) fn endless(&self, path: &str) -> bool {
        self.any(|f| matches!(f, Fault::EndlessBody { path: p } if path.contains(p.as_str())))
    }

    /// What a GET of blob `digest` does wrong.
    pub(crate) fn blob_plan(&self, digest: &str) -> BlobPlan {
        let hits = |d: &Option<String>| d.as_deref().is_none_or(|d| d == digest);
        BlobPlan {
            drop_after: self.take(|f| match f {
                Fault::DropAfter {
                    digest: d, after, ..
                } if hits(d) => Some(*after),
                _ => None,
            }),
            stall: self.take(|f| match f {
                Fault::Stall {
                    digest: d,
                    after,
                    pause,
                    ..
                } if hits(d) => Some((*after, *pause)),
                _ => None,
            }),
            wrong_bytes: self.any(|f| matches!(f, Fault::WrongBytes { digest: d } if d == digest)),
            declared_len: self.lock().iter().find_map(|a| match &a.fault {
                Fault::LyingContentLength {
                    digest: d,
                    declared,
                } if d == digest => Some(*declared),
                _ => None,
            }),
        }
    }
}
