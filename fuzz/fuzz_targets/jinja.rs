//! Jinja chat templates under a small fuel and output limit: the template
//! is the input up to the first NUL, the conversation the rest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmpmd::template::jinja::{JinjaLimits, JinjaTemplate};
use llmpmd::template::ChatMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (src, rest) = text.split_once('\0').unwrap_or((text, "hi"));
    let limits = JinjaLimits {
        fuel: 20_000,
        max_output: 1 << 16,
        recursion: 50,
    };
    let Ok(t) = JinjaTemplate::with_limits(src, limits) else {
        return;
    };
    let messages: Vec<ChatMessage> = rest
        .split('\n')
        .enumerate()
        .map(|(i, c)| ChatMessage::new(["system", "user", "assistant", "tool"][i % 4], c))
        .collect();
    let tools = serde_json::from_str(rest).ok();
    if let Ok(out) = t.render_with_tools(&messages, tools.as_ref(), true, "<s>", "</s>") {
        assert!(out.len() <= limits.max_output, "{} bytes", out.len());
    }
});
