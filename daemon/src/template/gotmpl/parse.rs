//! Lexer and parser for the Go `text/template` subset Ollama's TEMPLATE layers use.
//!
//! Follows Go's grammar (<https://pkg.go.dev/text/template>): trim markers
//! need a space (`{{- ` and ` -}}`, so `{{-3}}` is the number -3), fields
//! chain only without spaces (`$x.Foo`), functions and variables are checked
//! at parse time, and `break`/`continue` only parse inside `range`.

use super::{TemplateError, FUNCTIONS};

/// A parsed template node.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Literal text.
    Text(String),
    /// `{{ pipeline }}`.
    Action(Pipe),
    /// `{{ if }}` … `{{ else }}` … `{{ end }}`.
    If(Box<Branch>),
    /// `{{ range }}`.
    Range(Box<Branch>),
    /// `{{ with }}`.
    With(Box<Branch>),
    /// `{{ break }}`.
    Break,
    /// `{{ continue }}`.
    Continue,
}

/// The shared shape of `if`, `range` and `with`.
#[derive(Debug, Clone)]
pub(crate) struct Branch {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Vec<Node>,
}

/// A pipeline, with its optional variable declaration or assignment.
#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub pos: usize,
    /// Declared or assigned variables, `$` included (`$i`, `$m`).
    pub decl: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

/// One command of a pipeline: a function call or a single operand.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    pub pos: usize,
    pub args: Vec<Operand>,
}

