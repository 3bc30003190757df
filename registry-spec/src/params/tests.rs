//! Tests of the PARAMETER table, value parsing and [`Parameters`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use serde_json::json;

#[test]
fn names_match_the_table() {
    let names: Vec<&str> = PARAMS.iter().map(|spec| spec.name).collect();
    assert_eq!(names, PARAM_NAMES);
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
}

#[test]
fn kinds() {
    assert_eq!(param_kind("num_ctx"), Some(ParamKind::Int));
    assert_eq!(param_kind("temperature"), Some(ParamKind::Float));
    assert_eq!(param_kind("use_mmap"), Some(ParamKind::Bool));
    assert_eq!(param_kind("stop"), Some(ParamKind::String));
    assert_eq!(param_kind("mirostat"), Some(ParamKind::Int));
    assert_eq!(param_kind("numa"), Some(ParamKind::Bool));
    assert_eq!(param_kind("Temperature"), None);
    assert_eq!(param_kind("nope"), None);
}

#[test]
fn insert_raw_parses_like_strconv() {
    let mut p = Parameters::new();
    p.insert_raw("num_ctx", "4096").unwrap();
    p.insert_raw("seed", "-1").unwrap();
    p.insert_raw("top_k", "+40").unwrap();
    p.insert_raw("temperature", "0.7").unwrap();
    p.insert_raw("top_p", "1").unwrap();
    p.insert_raw("min_p", "5e-2").unwrap();
    p.insert_raw("use_mmap", "false").unwrap();
    p.insert_raw("penalize_newline", "T").unwrap();
    p.insert_raw("stop", "\"<|eot_id|>\"").unwrap();
    p.insert_raw("stop", "### User:").unwrap();
    p.insert_raw("stop", "\"\"\"a \"quoted\" stop\"\"\"")
        .unwrap();
    assert_eq!(p.get("num_ctx"), Some(&ParamValue::Int(4096)));
    assert_eq!(p.get("seed"), Some(&ParamValue::Int(-1)));
    assert_eq!(p.get("top_k"), Some(&ParamValue::Int(40)));
    assert_eq!(p.get("temperature"), Some(&ParamValue::Float(0.7)));
    assert_eq!(p.get("top_p"), Some(&ParamValue::Float(1.0)));
    assert_eq!(p.get("min_p"), Some(&ParamValue::Float(0.05)));
    assert_eq!(p.get("use_mmap"), Some(&ParamValue::Bool(false)));
    assert_eq!(p.get("penalize_newline"), Some(&ParamValue::Bool(true)));
    assert_eq!(p.get("stop"), None);
    assert_eq!(
        p.stop(),
        vec!["<|eot_id|>", "### User:", "a \"quoted\" stop"]
    );
    // Replacing keeps the place and the count.
    p.insert_raw("num_ctx", "8192").unwrap();
    assert_eq!(p.get("num_ctx").and_then(ParamValue::as_i64), Some(8192));
    assert_eq!(p.names().next(), Some("num_ctx"));
    assert_eq!(p.len(), 9);
}

