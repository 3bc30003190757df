//! OCI distribution API, read-only (`/v2/`): HTTP framing over `registry::distribution`, with OCI error bodies.
//!
//! The path is parsed from the raw request target, before any percent
//! decoding, so an encoded `/` (`%2F`) or `..` never becomes part of a name:
//! no valid repository name, tag or digest holds a `%`. A repository name
//! may hold `/`, so a path is read from its end: `…/tags/list`,
//! `…/manifests/<ref>`, `…/blobs/<digest>`, `…/referrers/<digest>`.

mod auth;
mod blob;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use llmpm_spec::media_type::OCI_INDEX;

use super::AppState;
use crate::registry::distribution::{self as dist, ManifestRef, RegistryError, Repository};
use crate::store::StoreError;

pub(super) use auth::guard;

/// Sent on every `/v2/` answer; Docker-era clients check for it.
const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");

/// The most entries one page of `tags/list` or `_catalog` holds.
const MAX_PAGE: usize = 1000;

/// The `/v2/` routes, every method: writes are answered, refused, here too.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
}

/// Whether `path` is one of ours (the TCP guard treats it as a registry client expects).
pub(super) fn owns(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// An OCI error answer: `{"errors": [{"code", "message", "detail"}]}`.
#[derive(Debug)]
pub struct V2Error {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl V2Error {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> V2Error {
        V2Error {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: HeaderName, value: HeaderValue) -> V2Error {
        self.headers.push((name, value));
        self
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{"code": self.code, "message": self.message, "detail": {}}]
        });
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        for (k, v) in self.headers {
            resp.headers_mut().append(k, v);
        }
        resp.headers_mut().insert(
            HeaderName::from_static(API_VERSION.0),
            HeaderValue::from_static(API_VERSION.1),
        );
        resp
    }
}

impl From<RegistryError> for V2Error {
    fn from(e: RegistryError) -> V2Error {
        let msg = e.to_string();
        match e {
            RegistryError::NameInvalid { .. } => {
                V2Error::new(StatusCode::BAD_REQUEST, "NAME_INVALID", msg)
            }
            RegistryError::NameUnknown(_) | RegistryError::NameShape(_) => {
                V2Error::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", msg)
            }
            RegistryError::ManifestUnknown { .. } => {
                V2Error::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", msg)
            }
            RegistryError::BlobUnknown { .. }
            | RegistryError::Store(StoreError::BlobNotFound(_)) => {
                V2Error::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", msg)
            }
            RegistryError::DigestInvalid(_) => {
                V2Error::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", msg)
            }
            RegistryError::Store(e) => internal(&e),
        }
    }
}

/// A 500 (`UNKNOWN`, distribution's code for it), the cause logged and sent.
fn internal(e: &(dyn std::error::Error + 'static)) -> V2Error {
    let msg = crate::errors::chain(e);
    tracing::error!(error = %msg, "/v2/ request failed");
    V2Error::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", msg)
}

/// What a `/v2/` path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    Base,
    Catalog,
    Token,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

fn endpoint(path: &str) -> Result<Endpoint<'_>, V2Error> {
    if path.contains('%') {
        return Err(V2Error::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            "percent-encoded characters are not allowed in a /v2/ path: no repository name, tag or digest needs one",
        ));
    }
    let rest = path.strip_prefix("/v2").unwrap_or(path);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    match rest {
        "" => return Ok(Endpoint::Base),
        "_catalog" => return Ok(Endpoint::Catalog),
        auth::TOKEN => return Ok(Endpoint::Token),
        _ => {}
    }
    let unknown = || {
        V2Error::new(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            format!("no OCI distribution endpoint at `{}`", clip(path)),
        )
    };
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Ok(Endpoint::Tags(name));
    }
    let (head, reference) = rest.rsplit_once('/').ok_or_else(unknown)?;
    let (name, kind) = head.rsplit_once('/').ok_or_else(unknown)?;
    match kind {
        "manifests" => Ok(Endpoint::Manifest(name, reference)),
        "blobs" => Ok(Endpoint::Blob(name, reference)),
        "referrers" => Ok(Endpoint::Referrers(name, reference)),
        _ => Err(unknown()),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}

/// The query of a `/v2/` request, decoded.
type Params = BTreeMap<String, String>;

async fn dispatch(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let mut resp = match answer(&state, &method, &uri, &headers, query).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.headers_mut().insert(
        HeaderName::from_static(API_VERSION.0),
        HeaderValue::from_static(API_VERSION.1),
    );
    resp
}

