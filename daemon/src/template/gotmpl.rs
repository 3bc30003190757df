//! Ollama's TEMPLATE layers: an interpreter for the Go `text/template` subset
//! they use, and Ollama's rules for feeding it a conversation.
//!
//! The data model and the chat rules follow ollama `template/template.go`:
//! templates that reference `.Messages` get the whole (collated)
//! conversation in one execution; older templates written against
//! `.System`/`.Prompt`/`.Response` are executed once per turn and the
//! results concatenated, the last execution cut right after `.Response` so
//! the prompt ends where the model should continue.

mod exec;
mod infer;
mod lex;
mod parse;
mod printf;
mod value;

use std::collections::{BTreeMap, BTreeSet};

pub use self::value::{StructField, TList, TValue};
pub use super::{ChatMessage, TemplateError};
use llmpm_spec::api::Think;
use parse::{Branch, Cmd, Node, Operand, Pipe, Term};

/// Function names known to the parser; anything else fails at parse time,
/// as in Go.
pub(crate) const FUNCTIONS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "print",
    "printf",
    "println",
    "json",
    "currentDate",
    "yesterdayDate",
];

/// Bounds on one execution, so a hostile template cannot hang or explode.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Evaluation steps (nodes, commands, calls, loop iterations, copies).
    pub max_steps: u64,
    /// Bytes of output, and of any string built along the way.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_steps: 1_000_000,
            max_output: 4 << 20,
        }
    }
}

/// The values one execution sees, as Ollama's `template.Values` plus the
/// per-turn fields.
#[derive(Debug, Clone, Default)]
pub struct PromptData {
    /// `.System`.
    pub system: String,
    /// `.Prompt`.
    pub prompt: String,
    /// `.Response`.
    pub response: String,
    /// `.Suffix` (fill-in-the-middle).
    pub suffix: String,
    /// `.Messages`.
    pub messages: Vec<ChatMessage>,
    /// `.Tools`: the request's `tools` array (OpenAI/Ollama shape).
    pub tools: Option<serde_json::Value>,
    /// `.Think`, `.ThinkLevel` and `.IsThinkSet`: the request's `think`
    /// (after a thinking model's default), `None` when unset.
    pub think: Option<Think>,
}

/// A parsed Go template.
#[derive(Debug, Clone)]
pub struct GoTemplate {
    src: String,
    nodes: Vec<Node>,
    /// Lower-cased field and variable identifiers, as Ollama's `Vars()`.
    vars: BTreeSet<String>,
    limits: Limits,
}

impl GoTemplate {
    /// Parses a template. As Ollama does, a template that mentions neither
    /// `.Messages` nor `.Response` gets `{{ .Response }}` appended.
    pub fn parse(src: &str) -> Result<GoTemplate, TemplateError> {
        let mut nodes = parse::parse(src)?;
        let mut vars = BTreeSet::new();
        collect_vars(&nodes, &mut vars);
        if !vars.contains("messages") && !vars.contains("response") {
            nodes.push(Node::Action(Pipe {
                pos: src.len(),
                decl: Vec::new(),
                assign: false,
                cmds: vec![Cmd {
                    pos: src.len(),
                    args: vec![Operand {
                        pos: src.len(),
                        term: Term::Dot,
                        chain: vec!["Response".to_owned()],
                    }],
                }],
            }));
            vars.insert("response".to_owned());
        }
        Ok(GoTemplate {
            src: src.to_owned(),
            nodes,
            vars,
            limits: Limits::default(),
        })
    }

    /// Replaces the default limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// Whether the template references `.Messages`: Ollama's rule for
    /// passing the whole conversation rather than per-turn `.Prompt`s.
    pub fn uses_messages(&self) -> bool {
        self.vars.contains("messages")
    }

    /// Whether the template reads the field or variable `name` (compared
    /// lower-cased, as Ollama's `Vars()`: `tools`, `suffix`, `think`).
    pub fn reads(&self, name: &str) -> bool {
        self.vars.contains(&name.to_lowercase())
    }

    /// The tags around a message's `.Thinking`, as Ollama's
    /// `thinking.InferTags` finds them: where `.Thinking` appears inside a
    /// `range` over `.Messages`, the first and last text of the innermost
    /// block around it (`{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}`).
    pub fn think_tags(&self) -> Option<(String, String)> {
        let mut tags = (String::new(), String::new());
        infer_think_tags(&self.nodes, false, &mut tags);
        (!tags.0.is_empty() && !tags.1.is_empty()).then_some(tags)
    }

