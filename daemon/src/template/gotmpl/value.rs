//! Values a Go template sees, and how Go prints, compares and JSON-encodes them.
//!
//! Ollama hands its templates Go structs (`api.Message`, `api.Tool`, …) and
//! maps; [`TValue::Struct`] keeps both the Go field names that templates use
//! (`.Function.Name`) and the JSON names their `String()` methods print, so
//! `{{ .Function }}` renders the same JSON as Ollama does.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Deref;
use std::sync::Arc;

/// A value inside a template evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum TValue {
    /// Go's untyped `nil` (a missing map key under `missingkey=zero`).
    Nil,
    /// `bool`.
    Bool(bool),
    /// Any Go integer.
    Int(i64),
    /// `float64`.
    Float(f64),
    /// `string`.
    Str(String),
    /// A slice.
    List(TList),
    /// `map[string]any`; Go ranges and JSON-encodes it in sorted key order.
    Map(BTreeMap<String, TValue>),
    /// A Go struct: ordered fields, accessed by Go name, printed as JSON.
    Struct(Vec<StructField>),
}

/// A Go slice: shared storage plus a window, so `slice` and copies are
/// O(1) — templates slice `.Messages` once per message to find the last one.
#[derive(Debug, Clone, Default)]
pub struct TList {
    items: Arc<[TValue]>,
    start: usize,
    end: usize,
}

impl TList {
    /// The sub-slice `[lo, hi)`; callers check the bounds.
    pub(crate) fn slice(&self, lo: usize, hi: usize) -> TList {
        let hi = hi.min(self.len());
        let lo = lo.min(hi);
        TList {
            items: Arc::clone(&self.items),
            start: self.start + lo,
            end: self.start + hi,
        }
    }
}

impl Deref for TList {
    type Target = [TValue];

    fn deref(&self) -> &[TValue] {
        self.items.get(self.start..self.end).unwrap_or_default()
    }
}

impl PartialEq for TList {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl From<Vec<TValue>> for TList {
    fn from(v: Vec<TValue>) -> Self {
        let end = v.len();
        TList {
            items: v.into(),
            start: 0,
            end,
        }
    }
}

impl FromIterator<TValue> for TList {
    fn from_iter<I: IntoIterator<Item = TValue>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<_>>().into()
    }
}

/// One field of a [`TValue::Struct`].
#[derive(Debug, Clone, PartialEq)]
pub struct StructField {
    /// The Go field name templates use (`Name`).
    pub go: &'static str,
    /// The JSON key its `String()`/`json` output uses (`name`).
    pub json: &'static str,
    /// `omitempty`: left out of JSON when the value is Go-empty.
    pub omit_empty: bool,
    /// The value.
    pub value: TValue,
}

impl StructField {
    /// A field that always appears in JSON.
    pub fn new(go: &'static str, json: &'static str, value: TValue) -> Self {
        Self {
            go,
            json,
            omit_empty: false,
            value,
        }
    }

    /// A field tagged `omitempty`.
    pub fn omit_empty(go: &'static str, json: &'static str, value: TValue) -> Self {
        Self {
            go,
            json,
            omit_empty: true,
            value,
        }
    }
}

impl From<&str> for TValue {
    fn from(s: &str) -> Self {
        TValue::Str(s.to_owned())
    }
}

impl From<String> for TValue {
    fn from(s: String) -> Self {
        TValue::Str(s)
    }
}

impl From<bool> for TValue {
    fn from(b: bool) -> Self {
        TValue::Bool(b)
    }
}

impl From<i64> for TValue {
    fn from(i: i64) -> Self {
        TValue::Int(i)
    }
}

impl From<&serde_json::Value> for TValue {
    /// JSON objects become maps (Go decodes them into `map[string]any`).
    fn from(v: &serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => TValue::Nil,
            serde_json::Value::Bool(b) => TValue::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => TValue::Int(i),
                None => TValue::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => TValue::Str(s.clone()),
            serde_json::Value::Array(a) => TValue::List(a.iter().map(TValue::from).collect()),
            serde_json::Value::Object(o) => TValue::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), TValue::from(v)))
                    .collect(),
            ),
        }
    }
}

impl TValue {
    /// Go template truthiness: false, 0, nil and empty string/slice/map are false.
    pub fn truthy(&self) -> bool {
        match self {
            TValue::Nil => false,
            TValue::Bool(b) => *b,
            TValue::Int(i) => *i != 0,
            TValue::Float(f) => *f != 0.0,
            TValue::Str(s) => !s.is_empty(),
            TValue::List(l) => !l.is_empty(),
            TValue::Map(m) => !m.is_empty(),
            // A struct value is always "non-empty" to Go.
            TValue::Struct(_) => true,
        }
    }

    /// The Go type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            TValue::Nil => "nil",
            TValue::Bool(_) => "bool",
            TValue::Int(_) => "int",
            TValue::Float(_) => "float64",
            TValue::Str(_) => "string",
            TValue::List(_) => "slice",
            TValue::Map(_) => "map",
            TValue::Struct(_) => "struct",
        }
    }

    /// Writes the value the way `{{ . }}` prints it (`fmt.Print` plus
    /// Ollama's `String()` methods, which print tools and arguments as JSON).
    pub fn print_to(&self, out: &mut String) {
        match self {
            TValue::Nil => out.push_str("<no value>"),
            TValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            TValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            TValue::Float(f) => out.push_str(&go_float(*f)),
            TValue::Str(s) => out.push_str(s),
            TValue::List(items) => {
                // Ollama's `templateTools` prints as JSON; plain slices print
                // Go-style as `[a b c]`.
                if !items.is_empty() && items.iter().all(|v| matches!(v, TValue::Struct(_))) {
                    self.json_to(out);
                    return;
                }
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.print_to(out);
                }
                out.push(']');
            }
            TValue::Map(_) | TValue::Struct(_) => self.json_to(out),
        }
    }

    /// The printed form as a new string.
    pub fn to_print_string(&self) -> String {
        let mut s = String::new();
        self.print_to(&mut s);
        s
    }

    /// Writes Go `json.Marshal` output, HTML escaping included.
    pub fn json_to(&self, out: &mut String) {
        match self {
            TValue::Nil => out.push_str("null"),
            TValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            TValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            TValue::Float(f) => {
                if f.is_finite() {
                    out.push_str(&go_float(*f));
                } else {
                    // Go's encoder fails here; null keeps the output valid JSON.
                    out.push_str("null");
                }
            }
            TValue::Str(s) => json_string(s, out),
            TValue::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.json_to(out);
                }
                out.push(']');
            }
            TValue::Map(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(k, out);
                    out.push(':');
                    v.json_to(out);
                }
                out.push('}');
            }
            TValue::Struct(fields) => {
                out.push('{');
                let mut first = true;
                for f in fields {
                    if f.omit_empty && !f.value.truthy() {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    json_string(f.json, out);
                    out.push(':');
                    f.value.json_to(out);
                }
                out.push('}');
            }
        }
    }
}

/// Go's `json.Marshal` string encoding: `<`, `>`, `&`, U+2028 and U+2029 are
/// escaped so the output is safe inside HTML, as Ollama's prompts then contain.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats a float like Go's `%v` (`strconv.FormatFloat(f, 'g', -1, 64)` with
/// exponents only for very large or small magnitudes).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        // Rust prints `1e21`; Go prints `1e+21`.
        let s = format!("{f:e}");
        return match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
            Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
            None => s,
        };
    }
    format!("{f}")
}
