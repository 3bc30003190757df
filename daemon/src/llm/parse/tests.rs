use futures_util::StreamExt;
use serde_json::json;

use super::*;
use crate::llm::protocol::CompletionChunk;

/// Everything `parser` makes of `pieces`, finished.
fn run(mut parser: OutputParser, pieces: &[&str]) -> (String, String, Vec<FoundCall>) {
    let (mut thinking, mut content, mut calls) = (String::new(), String::new(), Vec::new());
    let mut take = |p: Parsed| {
        thinking.push_str(&p.thinking);
        content.push_str(&p.content);
        calls.extend(p.calls);
    };
    for p in pieces {
        take(parser.push(p));
    }
    take(parser.finish());
    (thinking, content, calls)
}

/// `text` cut at every character boundary into two pieces, and into
/// single characters: each way must read the same as `text` whole.
fn every_split(text: &str, make: impl Fn() -> OutputParser) -> (String, String, Vec<FoundCall>) {
    let whole = run(make(), &[text]);
    for (i, _) in text.char_indices().skip(1) {
        let (a, b) = text.split_at(i);
        assert_eq!(run(make(), &[a, b]), whole, "split at {i}: {a:?} | {b:?}");
    }
    let chars: Vec<String> = text.chars().map(String::from).collect();
    let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
    assert_eq!(run(make(), &chars), whole, "one character at a time");
    whole
}

fn think() -> OutputParser {
    OutputParser::new(Some(ThinkingParser::new("<think>", "</think>")), None)
}

fn tools(tag: &str, names: &[&str]) -> OutputParser {
    let names = names.iter().map(|s| (*s).to_owned()).collect();
    OutputParser::new(None, Some(ToolParser::new(tag, None, names)))
}

fn call(name: &str, args: serde_json::Value) -> FoundCall {
    FoundCall {
        name: name.into(),
        arguments: args.as_object().unwrap().clone(),
    }
}

#[test]
fn reasoning_is_split_from_the_answer_at_every_boundary() {
    let (t, c, _) = every_split("  <think>\nLet me see… 2+2.\n</think>\n\nIt is 4.", think);
    assert_eq!((t.as_str(), c.as_str()), ("Let me see… 2+2.\n", "It is 4."));
    // No tags: the text as it came, leading whitespace included.
    let (t, c, _) = every_split("\n Just an answer <think>", think);
    assert_eq!((t.as_str(), c.as_str()), ("", "\n Just an answer <think>"));
    // Text that began like the tag but was not.
    let (t, c, _) = every_split("<thin air", think);
    assert_eq!((t.as_str(), c.as_str()), ("", "<thin air"));
    // Reasoning never closed stays reasoning.
    let (t, c, _) = every_split("<think>still going </th", think);
    assert_eq!((t.as_str(), c.as_str()), ("still going </th", ""));
}

#[test]
fn a_prompt_that_opened_the_tag_starts_inside_the_reasoning() {
    let opened = || {
        OutputParser::new(
            Some(ThinkingParser::new("<think>", "</think>").opened()),
            None,
        )
    };
    let (t, c, _) = every_split("hmm.</think>Yes.", opened);
    assert_eq!((t.as_str(), c.as_str()), ("hmm.", "Yes."));
}

#[test]
fn qwen_calls_after_text_are_found_whole() {
    let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}\n</tool_call>";
    let (_, c, calls) = every_split(text, || tools("<tool_call>", &["get_weather", "get_time"]));
    assert_eq!(c, "Let me check.\n");
    assert_eq!(
        calls,
        vec![
            call("get_weather", json!({"city": "Paris", "days": 2})),
            call("get_time", json!({"tz": "CET"})),
        ]
    );
}

#[test]
fn an_answer_that_opens_with_a_bare_call_is_one_whatever_the_tag() {
    let make = || tools("<tool_call>", &["get_weather"]);
    let (_, c, calls) = every_split(
        "\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}",
        make,
    );
    assert_eq!(
        (c.as_str(), calls),
        ("\n", vec![call("get_weather", json!({"city": "Paris"}))])
    );
    // JSON that is no call, or JSON after text, stays text.
    let (_, c, calls) = every_split("{\"city\": \"Paris\"} is it", make);
    assert_eq!(
        (c.as_str(), calls.len()),
        ("{\"city\": \"Paris\"} is it", 0)
    );
    let (_, c, calls) = every_split("So: {\"name\": \"get_weather\"}", make);
    assert_eq!(
        (c.as_str(), calls.len()),
        ("So: {\"name\": \"get_weather\"}", 0)
    );
}

