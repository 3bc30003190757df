//! Reading a registry's answers: whole bodies with a size limit, and the readable message of an error answer.
//!
//! A leaf below `client` and `auth`, which both read token, manifest and
//! error bodies this way.

use reqwest::{Response, StatusCode, Url};

use super::TransferError;

/// Reads a whole body, refusing one longer than `limit` bytes (a registry
/// that sends an endless body is cut off there).
pub async fn read_limited(
    mut resp: Response,
    limit: usize,
    url: &str,
) -> Result<Vec<u8>, TransferError> {
    let mut out = Vec::new();
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|source| TransferError::Connect {
                url: url.to_owned(),
                source,
            })?;
        let Some(chunk) = chunk else { return Ok(out) };
        if out.len() + chunk.len() > limit {
            let host = Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(TransferError::Invalid {
                host,
                message: format!("the answer to `{url}` is longer than {limit} bytes"),
            });
        }
        out.extend_from_slice(&chunk);
    }
}

/// The readable message of an error answer: the OCI `{"errors": [{code,
/// message, detail}]}`, else an `{"error"}`, else the text, else the reason.
pub fn error_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(errs) = v.get("errors").and_then(|e| e.as_array()) {
            let parts: Vec<String> = errs
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    let detail = match e.get("detail") {
                        None | Some(serde_json::Value::Null) => String::new(),
                        Some(serde_json::Value::String(s)) if s.is_empty() => String::new(),
                        Some(serde_json::Value::String(s)) => format!(" ({s})"),
                        Some(d) => format!(" ({d})"),
                    };
                    match (code.is_empty(), msg.is_empty()) {
                        (false, false) => format!("{code}: {msg}{detail}"),
                        (false, true) => format!("{code}{detail}"),
                        _ => format!("{msg}{detail}"),
                    }
                })
                .filter(|s| !s.is_empty())
                .collect();
            if !parts.is_empty() {
                return parts.join("; ");
            }
        }
        if let Some(msg) = v.get("error").and_then(|e| e.as_str()) {
            return msg.to_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if !text.is_empty() && text.len() <= 300 {
        return text.to_owned();
    }
    match status.canonical_reason() {
        Some(r) => format!("{} {r}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn oci_error_bodies_read_well() {
        let s = StatusCode::NOT_FOUND;
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"v9"}}]}"#;
        assert_eq!(
            error_message(s, body),
            r#"MANIFEST_UNKNOWN: manifest unknown ({"Tag":"v9"})"#
        );
        assert_eq!(
            error_message(
                s,
                br#"{"errors":[{"code":"DENIED","message":"no"},{"code":"X","message":"y"}]}"#
            ),
            "DENIED: no; X: y"
        );
        assert_eq!(
            error_message(s, br#"{"error":"pull access denied"}"#),
            "pull access denied"
        );
        assert_eq!(error_message(s, b"  not here \n"), "not here");
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, b""),
            "502 Bad Gateway"
        );
    }
}
