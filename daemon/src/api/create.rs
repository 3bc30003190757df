//! `POST /api/create`: runs [`crate::create`] off the async threads and streams its progress.

use axum::extract::State;
use axum::response::Response;
use llmpm_spec::api::CreateRequest;
use tokio::sync::mpsc;

use super::extract::ApiJson;
use super::{stream, AppState};

pub async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateRequest>,
) -> Response {
    let streaming = req.stream.unwrap_or(true);
    let (tx, rx) = mpsc::channel(64);
    let store = state.store.clone();
    // The create runs to completion even if the client goes away: a model is
    // either written whole or not at all.
    tokio::task::spawn_blocking(move || {
        let send = |p| {
            let _ = tx.blocking_send(Ok(p));
        };
        if let Err(e) = crate::create::create(&store, &req, send) {
            let _ = tx.blocking_send(Err(e.into()));
        }
    });
    stream::respond(rx, streaming).await
}
