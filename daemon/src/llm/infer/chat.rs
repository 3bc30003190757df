//! What a request asks of a model beyond its messages: tools and thinking.
//! Checked against what the model's template can do (Ollama's `tools` and
//! `thinking` capabilities and their 400s), handed to the template as
//! Ollama hands them, and turned into the output parser that takes the
//! reasoning and the calls out of the answer; a call the request forces
//! (OpenAI's `tool_choice`) becomes a grammar for the runner.

use llmpm_spec::api::{Think, Tool};
use serde_json::{json, Value};

use super::{Capability, Prompt, ResolvedModel};
use crate::llm::error::LlmError;
use crate::llm::handle::{Events, Runner};
use crate::llm::options::Options;
use crate::llm::parse::{parse_events, OutputParser, ThinkingParser, ToolParser, HARMONY_TAGS};
use crate::llm::protocol::{CompletionRequest, Constraint};
use crate::template::{RenderOptions, ToolCallFormat};

/// Which tool calls a request allows or demands (OpenAI's `tool_choice`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// No calls: the tools are not shown.
    None,
    /// At least one call, to any tool.
    Required,
    /// A call to this tool.
    Function(String),
}

/// A request's tools and thinking, checked against the model.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// The tools shown to the model (none for `tool_choice: none`).
    pub tools: Vec<Tool>,
    /// `think` after the model's default (on for a model that thinks).
    pub think: Option<Think>,
    /// A call the output must be.
    pub forced: Option<ToolChoice>,
}

impl<X> ResolvedModel<X> {
    /// Checks a request's `tools`, `think` and `tool_choice` against the
    /// model `name` (as the request named it): tools need the `tools`
    /// capability and thinking the `thinking` one, each refused with
    /// Ollama's text; an omitted `think` is on for a model that thinks.
    pub fn features(
        &self,
        name: &str,
        tools: Vec<Tool>,
        think: Option<Think>,
        choice: ToolChoice,
    ) -> Result<Features, LlmError> {
        let thinks = self.can(Capability::Thinking);
        let mut think = match think {
            None if thinks => Some(Think::Bool(true)),
            Some(t) if t.enabled() => {
                self.require(name, Capability::Thinking, "")?;
                Some(t)
            }
            t => t,
        };
        if let ToolChoice::Function(f) = &choice {
            if !tools.iter().any(|t| &t.function.name == f) {
                return Err(LlmError::Request(format!(
                    "`tool_choice` names the function {f:?}, which is not among `tools`"
                )));
            }
        }
        if tools.is_empty() || choice == ToolChoice::None {
            return Ok(Features {
                tools: Vec::new(),
                think,
                forced: None,
            });
        }
        self.require(name, Capability::Tools, "")?;
        let forced = matches!(choice, ToolChoice::Required | ToolChoice::Function(_));
        if forced && thinks {
            // The grammar holds the answer to the call from its first
            // token, so a forced call is made without reasoning first.
            think = Some(Think::Bool(false));
        }
        Ok(Features {
            tools,
            think,
            forced: forced.then_some(choice),
        })
    }

    /// The template's view of the request's tools and thinking.
    pub fn render_options(&self, f: &Features) -> RenderOptions {
        RenderOptions {
            tools: (!f.tools.is_empty())
                .then(|| serde_json::to_value(&f.tools).unwrap_or_default()),
            think: f.think,
        }
    }

    /// How the model writes a tool call.
    pub fn tool_call_format(&self) -> ToolCallFormat {
        self.template
            .template
            .tool_call_format(&self.bos, &self.eos)
    }

    /// The parser of the answer to `prompt`: reasoning split when thinking
    /// is on (starting inside it when the prompt opened the tag), calls
    /// found when tools are shown.
    pub fn output_parser(&self, f: &Features, prompt: &Prompt) -> OutputParser {
        if self.harmony {
            return OutputParser::harmony();
        }
        let thinking = match (
            f.think.is_some_and(Think::enabled),
            self.template.template.think_tags(),
        ) {
            (true, Some((open, close))) => {
                let p = ThinkingParser::new(&open, &close);
                Some(if prompt.text.trim_end().ends_with(&open) {
                    p.opened()
                } else {
                    p
                })
            }
            _ => None,
        };
        let tools = (!f.tools.is_empty()).then(|| {
            let fmt = self.tool_call_format();
            let names = f.tools.iter().map(|t| t.function.name.clone()).collect();
            ToolParser::new(&fmt.tag, fmt.alt_prefix.as_deref(), names)
        });
        OutputParser::new(thinking, tools)
    }

