//! Tool calls taken out of a model's text as it streams, as Ollama's
//! generic `tools.Parser` does: text before the template's call tag is the
//! answer; after the tag, each complete JSON object naming an offered tool
//! is a call. With a bare `{` (or `[`) tag only an answer that starts with
//! JSON can be a call, and one that turns out not to be is released as
//! text.
//!
//! Where Ollama would lose a call or text, this parser differs: an answer
//! that opens with a bare JSON object is read as a call even when the
//! template's tag is another (small models often leave the tag out, and
//! llama.cpp's parsers take a bare `{"name"…` too); a call written without
//! `arguments` is a call with none; and text after a tag that never became
//! a call is released at the end instead of dropped.

use serde_json::{Map, Value};

use super::thinking::overlap;

/// Where the parser is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Text so far; the tag may come.
    LookingForTag,
    /// After the tag: calls.
    Calling,
    /// No (more) calls can come: everything is text.
    Done,
}

/// A call found in the text: the tool's name and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundCall {
    /// Which offered tool.
    pub name: String,
    /// Its arguments.
    pub arguments: Map<String, Value>,
}

/// Finds tool calls in streamed text.
#[derive(Debug, Clone)]
pub struct ToolParser {
    tag: String,
    /// Text that may stand before a bare-JSON call (`<|python_tag|>`).
    alt_prefix: Option<String>,
    names: Vec<String>,
    state: State,
    buf: String,
    /// Calls found so far.
    found: usize,
    /// Text other than whitespace has been released.
    text_seen: bool,
    /// The answer opened with a bare JSON object: read as with a `{` tag.
    json_start: bool,
}

impl ToolParser {
    /// A parser for calls after `tag` to the tools named `names`.
    pub fn new(tag: &str, alt_prefix: Option<&str>, names: Vec<String>) -> ToolParser {
        ToolParser {
            tag: tag.to_owned(),
            alt_prefix: alt_prefix.map(str::to_owned),
            names,
            state: State::LookingForTag,
            buf: String::new(),
            found: 0,
            text_seen: false,
            json_start: false,
        }
    }

    /// The tag in use: the template's, or `{` for an answer that opened with JSON.
    fn tag(&self) -> &str {
        if self.json_start {
            "{"
        } else {
            &self.tag
        }
    }

    fn bare(&self) -> bool {
        matches!(self.tag(), "{" | "[")
    }

    /// Adds text; returns the calls now complete and the text that is
    /// certainly not part of one.
    pub fn push(&mut self, text: &str) -> (Vec<FoundCall>, String) {
        if self.state == State::Done {
            return (Vec::new(), text.to_owned());
        }
        self.buf.push_str(text);
        let mut content = String::new();
        if self.state == State::LookingForTag {
            if self.bare() && self.strip_alt_prefix() {
                return (Vec::new(), String::new());
            }
            if !self.text_seen && self.buf.trim_start().starts_with('{') {
                self.json_start = true;
            }
            let (at, found) = self.find_tag();
            content = self.buf[..at].to_owned();
            self.buf.drain(..at);
            if self.bare() && !content.trim().is_empty() {
                // Only an answer that opens with JSON can be a call.
                self.state = State::Done;
                content.push_str(&std::mem::take(&mut self.buf));
                return (Vec::new(), content);
            }
            self.text_seen |= !content.trim().is_empty();
            if !found {
                return (Vec::new(), content);
            }
            self.state = State::Calling;
        }
        let mut calls = Vec::new();
        while let Some(call) = self.next_call() {
            calls.push(call);
        }
        if self.bare() && self.closed() {
            // The JSON is whole and was not (or no longer is) a call.
            self.state = State::Done;
            content.push_str(&std::mem::take(&mut self.buf));
        }
        (calls, content)
    }