    /// Executes the template once with every field of `data` set.
    pub fn render(&self, data: &PromptData) -> Result<String, TemplateError> {
        let mut m = BTreeMap::new();
        m.insert("System".to_owned(), TValue::Str(data.system.clone()));
        m.insert("Prompt".to_owned(), TValue::Str(data.prompt.clone()));
        m.insert("Response".to_owned(), TValue::Str(data.response.clone()));
        m.insert("Suffix".to_owned(), TValue::Str(data.suffix.clone()));
        m.insert(
            "Messages".to_owned(),
            TValue::List(data.messages.iter().map(message_value).collect()),
        );
        m.insert("Tools".to_owned(), tools_value(data.tools.as_ref()));
        insert_think(&mut m, data.think);
        self.exec(&self.nodes, TValue::Map(m))
    }

    /// Ollama's `Template.Execute`: fill-in-the-middle when `prompt` and
    /// `suffix` are both set, one execution over the collated conversation
    /// for `.Messages` templates, and per-turn executions otherwise.
    pub fn execute(&self, data: &PromptData) -> Result<String, TemplateError> {
        if !data.prompt.is_empty() && !data.suffix.is_empty() {
            let mut m = BTreeMap::new();
            m.insert("Prompt".to_owned(), TValue::Str(data.prompt.clone()));
            m.insert("Suffix".to_owned(), TValue::Str(data.suffix.clone()));
            m.insert("Response".to_owned(), TValue::Str(String::new()));
            insert_think(&mut m, data.think);
            return self.exec(&self.nodes, TValue::Map(m));
        }
        let (system, messages) = collate(&data.messages);
        if self.uses_messages() {
            let mut m = BTreeMap::new();
            m.insert("System".to_owned(), TValue::Str(system));
            m.insert(
                "Messages".to_owned(),
                TValue::List(messages.iter().map(message_value).collect()),
            );
            m.insert("Tools".to_owned(), tools_value(data.tools.as_ref()));
            m.insert("Response".to_owned(), TValue::Str(String::new()));
            insert_think(&mut m, data.think);
            return self.exec(&self.nodes, TValue::Map(m));
        }
        self.execute_legacy(&messages, data.think)
    }

    /// The text the template prints before a tool call, as Ollama finds it
    /// (`tools.parseTag`): the first text inside the `{{ if .ToolCalls }}`
    /// block, up to any `{`, trimmed; `{` when there is none (the calls are
    /// bare JSON objects).
    pub fn tool_call_tag(&self) -> String {
        infer::tool_call_tag(&self.nodes)
    }

    /// The key the template writes a call's arguments under: Llama's
    /// templates write `"parameters": {{ .Function.Arguments }}`, the others
    /// `"arguments"`.
    pub fn tool_call_arguments_key(&self) -> String {
        let src = &self.src;
        let mut from = 0;
        while let Some(i) = src[from..].find(".Function.Arguments") {
            let at = from + i;
            let start = at.saturating_sub(48);
            let start = (start..at).find(|&j| src.is_char_boundary(j)).unwrap_or(at);
            let before = &src[start..at];
            match (
                before.rfind("\"parameters\""),
                before.rfind("\"arguments\""),
            ) {
                (Some(p), a) if a.is_none_or(|a| p > a) => return "parameters".into(),
                (_, Some(_)) => return "arguments".into(),
                _ => {}
            }
            from = at + 1;
        }
        "arguments".into()
    }

    /// Per-turn rendering for templates without `.Messages`; see
    /// ollama `template.Execute`.
    fn execute_legacy(
        &self,
        messages: &[ChatMessage],
        think: Option<Think>,
    ) -> Result<String, TemplateError> {
        let turn = |system: &str, prompt: &str, response: &str| {
            let mut m = BTreeMap::new();
            m.insert("System".to_owned(), TValue::Str(system.to_owned()));
            m.insert("Prompt".to_owned(), TValue::Str(prompt.to_owned()));
            m.insert("Response".to_owned(), TValue::Str(response.to_owned()));
            insert_think(&mut m, think);
            TValue::Map(m)
        };
        let mut out = String::new();
        let (mut system, mut prompt, mut response) = (String::new(), String::new(), String::new());
        for m in messages {
            let flush = match m.role.as_str() {
                "system" => !prompt.is_empty() || !response.is_empty(),
                "user" => !response.is_empty(),
                _ => false,
            };
            if flush {
                out.push_str(&self.exec(&self.nodes, turn(&system, &prompt, &response))?);
                self.check_total(out.len())?;
                system.clear();
                prompt.clear();
                response.clear();
            }
            match m.role.as_str() {
                "system" => system.clone_from(&m.content),
                "user" => prompt.clone_from(&m.content),
                "assistant" => response.clone_from(&m.content),
                _ => {}
            }
        }
        // The last turn stops right after `.Response`, so the prompt ends
        // where the model continues (or continues a partial answer).
        let mut cut = false;
        let last = cut_after_response(&self.nodes, &mut cut);
        out.push_str(&self.exec(&last, turn(&system, &prompt, &response))?);
        self.check_total(out.len())?;
        Ok(out)
    }

