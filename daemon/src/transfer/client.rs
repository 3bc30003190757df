//! HTTP to one OCI registry: URLs, `Accept`, auth on 401, redirects without leaking `Authorization`, retries, error bodies.
//!
//! Redirects are followed here, not by reqwest, so that `Authorization` goes
//! only to the registry's own origin: a blob redirected to a CDN or another
//! host is fetched without it (its URL carries its own signature). Requests
//! are retried on 429, 5xx and broken connections with exponential backoff
//! and jitter; bodies are `Bytes`, so a retry or a redirect can resend them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use llmpm_spec::credentials::Credential;
use reqwest::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode, Url};

use super::auth::{self, Challenge};
use super::body::{error_message, read_limited};
use super::options::{backoff, TransferOptions};
use super::ratelimit::Limits;
use super::TransferError;

/// The most redirects one request follows.
const MAX_REDIRECTS: usize = 10;
/// The most of an error body read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The HTTP clients, built once per daemon so connections are pooled.
#[derive(Debug, Clone)]
pub struct Http {
    verified: reqwest::Client,
    /// For `--insecure`: certificates not verified (plain HTTP is allowed too).
    unverified: reqwest::Client,
}

impl Http {
    /// Builds the clients; `stall` bounds the wait for any single read.
    pub fn new(stall: Duration) -> Result<Http, reqwest::Error> {
        // reqwest is built without a default crypto provider (see Cargo.toml);
        // ring is ours. Installing twice is harmless: the first one stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let build = |verify: bool| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("llmpm/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(30))
                .read_timeout(stall)
                .tcp_nodelay(true)
                .no_proxy()
                .tls_danger_accept_invalid_certs(!verify)
                .build()
        };
        Ok(Http {
            verified: build(true)?,
            unverified: build(false)?,
        })
    }
}

/// One registry, as one pull or push talks to it: its base URL, login and tokens.
#[derive(Debug)]
pub struct Registry {
    http: reqwest::Client,
    base: Url,
    host: String,
    insecure: bool,
    cred: Option<Credential>,
    /// Scope → `Authorization` value that worked (a Bearer token or Basic).
    auth: Mutex<HashMap<String, String>>,
    opts: TransferOptions,
}

/// Whether two URLs share scheme, host and port: `Authorization` is sent only within one.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

impl Registry {
    /// The registry at `host` (`name[:port]`): `https`, or `http` with `insecure`.
    pub fn new(
        http: &Http,
        host: &str,
        insecure: bool,
        cred: Option<Credential>,
        opts: TransferOptions,
    ) -> Result<Arc<Registry>, TransferError> {
        let scheme = if insecure { "http" } else { "https" };
        let base =
            Url::parse(&format!("{scheme}://{host}/")).map_err(|e| TransferError::Invalid {
                host: host.to_owned(),
                message: format!("not a usable host: {e}"),
            })?;
        Ok(Registry::at(
            http,
            base,
            host.to_owned(),
            insecure,
            cred,
            opts,
        ))
    }

    /// The registry at `base` (a mirror's URL, ending in `/`), named `host`
    /// in messages. A plain `http://` base is allowed: it was configured so.
    pub fn at(
        http: &Http,
        base: Url,
        host: String,
        insecure: bool,
        cred: Option<Credential>,
        opts: TransferOptions,
    ) -> Arc<Registry> {
        let plain = base.scheme() == "http";
        Arc::new(Registry {
            http: if insecure {
                http.unverified.clone()
            } else {
                http.verified.clone()
            },
            base,
            host,
            insecure: insecure || plain,
            cred,
            auth: Mutex::new(HashMap::new()),
            opts,
        })
    }

