//! Go's `strconv.Quote`: a string in double quotes with Go's escapes, as Ollama prints strings (`%q`, `%#v`).
//!
//! The one implementation for the parameter display of `/api/show`
//! ([`crate::ParamValue`]) and the template engine's `printf "%q"`, so the
//! two print a string the same way Ollama does. Go's rules:
//!
//! - `"` and `\` are backslashed;
//! - printable characters ([`is_print`]: letters, marks, numbers,
//!   punctuation, symbols and the ASCII space) are kept as they are, non-ASCII
//!   included;
//! - `\a \b \f \n \r \t \v` for those seven controls;
//! - any other character below U+0020, and U+007F, as `\xNN`; any other
//!   non-printable as `\uNNNN`, or `\UNNNNNNNN` above U+FFFF (lower-case hex).
//!
//! A Rust `&str` is valid UTF-8, so Go's `\xNN` for a byte that is not part
//! of a valid sequence cannot arise.

use std::fmt::{self, Write};

mod not_printable;
#[cfg(test)]
mod tests;

/// `s` quoted as Go's `strconv.Quote(s)` does.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    // Writing into a String cannot fail.
    let _ = write_go_quote(&mut out, s);
    out
}

/// Writes `s` quoted as Go's `strconv.Quote(s)` does.
pub fn write_go_quote(w: &mut impl Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                w.write_char('\\')?;
                w.write_char(c)?;
            }
            c if is_print(c) => w.write_char(c)?,
            '\u{7}' => w.write_str("\\a")?,
            '\u{8}' => w.write_str("\\b")?,
            '\u{c}' => w.write_str("\\f")?,
            '\n' => w.write_str("\\n")?,
            '\r' => w.write_str("\\r")?,
            '\t' => w.write_str("\\t")?,
            '\u{b}' => w.write_str("\\v")?,
            c if c < ' ' || c == '\u{7f}' => write!(w, "\\x{:02x}", c as u32)?,
            c if (c as u32) < 0x1_0000 => write!(w, "\\u{:04x}", c as u32)?,
            c => write!(w, "\\U{:08x}", c as u32)?,
        }
    }
    w.write_char('"')
}

/// Go's `strconv.IsPrint`: a letter, mark, number, punctuation or symbol
/// (Unicode general categories L, M, N, P, S), or the ASCII space.
pub fn is_print(c: char) -> bool {
    let c = c as u32;
    if c < 0x80 {
        return (0x20..0x7f).contains(&c);
    }
    let table = not_printable::NOT_PRINTABLE;
    // The last range starting at or below `c` is the only one that can hold it.
    let i = table.partition_point(|&(lo, _)| lo <= c);
    i == 0 || table[i - 1].1 < c
}
