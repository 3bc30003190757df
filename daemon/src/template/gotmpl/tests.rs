//! Tests for the Go template interpreter: Ollama's own golden renderings,
//! the Go semantics templates rely on, and the limits against hostile input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::template::{
    CHATML_TEMPLATE, DEFAULT_TEMPLATE, GEMMA3_TEMPLATE, GEMMA_TEMPLATE, LLAMA3_TEMPLATE,
};

fn msgs(list: &[(&str, &str)]) -> Vec<ChatMessage> {
    list.iter().map(|(r, c)| ChatMessage::new(*r, *c)).collect()
}

fn run(src: &str) -> String {
    GoTemplate::parse(src).unwrap().render(&data()).unwrap()
}

fn run_err(src: &str) -> String {
    match GoTemplate::parse(src) {
        Err(e) => e.to_string(),
        Ok(t) => t.render(&data()).unwrap_err().to_string(),
    }
}

fn data() -> PromptData {
    PromptData {
        system: "sys".into(),
        prompt: "hi".into(),
        messages: msgs(&[
            ("system", "S"),
            ("user", "U1"),
            ("assistant", "A1"),
            ("user", "U2"),
        ]),
        ..PromptData::default()
    }
}

#[test]
fn llama3_system_and_two_turns() {
    let tmpl = GoTemplate::parse(LLAMA3_TEMPLATE).unwrap();
    assert!(tmpl.uses_messages());
    let conv = msgs(&[
        ("user", "Hi"),
        ("assistant", "Hello! How can I help?"),
        ("user", "Tell me a joke."),
    ]);
    let got = render_chat(&tmpl, Some("You are terse."), &conv).unwrap();
    assert_eq!(
        got,
        "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help?<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    // A conversation that opens with its own system message keeps it.
    let mut own = msgs(&[("system", "Own.")]);
    own.extend(conv);
    let got = render_chat(&tmpl, Some("Default."), &own).unwrap();
    assert!(got.contains("Own.") && !got.contains("Default."));
}

#[test]
fn chatml_system_and_two_turns() {
    let tmpl = GoTemplate::parse(CHATML_TEMPLATE).unwrap();
    let conv = msgs(&[
        ("system", "You are a helpful assistant!"),
        ("user", "Hello friend!"),
        ("assistant", "Hello human!"),
        ("user", "What is your name?"),
    ]);
    assert_eq!(
        render_chat(&tmpl, None, &conv).unwrap(),
        "<|im_start|>system\nYou are a helpful assistant!<|im_end|>\n<|im_start|>user\nHello friend!<|im_end|>\n\
         <|im_start|>assistant\nHello human!<|im_end|>\n<|im_start|>user\nWhat is your name?<|im_end|>\n\
         <|im_start|>assistant\n"
    );
}

/// Ollama's `TestExecuteWithMessages`: legacy `.Prompt`/`.Response`
/// templates and `.Messages` templates must render the same chat.
#[test]
fn legacy_and_messages_templates_agree() {
    let mistral = [
        "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] ",
        "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] {{ .Response }}",
        "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}\n{{- range .Messages }}\n{{- if eq .Role \"user\" }}{{ .Content }}[/INST] {{ else if eq .Role \"assistant\" }}{{ .Content }}[INST] {{ end }}\n{{- end }}",
    ];
    let cases: [(Vec<ChatMessage>, &str); 2] = [
        (
            msgs(&[("user", "Hello friend!"), ("assistant", "Hello human!"), ("user", "What is your name?")]),
            "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] ",
        ),
        (
            msgs(&[
                ("system", "You are a helpful assistant!"),
                ("user", "Hello friend!"),
                ("assistant", "Hello human!"),
                ("user", "What is your name?"),
            ]),
            "[INST] You are a helpful assistant!\n\nHello friend![/INST] Hello human![INST] What is your name?[/INST] ",
        ),
    ];
    for (conv, want) in &cases {
        for src in mistral {
            let t = GoTemplate::parse(src).unwrap();
            assert_eq!(render_chat(&t, None, conv).unwrap(), *want, "{src}");
        }
    }
    // A trailing assistant message is continued, not closed.
    let partial = msgs(&[
        ("user", "Hello friend!"),
        ("assistant", "Hello human!"),
        ("user", "What is your name?"),
        ("assistant", "My name is Ollama and I"),
    ]);
    for src in [
        "[INST] {{ .Prompt }}[/INST] ",
        "[INST] {{ .Prompt }}[/INST] {{ .Response }}",
        "\n{{- range $i, $m := .Messages }}\n{{- if eq .Role \"user\" }}[INST] {{ .Content }}[/INST] {{ else if eq .Role \"assistant\" }}{{ .Content }}{{ end }}\n{{- end }}",
    ] {
        let t = GoTemplate::parse(src).unwrap();
        assert_eq!(
            render_chat(&t, None, &partial).unwrap(),
            "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] My name is Ollama and I",
            "{src}"
        );
    }
    // ChatML written against .System/.Prompt/.Response, cut after .Response.
    let legacy = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ .Response }}<|im_end|>\n";
    let t = GoTemplate::parse(legacy).unwrap();
    assert!(!t.uses_messages());
    let conv = msgs(&[
        ("system", "You are a helpful assistant!"),
        ("user", "Hello friend!"),
        ("assistant", "Hello human!"),
        ("user", "What is your name?"),
    ]);
    assert_eq!(
        render_chat(&t, None, &conv).unwrap(),
        render_chat(&GoTemplate::parse(CHATML_TEMPLATE).unwrap(), None, &conv).unwrap()
    );
}

