//! Registry authentication: parsing `WWW-Authenticate`, fetching Bearer tokens (anonymous or with a login), Basic.
//!
//! The token flow is Docker's, which the OCI registries share: a 401 names a
//! realm (the token endpoint), a service and a scope; `GET
//! realm?service=…&scope=…` (with Basic credentials when we have them)
//! answers `{"token": …}` or `{"access_token": …}`, sent as `Bearer` on the
//! retried request. See <https://distribution.github.io/distribution/spec/auth/token/>.

use std::collections::BTreeMap;

use base64::Engine as _;
use llmpm_spec::credentials::Credential;
use reqwest::Url;
use serde::Deserialize;

use super::TransferError;

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic`, lower case.
    pub scheme: String,
    /// Its parameters, names in lower case.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter by (lower-case) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses a `WWW-Authenticate` value (RFC 7235): `Scheme k=v, k="quoted, \"v\""`.
/// Several challenges in one header are split on the scheme tokens; the
/// first Bearer one wins, else the first one.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut challenges: Vec<Challenge> = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        // A scheme token, then parameters until the next scheme token.
        let end = rest
            .find(|c: char| c.is_whitespace() || c == ',')
            .unwrap_or(rest.len());
        let token = &rest[..end];
        let after = rest[end..].trim_start();
        if token.is_empty() {
            rest = after.trim_start_matches(',').trim_start();
            continue;
        }
        if token.contains('=') || after.starts_with('=') {
            // A parameter belongs to the current challenge.
            let cur = challenges.last_mut()?;
            let (name, value, remaining) = parse_param(rest)?;
            cur.params.insert(name, value);
            rest = remaining.trim_start().trim_start_matches(',').trim_start();
            continue;
        }
        challenges.push(Challenge {
            scheme: token.to_ascii_lowercase(),
            params: BTreeMap::new(),
        });
        rest = after;
    }
    let bearer = challenges.iter().position(|c| c.scheme == "bearer");
    match bearer {
        Some(i) => Some(challenges.swap_remove(i)),
        None => challenges.into_iter().next(),
    }
}

/// `name=value` or `name="quoted"` at the start of `s`: name, value, the rest.
fn parse_param(s: &str) -> Option<(String, String, &str)> {
    let (name, rest) = s.split_once('=')?;
    let name = name.trim().to_ascii_lowercase();
    let rest = rest.trim_start();
    if let Some(q) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(n);
                    }
                }
                '"' => return Some((name, value, &q[i + 1..])),
                _ => value.push(c),
            }
        }
        None // unterminated quote
    } else {
        let end = rest.find(',').unwrap_or(rest.len());
        Some((name, rest[..end].trim().to_owned(), &rest[end..]))
    }
}

/// `Basic base64(user:password)`.
pub fn basic(cred: &Credential) -> String {
    let raw = format!("{}:{}", cred.username, cred.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// The longest token response read.
const MAX_TOKEN_BODY: usize = 1 << 20;

/// Answers a Bearer challenge: fetches a token for `scope` (the challenge's
/// own scope when it names one) and returns the `Authorization` value.
pub async fn bearer_token(
    http: &reqwest::Client,
    challenge: &Challenge,
    fallback_scope: &str,
    cred: Option<&Credential>,
    host: &str,
    insecure: bool,
) -> Result<String, TransferError> {
    let unauthorized = |message: String| TransferError::Unauthorized {
        host: host.to_owned(),
        message,
    };
    let realm = challenge
        .param("realm")
        .ok_or_else(|| unauthorized("its Bearer challenge names no realm".into()))?;
    let mut url = Url::parse(realm)
        .map_err(|e| unauthorized(format!("its token realm `{realm}` is not a URL: {e}")))?;
    if url.scheme() != "https" && !(insecure && url.scheme() == "http") {
        return Err(TransferError::Insecure(realm.to_owned()));
    }
    {
        let mut q = url.query_pairs_mut();
        if let Some(service) = challenge.param("service") {
            q.append_pair("service", service);
        }
        let scope = challenge.param("scope").unwrap_or(fallback_scope);
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            q.append_pair("scope", s);
        }
    }
    let mut req = http.get(url.clone());
    if let Some(c) = cred {
        req = req.header(reqwest::header::AUTHORIZATION, basic(c));
    }
    let resp = req.send().await.map_err(|source| TransferError::Connect {
        url: url.to_string(),
        source,
    })?;
    let status = resp.status();
    let body = super::body::read_limited(resp, MAX_TOKEN_BODY, url.as_str()).await?;
    if !status.is_success() {
        let msg = super::body::error_message(status, &body);
        return Err(if status.as_u16() == 401 || status.as_u16() == 403 {
            unauthorized(format!("its token server said: {msg}"))
        } else {
            TransferError::Status {
                method: "GET".into(),
                url: url.to_string(),
                status: status.as_u16(),
                message: msg,
            }
        });
    }
    let t: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| unauthorized(format!("its token server sent no token: {e}")))?;
    let token = t
        .token
        .or(t.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthorized("its token server sent an empty token".into()))?;
    Ok(format!("Bearer {token}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/ubuntu:pull"));
    }

    #[test]
    fn parses_quoted_commas_escapes_and_several_challenges() {
        let c = parse_challenge(
            r#"Basic realm="x", BEARER realm="https://a/t", scope="repository:a/b:pull,push", error="say \"hi\"""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(c.param("error"), Some(r#"say "hi""#));
        let b = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(b.scheme, "basic");
        assert_eq!(b.param("realm"), Some("Registry Realm"));
        let unquoted = parse_challenge("Bearer realm=https://h/t,service=s").unwrap();
        assert_eq!(unquoted.param("realm"), Some("https://h/t"));
        assert_eq!(unquoted.param("service"), Some("s"));
        assert!(parse_challenge("").is_none());
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }

    #[test]
    fn basic_header() {
        let c = Credential {
            username: "aladdin".into(),
            password: "opensesame".into(),
        };
        assert_eq!(basic(&c), "Basic YWxhZGRpbjpvcGVuc2VzYW1l");
    }
}
