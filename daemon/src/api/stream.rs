//! Streamed answers: one writer for Ollama's NDJSON lines and OpenAI's
//! server-sent events, and the rule for errors that happen after the
//! headers were sent.
//!
//! An error before the first item is an HTTP status with an error body;
//! once an item has been sent the status is already 200, so the error
//! becomes the last frame (`{"error": "…"}` in NDJSON, which Ollama's
//! clients raise as an exception; `{"error": {"message", "type"}}` in SSE,
//! which the OpenAI SDKs raise).

use std::convert::Infallible;
use std::fmt::Display;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{Stream, StreamExt};
use llmpm_spec::api::{ErrorResponse, ProgressResponse};
use serde::Serialize;
use tokio::sync::mpsc;

use super::error::ApiError;

/// The sending half handed to the work that reports progress.
pub type ProgressTx = mpsc::Sender<Result<ProgressResponse, ApiError>>;

/// How a streamed answer is written on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Ollama: one JSON value per line (`application/x-ndjson`).
    Ndjson,
    /// OpenAI: server-sent events, `data: {json}`, ended by `data: [DONE]`.
    Sse,
    /// Named server-sent events (`event: name` then `data: {json}`), as the
    /// Responses and Anthropic Messages streams send them; no `[DONE]`.
    Events,
}

/// The frames written for one item of a stream.
#[derive(Debug)]
pub struct Frames {
    framing: Framing,
    out: Vec<u8>,
}

impl Frames {
    fn new(framing: Framing) -> Frames {
        Frames {
            framing,
            out: Vec::new(),
        }
    }

    /// Writes `value` as one frame.
    pub fn push(&mut self, value: &impl Serialize) {
        if self.framing != Framing::Ndjson {
            self.out.extend_from_slice(b"data: ");
        }
        // The answer types are plain structs and JSON values: they always serialize.
        let _ = serde_json::to_writer(&mut self.out, value);
        self.out.extend_from_slice(match self.framing {
            Framing::Ndjson => b"\n",
            Framing::Sse | Framing::Events => b"\n\n",
        });
    }

    /// Writes `value` as the event `name` (an `event:` line, then its data).
    pub fn event(&mut self, name: &str, value: &impl Serialize) {
        self.out.extend_from_slice(b"event: ");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
        self.push(value);
    }

    /// Ends a stream that succeeded (SSE's `data: [DONE]`; nothing in NDJSON).
    pub fn finish(&mut self) {
        if self.framing == Framing::Sse {
            self.out.extend_from_slice(b"data: [DONE]\n\n");
        }
    }

    /// Writes the error frame that ends a failed stream.
    fn error(&mut self, message: String) {
        match self.framing {
            Framing::Ndjson => self.push(&ErrorResponse { error: message }),
            Framing::Sse => {
                self.push(&serde_json::json!({"error": {"message": message, "type": "api_error"}}))
            }
            // Both the `openai` (Responses) and `anthropic` SDKs raise an `error` event.
            Framing::Events => self.event(
                "error",
                &serde_json::json!({"type": "error", "error": {"type": "api_error", "message": message}}),
            ),
        }
    }
}

/// Answers with `items` streamed in `framing`. The first item is awaited
/// before the headers go, so an error there, or a stream with no item,
/// still gets a real status from `early`. After that `encode` writes each
/// item's frames and says whether it was the last; an error is written as
/// the framing's error frame and ends the stream.
pub async fn respond_framed<T, E, S, F>(
    mut items: S,
    framing: Framing,
    encode: F,
    early: impl FnOnce(Option<E>) -> Response,
) -> Response
where
    S: Stream<Item = Result<T, E>> + Send + Unpin + 'static,
    T: Send + 'static,
    E: Display + Send + 'static,
    F: FnMut(T, &mut Frames) -> bool + Send + 'static,
{
    let first = match items.next().await {
        Some(Ok(item)) => item,
        Some(Err(e)) => return early(Some(e)),
        None => return early(None),
    };
    let body = futures_util::stream::unfold(
        (Some(first), items, encode, false),
        move |(pending, mut items, mut encode, done)| async move {
            if done {
                return None;
            }
            let item = match pending {
                Some(item) => Ok(item),
                None => items.next().await?,
            };
            let mut frames = Frames::new(framing);
            let end = match item {
                Ok(item) => encode(item, &mut frames),
                Err(e) => {
                    frames.error(e.to_string());
                    true
                }
            };
            Some((Ok::<_, Infallible>(frames.out), (None, items, encode, end)))
        },
    );
    let body = Body::from_stream(body);
    match framing {
        Framing::Ndjson => ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response(),
        Framing::Sse | Framing::Events => (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
    }
}

/// The body `encode` writes for `items` in named events (for the tests of
/// the Responses and Messages streams).
#[cfg(test)]
pub async fn events_body<T: Send + 'static>(
    items: Vec<T>,
    encode: impl FnMut(T, &mut Frames) -> bool + Send + 'static,
) -> String {
    let items = futures_util::stream::iter(items.into_iter().map(Ok::<T, String>));
    let r = respond_framed(items, Framing::Events, encode, |_| {
        axum::http::StatusCode::IM_A_TEAPOT.into_response()
    })
    .await;
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Answers with a progress channel's items: streamed as NDJSON, or the
/// last one as one JSON body.
pub async fn respond(
    mut rx: mpsc::Receiver<Result<ProgressResponse, ApiError>>,
    stream: bool,
) -> Response {
    let ended = || ApiError::Internal("the operation ended without a result".into());
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
            None => ended().into_response(),
        };
    }
    let items = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    respond_framed(
        items,
        Framing::Ndjson,
        |p, frames| {
            frames.push(&p);
            false
        },
        |e| e.unwrap_or_else(ended).into_response(),
    )
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::json;

    use super::*;

    async fn body_of(
        items: Vec<Result<u32, &'static str>>,
        framing: Framing,
    ) -> (StatusCode, String) {
        let response = respond_framed(
            futures_util::stream::iter(items),
            framing,
            |n, frames| {
                frames.push(&json!({ "n": n }));
                if n == 0 {
                    frames.finish();
                }
                n == 0
            },
            |e| (StatusCode::IM_A_TEAPOT, e.unwrap_or("none").to_owned()).into_response(),
        )
        .await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn one_writer_two_framings() {
        let (status, body) = body_of(vec![Ok(1), Ok(2), Err("boom"), Ok(3)], Framing::Ndjson).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "{\"n\":1}\n{\"n\":2}\n{\"error\":\"boom\"}\n");
        let (_, body) = body_of(vec![Ok(1), Ok(0), Ok(3)], Framing::Sse).await;
        assert_eq!(
            body,
            "data: {\"n\":1}\n\ndata: {\"n\":0}\n\ndata: [DONE]\n\n"
        );
        let (_, body) = body_of(vec![Ok(1), Err("boom")], Framing::Sse).await;
        assert_eq!(
            body,
            "data: {\"n\":1}\n\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"api_error\"}}\n\n"
        );
        // Before the first item: a real status.
        assert_eq!(
            body_of(vec![Err("early")], Framing::Ndjson).await,
            (StatusCode::IM_A_TEAPOT, "early".to_owned())
        );
        assert_eq!(
            body_of(vec![], Framing::Sse).await,
            (StatusCode::IM_A_TEAPOT, "none".to_owned())
        );
    }
}
