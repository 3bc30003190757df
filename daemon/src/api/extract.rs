//! `ApiJson`: a JSON body extractor whose rejections are `{"error": …}` with
//! status 400, and the readers of loosely typed JSON bodies (Responses,
//! Messages, rerank) whose refusals name the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;

/// Like `axum::Json`, but any content type is accepted (curl's `-d` sends a
/// form type, and Ollama accepts it) and every failure is a readable 400.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest(
                "missing request body: send a JSON object".into(),
            ));
        }
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON request body: {e}")))
    }
}

/// A field of a JSON body, when present and not `null`.
pub fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

/// The body's `model`, which must be a non-empty string.
pub fn model_name(body: &Value) -> Result<String, ApiError> {
    body.get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::BadRequest("missing `model`".into()))
}

/// Each entry of the list `name` (absent or `null`: none), read by `read`
/// with its index.
pub fn list_of<T>(
    body: &Value,
    name: &str,
    read: impl Fn(usize, &Value) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let Some(list) = field(body, name) else {
        return Ok(Vec::new());
    };
    list.as_array()
        .ok_or_else(|| ApiError::BadRequest(format!("`{name}` must be a list")))?
        .iter()
        .enumerate()
        .map(|(i, v)| read(i, v))
        .collect()
}

/// Copies the number fields `from` of `body` into `options` as `to` (the
/// Ollama option), each checked to be a number.
pub fn numbers_into(
    body: &Value,
    options: &mut serde_json::Map<String, Value>,
    fields: &[(&str, &str)],
) -> Result<(), ApiError> {
    for (from, to) in fields {
        if let Some(v) = field(body, from) {
            if !v.is_number() {
                return Err(ApiError::BadRequest(format!(
                    "invalid `{from}` {v}: must be a number"
                )));
            }
            options.insert((*to).into(), v.clone());
        }
    }
    Ok(())
}
