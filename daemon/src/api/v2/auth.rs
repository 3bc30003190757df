//! Who may read `/v2/` over TCP, asked the way registry clients expect: a `401` with a Bearer challenge whose realm, `/v2/token`, trades the API key (as a Basic password) for a token that is the key itself.
//!
//! The rules are the rest of the API's (`api::check_tcp`): with an API key
//! configured (required for a non-loopback bind) every TCP request must
//! present it; without one only loopback Host names are answered. The unix
//! socket needs nothing. A registry client presents the key as `Bearer
//! <key>` (after the token dance) or as the password of Basic credentials.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::V2Error;
use crate::config::Config;

/// The token realm's path under `/v2/`.
pub(super) const TOKEN: &str = "token";

/// The service name in challenges.
const SERVICE: &str = "llmpmd";

/// The TCP guard for `/v2/` paths.
pub(in crate::api) async fn guard(config: &Config, req: Request, next: Next) -> Response {
    match check(config, req.method(), req.headers(), req.uri().path()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

pub(super) fn check(
    config: &Config,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
) -> Result<(), V2Error> {
    match &config.api_key {
        // The realm checks its own (Basic) credentials.
        Some(_) if path.trim_end_matches('/') == format!("/v2/{TOKEN}") => Ok(()),
        Some(key) if presented_key(headers).as_deref() == Some(key.as_str()) => Ok(()),
        Some(_) => Err(challenge(headers)),
        None => crate::api::check_tcp(config, method, headers)
            .map_err(|e| V2Error::new(StatusCode::FORBIDDEN, "DENIED", e.to_string())),
    }
}

/// The key a request carries: a Bearer token, or a Basic password.
pub(super) fn presented_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        return text
            .split_once(':')
            .map(|(_, password)| password.to_owned());
    }
    None
}

/// The 401 a registry client answers by fetching a token from the realm.
fn challenge(headers: &HeaderMap) -> V2Error {
    let e = V2Error::new(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required: this llmpmd needs its API key (LLMPM_API_KEY), as a Bearer \
         token or as the password of Basic credentials (e.g. `skopeo --creds any:KEY`)",
    );
    // The realm is on the host the client reached; a Host that could break
    // out of the quoted value gets a Basic challenge instead.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c))
        });
    let value = match host {
        Some(h) => format!("Bearer realm=\"http://{h}/v2/{TOKEN}\",service=\"{SERVICE}\""),
        None => format!("Basic realm=\"{SERVICE}\""),
    };
    match HeaderValue::from_str(&value) {
        Ok(v) => e.with_header(header::WWW_AUTHENTICATE, v),
        Err(_) => e,
    }
}

/// `GET /v2/token`: the token for the key, which is the key itself. Without
/// a key configured there is nothing to guard and the token is a placeholder.
pub(super) fn token(
    config: &Config,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response, V2Error> {
    if *method != Method::GET && *method != Method::HEAD {
        return Err(V2Error::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!("{method} is not supported on the token realm: use GET with Basic credentials"),
        )
        .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD")));
    }
    let token = match &config.api_key {
        None => "anonymous".to_owned(),
        Some(key) if presented_key(headers).as_deref() == Some(key.as_str()) => key.clone(),
        Some(_) => {
            return Err(V2Error::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "send the API key as the password of Basic credentials (any user name)",
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"llmpmd\""),
            ));
        }
    };
    let body = serde_json::json!({"token": token, "access_token": token});
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}
