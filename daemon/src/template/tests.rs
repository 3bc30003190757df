//! Tests for the built-in templates and their detection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[test]
fn builtins_parse() {
    for src in [
        DEFAULT_TEMPLATE,
        LLAMA3_TEMPLATE,
        CHATML_TEMPLATE,
        GEMMA_TEMPLATE,
        GEMMA3_TEMPLATE,
    ] {
        GoTemplate::parse(src).unwrap();
    }
}

#[test]
fn detects_builtin_from_jinja() {
    let llama = include_str!("testdata/jinja/llama3.1.jinja");
    let qwen = include_str!("testdata/jinja/qwen2.5.jinja");
    let gemma = include_str!("testdata/jinja/gemma3.jinja");
    assert_eq!(
        detect_builtin(Some(llama), "llama"),
        Some((LLAMA3_TEMPLATE, LLAMA3_STOPS))
    );
    assert_eq!(
        detect_builtin(Some(include_str!("testdata/jinja/llama3.2.jinja")), "llama"),
        Some((LLAMA3_TEMPLATE, LLAMA3_STOPS))
    );
    assert_eq!(
        detect_builtin(Some(qwen), "qwen2"),
        Some((CHATML_TEMPLATE, CHATML_STOPS))
    );
    assert_eq!(
        detect_builtin(Some(gemma), "gemma3"),
        Some((GEMMA3_TEMPLATE, GEMMA3_STOPS))
    );
    assert_eq!(
        detect_builtin(Some(gemma), "gemma2"),
        Some((GEMMA_TEMPLATE, GEMMA_STOPS))
    );
    assert_eq!(detect_builtin(Some("{{ messages }}"), "llama"), None);
    // A base model without a chat template keeps the plain prompt.
    assert_eq!(detect_builtin(None, "gemma3"), None);
}

/// The built-in Go template and the model's own Jinja template agree on a
/// plain chat (Llama 3.2 prints a date header that Ollama's template omits,
/// Qwen's default system prompt likewise; compare where they coincide).
#[test]
fn builtin_and_jinja_agree_for_chatml() {
    let conv = vec![
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Hello."),
        ChatMessage::new("user", "Bye"),
    ];
    let go = render_chat(&GoTemplate::parse(CHATML_TEMPLATE).unwrap(), None, &conv).unwrap();
    let jinja = JinjaTemplate::new(include_str!("testdata/jinja/qwen2.5.jinja"))
        .unwrap()
        .render(&conv, true, "", "")
        .unwrap();
    assert_eq!(go, jinja);
}

#[test]
fn error_messages_name_the_limit() {
    assert_eq!(
        TemplateError::StepLimit(1_000_000).to_string(),
        "template: evaluation exceeded the limit of 1000000 steps"
    );
    assert_eq!(
        TemplateError::OutputLimit(4 << 20).to_string(),
        "template: output exceeded the limit of 4194304 bytes"
    );
}

#[test]
fn civil_dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(19_930), (2024, 7, 26));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
}