#[test]
fn suffix_and_vars() {
    let t = GoTemplate::parse(
        "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\n{{- else }}{{ .Prompt }}\n{{- end }}",
    )
    .unwrap();
    let fim = PromptData {
        prompt: "def add(".into(),
        suffix: "return x".into(),
        ..PromptData::default()
    };
    assert_eq!(
        t.execute(&fim).unwrap(),
        "<PRE> def add( <SUF>return x <MID>"
    );
    let chat = PromptData {
        messages: msgs(&[("user", "hello")]),
        ..PromptData::default()
    };
    assert_eq!(t.execute(&chat).unwrap(), "hello");

    // Ollama appends {{ .Response }} when neither .Messages nor .Response appears.
    let t = GoTemplate::parse("{{ .Prompt }}").unwrap();
    assert_eq!(
        t.render(&PromptData {
            prompt: "p".into(),
            response: "r".into(),
            ..PromptData::default()
        })
        .unwrap(),
        "pr"
    );
    assert!(
        GoTemplate::parse("{{ range .Messages }}{{ .Role }} {{ .Content }}{{ end }}")
            .unwrap()
            .uses_messages()
    );
    assert!(GoTemplate::parse("{{ range $.Messages }}{{ end }}")
        .unwrap()
        .uses_messages());
    assert!(
        !GoTemplate::parse("{{ with .Tools }}{{ . }}{{ end }} {{ .System }} {{ .Prompt }}")
            .unwrap()
            .uses_messages()
    );
}

#[test]
fn collate_merges_same_role_but_not_tools() {
    let (system, out) = collate(&msgs(&[
        ("system", "a"),
        ("system", "b"),
        ("user", "Hello"),
        ("user", "How are you?"),
        ("tool", "sunny"),
        ("tool", "72F"),
    ]));
    assert_eq!(system, "a\n\nb");
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].content, "a\n\nb");
    assert_eq!(out[1].content, "Hello\n\nHow are you?");
    assert_eq!(out[2].content, "sunny");
}

#[test]
fn trim_markers_and_comments() {
    assert_eq!(run("a  {{- .Prompt -}}  \n b"), "ahib");
    assert_eq!(run("a {{ .Prompt }} b"), "a hi b");
    assert_eq!(run("a \n{{- /* note */ -}}\n b"), "ab");
    assert_eq!(run("a{{/* note */}}b"), "ab");
    assert_eq!(run("{{-3}}"), "-3");
    assert_eq!(run("{{ 3 -}} x"), "3x");
    assert_eq!(run("x {{- `raw \\n` }}"), "xraw \\n");
}

