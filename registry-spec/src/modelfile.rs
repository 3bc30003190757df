//! The Modelfile: Ollama's build recipe (`FROM`, `PARAMETER`, `TEMPLATE`,
//! …), parsed into typed [`Command`]s and printed back in a canonical form.
//!
//! # Grammar
//!
//! ```text
//! modelfile   = { blank-line | comment | instruction } ;
//! comment     = [ blanks ] "#" { any char but newline } newline ;
//! instruction = [ blanks ] name blanks argument [ blanks ] ( newline | EOF ) ;
//! name        = "FROM" | "PARAMETER" | "TEMPLATE" | "SYSTEM" | "ADAPTER"
//!             | "LICENSE" | "MESSAGE" | "REQUIRES"
//!             | "DRAFT" | "RENDERER" | "PARSER" ;      (* any letter case *)
//! argument    = value                                   (* FROM, TEMPLATE, … *)
//!             | param-name blanks value                 (* PARAMETER *)
//!             | role blanks value ;                     (* MESSAGE *)
//! role        = "system" | "user" | "assistant" ;
//! value       = block | quoted | bare ;
//! block       = '"""' { any char } '"""' ;   (* closes at the first '"""'
//!                                               followed by blanks and a newline
//!                                               or EOF; no escapes *)
//! quoted      = '"' { '\"' | '\\' | any char } '"' ; (* closes at the first
//!                                               unescaped '"' followed by blanks
//!                                               and a newline or EOF *)
//! bare        = first char not '"', then the rest of the line, trimmed ;
//! blanks      = { whitespace other than "\n" and "\r" } ;
//! newline     = "\n" | "\r\n" | "\r" ;
//! ```
//!
//! Block and quoted values may span lines. This closing rule is Ollama's (a
//! quote closes the value only at the end of a line), so
//! `SYSTEM "He said "hi""` means `He said "hi"` as it does in Ollama. The
//! `\"` and `\\` escapes in quoted values are llmpm's addition; any other
//! backslash is kept as written.
//!
//! Every error carries the line and column (both 1-based, columns counted in
//! characters) where the problem starts, and prints as
//! `line:column: message`. The parser never panics.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::params::{self, shorten, ParamError, ParamKind, ParamValue, Parameters};

/// A parsed Modelfile: its instructions in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Modelfile {
    /// The instructions, in file order (comments and blank lines dropped).
    pub commands: Vec<Command>,
}

/// One Modelfile instruction with its typed argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `FROM <model or path>`: the base model, a local weights file or
    /// directory. Ollama's `show --modelfile` writes a second `FROM` for a
    /// vision projector.
    From(String),
    /// `PARAMETER <name> <value>`, validated against the PARAMETER table.
    Parameter {
        /// The canonical (lower-case) parameter name.
        name: String,
        /// The typed value.
        value: ParamValue,
    },
    /// `TEMPLATE <text>`: the prompt template.
    Template(String),
    /// `SYSTEM <text>`: the default system prompt.
    System(String),
    /// `ADAPTER <path or digest>`: a LoRA adapter.
    Adapter(String),
    /// `LICENSE <text>`: a license; several are allowed.
    License(String),
    /// `MESSAGE <role> <content>`: a seed conversation message.
    Message {
        /// Who says it.
        role: Role,
        /// What is said.
        content: String,
    },
    /// `REQUIRES <version>`: the minimum server version, a semantic version
    /// stored without a leading `v`.
    Requires(String),
    /// `DRAFT <model or path>`: a draft model for speculative decoding
    /// (accepted by Ollama's parser, written by `ollama show --modelfile`).
    Draft(String),
    /// `RENDERER <name>`: a built-in prompt renderer used instead of a
    /// template (Ollama).
    Renderer(String),
    /// `PARSER <name>`: a built-in output parser for tool calls and
    /// thinking (Ollama).
    Parser(String),
}

impl Command {
    /// The instruction keyword, upper case (`"FROM"`, `"PARAMETER"`, …).
    pub fn instruction(&self) -> &'static str {
        match self {
            Command::From(_) => "FROM",
            Command::Parameter { .. } => "PARAMETER",
            Command::Template(_) => "TEMPLATE",
            Command::System(_) => "SYSTEM",
            Command::Adapter(_) => "ADAPTER",
            Command::License(_) => "LICENSE",
            Command::Message { .. } => "MESSAGE",
            Command::Requires(_) => "REQUIRES",
            Command::Draft(_) => "DRAFT",
            Command::Renderer(_) => "RENDERER",
            Command::Parser(_) => "PARSER",
        }
    }
}

/// Prints the command as one canonical Modelfile instruction (without a
/// trailing newline) that parses back to the same command.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.instruction())?;
        f.write_str(" ")?;
        match self {
            Command::From(s)
            | Command::Adapter(s)
            | Command::Requires(s)
            | Command::Draft(s)
            | Command::Renderer(s)
            | Command::Parser(s) => write_value(f, s, Style::Plain),
            Command::Template(s) | Command::System(s) | Command::License(s) => {
                write_value(f, s, Style::Text)
            }
            Command::Message { role, content } => {
                write!(f, "{role} ")?;
                write_value(f, content, Style::Text)
            }
            Command::Parameter { name, value } => {
                write!(f, "{name} ")?;
                match value {
                    ParamValue::Int(i) => write!(f, "{i}"),
                    ParamValue::Float(x) => write!(f, "{x}"),
                    ParamValue::Bool(b) => write!(f, "{b}"),
                    ParamValue::Str(s) => write_quoted(f, s),
                }
            }
        }
    }
}

