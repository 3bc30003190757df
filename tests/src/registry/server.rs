//! The registry's HTTP side: routing of `/v2/…`, uploads, ranged blob bodies with their faults, `/token`.
//!
//! Routing is by hand from one fallback handler because repository names
//! contain slashes (`ns/m`), which path patterns cannot split reliably from
//! `/manifests/<ref>` or `/blobs/<digest>`. Blob bodies are served by
//! `blobs`, uploads taken by `uploads`.

use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use serde_json::json;

use super::{sha256_digest, RequestRecord, Shared, Store};
use blobs::blob_get;
use uploads::{upload, upload_start};

mod blobs;
mod uploads;

/// Bytes per body chunk: small enough that drop/stall offsets land within a few KiB.
const CHUNK: usize = 16 * 1024;

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    /// True on the redirect host's listener.
    redirect_host: bool,
}

/// Serves both listeners until `stop` fires, then abandons open connections
/// (an endless body must not keep a test from ending).
pub(super) fn run(
    shared: Arc<Shared>,
    main: TcpListener,
    other: TcpListener,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("registry runtime");
    rt.block_on(async move {
        for (listener, redirect_host) in [(main, false), (other, true)] {
            let app = Router::new().fallback(handle).with_state(Ctx {
                shared: shared.clone(),
                redirect_host,
            });
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
        }
        let _ = stop.await;
    });
    rt.shutdown_background();
}

/// An OCI error response: `{"errors":[{"code","message"}]}`.
fn oci_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"errors": [{"code": code, "message": message, "detail": null}]}).to_string(),
    )
        .into_response()
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

/// Enough percent-decoding for digests (`sha256%3A…`) and repository names (`ns%2Fm`).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(State(ctx): State<Ctx>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let s = &ctx.shared;
    s.log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RequestRecord {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or(path.clone(), |p| p.to_string()),
            authorization: parts.headers.contains_key(header::AUTHORIZATION),
            range: header_str(&parts.headers, header::RANGE).map(str::to_owned),
            redirect_host: ctx.redirect_host,
        });

    if ctx.redirect_host {
        // The storage host: `/blobs/<digest>`, no auth (a signed URL in real life).
        let digest = path.trim_start_matches("/blobs/");
        return blob_get(s, None, digest, &parts.method, &parts.headers);
    }

    if let Some((status, retry_after)) = s.faults.status_for(&path) {
        let mut r = oci_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            if status == 429 {
                "TOOMANYREQUESTS"
            } else {
                "UNAVAILABLE"
            },
            "injected fault",
        );
        if let Some(secs) = retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return r;
    }

    if path == "/token" {
        return token(s, &parts.headers, &query);
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return oci_error(StatusCode::NOT_FOUND, "NOT_FOUND", "not a registry path");
    };

    let route = Route::parse(rest);
    if s.faults.bearer().is_some() {
        let ok = header_str(&parts.headers, header::AUTHORIZATION)
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| t.starts_with("test-token-"));
        if !ok {
            let write = !matches!(parts.method, Method::GET | Method::HEAD);
            let scope = route.repo().map(|r| {
                format!(
                    ",scope=\"repository:{r}:{}\"",
                    if write { "pull,push" } else { "pull" }
                )
            });
            let challenge = format!(
                "Bearer realm=\"http://{}/token\",service=\"test\"{}",
                s.host,
                scope.unwrap_or_default()
            );
            let mut r = oci_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&challenge).expect("challenge header"),
            );
            return r;
        }
    }

    let mut r = match route {
        Route::Base => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response(),
        Route::Manifest(repo, reference) => match parts.method {
            Method::GET | Method::HEAD => manifest_get(s, &repo, &reference, &parts.method, &path),
            Method::PUT => {
                let ct = header_str(&parts.headers, header::CONTENT_TYPE)
                    .unwrap_or("")
                    .to_owned();
                match axum::body::to_bytes(body, s.options.max_manifest_put).await {
                    Ok(b) => manifest_put(s, &repo, &reference, &ct, b),
                    Err(_) => oci_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "SIZE_INVALID",
                        "manifest too large",
                    ),
                }
            }
            Method::DELETE => {
                s.store()
                    .manifests
                    .remove(&(repo.clone(), reference.clone()));
                StatusCode::ACCEPTED.into_response()
            }
            _ => method_not_allowed(),
        },
        Route::Blob(repo, digest) => match parts.method {
            Method::GET | Method::HEAD => {
                if parts.method == Method::GET && s.faults.redirect_blobs() {
                    let known = s.store().links.contains(&(repo.clone(), digest.clone()));
                    if !known {
                        return blob_unknown(&digest);
                    }
                    let loc = format!("http://{}/blobs/{digest}", s.redirect_host);
                    return (
                        StatusCode::TEMPORARY_REDIRECT,
                        [(header::LOCATION, loc)],
                        Body::empty(),
                    )
                        .into_response();
                }
                if parts.method == Method::GET && s.faults.endless(&path) {
                    return endless("application/octet-stream");
                }
                blob_get(s, Some(&repo), &digest, &parts.method, &parts.headers)
            }
            _ => method_not_allowed(),
        },
        Route::UploadStart(repo) if parts.method == Method::POST => {
            let data = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(b) => b,
                Err(e) => {
                    return oci_error(
                        StatusCode::BAD_REQUEST,
                        "BLOB_UPLOAD_INVALID",
                        &e.to_string(),
                    )
                }
            };
            upload_start(s, &repo, &query, data)
        }
        Route::Upload(repo, id) => {
            let data = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(b) => b,
                Err(e) => {
                    return oci_error(
                        StatusCode::BAD_REQUEST,
                        "BLOB_UPLOAD_INVALID",
                        &e.to_string(),
                    )
                }
            };
            upload(s, &repo, &id, &parts.method, &parts.headers, &query, data)
        }
        Route::Tags(repo) => {
            let tags = tags(&s.store(), &repo);
            if tags.is_empty() {
                oci_error(
                    StatusCode::NOT_FOUND,
                    "NAME_UNKNOWN",
                    "repository name not known to registry",
                )
            } else {
                axum::Json(json!({"name": repo, "tags": tags})).into_response()
            }
        }
        _ => oci_error(StatusCode::NOT_FOUND, "NOT_FOUND", "unknown registry path"),
    };
    r.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    r
}