/// A term followed by a field chain (`.A.B`, `$x.A`, `(pipe).A`).
#[derive(Debug, Clone)]
pub(crate) struct Operand {
    pub pos: usize,
    pub term: Term,
    pub chain: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Term {
    /// `.`; with a chain this is Go's field node (`.Foo`).
    Dot,
    Var(String),
    /// A function name.
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Pipe(Box<Pipe>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String),
    Dot,
    Var(String),
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
    /// Whitespace before it: a field after a space starts a new operand.
    space_before: bool,
}

enum Item {
    Text(String),
    Action { pos: usize, toks: Vec<Token> },
}

/// Turns a byte offset into Go's `line:col`.
pub(crate) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = &src.as_bytes()[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = pos
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    (line, col)
}

fn err(src: &str, pos: usize, msg: impl Into<String>) -> TemplateError {
    let (line, col) = line_col(src, pos);
    TemplateError::Parse {
        line,
        col,
        msg: msg.into(),
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim_end_space(s: &mut String) {
    let n = s.trim_end_matches([' ', '\t', '\r', '\n']).len();
    s.truncate(n);
}

/// Splits the source into text and action token lists, applying trim markers.
fn lex(src: &str) -> Result<Vec<Item>, TemplateError> {
    let b = src.as_bytes();
    let mut items: Vec<Item> = Vec::new();
    let mut i = 0;
    let mut trim_next = false;
    while i < b.len() {
        let open = src[i..].find("{{").map(|o| i + o);
        let text_end = open.unwrap_or(b.len());
        let mut text = src[i..text_end].to_owned();
        if trim_next {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']).to_owned();
            trim_next = false;
        }
        let Some(open) = open else {
            if !text.is_empty() {
                items.push(Item::Text(text));
            }
            break;
        };
        let mut j = open + 2;
        if b.get(j) == Some(&b'-') && b.get(j + 1).is_some_and(|&c| is_space(c)) {
            trim_end_space(&mut text);
            j += 2;
        }
        if !text.is_empty() {
            items.push(Item::Text(text));
        }
        // Comments: `{{/* … */}}`, optionally with trim markers around them.
        let mut k = j;
        while k < b.len() && is_space(b[k]) {
            k += 1;
        }
        if src[k..].starts_with("/*") {
            let Some(close) = src[k + 2..].find("*/") else {
                return Err(err(src, open, "unclosed comment"));
            };
            let mut m = k + 2 + close + 2;
            if src[m..].starts_with("}}") {
                i = m + 2;
                continue;
            }
            while m < b.len() && is_space(b[m]) {
                m += 1;
            }
            if src[m..].starts_with("-}}") && m > k + 2 + close + 2 {
                trim_next = true;
                i = m + 3;
                continue;
            }
            if src[m..].starts_with("}}") {
                i = m + 2;
                continue;
            }
            return Err(err(src, open, "comment ends before closing delimiter"));
        }
        let (toks, end, trim) = lex_action(src, j, open)?;
        items.push(Item::Action { pos: open, toks });
        trim_next = trim;
        i = end;
    }
    Ok(items)
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Lexes one action from `start`; returns its tokens, the offset after `}}`
/// and whether it closed with a trim marker.
fn lex_action(
    src: &str,
    start: usize,
    open: usize,
) -> Result<(Vec<Token>, usize, bool), TemplateError> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = start;
    let mut space_before = true;
    loop {
        let Some(&c) = b.get(i) else {
            return Err(err(src, open, "unclosed action"));
        };
        if is_space(c) {
            let mut k = i;
            while k < b.len() && is_space(b[k]) {
                k += 1;
            }
            if src[k..].starts_with("-}}") {
                return Ok((toks, k + 3, true));
            }
            i = k;
            space_before = true;
            continue;
        }
        if src[i..].starts_with("}}") {
            return Ok((toks, i + 2, false));
        }
        let pos = i;
        let tok = match c {
            b'|' => {
                i += 1;
                Tok::Pipe
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'=' => {
                i += 1;
                Tok::Assign
            }
            b':' => {
                if b.get(i + 1) == Some(&b'=') {
                    i += 2;
                    Tok::Declare
                } else {
                    return Err(err(src, pos, "expected :="));
                }
            }
            b'"' => {
                let (s, end) = lex_quoted(src, i)?;
                i = end;
                Tok::Str(s)
            }
            b'`' => {
                let Some(close) = src[i + 1..].find('`') else {
                    return Err(err(src, pos, "unterminated raw quoted string"));
                };
                let s = src[i + 1..i + 1 + close].to_owned();
                i = i + 1 + close + 1;
                Tok::Str(s)
            }
            b'\'' => {
                let (n, end) = lex_char(src, i)?;
                i = end;
                Tok::Int(n)
            }
            b'.' if b.get(i + 1).is_some_and(|c| c.is_ascii_digit()) => {
                let (t, end) = lex_number(src, i)?;
                i = end;
                t
            }
            b'.' => {
                let mut k = i + 1;
                while k < b.len() && is_ident_byte(b[k]) {
                    k += 1;
                }
                let name = &src[i + 1..k];
                i = k;
                if name.is_empty() {
                    Tok::Dot
                } else {
                    Tok::Field(name.to_owned())
                }
            }
            b'$' => {
                let mut k = i + 1;
                while k < b.len() && is_ident_byte(b[k]) {
                    k += 1;
                }
                let name = src[i..k].to_owned();
                i = k;
                Tok::Var(name)
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let (t, end) = lex_number(src, i)?;
                i = end;
                t
            }
            c if is_ident_byte(c) => {
                let mut k = i;
                while k < b.len() && is_ident_byte(b[k]) {
                    k += 1;
                }
                let name = src[i..k].to_owned();
                i = k;
                Tok::Ident(name)
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err(src, pos, format!("unexpected {ch:?} in command")));
            }
        };
        toks.push(Token {
            tok,
            pos,
            space_before,
        });
        space_before = false;
    }
}

fn lex_quoted(src: &str, start: usize) -> Result<(String, usize), TemplateError> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => return Ok((out, start + 1 + off + 1)),
            '\n' => break,
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut v: u32 = 0;
                        for _ in 0..n {
                            let d = chars.next().and_then(|(_, h)| h.to_digit(16));
                            let Some(d) = d else {
                                return Err(err(src, start, "invalid escape in quoted string"));
                            };
                            v = v.saturating_mul(16).saturating_add(d);
                        }
                        match char::from_u32(v) {
                            Some(ch) => out.push(ch),
                            None => return Err(err(src, start, "invalid escape in quoted string")),
                        }
                    }
                    _ => return Err(err(src, start, "invalid escape in quoted string")),
                }
            }
            c => out.push(c),
        }
    }
    Err(err(src, start, "unterminated quoted string"))
}

fn lex_char(src: &str, start: usize) -> Result<(i64, usize), TemplateError> {
    let rest = &src[start + 1..];
    let mut it = rest.char_indices();
    let value = match it.next() {
        Some((_, '\\')) => match it.next() {
            Some((_, 'n')) => '\n',
            Some((_, 't')) => '\t',
            Some((_, '\\')) => '\\',
            Some((_, '\'')) => '\'',
            _ => return Err(err(src, start, "invalid character constant")),
        },
        Some((_, c)) if c != '\'' => c,
        _ => return Err(err(src, start, "invalid character constant")),
    };
    match it.next() {
        Some((off, '\'')) => Ok((i64::from(u32::from(value)), start + 1 + off + 1)),
        _ => Err(err(src, start, "unterminated character constant")),
    }
}

