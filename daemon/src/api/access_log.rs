//! One log line per request: method, path, status, duration and, when the
//! JSON body names one, the model, so a client's failures show in the
//! daemon's log. The line is written when the response body has been sent
//! (or dropped by a client that went away), so a streamed generation's
//! duration is the whole stream's.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};

use super::error::ApiError;

/// Bodies up to this size are read for their `model` before the handler
/// sees them; larger ones (uploaded blobs, requests full of images) are
/// logged without it rather than held in memory twice.
const PEEK_LIMIT: u64 = 1 << 20;

/// The middleware: logs each request once its answer is over.
pub async fn log_requests(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // The route's pattern, for the metrics (the path would make a series per digest).
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let (req, model) = match peek_model(req).await {
        Ok(r) => r,
        Err(e) => {
            let resp = e.into_response();
            Line {
                method,
                path,
                route,
                model: None,
                status: resp.status(),
                started,
            }
            .write();
            return resp;
        }
    };
    let resp = next.run(req).await;
    let line = Line {
        method,
        path,
        route,
        model,
        status: resp.status(),
        started,
    };
    let (parts, body) = resp.into_parts();
    Response::from_parts(
        parts,
        Body::new(Logged {
            inner: body,
            line: Some(line),
        }),
    )
}

/// The `model` (or legacy `name`) a small JSON body names, and the request
/// rebuilt with the same bytes.
async fn peek_model(req: Request) -> Result<(Request, Option<String>), ApiError> {
    let small = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 0 && n <= PEEK_LIMIT);
    let json_route = matches!(*req.method(), Method::POST | Method::DELETE)
        && !req.uri().path().starts_with("/api/blobs/");
    if !small || !json_route {
        return Ok((req, None));
    }
    let (parts, body) = req.into_parts();
    let limit = usize::try_from(PEEK_LIMIT).unwrap_or(usize::MAX);
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(default)]
        model: Option<String>,
        #[serde(default)]
        name: Option<String>,
    }
    let model = serde_json::from_slice::<Named>(&bytes)
        .ok()
        .and_then(|n| n.model.filter(|m| !m.is_empty()).or(n.name))
        .filter(|m| !m.is_empty());
    Ok((Request::from_parts(parts, Body::from(bytes)), model))
}

/// What the line says.
struct Line {
    method: Method,
    path: String,
    route: String,
    model: Option<String>,
    status: StatusCode,
    started: Instant,
}

impl Line {
    fn write(self) {
        let ms = self.started.elapsed().as_secs_f64() * 1e3;
        let status = self.status.as_u16();
        crate::metrics::request(&self.route, status);
        let model = self.model.as_deref().unwrap_or("");
        if self.status.is_server_error() {
            tracing::warn!(method = %self.method, path = %self.path, status, duration_ms = %format_args!("{ms:.1}"), model = %model, "request");
        } else {
            tracing::info!(method = %self.method, path = %self.path, status, duration_ms = %format_args!("{ms:.1}"), model = %model, "request");
        }
    }
}

/// A response body that writes its request's line when it ends or is dropped.
struct Logged {
    inner: Body,
    line: Option<Line>,
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            line.write();
        }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            if let Some(line) = self.line.take() {
                line.write();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
