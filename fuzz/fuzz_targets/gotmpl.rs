//! Go templates: a hostile template (the input up to the first NUL) run on
//! data from the rest, under small step and output limits: an error or an
//! output within the limit, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmpmd::template::gotmpl::{GoTemplate, Limits, PromptData};
use llmpmd::template::ChatMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (src, rest) = text.split_once('\0').unwrap_or((text, "hi"));
    let Ok(t) = GoTemplate::parse(src) else {
        return;
    };
    let limits = Limits {
        max_steps: 20_000,
        max_output: 1 << 16,
    };
    let t = t.with_limits(limits);
    let messages = rest
        .split('\n')
        .enumerate()
        .map(|(i, c)| ChatMessage::new(["system", "user", "assistant", "tool"][i % 4], c))
        .collect();
    let data = PromptData {
        system: rest.to_owned(),
        prompt: rest.to_owned(),
        messages,
        tools: serde_json::from_str(rest).ok(),
        ..PromptData::default()
    };
    if let Ok(out) = t.execute(&data) {
        assert!(out.len() <= limits.max_output, "{} bytes", out.len());
    }
    let _ = t.think_tags();
    let _ = t.tool_call_tag();
});
