//! End to end: thinking and tools through the real daemon and runner, on a
//! generated model whose TEMPLATE has think tags (and a tool-call block).
//!
//! A tiny random model writes no reasoning of its own, so the test makes
//! its template fit what it writes: the prompt (which ends by opening
//! `<think>`, as Qwen 3's templates do) is read back with
//! `_debug_render_only`, the greedy answer to it taken once with `raw`, and
//! the model created again with a closing tag cut from the middle of that
//! answer. The prompt does not change (the closing tag is only written for
//! earlier answers), so the same answer must come back split at that tag:
//! reasoning before it, text after it, through both APIs, streamed and not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use llmpm_tests::http::{call_unix, Response};
use llmpm_tests::{assert_ok, stderr, stdout, TestContext, TinyLlamaSpec};
use serde_json::{json, Value};

/// A Llama-3-shaped template that lists the tools, opens the think tag in
/// the prompt when thinking is on, closes `.Thinking` of earlier answers
/// with `CLOSE`, and writes calls after `TAG`.
const TEMPLATE: &str = r#"{{- if .Tools }}tools:{{ range .Tools }} {{ .Function.Name }}{{ end }}
{{ end }}
{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ if .Thinking }}<think>{{ .Thinking }}CLOSE{{ end }}{{ .Content }}
{{- if .ToolCalls }}TAG{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}{{ end }}{{ end }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

{{ if .Think }}<think>{{ else }}<think></think>{{ end }}"#;

fn template(close: &str, tag: &str) -> String {
    TEMPLATE.replace("CLOSE", close).replace("TAG", tag)
}

fn create(ctx: &TestContext, name: &str, template: &str) {
    std::fs::write(
        ctx.work.join("Modelfile"),
        // The sampling of OPTS, for the CLI (which sends no options).
        format!(
            "FROM ./tiny.gguf\nPARAMETER num_ctx 512\nPARAMETER temperature 1.0\n\
             PARAMETER seed 7\nPARAMETER num_predict 40\nTEMPLATE \"\"\"{template}\"\"\"\n"
        ),
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", name, "-f", "Modelfile"]));
}

fn post(ctx: &TestContext, path: &str, body: &Value) -> Response {
    call_unix(&ctx.socket(), "POST", path, body.to_string().as_bytes()).unwrap()
}

/// Seeded sampling: the same answer every time, and a varied one (the
/// tiny model's greedy answers are often one character repeated).
const OPTS: &str = r#"{"temperature": 1.0, "seed": 7, "num_predict": 40}"#;

fn chat(model: &str) -> Value {
    json!({"model": model, "stream": false, "options": serde_json::from_str::<Value>(OPTS).unwrap(),
        "messages": [{"role": "user", "content": "Hi"}]})
}

/// `data:` payloads of an SSE body, `[DONE]` left out.
fn sse(r: &Response) -> Vec<Value> {
    r.text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// The prompt `req` renders to (`_debug_render_only`) and the greedy
/// answer to it (generated `raw`, so nothing is parsed).
fn probe(ctx: &TestContext, req: &Value) -> (String, String) {
    let mut req = req.clone();
    req["_debug_render_only"] = json!(true);
    let r = post(ctx, "/api/chat", &req);
    assert_eq!(r.status, 200, "{}", r.text());
    let prompt = r.json()["_debug_info"]["rendered_template"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = post(
        ctx,
        "/api/generate",
        &json!({"model": req["model"], "prompt": prompt, "raw": true, "stream": false,
            "think": false, "options": serde_json::from_str::<Value>(OPTS).unwrap()}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json()["response"].as_str().unwrap().to_owned();
    (prompt, answer)
}

/// Three characters from the middle of `answer` (no whitespace, quotes,
/// braces or backslashes) that first occur where they are cut: where, and what.
fn cut(answer: &str) -> Option<(usize, String)> {
    let chars: Vec<(usize, char)> = answer.char_indices().collect();
    let ok = |c: char| !c.is_whitespace() && !"{}\"\\".contains(c);
    (chars.len() / 3..chars.len().saturating_sub(3)).find_map(|i| {
        let w = &chars[i..i + 3];
        if !w.iter().all(|&(_, c)| ok(c)) {
            return None;
        }
        let start = w[0].0;
        let end = chars.get(i + 3).map_or(answer.len(), |&(b, _)| b);
        let tag = &answer[start..end];
        (answer.find(tag) == Some(start)).then(|| (start, tag.to_owned()))
    })
}

/// The model "think", its answer split at a closing tag cut from what it
/// writes; returns the reasoning and text expected.
fn setup() -> (TestContext, String, String) {
    let ctx = TestContext::started();
    ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    create(&ctx, "think", &template("</think>", "<tool_call>"));
    let (prompt, answer) = probe(&ctx, &chat("think"));
    assert!(
        prompt.ends_with("<think>"),
        "thinking is on by default: {prompt:?}"
    );
    let (at, close) = cut(&answer).unwrap_or_else(|| panic!("no tag to cut from {answer:?}"));
    create(&ctx, "think", &template(&close, "<tool_call>"));
    let thinking = answer[..at].trim_start().to_owned();
    let text = answer[at + close.len()..].trim_start().to_owned();
    assert!(
        !thinking.is_empty() && !text.is_empty(),
        "{answer:?} cut at {close:?}"
    );
    (ctx, thinking, text)
}

#[test]
fn reasoning_is_split_from_the_answer_through_both_apis() {
    let (ctx, thinking, text) = setup();

    // Ollama's chat, whole.
    let r = post(&ctx, "/api/chat", &chat("think"));
    assert_eq!(r.status, 200, "{}", r.text());
    let m = &r.json()["message"];
    assert_eq!(m["thinking"], thinking.as_str(), "{m}");
    assert_eq!(m["content"], text.as_str(), "{m}");

    // Streamed: all the reasoning first, then the text.
    let mut streamed = chat("think");
    streamed["stream"] = json!(true);
    let lines = post(&ctx, "/api/chat", &streamed).ndjson();
    let field = |l: &Value, k: &str| l["message"][k].as_str().unwrap_or_default().to_owned();
    let first_text = lines.iter().position(|l| !field(l, "content").is_empty());
    let last_thought = lines.iter().rposition(|l| !field(l, "thinking").is_empty());
    assert!(
        last_thought < first_text || first_text.is_none(),
        "{lines:?}"
    );
    let t: String = lines.iter().map(|l| field(l, "thinking")).collect();
    let c: String = lines.iter().map(|l| field(l, "content")).collect();
    assert_eq!((t.as_str(), c.as_str()), (thinking.as_str(), text.as_str()));
    assert_eq!(lines.last().unwrap()["done"], true);

    // Generate: `thinking` beside `response`.
    let gen = json!({"model": "think", "prompt": "Hi", "stream": false,
        "options": serde_json::from_str::<Value>(OPTS).unwrap()});
    let g = post(&ctx, "/api/generate", &gen).json();
    assert_eq!(
        (g["thinking"].as_str(), g["response"].as_str()),
        (Some(thinking.as_str()), Some(text.as_str())),
        "{g}"
    );

    // OpenAI: `reasoning` beside `content`, whole and streamed.
    let oa = json!({"model": "think", "temperature": 1.0, "seed": 7, "max_tokens": 40,
        "messages": [{"role": "user", "content": "Hi"}]});
    let v = post(&ctx, "/v1/chat/completions", &oa).json();
    let m = &v["choices"][0]["message"];
    assert_eq!(
        (m["reasoning"].as_str(), m["content"].as_str()),
        (Some(thinking.as_str()), Some(text.as_str())),
        "{v}"
    );
    let mut oa_stream = oa.clone();
    oa_stream["stream"] = json!(true);
    let chunks = sse(&post(&ctx, "/v1/chat/completions", &oa_stream));
    let delta = |k: &str| -> String {
        chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"][k].as_str())
            .collect()
    };
    assert_eq!(
        (delta("reasoning"), delta("content")),
        (thinking.clone(), text.clone())
    );
    let reasons: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|r| !r.is_null())
        .collect();
    assert!(
        reasons.len() == 1 && reasons[0] != "tool_calls",
        "{reasons:?}"
    );
}

#[test]
fn think_false_renders_the_no_think_form_and_splits_nothing() {
    let (ctx, _, _) = setup();
    let mut req = chat("think");
    req["think"] = json!(false);
    req["_debug_render_only"] = json!(true);
    let p = post(&ctx, "/api/chat", &req).json();
    let prompt = p["_debug_info"]["rendered_template"].as_str().unwrap();
    assert!(prompt.ends_with("<think></think>"), "{prompt:?}");
    req["_debug_render_only"] = json!(false);
    let r = post(&ctx, "/api/chat", &req).json();
    assert!(r["message"].get("thinking").is_none(), "{r}");
    // OpenAI's `reasoning_effort: none` is the same.
    let v = post(
        &ctx,
        "/v1/chat/completions",
        &json!({"model": "think", "max_tokens": 8,
        "reasoning_effort": "none", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .json();
    assert!(v["choices"][0]["message"].get("reasoning").is_none(), "{v}");
    // A level is thinking on, at that level.
    req["think"] = json!("high");
    req["_debug_render_only"] = json!(true);
    let p = post(&ctx, "/api/chat", &req).json();
    assert!(p["_debug_info"]["rendered_template"]
        .as_str()
        .unwrap()
        .ends_with("<think>"));
}

#[test]
fn tools_reach_the_prompt_and_false_call_prefixes_stay_text() {
    let (ctx, _, _) = setup();
    create(&ctx, "tooly", &template("</think>", "<tool_call>"));
    let mut req = chat("tooly");
    req["think"] = json!(false);
    req["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    // A call tag cut from the answer: what follows it is no call, so the
    // answer comes back whole, as text (the prompt is the same: the tag is
    // only written for earlier calls). Some questions get a degenerate
    // answer with nothing to cut; the next is tried.
    let mut found = None;
    for q in ["Hi", "What is the weather in Paris?", "abc", "Tell me more"] {
        req["messages"][0]["content"] = json!(q);
        let (prompt, answer) = probe(&ctx, &req);
        assert!(prompt.starts_with("tools: get_weather\n"), "{prompt:?}");
        if let Some((_, tag)) = cut(&answer) {
            found = Some((answer, tag));
            break;
        }
    }
    let (answer, tag) = found.expect("an answer with a tag to cut");
    create(&ctx, "tooly", &template("</think>", &tag));
    for stream in [false, true] {
        req["stream"] = json!(stream);
        let r = post(&ctx, "/api/chat", &req);
        assert_eq!(r.status, 200, "{}", r.text());
        let lines = if stream { r.ndjson() } else { vec![r.json()] };
        let content: String = lines
            .iter()
            .filter_map(|l| l["message"]["content"].as_str())
            .collect();
        assert_eq!(content, answer, "tag {tag:?}: {lines:?}");
        assert!(
            lines
                .iter()
                .all(|l| l["message"].get("tool_calls").is_none()),
            "{lines:?}"
        );
    }
}

#[test]
fn bad_tools_and_think_are_400s_naming_the_field() {
    let (ctx, _, _) = setup();
    std::fs::write(
        ctx.work.join("Modelfile"),
        "FROM ./tiny.gguf\nPARAMETER num_ctx 256\n",
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", "plain", "-f", "Modelfile"]));
    let weather = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let cases = [
        (
            "/api/chat",
            json!({"model": "think", "think": "extreme", "messages": [{"role": "user", "content": "x"}]}),
            "`think`",
        ),
        (
            "/api/generate",
            json!({"model": "think", "think": 3, "prompt": "x"}),
            "`think`",
        ),
        (
            "/api/chat",
            json!({"model": "plain", "think": true, "messages": [{"role": "user", "content": "x"}]}),
            "\"plain\" does not support thinking",
        ),
        (
            "/api/generate",
            json!({"model": "plain", "think": "low", "prompt": "x"}),
            "\"plain\" does not support thinking",
        ),
        (
            "/api/chat",
            json!({"model": "plain", "tools": weather, "messages": [{"role": "user", "content": "x"}]}),
            "\"plain\" does not support tools",
        ),
        (
            "/api/chat",
            json!({"model": "think", "tools": [{"type": "function", "function": {"description": "no name"}}], "messages": [{"role": "user", "content": "x"}]}),
            "tools[0].function.name",
        ),
        (
            "/api/chat",
            json!({"model": "think", "tools": [{"type": "function", "function": {"name": "f", "parameters": "city"}}], "messages": [{"role": "user", "content": "x"}]}),
            "tools[0].function.parameters",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "think", "reasoning_effort": "extreme", "messages": [{"role": "user", "content": "x"}]}),
            "reasoning_effort",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "think", "tools": weather, "tool_choice": "always", "messages": [{"role": "user", "content": "x"}]}),
            "tool_choice",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "think", "tools": weather, "tool_choice": {"type": "function", "function": {"name": "nope"}}, "messages": [{"role": "user", "content": "x"}]}),
            "tool_choice",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "plain", "tools": weather, "messages": [{"role": "user", "content": "x"}]}),
            "\"plain\" does not support tools",
        ),
    ];
    for (path, body, needle) in cases {
        let r = post(&ctx, path, &body);
        assert_eq!(r.status, 400, "{path} {body}: {}", r.text());
        let e = r.json();
        let msg = e["error"]["message"]
            .as_str()
            .or(e["error"].as_str())
            .unwrap();
        assert!(msg.contains(needle), "{path} {body}: {msg}");
    }
    // The daemon serves on.
    let r = post(&ctx, "/api/chat", &chat("think"));
    assert_eq!(r.status, 200, "{}", r.text());
    // `think: false` on a model that cannot think is fine, as in Ollama.
    let r = post(
        &ctx,
        "/api/chat",
        &json!({"model": "plain", "think": false, "stream": false,
        "options": {"num_predict": 2}, "messages": [{"role": "user", "content": "x"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn cli_run_shows_reasoning_before_the_answer_and_hides_it_when_asked() {
    let (ctx, thinking, text) = setup();
    // Piped (not a terminal): plain text, no colours.
    let out = ctx.cli(&["run", "think", "Hi"]);
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        format!("Thinking...\n{thinking}\n...done thinking.\n\n{text}\n").replace(
            // A reasoning that ends in a newline gets no second one.
            &format!("{thinking}\n\n...done"),
            &format!("{thinking}\n...done")
        )
    );
    let out = ctx.cli(&["run", "--hidethinking", "think", "Hi"]);
    assert_eq!(stdout(&out), format!("{text}\n"));
    // No thinking: the no-think prompt, nothing marked as reasoning.
    let out = ctx.cli(&["run", "--think=false", "think", "Hi"]);
    assert_ok(&out);
    assert!(!stdout(&out).contains("Thinking..."), "{}", stdout(&out));
    let out = ctx.cli(&["run", "--think=extreme", "think", "Hi"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--think"), "{}", stderr(&out));
}

/// Open WebUI 0.12's chat with native function calling: its built-in tools
/// on every request, `think`, an earlier call and its result sent back.
/// Before, the tools were dropped and `think` ignored without a word.
#[test]
fn open_webui_chat_with_its_tools_and_think_is_honoured() {
    let (ctx, thinking, _) = setup();
    let tools = json!([
        {"type": "function", "function": {"name": "search_web",
            "description": "Search the web for a query.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string", "description": "What to search for"}}, "required": ["query"]}}},
        {"type": "function", "function": {"name": "get_current_timestamp",
            "description": "Get the current Unix timestamp.",
            "parameters": {"type": "object", "properties": {}}}}
    ]);
    let body = json!({
        "model": "think", "stream": true, "think": true, "keep_alive": "5m", "format": "",
        "options": serde_json::from_str::<Value>(OPTS).unwrap(),
        "tools": tools,
        "messages": [{"role": "user", "content": "Hi"}],
    });
    let lines = post(&ctx, "/api/chat", &body).ndjson();
    assert!(lines.iter().all(|l| l.get("error").is_none()), "{lines:?}");
    assert_eq!(lines.last().unwrap()["done"], true);
    let t: String = lines
        .iter()
        .filter_map(|l| l["message"]["thinking"].as_str())
        .collect();
    assert!(!t.is_empty() && !thinking.is_empty(), "{lines:?}");
    // The tools reached the prompt, and a call with its result goes back in.
    let mut replay = body.clone();
    replay["_debug_render_only"] = json!(true);
    replay["messages"] = json!([
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_abc12345",
            "function": {"name": "get_current_timestamp", "arguments": {}}}]},
        {"role": "tool", "tool_call_id": "call_abc12345", "content": "1767225600"},
    ]);
    let p = post(&ctx, "/api/chat", &replay).json();
    let prompt = p["_debug_info"]["rendered_template"].as_str().unwrap();
    assert!(
        prompt.starts_with("tools: search_web get_current_timestamp\n"),
        "{prompt:?}"
    );
    assert!(
        prompt.contains("<tool_call>{\"name\": \"get_current_timestamp\", \"arguments\": {}}"),
        "{prompt:?}"
    );
    assert!(
        prompt.contains("<|start_header_id|>tool<|end_header_id|>\n\n1767225600<|eot_id|>"),
        "{prompt:?}"
    );
}
