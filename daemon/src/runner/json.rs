//! `format: "json"`: a byte-level recognizer of JSON-object prefixes, so the
//! sampler only emits tokens that keep the output a valid start of one
//! object (Ollama's JSON grammar: the root is an object), and generation ends
//! when the object closes.

/// Containers deeper than this are refused: output is bounded anyway, and an
/// unbounded stack would be the model's to grow.
const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

/// Where in a number we are (RFC 8259's grammar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    /// After `-`.
    Minus,
    /// After a leading `0`.
    Zero,
    /// In the integer digits.
    Int,
    /// After `.`.
    Dot,
    /// In the fraction digits.
    Frac,
    /// After `e`/`E`.
    Exp,
    /// After the exponent's sign.
    ExpSign,
    /// In the exponent digits.
    ExpDigits,
}

impl Num {
    /// Whether the number may end here.
    fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::ExpDigits)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the root object (whitespace allowed).
    Start,
    /// A value is expected.
    Value,
    /// After `{`: a key or `}`.
    KeyOrEnd,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value inside a container: `,` or the closing bracket.
    CommaOrEnd,
    /// After `[`: a value or `]`.
    ValueOrEnd,
    /// Inside a string; `key` when it is an object key.
    Str { key: bool },
    /// After a backslash in a string.
    Escape { key: bool },
    /// In `\uXXXX`, with this many hex digits still to come.
    Unicode { key: bool, left: u8 },
    /// Inside a number.
    Number(Num),
    /// Inside `true`/`false`/`null`: the bytes still to come.
    Literal(&'static [u8]),
    /// The root object is closed.
    Done,
}

/// A JSON-object prefix recognizer; feed it bytes with [`JsonPrefix::push`].
#[derive(Debug, Clone)]
pub struct JsonPrefix {
    stack: Vec<Container>,
    state: State,
}