    /// Ends the text: what is left that never became a call is released
    /// (the rest of a call already made is not).
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.buf);
        if self.found > 0 && self.state != State::Done {
            return String::new();
        }
        rest
    }

    /// Drops an alternative prefix at the start (after whitespace); true
    /// when what there is so far may still be one.
    fn strip_alt_prefix(&mut self) -> bool {
        let Some(p) = &self.alt_prefix else {
            return false;
        };
        let t = self.buf.trim_start();
        if let Some(rest) = t.strip_prefix(p.as_str()) {
            self.buf = rest.to_owned();
            return false;
        }
        !t.is_empty() && p.starts_with(t)
    }

    /// Where the tag starts (and that it is whole), or where a partial tag
    /// at the end starts, or the end.
    fn find_tag(&self) -> (usize, bool) {
        let tag = self.tag();
        if let Some(at) = self.buf.find(tag) {
            return (at, true);
        }
        (self.buf.len() - overlap(&self.buf, tag), false)
    }

    /// The next complete call in the buffer, which is then consumed up to
    /// the end of its JSON object.
    fn next_call(&mut self) -> Option<FoundCall> {
        let name = self.find_tool()?;
        let (args, own, end) = find_arguments(&name, &self.buf)?;
        // A call's own object may name the tool differently from where
        // the name first appeared; its "name" decides.
        let name = own.filter(|n| self.names.contains(n)).unwrap_or(name);
        self.found += 1;
        self.buf.drain(..end);
        Some(FoundCall {
            name,
            arguments: args,
        })
    }

    /// Ollama's `findTool`: the offered name that appears first in the
    /// buffer (the longest at one place); none while the buffer ends in
    /// what may be the start of a longer name.
    fn find_tool(&self) -> Option<String> {
        let longest = self.names.iter().map(String::len).max().unwrap_or(0);
        for i in 1..=self.buf.len().min(longest) {
            let from = self.buf.len() - i;
            if !self.buf.is_char_boundary(from) {
                continue;
            }
            let tail = &self.buf[from..];
            if self
                .names
                .iter()
                .any(|n| tail.len() < n.len() && n.starts_with(tail))
            {
                return None;
            }
        }
        let mut best: Option<(usize, &String)> = None;
        for n in &self.names {
            if let Some(at) = self.buf.find(n.as_str()) {
                let better = match best {
                    None => true,
                    Some((b, bn)) => at < b || (at == b && n.len() > bn.len()),
                };
                if better {
                    best = Some((at, n));
                }
            }
        }
        best.map(|(_, n)| n.clone())
    }

    /// Whether the bracket the bare tag opened has closed (strings skipped).
    fn closed(&self) -> bool {
        let (open, close) = if self.tag() == "[" {
            (b'[', b']')
        } else {
            (b'{', b'}')
        };
        let mut depth = 0i64;
        let mut scan = Scan::default();
        for &c in self.buf.as_bytes() {
            if scan.skip(c) {
                continue;
            }
            if c == open {
                depth += 1;
            } else if c == close {
                depth -= 1;
                if depth == 0 {
                    return true;
                }
            }
        }
        false
    }
}

/// Skips JSON strings while scanning bytes.
#[derive(Default)]
struct Scan {
    in_string: bool,
    escaped: bool,
}

impl Scan {
    /// Whether `c` is inside (or delimits) a string.
    fn skip(&mut self, c: u8) -> bool {
        if self.escaped {
            self.escaped = false;
            return true;
        }
        if c == b'\\' {
            self.escaped = true;
            return true;
        }
        if c == b'"' {
            self.in_string = !self.in_string;
            return true;
        }
        self.in_string
    }
}

/// Ollama's `findArguments`: the first complete JSON object in `buf` that
/// parses, read as a call to `name`; its arguments and the index of its
/// closing brace (which, as in Ollama, stays in the buffer), and the
/// object's own `"name"`.
fn find_arguments(name: &str, buf: &str) -> Option<(Map<String, Value>, Option<String>, usize)> {
    let bytes = buf.as_bytes();
    let mut start = None;
    let mut depth = 0usize;
    let mut scan = Scan::default();
    for (i, &c) in bytes.iter().enumerate() {
        if scan.skip(c) {
            continue;
        }
        if c == b'{' {
            if depth == 0 {
                start = Some(i);
            }
            depth += 1;
        } else if c == b'}' && depth > 0 {
            depth -= 1;
            if depth > 0 {
                continue;
            }
            let Some(s) = start.take() else { continue };
            // Not valid JSON: keep looking.
            let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(&buf[s..=i]) else {
                continue;
            };
            let own = obj.get("name").and_then(Value::as_str).map(str::to_owned);
            let args = find_object(name, &obj).unwrap_or(obj);
            return Some((args, own, i));
        }
    }
    None
}

/// The arguments in a call object: `arguments` or `parameters` beside a
/// `name` (none when absent), an object keyed by the tool's name, or the
/// same inside a nested object or array.
fn find_object(name: &str, obj: &Map<String, Value>) -> Option<Map<String, Value>> {
    let as_map = |v: &Value| match v {
        Value::Object(m) => Some(m.clone()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        },
        _ => None,
    };
    if obj.contains_key("name") {
        return Some(
            obj.get("arguments")
                .and_then(as_map)
                .or_else(|| obj.get("parameters").and_then(as_map))
                .unwrap_or_default(),
        );
    }
    if let Some(m) = obj.get(name).and_then(as_map) {
        return Some(m);
    }
    obj.values().find_map(|v| match v {
        Value::Object(child) => find_object(name, child),
        Value::Array(items) => items.iter().find_map(|i| match i {
            Value::Object(child) => find_object(name, child),
            _ => None,
        }),
        _ => None,
    })
}