    fn check_total(&self, len: usize) -> Result<(), TemplateError> {
        if len > self.limits.max_output {
            return Err(TemplateError::OutputLimit(self.limits.max_output));
        }
        Ok(())
    }

    fn exec(&self, nodes: &[Node], root: TValue) -> Result<String, TemplateError> {
        exec::Exec::new(&self.src, self.limits, root).run(nodes)
    }
}

/// Renders a chat the way Ollama's `/api/chat` does. `system` (the model's
/// SYSTEM layer) is put first unless the conversation opens with its own
/// system message.
pub fn render_chat(
    tmpl: &GoTemplate,
    system: Option<&str>,
    messages: &[ChatMessage],
) -> Result<String, TemplateError> {
    let mut msgs = Vec::with_capacity(messages.len() + 1);
    if let Some(s) = system.filter(|s| !s.is_empty()) {
        if messages.first().is_none_or(|m| m.role != "system") {
            msgs.push(ChatMessage::new("system", s));
        }
    }
    msgs.extend_from_slice(messages);
    tmpl.execute(&PromptData {
        messages: msgs,
        ..PromptData::default()
    })
}

/// Ollama's `Think`, `ThinkLevel` (`medium` for a plain `true`) and `IsThinkSet`.
fn insert_think(m: &mut BTreeMap<String, TValue>, think: Option<Think>) {
    m.insert(
        "Think".to_owned(),
        TValue::Bool(think.is_some_and(Think::enabled)),
    );
    m.insert(
        "ThinkLevel".to_owned(),
        TValue::Str(think.map_or("", Think::level).to_owned()),
    );
    m.insert("IsThinkSet".to_owned(), TValue::Bool(think.is_some()));
}

/// Ollama's `collate`: system messages joined for `.System`, consecutive
/// messages of one role (tool results excepted) merged with a blank line.
fn collate(msgs: &[ChatMessage]) -> (String, Vec<ChatMessage>) {
    let mut system = Vec::new();
    let mut out: Vec<ChatMessage> = Vec::new();
    for m in msgs {
        if m.role == "system" {
            system.push(m.content.as_str());
        }
        match out.last_mut() {
            Some(prev) if prev.role == m.role && m.role != "tool" => {
                prev.content.push_str("\n\n");
                prev.content.push_str(&m.content);
            }
            _ => out.push(m.clone()),
        }
    }
    (system.join("\n\n"), out)
}

fn str_field(v: Option<&serde_json::Value>) -> TValue {
    TValue::Str(v.and_then(|v| v.as_str()).unwrap_or_default().to_owned())
}

fn json_or_nil(v: Option<&serde_json::Value>) -> TValue {
    v.map_or(TValue::Nil, TValue::from)
}

/// A message as Ollama's `templateMessage` struct.
fn message_value(m: &ChatMessage) -> TValue {
    let calls = m
        .tool_calls
        .iter()
        .map(|c| {
            let f = c.get("function");
            let args = match f.and_then(|f| f.get("arguments")) {
                // OpenAI clients send arguments as a JSON string.
                Some(serde_json::Value::String(s)) => serde_json::from_str::<serde_json::Value>(s)
                    .map_or(TValue::Map(BTreeMap::new()), |v| TValue::from(&v)),
                Some(v @ serde_json::Value::Object(_)) => TValue::from(v),
                _ => TValue::Map(BTreeMap::new()),
            };
            TValue::Struct(vec![
                StructField::new("ID", "ID", str_field(c.get("id"))),
                StructField::new(
                    "Function",
                    "Function",
                    TValue::Struct(vec![
                        StructField::new(
                            "Index",
                            "Index",
                            TValue::Int(
                                f.and_then(|f| f.get("index"))
                                    .and_then(|i| i.as_i64())
                                    .unwrap_or(0),
                            ),
                        ),
                        StructField::new("Name", "Name", str_field(f.and_then(|f| f.get("name")))),
                        StructField::new("Arguments", "Arguments", args),
                    ]),
                ),
            ])
        })
        .collect::<Vec<_>>();
    TValue::Struct(vec![
        StructField::new("Role", "Role", TValue::Str(m.role.clone())),
        StructField::new("Content", "Content", TValue::Str(m.content.clone())),
        StructField::new("Thinking", "Thinking", TValue::Str(m.thinking.clone())),
        StructField::new("Images", "Images", TValue::List(TList::default())),
        StructField::new("ToolCalls", "ToolCalls", TValue::List(calls.into())),
        StructField::new("ToolName", "ToolName", TValue::Str(m.tool_name.clone())),
        StructField::new(
            "ToolCallID",
            "ToolCallID",
            TValue::Str(m.tool_call_id.clone()),
        ),
    ])
}

