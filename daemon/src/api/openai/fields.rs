//! The OpenAI request fields beyond sampling: those llmpm honours
//! (`suffix`, `logprobs`, `top_logprobs`) read and checked, and those it
//! cannot honour refused with a 400 that names them, so that no field that
//! would change the answer is dropped without a word. Fields that do not
//! change the answer (`user`, `metadata`, `store`, `service_tier`,
//! `prediction`, …) are accepted and ignored, as Ollama does.

use serde::Deserialize;
use serde_json::Value;

use crate::api::error::ApiError;

/// The largest `top_logprobs` (and legacy `logprobs`), as Ollama allows.
pub const MAX_TOP_LOGPROBS: i64 = 20;

/// The fields, flattened into the completion body.
#[derive(Debug, Default, Deserialize)]
pub struct Extra {
    /// `/v1/completions`: the text after the gap (fill-in-the-middle).
    #[serde(default)]
    pub suffix: Option<String>,
    /// Chat: `true` for each token's log-probability; completions: how
    /// many alternatives to list with each (the legacy integer).
    #[serde(default)]
    logprobs: Option<Value>,
    /// Chat: how many alternatives to list with each token.
    #[serde(default)]
    top_logprobs: Option<Value>,
    #[serde(default)]
    n: Option<Value>,
    #[serde(default)]
    best_of: Option<Value>,
    #[serde(default)]
    echo: Option<Value>,
    #[serde(default)]
    logit_bias: Option<Value>,
    #[serde(default)]
    audio: Option<Value>,
    #[serde(default)]
    modalities: Option<Value>,
    #[serde(default)]
    web_search_options: Option<Value>,
}

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// A `0..=MAX_TOP_LOGPROBS` integer field.
fn count(field: &str, v: &Value) -> Result<u32, ApiError> {
    v.as_i64()
        .filter(|n| (0..=MAX_TOP_LOGPROBS).contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            bad(format!(
                "invalid `{field}` {v}: must be an integer between 0 and {MAX_TOP_LOGPROBS}"
            ))
        })
}

