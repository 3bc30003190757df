//! Model management routes: `tags`, `show`, `copy`, `delete`, and llmpm's `prune` and `verify`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use llmpm_spec::api::{
    CopyRequest, CorruptBlob, DeleteRequest, ListModel, ListResponse, PruneResponse, ShowRequest,
    ShowResponse, VerifyResponse,
};
use llmpm_spec::Reference;

use super::extract::ApiJson;
use super::{ApiError, AppState, Model};
use crate::describe;

/// Parses a model name from a request, as a 400 naming the problem.
pub fn parse_name(raw: &str) -> Result<Reference, ApiError> {
    raw.parse::<Reference>()
        .map_err(|e| ApiError::BadRequest(crate::api::error::chain(&e)))
}

/// The model a request names, resolved (kept from an earlier request while
/// the name points at the same manifest).
pub async fn resolve(state: &AppState, name: &str) -> Result<Arc<Model>, ApiError> {
    let reference = parse_name(name)?;
    Ok(state.models.resolve(&reference).await?)
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(&e))?
}

pub async fn tags(State(state): State<AppState>) -> Result<Json<ListResponse>, ApiError> {
    let store = state.store.clone();
    let mut models = blocking(move || {
        let mut out = Vec::new();
        for entry in store.list()? {
            let details = describe::details(&store, &entry.manifest);
            out.push(ListModel {
                name: entry.reference.display_short(),
                model: entry.reference.display_short(),
                modified_at: describe::rfc3339(entry.modified),
                size: entry.manifest.total_size(),
                digest: entry.digest.hex().to_owned(),
                details,
                capabilities: Vec::new(),
            });
        }
        Ok(out)
    })
    .await?;
    for m in &mut models {
        m.capabilities = capabilities(&state, &m.name).await;
    }
    Ok(Json(ListResponse { models }))
}

/// A model's capabilities by name (resolved, so cached); empty for one
/// that does not resolve (no weights, an adapter), which `show` still lists.
async fn capabilities(state: &AppState, name: &str) -> Vec<String> {
    match resolve(state, name).await {
        Ok(m) => m
            .capabilities
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
        Err(e) => {
            tracing::debug!(model = name, error = %e, "no capabilities");
            Vec::new()
        }
    }
}

pub async fn show(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ShowRequest>,
) -> Result<Json<ShowResponse>, ApiError> {
    let name = parse_name(&req.model)?;
    let store = state.store.clone();
    let config = state.config.clone();
    let mut resp = blocking(move || {
        let entry = store.get(&name)?;
        let mut resp = describe::show(&store, &entry, req.verbose)?;
        resp.signatures = crate::trust::signature_infos(
            &store,
            &entry.digest,
            &entry.manifest,
            &config.trust_policy,
            &[],
        )?;
        Ok(resp)
    })
    .await?;
    resp.capabilities = capabilities(&state, &req.model).await;
    Ok(Json(resp))
}

pub async fn copy(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CopyRequest>,
) -> Result<StatusCode, ApiError> {
    let src = parse_name(&req.source)?;
    let dst = parse_name(&req.destination)?;
    let store = state.store.clone();
    tracing::info!(source = %src, destination = %dst, "copying");
    blocking(move || Ok(store.copy(&src, &dst)?)).await?;
    Ok(StatusCode::OK)
}

pub async fn delete(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DeleteRequest>,
) -> Result<StatusCode, ApiError> {
    let name = parse_name(&req.model)?;
    let store = state.store.clone();
    let shown = name.display_short();
    let freed = blocking(move || Ok(store.delete(&name)?)).await?;
    crate::metrics::model_removed(&shown);
    tracing::info!(model = %req.model, blobs_freed = freed.len(), "deleted");
    Ok(StatusCode::OK)
}

pub async fn prune(State(state): State<AppState>) -> Result<Json<PruneResponse>, ApiError> {
    let store = state.store.clone();
    let r = blocking(move || Ok(store.prune()?)).await?;
    Ok(Json(PruneResponse {
        blobs_removed: r.blobs_removed,
        bytes_freed: r.bytes_freed,
        temp_files_removed: r.temp_files_removed,
    }))
}

pub async fn verify(State(state): State<AppState>) -> Result<Json<VerifyResponse>, ApiError> {
    let store = state.store.clone();
    let r = blocking(move || Ok(store.verify()?)).await?;
    Ok(Json(VerifyResponse {
        blobs_checked: r.blobs_checked,
        bytes_checked: r.bytes_checked,
        corrupt: r
            .corrupt
            .into_iter()
            .map(|c| CorruptBlob {
                digest: c.digest.to_string(),
                problem: c.problem,
                quarantined_to: c.quarantined_to.display().to_string(),
                models: c.models.iter().map(Reference::display_short).collect(),
            })
            .collect(),
        missing: r.missing.iter().map(ToString::to_string).collect(),
    }))
}