#[test]
fn select_follows_ollamas_order() {
    let llama = include_str!("testdata/jinja/llama3.1.jinja");
    let gemma = include_str!("testdata/jinja/gemma3.jinja");
    let conv = [ChatMessage::new("user", "Hi")];

    // The TEMPLATE layer wins.
    let s = ChatTemplate::select(Some("{{ .Prompt }}!"), Some(llama), "llama").unwrap();
    assert!(s.stops.is_empty());
    assert_eq!(
        s.template
            .render_chat(None, &conv, &RenderOptions::default(), "", "")
            .unwrap(),
        "Hi!"
    );

    // A recognised Jinja template becomes the built-in with its stops
    // (Llama 3's, which takes no tools).
    let llama3 = "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n\
                  {{ m.content }}<|eot_id|>{% endfor %}";
    let s = ChatTemplate::select(None, Some(llama3), "llama").unwrap();
    assert_eq!(s.stops, LLAMA3_STOPS);
    assert_eq!(
        s.template
            .render_chat(Some("Sys"), &conv, &RenderOptions::default(), "", "")
            .unwrap(),
        "<|start_header_id|>system<|end_header_id|>\n\nSys<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );

    // One that can do more than the built-in (tools) is kept, as Ollama
    // prefers such a chat template to its Go template.
    for jinja in [llama, include_str!("testdata/jinja/qwen2.5.jinja")] {
        let s = ChatTemplate::select(None, Some(jinja), "llama").unwrap();
        assert!(matches!(s.template, ChatTemplate::Jinja(_)));
        assert!(s.template.takes_tools() && s.stops.is_empty());
    }

    // An unknown Jinja template is rendered as Jinja.
    let s = ChatTemplate::select(None, Some("{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"), "llama").unwrap();
    assert!(matches!(s.template, ChatTemplate::Jinja(_)));
    assert_eq!(
        s.template
            .render_chat(Some("S"), &conv, &RenderOptions::default(), "<s>", "")
            .unwrap(),
        "<s>[system]S[user]Hi[assistant]"
    );
    let prefill = [
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Well"),
    ];
    assert_eq!(
        s.template
            .render_chat(None, &prefill, &RenderOptions::default(), "", "")
            .unwrap(),
        "[user]Hi[assistant]Well"
    );

    // No template at all: the prompt as-is.
    let s = ChatTemplate::select(None, None, "gemma3").unwrap();
    assert_eq!(
        s.template
            .render_chat(None, &conv, &RenderOptions::default(), "", "")
            .unwrap(),
        "Hi"
    );
    assert!(matches!(
        ChatTemplate::select(None, Some(gemma), "gemma3")
            .unwrap()
            .template,
        ChatTemplate::Go(_)
    ));
}

#[test]
fn template_capabilities_follow_ollamas_rules() {
    // Qwen 3's Ollama template, reduced to what the rules look at.
    let qwen3 = r#"{{- if .Tools }}<tools>{{ range .Tools }}{{ . }}{{ end }}</tools>{{ end }}
{{- range $i, $_ := .Messages }}
{{- if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Thinking -}}
<think>{{ .Thinking }}</think>
{{ end -}}
{{ .Content }}<|im_end|>
{{ end }}{{ end }}"#;
    let t = ChatTemplate::select(Some(qwen3), None, "qwen3")
        .unwrap()
        .template;
    assert!(t.takes_tools());
    assert!(!t.takes_suffix());
    assert_eq!(
        t.think_tags(),
        Some(("<think>".to_owned(), "</think>".to_owned()))
    );

    // `.Thinking` outside a range over `.Messages` does not count (Ollama's rule).
    let outside = "{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Prompt }}";
    let t = ChatTemplate::select(Some(outside), None, "llama")
        .unwrap()
        .template;
    assert_eq!(t.think_tags(), None);

    // Fill-in-the-middle reads `.Suffix`.
    let fim = "{{ if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>{{ else }}{{ .Prompt }}{{ end }}";
    let t = ChatTemplate::select(Some(fim), None, "qwen2")
        .unwrap()
        .template;
    assert!(t.takes_suffix());
    assert!(!t.takes_tools());

    // Jinja: by what the source mentions.
    let jinja = "{% for m in messages %}{% if tools %}{{ tools | tojson }}{% endif %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}<think>\n\n</think>{% endif %}";
    let t = ChatTemplate::select(None, Some(jinja), "qwen3")
        .unwrap()
        .template;
    assert!(matches!(t, ChatTemplate::Jinja(_)));
    assert!(t.takes_tools());
    assert_eq!(
        t.think_tags(),
        Some(("<think>".to_owned(), "</think>".to_owned()))
    );
    let plain = ChatTemplate::select(None, Some("{{ messages[0].content }}"), "llama")
        .unwrap()
        .template;
    assert!(!plain.takes_tools());
    assert_eq!(plain.think_tags(), None);
}