fn lex_number(src: &str, start: usize) -> Result<(Tok, usize), TemplateError> {
    let b = src.as_bytes();
    let mut k = start;
    if matches!(b.get(k), Some(b'-' | b'+')) {
        k += 1;
    }
    while k < b.len() && (b[k].is_ascii_alphanumeric() || b[k] == b'.' || b[k] == b'_') {
        // Exponent signs belong to the number (`1e-3`), not to the next token.
        if matches!(b[k], b'e' | b'E' | b'p' | b'P')
            && matches!(b.get(k + 1), Some(b'-' | b'+'))
            && !src[start..k].contains(['x', 'X'])
        {
            k += 2;
            continue;
        }
        k += 1;
    }
    let text = &src[start..k];
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let int = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(bn) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
        i64::from_str_radix(bn, 2).ok()
    } else {
        body.parse::<i64>().ok()
    };
    if let Some(v) = int {
        return Ok((Tok::Int(if neg { -v } else { v }), k));
    }
    match body.parse::<f64>() {
        Ok(f)
            if !body.is_empty()
                && body
                    .bytes()
                    .all(|c| c.is_ascii_digit() || b".eE+-".contains(&c)) =>
        {
            Ok((Tok::Float(if neg { -f } else { f }), k))
        }
        _ => Err(err(src, start, format!("bad number syntax: `{text}`"))),
    }
}

/// Nesting limit for blocks and parentheses, so a hostile template cannot
/// overflow the stack of the parser or the evaluator.
pub(crate) const MAX_DEPTH: usize = 100;

struct Parser<'a> {
    src: &'a str,
    items: Vec<Item>,
    next: usize,
    /// Declared variables; popped at the `end` of the block that declared them.
    vars: Vec<String>,
    depth: usize,
    range_depth: usize,
}

/// What stopped a node list.
enum Stop {
    Eof,
    End,
    Else { pos: usize, rest: Vec<Token> },
}

/// Parses a template into its node list.
pub(crate) fn parse(src: &str) -> Result<Vec<Node>, TemplateError> {
    let items = lex(src)?;
    let mut p = Parser {
        src,
        items,
        next: 0,
        vars: vec!["$".to_owned()],
        depth: 0,
        range_depth: 0,
    };
    let (nodes, end) = p.list()?;
    match end {
        Stop::Eof => Ok(nodes),
        Stop::End => Err(err(src, p.last_pos(), "unexpected {{end}}")),
        Stop::Else { pos, .. } => Err(err(src, pos, "unexpected {{else}}")),
    }
}