    /// Where this registry is, as progress reports it: `https://host[:port]`.
    pub fn origin(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The registry host as named.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `/v2/<path>` on this registry.
    pub fn url(&self, path: &str) -> Result<Url, TransferError> {
        self.base
            .join(&format!("v2/{path}"))
            .map_err(|e| self.invalid(format!("cannot build a URL for `{path}`: {e}")))
    }

    /// A URL the registry gave (`Location`), relative to `base`.
    pub fn resolve(&self, base: &Url, location: &str) -> Result<Url, TransferError> {
        base.join(location)
            .map_err(|e| self.invalid(format!("`Location: {location}` is not a URL: {e}")))
    }

    pub(crate) fn invalid(&self, message: String) -> TransferError {
        TransferError::Invalid {
            host: self.host.clone(),
            message,
        }
    }

    fn cached_auth(&self, scope: &str) -> Option<String> {
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(scope)
            .cloned()
    }

    fn remember_auth(&self, scope: &str, value: String) {
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(scope.to_owned(), value);
    }

    async fn answer_challenge(&self, header: &str, scope: &str) -> Result<String, TransferError> {
        let challenge: Challenge =
            auth::parse_challenge(header).ok_or_else(|| TransferError::Unauthorized {
                host: self.host.clone(),
                message: format!("unreadable challenge `WWW-Authenticate: {header}`"),
            })?;
        match challenge.scheme.as_str() {
            "bearer" => {
                auth::bearer_token(
                    &self.http,
                    &challenge,
                    scope,
                    self.cred.as_ref(),
                    &self.host,
                    self.insecure,
                )
                .await
            }
            "basic" => match &self.cred {
                Some(c) => Ok(auth::basic(c)),
                None => Err(TransferError::Unauthorized {
                    host: self.host.clone(),
                    message: "it asks for a user name and password".into(),
                }),
            },
            other => Err(TransferError::Unauthorized {
                host: self.host.clone(),
                message: format!(
                    "it asks for `{other}` authentication, which llmpm does not speak"
                ),
            }),
        }
    }

    /// Sends a request with retries (429, 5xx, broken connections), auth and
    /// redirects. Any final status is returned; see [`Registry::check`].
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
        scope: &str,
    ) -> Result<Response, TransferError> {
        self.send_limited(method, url, headers, body, scope, &Limits::default())
            .await
    }

    /// [`Registry::send`], the body paced by `limits` (a push's upload limits).
    pub async fn send_limited(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
        scope: &str,
        limits: &Limits,
    ) -> Result<Response, TransferError> {
        let max = self.opts.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let res = self
                .send_once(
                    method.clone(),
                    url.clone(),
                    &headers,
                    body.clone(),
                    scope,
                    limits,
                )
                .await;
            let retry_after = match &res {
                Ok(r) if is_retryable_status(r.status()) => Some(retry_after(r)),
                Err(e) if e.is_retryable() => Some(None),
                _ => None,
            };
            match retry_after {
                Some(wait) if attempt < max => {
                    tracing::info!(%url, attempt, "registry request failed; retrying");
                    match wait {
                        Some(d) => tokio::time::sleep(d).await,
                        None => backoff(self.opts.retry_base, attempt).await,
                    }
                }
                Some(_) if attempt > 1 => {
                    let last = match res {
                        Ok(r) => self.check(r, &method).await.err(),
                        Err(e) => Some(e),
                    };
                    return Err(match last {
                        Some(last) => TransferError::Exhausted {
                            what: url.to_string(),
                            attempts: attempt,
                            last: Box::new(last),
                        },
                        None => self.invalid("a failed answer turned into a success".into()),
                    });
                }
                _ => return res,
            }
        }
    }

    async fn send_once(
        &self,
        mut method: Method,
        mut url: Url,
        headers: &HeaderMap,
        mut body: Option<Bytes>,
        scope: &str,
        limits: &Limits,
    ) -> Result<Response, TransferError> {
        let mut hops = 0;
        let mut answered = false;
        loop {
            if url.scheme() != "https" && !(self.insecure && url.scheme() == "http") {
                return Err(TransferError::Insecure(url.to_string()));
            }
            let own = same_origin(&url, &self.base);
            let mut rb = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if own {
                if let Some(a) = self.cached_auth(scope) {
                    rb = rb.header(AUTHORIZATION, a);
                }
            }
            match &body {
                Some(b) if limits.is_limited() && !b.is_empty() => {
                    // Declared, so the registry sees an ordinary upload, not chunked encoding.
                    rb = rb
                        .header(CONTENT_LENGTH, b.len())
                        .body(reqwest::Body::wrap_stream(paced(b.clone(), limits.clone())));
                }
                Some(b) => rb = rb.body(b.clone()),
                None => {}
            }
            let resp = rb.send().await.map_err(|source| TransferError::Connect {
                url: url.to_string(),
                source,
            })?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && own && !answered {
                let Some(h) = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                else {
                    return Ok(resp);
                };
                let value = self.answer_challenge(h, scope).await?;
                self.remember_auth(scope, value);
                answered = true;
                continue;
            }
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                hops += 1;
                if hops > MAX_REDIRECTS {
                    return Err(
                        self.invalid(format!("more than {MAX_REDIRECTS} redirects for `{url}`"))
                    );
                }
                let loc = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        self.invalid(format!("a {status} without `Location` for `{url}`"))
                    })?
                    .to_owned();
                let next = self.resolve(&url, &loc)?;
                tracing::debug!(from = %url, to = %next, "following redirect");
                if status == StatusCode::SEE_OTHER {
                    method = Method::GET;
                    body = None;
                }
                url = next;
                continue;
            }
            return Ok(resp);
        }
    }

    /// A success passes; an error status becomes a readable error (the OCI
    /// error body decoded).
    pub async fn check(&self, resp: Response, method: &Method) -> Result<Response, TransferError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let url = resp.url().to_string();
        let body = read_limited(resp, MAX_ERROR_BODY, &url)
            .await
            .unwrap_or_default();
        let message = error_message(status, &body);
        Err(match status.as_u16() {
            401 | 403 => TransferError::Unauthorized {
                host: self.host.clone(),
                message,
            },
            s => TransferError::Status {
                method: method.to_string(),
                url,
                status: s,
                message,
            },
        })
    }
}

