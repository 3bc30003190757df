//! The text a Go template prints before a tool call, read from its syntax
//! tree as Ollama reads it (ollama `tools/template.go`), quirks included,
//! so a template behaves here as it does there.

use super::parse::{Node, Operand, Term};

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
