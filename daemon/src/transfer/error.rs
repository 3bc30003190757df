//! `TransferError`: every way a pull or push fails, each naming the registry, blob or model concerned.

use std::sync::Arc;

use llmpm_spec::Digest;

use crate::store::StoreError;

/// Why a pull or push failed. Nothing is stored under the model's name when it does.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The name is not a valid model name.
    #[error("invalid model name")]
    Name(#[from] llmpm_spec::NameError),
    /// A plain-HTTP registry without `--insecure`.
    #[error("`{0}` is plain HTTP; pass `--insecure` to allow it")]
    Insecure(String),
    /// The request never got an answer (DNS, connect, TLS, broken connection).
    #[error("cannot reach `{url}`")]
    Connect {
        /// What was requested.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an error status.
    #[error("registry answered {status} to {method} `{url}`: {message}")]
    Status {
        /// The method.
        method: String,
        /// What was requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The OCI error body, readable.
        message: String,
    },
    /// No such model (or tag) in the registry.
    #[error("model `{model}` not found in registry `{host}`: {message}")]
    NotFound {
        /// The model as the user named it.
        model: String,
        /// The registry.
        host: String,
        /// The registry's words.
        message: String,
    },
    /// Authentication failed or is needed.
    #[error("registry `{host}` refused access: {message}; if it needs a login, run `llmpm login {host}`")]
    Unauthorized {
        /// The registry.
        host: String,
        /// The registry's (or token server's) words.
        message: String,
    },
    /// The registry sent something that breaks the protocol or the manifest's promises.
    #[error("registry `{host}` sent an invalid answer: {message}")]
    Invalid {
        /// The registry.
        host: String,
        /// What is wrong.
        message: String,
    },
    /// A blob's bytes do not hash to its digest.
    #[error(
        "blob `{digest}` is corrupt: the bytes received hash to `{actual}`; nothing was stored"
    )]
    DigestMismatch {
        /// What the manifest says.
        digest: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A blob is not the size its descriptor declares.
    #[error("blob `{digest}` is {actual} bytes at the registry, but the manifest declares {declared}; nothing was stored")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// What the manifest says.
        declared: u64,
        /// What the registry has (at least).
        actual: u64,
    },
    /// A part delivered nothing for the stall timeout.
    #[error("no data for {secs} s")]
    Stalled {
        /// The stall timeout.
        secs: u64,
    },
    /// The body ended before the bytes asked for arrived.
    #[error("the connection ended after {got} of {want} bytes")]
    ShortBody {
        /// Received.
        got: u64,
        /// Asked for.
        want: u64,
    },
    /// Retries did not help.
    #[error("giving up on `{what}` after {attempts} attempts")]
    Exhausted {
        /// What was being fetched.
        what: String,
        /// How many tries.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<TransferError>,
    },
    /// The client went away or the daemon is stopping.
    #[error("the transfer was cancelled")]
    Cancelled,
    /// A compressed layer does not decompress.
    #[error("layer `{digest}` does not decompress as zstd")]
    Decompress {
        /// The layer.
        digest: Digest,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local file operation failed.
    #[error("cannot {op} `{}`", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The credentials file is unreadable.
    #[error("cannot read the credentials file `{}`; fix or delete it (`llmpm logout`)", path.display())]
    Credentials {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The trust policy requires a signature that does not verify.
    #[error("refusing `{model}`: its signature does not verify ({reason}); trust_policy `{scope}` is `require`, so nothing was stored")]
    Untrusted {
        /// The model.
        model: String,
        /// The policy entry's scope.
        scope: String,
        /// Why.
        reason: String,
    },
    /// The same failure, shared by every pull that waited on one download.
    #[error(transparent)]
    Shared(Arc<TransferError>),
}

impl TransferError {
    /// Whether trying again may help: broken connections, stalls, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransferError::Connect { .. }
            | TransferError::Stalled { .. }
            | TransferError::ShortBody { .. } => true,
            TransferError::Status { status, .. } => *status == 429 || *status >= 500,
            TransferError::Shared(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Whether this is (or wraps) a cancellation.
    pub fn is_cancelled(&self) -> bool {
        match self {
            TransferError::Cancelled => true,
            TransferError::Shared(e) => e.is_cancelled(),
            _ => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        TransferError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}
