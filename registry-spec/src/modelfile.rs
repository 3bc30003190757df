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

use crate::params::{shorten, ParamError, ParamKind, ParamValue, Parameters};

use print::{write_quoted, write_value, Style};

mod parse;
mod print;
#[cfg(test)]
mod tests;

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
        let commands = parse::commands(text)?;
        if !commands.iter().any(|c| matches!(c, Command::From(_))) {
            return Err(ModelfileError {
                line: 1,
                column: 1,
                kind: ModelfileErrorKind::MissingFrom,
            });
        }
        Ok(Modelfile { commands })
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

// The lexical rules that printing and parsing share.

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
