//! Lexer for the Go `text/template` subset: source text into text items and action token lists, with trim markers applied.
//!
//! Follows Go's lexical rules (<https://pkg.go.dev/text/template>): trim
//! markers need a space (`{{- ` and ` -}}`, so `{{-3}}` is the number -3),
//! and string, raw string, character and number literals are Go's.

use super::TemplateError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) pos: usize,
    /// Whitespace before it: a field after a space starts a new operand.
    pub(super) space_before: bool,
}

pub(super) enum Item {
    Text(String),
    Action { pos: usize, toks: Vec<Token> },
}

/// Turns a byte offset into Go's `line:col`.
pub(super) fn line_col(src: &str, pos: usize) -> (usize, usize) {
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

pub(super) fn err(src: &str, pos: usize, msg: impl Into<String>) -> TemplateError {
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
pub(super) fn lex(src: &str) -> Result<Vec<Item>, TemplateError> {
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