/// `tools` as Ollama's `templateTools`, so `{{ .Function }}` prints the same
/// JSON (field order and `omitempty` included) and `.Function.Name` works.
fn tools_value(tools: Option<&serde_json::Value>) -> TValue {
    let Some(serde_json::Value::Array(list)) = tools else {
        return TValue::Nil;
    };
    TValue::List(
        list.iter()
            .map(|t| {
                let f = t.get("function");
                let p = f.and_then(|f| f.get("parameters"));
                let props = match p.and_then(|p| p.get("properties")) {
                    Some(serde_json::Value::Object(o)) => TValue::Map(
                        o.iter()
                            .map(|(k, v)| (k.clone(), property_value(v)))
                            .collect(),
                    ),
                    _ => TValue::Map(BTreeMap::new()),
                };
                TValue::Struct(vec![
                    StructField::new("Type", "type", str_field(t.get("type"))),
                    StructField::omit_empty("Items", "items", json_or_nil(t.get("items"))),
                    StructField::new(
                        "Function",
                        "function",
                        TValue::Struct(vec![
                            StructField::new(
                                "Name",
                                "name",
                                str_field(f.and_then(|f| f.get("name"))),
                            ),
                            StructField::new(
                                "Description",
                                "description",
                                str_field(f.and_then(|f| f.get("description"))),
                            ),
                            StructField::new(
                                "Parameters",
                                "parameters",
                                TValue::Struct(vec![
                                    StructField::new(
                                        "Type",
                                        "type",
                                        str_field(p.and_then(|p| p.get("type"))),
                                    ),
                                    StructField::omit_empty(
                                        "Defs",
                                        "$defs",
                                        json_or_nil(p.and_then(|p| p.get("$defs"))),
                                    ),
                                    StructField::omit_empty(
                                        "Items",
                                        "items",
                                        json_or_nil(p.and_then(|p| p.get("items"))),
                                    ),
                                    StructField::omit_empty(
                                        "Required",
                                        "required",
                                        json_or_nil(p.and_then(|p| p.get("required"))),
                                    ),
                                    StructField::new("Properties", "properties", props),
                                ]),
                            ),
                        ]),
                    ),
                ])
            })
            .collect(),
    )
}

/// A JSON-schema property as Ollama's `api.ToolProperty`.
fn property_value(v: &serde_json::Value) -> TValue {
    // `PropertyType` prints a single type bare (`string`).
    let ty = match v.get("type") {
        Some(serde_json::Value::Array(a)) if a.len() == 1 => str_field(a.first()),
        other => json_or_nil(other),
    };
    let nested = match v.get("properties") {
        Some(serde_json::Value::Object(o)) => TValue::Map(
            o.iter()
                .map(|(k, v)| (k.clone(), property_value(v)))
                .collect(),
        ),
        _ => TValue::Nil,
    };
    let any_of = match v.get("anyOf") {
        Some(serde_json::Value::Array(a)) => TValue::List(a.iter().map(property_value).collect()),
        _ => TValue::Nil,
    };
    TValue::Struct(vec![
        StructField::omit_empty("AnyOf", "anyOf", any_of),
        StructField::omit_empty("Type", "type", ty),
        StructField::omit_empty("Items", "items", json_or_nil(v.get("items"))),
        StructField::omit_empty(
            "Description",
            "description",
            str_field(v.get("description")),
        ),
        StructField::omit_empty("Enum", "enum", json_or_nil(v.get("enum"))),
        StructField::omit_empty("Properties", "properties", nested),
        StructField::omit_empty("Required", "required", json_or_nil(v.get("required"))),
    ])
}

/// Ollama's `Identifiers`: every field and variable name, lower-cased.
fn collect_vars(nodes: &[Node], out: &mut BTreeSet<String>) {
    for n in nodes {
        match n {
            Node::Action(p) => pipe_vars(p, out),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                pipe_vars(&b.pipe, out);
                collect_vars(&b.list, out);
                collect_vars(&b.else_list, out);
            }
            Node::Text(_) | Node::Break | Node::Continue => {}
        }
    }
}