impl Extra {
    /// A 400 naming the first field llmpm cannot honour.
    pub fn refuse_unsupported(&self) -> Result<(), ApiError> {
        for (field, v) in [("n", &self.n), ("best_of", &self.best_of)] {
            match v {
                None | Some(Value::Null) => {}
                Some(v) if v.as_i64() == Some(1) => {}
                Some(v) => {
                    return Err(bad(format!(
                        "`{field}` = {v} is not supported: llmpm generates one choice per request; send 1 or make several requests"
                    )))
                }
            }
        }
        if self
            .echo
            .as_ref()
            .is_some_and(|v| v != &Value::Bool(false) && !v.is_null())
        {
            return Err(bad(
                "`echo` is not supported: prepend the prompt to the answer yourself".into(),
            ));
        }
        let empty_map = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
        if self.logit_bias.as_ref().is_some_and(|v| !empty_map(v)) {
            return Err(bad("`logit_bias` is not supported".into()));
        }
        if self.audio.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(bad("`audio` is not supported: llmpm answers in text".into()));
        }
        let text_only = |v: &Value| {
            v.is_null()
                || v.as_array()
                    .is_some_and(|a| a.iter().all(|m| m.as_str() == Some("text")))
        };
        if self.modalities.as_ref().is_some_and(|v| !text_only(v)) {
            return Err(bad(
                "`modalities` other than [\"text\"] are not supported".into()
            ));
        }
        if self
            .web_search_options
            .as_ref()
            .is_some_and(|v| !v.is_null())
        {
            return Err(bad("`web_search_options` is not supported".into()));
        }
        Ok(())
    }

    /// `/v1/chat/completions`: how many alternatives to list with each
    /// token's log-probability, or `None` when `logprobs` is not `true`.
    /// `top_logprobs` without `logprobs: true` is a 400, as OpenAI answers.
    pub fn chat_logprobs(&self) -> Result<Option<u32>, ApiError> {
        let on = match &self.logprobs {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(bad(format!(
                    "invalid `logprobs` {v}: must be true or false"
                )))
            }
        };
        let top = match &self.top_logprobs {
            None | Some(Value::Null) => None,
            Some(v) => Some(count("top_logprobs", v)?),
        };
        match (on, top) {
            (true, top) => Ok(Some(top.unwrap_or(0))),
            (false, Some(n)) if n > 0 => Err(bad("`top_logprobs` needs `logprobs: true`".into())),
            (false, _) => Ok(None),
        }
    }

    /// `/v1/completions`: the legacy integer `logprobs` (alternatives per
    /// token; 0 lists only the chosen token's).
    pub fn completion_logprobs(&self) -> Result<Option<u32>, ApiError> {
        if self.top_logprobs.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(bad(
                "`top_logprobs` is a chat field: /v1/completions takes the number in `logprobs`"
                    .into(),
            ));
        }
        match &self.logprobs {
            None | Some(Value::Null) => Ok(None),
            Some(v) => count("logprobs", v).map(Some),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn extra(v: Value) -> Extra {
        serde_json::from_value(v).unwrap()
    }

    fn refused(v: Value) -> String {
        extra(v.clone())
            .refuse_unsupported()
            .err()
            .unwrap_or_else(|| panic!("{v} accepted"))
            .to_string()
    }

    #[test]
    fn what_would_change_the_answer_is_refused_by_name() {
        for (body, field) in [
            (json!({"n": 2}), "`n`"),
            (json!({"best_of": 3}), "`best_of`"),
            (json!({"echo": true}), "`echo`"),
            (json!({"logit_bias": {"50256": -100}}), "`logit_bias`"),
            (json!({"audio": {"voice": "alloy"}}), "`audio`"),
            (json!({"modalities": ["text", "audio"]}), "`modalities`"),
            (json!({"web_search_options": {}}), "`web_search_options`"),
        ] {
            assert!(refused(body.clone()).contains(field), "{body}");
        }
        // What changes nothing, or asks for what we do anyway, passes.
        let fine = json!({"n": 1, "best_of": null, "echo": false, "logit_bias": {},
            "modalities": ["text"], "user": "u", "metadata": {"a": "b"}, "store": false});
        extra(fine).refuse_unsupported().unwrap();
    }

    #[test]
    fn logprobs_fields_per_route() {
        assert_eq!(extra(json!({})).chat_logprobs().unwrap(), None);
        assert_eq!(
            extra(json!({"logprobs": true})).chat_logprobs().unwrap(),
            Some(0)
        );
        assert_eq!(
            extra(json!({"logprobs": true, "top_logprobs": 5}))
                .chat_logprobs()
                .unwrap(),
            Some(5)
        );
        assert_eq!(
            extra(json!({"logprobs": false, "top_logprobs": 0}))
                .chat_logprobs()
                .unwrap(),
            None
        );
        for bad in [
            json!({"logprobs": true, "top_logprobs": 99}),
            json!({"logprobs": true, "top_logprobs": -1}),
            json!({"top_logprobs": 3}),
            json!({"logprobs": 3}),
        ] {
            let e = extra(bad.clone()).chat_logprobs().unwrap_err().to_string();
            assert!(e.contains("logprobs`"), "{bad}: {e}");
        }
        assert_eq!(
            extra(json!({"logprobs": 3})).completion_logprobs().unwrap(),
            Some(3)
        );
        assert_eq!(
            extra(json!({"logprobs": 0})).completion_logprobs().unwrap(),
            Some(0)
        );
        assert!(extra(json!({"logprobs": 21}))
            .completion_logprobs()
            .is_err());
        assert!(extra(json!({"logprobs": true}))
            .completion_logprobs()
            .is_err());
    }
}