async fn answer(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, V2Error> {
    let target = endpoint(uri.path());
    if let Ok(Endpoint::Token) = target {
        return auth::token(&state.config, method, headers);
    }
    // Before the path is judged: a write is refused whatever it names.
    if *method != Method::GET && *method != Method::HEAD {
        return Err(V2Error::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!(
                "{method} is not supported: llmpmd serves its store read-only over /v2/ \
                 (push with `llmpm push` to a registry that takes uploads)"
            ),
        )
        .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD")));
    }
    let target = target?;
    let Query(params) = query.map_err(|e| {
        V2Error::new(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("the query string is malformed: {e}"),
        )
    })?;
    let repo = |name: &str| Repository::parse(name, params.get("ns").map(String::as_str));
    let store = state.store.clone();
    match target {
        Endpoint::Base | Endpoint::Token => {
            Ok(([(header::CONTENT_TYPE, "application/json")], "{}").into_response())
        }
        Endpoint::Catalog => {
            let all = blocking(move || dist::catalog(&store)).await?;
            listing(uri, &params, all, "repositories", None)
        }
        Endpoint::Tags(name) => {
            let repo = repo(name)?;
            let oci = repo.name();
            let all = blocking(move || dist::tags(&store, &repo)).await?;
            listing(uri, &params, all, "tags", Some(oci))
        }
        Endpoint::Manifest(name, reference) => {
            let repo = repo(name)?;
            let r = ManifestRef::parse(reference)?;
            let m = blocking(move || dist::manifest(&store, &repo, &r)).await?;
            if !accepts(headers, &m.media_type) {
                return Err(V2Error::new(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    format!(
                        "the manifest is `{}`, which the request's Accept header does not list",
                        m.media_type
                    ),
                ));
            }
            let len = m.bytes.len();
            let body = if *method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(m.bytes)
            };
            Ok(Response::builder()
                .header(header::CONTENT_TYPE, m.media_type)
                .header(header::CONTENT_LENGTH, len)
                .header("docker-content-digest", m.digest.to_string())
                .header(header::ETAG, format!("\"{}\"", m.digest))
                .body(body)
                .map_err(|e| internal(&e))?)
        }
        Endpoint::Blob(name, digest) => {
            let repo = repo(name)?;
            let digest = dist::parse_digest(digest)?;
            let d = digest.clone();
            let (path, size) = blocking(move || dist::blob(&store, &repo, &d)).await?;
            blob::serve(method, headers, &digest, path, size).await
        }
        Endpoint::Referrers(name, digest) => {
            let repo = repo(name)?;
            let subject = dist::parse_digest(digest)?;
            let filter = params.get("artifactType").cloned();
            let f = filter.clone();
            let found =
                blocking(move || dist::referrers(&store, &repo, &subject, f.as_deref())).await?;
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": found,
            });
            let mut resp = ([(header::CONTENT_TYPE, OCI_INDEX)], index.to_string()).into_response();
            if filter.is_some() {
                resp.headers_mut().insert(
                    HeaderName::from_static("oci-filters-applied"),
                    HeaderValue::from_static("artifactType"),
                );
            }
            Ok(resp)
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, V2Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| internal(&e))?
        .map_err(V2Error::from)
}

/// Whether the request's `Accept` takes `media_type`: no `Accept` takes
/// anything; a `q=0` entry refuses its type.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let mut any_listed = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for entry in value.split(',') {
            let mut parts = entry.split(';').map(str::trim);
            let ty = parts.next().unwrap_or("");
            if ty.is_empty() {
                continue;
            }
            any_listed = true;
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            let matches = ty.eq_ignore_ascii_case(media_type)
                || ty == "*/*"
                || ty
                    .strip_suffix("/*")
                    .is_some_and(|t| media_type.split('/').next() == Some(t));
            if matches && !refused {
                return true;
            }
        }
    }
    !any_listed
}

/// A page of `all` as `{"<key>": […]}` (and `"name"` for tags), with a
/// `Link` to the next page when more follow.
fn listing(
    uri: &Uri,
    params: &Params,
    all: Vec<String>,
    key: &str,
    name: Option<String>,
) -> Result<Response, V2Error> {
    let n = match params.get("n") {
        None => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            V2Error::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("`n` must be a whole number, not `{}`", clip(n)),
            )
        })?),
    };
    let n = n.map(|n| n.min(MAX_PAGE));
    let (items, more) = dist::page(all, n, params.get("last").map(String::as_str));
    let mut body = serde_json::Map::new();
    if let Some(name) = name {
        body.insert("name".into(), name.into());
    }
    let next_last = items.last().cloned();
    body.insert(key.into(), items.into());
    let mut resp = (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::Value::Object(body).to_string(),
    )
        .into_response();
    if let (true, Some(last), Some(n)) = (more, next_last, n) {
        // Names and tags hold only characters a query may carry as they are.
        let mut link = format!("<{}?n={n}&last={last}", uri.path());
        // `ns` was checked as a host name when it named the repository.
        if let (Some(ns), "tags") = (params.get("ns"), key) {
            link.push_str(&format!("&ns={ns}"));
        }
        link.push_str(">; rel=\"next\"");
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests;
