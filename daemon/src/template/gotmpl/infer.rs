//! What a Go template says about a model's output, read from its syntax
//! tree as Ollama reads it: the text before a tool call (ollama
//! `tools/template.go`) and the tags around reasoning (ollama
//! `thinking/template.go`). The rules, quirks included, are Ollama's, so a
//! template behaves here as it does there.

use super::parse::{Node, Operand, Pipe, Term};

/// Ollama's `parseTag`.
pub(super) fn tool_call_tag(nodes: &[Node]) -> String {
    let text = find_tool_call_block(nodes).and_then(|list| first_text(list));
    let Some(text) = text else {
        return "{".into();
    };
    let text = text.replace("\r\n", "\n");
    // What follows a `{` may be the call itself.
    let tag = text.split('{').next().unwrap_or_default().trim();
    if tag.is_empty() {
        "{".into()
    } else {
        tag.to_owned()
    }
}

/// Whether an operand is a field chain through `ToolCalls` (`.ToolCalls`,
/// `.Message.ToolCalls`); Ollama looks only at the `if`'s own arguments,
/// not into parentheses or `$` variables.
fn is_tool_calls_field(a: &Operand) -> bool {
    matches!(a.term, Term::Dot) && a.chain.iter().any(|f| f == "ToolCalls")
}

/// The body of the first `if` whose condition reads `.ToolCalls`, depth first.
fn find_tool_call_block(nodes: &[Node]) -> Option<&[Node]> {
    for n in nodes {
        match n {
            Node::If(b) => {
                if b.pipe
                    .cmds
                    .iter()
                    .any(|c| c.args.iter().any(is_tool_calls_field))
                {
                    return Some(&b.list);
                }
                if let Some(found) =
                    find_tool_call_block(&b.list).or_else(|| find_tool_call_block(&b.else_list))
                {
                    return Some(found);
                }
            }
            Node::Range(b) | Node::With(b) => {
                if let Some(found) =
                    find_tool_call_block(&b.list).or_else(|| find_tool_call_block(&b.else_list))
                {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}

/// Ollama's `findTextNode`: the first text that is not only whitespace,
/// giving up at the first action or after the first nested block.
fn first_text(nodes: &[Node]) -> Option<&str> {
    for n in nodes {
        match n {
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Text(t) => return Some(t),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                return first_text(&b.list).or_else(|| first_text(&b.else_list));
            }
            Node::Action(_) => return None,
            Node::Break | Node::Continue => {}
        }
    }
    None
}

/// Ollama's `InferTags`: for each `.Thinking` read inside a range over
/// `.Messages`, the first and last texts of the nearest enclosing list
/// (trimmed) become the opening and closing tags; the last such read wins.
/// `None` unless both are found.
pub(super) fn think_tags(nodes: &[Node]) -> Option<(String, String)> {
    let mut tags = (String::new(), String::new());
    visit_list(nodes, None, &mut tags);
    let (open, close) = tags;
    (!open.is_empty() && !close.is_empty()).then_some((open, close))
}

/// Visits `list` (a list node) inside the range `in_messages` says
/// (`Some(true)`: the nearest range iterates `.Messages`).
fn visit_list(list: &[Node], in_messages: Option<bool>, tags: &mut (String, String)) {
    let mark = |tags: &mut (String, String)| {
        if let Some(Node::Text(t)) = list.first() {
            tags.0 = t.trim().to_owned();
        }
        if let Some(Node::Text(t)) = list.last() {
            tags.1 = t.trim().to_owned();
        }
    };
    for n in list {
        match n {
            Node::Action(p) => {
                if in_messages == Some(true) && pipe_reads(p, "Thinking") {
                    mark(tags);
                }
            }
            Node::If(b) | Node::With(b) => {
                if in_messages == Some(true) && pipe_reads(&b.pipe, "Thinking") {
                    mark(tags);
                }
                visit_list(&b.list, in_messages, tags);
                visit_list(&b.else_list, in_messages, tags);
            }
            Node::Range(b) => {
                // The range is the nearest one for its own pipeline too.
                let here = Some(pipe_reads(&b.pipe, "Messages"));
                if here == Some(true) && pipe_reads(&b.pipe, "Thinking") {
                    mark(tags);
                }
                visit_list(&b.list, here, tags);
                visit_list(&b.else_list, here, tags);
            }
            Node::Text(_) | Node::Break | Node::Continue => {}
        }
    }
}

/// Whether `p` (parentheses included) reads the field `.{field}…`.
fn pipe_reads(p: &Pipe, field: &str) -> bool {
    p.cmds.iter().flat_map(|c| &c.args).any(|a| match &a.term {
        Term::Dot => a.chain.first().is_some_and(|f| f == field),
        Term::Pipe(inner) => pipe_reads(inner, field),
        _ => false,
    })
}
