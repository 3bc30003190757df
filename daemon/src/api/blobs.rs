//! `HEAD`/`POST /api/blobs/:digest`: upload a blob straight into the store, digest checked.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use futures_util::StreamExt;
use llmpm_spec::Digest;

use super::{ApiError, AppState};

/// How long a failed upload's remaining bytes are read before the error
/// answer goes anyway (a local client sends gigabytes in that time).
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

fn parse_digest(raw: &str) -> Result<Digest, ApiError> {
    raw.parse()
        .map_err(|e: llmpm_spec::DigestError| ApiError::BadRequest(e.to_string()))
}

pub async fn head_blob(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let d = parse_digest(&raw)?;
    if state.store.has_blob(&d) {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::NotFound(format!("blob `{d}` not found")))
    }
}

pub async fn post_blob(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let d = parse_digest(&raw)?;
    if state.store.has_blob(&d) {
        return Ok(StatusCode::OK);
    }
    let mut writer = state.store.blob_writer()?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("upload of `{d}` broke off: {e}")))?;
        // Writes are short; doing them inline keeps upload memory bounded.
        if let Err(e) = tokio::task::block_in_place(|| writer.write_sync(&chunk)) {
            // The partial blob goes now (a full disk gets its space back).
            drop(writer);
            // Then the rest of the upload is read and dropped before the
            // answer: a client still sending when the answer comes and the
            // connection closes sees only a broken pipe, not why.
            let rest = async { while let Some(Ok(_)) = stream.next().await {} };
            let _ = tokio::time::timeout(DRAIN_LIMIT, rest).await;
            return Err(e.into());
        }
    }
    let digest = tokio::task::block_in_place(|| writer.commit_sync(Some(&d)))?;
    tracing::info!(blob = %digest, "blob uploaded");
    Ok(StatusCode::CREATED)
}
