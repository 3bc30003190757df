//! Tools and thinking through the templates: the call format each family's
//! template shows (Ollama's registry Go templates, the GGUFs' Jinja), tool
//! calls and results rendered back, and `think` as each engine reads it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use llmpm_spec::api::{Message, Think, ThinkLevel, ToolCall, ToolCallFunction};
use serde_json::json;

use super::*;

const QWEN25_GO: &str = include_str!("testdata/go/qwen2.5.gotmpl");
const LLAMA31_GO: &str = include_str!("testdata/go/llama3.1.gotmpl");
const MISTRAL_GO: &str = include_str!("testdata/go/mistral-v0.3.gotmpl");
const QWEN3_GO: &str = include_str!("testdata/go/qwen3.gotmpl");
const QWEN25_JINJA: &str = include_str!("testdata/jinja/qwen2.5.jinja");
const LLAMA31_JINJA: &str = include_str!("testdata/jinja/llama3.1.jinja");
const LLAMA32_JINJA: &str = include_str!("testdata/jinja/llama3.2.jinja");

fn go(src: &str) -> ChatTemplate {
    ChatTemplate::Go(GoTemplate::parse(src).unwrap())
}

fn jinja(src: &str) -> ChatTemplate {
    ChatTemplate::Jinja(Box::new(JinjaTemplate::new(src).unwrap()))
}

fn format(tag: &str, key: &str, alt: Option<&str>) -> ToolCallFormat {
    ToolCallFormat {
        tag: tag.into(),
        arguments_key: key.into(),
        alt_prefix: alt.map(str::to_owned),
    }
}

#[test]
fn call_format_from_ollamas_go_templates() {
    assert_eq!(
        go(QWEN25_GO).tool_call_format("", ""),
        format("<tool_call>", "arguments", None)
    );
    assert_eq!(
        go(QWEN3_GO).tool_call_format("", ""),
        format("<tool_call>", "arguments", None)
    );
    assert_eq!(
        go(LLAMA31_GO).tool_call_format("", ""),
        format("{", "parameters", None)
    );
    assert_eq!(
        go(MISTRAL_GO).tool_call_format("", ""),
        format("[TOOL_CALLS] [", "arguments", None)
    );
    // No `.ToolCalls` block: calls are looked for as bare JSON, as in Ollama.
    assert_eq!(go(CHATML_TEMPLATE).tool_call_format("", "").tag, "{");
}

#[test]
fn call_format_from_the_ggufs_jinja() {
    // Qwen 2.5 (the Qwen2.5-Coder GGUF's template is this one, byte for byte).
    assert_eq!(
        jinja(QWEN25_JINJA).tool_call_format("", "<|im_end|>"),
        format("<tool_call>", "arguments", None)
    );
    // Llama 3.1 writes bare JSON with "parameters", or opens with <|python_tag|>.
    assert_eq!(
        jinja(LLAMA31_JINJA).tool_call_format("<|begin_of_text|>", "<|eot_id|>"),
        format("{", "parameters", Some(PYTHON_TAG))
    );
    assert_eq!(
        jinja(LLAMA32_JINJA)
            .tool_call_format("<|begin_of_text|>", "<|eot_id|>")
            .arguments_key,
        "parameters"
    );
    // Mistral's shape, with its insistence on nine-character call ids.
    let mistral = "{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }}[/INST]\
        {% elif m.tool_calls %}[TOOL_CALLS] [{% for c in m.tool_calls %}\
        {% if c.id | length != 9 %}{{ raise_exception('ids must have 9 characters') }}{% endif %}\
        {{ {'name': c.function.name, 'arguments': c.function.arguments, 'id': c.id} | tojson }}\
        {% endfor %}]</s>{% else %}{{ m.content }}</s>{% endif %}{% endfor %}";
    assert_eq!(
        jinja(mistral).tool_call_format("<s>", "</s>"),
        format("[TOOL_CALLS] [", "arguments", None)
    );
    // A template that cannot render a call: bare JSON, as Ollama's default.
    assert_eq!(
        jinja("{{ raise_exception('no') }}")
            .tool_call_format("", "")
            .tag,
        "{"
    );
}

/// A conversation with a call and its result, as `/api/chat` receives it.
fn tool_round_trip() -> Vec<ChatMessage> {
    let call = Message {
        tool_calls: vec![ToolCall {
            id: "call_1".into(),
            function: ToolCallFunction {
                index: 0,
                name: "get_weather".into(),
                arguments: json!({"city": "Paris"}).as_object().unwrap().clone(),
            },
        }],
        ..Message::new("assistant", "")
    };
    let result = Message {
        tool_name: "get_weather".into(),
        ..Message::new("tool", "22°C")
    };
    [Message::new("user", "Weather in Paris?"), call, result]
        .iter()
        .map(ChatMessage::from)
        .collect()
}

fn weather_tools() -> RenderOptions {
    RenderOptions {
        tools: Some(
            json!([{"type": "function", "function": {"name": "get_weather",
            "description": "Get the weather", "parameters": {"type": "object",
            "required": ["city"], "properties": {"city": {"type": "string"}}}}}]),
        ),
        think: None,
    }
}

