//! The Modelfile parser: a cursor over the text that tracks line and column, the instruction keywords, and one function per instruction's argument.

use super::{
    is_blank, is_newline, line_ends_after, Command, ModelfileError, ModelfileErrorKind, Role,
};
use crate::params::{self, ParamError};

/// Parses Modelfile text (without a byte-order mark) into its commands, in order.
pub(super) fn commands(text: &str) -> Result<Vec<Command>, ModelfileError> {
    let mut parser = Parser {
        cur: Cursor::new(text),
        commands: Vec::new(),
    };
    parser.run()?;
    Ok(parser.commands)
}

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