#[test]
fn text_that_only_looked_like_a_call_is_released() {
    let make = || tools("<tool_call>", &["get_weather"]);
    let (_, c, calls) = every_split("a <tool_cal> b <tool", make);
    assert_eq!((c.as_str(), calls.len()), ("a <tool_cal> b <tool", 0));
    // Bare JSON that is no call, and JSON after text, are text.
    let bare = || tools("{", &["get_weather"]);
    let (_, c, calls) = every_split("{\"answer\": 42}", bare);
    assert_eq!((c.as_str(), calls.len()), ("{\"answer\": 42}", 0));
    let (_, c, calls) = every_split("Here: {\"name\": \"get_weather\"}", bare);
    assert_eq!(
        (c.as_str(), calls.len()),
        ("Here: {\"name\": \"get_weather\"}", 0)
    );
}

#[test]
fn malformed_json_after_the_tag_comes_back_as_text() {
    let text =
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": }}\n</tool_call>";
    let (_, c, calls) = every_split(text, || tools("<tool_call>", &["get_weather"]));
    assert_eq!((c.as_str(), calls.len()), (text, 0));
}

#[test]
fn llama_bare_json_mistral_lists_and_python_tag() {
    // Llama 3.x: a bare object with "parameters" (a JSON text of one is
    // read too); whitespace before it is text, as in Ollama.
    let text = " {\"name\": \"get_weather\", \"parameters\": \"{\\\"city\\\": \\\"Oslo\\\"}\"}";
    let (_, c, calls) = every_split(text, || tools("{", &["get_weather"]));
    assert_eq!(
        (c.as_str(), calls),
        (" ", vec![call("get_weather", json!({"city": "Oslo"}))])
    );
    // Llama 3.1 may write <|python_tag|> first.
    let py = || {
        let p = ToolParser::new("{", Some("<|python_tag|>"), vec!["get_weather".into()]);
        OutputParser::new(None, Some(p))
    };
    let (_, c, calls) = every_split(
        "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {}}",
        py,
    );
    assert_eq!(
        (c.as_str(), calls),
        ("", vec![call("get_weather", json!({}))])
    );
    // Mistral: a list after [TOOL_CALLS]; a call without arguments has none.
    let text = "[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {\"x\": 1}}, {\"name\": \"b\"}]";
    let (_, c, calls) = every_split(text, || tools("[TOOL_CALLS] [", &["a", "b"]));
    assert_eq!(
        (c.as_str(), calls),
        ("", vec![call("a", json!({"x": 1})), call("b", json!({}))])
    );
}

#[test]
fn the_name_in_the_call_decides_between_tools() {
    // "get" appears first (inside the arguments), but the call names "get_all".
    let text = "<tool_call>{\"arguments\": {\"q\": \"get\"}, \"name\": \"get_all\"}";
    let (_, _, calls) = every_split(text, || tools("<tool_call>", &["get", "get_all"]));
    assert_eq!(calls, vec![call("get_all", json!({"q": "get"}))]);
}

#[test]
fn reasoning_then_a_call() {
    let make = || {
        OutputParser::new(
            Some(ThinkingParser::new("<think>", "</think>")),
            Some(ToolParser::new("<tool_call>", None, vec!["f".into()])),
        )
    };
    let (t, c, calls) = every_split(
        "<think>need f</think>\n<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>",
        make,
    );
    assert_eq!((t.as_str(), c.as_str()), ("need f", ""));
    assert_eq!(calls, vec![call("f", json!({}))]);
}

#[tokio::test]
async fn events_come_out_split_numbered_and_done_last() {
    let chunks = [
        "<think>a",
        "b</think>Hi ",
        "<tool_call>{\"name\": \"f\", \"argu",
        "ments\": {\"n\": 1}}",
    ];
    let mut items: Vec<Result<Event, crate::llm::LlmError>> = chunks
        .iter()
        .map(|c| Ok(Event::Text((*c).into())))
        .collect();
    items.push(Ok(Event::Done(CompletionChunk {
        content: "<tool_call>{\"name\": \"f\", \"arguments\": {}}".into(),
        done: true,
        ..CompletionChunk::default()
    })));
    let parser = OutputParser::new(
        Some(ThinkingParser::new("<think>", "</think>")),
        Some(ToolParser::new("<tool_call>", None, vec!["f".into()])),
    );
    let events: Vec<Event> = parse_events(futures_util::stream::iter(items).boxed(), parser)
        .map(Result::unwrap)
        .collect()
        .await;
    let mut kinds = Vec::new();
    for e in &events {
        kinds.push(match e {
            Event::Thinking(t) => format!("thinking:{t}"),
            Event::Logprobs(_) => unreachable!("no log-probabilities were asked for"),
            Event::Text(t) => format!("text:{t}"),
            Event::ToolCall(c) => {
                assert!(c.id.starts_with("call_") && c.id.len() == 13, "{}", c.id);
                format!(
                    "call{}:{}:{}",
                    c.function.index,
                    c.function.name,
                    json!(c.function.arguments)
                )
            }
            Event::Done(c) => format!("done:{}", c.content),
        });
    }
    assert_eq!(
        kinds,
        [
            "thinking:a",
            "thinking:b",
            "text:Hi ",
            "call0:f:{\"n\":1}",
            "call1:f:{}",
            "done:"
        ]
    );
}