#[test]
fn calls_and_results_go_back_into_the_prompt() {
    let out = go(QWEN25_GO)
        .render_chat(None, &tool_round_trip(), &weather_tools(), "", "")
        .unwrap();
    assert!(
        out.starts_with("<|im_start|>system\n\n# Tools\n\nYou may call one or more functions"),
        "{out}"
    );
    assert!(out.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\":\"get_weather\",\"description\":\"Get the weather\",\"parameters\":{\"type\":\"object\",\"required\":[\"city\"],\"properties\":{\"city\":{\"type\":\"string\"}}}}}\n</tools>"), "{out}");
    assert!(out.ends_with(
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n\
         <|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call><|im_end|>\n\
         <|im_start|>user\n<tool_response>\n22°C\n</tool_response><|im_end|>\n\
         <|im_start|>assistant\n"
    ), "{out}");

    // The GGUF's Jinja: the call as JSON, the result as a tool response.
    let out = jinja(QWEN25_JINJA)
        .render_chat(None, &tool_round_trip(), &weather_tools(), "", "<|im_end|>")
        .unwrap();
    // The tool as the client wrote it (key order kept, as transformers does).
    assert!(out.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\""), "{out}");
    assert!(out.ends_with(
        "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n\
         <|im_start|>user\n<tool_response>\n22°C\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    ), "{out}");

    // Llama 3.1 (Ollama's): the tools with the last user turn, results as ipython.
    let mut conv = tool_round_trip();
    conv.truncate(1);
    let out = go(LLAMA31_GO)
        .render_chat(None, &conv, &weather_tools(), "", "")
        .unwrap();
    assert!(
        out.contains("Respond in the format {\"name\": function name, \"parameters\""),
        "{out}"
    );
    let out = go(LLAMA31_GO)
        .render_chat(None, &tool_round_trip(), &weather_tools(), "", "")
        .unwrap();
    assert!(
        out.contains("{\"name\": \"get_weather\", \"parameters\": {\"city\":\"Paris\"}}"),
        "{out}"
    );
    assert!(out.ends_with("<|start_header_id|>ipython<|end_header_id|>\n\n22°C<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"), "{out}");
}

#[test]
fn think_reaches_go_templates_as_ollama_sets_it() {
    let t = go("{{ .Think }}|{{ .ThinkLevel }}|{{ .IsThinkSet }}{{ range .Messages }}{{ end }}");
    let conv = [ChatMessage::new("user", "Hi")];
    let render = |think| {
        t.render_chat(None, &conv, &RenderOptions { tools: None, think }, "", "")
            .unwrap()
    };
    assert_eq!(render(None), "false||false");
    assert_eq!(render(Some(Think::Bool(true))), "true|medium|true");
    assert_eq!(render(Some(Think::Bool(false))), "false||true");
    assert_eq!(
        render(Some(Think::Level(ThinkLevel::High))),
        "true|high|true"
    );

    // Qwen 3's template: `/think` or `/no_think`, and an empty reasoning block when off.
    let q = go(QWEN3_GO);
    let with = |think| {
        q.render_chat(None, &conv, &RenderOptions { tools: None, think }, "", "")
            .unwrap()
    };
    assert_eq!(
        with(Some(Think::Bool(true))),
        "<|im_start|>user\nHi /think<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        with(Some(Think::Bool(false))),
        "<|im_start|>user\nHi /no_think<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    );
    assert_eq!(q.think_tags(), Some(("<think>".into(), "</think>".into())));
}

#[test]
fn think_reaches_jinja_as_ollama_passes_it_to_llamacpp() {
    let t = jinja(
        "{% if enable_thinking is defined %}{{ enable_thinking }}{% else %}unset{% endif %}|\
         {{ reasoning_effort | default('-') }}",
    );
    let conv = [ChatMessage::new("user", "Hi")];
    let render = |think| {
        t.render_chat(None, &conv, &RenderOptions { tools: None, think }, "", "")
            .unwrap()
    };
    assert_eq!(render(None), "unset|-");
    // Printed as Python prints booleans, as in transformers.
    assert_eq!(render(Some(Think::Bool(true))), "True|-");
    assert_eq!(render(Some(Think::Bool(false))), "False|-");
    assert_eq!(render(Some(Think::Level(ThinkLevel::Low))), "True|low");
}

/// gpt-oss's own chat template (harmony) renders through our Jinja: the
/// system and developer headers with the tool's TypeScript signature, the
/// reasoning effort from `think`, the call and its result as harmony
/// messages, and the generation prompt `<|start|>assistant`.
#[test]
fn gpt_oss_harmony_template_renders() {
    let t = jinja(llmpm_gguf::tiny::GPT_OSS_CHAT_TEMPLATE);
    let opts = RenderOptions {
        think: Some(Think::Level(ThinkLevel::High)),
        ..weather_tools()
    };
    let out = t
        .render_chat(None, &tool_round_trip(), &opts, "", "")
        .unwrap();
    assert!(out.starts_with("<|start|>system<|message|>"), "{out}");
    assert!(out.contains("Reasoning: high"), "{out}");
    assert!(out.contains("namespace functions {"), "{out}");
    assert!(out.contains("type get_weather = (_: {"), "{out}");
    assert!(
        out.contains("<|start|>user<|message|>Weather in Paris?<|end|>"),
        "{out}"
    );
    assert!(
        out.contains(
            "<|start|>assistant to=functions.get_weather<|channel|>commentary json\
             <|message|>{\"city\": \"Paris\"}<|call|>"
        ),
        "{out}"
    );
    // The template writes a result as JSON (a string in quotes).
    assert!(
        out.contains(
            "<|start|>functions.get_weather to=assistant<|channel|>commentary\
             <|message|>\"22°C\"<|end|>"
        ),
        "{out}"
    );
    assert!(out.ends_with("<|start|>assistant"), "{out}");
}