/// Who speaks a `MESSAGE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `system`
    System,
    /// `user`
    User,
    /// `assistant`
    Assistant,
}

impl Role {
    /// The role as written in a Modelfile and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses `system`, `user` or `assistant` (lower case, as Ollama requires).
impl FromStr for Role {
    type Err = ModelfileErrorKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            _ => Err(ModelfileErrorKind::InvalidRole {
                role: s.to_string(),
            }),
        }
    }
}

/// A Modelfile that could not be parsed, with where the problem starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {kind}")]
pub struct ModelfileError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub kind: ModelfileErrorKind,
}

/// What is wrong with a Modelfile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelfileErrorKind {
    /// A line starts with a word that is not an instruction.
    #[error(
        "unknown instruction `{}`: expected one of FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER, LICENSE, MESSAGE, REQUIRES, DRAFT, RENDERER, PARSER",
        shorten(.name)
    )]
    UnknownInstruction {
        /// The word as written.
        name: String,
    },
    /// An instruction has no argument (or an empty one where that makes no
    /// sense).
    #[error("missing argument to `{instruction}`: expected {expected}")]
    MissingArgument {
        /// The instruction, upper case.
        instruction: &'static str,
        /// What the argument should be.
        expected: &'static str,
    },
    /// `PARAMETER <name>` without a value.
    #[error("missing value for parameter `{name}`: expected {}", .kind.describe())]
    MissingValue {
        /// The parameter.
        name: String,
        /// Its type.
        kind: ParamKind,
    },
    /// An unknown parameter, or a value of the wrong type.
    #[error("{0}")]
    Parameter(ParamError),
    /// A `MESSAGE` role other than `system`, `user` or `assistant`.
    #[error("invalid message role `{}`: expected `system`, `user` or `assistant`", shorten(.role))]
    InvalidRole {
        /// The role as written.
        role: String,
    },
    /// A `"` or `"""` that is never closed; the position is the opening one.
    #[error("unterminated `{delimiter}`: expected a closing `{delimiter}` at the end of a line")]
    Unterminated {
        /// `"` or `"""`.
        delimiter: &'static str,
    },
    /// A `REQUIRES` argument that is not a semantic version.
    #[error("invalid version `{}` for `REQUIRES`: expected a semantic version such as `0.14.0`", shorten(.version))]
    InvalidVersion {
        /// The version as written.
        version: String,
    },
    /// No `FROM` instruction anywhere (reported at 1:1).
    #[error("no FROM line: expected a `FROM <model or path>` instruction")]
    MissingFrom,
}

impl Modelfile {
    /// Parses Modelfile text. A leading byte-order mark is ignored.
    pub fn parse(text: &str) -> Result<Modelfile, ModelfileError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut parser = Parser {
            cur: Cursor::new(text),
            commands: Vec::new(),
        };
        parser.run()?;
        if !parser
            .commands
            .iter()
            .any(|c| matches!(c, Command::From(_)))
        {
            return Err(ModelfileError {
                line: 1,
                column: 1,
                kind: ModelfileErrorKind::MissingFrom,
            });
        }
        Ok(Modelfile {
            commands: parser.commands,
        })
    }

    fn last(&self, pick: impl Fn(&Command) -> Option<&str>) -> Option<&str> {
        self.commands.iter().rev().find_map(pick)
    }

    fn all(&self, pick: impl Fn(&Command) -> Option<&str>) -> Vec<&str> {
        self.commands.iter().filter_map(pick).collect()
    }

    /// The last `FROM`: the base model or weights.
    pub fn from(&self) -> Option<&str> {
        self.last(|c| match c {
            Command::From(s) => Some(s),
            _ => None,
        })
    }

    /// Every `FROM`, in order (Ollama writes a projector as a second one).
    pub fn froms(&self) -> Vec<&str> {
        self.all(|c| match c {
            Command::From(s) => Some(s),
            _ => None,
        })
    }

    /// The last `TEMPLATE`.
    pub fn template(&self) -> Option<&str> {
        self.last(|c| match c {
            Command::Template(s) => Some(s),
            _ => None,
        })
    }

    /// The last `SYSTEM`.
    pub fn system(&self) -> Option<&str> {
        self.last(|c| match c {
            Command::System(s) => Some(s),
            _ => None,
        })
    }

    /// Every `LICENSE`, in order.
    pub fn licenses(&self) -> Vec<&str> {
        self.all(|c| match c {
            Command::License(s) => Some(s),
            _ => None,
        })
    }

    /// Every `ADAPTER`, in order.
    pub fn adapters(&self) -> Vec<&str> {
        self.all(|c| match c {
            Command::Adapter(s) => Some(s),
            _ => None,
        })
    }

    /// Every `MESSAGE`, in order.
    pub fn messages(&self) -> Vec<(Role, &str)> {
        self.commands
            .iter()
            .filter_map(|c| match c {
                Command::Message { role, content } => Some((*role, content.as_str())),
                _ => None,
            })
            .collect()
    }

    /// The last `REQUIRES` version (without a leading `v`).
    pub fn requires(&self) -> Option<&str> {
        self.last(|c| match c {
            Command::Requires(s) => Some(s),
            _ => None,
        })
    }

    /// The last `DRAFT`.
    pub fn draft(&self) -> Option<&str> {
        self.last(|c| match c {
            Command::Draft(s) => Some(s),
            _ => None,
        })
    }

    /// The last `RENDERER`.
    pub fn renderer(&self) -> Option<&str> {
        self.last(|c| match c {
            Command::Renderer(s) => Some(s),
            _ => None,
        })
    }

    /// The last `PARSER`.
    pub fn parser(&self) -> Option<&str> {
        self.last(|c| match c {
            Command::Parser(s) => Some(s),
            _ => None,
        })
    }

    /// All `PARAMETER`s merged: a later value replaces an earlier one, and
    /// `stop` collects every line. A command whose value does not fit the
    /// table (only possible if built by hand) is skipped.
    pub fn parameters(&self) -> Parameters {
        let mut params = Parameters::new();
        for command in &self.commands {
            if let Command::Parameter { name, value } = command {
                // Parsed commands are valid, so this cannot fail for them.
                let _ = params.insert(name, value.clone());
            }
        }
        params
    }
}

