//! Blob downloads: `GET`/`HEAD` of a blob with `Range`, its body streamed in chunks with the faults a test planned (stalls, drops, wrong lengths).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{blob_unknown, header_str, CHUNK};
use crate::registry::faults::BlobPlan;
use crate::registry::Shared;

/// `bytes=a-b` or `bytes=a-` against `len`: the inclusive range, `Err` when unsatisfiable.
fn parse_range(h: &str, len: u64) -> Result<(u64, u64), ()> {
    let spec = h.trim().strip_prefix("bytes=").ok_or(())?;
    let (a, b) = spec.split_once('-').ok_or(())?;
    let start: u64 = a.trim().parse().map_err(|_| ())?;
    let end: u64 = if b.trim().is_empty() {
        len.saturating_sub(1)
    } else {
        b.trim()
            .parse::<u64>()
            .map_err(|_| ())?
            .min(len.saturating_sub(1))
    };
    if start >= len || end < start {
        return Err(());
    }
    Ok((start, end))
}

/// A blob GET or HEAD, from the registry (`repo` given: the blob must be
/// linked there) or from the redirect host (`repo` None).
pub(super) fn blob_get(
    s: &Arc<Shared>,
    repo: Option<&str>,
    digest: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let bytes = {
        let st = s.store();
        let linked = repo.is_none_or(|r| st.links.contains(&(r.to_owned(), digest.to_owned())));
        st.blobs.get(digest).filter(|_| linked).cloned()
    };
    let Some(bytes) = bytes else {
        return blob_unknown(digest);
    };
    let len = bytes.len() as u64;
    let digest_h = (
        header::HeaderName::from_static("docker-content-digest"),
        digest.to_owned(),
    );
    if *method == Method::HEAD {
        return (
            StatusCode::OK,
            [
                (header::CONTENT_LENGTH, len.to_string()),
                (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                digest_h,
            ],
            Body::empty(),
        )
            .into_response();
    }
    let (status, start, end) = match header_str(headers, header::RANGE) {
        None => (StatusCode::OK, 0, len),
        Some(r) => match parse_range(r, len) {
            Ok((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
            Err(()) => {
                return (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                    Body::empty(),
                )
                    .into_response()
            }
        },
    };
    let plan = s.faults.blob_plan(digest);
    s.count(digest, 0, true);
    let declared = plan.declared_len.unwrap_or(end - start);
    let mut r = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, declared)
        .header(digest_h.0, digest_h.1)
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        r = r.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    let body = blob_body(
        s.clone(),
        digest.to_owned(),
        bytes.slice(start as usize..end as usize),
        plan,
    );
    r.body(body).expect("blob response")
}

/// Streams `data` in chunks, counting each chunk as it is handed to the
/// connection, and applying `plan`'s stall and drop.
fn blob_body(s: Arc<Shared>, digest: String, data: Bytes, plan: BlobPlan) -> Body {
    struct St {
        s: Arc<Shared>,
        digest: String,
        data: Bytes,
        sent: u64,
        plan: BlobPlan,
        dropped: bool,
    }
    let st = St {
        s,
        digest,
        data,
        sent: 0,
        plan,
        dropped: false,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if st.dropped {
            return None;
        }
        if let Some((at, pause)) = st.plan.stall {
            if st.sent >= at {
                st.plan.stall = None;
                tokio::time::sleep(pause).await;
            }
        }
        if st.plan.drop_after.is_some_and(|at| st.sent >= at) {
            // Give hyper a moment to flush what was sent, so the client
            // really holds `after` bytes, then break the connection.
            tokio::time::sleep(Duration::from_millis(50)).await;
            st.dropped = true;
            let e = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected drop");
            return Some((Err(e), st));
        }
        if st.data.is_empty() {
            if st.plan.declared_len.is_some_and(|d| d > st.sent) {
                // The body ends short of the announced length: let hyper flush
                // what was sent before it gives up on the connection.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return None;
        }
        let mut n = st.data.len().min(CHUNK) as u64;
        for limit in [st.plan.drop_after, st.plan.stall.map(|(a, _)| a)]
            .into_iter()
            .flatten()
        {
            if limit > st.sent {
                n = n.min(limit - st.sent);
            }
        }
        let mut chunk = st.data.split_to(n as usize);
        if st.plan.wrong_bytes {
            chunk = chunk.iter().map(|b| !b).collect::<Vec<u8>>().into();
        }
        st.sent += n;
        st.s.count(&st.digest, n, false);
        Some((Ok(chunk), st))
    });
    Body::from_stream(stream)
}
