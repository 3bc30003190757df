//! Tests for the Jinja chat templates: real Llama 3.1/3.2, Qwen 2.5 and
//! Gemma 3 templates against Python jinja2 references, and the limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const LLAMA31: &str = include_str!("../testdata/jinja/llama3.1.jinja");
const LLAMA32: &str = include_str!("../testdata/jinja/llama3.2.jinja");
const QWEN25: &str = include_str!("../testdata/jinja/qwen2.5.jinja");
const GEMMA3: &str = include_str!("../testdata/jinja/gemma3.jinja");

/// Reference renderings produced with Python jinja2 3.1.6 in transformers'
/// environment (sandboxed, trim_blocks, lstrip_blocks, loopcontrols, its
/// `tojson`); `{TODAY}` stands for `strftime_now("%d %b %Y")`.
const LLAMA31_CHAT: &str = r####"<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023
Today Date: 26 Jul 2024

You are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>

Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>

Hello! How can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>

Tell me a joke.<|eot_id|><|start_header_id|>assistant<|end_header_id|>

"####;
const LLAMA31_TOOLS: &str = r####"<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Environment: ipython
Cutting Knowledge Date: December 2023
Today Date: 26 Jul 2024

You are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.Do not use variables.

{
    "function": {
        "description": "Get the current weather",
        "name": "get_weather",
        "parameters": {
            "properties": {
                "city": {
                    "description": "City name, e.g. Paris & <Lyon>",
                    "type": "string"
                }
            },
            "required": [
                "city"
            ],
            "type": "object"
        }
    },
    "type": "function"
}

What's the weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>

"22°C, sunny"<|eot_id|><|start_header_id|>assistant<|end_header_id|>

"####;
const LLAMA32_CHAT: &str = r####"<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023
Today Date: {TODAY}

You are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>

Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>

Hello! How can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>

Tell me a joke.<|eot_id|><|start_header_id|>assistant<|end_header_id|>

"####;
const LLAMA32_NOGEN: &str = r####"<|begin_of_text|><|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023
Today Date: {TODAY}

<|eot_id|><|start_header_id|>user<|end_header_id|>

Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>

Hello! How can I help?<|eot_id|><|start_header_id|>user<|end_header_id|>

Tell me a joke.<|eot_id|>"####;
const QWEN25_CHAT: &str = r####"<|im_start|>system
You are terse.<|im_end|>
<|im_start|>user
Hi<|im_end|>
<|im_start|>assistant
Hello! How can I help?<|im_end|>
<|im_start|>user
Tell me a joke.<|im_end|>
<|im_start|>assistant
"####;
const QWEN25_NOSYS: &str = r####"<|im_start|>system
You are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>
<|im_start|>user
Hi<|im_end|>
<|im_start|>assistant
Hello! How can I help?<|im_end|>
<|im_start|>user
Tell me a joke.<|im_end|>
<|im_start|>assistant
"####;
const QWEN25_TOOLS: &str = r####"<|im_start|>system
You are Qwen, created by Alibaba Cloud. You are a helpful assistant.

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{"function": {"description": "Get the current weather", "name": "get_weather", "parameters": {"properties": {"city": {"description": "City name, e.g. Paris & <Lyon>", "type": "string"}}, "required": ["city"], "type": "object"}}, "type": "function"}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
<|im_start|>user
What's the weather in Paris?<|im_end|>
<|im_start|>assistant
<tool_call>
{"name": "get_weather", "arguments": {"city": "Paris"}}
</tool_call><|im_end|>
<|im_start|>user
<tool_response>
22°C, sunny
</tool_response><|im_end|>
<|im_start|>assistant
"####;
const GEMMA3_CHAT: &str = r####"<bos><start_of_turn>user
You are terse.

Hi<end_of_turn>
<start_of_turn>model
Hello! How can I help?<end_of_turn>
<start_of_turn>user
Tell me a joke.<end_of_turn>
<start_of_turn>model
"####;
const GEMMA3_BAD: &str =
    r####"RAISED:Conversation roles must alternate user/assistant/user/assistant/..."####;

fn chat() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new("system", "You are terse."),
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Hello! How can I help?"),
        ChatMessage::new("user", "Tell me a joke."),
    ]
}