fn method_not_allowed() -> Response {
    oci_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "method not allowed",
    )
}

fn blob_unknown(digest: &str) -> Response {
    oci_error(
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
        &format!("blob unknown to registry: {digest}"),
    )
}

enum Route {
    Base,
    Manifest(String, String),
    Blob(String, String),
    UploadStart(String),
    Upload(String, String),
    Tags(String),
    Unknown,
}

impl Route {
    fn parse(rest: &str) -> Route {
        if rest.is_empty() {
            return Route::Base;
        }
        if let Some((repo, r)) = rest.rsplit_once("/blobs/uploads/") {
            return if r.is_empty() {
                Route::UploadStart(repo.to_owned())
            } else {
                Route::Upload(repo.to_owned(), r.to_owned())
            };
        }
        if let Some(repo) = rest.strip_suffix("/blobs/uploads") {
            return Route::UploadStart(repo.to_owned());
        }
        if let Some((repo, r)) = rest.rsplit_once("/manifests/") {
            return Route::Manifest(repo.to_owned(), r.to_owned());
        }
        if let Some((repo, d)) = rest.rsplit_once("/blobs/") {
            return Route::Blob(repo.to_owned(), d.to_owned());
        }
        if let Some(repo) = rest.strip_suffix("/tags/list") {
            return Route::Tags(repo.to_owned());
        }
        Route::Unknown
    }

    fn repo(&self) -> Option<&str> {
        match self {
            Route::Manifest(r, _)
            | Route::Blob(r, _)
            | Route::UploadStart(r)
            | Route::Upload(r, _)
            | Route::Tags(r) => Some(r),
            Route::Base | Route::Unknown => None,
        }
    }
}