    /// Texts the runner must print even where they are control tokens
    /// (Mistral's `[TOOL_CALLS]`): the call tag and the think tags in use.
    pub fn preserved_tokens(&self, f: &Features) -> Vec<String> {
        let mut out = Vec::new();
        if self.harmony {
            // The parser reads the channels and recipients from them.
            out.extend(HARMONY_TAGS.iter().map(|t| (*t).to_owned()));
        }
        if !f.tools.is_empty() {
            let fmt = self.tool_call_format();
            out.extend(fmt.alt_prefix);
            // `[TOOL_CALLS] [` is the token and a bracket.
            out.extend(fmt.tag.split_whitespace().next().map(str::to_owned));
        }
        if f.think.is_some_and(Think::enabled) {
            if let Some((open, close)) = self.template.template.think_tags() {
                out.push(open);
                out.push(close);
            }
        }
        out.retain(|t| t != "{" && t != "[");
        out
    }

    /// The runner request for `prompt` with `opts`: held to a forced
    /// call's grammar if there is one, else to `constraint`; the tags the
    /// output parser reads kept visible.
    pub fn completion_request(
        &self,
        prompt: Prompt,
        opts: &Options,
        constraint: Option<Constraint>,
        f: &Features,
    ) -> CompletionRequest {
        let constraint = match self.forced_call_grammar(f) {
            Some(grammar) => Some(Constraint::Lark { grammar }),
            None => constraint,
        };
        let mut req = prompt.completion(opts, constraint);
        req.preserved_tokens = self.preserved_tokens(f);
        req
    }

    /// Generates from `prompt` on `runner` (see [`Self::completion_request`],
    /// log-probabilities with `logprobs` alternatives when asked) and reads
    /// the answer through [`Self::output_parser`]: reasoning, text and tool
    /// calls as events.
    pub async fn generate(
        &self,
        runner: &Runner,
        prompt: Prompt,
        opts: &Options,
        constraint: Option<Constraint>,
        f: &Features,
        logprobs: Option<u32>,
    ) -> Result<Events, LlmError> {
        if !opts.truncate {
            let tokens = self.count_tokens(runner, &prompt).await?;
            let num_ctx = runner.num_ctx();
            if tokens >= num_ctx {
                return Err(LlmError::Request(format!(
                    "the prompt is {tokens} tokens, more than the context (num_ctx {num_ctx}) holds with room to answer; shorten it, raise `num_ctx`, or leave `truncate` on to drop the oldest messages"
                )));
            }
        }
        let parser = self.output_parser(f, &prompt);
        let request = self
            .completion_request(prompt, opts, constraint, f)
            .with_logprobs(logprobs);
        let events = crate::llm::handle::metered(&self.name, runner.complete(request).await?);
        Ok(parse_events(events, parser))
    }

    /// The grammar a forced call holds the output to, in llguidance's Lark
    /// dialect: the template's call tag, then one call as a JSON schema
    /// (`name` the tool's, arguments its `parameters`).
    pub fn forced_call_grammar(&self, f: &Features) -> Option<String> {
        let choice = f.forced.as_ref()?;
        Some(call_grammar(&self.tool_call_format(), &f.tools, choice))
    }
}

/// See [`ResolvedModel::forced_call_grammar`].
pub fn call_grammar(fmt: &ToolCallFormat, tools: &[Tool], choice: &ToolChoice) -> String {
    let schema_of = |t: &Tool| {
        let params = match &t.function.parameters {
            Value::Object(_) => t.function.parameters.clone(),
            _ => json!({"type": "object"}),
        };
        json!({
            "type": "object",
            "properties": {"name": {"const": t.function.name}, fmt.arguments_key.clone(): params},
            "required": ["name", fmt.arguments_key],
            "additionalProperties": false,
        })
    };
    let schema = match choice {
        ToolChoice::Function(name) => tools
            .iter()
            .find(|t| &t.function.name == name)
            .map_or_else(|| json!({"type": "object"}), schema_of),
        _ => json!({"anyOf": tools.iter().map(schema_of).collect::<Vec<_>>()}),
    };
    let mut start = String::from("start:");
    if fmt.tag != "{" {
        // A JSON string is a Lark string literal.
        start.push(' ');
        start.push_str(&Value::String(fmt.tag.clone()).to_string());
        start.push_str(" WS?");
    }
    start.push_str(" call");
    if fmt.tag.ends_with('[') {
        start.push_str(" WS? \"]\"");
    }
    format!("{start}\ncall: %json {schema}\nWS: /[ \\t\\r\\n]+/\n")
}