fn tools() -> serde_json::Value {
    serde_json::json!([{"function": {"description": "Get the current weather", "name": "get_weather",
        "parameters": {"properties": {"city": {"description": "City name, e.g. Paris & <Lyon>", "type": "string"}},
        "required": ["city"], "type": "object"}}, "type": "function"}])
}

fn tool_conversation() -> Vec<ChatMessage> {
    let mut call = ChatMessage::new("assistant", "");
    call.tool_calls = vec![
        serde_json::json!({"function": {"arguments": {"city": "Paris"}, "name": "get_weather"}, "type": "function"}),
    ];
    let mut result = ChatMessage::new("tool", "22°C, sunny");
    result.tool_name = "get_weather".into();
    vec![
        ChatMessage::new("user", "What's the weather in Paris?"),
        call,
        result,
    ]
}

fn today(s: &str) -> String {
    s.replace(
        "{TODAY}",
        &strftime("%d %b %Y", crate::template::unix_now()),
    )
}

const BOS3: &str = "<|begin_of_text|>";

#[test]
fn llama31() {
    let t = JinjaTemplate::new(LLAMA31).unwrap();
    assert_eq!(
        t.render(&chat(), true, BOS3, "<|eot_id|>").unwrap(),
        LLAMA31_CHAT
    );
    let mut conv = vec![ChatMessage::new("system", "You are terse.")];
    conv.extend(tool_conversation());
    assert_eq!(
        t.render_with_tools(&conv, Some(&tools()), true, BOS3, "")
            .unwrap(),
        LLAMA31_TOOLS
    );
}

#[test]
fn llama32() {
    let t = JinjaTemplate::new(LLAMA32).unwrap();
    assert_eq!(
        t.render(&chat(), true, BOS3, "").unwrap(),
        today(LLAMA32_CHAT)
    );
    assert_eq!(
        t.render(&chat()[1..], false, BOS3, "").unwrap(),
        today(LLAMA32_NOGEN)
    );
}

#[test]
fn qwen25() {
    let t = JinjaTemplate::new(QWEN25).unwrap();
    assert_eq!(t.render(&chat(), true, "", "").unwrap(), QWEN25_CHAT);
    assert_eq!(t.render(&chat()[1..], true, "", "").unwrap(), QWEN25_NOSYS);
    assert_eq!(
        t.render_with_tools(&tool_conversation(), Some(&tools()), true, "", "")
            .unwrap(),
        QWEN25_TOOLS
    );
}

#[test]
fn gemma3() {
    let t = JinjaTemplate::new(GEMMA3).unwrap();
    assert_eq!(t.render(&chat(), true, "<bos>", "").unwrap(), GEMMA3_CHAT);
    let bad = [ChatMessage::new("user", "a"), ChatMessage::new("user", "b")];
    let err = t.render(&bad, true, "<bos>", "").unwrap_err();
    assert_eq!(
        format!(
            "RAISED:{}",
            match err {
                TemplateError::JinjaRaised(m) => m,
                other => panic!("{other}"),
            }
        ),
        GEMMA3_BAD
    );
}

