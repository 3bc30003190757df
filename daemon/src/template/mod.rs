//! Prompt templates: Ollama's Go-template TEMPLATE layers ([`gotmpl`]), the
//! GGUF's Jinja `tokenizer.chat_template` ([`jinja`]), and the built-in
//! templates used when a model arrives with neither a TEMPLATE layer nor
//! anything better ([`detect_builtin`]). [`ChatTemplate::select`] picks
//! between them in Ollama's order and [`ChatTemplate::render_chat`] renders
//! a conversation with whichever was picked.
//!
//! Both engines run untrusted text (a pulled model's layers), so both are
//! bounded: a step or fuel budget, an output cap and a nesting limit, each
//! failing with an error that names the limit.

pub mod gotmpl;
pub mod jinja;

pub use gotmpl::{render_chat, GoTemplate, Limits, PromptData, TValue};
pub use jinja::{JinjaLimits, JinjaTemplate};
use llmpm_spec::api::Think;

/// Why a template could not be parsed or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The Go template does not parse.
    #[error("template:{line}:{col}: {msg}")]
    Parse {
        /// 1-based line.
        line: usize,
        /// 1-based byte column.
        col: usize,
        /// What is wrong.
        msg: String,
    },
    /// The Go template failed while executing.
    #[error("template:{line}:{col}: executing: {msg}")]
    Exec {
        /// 1-based line.
        line: usize,
        /// 1-based byte column.
        col: usize,
        /// What is wrong.
        msg: String,
    },
    /// The step budget ran out (a loop that does not end, or too much work).
    #[error("template: evaluation exceeded the limit of {0} steps")]
    StepLimit(u64),
    /// The output (or a string built on the way) grew past the cap.
    #[error("template: output exceeded the limit of {0} bytes")]
    OutputLimit(usize),
    /// Loops, conditions or macro calls nested past the limit.
    #[error("template: nesting exceeded the limit of {0} levels")]
    DepthLimit(usize),
    /// The Jinja chat template does not compile.
    #[error("chat template does not parse")]
    JinjaSyntax(#[source] minijinja::Error),
    /// The Jinja chat template failed while rendering (fuel and recursion
    /// limits included; the source says which).
    #[error("chat template failed to render")]
    JinjaRender(#[source] minijinja::Error),
    /// The Jinja template called `raise_exception`.
    #[error("chat template raised an exception: {0}")]
    JinjaRaised(String),
}

/// One chat message as the templates see it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    #[serde(default)]
    pub content: String,
    /// The model's reasoning, for templates that replay it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub thinking: String,
    /// Tool calls in the Ollama/OpenAI shape
    /// (`{"function": {"name": …, "arguments": {…}}}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<serde_json::Value>,
    /// For `tool` messages: the tool that produced the result.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_name: String,
    /// For `tool` messages: the call this answers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_call_id: String,
}

impl ChatMessage {
    /// A plain text message.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            ..Self::default()
        }
    }
}

impl From<&llmpm_spec::api::Message> for ChatMessage {
    fn from(m: &llmpm_spec::api::Message) -> Self {
        Self {
            role: m.role.clone(),
            content: m.content.clone(),
            thinking: m.thinking.clone(),
            tool_calls: m
                .tool_calls
                .iter()
                .map(|c| serde_json::to_value(c).unwrap_or_default())
                .collect(),
            tool_name: m.tool_name.clone(),
            tool_call_id: m.tool_call_id.clone(),
        }
    }
}

/// What a request adds to a conversation's rendering besides its messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderOptions {
    /// The `tools` array (Ollama/OpenAI shape), for `.Tools` and Jinja's `tools`.
    pub tools: Option<serde_json::Value>,
    /// `think` after a thinking model's default: Go's `.Think`,
    /// `.ThinkLevel`, `.IsThinkSet`; Jinja's `enable_thinking` and
    /// `reasoning_effort`.
    pub think: Option<Think>,
}

/// How a model writes a tool call, as its template shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallFormat {
    /// The text before a call (`<tool_call>`, `[TOOL_CALLS] [`); `{` when
    /// calls are bare JSON objects.
    pub tag: String,
    /// The key of the arguments in a call's JSON (`arguments`, or Llama's `parameters`).
    pub arguments_key: String,
    /// A token that may come before a bare JSON call (Llama 3.1's
    /// `<|python_tag|>`), taken as part of the call.
    pub alt_prefix: Option<String>,
}

/// Llama 3.1's marker before a call.
pub const PYTHON_TAG: &str = "<|python_tag|>";

/// Ollama's template when a model has none: the prompt as-is (the parser
/// appends `{{ .Response }}`).
pub const DEFAULT_TEMPLATE: &str = "{{ .Prompt }}";

