//! Printing a Modelfile value so that it parses back unchanged: bare, a `"""` block, or a `"…"` string.

use std::fmt;

use super::{is_blank, is_newline};

/// How a string argument prefers to be written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// Names and paths: bare whenever possible.
    Plain,
    /// Prose and templates: a `"""` block as soon as there is a newline or
    /// a quote.
    Text,
}

pub(super) fn write_value(f: &mut fmt::Formatter<'_>, s: &str, style: Style) -> fmt::Result {
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
pub(super) fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
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
