//! OCI archives over the API (llmpm additions): `POST /api/export` with `format: "oci-archive"` answers the tar; `POST /api/import` takes one as its body.
//!
//! `/api/export` without `format` stays what `llmpm export` uses (a model's
//! files written to a directory, `signing.rs`); with it the answer is the
//! archive itself, `application/x-tar`, with its exact `Content-Length`.
//! `/api/import` reads the tar as the request body streams in (never
//! buffered whole) and answers one JSON object when the models are visible.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::TryStreamExt;
use llmpm_spec::api::{ExportRequest, ImportResponse, OCI_ARCHIVE};
use serde::Deserialize;

use super::models::{blocking, parse_name};
use super::{ApiError, AppState};
use crate::registry::archive::{self, LoadOptions};

/// `POST /api/export` with `format: "oci-archive"`: the archive of `model` and `models`.
pub async fn save(state: AppState, req: ExportRequest) -> Result<Response, ApiError> {
    if req.format.as_deref() != Some(OCI_ARCHIVE) {
        return Err(ApiError::BadRequest(format!(
            "`format` must be `{OCI_ARCHIVE}` (or left out, with `path`, to write a model's files to a directory)"
        )));
    }
    if !req.path.is_empty() {
        return Err(ApiError::BadRequest(
            "`path` is not used with `format: \"oci-archive\"`: the archive is the answer's body"
                .into(),
        ));
    }
    let mut names = Vec::new();
    for raw in std::iter::once(&req.model)
        .filter(|m| !m.is_empty())
        .chain(&req.models)
    {
        names.push(parse_name(raw)?);
    }
    if names.is_empty() {
        return Err(ApiError::BadRequest(
            "name the models to save in `models` (or `model`)".into(),
        ));
    }
    let store = state.store.clone();
    let plan = blocking(move || Ok(archive::plan(&store, &names)?)).await?;
    tracing::info!(models = ?plan.names, bytes = plan.len, "saving an archive");
    let len = plan.len;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(plan.into_stream()),
    )
        .into_response())
}

/// `/api/import`'s query.
#[derive(Debug, Deserialize)]
pub struct ImportQuery {
    /// The name for the archive's one model, over the name it carries.
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/import`: the body is an OCI archive.
pub async fn import(
    State(state): State<AppState>,
    Query(q): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ImportResponse>, ApiError> {
    let name = match q.name.as_deref().filter(|n| !n.is_empty()) {
        Some(n) => Some(parse_name(n)?),
        None => None,
    };
    let len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::other(format!("the upload broke off: {e}")));
    let mut reader = tokio_util::io::StreamReader::new(stream);
    let res = archive::load(&state.store, &mut reader, LoadOptions { name, len }).await;
    if res.is_err() {
        // Read the rest of the upload before answering: a client still
        // sending when the connection closes sees a broken pipe instead of
        // the reason the archive was refused.
        let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
    }
    let loaded = res?;
    Ok(Json(ImportResponse {
        models: loaded.models.iter().map(ToString::to_string).collect(),
        blobs_written: loaded.blobs_written,
        blobs_present: loaded.blobs_present,
        bytes_written: loaded.bytes_written,
    }))
}