/// Ollama's `llama3-instruct` template.
pub const LLAMA3_TEMPLATE: &str =
    "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

";

/// Stop strings for [`LLAMA3_TEMPLATE`].
pub const LLAMA3_STOPS: &[&str] = &["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"];

/// Ollama's `chatml` template (Qwen 2/2.5 and many fine-tunes).
pub const CHATML_TEMPLATE: &str = "{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
";

/// Stop strings for [`CHATML_TEMPLATE`].
pub const CHATML_STOPS: &[&str] = &["<|im_start|>", "<|im_end|>"];

/// Ollama's `gemma3-instruct` template: the system prompt goes into the
/// first user turn, since Gemma has no system role.
pub const GEMMA3_TEMPLATE: &str = r#"{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<start_of_turn>user
{{- if and (eq $i 1) $.System }}
{{ $.System }}
{{ end }}
{{ .Content }}<end_of_turn>
{{ else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- if $last }}<start_of_turn>model
{{ end }}
{{- end }}
"#;

/// Stop strings for [`GEMMA3_TEMPLATE`].
pub const GEMMA3_STOPS: &[&str] = &["<end_of_turn>"];

/// Ollama's `gemma-instruct` template (Gemma 1 and 2).
pub const GEMMA_TEMPLATE: &str = r#"{{- $system := "" }}
{{- range .Messages }}
{{- if eq .Role "system" }}
{{- if not $system }}{{ $system = .Content }}
{{- else }}{{ $system = printf "%s\n\n%s" $system .Content }}
{{- end }}
{{- continue }}
{{- else if eq .Role "user" }}<start_of_turn>user
{{- if $system }}
{{ $system }}
{{- $system = "" }}
{{- end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{- end }}
{{ .Content }}<end_of_turn>
{{ end }}<start_of_turn>model
"#;

/// Stop strings for [`GEMMA_TEMPLATE`].
pub const GEMMA_STOPS: &[&str] = &["<start_of_turn>", "<end_of_turn>"];

/// Picks a built-in Go template and its stop strings for a model that has no
/// TEMPLATE layer, from a rough fingerprint of its Jinja chat template (as
/// Ollama matches `tokenizer.chat_template` against its known templates).
///
/// Without a Jinja template there is nothing to recognise: a base model (no
/// chat template) keeps [`DEFAULT_TEMPLATE`], so `None` is returned.
pub fn detect_builtin(
    chat_template_jinja: Option<&str>,
    architecture: &str,
) -> Option<(&'static str, &'static [&'static str])> {
    let jinja = chat_template_jinja?;
    if jinja.contains("<|start_header_id|>") && jinja.contains("<|eot_id|>") {
        return Some((LLAMA3_TEMPLATE, LLAMA3_STOPS));
    }
    if jinja.contains("<|im_start|>") {
        return Some((CHATML_TEMPLATE, CHATML_STOPS));
    }
    if jinja.contains("<start_of_turn>") {
        // Gemma 3 folds the system prompt into the first user turn differently.
        return Some(
            if architecture == "gemma3" || architecture.starts_with("gemma3") {
                (GEMMA3_TEMPLATE, GEMMA3_STOPS)
            } else {
                (GEMMA_TEMPLATE, GEMMA_STOPS)
            },
        );
    }
    None
}

/// The template a loaded model renders its chats with.
#[derive(Debug)]
pub enum ChatTemplate {
    /// A Go template: the model's TEMPLATE layer or a built-in.
    Go(GoTemplate),
    /// The GGUF's own Jinja `tokenizer.chat_template`.
    Jinja(Box<JinjaTemplate>),
}

/// A [`ChatTemplate`] with the stop strings that come with it.
#[derive(Debug)]
pub struct SelectedTemplate {
    /// The template.
    pub template: ChatTemplate,
    /// Stop strings of a recognised built-in (empty otherwise: they come
    /// from the model's PARAMS layer or its end-of-generation tokens).
    pub stops: Vec<String>,
}

impl ChatTemplate {
    /// Picks the template in Ollama's order: the TEMPLATE layer; else a
    /// built-in recognised from the Jinja template ([`detect_builtin`]),
    /// unless the Jinja template can do more (tools, thinking), where
    /// Ollama too prefers the GGUF's chat template; else the Jinja template
    /// itself; else [`DEFAULT_TEMPLATE`].
    pub fn select(
        template_layer: Option<&str>,
        chat_template_jinja: Option<&str>,
        architecture: &str,
    ) -> Result<SelectedTemplate, TemplateError> {
        if let Some(src) = template_layer {
            return Ok(SelectedTemplate {
                template: ChatTemplate::Go(GoTemplate::parse(src)?),
                stops: Vec::new(),
            });
        }
        let jinja = match chat_template_jinja {
            Some(src) => Some(ChatTemplate::Jinja(Box::new(JinjaTemplate::new(src)?))),
            None => None,
        };
        // The built-ins take neither tools nor thinking.
        let richer = jinja
            .as_ref()
            .is_some_and(|j| j.takes_tools() || j.think_tags().is_some());
        if let Some((src, stops)) = detect_builtin(chat_template_jinja, architecture) {
            if !richer {
                return Ok(SelectedTemplate {
                    template: ChatTemplate::Go(GoTemplate::parse(src)?),
                    stops: stops.iter().map(|s| (*s).to_owned()).collect(),
                });
            }
        }
        let template = match jinja {
            Some(j) => j,
            None => ChatTemplate::Go(GoTemplate::parse(DEFAULT_TEMPLATE)?),
        };
        Ok(SelectedTemplate {
            template,
            stops: Vec::new(),
        })
    }

    /// Whether the template can take `tools`: a Go template that reads
    /// `.Tools`, a Jinja template that mentions tools (Ollama's rules).
    pub fn takes_tools(&self) -> bool {
        match self {
            ChatTemplate::Go(t) => t.reads("tools"),
            ChatTemplate::Jinja(t) => {
                t.source().contains("tools") || t.source().contains("tool_call")
            }
        }
    }

    /// Whether the template builds fill-in-the-middle prompts (reads `.Suffix`).
    pub fn takes_suffix(&self) -> bool {
        matches!(self, ChatTemplate::Go(t) if t.reads("suffix"))
    }

    /// The tags the model writes its reasoning between, when the template
    /// has them: inferred from a Go template ([`GoTemplate::think_tags`]), or
    /// `<think>`/`</think>` in a Jinja template that writes or strips them
    /// (Ollama's `chatTemplateHasThinkingSupport`).
    pub fn think_tags(&self) -> Option<(String, String)> {
        match self {
            ChatTemplate::Go(t) => t.think_tags(),
            ChatTemplate::Jinja(t) => {
                let s = t.source();
                let both = s.contains("<think>") && s.contains("</think>");
                let strips = (s.contains("content.split('</think>')")
                    || s.contains(r#"content.split("</think>")"#))
                    && !s.contains("reasoning_content")
                    && !s.contains("<SPECIAL_12>");
                (both || strips).then(|| ("<think>".to_owned(), "</think>".to_owned()))
            }
        }
    }

    /// Renders a chat. `system` (the model's SYSTEM layer) goes first unless
    /// the conversation opens with its own system message. A Jinja template
    /// gets `add_generation_prompt` unless the last message is the
    /// assistant's (a prefill to continue), and usually emits `bos` itself,
    /// so its prompt should be tokenized without adding another BOS.
    pub fn render_chat(
        &self,
        system: Option<&str>,
        messages: &[ChatMessage],
        opts: &RenderOptions,
        bos: &str,
        eos: &str,
    ) -> Result<String, TemplateError> {
        let mut msgs = Vec::with_capacity(messages.len() + 1);
        if let Some(s) = system.filter(|s| !s.is_empty()) {
            if messages.first().is_none_or(|m| m.role != "system") {
                msgs.push(ChatMessage::new("system", s));
            }
        }
        msgs.extend_from_slice(messages);
        match self {
            ChatTemplate::Go(t) => t.execute(&PromptData {
                messages: msgs,
                tools: opts.tools.clone(),
                think: opts.think,
                ..PromptData::default()
            }),
            ChatTemplate::Jinja(t) => {
                let prefill = msgs.last().is_some_and(|m| m.role == "assistant");
                t.render_with(&msgs, opts, !prefill, bos, eos)
            }
        }
    }

    /// How the model writes a tool call (see [`ToolCallFormat`]).
    pub fn tool_call_format(&self, bos: &str, eos: &str) -> ToolCallFormat {
        match self {
            ChatTemplate::Go(t) => {
                let tag = t.tool_call_tag();
                let alt_prefix =
                    (tag == "{" && t.source().contains(PYTHON_TAG)).then(|| PYTHON_TAG.to_owned());
                ToolCallFormat {
                    arguments_key: t.tool_call_arguments_key(),
                    tag,
                    alt_prefix,
                }
            }
            ChatTemplate::Jinja(t) => {
                t.tool_call_format(bos, eos)
                    .unwrap_or_else(|| ToolCallFormat {
                        tag: "{".into(),
                        arguments_key: "arguments".into(),
                        alt_prefix: None,
                    })
            }
        }
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tool_tests;