#[test]
fn insert_raw_errors() {
    let mut p = Parameters::new();
    let err = p.insert_raw("num_ctx", "abc").unwrap_err();
    assert_eq!(
        err,
        ParamError::Type {
            name: "num_ctx".into(),
            expected: ParamKind::Int,
            value: "abc".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "invalid value `abc` for parameter `num_ctx`: expected an integer"
    );
    for (name, bad) in [
        ("num_ctx", "3.0"),
        ("num_ctx", "1_000"),
        ("num_ctx", "99999999999999999999"),
        ("temperature", "warm"),
        ("temperature", "NaN"),
        ("temperature", "inf"),
        ("use_mmap", "yes"),
        ("use_mmap", ""),
    ] {
        assert!(
            matches!(p.insert_raw(name, bad), Err(ParamError::Type { .. })),
            "{name} {bad}"
        );
    }
    assert_eq!(
        p.insert_raw("temprature", "1").unwrap_err().to_string(),
        "unknown parameter `temprature`; did you mean `temperature`?"
    );
    let far = p.insert_raw("xyzzy", "1").unwrap_err().to_string();
    assert!(far.starts_with("unknown parameter `xyzzy`; expected one of: num_keep, seed,"));
    assert!(!far.contains("mirostat"));
    assert!(p.is_empty());
}

#[test]
fn insert_json_types() {
    let mut p = Parameters::new();
    p.insert_json("num_ctx", &json!(3.0)).unwrap();
    p.insert_json("temperature", &json!(1)).unwrap();
    p.insert_json("top_p", &json!("0.5")).unwrap();
    p.insert_json("use_mmap", &json!(true)).unwrap();
    p.insert_json("stop", &json!(["a", "b"])).unwrap();
    assert_eq!(p.get("num_ctx"), Some(&ParamValue::Int(3)));
    assert_eq!(p.get("temperature"), Some(&ParamValue::Float(1.0)));
    assert_eq!(p.get("top_p"), Some(&ParamValue::Float(0.5)));
    assert_eq!(p.stop(), vec!["a", "b"]);
    // A single string replaces the whole list.
    p.insert_json("stop", &json!("c")).unwrap();
    assert_eq!(p.stop(), vec!["c"]);
    // null unsets.
    p.insert_json("use_mmap", &Value::Null).unwrap();
    assert!(!p.contains("use_mmap"));

    let err = p.insert_json("num_ctx", &json!(3.5)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value `3.5` for parameter `num_ctx`: expected an integer"
    );
    let err = p.insert_json("num_ctx", &json!("x")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value `\"x\"` for parameter `num_ctx`: expected an integer"
    );
    for (name, bad) in [
        ("num_ctx", json!(true)),
        ("num_ctx", json!(1e30)),
        ("num_ctx", json!(u64::MAX)),
        ("temperature", json!([1])),
        ("use_mmap", json!(1)),
        ("stop", json!([1])),
        ("stop", json!(1)),
        ("stop", json!({"a": "b"})),
    ] {
        assert!(
            matches!(p.insert_json(name, &bad), Err(ParamError::Type { .. })),
            "{name} {bad}"
        );
    }
    assert!(matches!(
        p.insert_json("bogus", &json!(1)),
        Err(ParamError::Unknown { .. })
    ));
    assert_eq!(p.stop(), vec!["c"]);
}

#[test]
fn json_round_trip_is_sorted_with_stop_as_array() {
    let mut p = Parameters::new();
    p.insert_raw("temperature", "0.7").unwrap();
    p.insert_raw("stop", "a").unwrap();
    p.insert_raw("stop", "b").unwrap();
    p.insert_raw("num_ctx", "4096").unwrap();
    let text = serde_json::to_string(&p).unwrap();
    assert_eq!(
        text,
        r#"{"num_ctx":4096,"stop":["a","b"],"temperature":0.7}"#
    );
    assert_eq!(serde_json::Value::Object(p.to_json()).to_string(), text);
    let back: Parameters = serde_json::from_str(&text).unwrap();
    assert_eq!(back, p);
    assert!(serde_json::from_str::<Parameters>(r#"{"num_ctx":"big"}"#).is_err());
    assert!(serde_json::from_str::<Parameters>(r#"{"nope":1}"#).is_err());
    assert!(serde_json::from_str::<Parameters>("[]").is_err());
}

#[test]
fn lossy_skips_bad_entries() {
    let object = json!({"num_ctx": 2048, "gpu_layers": 3, "top_k": "many"});
    let (p, skipped) = Parameters::from_json_lossy(object.as_object().unwrap());
    assert_eq!(p.get("num_ctx"), Some(&ParamValue::Int(2048)));
    assert_eq!(p.len(), 1);
    assert_eq!(skipped.len(), 2);
}

#[test]
fn show_lines() {
    let mut p = Parameters::new();
    p.insert_raw("stop", "<|start_header_id|>").unwrap();
    p.insert("stop", ParamValue::Str("say \"hi\"\n".into()))
        .unwrap();
    p.insert_raw("temperature", "1").unwrap();
    p.insert_raw("num_ctx", "4096").unwrap();
    p.insert_raw("use_mmap", "true").unwrap();
    let expected = [
        format!("{:<30} \"<|start_header_id|>\"", "stop"),
        format!("{:<30} \"say \\\"hi\\\"\\n\"", "stop"),
        format!("{:<30} 1", "temperature"),
        format!("{:<30} 4096", "num_ctx"),
        format!("{:<30} true", "use_mmap"),
    ];
    assert_eq!(p.to_modelfile_lines(), expected);
    assert_eq!(p.to_string(), expected.join("\n"));
    assert!(p
        .to_string()
        .starts_with("stop                           \"<|"));
}

#[test]
fn merge_overrides_and_replaces_stop() {
    let mut base = Parameters::new();
    base.insert_raw("stop", "a").unwrap();
    base.insert_raw("stop", "b").unwrap();
    base.insert_raw("temperature", "0.2").unwrap();
    base.insert_raw("num_ctx", "2048").unwrap();
    let mut new = Parameters::new();
    new.insert_raw("stop", "c").unwrap();
    new.insert_raw("temperature", "0.9").unwrap();
    new.insert_raw("seed", "7").unwrap();
    base.merge(&new);
    assert_eq!(base.stop(), vec!["c"]);
    assert_eq!(base.get("temperature"), Some(&ParamValue::Float(0.9)));
    assert_eq!(base.get("num_ctx"), Some(&ParamValue::Int(2048)));
    assert_eq!(base.get("seed"), Some(&ParamValue::Int(7)));
    assert_eq!(base.len(), 4);
}

#[test]
fn equality_ignores_order_and_retain_filters() {
    let mut a = Parameters::new();
    a.insert_raw("seed", "1").unwrap();
    a.insert_raw("mirostat", "2").unwrap();
    let mut b = Parameters::new();
    b.insert_raw("mirostat", "2").unwrap();
    b.insert_raw("seed", "1").unwrap();
    assert_eq!(a, b);
    a.retain(|spec| spec.status == ParamStatus::Current);
    assert_ne!(a, b);
    assert_eq!(a.names().collect::<Vec<_>>(), vec!["seed"]);
    assert!(b.remove("mirostat"));
    assert!(!b.remove("mirostat"));
    assert_eq!(a, b);
}

#[test]
fn typed_insert_coerces() {
    let mut p = Parameters::new();
    p.insert("temperature", ParamValue::Int(1)).unwrap();
    p.insert("num_ctx", ParamValue::Float(2048.0)).unwrap();
    p.insert("num_batch", ParamValue::Str("16".into())).unwrap();
    assert_eq!(p.get("temperature"), Some(&ParamValue::Float(1.0)));
    assert_eq!(p.get("num_ctx"), Some(&ParamValue::Int(2048)));
    assert_eq!(p.get("num_batch"), Some(&ParamValue::Int(16)));
    assert!(p.insert("num_ctx", ParamValue::Float(0.5)).is_err());
    assert!(p
        .insert("temperature", ParamValue::Float(f64::NAN))
        .is_err());
    assert!(p.insert("use_mmap", ParamValue::Int(1)).is_err());
    assert!(p.insert("stop", ParamValue::Bool(true)).is_err());
}

#[test]
fn param_value_serde_is_plain() {
    assert_eq!(serde_json::to_string(&ParamValue::Int(3)).unwrap(), "3");
    assert_eq!(
        serde_json::to_string(&ParamValue::Float(0.5)).unwrap(),
        "0.5"
    );
    assert_eq!(
        serde_json::to_string(&ParamValue::Bool(true)).unwrap(),
        "true"
    );
    assert_eq!(
        serde_json::to_string(&ParamValue::Str("x".into())).unwrap(),
        "\"x\""
    );
    assert_eq!(
        serde_json::from_str::<ParamValue>("3").unwrap(),
        ParamValue::Int(3)
    );
    assert_eq!(
        serde_json::from_str::<ParamValue>("3.5").unwrap(),
        ParamValue::Float(3.5)
    );
}

#[test]
fn long_values_are_shortened_in_messages() {
    let long = "x".repeat(500);
    let msg = Parameters::new()
        .insert_raw("num_ctx", &long)
        .unwrap_err()
        .to_string();
    assert!(msg.len() < 120, "{msg}");
    assert!(msg.contains('…'));
}
