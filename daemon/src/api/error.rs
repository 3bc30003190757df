//! `ApiError`: how any failure becomes an HTTP status and an `{"error": …}` body.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use llmpm_spec::api::ErrorResponse;

use crate::create::CreateError;
use crate::sched::SchedError;
use crate::store::StoreError;

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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::ModelNotFound(_) | StoreError::BlobNotFound(_) => {
                ApiError::NotFound(e.to_string())
            }
            StoreError::DigestMismatch { .. }
            | StoreError::SizeMismatch { .. }
            | StoreError::MissingLayer(_)
            | StoreError::Algorithm(_) => ApiError::BadRequest(e.to_string()),
            _ if is_disk_full(&e) => ApiError::InsufficientStorage(format!(
                "{}; free some space (`llmpm prune`, `llmpm rm`) and try again",
                chain(&e)
            )),
            _ => ApiError::internal(&e),
        }
    }
}

impl From<CreateError> for ApiError {
    fn from(e: CreateError) -> ApiError {
        match e {
            CreateError::Store(s) => s.into(),
            CreateError::BaseNotFound(_) => ApiError::NotFound(e.to_string()),
            other => ApiError::BadRequest(chain(&other)),
        }
    }
}

impl From<SchedError> for ApiError {
    fn from(e: SchedError) -> ApiError {
        match e {
            SchedError::Busy => ApiError::ServiceUnavailable(e.to_string()),
            // 500 as Ollama answers "model requires more memory than is
            // available": the request is well-formed, the machine (or its
            // configured budget) is what falls short, and clients treat it
            // as a server-side failure rather than a request to fix.
            SchedError::TooLarge { .. } => ApiError::Internal(e.to_string()),
            SchedError::Runner(_) | SchedError::Stopped => ApiError::internal(&e),
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