#[test]
fn last_message_with_range_slice_len() {
    let src = r#"{{- range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}{{ $i }}:{{ .Role }}{{ if $last }}!{{ end }} {{ end }}"#;
    assert_eq!(run(src), "0:system 1:user 2:assistant 3:user! ");
    assert_eq!(
        run(
            "{{ len .Messages }} {{ (index .Messages 1).Content }} {{ len (slice .Messages 1 3) }}"
        ),
        "4 U1 2"
    );
    assert_eq!(run(r#"{{ slice "hello" 1 3 }}{{ index "AB" 1 }}"#), "el66");
}

#[test]
fn variables_scopes_and_assignment() {
    let src = r#"{{- $s := "" }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $s = .Content }}{{ continue }}{{ end }}[{{ $s }}{{ .Content }}]{{ $s = "" }}{{ end }}"#;
    assert_eq!(run(src), "[SU1][A1][U2]");
    assert_eq!(run("{{ range $i, $m := .Messages }}{{ if eq $i 2 }}{{ break }}{{ end }}{{ $m.Content }}{{ end }}"), "SU1");
    assert_eq!(run("{{ range .Tools }}x{{ else }}none{{ end }}"), "none");
    assert_eq!(run("{{ range 3 }}{{ . }}{{ end }}"), "012");
    assert_eq!(
        run("{{ with .System }}<{{ . }}>{{ else }}no{{ end }}"),
        "<sys>"
    );
    assert_eq!(
        run("{{ with .Suffix }}<{{ . }}>{{ else with .Prompt }}[{{ . }}]{{ end }}"),
        "[hi]"
    );
    assert!(run_err("{{ if .System }}{{ $x := 1 }}{{ end }}{{ $x }}")
        .contains("undefined variable `$x`"));
}

#[test]
fn functions() {
    assert_eq!(
        run(r#"{{ if and .System (not .Suffix) }}y{{ end }}{{ or .Suffix "d" }}{{ and 1 0 2 }}"#),
        "yd0"
    );
    assert_eq!(
        run(
            r#"{{ eq .Prompt "a" "b" "hi" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2 }}"#
        ),
        "true true true true true false"
    );
    assert_eq!(
        run(
            r#"{{ print "a" 1 2 "b" }}|{{ println 1 "x" }}|{{ printf "%s=%d %q %v %5.2f|%-3s|%03d" "k" 7 "q" true 3.14159 "a" 5 }}"#
        ),
        "a1 2b|1 x\n|k=7 \"q\" true  3.14|a  |005"
    );
    assert_eq!(run(r#"{{ printf "%s %d" "only" }}"#), "only %!d(MISSING)");
    assert_eq!(
        run(r#"{{ .Prompt | printf "%s!" }} {{ "x" | eq "x" }}"#),
        "hi! true"
    );
    assert_eq!(
        run(r#"{{ json "<a&b>" }} {{ json .Suffix }}"#),
        r#""\u003ca\u0026b\u003e" """#
    );
    let date = run("{{ currentDate }}");
    assert_eq!(date.len(), 10);
    assert_eq!(&date[4..5], "-");
    assert_eq!(run("{{ .Missing }}"), "<no value>");
    assert_eq!(run("{{ if .Missing }}a{{ else }}b{{ end }}"), "b");
}

#[test]
fn tools_and_tool_calls_print_like_ollama() {
    let tools = serde_json::json!([{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather",
            "parameters": {
                "type": "object",
                "required": ["city"],
                "properties": {"city": {"type": "string", "description": "City <name>"}}
            }
        }
    }]);
    let mut call = ChatMessage::new("assistant", "");
    call.tool_calls = vec![
        serde_json::json!({"function": {"name": "get_weather", "arguments": {"city": "Tokyo", "unit": "c"}}}),
    ];
    let data = PromptData {
        messages: vec![ChatMessage::new("user", "weather?"), call],
        tools: Some(tools),
        ..PromptData::default()
    };
    let t = GoTemplate::parse(
        "{{ range .Tools }}{\"type\": \"function\", \"function\": {{ .Function }}}{{ end }}\n\
         {{ range .Tools }}{{ range $n, $p := .Function.Parameters.Properties }}{{ $n }}:{{ $p.Type }};{{ end }}{{ end }}\n\
         {{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Name }} {{ .Function.Arguments }} {{ range $k, $v := .Function.Arguments }}{{ $k }}={{ $v }};{{ end }}{{ end }}{{ end }}",
    )
    .unwrap();
    assert_eq!(
        t.execute(&data).unwrap(),
        "{\"type\": \"function\", \"function\": {\"name\":\"get_weather\",\"description\":\"Get the weather\",\"parameters\":{\"type\":\"object\",\"required\":[\"city\"],\"properties\":{\"city\":{\"type\":\"string\",\"description\":\"City \\u003cname\\u003e\"}}}}}\n\
         city:string;\n\
         get_weather {\"city\":\"Tokyo\",\"unit\":\"c\"} city=Tokyo;unit=c;"
    );
}

#[test]
fn errors_have_positions() {
    assert_eq!(
        run_err("a\n\n  {{ foo .Prompt }}"),
        "template:3:6: function `foo` not defined"
    );
    assert!(run_err("{{ .Prompt ").contains("unclosed action"));
    assert!(run_err("{{ if .X }}").contains("unexpected EOF"));
    assert!(run_err("{{ end }}").contains("unexpected {{end}}"));
    assert!(run_err("{{ break }}").contains("{{break}} outside {{range}}"));
    assert!(
        run_err(r#"{{define "x"}}{{template "x"}}{{end}}{{template "x"}}"#)
            .contains("not supported")
    );
    assert_eq!(
        run_err("x\n{{ index .Messages 9 }}"),
        "template:2:4: executing: error calling index: index out of range: 9 (len 4)"
    );
    assert!(run_err("{{ .Prompt.Foo }}").contains("can't evaluate field Foo in type string"));
    assert!(run_err("{{ len 3 }}").contains("len of type int"));
    assert!(run_err("{{ eq .Messages 1 }}").contains("non-comparable"));
    assert!(run_err("{{ \"a\" 1 }}").contains("can't give argument to non-function"));
}

#[test]
fn limits_stop_hostile_templates() {
    // Nested ranges over big lists: 10^9 iterations.
    let e = run_err("{{ range 1000 }}{{ range 1000 }}{{ range 1000 }}x{{ end }}{{ end }}{{ end }}");
    assert!(e.contains("limit of 1000000 steps"), "{e}");
    // Doubling a string: stopped by the size cap, not by memory.
    let e = run_err(
        r#"{{ $s := "xxxxxxxxxxxxxxxx" }}{{ range 100 }}{{ $s = printf "%s%s" $s $s }}{{ end }}{{ $s }}"#,
    );
    assert!(e.contains("limit of 4194304 bytes"), "{e}");
    // Plain output growth.
    let t = GoTemplate::parse("{{ range 100000 }}0123456789012345678901234567890123456789012345678901234567890123{{ end }}")
        .unwrap()
        .with_limits(Limits { max_steps: u64::MAX, max_output: 1 << 20 });
    assert!(matches!(
        t.render(&data()),
        Err(TemplateError::OutputLimit(_))
    ));
    // Deep nesting is refused at parse time.
    let deep = "{{ if 1 }}".repeat(200) + &"{{ end }}".repeat(200);
    assert!(run_err(&deep).contains("nesting deeper than 100"));
    let parens = "{{ ".to_owned() + &"(".repeat(500) + "1" + &")".repeat(500) + " }}";
    assert!(run_err(&parens).contains("nesting deeper than 100"));
    // Slicing shares the list, so a long chat with the Gemma 3 template
    // (`slice $.Messages $i` per message) stays well inside the budget...
    let big = PromptData {
        messages: (0..10_000)
            .map(|i| ChatMessage::new(if i % 2 == 0 { "user" } else { "assistant" }, i.to_string()))
            .collect(),
        ..PromptData::default()
    };
    let t = GoTemplate::parse(crate::template::GEMMA3_TEMPLATE).unwrap();
    assert!(t
        .execute(&big)
        .unwrap()
        .ends_with("<start_of_turn>model\n\n"));
    // ...while nested ranges over it (10^8 iterations) are stopped.
    let t =
        GoTemplate::parse("{{ range .Messages }}{{ range $.Messages }}{{ end }}{{ end }}").unwrap();
    assert!(matches!(t.render(&big), Err(TemplateError::StepLimit(_))));
}

/// A tiny deterministic PRNG (xorshift64*), so the fuzz test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Mutates real templates byte-wise and with template fragments; parsing and
/// rendering must return (Ok or Err) without panicking.
#[test]
fn mutation_fuzz_never_panics() {
    const FRAGMENTS: &[&str] = &[
        "{{",
        "}}",
        "{{-",
        "-}}",
        " ",
        "$",
        "$x",
        ":=",
        "=",
        "|",
        "(",
        ")",
        ".",
        ".Messages",
        "range",
        "if",
        "else",
        "end",
        "with",
        "break",
        "continue",
        "slice",
        "index",
        "len",
        "eq",
        "printf",
        "\"%s%s\"",
        "\"",
        "`",
        "'",
        "/*",
        "*/",
        "1",
        "-1",
        "0x",
        "1e9",
        "nil",
        "true",
        ",",
        "\n",
        "é",
        "\u{0}",
        "9223372036854775807",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let limits = Limits {
        max_steps: 20_000,
        max_output: 64 << 10,
    };
    let d = data();
    let seeds: Vec<&str> = vec![
        DEFAULT_TEMPLATE,
        LLAMA3_TEMPLATE,
        CHATML_TEMPLATE,
        GEMMA_TEMPLATE,
        GEMMA3_TEMPLATE,
    ];
    for _ in 0..3000 {
        let mut s: Vec<u8> = seeds[rng.below(seeds.len())].as_bytes().to_vec();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(s.len() + 1);
            match rng.below(4) {
                0 if !s.is_empty() => {
                    let end = (at + rng.below(8)).min(s.len());
                    s.drain(at.min(end)..end);
                }
                1 => {
                    let f = FRAGMENTS[rng.below(FRAGMENTS.len())];
                    s.splice(at..at, f.bytes());
                }
                2 if !s.is_empty() => {
                    let i = at.min(s.len() - 1);
                    s[i] = (rng.next() & 0xff) as u8;
                }
                _ => {
                    // Duplicate a slice, which nests blocks.
                    let start = rng.below(s.len() + 1);
                    let end = (start + rng.below(64)).min(s.len());
                    let chunk = s[start..end].to_vec();
                    s.splice(at..at, chunk);
                }
            }
        }
        let src = String::from_utf8_lossy(&s);
        if let Ok(t) = GoTemplate::parse(&src) {
            let t = t.with_limits(limits);
            let _ = t.render(&d);
            let _ = t.execute(&d);
        }
    }
}
