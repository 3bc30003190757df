//! `GET`/`HEAD /v2/<name>/blobs/<digest>`: a stored blob, whole or one `Range`, streamed from its file.
//!
//! Why not `sendfile(2)`: hyper owns the connection and writes the body's
//! frames itself, and exposes no way to hand it a file descriptor; taking
//! the socket away from it would mean a second HTTP server. Instead one
//! blocking thread per download reads the file in 1 MiB chunks ahead of the
//! socket (4 in flight), so the disk read of one chunk overlaps the send of
//! the last and a 1 GiB blob costs about a thousand reads.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use llmpm_spec::Digest;

use super::{internal, V2Error};

/// Bytes per read: large, so a multi-GiB blob is few system calls.
const CHUNK: usize = 1 << 20;
/// Chunks read ahead of the socket.
const AHEAD: usize = 4;

/// What a `Range` header asks of a blob of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Span {
    /// The whole blob: no `Range`, one we do not take (several ranges, another
    /// unit) or one that does not parse, which RFC 9110 says to ignore.
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// Nothing of the blob: a 416.
    Unsatisfiable,
}

/// Reads a `Range` header: `bytes=a-b`, `bytes=a-` or the suffix `bytes=-n`.
pub(super) fn span(range: Option<&str>, size: u64) -> Span {
    let Some(range) = range else {
        return Span::Whole;
    };
    let range = range.trim();
    let Some(spec) = range
        .get(..6)
        .filter(|u| u.eq_ignore_ascii_case("bytes="))
        .map(|_| range[6..].trim())
    else {
        return Span::Whole;
    };
    if spec.contains(',') {
        return Span::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Span::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    if a.is_empty() {
        return match num(b) {
            None => Span::Whole,
            Some(0) => Span::Unsatisfiable,
            Some(_) if size == 0 => Span::Unsatisfiable,
            Some(n) => Span::Part(size.saturating_sub(n), size - 1),
        };
    }
    let Some(start) = num(a) else {
        return Span::Whole;
    };
    let end = if b.is_empty() {
        None
    } else {
        match num(b) {
            Some(end) if end >= start => Some(end),
            _ => return Span::Whole,
        }
    };
    if start >= size {
        return Span::Unsatisfiable;
    }
    Span::Part(start, end.map_or(size - 1, |e| e.min(size - 1)))
}

/// Answers for blob `digest`, stored at `path` with `size` bytes.
pub(super) async fn serve(
    method: &Method,
    headers: &HeaderMap,
    digest: &Digest,
    path: PathBuf,
    size: u64,
) -> Result<Response, V2Error> {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, len) = match span(range, size) {
        Span::Whole => (StatusCode::OK, 0, size),
        Span::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Span::Unsatisfiable => {
            return Err(V2Error::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "RANGE_INVALID",
                format!(
                    "range `{}` is outside blob `{digest}` of {size} bytes",
                    super::clip(range.unwrap_or(""))
                ),
            )
            .with_header(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}"))
                    .unwrap_or(HeaderValue::from_static("bytes */0")),
            ));
        }
    };
    let mut resp = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("docker-content-digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""));
    if status == StatusCode::PARTIAL_CONTENT {
        resp = resp.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    let body = if *method == Method::HEAD || len == 0 {
        Body::empty()
    } else {
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => V2Error::new(
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                format!("blob `{digest}` was removed"),
            ),
            _ => internal(&e),
        })?;
        stream_file(file, start, len)
    };
    resp.body(body).map_err(|e| internal(&e))
}

/// `len` bytes of `file` from `start`, read on a blocking thread ahead of
/// the socket. A file shorter than promised ends the body with an error, so
/// the client sees a broken transfer, never a short blob.
fn stream_file(mut file: std::fs::File, start: u64, len: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(AHEAD);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            // Read into spare capacity: no zeroing of a buffer about to be filled.
            let mut buf = Vec::with_capacity(n);
            let read = (&mut file).take(n as u64).read_to_end(&mut buf);
            let read = read.and_then(|got| match got == n {
                true => Ok(()),
                false => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the blob file is shorter than its size",
                )),
            });
            if let Err(e) = read {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            left -= n as u64;
            // A closed channel is a client that went away: stop reading.
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return;
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}
