//! `GET /api/ps`: the loaded models, in Ollama's shape.

use axum::extract::State;
use axum::Json;
use llmpm_spec::api::{ProcessModel, ProcessResponse};

use super::AppState;

/// `GET /api/ps`. `size_vram` is the whole size when the runner put the
/// model on a GPU, else 0.
pub async fn ps(State(state): State<AppState>) -> Json<ProcessResponse> {
    let models = state
        .sched
        .ps()
        .await
        .into_iter()
        .map(|r| ProcessModel {
            model: r.name.clone(),
            name: r.name,
            size: r.size,
            digest: r.digest,
            details: r.details,
            expires_at: crate::describe::rfc3339(r.expires_at),
            size_vram: r.size_vram,
            context_length: r.num_ctx as u64,
        })
        .collect();
    Json(ProcessResponse { models })
}
