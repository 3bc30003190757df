//! Wire-shape tests of the API types.

use super::*;

#[test]
fn model_wins_over_name_and_name_is_the_fallback() {
    // Open WebUI sends both; Ollama answers for `model`.
    let r: PullRequest =
        serde_json::from_str(r#"{"name": "old:1", "model": "new:2", "stream": false}"#).unwrap();
    assert_eq!(r.model, "new:2");
    assert_eq!(r.stream, Some(false));
    for body in [
        r#"{"name": "a"}"#,
        r#"{"name": "a", "model": ""}"#,
        r#"{"name": "a", "model": null}"#,
    ] {
        let s: ShowRequest = serde_json::from_str(body).unwrap();
        assert_eq!(s.model, "a", "{body}");
        let d: DeleteRequest = serde_json::from_str(body).unwrap();
        assert_eq!(d.model, "a", "{body}");
        let c: CreateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(c.model, "a", "{body}");
    }
    let c: CreateRequest =
        serde_json::from_str(r#"{"model": "m", "name": "n", "from": "base"}"#).unwrap();
    assert_eq!((c.model.as_str(), c.from.as_deref()), ("m", Some("base")));
    // Serialized with `model` only, and read back the same.
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["model"], "m");
    assert!(json.get("name").is_none());
    assert_eq!(serde_json::from_value::<CreateRequest>(json).unwrap(), c);
    // A wrong type is still an error that names what was expected.
    let e = serde_json::from_str::<DeleteRequest>(r#"{"model": 5}"#).unwrap_err();
    assert!(e.to_string().contains("string"), "{e}");
    assert!(serde_json::from_str::<DeleteRequest>("{}").is_err());
}

#[test]
fn logprobs_requests_and_answers_in_ollamas_shape() {
    let req: GenerateRequest = serde_json::from_str(
        r#"{"model": "m", "prompt": "p", "logprobs": true, "top_logprobs": 3}"#,
    )
    .unwrap();
    assert_eq!(req.logprobs.requested(), Ok(Some(3)));
    let chat: ChatRequest = serde_json::from_str(r#"{"model": "m"}"#).unwrap();
    assert_eq!(chat.logprobs.requested(), Ok(None));
    for (l, top, err) in [
        (true, 21, "top_logprobs must be between 0 and 20"),
        (true, -1, "top_logprobs must be between 0 and 20"),
        (false, 2, "`top_logprobs` needs `logprobs: true`"),
    ] {
        let r = Logprobs {
            logprobs: l,
            top_logprobs: Some(top),
        };
        assert_eq!(r.requested(), Err(err.to_owned()));
    }
    // An answer line: `logprobs` beside the text, `bytes` as numbers, the
    // empty parts left out as Ollama's `omitempty` does.
    let line = GenerateResponse {
        model: "m".into(),
        response: "Hi".into(),
        logprobs: vec![Logprob {
            token: TokenLogprob {
                token: "Hi".into(),
                logprob: -0.5,
                bytes: Some(b"Hi".to_vec()),
            },
            top_logprobs: vec![],
        }],
        ..GenerateResponse::default()
    };
    let v = serde_json::to_value(&line).unwrap();
    assert_eq!(
        v["logprobs"],
        serde_json::json!([{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}])
    );
    assert!(v.get("_debug_info").is_none());
    let back: GenerateResponse = serde_json::from_value(v).unwrap();
    assert_eq!(back, line);
}

#[test]
fn limit_rate_reads_bytes_or_a_rate_and_progress_source_is_additive() {
    let r = |body: &str| serde_json::from_str::<PullRequest>(body);
    assert_eq!(r(r#"{"model": "m"}"#).unwrap().limit_rate, None);
    assert_eq!(
        r(r#"{"model": "m", "limit_rate": 1000}"#)
            .unwrap()
            .limit_rate,
        Some(1000)
    );
    assert_eq!(
        r(r#"{"model": "m", "limit_rate": "50MB/s"}"#)
            .unwrap()
            .limit_rate,
        Some(50 << 20)
    );
    for bad in [r#""fast""#, "0", "-1"] {
        let e = r(&format!(r#"{{"model": "m", "limit_rate": {bad}}}"#)).unwrap_err();
        assert!(e.to_string().contains("limit_rate"), "{bad}: {e}");
    }
    // Ollama's progress line, unchanged when no source is known.
    let p = ProgressResponse::status("success");
    assert_eq!(
        serde_json::to_string(&p).unwrap(),
        r#"{"status":"success"}"#
    );
}