impl Default for JsonPrefix {
    fn default() -> Self {
        JsonPrefix {
            stack: Vec::new(),
            state: State::Start,
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl JsonPrefix {
    /// Whether the root object has closed.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Whether `bytes` would keep the output a valid prefix (and change it:
    /// an empty piece is no progress).
    pub fn accepts(&self, bytes: &[u8]) -> bool {
        if bytes.is_empty() || self.is_complete() {
            return false;
        }
        let mut probe = self.clone();
        bytes.iter().all(|&b| probe.push(b))
    }

    /// Feeds `bytes`; false (and the state is unspecified) if they break it.
    pub fn push_all(&mut self, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| self.push(b))
    }

    /// The state after a value ends inside the current container.
    fn after_value(&mut self) {
        self.state = if self.stack.is_empty() {
            State::Done
        } else {
            State::CommaOrEnd
        };
    }

    fn open(&mut self, c: Container) -> bool {
        if self.stack.len() >= MAX_DEPTH {
            return false;
        }
        self.stack.push(c);
        self.state = match c {
            Container::Object => State::KeyOrEnd,
            Container::Array => State::ValueOrEnd,
        };
        true
    }

    fn close(&mut self, c: Container) -> bool {
        if self.stack.pop() != Some(c) {
            return false;
        }
        self.after_value();
        true
    }

    /// The first byte of a value.
    fn value(&mut self, b: u8) -> bool {
        self.state = match b {
            b'{' => return self.open(Container::Object),
            b'[' => return self.open(Container::Array),
            b'"' => State::Str { key: false },
            b'-' => State::Number(Num::Minus),
            b'0' => State::Number(Num::Zero),
            b'1'..=b'9' => State::Number(Num::Int),
            b't' => State::Literal(b"rue"),
            b'f' => State::Literal(b"alse"),
            b'n' => State::Literal(b"ull"),
            _ => return false,
        };
        true
    }

    /// Feeds one byte; false if it cannot continue a valid prefix.
    pub fn push(&mut self, b: u8) -> bool {
        match self.state {
            State::Done => false,
            State::Start => {
                if is_ws(b) {
                    true
                } else if b == b'{' {
                    self.open(Container::Object)
                } else {
                    false
                }
            }
            State::Value => is_ws(b) || self.value(b),
            State::ValueOrEnd => {
                if is_ws(b) {
                    true
                } else if b == b']' {
                    self.close(Container::Array)
                } else {
                    self.value(b)
                }
            }
            State::KeyOrEnd | State::Key => {
                if is_ws(b) {
                    true
                } else if b == b'"' {
                    self.state = State::Str { key: true };
                    true
                } else if b == b'}' && self.state == State::KeyOrEnd {
                    self.close(Container::Object)
                } else {
                    false
                }
            }
            State::Colon => {
                if is_ws(b) {
                    true
                } else if b == b':' {
                    self.state = State::Value;
                    true
                } else {
                    false
                }
            }
            State::CommaOrEnd => match b {
                _ if is_ws(b) => true,
                b',' => {
                    self.state = match self.stack.last() {
                        Some(Container::Object) => State::Key,
                        _ => State::Value,
                    };
                    true
                }
                b'}' => self.close(Container::Object),
                b']' => self.close(Container::Array),
                _ => false,
            },
            State::Str { key } => match b {
                b'"' => {
                    if key {
                        self.state = State::Colon;
                    } else {
                        self.after_value();
                    }
                    true
                }
                b'\\' => {
                    self.state = State::Escape { key };
                    true
                }
                // Raw control characters are not allowed in strings; any
                // other byte (UTF-8 included, which tokens may split) is.
                _ => b >= 0x20,
            },
            State::Escape { key } => {
                self.state = match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => State::Str { key },
                    b'u' => State::Unicode { key, left: 4 },
                    _ => return false,
                };
                true
            }
            State::Unicode { key, left } => {
                if !b.is_ascii_hexdigit() {
                    return false;
                }
                self.state = if left == 1 {
                    State::Str { key }
                } else {
                    State::Unicode {
                        key,
                        left: left - 1,
                    }
                };
                true
            }
            State::Literal(rest) => match rest.split_first() {
                Some((&want, tail)) if want == b => {
                    if tail.is_empty() {
                        self.after_value();
                    } else {
                        self.state = State::Literal(tail);
                    }
                    true
                }
                _ => false,
            },
            State::Number(n) => {
                let next = match (n, b) {
                    (Num::Minus, b'0') => Some(Num::Zero),
                    (Num::Minus, b'1'..=b'9') => Some(Num::Int),
                    (Num::Int, b'0'..=b'9') => Some(Num::Int),
                    (Num::Zero | Num::Int, b'.') => Some(Num::Dot),
                    (Num::Dot | Num::Frac, b'0'..=b'9') => Some(Num::Frac),
                    (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Some(Num::Exp),
                    (Num::Exp, b'+' | b'-') => Some(Num::ExpSign),
                    (Num::Exp | Num::ExpSign | Num::ExpDigits, b'0'..=b'9') => Some(Num::ExpDigits),
                    _ => None,
                };
                match next {
                    Some(n) => {
                        self.state = State::Number(n);
                        true
                    }
                    // The number ends here; the byte belongs to what follows.
                    None if n.complete() => {
                        self.after_value();
                        self.push(b)
                    }
                    None => false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix_ok(s: &str) -> bool {
        JsonPrefix::default().push_all(s.as_bytes())
    }

    fn complete(s: &str) -> bool {
        let mut j = JsonPrefix::default();
        j.push_all(s.as_bytes()) && j.is_complete()
    }

    #[test]
    fn whole_objects_complete() {
        for s in [
            "{}",
            " {\"a\": 1}",
            "{\"a\":[1,2.5,-0.1e+3,true,false,null,{\"b\":\"c\\n\\u00e9\"}]}",
            "{\"é\": \"日本\"}",
            "{\"a\" : { } , \"b\" : [ ] }",
        ] {
            assert!(complete(s), "{s}");
        }
    }

    #[test]
    fn prefixes_are_accepted_but_not_complete() {
        for s in [
            "",
            " ",
            "{",
            "{\"a",
            "{\"a\":",
            "{\"a\": -",
            "{\"a\": 1.",
            "{\"a\": tr",
            "{\"a\": [1,",
        ] {
            assert!(prefix_ok(s), "{s}");
            assert!(!complete(s), "{s}");
        }
    }

    #[test]
    fn invalid_bytes_are_refused() {
        for s in [
            "[1]",
            "\"x\"",
            "{a",
            "{\"a\" 1",
            "{\"a\":01",
            "{\"a\":1.}",
            "{\"a\":tru}",
            "{\"a\":1,}",
            "{\"a\":[1,]}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":1]",
            "{}x",
            "{}}",
        ] {
            assert!(!complete(s) && !prefix_ok(s), "{s}");
        }
    }

    #[test]
    fn a_number_ends_at_the_byte_after_it() {
        assert!(complete("{\"n\":12}"));
        assert!(complete("{\"n\":[0,1e5]}"));
        assert!(!prefix_ok("{\"n\":-}"));
    }

    #[test]
    fn accepts_does_not_move_the_state() {
        let j = JsonPrefix::default();
        assert!(j.accepts(b"{\"k\""));
        assert!(!j.accepts(b""));
        assert!(!j.accepts(b"x"));
        assert!(j.accepts(b"{"));
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("{{\"a\":{}", "[".repeat(MAX_DEPTH));
        assert!(!prefix_ok(&deep));
    }
}
