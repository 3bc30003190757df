//! `POST /api/rerank` and `/v1/rerank`: a reranker's relevance scores of
//! `documents` for a `query`, in llama-server's (Jina's, Cohere's) shape:
//! `results: [{index, relevance_score}]`, best first, cut to `top_n`. The
//! score is the model's raw logit, as llama-server answers it. Models
//! without the `rerank` capability get a 400 that says so.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{model_name, ApiJson};
use super::models::resolve;
use super::AppState;
use crate::llm::client::ClientError;
use crate::llm::{Capability, LlmError};
use crate::sched::LoadRequest;

/// The most documents one request may rerank: each is a forward pass, and
/// a request is served whole before the next.
pub const MAX_DOCUMENTS: usize = 1024;

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// A request, read and checked.
#[derive(Debug, PartialEq)]
struct Ask {
    model: String,
    query: String,
    documents: Vec<String>,
    top_n: usize,
    return_documents: bool,
}

fn read(body: &Value) -> Result<Ask, ApiError> {
    let model = model_name(body)?;
    let query = match body.get("query") {
        Some(Value::String(q)) if !q.is_empty() => q.clone(),
        Some(Value::String(_)) => return Err(bad("`query` must not be empty".into())),
        Some(_) => return Err(bad("`query` must be a string".into())),
        None => return Err(bad("missing `query`".into())),
    };
    // llama-server also reads `texts` (TEI's name).
    let list = match body.get("documents").or_else(|| body.get("texts")) {
        Some(Value::Array(l)) => l,
        Some(_) => return Err(bad("`documents` must be a list of strings".into())),
        None => return Err(bad("missing `documents`".into())),
    };
    if list.is_empty() {
        return Err(bad("`documents` must not be empty".into()));
    }
    if list.len() > MAX_DOCUMENTS {
        return Err(bad(format!(
            "`documents` has {} entries; llmpm reranks at most {MAX_DOCUMENTS} per request: \
             send them in several requests",
            list.len()
        )));
    }
    let documents = list
        .iter()
        .enumerate()
        .map(|(i, d)| match d {
            Value::String(s) => Ok(s.clone()),
            // Cohere's and Jina's object form.
            Value::Object(o) => o
                .get("text")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("`documents[{i}]` has no `text`"))),
            _ => Err(bad(format!("`documents[{i}]` must be a string"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let top_n = match body.get("top_n") {
        None | Some(Value::Null) => documents.len(),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                bad(format!(
                    "invalid `top_n` {v}: must be an integer of at least 1"
                ))
            })?
            .min(documents.len()),
    };
    let return_documents = body
        .get("return_documents")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Ask {
        model,
        query,
        documents,
        top_n,
        return_documents,
    })
}

/// A 400 for an embedding request to a reranker, which scores pairs and
/// has no sentence embedding.
pub fn refuse_reranker(model: &super::Model, name: &str) -> Result<(), ApiError> {
    if model.can(Capability::Rerank) {
        return Err(bad(format!(
            "{} is a reranker: it scores documents for a query (POST /api/rerank) \
             and gives no embeddings",
            llmpm_spec::quote::go_quote(name)
        )));
    }
    Ok(())
}

/// `POST /api/rerank` and `/v1/rerank`.
pub async fn rerank(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let ask = read(&body)?;
    let resolved = resolve(&state, &ask.model).await?;
    if !resolved.can(Capability::Rerank) {
        let caps: Vec<&str> = resolved.capabilities.iter().map(|c| c.as_str()).collect();
        return Err(bad(format!(
            "{} is not a reranker (its capabilities: {}): rerank needs a model with the \
             `rerank` capability, such as a BERT-family cross-encoder",
            llmpm_spec::quote::go_quote(&ask.model),
            caps.join(", ")
        )));
    }
    let opts = resolved.options(None)?;
    let lease = state
        .sched
        .acquire(LoadRequest::new(&resolved, &opts, None))
        .await?;
    let scored = match lease
        .runner()
        .rerank(ask.query.clone(), ask.documents.clone())
        .await
    {
        Ok(s) => s,
        // What the runner refuses here is the input (a query too long for the context).
        Err(LlmError::Runner(ClientError::Runner(msg))) => return Err(bad(msg)),
        Err(e) => return Err(e.into()),
    };
    let mut results: Vec<(usize, f32)> = scored
        .embeddings
        .iter()
        .enumerate()
        .map(|(i, v)| (i, v.first().copied().unwrap_or(f32::NAN)))
        .collect();
    results.sort_by(|a, b| b.1.total_cmp(&a.1));
    results.truncate(ask.top_n);
    let results: Vec<Value> = results
        .into_iter()
        .map(|(index, score)| {
            let mut r = json!({"index": index, "relevance_score": score});
            if ask.return_documents {
                r["document"] = json!({"text": ask.documents[index]});
            }
            r
        })
        .collect();
    let n = scored.prompt_eval_count;
    Ok(Json(json!({
        "model": ask.model, "object": "list", "results": results,
        "usage": {"prompt_tokens": n, "total_tokens": n},
    })))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_and_checked() {
        let a = read(&json!({"model": "m", "query": "q",
            "documents": ["a", {"text": "b"}], "top_n": 5}))
        .unwrap();
        assert_eq!(a.documents, ["a", "b"]);
        assert_eq!(a.top_n, 2);
        let many: Vec<Value> = (0..10_000).map(|i| json!(format!("d{i}"))).collect();
        for (body, says) in [
            (
                json!({"model": "m", "query": "q", "documents": many}),
                "at most 1024",
            ),
            (
                json!({"model": "m", "query": "q", "documents": []}),
                "must not be empty",
            ),
            (json!({"model": "m", "documents": ["a"]}), "missing `query`"),
            (
                json!({"model": "m", "query": "q", "documents": [1]}),
                "`documents[0]`",
            ),
            (
                json!({"model": "m", "query": "q", "documents": ["a"], "top_n": 0}),
                "`top_n`",
            ),
        ] {
            let e = read(&body).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
