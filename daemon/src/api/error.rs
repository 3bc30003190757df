//! `ApiError`: how any failure becomes an HTTP status and an `{"error": …}`
//! body. Library errors say what kind of failure they are ([`Classify`]);
//! one `From` turns any of them into its status and message.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use llmpm_spec::api::ErrorResponse;

use crate::create::CreateError;
use crate::llm::client::ClientError;
use crate::llm::options::OptionsError;
use crate::llm::LlmError;
use crate::sched::SchedError;
use crate::store::StoreError;
use crate::transfer::TransferError;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is wrong; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// 401: a key is required.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: refused (DNS-rebinding guard).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such model or blob.
    #[error("{0}")]
    NotFound(String),
    /// 503: too many requests are waiting; try again (sent with `Retry-After`).
    #[error("{0}")]
    ServiceUnavailable(String),
    /// 507: the disk is full.
    #[error("{0}")]
    InsufficientStorage(String),
    /// 500: our fault; details are logged.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A 500 from any error: the whole chain is logged and sent, since the
    /// client is the local user who owns the store and needs the cause.
    pub fn internal(e: &(dyn std::error::Error + 'static)) -> ApiError {
        let msg = chain(e);
        tracing::error!(error = %msg, "internal error");
        ApiError::Internal(msg)
    }
}

pub use crate::errors::chain;

fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28) {
                return true;
            }
        }
        cur = c.source();
    }
    false
}

/// The kind of failure a library error is, which decides its status and
/// which of its texts the client reads.
#[derive(Debug)]
pub enum Class {
    /// 400 with the error's message.
    BadRequest,
    /// 400 with the error and its causes.
    BadRequestWithCauses,
    /// 401 with the error's message.
    Unauthorized,
    /// 404 with the error's message.
    NotFound,
    /// 503 with the error's message (sent with `Retry-After`).
    Busy,
    /// 507: the error and its causes, and what to free.
    DiskFull,
    /// 500 with the error's message and nothing logged: the request is
    /// fine, the machine (or its configured budget) falls short.
    Exhausted,
    /// 500: our fault; the error and its causes are logged and sent.
    Internal,
    /// As an inner error is answered.
    As(ApiError),
}

/// A library error that knows its [`Class`]; every such error becomes an
/// [`ApiError`] through the one `From` below.
pub trait Classify: std::error::Error + 'static {
    /// What kind of failure this is.
    fn class(&self) -> Class;
}

/// The answer for `e`.
fn answer<E: Classify>(e: &E) -> ApiError {
    match e.class() {
        Class::BadRequest => ApiError::BadRequest(e.to_string()),
        Class::BadRequestWithCauses => ApiError::BadRequest(chain(e)),
        Class::Unauthorized => ApiError::Unauthorized(e.to_string()),
        Class::NotFound => ApiError::NotFound(e.to_string()),
        Class::Busy => ApiError::ServiceUnavailable(e.to_string()),
        Class::DiskFull => ApiError::InsufficientStorage(format!(
            "{}; free some space (`llmpm prune`, `llmpm rm`) and try again",
            chain(e)
        )),
        Class::Exhausted => ApiError::Internal(e.to_string()),
        Class::Internal => ApiError::internal(e),
        Class::As(answer) => answer,
    }
}

impl<E: Classify> From<E> for ApiError {
    fn from(e: E) -> ApiError {
        answer(&e)
    }
}

impl Classify for StoreError {
    fn class(&self) -> Class {
        match self {
            StoreError::ModelNotFound(_) | StoreError::BlobNotFound(_) => Class::NotFound,
            StoreError::DigestMismatch { .. }
            | StoreError::SizeMismatch { .. }
            | StoreError::MissingLayer(_)
            | StoreError::Algorithm(_) => Class::BadRequest,
            _ if is_disk_full(self) => Class::DiskFull,
            _ => Class::Internal,
        }
    }
}

impl Classify for CreateError {
    fn class(&self) -> Class {
        match self {
            CreateError::Store(s) => Class::As(answer(s)),
            CreateError::BaseNotFound(_) => Class::NotFound,
            _ => Class::BadRequestWithCauses,
        }
    }
}

impl Classify for SchedError {
    fn class(&self) -> Class {
        match self {
            SchedError::Busy => Class::Busy,
            // 500 as Ollama answers "model requires more memory than is
            // available": the request is well-formed, the machine (or its
            // configured budget) is what falls short, and clients treat it
            // as a server-side failure rather than a request to fix.
            SchedError::TooLarge { .. } => Class::Exhausted,
            SchedError::Runner(_) | SchedError::Stopped => Class::Internal,
        }
    }
}

impl Classify for TransferError {
    fn class(&self) -> Class {
        match self {
            TransferError::Name(_) => Class::BadRequestWithCauses,
            TransferError::Store(s) => Class::As(answer(s)),
            TransferError::NotFound { .. } => Class::NotFound,
            TransferError::Unauthorized { .. } => Class::Unauthorized,
            TransferError::Insecure(_) => Class::BadRequest,
            // The message is the whole story (which policy, why); no causes to chain.
            TransferError::Untrusted { .. } => Class::Exhausted,
            // The pull that holds the last share answers as the failure
            // itself; one that still shares it with other waiters, as a 500.
            TransferError::Shared(inner) if std::sync::Arc::strong_count(inner) == 1 => {
                Class::As(answer(&**inner))
            }
            _ => Class::Internal,
        }
    }
}

impl Classify for crate::registry::archive::ArchiveError {
    fn class(&self) -> Class {
        match self {
            Self::Store(s) => Class::As(answer(s)),
            e if e.is_input() => Class::BadRequestWithCauses,
            _ => Class::Internal,
        }
    }
}

impl Classify for crate::trust::TrustError {
    fn class(&self) -> Class {
        use crate::trust::TrustError;
        match self {
            TrustError::Store(s) => Class::As(answer(s)),
            TrustError::Key(_) | TrustError::Layout(_) | TrustError::PolicyKey(_) => {
                Class::BadRequestWithCauses
            }
        }
    }
}

impl Classify for crate::trust::ExportError {
    fn class(&self) -> Class {
        use crate::trust::ExportError;
        match self {
            ExportError::Store(s) => Class::As(answer(s)),
            ExportError::Io { .. } => Class::Internal,
            _ => Class::BadRequest,
        }
    }
}

impl Classify for ClientError {
    fn class(&self) -> Class {
        Class::Internal
    }
}

impl Classify for OptionsError {
    fn class(&self) -> Class {
        Class::BadRequest
    }
}

impl Classify for LlmError {
    fn class(&self) -> Class {
        match self {
            LlmError::Store(s) => Class::As(answer(s)),
            LlmError::NoWeights(_)
            | LlmError::Adapter(_)
            | LlmError::Template(_)
            | LlmError::Render(_)
            | LlmError::RequestTemplate(_)
            | LlmError::Unsupported { .. }
            | LlmError::Request(_)
            | LlmError::TemplateWithoutSuffix
            | LlmError::Options(_) => Class::BadRequest,
            LlmError::Runner(_) | LlmError::Task(_) => Class::Internal,
        }
    }
}

/// Seconds a client is told to wait after a 503: the queue drains as
/// generations finish, which takes seconds, not minutes.
const RETRY_AFTER_SECS: &str = "2";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorResponse {
            error: self.to_string(),
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return (
                status,
                [(header::RETRY_AFTER, RETRY_AFTER_SECS)],
                Json(body),
            )
                .into_response();
        }
        (status, Json(body)).into_response()
    }
}