/// Bytes handed to the connection per pacing step of a limited upload.
const UPLOAD_SLICE: usize = 64 * 1024;

/// `body` as a stream of slices, each let through by `limits`.
fn paced(
    body: Bytes,
    limits: Limits,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold((body, limits), |(mut rest, limits)| async move {
        if rest.is_empty() {
            return None;
        }
        let piece = rest.split_to(rest.len().min(UPLOAD_SLICE));
        limits.acquire(piece.len()).await;
        Some((Ok(piece), (rest, limits)))
    })
}

fn is_retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

/// A `Retry-After` in seconds, honoured up to 30 s (longer waits back off normally).
fn retry_after(r: &Response) -> Option<Duration> {
    let secs: u64 = r
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs <= 30).then(|| Duration::from_secs(secs))
}

/// `Accept` for every manifest type llmpm reads.
pub fn accept_manifests() -> HeaderMap {
    let mut h = HeaderMap::new();
    let all = llmpm_spec::media_type::MANIFEST_TYPES.join(", ");
    if let Ok(v) = HeaderValue::from_str(&all) {
        h.insert(reqwest::header::ACCEPT, v);
    }
    h
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn redirect_policy_keeps_authorization_at_home() {
        let home = Url::parse("https://registry.example/v2/a/b/blobs/x").unwrap();
        for same in [
            "https://registry.example/other",
            "https://REGISTRY.example:443/x",
        ] {
            assert!(same_origin(&home, &Url::parse(same).unwrap()), "{same}");
        }
        for other in [
            "https://cdn.example/blob",
            "http://registry.example/x",
            "https://registry.example:8443/x",
            "https://registry.example.evil/x",
        ] {
            assert!(!same_origin(&home, &Url::parse(other).unwrap()), "{other}");
        }
    }

    #[test]
    fn accept_lists_every_manifest_type() {
        let h = accept_manifests();
        let v = h.get(reqwest::header::ACCEPT).unwrap().to_str().unwrap();
        for t in llmpm_spec::media_type::MANIFEST_TYPES {
            assert!(v.contains(t), "{t}");
        }
    }
}
