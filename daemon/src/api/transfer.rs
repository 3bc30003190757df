//! `POST /api/pull` and `POST /api/push`: run a transfer as its own task and stream its progress.
//!
//! The transfer runs in a spawned task that reports on a channel; when the
//! client goes away the channel closes, the task sees it on its next report
//! and stops, and a download nobody else waits for is cancelled with its
//! journal kept, so pulling again resumes it.

use axum::extract::State;
use axum::response::Response;
use llmpm_spec::api::{ProgressResponse, PullRequest};
use tokio::sync::mpsc;

use super::extract::ApiJson;
use super::{stream, AppState};
use crate::transfer::Reporter;

#[derive(Clone, Copy)]
enum Kind {
    Pull,
    Push,
}

async fn run(state: AppState, req: PullRequest, kind: Kind) -> Response {
    let streaming = req.stream.unwrap_or(true);
    let (tx, rx) = mpsc::channel(64);
    let (ptx, prx) = mpsc::channel::<ProgressResponse>(64);
    let out = Reporter(ptx);
    let home = state.config.home.clone();
    let transfers = state.transfers.clone();
    let store = state.store.clone();
    tokio::spawn(async move {
        let work = async {
            match kind {
                Kind::Pull => crate::transfer::pull(transfers, store, &home, &req, out).await,
                Kind::Push => crate::transfer::push(transfers, store, &home, &req, out).await,
            }
        };
        let forward = async {
            // Owned here, so the receiver is dropped when the client is gone
            // and the transfer's next report fails: that is the cancel signal.
            let mut prx = prx;
            while let Some(p) = prx.recv().await {
                if tx.send(Ok(p)).await.is_err() {
                    return;
                }
            }
        };
        let (res, ()) = tokio::join!(work, forward);
        if let Err(e) = res {
            if e.is_cancelled() {
                tracing::info!(model = %req.model, "transfer cancelled: the client went away");
            } else {
                tracing::warn!(model = %req.model, error = %super::error::chain(&e), "transfer failed");
                let _ = tx.send(Err(e.into())).await;
            }
        }
    });
    stream::respond(rx, streaming).await
}

pub async fn pull(State(state): State<AppState>, ApiJson(req): ApiJson<PullRequest>) -> Response {
    run(state, req, Kind::Pull).await
}

pub async fn push(State(state): State<AppState>, ApiJson(req): ApiJson<PullRequest>) -> Response {
    run(state, req, Kind::Push).await
}
