//! The Responses request reading and event stream, without a model.
#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn input_items_become_messages() {
    let body = json!({"instructions": "be brief", "input": [
        {"role": "developer", "content": "sys2"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hmm"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"x\": 1}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
    ]});
    let m = messages(&body).unwrap();
    let roles: Vec<&str> = m.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "system", "user", "assistant", "tool"]);
    assert_eq!(m[3].thinking, "hmm");
    assert_eq!(m[3].tool_calls[0].function.arguments["x"], 1);
    assert_eq!(
        (m[4].tool_name.as_str(), m[4].content.as_str()),
        ("f", "42")
    );
    assert_eq!(messages(&json!({"input": "hey"})).unwrap()[0].role, "user");
}

/// The event names of a stream and each event's data.
pub(crate) fn parse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (name, data) = f.split_once("\ndata: ").unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            (name, serde_json::from_str(data).unwrap())
        })
        .collect()
}

pub(crate) fn sample_events() -> Vec<Event> {
    let call = ToolCall {
        id: "call_1".into(),
        function: ToolCallFunction {
            index: 0,
            name: "f".into(),
            arguments: json!({"x": 1}).as_object().unwrap().clone(),
        },
    };
    let last = CompletionChunk {
        done: true,
        prompt_eval_count: 7,
        eval_count: 5,
        ..CompletionChunk::default()
    };
    vec![
        Event::Thinking("hm".into()),
        Event::Thinking("m".into()),
        Event::Text("Hi".into()),
        Event::ToolCall(call),
        Event::Done(last),
    ]
}

#[tokio::test]
async fn reasoning_text_and_a_call_stream_as_output_items() {
    let echo = Echo {
        id: "resp_1".into(),
        model: "m".into(),
        created: 0,
        body: json!({}),
    };
    let mut s = Streamer::new(echo);
    let body = stream::events_body(sample_events(), move |e, f| s.on(e, f)).await;
    let evs = parse_events(&body);
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let done = &evs.last().unwrap().1["response"];
    let kinds: Vec<&str> = done["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reasoning", "message", "function_call"]);
    assert_eq!(done["output"][0]["summary"][0]["text"], "hmm");
    assert_eq!(done["output"][2]["arguments"], "{\"x\":1}");
    assert_eq!(done["usage"]["total_tokens"], 12);
    // Each item's index is its place in `output`.
    assert_eq!(evs[14].1["output_index"], 2);
}

#[test]
fn bad_input_is_refused_by_name() {
    for (body, says) in [
        (
            json!({"input": [{"type": "computer_call"}]}),
            "unknown `input[0].type`",
        ),
        (
            json!({"input": [{"type": "function_call_output", "call_id": "x", "output": "1"}]}),
            "`input[0].call_id`",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}),
            "`input[0].content[0]`",
        ),
        (json!({"input": 3}), "invalid `input`"),
        (json!({}), "missing `input`"),
    ] {
        let e = messages(&body).unwrap_err().to_string();
        assert!(e.contains(says), "{body}: {e}");
    }
    let e = refuse_stateful(&json!({"previous_response_id": "resp_1"})).unwrap_err();
    assert!(e.to_string().contains("`previous_response_id`"));
    let e = tools(&json!({"tools": [{"type": "web_search"}]})).unwrap_err();
    assert!(e.to_string().contains("`tools[0]`"));
    assert_eq!(
        tool_choice(&json!({"tool_choice": {"type": "function", "name": "f"}})).unwrap(),
        ToolChoice::Function("f".into())
    );
    assert!(constraint(&json!({"text": {"format": {"type": "json_schema"}}})).is_err());
}