impl Parser<'_> {
    fn last_pos(&self) -> usize {
        match self.next.checked_sub(1).and_then(|i| self.items.get(i)) {
            Some(Item::Action { pos, .. }) => *pos,
            _ => self.src.len(),
        }
    }

    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        while self.next < self.items.len() {
            let idx = self.next;
            self.next += 1;
            let (pos, toks) = match &mut self.items[idx] {
                Item::Text(t) => {
                    nodes.push(Node::Text(std::mem::take(t)));
                    continue;
                }
                Item::Action { pos, toks } => (*pos, std::mem::take(toks)),
            };
            let keyword = match toks.first().map(|t| &t.tok) {
                Some(Tok::Ident(k)) => k.as_str(),
                None => return Err(err(self.src, pos, "missing value for command")),
                _ => "",
            };
            match keyword {
                "end" => {
                    if toks.len() > 1 {
                        return Err(err(self.src, pos, "unexpected token in end"));
                    }
                    return Ok((nodes, Stop::End));
                }
                "else" => {
                    return Ok((
                        nodes,
                        Stop::Else {
                            pos,
                            rest: toks[1..].to_vec(),
                        },
                    ))
                }
                "if" | "range" | "with" => {
                    let kw = keyword.to_owned();
                    nodes.push(self.block(&kw, pos, &toks[1..])?);
                }
                "break" | "continue" => {
                    if self.range_depth == 0 {
                        return Err(err(
                            self.src,
                            pos,
                            format!("{{{{{keyword}}}}} outside {{{{range}}}}"),
                        ));
                    }
                    if toks.len() > 1 {
                        return Err(err(
                            self.src,
                            pos,
                            format!("unexpected token in {{{{{keyword}}}}}"),
                        ));
                    }
                    nodes.push(if keyword == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                }
                "define" | "template" | "block" => {
                    return Err(err(
                        self.src,
                        pos,
                        format!("`{keyword}` is not supported in prompt templates"),
                    ))
                }
                _ => {
                    let pipe = self.pipeline(pos, &toks, false)?;
                    nodes.push(Node::Action(pipe));
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// Parses `if`/`range`/`with` after its keyword, through its `end`.
    fn block(&mut self, kw: &str, pos: usize, toks: &[Token]) -> Result<Node, TemplateError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(
                self.src,
                pos,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        let mark = self.vars.len();
        let pipe = self.pipeline(pos, toks, kw == "range")?;
        if kw == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.list()?;
        if kw == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            Stop::Eof => {
                return Err(err(
                    self.src,
                    pos,
                    format!("unexpected EOF in {{{{{kw}}}}}"),
                ))
            }
            Stop::End => Vec::new(),
            Stop::Else { pos: epos, rest } => {
                let chained = match rest.first().map(|t| &t.tok) {
                    Some(Tok::Ident(k)) if (k == "if" || k == "with") && kw != "range" => {
                        Some(k.clone())
                    }
                    Some(_) => return Err(err(self.src, epos, "unexpected token in else")),
                    None => None,
                };
                match chained {
                    // `else if` shares the enclosing `end`, as in Go.
                    Some(k) => vec![self.block(&k, epos, &rest[1..])?],
                    None => {
                        let (l, end) = self.list()?;
                        match end {
                            Stop::End => l,
                            Stop::Eof => {
                                return Err(err(
                                    self.src,
                                    pos,
                                    format!("unexpected EOF in {{{{{kw}}}}}"),
                                ))
                            }
                            Stop::Else { pos, .. } => {
                                return Err(err(self.src, pos, "expected end; found {{else}}"))
                            }
                        }
                    }
                }
            }
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        let b = Box::new(Branch {
            pipe,
            list,
            else_list,
        });
        Ok(match kw {
            "if" => Node::If(b),
            "range" => Node::Range(b),
            _ => Node::With(b),
        })
    }

    /// Parses a whole pipeline, including a leading declaration.
    fn pipeline(
        &mut self,
        pos: usize,
        toks: &[Token],
        in_range: bool,
    ) -> Result<Pipe, TemplateError> {
        let mut decl = Vec::new();
        let mut assign = false;
        let mut rest = toks;
        // `$x :=`, `$x =`, and in range `$i, $x :=`.
        let is_decl = |t: &[Token]| {
            matches!(
                t.get(1).map(|t| &t.tok),
                Some(Tok::Declare | Tok::Assign | Tok::Comma)
            )
        };
        if let Some(Tok::Var(v)) = rest.first().map(|t| &t.tok) {
            if is_decl(rest) {
                decl.push(v.clone());
                let mut k = 1;
                if rest[k].tok == Tok::Comma {
                    if !in_range {
                        return Err(err(
                            self.src,
                            rest[k].pos,
                            "too many declarations in command",
                        ));
                    }
                    match rest.get(2).map(|t| &t.tok) {
                        Some(Tok::Var(v2)) => decl.push(v2.clone()),
                        _ => {
                            return Err(err(self.src, rest[k].pos, "expected variable after comma"))
                        }
                    }
                    k = 3;
                }
                match rest.get(k).map(|t| &t.tok) {
                    Some(Tok::Declare) => {}
                    Some(Tok::Assign) => assign = true,
                    _ => return Err(err(self.src, pos, "expected := or = in declaration")),
                }
                rest = &rest[k + 1..];
            }
        }
        let mut i = 0;
        let pipe = self.pipe_body(pos, rest, &mut i, false)?;
        if i < rest.len() {
            return Err(err(self.src, rest[i].pos, "unexpected token in pipeline"));
        }
        for v in &decl {
            if assign {
                if !self.vars.contains(v) {
                    return Err(err(self.src, pos, format!("undefined variable `{v}`")));
                }
            } else {
                self.vars.push(v.clone());
            }
        }
        Ok(Pipe {
            pos,
            decl,
            assign,
            cmds: pipe.cmds,
        })
    }

    /// Commands separated by `|`, up to the end or a `)` when nested.
    fn pipe_body(
        &mut self,
        pos: usize,
        toks: &[Token],
        i: &mut usize,
        nested: bool,
    ) -> Result<Pipe, TemplateError> {
        let mut cmds = Vec::new();
        loop {
            let cpos = toks.get(*i).map_or(pos, |t| t.pos);
            let mut args = Vec::new();
            while let Some(t) = toks.get(*i) {
                if matches!(t.tok, Tok::Pipe | Tok::RParen) {
                    break;
                }
                args.push(self.operand(toks, i)?);
            }
            if args.is_empty() {
                return Err(err(self.src, cpos, "missing value for command"));
            }
            if let Term::Ident(name) = &args[0].term {
                if !FUNCTIONS.contains(&name.as_str()) {
                    return Err(err(
                        self.src,
                        args[0].pos,
                        format!("function `{name}` not defined"),
                    ));
                }
            }
            cmds.push(Cmd { pos: cpos, args });
            match toks.get(*i).map(|t| &t.tok) {
                Some(Tok::Pipe) => *i += 1,
                Some(Tok::RParen) if nested => break,
                Some(Tok::RParen) => {
                    return Err(err(self.src, toks[*i].pos, "unexpected right paren"))
                }
                _ => break,
            }
        }
        Ok(Pipe {
            pos,
            decl: Vec::new(),
            assign: false,
            cmds,
        })
    }

    fn operand(&mut self, toks: &[Token], i: &mut usize) -> Result<Operand, TemplateError> {
        let t = &toks[*i];
        let pos = t.pos;
        *i += 1;
        let (term, mut chain) = match &t.tok {
            Tok::Dot => (Term::Dot, Vec::new()),
            Tok::Field(f) => (Term::Dot, vec![f.clone()]),
            Tok::Var(v) => {
                if !self.vars.contains(v) {
                    return Err(err(self.src, pos, format!("undefined variable `{v}`")));
                }
                (Term::Var(v.clone()), Vec::new())
            }
            Tok::Ident(name) => match name.as_str() {
                "true" => (Term::Bool(true), Vec::new()),
                "false" => (Term::Bool(false), Vec::new()),
                "nil" => (Term::Nil, Vec::new()),
                "if" | "else" | "end" | "range" | "with" | "break" | "continue" | "define"
                | "template" | "block" => {
                    return Err(err(
                        self.src,
                        pos,
                        format!("unexpected keyword `{name}` in operand"),
                    ))
                }
                _ => {
                    if !FUNCTIONS.contains(&name.as_str()) {
                        return Err(err(self.src, pos, format!("function `{name}` not defined")));
                    }
                    (Term::Ident(name.clone()), Vec::new())
                }
            },
            Tok::Str(s) => (Term::Str(s.clone()), Vec::new()),
            Tok::Int(n) => (Term::Int(*n), Vec::new()),
            Tok::Float(f) => (Term::Float(*f), Vec::new()),
            Tok::LParen => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(err(
                        self.src,
                        pos,
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                    ));
                }
                let inner = self.pipe_body(pos, toks, i, true)?;
                self.depth -= 1;
                match toks.get(*i).map(|t| &t.tok) {
                    Some(Tok::RParen) => *i += 1,
                    _ => return Err(err(self.src, pos, "unclosed left paren")),
                }
                (Term::Pipe(Box::new(inner)), Vec::new())
            }
            other => {
                return Err(err(
                    self.src,
                    pos,
                    format!("unexpected {} in operand", tok_name(other)),
                ))
            }
        };
        // Field chains continue only without a space: `$x.Foo`, `(…).Foo`.
        while let Some(Token {
            tok: Tok::Field(f),
            space_before: false,
            ..
        }) = toks.get(*i)
        {
            if matches!(
                term,
                Term::Bool(_) | Term::Nil | Term::Str(_) | Term::Int(_) | Term::Float(_)
            ) {
                return Err(err(self.src, toks[*i].pos, "unexpected . after term"));
            }
            chain.push(f.clone());
            *i += 1;
        }
        if matches!(term, Term::Ident(_)) && !chain.is_empty() {
            return Err(err(self.src, pos, "unexpected . after function name"));
        }
        Ok(Operand { pos, term, chain })
    }
}

fn tok_name(t: &Tok) -> &'static str {
    match t {
        Tok::Pipe => "\"|\"",
        Tok::RParen => "\")\"",
        Tok::Declare => "\":=\"",
        Tok::Assign => "\"=\"",
        Tok::Comma => "\",\"",
        _ => "token",
    }
}