pub(super) fn tags(st: &Store, repo: &str) -> Vec<String> {
    let mut t: Vec<String> = st
        .manifests
        .keys()
        .filter(|(r, reference)| r == repo && !reference.contains(':'))
        .map(|(_, reference)| reference.clone())
        .collect();
    t.sort();
    t
}

fn token(s: &Shared, headers: &HeaderMap, query: &str) -> Response {
    let creds = s.faults.bearer().flatten();
    if let Some((user, password)) = creds {
        let want = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let got = header_str(headers, header::AUTHORIZATION).and_then(|a| a.strip_prefix("Basic "));
        if got != Some(want.as_str()) {
            return oci_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "bad credentials");
        }
    }
    let n = s.counters.tokens_issued.fetch_add(1, Ordering::Relaxed);
    let t = format!("test-token-{n}");
    let scope = query_param(query, "scope").unwrap_or_default();
    axum::Json(json!({"token": t, "access_token": t, "expires_in": 300, "scope": scope}))
        .into_response()
}

fn manifest_get(s: &Shared, repo: &str, reference: &str, method: &Method, path: &str) -> Response {
    let found = s
        .store()
        .manifests
        .get(&(repo.to_owned(), reference.to_owned()))
        .cloned();
    let Some((media_type, bytes)) = found else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            &format!("manifest unknown: {repo}:{reference}"),
        );
    };
    if *method == Method::GET && s.faults.endless(path) {
        return endless(&media_type);
    }
    let digest = sha256_digest(&bytes);
    let headers = [
        (header::CONTENT_TYPE, media_type),
        (header::CONTENT_LENGTH, bytes.len().to_string()),
        (
            header::HeaderName::from_static("docker-content-digest"),
            digest,
        ),
    ];
    if *method == Method::HEAD {
        (StatusCode::OK, headers, Body::empty()).into_response()
    } else {
        (StatusCode::OK, headers, bytes).into_response()
    }
}

fn endless(content_type: &str) -> Response {
    let stream = futures_util::stream::repeat_with(|| {
        Ok::<_, std::io::Error>(Bytes::from_static(&[b' '; CHUNK]))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type.to_owned())],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The repositories a manifest's descriptors point into must hold those blobs,
/// as `docker-registry` demands, so a push that sends the manifest first fails here too.
fn manifest_put(
    s: &Shared,
    repo: &str,
    reference: &str,
    content_type: &str,
    bytes: Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return oci_error(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            "manifest is not JSON",
        );
    };
    let digest = sha256_digest(&bytes);
    if reference.contains(':') && reference != digest {
        return oci_error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            &format!("manifest digest is {digest}, not {reference}"),
        );
    }
    let mut st = s.store();
    let blobs = v["config"].as_object().into_iter().chain(
        v["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_object()),
    );
    for d in blobs {
        let d = d.get("digest").and_then(|d| d.as_str()).unwrap_or("");
        if !st.links.contains(&(repo.to_owned(), d.to_owned())) {
            return oci_error(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                &format!("blob unknown to registry: {d}"),
            );
        }
    }
    for m in v["manifests"].as_array().into_iter().flatten() {
        let d = m["digest"].as_str().unwrap_or("");
        if !st.manifests.contains_key(&(repo.to_owned(), d.to_owned())) {
            return oci_error(
                StatusCode::BAD_REQUEST,
                "MANIFEST_UNKNOWN",
                &format!("manifest unknown: {d}"),
            );
        }
    }
    for r in [reference, digest.as_str()] {
        st.manifests.insert(
            (repo.to_owned(), r.to_owned()),
            (content_type.to_owned(), bytes.clone()),
        );
    }
    drop(st);
    (
        StatusCode::CREATED,
        [
            (
                header::LOCATION,
                location(s, &format!("/v2/{repo}/manifests/{digest}")),
            ),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest,
            ),
        ],
    )
        .into_response()
}

fn location(s: &Shared, path: &str) -> String {
    if s.options.absolute_locations {
        format!("http://{}{path}", s.host)
    } else {
        path.to_owned()
    }
}
