//! NDJSON progress streams, and the rule for errors that happen after the headers were sent.
//!
//! An error before the first line is an HTTP status with `{"error"}`; once a
//! line has been sent the status is already 200, so the error becomes the
//! last line, `{"error": "…"}`, which Ollama's clients raise as an exception.

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use llmpm_spec::api::{ErrorResponse, ProgressResponse};
use tokio::sync::mpsc;

use super::error::ApiError;

/// The sending half handed to the work that reports progress.
pub type ProgressTx = mpsc::Sender<Result<ProgressResponse, ApiError>>;

/// Answers with the channel's items: streamed as NDJSON, or the last one as one JSON body.
pub async fn respond(
    mut rx: mpsc::Receiver<Result<ProgressResponse, ApiError>>,
    stream: bool,
) -> Response {
    if !stream {
        let mut last = None;
        while let Some(item) = rx.recv().await {
            match item {
                Ok(p) => last = Some(p),
                Err(e) => return e.into_response(),
            }
        }
        return match last {
            Some(p) => Json(p).into_response(),
            None => {
                ApiError::Internal("the operation ended without a result".into()).into_response()
            }
        };
    }
    // Hold the first item back so an immediate error still gets a real status.
    let first = match rx.recv().await {
        Some(Err(e)) => return e.into_response(),
        Some(Ok(p)) => p,
        None => {
            return ApiError::Internal("the operation ended without a result".into())
                .into_response()
        }
    };
    let lines = futures_util::stream::unfold(
        (Some(first), rx, false),
        |(pending, mut rx, done)| async move {
            if done {
                return None;
            }
            let item = match pending {
                Some(p) => Ok(p),
                None => rx.recv().await?,
            };
            let (line, end) = match item {
                Ok(p) => (serde_json::to_vec(&p).unwrap_or_default(), false),
                Err(e) => (
                    serde_json::to_vec(&ErrorResponse {
                        error: e.to_string(),
                    })
                    .unwrap_or_default(),
                    true,
                ),
            };
            let mut line = line;
            line.push(b'\n');
            Some((Ok::<_, std::convert::Infallible>(line), (None, rx, end)))
        },
    );
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}