impl FromStr for Modelfile {
    type Err = ModelfileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Modelfile::parse(s)
    }
}

/// Prints the canonical Modelfile: one instruction per line, in order,
/// instructions upper case. It parses back to an equal [`Modelfile`].
impl fmt::Display for Modelfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for command in &self.commands {
            writeln!(f, "{command}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Printing

/// How a string argument prefers to be written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Names and paths: bare whenever possible.
    Plain,
    /// Prose and templates: a `"""` block as soon as there is a newline or
    /// a quote.
    Text,
}

fn is_newline(c: char) -> bool {
    c == '\n' || c == '\r'
}

/// Whitespace that separates words on a line.
fn is_blank(c: char) -> bool {
    c.is_whitespace() && !is_newline(c)
}

/// Whether the text after a closing delimiter ends the line.
fn line_ends_after(rest: &str) -> bool {
    rest.trim_start_matches(is_blank)
        .chars()
        .next()
        .is_none_or(is_newline)
}

fn write_value(f: &mut fmt::Formatter<'_>, s: &str, style: Style) -> fmt::Result {
    let special = s.contains(is_newline) || s.contains('"');
    let quote_forces_block = style == Style::Text && s.contains('"');
    let bare_ok = !s.is_empty()
        && !s.contains(is_newline)
        && s.trim() == s
        && !s.starts_with('"')
        && !quote_forces_block;
    if bare_ok {
        f.write_str(s)
    } else if special && block_ok(s) {
        write!(f, "\"\"\"{s}\"\"\"")
    } else {
        write_quoted(f, s)
    }
}

/// Whether `s` can sit between `"""` delimiters and parse back unchanged:
/// no `"""` inside may be followed by blanks and a newline.
fn block_ok(s: &str) -> bool {
    // Overlapping matches matter: in `""""\n` the second `"""` is the one
    // followed by the newline.
    s.char_indices()
        .all(|(i, _)| match s[i..].strip_prefix("\"\"\"") {
            Some(after) => !after.trim_start_matches(is_blank).starts_with(is_newline),
            None => true,
        })
}

/// A `"…"` value with `\"` and `\\` escaped; it always parses back.
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

// ---------------------------------------------------------------------------
// Parsing

/// A position in the input.
#[derive(Clone, Copy)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    fn error(self, kind: ModelfileErrorKind) -> ModelfileError {
        ModelfileError {
            line: self.line,
            column: self.column,
            kind,
        }
    }
}

/// Walks the input one character at a time, tracking line and column. The
/// byte offset is always on a character boundary.
struct Cursor<'a> {
    src: &'a str,
    offset: usize,
    line: usize,
    column: usize,
}

impl<'a> Cursor<'a> {
    fn new(src: &'a str) -> Self {
        Cursor {
            src,
            offset: 0,
            line: 1,
            column: 1,
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.offset..).unwrap_or("")
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.offset += c.len_utf8();
        match c {
            // The `\n` of a `\r\n` pair counts the line.
            '\r' if self.peek() == Some('\n') => self.column += 1,
            '\r' | '\n' => {
                self.line += 1;
                self.column = 1;
            }
            _ => self.column += 1,
        }
        Some(c)
    }

    fn bump_n(&mut self, n: usize) {
        for _ in 0..n {
            self.bump();
        }
    }

    fn at_line_end(&self) -> bool {
        self.peek().is_none_or(is_newline)
    }

    fn skip_blanks(&mut self) {
        while self.peek().is_some_and(is_blank) {
            self.bump();
        }
    }

    /// Consumes up to (not including) the next newline or the end.
    fn take_line(&mut self) -> &'a str {
        let start = self.offset;
        while !self.at_line_end() {
            self.bump();
        }
        self.src.get(start..self.offset).unwrap_or("")
    }

    /// Consumes a run of non-whitespace characters.
    fn take_word(&mut self) -> &'a str {
        let start = self.offset;
        while self.peek().is_some_and(|c| !c.is_whitespace()) {
            self.bump();
        }
        self.src.get(start..self.offset).unwrap_or("")
    }
}

/// An instruction keyword.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keyword {
    From,
    Parameter,
    Template,
    System,
    Adapter,
    License,
    Message,
    Requires,
    Draft,
    Renderer,
    Parser,
}

