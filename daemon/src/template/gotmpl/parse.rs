//! Parser for the Go `text/template` subset Ollama's TEMPLATE layers use: the syntax tree and the parser over `lex`'s tokens.
//!
//! Follows Go's grammar (<https://pkg.go.dev/text/template>): trim markers
//! need a space (`{{- ` and ` -}}`, so `{{-3}}` is the number -3), fields
//! chain only without spaces (`$x.Foo`), functions and variables are checked
//! at parse time, and `break`/`continue` only parse inside `range`.

use super::lex::{err, lex, Item, Tok, Token};
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
