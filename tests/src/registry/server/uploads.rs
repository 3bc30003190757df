//! Blob uploads: `POST` (monolithic, mount, or a session), chunked `PATCH` with `Content-Range` checks, and the closing `PUT ?digest=`.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{header_str, location, method_not_allowed, oci_error, query_param};
use crate::registry::{sha256_digest, Shared};

pub(super) fn upload_start(s: &Shared, repo: &str, query: &str, data: Bytes) -> Response {
    if let (Some(mount), Some(from)) = (query_param(query, "mount"), query_param(query, "from")) {
        let mut st = s.store();
        if s.options.mount && st.links.contains(&(from, mount.clone())) {
            st.links.insert((repo.to_owned(), mount.clone()));
            return created(s, repo, &mount);
        }
    }
    if let Some(digest) = query_param(query, "digest") {
        // Monolithic: the whole blob in the POST.
        return finish(s, repo, &digest, data.to_vec());
    }
    let mut st = s.store();
    st.next_upload += 1;
    let id = format!("upload-{}", st.next_upload);
    st.uploads
        .insert(id.clone(), (repo.to_owned(), data.to_vec()));
    drop(st);
    upload_accepted(s, repo, &id, 0)
}

fn upload_accepted(s: &Shared, repo: &str, id: &str, len: usize) -> Response {
    // Range is inclusive; `0-0` for an empty upload is what distribution sends.
    let range = format!("0-{}", len.saturating_sub(1));
    (
        StatusCode::ACCEPTED,
        [
            (
                header::LOCATION,
                location(s, &format!("/v2/{repo}/blobs/uploads/{id}")),
            ),
            (header::RANGE, range),
            (
                header::HeaderName::from_static("docker-upload-uuid"),
                id.to_owned(),
            ),
            (header::CONTENT_LENGTH, "0".to_owned()),
        ],
    )
        .into_response()
}

fn created(s: &Shared, repo: &str, digest: &str) -> Response {
    (
        StatusCode::CREATED,
        [
            (
                header::LOCATION,
                location(s, &format!("/v2/{repo}/blobs/{digest}")),
            ),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest.to_owned(),
            ),
            (header::CONTENT_LENGTH, "0".to_owned()),
        ],
    )
        .into_response()
}

/// Verifies `data` against `digest` and stores it in `repo`.
fn finish(s: &Shared, repo: &str, digest: &str, data: Vec<u8>) -> Response {
    let actual = sha256_digest(&data);
    if actual != digest {
        return oci_error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            &format!("provided digest {digest} did not match uploaded content {actual}"),
        );
    }
    let mut st = s.store();
    st.blobs.insert(actual.clone(), Bytes::from(data));
    st.links.insert((repo.to_owned(), actual.clone()));
    drop(st);
    created(s, repo, &actual)
}

pub(super) fn upload(
    s: &Shared,
    repo: &str,
    id: &str,
    method: &Method,
    headers: &HeaderMap,
    query: &str,
    data: Bytes,
) -> Response {
    let mut st = s.store();
    let Some((owner, so_far)) = st.uploads.get_mut(id) else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "blob upload unknown to registry",
        );
    };
    if owner != repo {
        return oci_error(
            StatusCode::NOT_FOUND,
            "BLOB_UPLOAD_UNKNOWN",
            "upload belongs to another repository",
        );
    }
    match *method {
        Method::GET => {
            let n = so_far.len();
            drop(st);
            let mut r = upload_accepted(s, repo, id, n);
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Method::PATCH => {
            // A chunk must start where the upload stands (`Content-Range: a-b`, inclusive).
            if let Some(cr) = header_str(headers, header::CONTENT_RANGE) {
                let start = cr
                    .split('-')
                    .next()
                    .and_then(|a| a.trim().parse::<usize>().ok());
                if start != Some(so_far.len()) {
                    let n = so_far.len();
                    return (
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        [
                            (header::RANGE, format!("0-{}", n.saturating_sub(1))),
                            (header::LOCATION, location(s, &format!("/v2/{repo}/blobs/uploads/{id}"))),
                        ],
                        json!({"errors": [{"code": "BLOB_UPLOAD_INVALID", "message": format!("chunk must start at {n}, not {cr}")}]}).to_string(),
                    )
                        .into_response();
                }
            }
            so_far.extend_from_slice(&data);
            let n = so_far.len();
            drop(st);
            upload_accepted(s, repo, id, n)
        }
        Method::PUT => {
            let Some(digest) = query_param(query, "digest") else {
                return oci_error(
                    StatusCode::BAD_REQUEST,
                    "DIGEST_INVALID",
                    "PUT needs ?digest=",
                );
            };
            let (_, mut all) = st.uploads.remove(id).unwrap_or_default();
            drop(st);
            all.extend_from_slice(&data);
            finish(s, repo, &digest, all)
        }
        Method::DELETE => {
            st.uploads.remove(id);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => method_not_allowed(),
    }
}