impl Keyword {
    fn parse(word: &str) -> Option<Keyword> {
        const ALL: [(&str, Keyword); 11] = [
            ("from", Keyword::From),
            ("parameter", Keyword::Parameter),
            ("template", Keyword::Template),
            ("system", Keyword::System),
            ("adapter", Keyword::Adapter),
            ("license", Keyword::License),
            ("message", Keyword::Message),
            ("requires", Keyword::Requires),
            ("draft", Keyword::Draft),
            ("renderer", Keyword::Renderer),
            ("parser", Keyword::Parser),
        ];
        ALL.iter()
            .find(|(name, _)| word.eq_ignore_ascii_case(name))
            .map(|(_, keyword)| *keyword)
    }

    fn upper(self) -> &'static str {
        match self {
            Keyword::From => "FROM",
            Keyword::Parameter => "PARAMETER",
            Keyword::Template => "TEMPLATE",
            Keyword::System => "SYSTEM",
            Keyword::Adapter => "ADAPTER",
            Keyword::License => "LICENSE",
            Keyword::Message => "MESSAGE",
            Keyword::Requires => "REQUIRES",
            Keyword::Draft => "DRAFT",
            Keyword::Renderer => "RENDERER",
            Keyword::Parser => "PARSER",
        }
    }

    /// What the argument should be, for "missing argument" errors.
    fn expected(self) -> &'static str {
        match self {
            Keyword::From => "a model name or a path to model weights",
            Keyword::Parameter => "a parameter name and a value, e.g. `PARAMETER temperature 0.7`",
            Keyword::Template => "a prompt template",
            Keyword::System => "a system prompt",
            Keyword::Adapter => "a path to a LoRA adapter",
            Keyword::License => "license text",
            Keyword::Message => "a role (`system`, `user` or `assistant`) and the message text",
            Keyword::Requires => "a version such as `0.14.0`",
            Keyword::Draft => "a draft model name or path",
            Keyword::Renderer => "a renderer name",
            Keyword::Parser => "a parser name",
        }
    }

    /// The constructor of a command whose argument is one string; `None`
    /// for `PARAMETER` and `MESSAGE`, which take two.
    fn simple(self) -> Option<fn(String) -> Command> {
        Some(match self {
            Keyword::From => Command::From,
            Keyword::Template => Command::Template,
            Keyword::System => Command::System,
            Keyword::Adapter => Command::Adapter,
            Keyword::License => Command::License,
            Keyword::Requires => Command::Requires,
            Keyword::Draft => Command::Draft,
            Keyword::Renderer => Command::Renderer,
            Keyword::Parser => Command::Parser,
            Keyword::Parameter | Keyword::Message => return None,
        })
    }

    /// Whether an explicitly empty argument (`""`) is refused.
    fn needs_non_empty(self) -> bool {
        matches!(
            self,
            Keyword::From
                | Keyword::Adapter
                | Keyword::Requires
                | Keyword::Draft
                | Keyword::Renderer
                | Keyword::Parser
        )
    }
}

struct Parser<'a> {
    cur: Cursor<'a>,
    commands: Vec<Command>,
}

impl Parser<'_> {
    fn run(&mut self) -> Result<(), ModelfileError> {
        loop {
            while self.cur.peek().is_some_and(char::is_whitespace) {
                self.cur.bump();
            }
            match self.cur.peek() {
                None => return Ok(()),
                Some('#') => {
                    self.cur.take_line();
                }
                Some(_) => {
                    let command = self.instruction()?;
                    self.commands.push(command);
                }
            }
        }
    }

    fn instruction(&mut self) -> Result<Command, ModelfileError> {
        let start = self.cur.pos();
        let word = self.cur.take_word();
        let keyword = Keyword::parse(word).ok_or_else(|| {
            start.error(ModelfileErrorKind::UnknownInstruction {
                name: word.to_string(),
            })
        })?;
        self.cur.skip_blanks();
        let missing = |pos: Pos| {
            pos.error(ModelfileErrorKind::MissingArgument {
                instruction: keyword.upper(),
                expected: keyword.expected(),
            })
        };
        if self.cur.at_line_end() {
            return Err(missing(self.cur.pos()));
        }
        let Some(make) = keyword.simple() else {
            return match keyword {
                Keyword::Message => self.message(),
                _ => self.parameter(),
            };
        };
        let (pos, value) = self.value()?;
        if value.is_empty() && keyword.needs_non_empty() {
            return Err(missing(pos));
        }
        if keyword == Keyword::Requires {
            return match parse_version(&value) {
                Some(version) => Ok(Command::Requires(version)),
                None => Err(pos.error(ModelfileErrorKind::InvalidVersion { version: value })),
            };
        }
        Ok(make(value))
    }

    fn parameter(&mut self) -> Result<Command, ModelfileError> {
        let name_pos = self.cur.pos();
        let written = self.cur.take_word();
        let lower = written.to_ascii_lowercase();
        let Some(kind) = params::param_kind(&lower) else {
            return Err(
                name_pos.error(ModelfileErrorKind::Parameter(ParamError::Unknown {
                    name: written.to_string(),
                })),
            );
        };
        self.cur.skip_blanks();
        if self.cur.at_line_end() {
            return Err(self
                .cur
                .pos()
                .error(ModelfileErrorKind::MissingValue { name: lower, kind }));
        }
        let (pos, text) = self.value()?;
        let (name, value) = params::parse_value(&lower, &text)
            .map_err(|err| pos.error(ModelfileErrorKind::Parameter(err)))?;
        Ok(Command::Parameter {
            name: name.to_string(),
            value,
        })
    }

    fn message(&mut self) -> Result<Command, ModelfileError> {
        let role_pos = self.cur.pos();
        let role: Role = self
            .cur
            .take_word()
            .parse()
            .map_err(|kind| role_pos.error(kind))?;
        self.cur.skip_blanks();
        if self.cur.at_line_end() {
            return Err(self.cur.pos().error(ModelfileErrorKind::MissingArgument {
                instruction: "MESSAGE",
                expected: "the message text after the role",
            }));
        }
        let (_, content) = self.value()?;
        Ok(Command::Message { role, content })
    }

    /// Reads a block, quoted or bare value starting at the cursor (which is
    /// on a non-blank character of the line), then the rest of the line.
    fn value(&mut self) -> Result<(Pos, String), ModelfileError> {
        let open = self.cur.pos();
        let value = if self.cur.rest().starts_with("\"\"\"") {
            self.cur.bump_n(3);
            let start = self.cur.offset;
            loop {
                let rest = self.cur.rest();
                if rest.is_empty() {
                    return Err(open.error(ModelfileErrorKind::Unterminated {
                        delimiter: "\"\"\"",
                    }));
                }
                if let Some(after) = rest.strip_prefix("\"\"\"") {
                    if line_ends_after(after) {
                        let content = self.cur.src.get(start..self.cur.offset).unwrap_or("");
                        self.cur.bump_n(3);
                        break content.to_string();
                    }
                }
                self.cur.bump();
            }
        } else if self.cur.peek() == Some('"') {
            self.cur.bump();
            let mut content = String::new();
            loop {
                match self.cur.bump() {
                    None => {
                        return Err(open.error(ModelfileErrorKind::Unterminated { delimiter: "\"" }))
                    }
                    Some('\\') if matches!(self.cur.peek(), Some('"' | '\\')) => {
                        content.extend(self.cur.bump());
                    }
                    Some('"') if line_ends_after(self.cur.rest()) => break content,
                    Some(c) => content.push(c),
                }
            }
        } else {
            self.cur.take_line().trim_end().to_string()
        };
        // Only blanks can remain before the end of the line.
        self.cur.skip_blanks();
        Ok((open, value))
    }
}

