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
