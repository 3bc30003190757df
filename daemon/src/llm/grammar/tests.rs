//! What `check` accepts and refuses, and how the request fields read.
#![allow(clippy::unwrap_used)]

use super::*;

fn schema(v: Value) -> Result<(), GrammarError> {
    check(&Constraint::JsonSchema { schema: v })
}

#[test]
fn supported_schemas_pass() {
    let ok = [
        json!({}),
        json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
            "additionalProperties": false}),
        json!({"type": "array", "items": {"enum": ["x", "y"]}, "minItems": 1, "maxItems": 3}),
        json!({"$defs": {"p": {"type": "object", "properties": {"n": {"const": 1}}}},
            "type": "object", "properties": {"p": {"$ref": "#/$defs/p"}}}),
        json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]}),
        json!({"type": "string", "pattern": "^[a-z]+[0-9]{2}$"}),
        json!({"type": "string", "format": "date"}),
        json!({"title": "T", "description": "d", "type": "boolean"}),
    ];
    for s in ok {
        assert_eq!(schema(s.clone()), Ok(()), "{s}");
    }
}

#[test]
fn unsupported_keywords_are_named_with_their_place() {
    let e = schema(json!({"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}}}))
    .unwrap_err();
    assert_eq!(
        e,
        GrammarError::Unsupported {
            keyword: "uniqueItems".into(),
            at: "/properties/tags".into()
        }
    );
    assert!(e.to_string().contains("`uniqueItems`"), "{e}");
    for (s, kw) in [
        (
            json!({"oneOf": [{"type": "string"}, {"type": "null"}]}),
            "oneOf",
        ),
        (json!({"not": {"type": "string"}}), "not"),
        (json!({"anyOf": [{"type": "string", "if": {}}]}), "if"),
        (
            json!({"$defs": {"a/b": {"propertyNames": {}}}}),
            "propertyNames",
        ),
        (
            json!({"type": "object", "x-guidance": {"lenient": true}}),
            "x-guidance",
        ),
    ] {
        match schema(s.clone()) {
            Err(GrammarError::Unsupported { keyword, .. }) => assert_eq!(keyword, kw, "{s}"),
            other => panic!("{s}: {other:?}"),
        }
    }
    // Data is not searched for keywords.
    assert_eq!(schema(json!({"enum": [{"not": 1}, 2]})), Ok(()));
    assert_eq!(schema(json!({"const": {"if": 2}})), Ok(()));
}

#[test]
fn what_is_not_a_schema_is_refused() {
    for s in [
        json!({"type": 5}),
        json!({"type": "objekt"}),
        json!({"type": "object", "properties": []}),
        json!({"type": "string", "format": "no-such-format"}),
        json!({"type": "object", "required": "a"}),
        json!({"$ref": "#/$defs/missing"}),
    ] {
        match schema(s.clone()) {
            Err(GrammarError::Schema(m)) => assert!(!m.is_empty()),
            other => panic!("{s}: {other:?}"),
        }
    }
}

#[test]
fn lark_grammars_with_embedded_json_compile() {
    let tool = r#"start: "<tool_call>\n" %json{"type":"object","properties":{"name":{"const":"f"}},"required":["name"]} "\n</tool_call>""#;
    assert_eq!(
        check(&Constraint::Lark {
            grammar: tool.into()
        }),
        Ok(())
    );
    let bad = check(&Constraint::Lark {
        grammar: "start: nowhere".into(),
    });
    assert!(matches!(bad, Err(GrammarError::Lark(_))), "{bad:?}");
}

#[test]
fn format_and_response_format_read() {
    assert_eq!(from_format(None), Ok(None));
    assert_eq!(from_format(Some(&json!(""))), Ok(None));
    assert_eq!(
        from_format(Some(&json!("json"))),
        Ok(Some(Constraint::Json))
    );
    let s = json!({"type": "object"});
    assert_eq!(
        from_format(Some(&s)),
        Ok(Some(Constraint::JsonSchema { schema: s.clone() }))
    );
    assert!(matches!(
        from_format(Some(&json!(5))),
        Err(GrammarError::Shape(_))
    ));
    assert!(matches!(
        from_format(Some(&json!("xml"))),
        Err(GrammarError::Shape(_))
    ));

    let rf = |v: Value| from_response_format(Some(&v));
    assert_eq!(rf(json!({"type": "text"})), Ok(None));
    assert_eq!(
        rf(json!({"type": "json_object"})),
        Ok(Some(Constraint::Json))
    );
    assert_eq!(
        rf(
            json!({"type": "json_schema", "json_schema": {"name": "n", "schema": s, "strict": true}})
        ),
        Ok(Some(Constraint::JsonSchema { schema: s.clone() }))
    );
    for bad in [
        json!({"type": "json_schema"}),
        json!({"type": "json_schema", "json_schema": {"schema": 3}}),
        json!({"type": "xml"}),
        json!({}),
    ] {
        assert!(
            matches!(rf(bad.clone()), Err(GrammarError::Shape(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        rf(json!({"type": "json_schema", "json_schema": {"schema": {"not": {}}}})),
        Err(GrammarError::Unsupported { .. })
    ));
}

#[test]
fn schema_order_and_layout_reach_the_grammar() {
    // The options block is the engine's; the caller's schema is untouched.
    let s = json!({"type": "object", "properties": {"b": {}, "a": {}}});
    let g = top_level(&Constraint::JsonSchema { schema: s.clone() });
    let compiled = g.grammars[0].json_schema.as_ref().unwrap();
    let keys: Vec<&String> = compiled["properties"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["b", "a"], "properties keep their order");
    assert_eq!(compiled["x-guidance"]["whitespace_flexible"], false);
}