/// Validates a semantic version the way Go's `golang.org/x/mod/semver`
/// does (`MAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]]`, optional leading
/// `v`) and returns it without the `v`.
fn parse_version(text: &str) -> Option<String> {
    let version = text.strip_prefix('v').unwrap_or(text);
    let (core, build) = match version.split_once('+') {
        Some((core, build)) => (core, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match core.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (core, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let numeric = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    let ident =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if numbers.is_empty() || numbers.len() > 3 || !numbers.iter().all(|n| numeric(n)) {
        return None;
    }
    // A prerelease or build suffix needs all three numbers.
    if (pre.is_some() || build.is_some()) && numbers.len() != 3 {
        return None;
    }
    if let Some(pre) = pre {
        let ok = pre
            .split('.')
            .all(|id| ident(id) && (!id.bytes().all(|b| b.is_ascii_digit()) || numeric(id)));
        if !ok {
            return None;
        }
    }
    if let Some(build) = build {
        if !build.split('.').all(ident) {
            return None;
        }
    }
    Some(version.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const LLAMA3: &str = r#"# Modelfile for a Llama 3 assistant
FROM llama3:8b-instruct-q4_K_M

TEMPLATE """{{ if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>{{ end }}{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>

{{ .Prompt }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>

{{ .Response }}<|eot_id|>"""
PARAMETER stop "<|start_header_id|>"
PARAMETER stop "<|end_header_id|>"
PARAMETER stop <|eot_id|>
PARAMETER temperature 0.7
PARAMETER num_ctx 8192
PARAMETER use_mmap true
SYSTEM You are a helpful assistant who answers in one sentence.
LICENSE """META LLAMA 3 COMMUNITY LICENSE AGREEMENT
Meta Llama 3 Version Release Date: April 18, 2024
"Agreement" means the terms and conditions for use.
"""
MESSAGE user Is the sky blue?
MESSAGE assistant """Yes: "blue" is the usual answer."""
REQUIRES 0.5.0
"#;

    fn err(text: &str) -> (usize, usize, String) {
        let e = Modelfile::parse(text).unwrap_err();
        (e.line, e.column, e.to_string())
    }

    #[test]
    fn full_example() {
        let mf = Modelfile::parse(LLAMA3).unwrap();
        assert_eq!(mf.commands.len(), 13);
        assert_eq!(mf.from(), Some("llama3:8b-instruct-q4_K_M"));
        let template = mf.template().unwrap();
        assert!(
            template.starts_with("{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n")
        );
        assert!(template.ends_with("{{ .Response }}<|eot_id|>"));
        assert_eq!(
            mf.system(),
            Some("You are a helpful assistant who answers in one sentence.")
        );
        assert_eq!(
            mf.licenses(),
            vec![
                "META LLAMA 3 COMMUNITY LICENSE AGREEMENT\nMeta Llama 3 Version Release Date: April 18, 2024\n\"Agreement\" means the terms and conditions for use.\n"
            ]
        );
        assert_eq!(
            mf.messages(),
            vec![
                (Role::User, "Is the sky blue?"),
                (Role::Assistant, "Yes: \"blue\" is the usual answer.")
            ]
        );
        assert_eq!(mf.requires(), Some("0.5.0"));
        assert!(mf.adapters().is_empty());
        let params = mf.parameters();
        assert_eq!(
            params.stop(),
            vec!["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        );
        assert_eq!(params.get("temperature"), Some(&ParamValue::Float(0.7)));
        assert_eq!(params.get("num_ctx"), Some(&ParamValue::Int(8192)));
        assert_eq!(params.get("use_mmap"), Some(&ParamValue::Bool(true)));
        assert_eq!(
            serde_json::to_string(&params).unwrap(),
            r#"{"num_ctx":8192,"stop":["<|start_header_id|>","<|end_header_id|>","<|eot_id|>"],"temperature":0.7,"use_mmap":true}"#
        );
        assert_eq!(
            mf.commands[2],
            Command::Parameter {
                name: "stop".into(),
                value: ParamValue::Str("<|start_header_id|>".into())
            }
        );
    }

    #[test]
    fn round_trip() {
        let mf = Modelfile::parse(LLAMA3).unwrap();
        let printed = mf.to_string();
        assert_eq!(Modelfile::parse(&printed).unwrap(), mf);
        // Printing is canonical: a second round prints the same text.
        assert_eq!(Modelfile::parse(&printed).unwrap().to_string(), printed);
        assert!(printed.contains("TEMPLATE \"\"\"{{ if .System }}"));
        assert!(printed.contains("PARAMETER stop \"<|eot_id|>\"\n"));
        assert!(printed.contains("PARAMETER temperature 0.7\n"));
        assert!(printed.contains("SYSTEM You are a helpful assistant"));
        assert!(
            printed.contains("MESSAGE assistant \"\"\"Yes: \"blue\" is the usual answer.\"\"\"\n")
        );
    }

    #[test]
    fn tricky_values_round_trip() {
        let tricky = [
            "",
            " leading",
            "trailing ",
            "\"starts with a quote",
            "ends with a quote\"",
            "a \"\"\" in the middle",
            "ends with \"\"\"",
            "block end \"\"\"\nthen more",
            "block end \"\"\"  \r\nthen more",
            "back\\slash\\",
            "\\\"",
            "\n",
            "\r",
            "\"",
            "\"\"\"",
            "tab\tinside",
            "# not a comment",
            "unicode ✓ 日本語 \u{2028}",
        ];
        for s in tricky {
            let mut commands = vec![Command::From("base".into())];
            commands.push(Command::System(s.into()));
            commands.push(Command::Template(s.into()));
            commands.push(Command::License(s.into()));
            commands.push(Command::Message {
                role: Role::User,
                content: s.into(),
            });
            commands.push(Command::Parameter {
                name: "stop".into(),
                value: ParamValue::Str(s.into()),
            });
            if !s.is_empty() {
                commands.push(Command::From(s.into()));
                commands.push(Command::Adapter(s.into()));
            }
            let mf = Modelfile { commands };
            let printed = mf.to_string();
            assert_eq!(Modelfile::parse(&printed).unwrap(), mf, "{printed:?}");
        }
    }

    #[test]
    fn instructions_are_case_insensitive() {
        let mf = Modelfile::parse("from base\nParameter Temperature 1\nsYsTeM hi\n").unwrap();
        assert_eq!(
            mf.commands,
            vec![
                Command::From("base".into()),
                Command::Parameter {
                    name: "temperature".into(),
                    value: ParamValue::Float(1.0)
                },
                Command::System("hi".into()),
            ]
        );
    }

    #[test]
    fn comments_blank_lines_and_line_endings() {
        let text = "\u{feff}# top\r\n\r\n   # indented comment\r\nFROM base   \r\n\t\nSYSTEM \"\"\"a\r\nb\"\"\"\r\nLICENSE # not a comment\rADAPTER ./lora.gguf";
        let mf = Modelfile::parse(text).unwrap();
        assert_eq!(
            mf.commands,
            vec![
                Command::From("base".into()),
                Command::System("a\r\nb".into()),
                Command::License("# not a comment".into()),
                Command::Adapter("./lora.gguf".into()),
            ]
        );
    }

    #[test]
    fn quoting_rules() {
        let parse1 = |arg: &str| -> String {
            let mf = Modelfile::parse(&format!("FROM x\nSYSTEM {arg}\n")).unwrap();
            mf.system().unwrap().to_string()
        };
        assert_eq!(parse1("  bare words  "), "bare words");
        assert_eq!(parse1("\"  padded  \""), "  padded  ");
        assert_eq!(parse1(r#""say \"hi\" \\ \n""#), r#"say "hi" \ \n"#);
        // Ollama's rule: a quote closes only at the end of a line.
        assert_eq!(parse1(r#""He said "hi"""#), r#"He said "hi""#);
        assert_eq!(parse1("\"two\nlines\""), "two\nlines");
        assert_eq!(parse1("\"\""), "");
        assert_eq!(parse1("\"\"\"\"\"\""), "");
        assert_eq!(parse1("\"'\""), "'");
        assert_eq!(
            parse1(r#""""''"'""'""'"'''''""'""'""""#),
            r#"''"'""'""'"'''''""'""'"#
        );
        assert_eq!(parse1("\"\"\"\nmulti\nline\n\"\"\"   "), "\nmulti\nline\n");
        assert_eq!(parse1("\"\"\"a \"\"\" b\nc\"\"\""), "a \"\"\" b\nc");
        assert_eq!(parse1("it's \"fine\""), "it's \"fine\"");
    }

    #[test]
    fn message_roles() {
        let mf = Modelfile::parse("FROM x\nMESSAGE system be brief\nMESSAGE user hi\nMESSAGE assistant \"\"\"hello\nthere\"\"\"").unwrap();
        assert_eq!(
            mf.messages(),
            vec![
                (Role::System, "be brief"),
                (Role::User, "hi"),
                (Role::Assistant, "hello\nthere")
            ]
        );
        assert_eq!(
            serde_json::to_string(&Role::Assistant).unwrap(),
            "\"assistant\""
        );
    }

    #[test]
    fn requires_versions() {
        for (text, want) in [
            ("0.14.0", "0.14.0"),
            ("v0.14.0", "0.14.0"),
            ("1", "1"),
            ("1.2", "1.2"),
            ("1.2.3-rc.1+build.5", "1.2.3-rc.1+build.5"),
        ] {
            let mf = Modelfile::parse(&format!("FROM x\nREQUIRES {text}")).unwrap();
            assert_eq!(mf.requires(), Some(want), "{text}");
        }
        for bad in [
            "latest", "1.2.3.4", "01.2.3", "1.2-rc1", "1.2.3-", "1.2.3-01", "v",
        ] {
            assert_eq!(
                err(&format!("FROM x\nREQUIRES {bad}")),
                (
                    2,
                    10,
                    format!("2:10: invalid version `{bad}` for `REQUIRES`: expected a semantic version such as `0.14.0`")
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn ollama_extensions_are_accepted() {
        let mf = Modelfile::parse(
            "FROM x\nFROM ./mmproj.gguf\nDRAFT ./draft\nRENDERER qwen3-coder\nPARSER qwen3-coder\n",
        )
        .unwrap();
        assert_eq!(mf.froms(), vec!["x", "./mmproj.gguf"]);
        assert_eq!(mf.from(), Some("./mmproj.gguf"));
        assert_eq!(mf.draft(), Some("./draft"));
        assert_eq!(mf.renderer(), Some("qwen3-coder"));
        assert_eq!(mf.parser(), Some("qwen3-coder"));
    }

    #[test]
    fn error_unknown_instruction() {
        assert_eq!(
            err("FROM x\n  BADCOMMAND param1 value1\n"),
            (
                2,
                3,
                "2:3: unknown instruction `BADCOMMAND`: expected one of FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER, LICENSE, MESSAGE, REQUIRES, DRAFT, RENDERER, PARSER".into()
            )
        );
        assert_eq!(err("FROM: x").0, 1);
        assert_eq!(err("SYSTEM\"hi\"\nFROM x").1, 1);
    }

    #[test]
    fn error_unknown_parameter() {
        assert_eq!(
            err("FROM x\nPARAMETER temprature 0.7\n"),
            (
                2,
                11,
                "2:11: unknown parameter `temprature`; did you mean `temperature`?".into()
            )
        );
    }

    #[test]
    fn error_wrong_type() {
        assert_eq!(
            err("FROM x\nPARAMETER num_ctx abc\n"),
            (
                2,
                19,
                "2:19: invalid value `abc` for parameter `num_ctx`: expected an integer".into()
            )
        );
        assert_eq!(
            err("FROM x\nPARAMETER use_mmap \"yes\"").2,
            "2:20: invalid value `yes` for parameter `use_mmap`: expected a boolean (`true` or `false`)"
        );
        assert_eq!(
            err("FROM x\nPARAMETER temperature 0.7 # warm").2,
            "2:23: invalid value `0.7 # warm` for parameter `temperature`: expected a number"
        );
    }

    #[test]
    fn error_missing_value() {
        assert_eq!(
            err("FROM x\nPARAMETER num_ctx   \n"),
            (
                2,
                21,
                "2:21: missing value for parameter `num_ctx`: expected an integer".into()
            )
        );
    }

    #[test]
    fn error_unterminated_block() {
        assert_eq!(
            err("FROM x\nTEMPLATE \"\"\"{{ .Prompt }}\n\nno end here\"\"\" x\n"),
            (
                2,
                10,
                "2:10: unterminated `\"\"\"`: expected a closing `\"\"\"` at the end of a line"
                    .into()
            )
        );
        assert_eq!(
            err("FROM x\nSYSTEM \"\"\"This is a multiline system.\"\"\n").0,
            2
        );
        assert_eq!(
            err("FROM x\nSYSTEM   \"open").2,
            "2:10: unterminated `\"`: expected a closing `\"` at the end of a line"
        );
        assert_eq!(err("FROM x\nSYSTEM \"ends with escape\\\"").1, 8);
    }

    #[test]
    fn error_bad_role() {
        assert_eq!(
            err("FROM x\nMESSAGE badguy I'm a bad guy!\n"),
            (
                2,
                9,
                "2:9: invalid message role `badguy`: expected `system`, `user` or `assistant`"
                    .into()
            )
        );
        assert_eq!(err("FROM x\nMESSAGE User hi").1, 9);
        assert_eq!(
            err("FROM x\nMESSAGE user   ").2,
            "2:16: missing argument to `MESSAGE`: expected the message text after the role"
        );
    }

    #[test]
    fn error_missing_from() {
        let expected = (
            1,
            1,
            "1:1: no FROM line: expected a `FROM <model or path>` instruction".to_string(),
        );
        assert_eq!(err(""), expected);
        assert_eq!(err("# only a comment\n"), expected);
        assert_eq!(err("PARAMETER seed 1\nSYSTEM hi"), expected);
        assert_eq!(
            Modelfile::parse("PARAMETER seed 1\nFROM foo")
                .unwrap()
                .from(),
            Some("foo")
        );
    }

    #[test]
    fn error_empty_argument() {
        assert_eq!(
            err("FROM x\nSYSTEM\nTEMPLATE hi"),
            (
                2,
                7,
                "2:7: missing argument to `SYSTEM`: expected a system prompt".into()
            )
        );
        assert_eq!(
            err("FROM \t "),
            (
                1,
                8,
                "1:8: missing argument to `FROM`: expected a model name or a path to model weights"
                    .into()
            )
        );
        assert_eq!(err("FROM \"\"").1, 6);
        assert_eq!(err("FROM x\nPARAMETER").1, 10);
        // An explicitly empty prompt is allowed.
        assert_eq!(
            Modelfile::parse("FROM x\nSYSTEM \"\"").unwrap().system(),
            Some("")
        );
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(err("FROM ✓\n日本 x").1, 1);
        assert_eq!(err("FROM ✓\nPARAMETER seed ✓✓").1, 16);
    }

    /// xorshift64*: a tiny deterministic PRNG, so the fuzz run is reproducible.
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

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    const PIECES: &[&str] = &[
        "FROM ",
        "from ",
        "PARAMETER ",
        "TEMPLATE ",
        "SYSTEM ",
        "ADAPTER ",
        "LICENSE ",
        "MESSAGE ",
        "REQUIRES ",
        "DRAFT ",
        "RENDERER ",
        "PARSER ",
        "stop ",
        "num_ctx ",
        "temperature ",
        "use_mmap ",
        "user ",
        "assistant ",
        "system ",
        "\"",
        "\"\"\"",
        "\\",
        "\\\"",
        "#",
        "\n",
        "\r\n",
        "\r",
        " ",
        "\t",
        "x",
        "42",
        "0.7",
        "true",
        "-",
        "é",
        "✓",
        "\u{feff}",
        "\u{2028}",
        "\u{0}",
        "v1.2.3",
        "{{ .Prompt }}",
    ];

    fn check(text: &str) {
        match Modelfile::parse(text) {
            Ok(mf) => {
                let printed = mf.to_string();
                let again = Modelfile::parse(&printed)
                    .unwrap_or_else(|e| panic!("reprint of {text:?} fails: {e}\n{printed:?}"));
                assert_eq!(again, mf, "input {text:?}, printed {printed:?}");
            }
            Err(e) => {
                assert!(e.line >= 1 && e.column >= 1);
                let lines = text.chars().filter(|c| is_newline(*c)).count() + 1;
                assert!(e.line <= lines, "{e} for {text:?}");
                assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn fuzz_never_panics_and_round_trips() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // Random bytes, made valid UTF-8 lossily.
        for _ in 0..3000 {
            let len = rng.below(64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            check(&String::from_utf8_lossy(&bytes));
        }
        // Random sequences of Modelfile-shaped pieces.
        for _ in 0..20000 {
            let n = rng.below(24);
            let text: String = (0..n).map(|_| rng.pick(PIECES)).collect();
            check(&text);
            check(&format!("FROM x\n{text}"));
        }
        // Mutations of a real Modelfile.
        let base: Vec<char> = LLAMA3.chars().collect();
        for _ in 0..3000 {
            let mut chars = base.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(chars.len() + 1);
                match rng.below(4) {
                    0 if at < chars.len() => {
                        let end = (at + rng.below(20)).min(chars.len());
                        chars.drain(at..end);
                    }
                    1 => {
                        let piece = rng.pick(PIECES);
                        for (i, c) in piece.chars().enumerate() {
                            chars.insert(at + i, c);
                        }
                    }
                    2 if at < chars.len() => {
                        chars[at] = char::from(rng.next() as u8);
                    }
                    _ => {
                        let from = rng.below(chars.len());
                        let end = (from + rng.below(30)).min(chars.len());
                        let copy: Vec<char> = chars[from..end].to_vec();
                        for (i, c) in copy.into_iter().enumerate() {
                            chars.insert(at.min(chars.len()) + i, c);
                        }
                    }
                }
            }
            check(&chars.into_iter().collect::<String>());
        }
    }

    #[test]
    fn fuzz_generated_modelfiles_round_trip() {
        let mut rng = Rng(42);
        let atoms = [
            "a", " ", "\"", "\"\"\"", "\\", "\n", "\r", "\t", "#", "✓", "x y", "\u{2028}",
        ];
        let text = |rng: &mut Rng| -> String {
            let n = rng.below(8);
            (0..n).map(|_| rng.pick(&atoms)).collect()
        };
        for _ in 0..5000 {
            let mut commands = vec![Command::From(format!("m{}", text(&mut rng)))];
            for _ in 0..rng.below(6) {
                let s = text(&mut rng);
                commands.push(match rng.below(8) {
                    0 => Command::Template(s),
                    1 => Command::System(s),
                    2 => Command::License(s),
                    3 => Command::Message {
                        role: [Role::System, Role::User, Role::Assistant][rng.below(3)],
                        content: s,
                    },
                    4 => Command::Parameter {
                        name: "stop".into(),
                        value: ParamValue::Str(s),
                    },
                    5 => Command::Parameter {
                        name: "temperature".into(),
                        value: ParamValue::Float((rng.next() % 10_000) as f64 / 997.0),
                    },
                    6 => Command::Parameter {
                        name: "seed".into(),
                        value: ParamValue::Int(rng.next() as i64),
                    },
                    _ => Command::Adapter(format!("a{s}")),
                });
            }
            let mf = Modelfile { commands };
            let printed = mf.to_string();
            let back = Modelfile::parse(&printed).unwrap_or_else(|e| panic!("{e}: {printed:?}"));
            assert_eq!(back, mf, "{printed:?}");
        }
    }
}
