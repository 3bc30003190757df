//! How a Jinja chat template writes a tool call, found by rendering one.
//!
//! A Jinja template has no syntax tree Ollama reads, so the call's prefix
//! is found by rendering the same turn twice, once as text and once as a
//! tool call with a probe name: what the call's render prints between the
//! point the two part and the probe name is the prefix, cut at `{` as
//! Ollama cuts a Go template's.

use serde_json::json;

use super::super::{ChatMessage, RenderOptions, ToolCallFormat, PYTHON_TAG};
use super::JinjaTemplate;

/// A name no real tool has.
const PROBE: &str = "llmpm_probe_fn";

impl JinjaTemplate {
    /// How the model writes a tool call, from a rendered probe call; `None`
    /// when the template cannot render one.
    pub fn tool_call_format(&self, bos: &str, eos: &str) -> Option<ToolCallFormat> {
        let user = ChatMessage::new("user", "Call the probe.");
        let call = ChatMessage {
            role: "assistant".into(),
            // Mistral's templates insist on nine alphanumeric characters.
            tool_calls: vec![json!({"id": "abcdefghi", "type": "function",
                "function": {"name": PROBE, "arguments": {"x": 1}}})],
            ..ChatMessage::default()
        };
        let text = ChatMessage::new("assistant", "\u{1}");
        let opts = RenderOptions {
            tools: Some(json!([{"type": "function", "function": {"name": PROBE,
                "description": "probe", "parameters": {"type": "object",
                "properties": {"x": {"type": "integer"}}}}}])),
            think: None,
        };
        let render = |m: &ChatMessage| {
            self.render_with(&[user.clone(), m.clone()], &opts, false, bos, eos)
                .ok()
        };
        let (with_call, with_text) = (render(&call)?, render(&text)?);
        let common = with_call
            .char_indices()
            .zip(with_text.chars())
            .find(|((_, a), b)| a != b)
            .map_or(with_call.len().min(with_text.len()), |((i, _), _)| i);
        let rest = &with_call[common..];
        let name_at = rest.find(PROBE)?;
        let before = &rest[..name_at];
        let tag = before.split('{').next().unwrap_or_default().trim();
        let after = &rest[name_at..];
        let key = match (after.find("\"arguments\""), after.find("\"parameters\"")) {
            (Some(a), Some(p)) if p < a => "parameters",
            (None, Some(_)) => "parameters",
            _ => "arguments",
        };
        Some(ToolCallFormat {
            tag: if tag.is_empty() {
                "{".into()
            } else {
                tag.into()
            },
            arguments_key: key.into(),
            // Llama 3.1 may open a bare JSON call with `<|python_tag|>`.
            alt_prefix: (tag.is_empty() && self.src.contains(PYTHON_TAG))
                .then(|| PYTHON_TAG.into()),
        })
    }
}