#[test]
fn tojson_matches_python() {
    let t = JinjaTemplate::new(r#"{{ {"b": [1, 2.5, none, true], "a": "é<&>\n"} | tojson }}|{{ [1] | tojson(indent=2) }}|{{ {} | tojson }}"#).unwrap();
    assert_eq!(
        t.render(&[], false, "", "").unwrap(),
        // Keys in the order written, as Python's dicts keep them.
        "{\"b\": [1, 2.5, null, true], \"a\": \"é<&>\\n\"}|[\n  1\n]|{}"
    );
}

#[test]
fn strftime_formats() {
    // 2024-07-26 12:34:56 UTC, a Friday.
    let t = 1_721_997_296;
    assert_eq!(strftime("%d %b %Y", t), "26 Jul 2024");
    assert_eq!(
        strftime("%A %B %-d, %y %H:%M:%S %j %%", t),
        "Friday July 26, 24 12:34:56 208 %"
    );
}

#[test]
fn python_string_methods() {
    let t = JinjaTemplate::new("{{ messages[0].content.strip().upper() }}{% if messages[0].content.startswith(' a') %}!{% endif %}{{ messages[0].content.split(',') | length }}").unwrap();
    assert_eq!(
        t.render(&[ChatMessage::new("user", " a,b ")], false, "", "")
            .unwrap(),
        "A,B!2"
    );
}

#[test]
fn limits_stop_hostile_templates() {
    let msgs = chat();
    // A loop that never ends in practice: out of fuel.
    let t = JinjaTemplate::new(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    )
    .unwrap();
    assert!(matches!(
        t.render(&msgs, true, "", ""),
        Err(TemplateError::StepLimit(_))
    ));
    // Exponential string growth: stopped by fuel (memory is charged) or the cap.
    let t = JinjaTemplate::new("{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}").unwrap();
    assert!(matches!(
        t.render(&msgs, true, "", ""),
        Err(TemplateError::StepLimit(_) | TemplateError::OutputLimit(_))
    ));
    // Plain huge output under a small cap.
    let limits = JinjaLimits {
        fuel: u64::MAX,
        max_output: 1 << 16,
        recursion: 100,
    };
    let t =
        JinjaTemplate::with_limits("{% for i in range(100000) %}0123456789{% endfor %}", limits)
            .unwrap();
    assert!(matches!(
        t.render(&msgs, true, "", ""),
        Err(TemplateError::OutputLimit(65536))
    ));
    // Unbounded macro recursion.
    let t = JinjaTemplate::new("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").unwrap();
    let e = t.render(&msgs, true, "", "").unwrap_err();
    assert!(matches!(e, TemplateError::DepthLimit(200)), "{e}");
    assert!(e.to_string().contains("200 levels"), "{e}");
    // No file access: `include`, `import` and `extends` are not even compiled in.
    for src in [
        "{% include '/etc/passwd' %}",
        "{% import 'x' as y %}",
        "{% extends 'x' %}",
    ] {
        assert!(
            matches!(JinjaTemplate::new(src), Err(TemplateError::JinjaSyntax(_))),
            "{src}"
        );
    }
    // Syntax errors are reported at compile time.
    assert!(matches!(
        JinjaTemplate::new("{% if %}"),
        Err(TemplateError::JinjaSyntax(_))
    ));
}

#[test]
fn long_conversations_fit_the_default_limits() {
    let conv: Vec<ChatMessage> = (0..2000)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            ChatMessage::new(role, "lorem ipsum dolor sit amet ".repeat(40))
        })
        .collect();
    for src in [LLAMA31, LLAMA32, QWEN25, GEMMA3] {
        let out = JinjaTemplate::new(src)
            .unwrap()
            .render(&conv, true, "", "")
            .unwrap();
        assert!(out.len() > 2000 * 1000, "{}", out.len());
    }
}

#[test]
fn templates_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<JinjaTemplate>();
    assert_send_sync::<crate::template::GoTemplate>();
}

/// Mutated real templates must compile or fail cleanly, and render or fail
/// cleanly, never panic (minijinja is fuzzed upstream; this covers our glue:
/// `tojson`, `strftime_now`, the error mapping and the output cap).
#[test]
fn mutation_fuzz_never_panics() {
    const FRAGMENTS: &[&str] = &[
        "{%",
        "%}",
        "{{",
        "}}",
        "{%-",
        "-%}",
        "for",
        "endfor",
        "if",
        "endif",
        "|tojson(indent=3)",
        "|tojson",
        "strftime_now('%Q%-')",
        "raise_exception('x')",
        "messages",
        "[1:]",
        "loop.index0",
        "'",
        "\"",
        "(",
        ")",
        "~",
        "*",
        "range(99999)",
        "\n",
    ];
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: usize| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    };
    let limits = JinjaLimits {
        fuel: 50_000,
        max_output: 64 << 10,
        recursion: 50,
    };
    let msgs = chat();
    let tools = tools();
    let seeds = [LLAMA31, LLAMA32, QWEN25, GEMMA3];
    for _ in 0..400 {
        let mut s = seeds[next(seeds.len())].to_owned();
        for _ in 0..1 + next(4) {
            let mut at = next(s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            if next(2) == 0 {
                s.insert_str(at, FRAGMENTS[next(FRAGMENTS.len())]);
            } else {
                let mut end = (at + next(16)).min(s.len());
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.replace_range(at..end, "");
            }
        }
        if let Ok(t) = JinjaTemplate::with_limits(&s, limits) {
            let _ = t.render_with_tools(&msgs, Some(&tools), true, "<s>", "</s>");
        }
    }
}