fn pipe_vars(p: &Pipe, out: &mut BTreeSet<String>) {
    for c in &p.cmds {
        for a in &c.args {
            match &a.term {
                Term::Var(v) => {
                    out.insert(v.to_lowercase());
                }
                Term::Pipe(inner) => pipe_vars(inner, out),
                _ => {}
            }
            for f in &a.chain {
                out.insert(f.to_lowercase());
            }
        }
    }
}

/// One level of [`GoTemplate::think_tags`]: `list` is the innermost block,
/// `in_messages` whether the nearest enclosing `range` ranges over `.Messages`.
fn infer_think_tags(list: &[Node], in_messages: bool, tags: &mut (String, String)) {
    let seen = |pipe: &Pipe, in_messages: bool, tags: &mut (String, String)| {
        if !in_messages || !pipe_reads_field(pipe, "Thinking") {
            return;
        }
        // As Go's: each text end is taken only when it is text, so a later
        // occurrence overwrites only the tag it has.
        if let Some(Node::Text(t)) = list.first() {
            t.trim().clone_into(&mut tags.0);
        }
        if let Some(Node::Text(t)) = list.last() {
            t.trim().clone_into(&mut tags.1);
        }
    };
    for n in list {
        match n {
            Node::Action(p) => seen(p, in_messages, tags),
            Node::If(b) | Node::With(b) => {
                seen(&b.pipe, in_messages, tags);
                infer_think_tags(&b.list, in_messages, tags);
                infer_think_tags(&b.else_list, in_messages, tags);
            }
            Node::Range(b) => {
                let messages = pipe_reads_field(&b.pipe, "Messages");
                seen(&b.pipe, messages, tags);
                infer_think_tags(&b.list, messages, tags);
                infer_think_tags(&b.else_list, messages, tags);
            }
            Node::Text(_) | Node::Break | Node::Continue => {}
        }
    }
}

/// Whether `p` reads the dot-relative field `name` (`.Name…`, Go's field
/// node; `$.Name` is a variable and does not count, as in Ollama).
fn pipe_reads_field(p: &Pipe, name: &str) -> bool {
    p.cmds.iter().flat_map(|c| &c.args).any(|a| match &a.term {
        Term::Dot => a.chain.first().is_some_and(|f| f == name),
        Term::Pipe(inner) => pipe_reads_field(inner, name),
        _ => false,
    })
}

/// Ollama's `deleteNode` pass for the last legacy turn: keeps everything up
/// to and including the first `.Response` field and drops what follows.
/// Like Ollama it looks at action pipelines and block bodies, not at the
/// conditions of `if`/`range`/`with`.
fn cut_after_response(nodes: &[Node], cut: &mut bool) -> Vec<Node> {
    let mut out = Vec::new();
    for n in nodes {
        if *cut {
            break;
        }
        match n {
            Node::Action(p) => {
                if let Some(p) = cut_pipe(p, cut) {
                    out.push(Node::Action(p));
                }
            }
            Node::If(b) => out.push(Node::If(cut_branch(b, cut))),
            Node::Range(b) => out.push(Node::Range(cut_branch(b, cut))),
            Node::With(b) => out.push(Node::With(cut_branch(b, cut))),
            other => out.push(other.clone()),
        }
    }
    out
}

fn cut_branch(b: &Branch, cut: &mut bool) -> Box<Branch> {
    let list = cut_after_response(&b.list, cut);
    let else_list = cut_after_response(&b.else_list, cut);
    Box::new(Branch {
        pipe: b.pipe.clone(),
        list,
        else_list,
    })
}

fn cut_pipe(p: &Pipe, cut: &mut bool) -> Option<Pipe> {
    let mut cmds = Vec::new();
    for c in &p.cmds {
        let mut args = Vec::new();
        for a in &c.args {
            if *cut {
                break;
            }
            let a = match &a.term {
                Term::Pipe(inner) => match cut_pipe(inner, cut) {
                    Some(inner) => Operand {
                        term: Term::Pipe(Box::new(inner)),
                        ..a.clone()
                    },
                    None => continue,
                },
                _ => a.clone(),
            };
            if matches!(a.term, Term::Dot) && a.chain.iter().any(|f| f == "Response") {
                *cut = true;
            }
            args.push(a);
        }
        if !args.is_empty() {
            cmds.push(Cmd { pos: c.pos, args });
        }
    }
    if cmds.is_empty() {
        return None;
    }
    Some(Pipe { cmds, ..p.clone() })
}

#[cfg(test)]
mod tests;
