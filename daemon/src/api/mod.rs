//! HTTP routes: the Ollama-compatible `/api/*` surface and llmpm's own additions.

mod access_log;
mod anthropic;
mod archive;
mod blobs;
mod create;
pub mod error;
mod extract;
mod generate;
mod models;
mod openai;
mod openai_tools;
mod ps;
mod rerank;
mod signing;
pub mod stream;
mod transfer;
mod v2;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use axum::{Json, Router};
use llmpm_spec::api::VersionResponse;

use crate::config::Config;
use crate::store::Store;
pub use error::ApiError;

/// The Ollama API version llmpm answers to, so clients that gate features on
/// `/api/version` treat us as a current Ollama. llmpm's own version is beside it.
pub const OLLAMA_API_VERSION: &str = "0.12.6";

/// Everything a handler may need. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The model store.
    pub store: Store,
    /// The resolved configuration.
    pub config: Arc<Config>,
    /// Registry transfers: HTTP clients and the downloads in flight.
    pub transfers: Arc<crate::transfer::Transfers>,
    /// The scheduler: which model runners are loaded.
    pub sched: crate::sched::Scheduler,
    /// Resolved models, kept while their manifests are unchanged.
    pub models: crate::llm::Models<crate::sched::ModelShape>,
}

/// A resolved model as the handlers use it: with the scheduler's memory shape.
pub type Model = crate::llm::ResolvedModel<crate::sched::ModelShape>;

/// The whole service, without transport guards (the unix socket needs
/// none), each request logged.
pub fn router(state: AppState) -> Router {
    routes(state).layer(middleware::from_fn(access_log::log_requests))
}

/// The routes.
fn routes(state: AppState) -> Router {
    Router::new()
        .route("/", get(root).head(root))
        .route("/api/version", get(version))
        .route("/api/tags", get(models::tags))
        .route("/api/show", post(models::show))
        .route("/api/copy", post(models::copy))
        .route("/api/delete", axum::routing::delete(models::delete))
        .route(
            "/api/blobs/{digest}",
            head(blobs::head_blob).post(blobs::post_blob),
        )
        .route("/api/create", post(create::create))
        .route("/api/pull", post(transfer::pull))
        .route("/api/push", post(transfer::push))
        .route("/api/generate", post(generate::generate))
        .route("/api/chat", post(generate::chat))
        .route("/api/embed", post(generate::embed))
        .route("/api/embeddings", post(generate::embeddings))
        .route("/api/ps", get(ps::ps))
        .route("/api/rerank", post(rerank::rerank))
        .route("/v1/rerank", post(rerank::rerank))
        .route("/metrics", get(metrics))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/responses", post(openai::responses))
        .route("/v1/messages", post(anthropic::messages_route))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{*model}", get(openai::model))
        .route("/api/prune", post(models::prune))
        .route("/api/verify", post(models::verify))
        .route("/api/keygen", post(signing::keygen))
        .route("/api/sign", post(signing::sign))
        .route("/api/signatures", post(signing::signatures))
        .route("/api/export", post(signing::export))
        .route("/api/import", post(archive::import))
        .merge(v2::routes())
        .fallback(not_found)
        .with_state(state)
}

/// The router as served on TCP: an API key check (when one is configured) and
/// a Host check against DNS rebinding; refused requests are logged too.
pub fn tcp_router(state: AppState) -> Router {
    let guard_state = state.clone();
    routes(state)
        .layer(middleware::from_fn_with_state(guard_state, tcp_guard))
        .layer(middleware::from_fn(access_log::log_requests))
}

async fn tcp_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // The same rules, answered as registry clients expect (a Bearer challenge).
    if v2::owns(req.uri().path()) {
        return v2::guard(&state.config, req, next).await;
    }
    if let Err(e) = check_tcp(&state.config, req.method(), req.headers()) {
        return e.into_response();
    }
    next.run(req).await
}

fn check_tcp(config: &Config, _method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(key) = &config.api_key {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Anthropic's clients send the key as `x-api-key`.
        let anthropic = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        if given != Some(key.as_str()) && anthropic != Some(key.as_str()) {
            return Err(ApiError::Unauthorized(
                "missing or wrong API key: send `Authorization: Bearer <LLMPM_API_KEY>` \
                 (or `x-api-key: <LLMPM_API_KEY>`)"
                    .into(),
            ));
        }
        return Ok(());
    }
    // Without a key we only listen on loopback; a page on another origin could
    // still reach us through DNS rebinding, which shows up as a foreign Host.
    if let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
        if !is_local_host(host) {
            return Err(ApiError::Forbidden(format!(
                "Host `{host}` is not a loopback name; llmpmd answers only to localhost without an API key"
            )));
        }
    }
    Ok(())
}

/// Whether a Host header names this machine's loopback.
fn is_local_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

async fn root() -> &'static str {
    // Tools probe for this exact text to detect an Ollama-compatible server.
    "Ollama is running"
}

async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "version": VersionResponse { version: OLLAMA_API_VERSION.into() }.version,
        "llmpm_version": env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET /metrics`: Prometheus' text format (behind the API key off loopback, as every route).
async fn metrics(State(state): State<AppState>) -> Response {
    let loaded: Vec<crate::metrics::Loaded> = state
        .sched
        .ps()
        .await
        .into_iter()
        .map(|r| crate::metrics::Loaded {
            name: r.name,
            bytes: r.size,
            vram_bytes: r.size_vram,
        })
        .collect();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&loaded),
    )
        .into_response()
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        for h in [
            "localhost",
            "localhost:11434",
            "127.0.0.1:5",
            "[::1]:80",
            "0.0.0.0:1",
            "a.localhost",
        ] {
            assert!(is_local_host(h), "{h}");
        }
        for h in [
            "evil.com",
            "evil.com:11434",
            "192.168.1.2",
            "localhost.evil.com",
        ] {
            assert!(!is_local_host(h), "{h}");
        }
    }
}
