//! The typed `PARAMETER` table: which parameter names exist, the type of
//! each, and [`Parameters`], the validated set a model carries in its
//! `application/vnd.ollama.image.params` layer.
//!
//! The names and types follow the `Options`/`Runner` structs of Ollama's
//! `api/types.go`. A value is parsed from Modelfile text the way Ollama's
//! `api.FormatParams` does it (Go's `strconv`): integers are base-10 with an
//! optional sign, floats are decimal (with an optional exponent), and
//! booleans are `1 t T TRUE true True 0 f F FALSE false False`. Unlike
//! Ollama, a float must be finite, because the params layer is JSON.
//!
//! `stop` is the only parameter with several values: each Modelfile
//! `PARAMETER stop …` line adds one, and in JSON it is always an array.

use std::fmt;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

pub use table::{param_kind, param_spec, ParamKind, ParamSpec, ParamStatus, PARAMS, PARAM_NAMES};

mod table;
#[cfg(test)]
mod tests;

/// One typed parameter value. Serializes as a plain JSON number, boolean or
/// string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// An integer.
    Int(i64),
    /// A finite float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string (one `stop` sequence).
    Str(String),
}

impl ParamValue {
    /// The kind of this value.
    pub fn kind(&self) -> ParamKind {
        match self {
            ParamValue::Int(_) => ParamKind::Int,
            ParamValue::Float(_) => ParamKind::Float,
            ParamValue::Bool(_) => ParamKind::Bool,
            ParamValue::Str(_) => ParamKind::String,
        }
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ParamValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as a float, if this is an integer or a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(x) => Some(*x),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ParamValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            ParamValue::Int(i) => Value::from(*i),
            ParamValue::Float(x) => Value::from(*x),
            ParamValue::Bool(b) => Value::Bool(*b),
            ParamValue::Str(s) => Value::String(s.clone()),
        }
    }
}

/// Prints the value as `/api/show` does (Go's `%#v`): numbers and booleans
/// bare, strings quoted as Go's `strconv.Quote` does ([`crate::quote`]).
impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Str(s) => crate::quote::write_go_quote(f, s),
        }
    }
}

/// Why a parameter name or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The name is not in the PARAMETER table.
    #[error("unknown parameter `{}`{}", shorten(.name), unknown_hint(.name))]
    Unknown {
        /// The name as given.
        name: String,
    },
    /// The value does not have the parameter's type.
    #[error("invalid value `{}` for parameter `{name}`: expected {}", shorten(.value), .expected.describe())]
    Type {
        /// The parameter.
        name: String,
        /// The type it needs.
        expected: ParamKind,
        /// The value as given (Modelfile text, or compact JSON).
        value: String,
    },
}

/// Cuts long user input so an error message stays one readable line.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 48;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

/// "; did you mean `x`?" for a near miss, else the list of current names.
fn unknown_hint(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let best = PARAMS
        .iter()
        .map(|spec| (edit_distance(&lower, spec.name), spec.name))
        .min_by_key(|(distance, _)| *distance);
    match best {
        Some((distance, candidate)) if distance <= 2 => {
            format!("; did you mean `{candidate}`?")
        }
        _ => {
            let current: Vec<&str> = PARAMS
                .iter()
                .filter(|spec| spec.status == ParamStatus::Current)
                .map(|spec| spec.name)
                .collect();
            format!("; expected one of: {}", current.join(", "))
        }
    }
}

/// Levenshtein distance, for "did you mean" hints (inputs are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().take(64).enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            let delete = prev[j + 1] + 1;
            let insert = row[j] + 1;
            row.push(substitute.min(delete).min(insert));
        }
        prev = row;
    }
    prev[b.len()]
}

fn type_error(name: &str, expected: ParamKind, value: impl Into<String>) -> ParamError {
    ParamError::Type {
        name: name.to_string(),
        expected,
        value: value.into(),
    }
}

fn lookup(name: &str) -> Result<&'static ParamSpec, ParamError> {
    param_spec(name).ok_or_else(|| ParamError::Unknown {
        name: name.to_string(),
    })
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_text(spec: &ParamSpec, text: &str) -> Result<ParamValue, ParamError> {
    let fail = || type_error(spec.name, spec.kind, text);
    match spec.kind {
        ParamKind::Int => text.parse::<i64>().map(ParamValue::Int).map_err(|_| fail()),
        ParamKind::Float => match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(ParamValue::Float(x)),
            _ => Err(fail()),
        },
        ParamKind::Bool => parse_go_bool(text).map(ParamValue::Bool).ok_or_else(fail),
        ParamKind::String => Ok(ParamValue::Str(text.to_string())),
    }
}

/// Parses `text` as a value of parameter `name`, exactly as written: no
/// quotes are removed and no whitespace is trimmed. Returns the canonical
/// name with the value.
pub fn parse_value(name: &str, text: &str) -> Result<(&'static str, ParamValue), ParamError> {
    let spec = lookup(name)?;
    Ok((spec.name, parse_text(spec, text)?))
}

/// Checks `value` against parameter `spec`, converting between integers and
/// floats where no precision is lost (`3` for a float, `3.0` for an int).
fn coerce(spec: &ParamSpec, value: ParamValue) -> Result<ParamValue, ParamError> {
    match (spec.kind, value) {
        (ParamKind::Int, ParamValue::Int(i)) => Ok(ParamValue::Int(i)),
        (ParamKind::Int, ParamValue::Float(x)) => float_to_int(x)
            .map(ParamValue::Int)
            .ok_or_else(|| type_error(spec.name, spec.kind, x.to_string())),
        (ParamKind::Float, ParamValue::Float(x)) if x.is_finite() => Ok(ParamValue::Float(x)),
        (ParamKind::Float, ParamValue::Int(i)) => Ok(ParamValue::Float(i as f64)),
        (ParamKind::Bool, ParamValue::Bool(b)) => Ok(ParamValue::Bool(b)),
        (ParamKind::String, ParamValue::Str(s)) => Ok(ParamValue::Str(s)),
        (_, ParamValue::Str(s)) => parse_text(spec, &s),
        (kind, other) => Err(type_error(spec.name, kind, other.to_string())),
    }
}

/// `x` as an `i64` if it is a whole number in range.
fn float_to_int(x: f64) -> Option<i64> {
    // 2^63 is exactly representable; every whole f64 below it fits in i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if x.is_finite() && x.fract() == 0.0 && (-LIMIT..LIMIT).contains(&x) {
        Some(x as i64)
    } else {
        None
    }
}

/// Ollama's `unquote`: strips one pair of surrounding `"""` or `"`, with no
/// escape processing.
fn strip_quotes(raw: &str) -> &str {
    let s = raw.trim();
    if s.len() >= 6 && s.starts_with("\"\"\"") && s.ends_with("\"\"\"") {
        &s[3..s.len() - 3]
    } else if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// What a parameter name holds: one value, or (for `stop`) a list.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    One(ParamValue),
    /// Every element is a [`ParamValue::Str`].
    Stop(Vec<ParamValue>),
}

/// A validated set of parameters: an ordered map from name to typed value,
/// where `stop` holds a list of strings.
///
/// Names keep the order in which they were first inserted; replacing a value
/// keeps its place. Serialization (the params layer) writes the keys sorted,
/// so equal sets always give identical bytes:
/// `{"stop":["a","b"],"temperature":0.7}`. Equality ignores order.
#[derive(Debug, Clone, Default)]
pub struct Parameters {
    entries: Vec<(&'static str, Slot)>,
}

impl PartialEq for Parameters {
    fn eq(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .all(|(name, slot)| other.slot(name) == Some(slot))
    }
}

impl Parameters {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no parameter is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many names are set (`stop` counts once).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn slot(&self, name: &str) -> Option<&Slot> {
        self.entries
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, slot)| slot)
    }

    fn slot_mut(&mut self, name: &'static str) -> Option<&mut Slot> {
        self.entries
            .iter_mut()
            .find(|(n, _)| *n == name)
            .map(|(_, slot)| slot)
    }

    /// Sets a single-valued parameter, or appends to `stop`.
    fn put(&mut self, name: &'static str, value: ParamValue) {
        if name == "stop" {
            match self.slot_mut(name) {
                Some(Slot::Stop(list)) => list.push(value),
                Some(slot) => *slot = Slot::Stop(vec![value]),
                None => self.entries.push((name, Slot::Stop(vec![value]))),
            }
        } else {
            match self.slot_mut(name) {
                Some(slot) => *slot = Slot::One(value),
                None => self.entries.push((name, Slot::One(value))),
            }
        }
    }

    /// Sets `stop` to exactly `list` (every element a string).
    fn put_stop_list(&mut self, list: Vec<ParamValue>) {
        match self.slot_mut("stop") {
            Some(slot) => *slot = Slot::Stop(list),
            None => self.entries.push(("stop", Slot::Stop(list))),
        }
    }

    /// Parses a Modelfile-style value and sets it: `"42"` for an int,
    /// `"0.7"` for a float, `"true"`/`"false"` for a bool, any text for
    /// `stop`. One pair of surrounding `"` or `"""` is removed first (without
    /// escape processing, like Ollama), and the text is trimmed. A `stop`
    /// value is appended to the list; any other value replaces the old one.
    pub fn insert_raw(&mut self, name: &str, raw: &str) -> Result<(), ParamError> {
        let spec = lookup(name)?;
        let value = parse_text(spec, strip_quotes(raw))?;
        self.put(spec.name, value);
        Ok(())
    }

    /// Sets an already typed value, checking it against the table. An int
    /// is accepted for a float, a whole float for an int, and a string is
    /// parsed as in [`insert_raw`](Self::insert_raw) (without quote
    /// removal). A `stop` value is appended to the list.
    pub fn insert(&mut self, name: &str, value: ParamValue) -> Result<(), ParamError> {
        let spec = lookup(name)?;
        let value = coerce(spec, value)?;
        self.put(spec.name, value);
        Ok(())
    }

    /// Sets a value from the JSON of `/api/create`'s `parameters` or of a
    /// params layer. Numbers, booleans and strings are checked as in
    /// [`insert`](Self::insert) (so `3.0` is fine for an int, `3.5` is not);
    /// `stop` takes a string or an array of strings and replaces the whole
    /// list; `null` removes the parameter.
    pub fn insert_json(&mut self, name: &str, value: &Value) -> Result<(), ParamError> {
        let spec = lookup(name)?;
        let fail = || type_error(spec.name, spec.kind, value.to_string());
        let typed = match value {
            Value::Null => {
                self.remove(spec.name);
                return Ok(());
            }
            Value::Array(items) if spec.kind == ParamKind::String => {
                let list = items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(ParamValue::Str(s.clone())),
                        other => Err(type_error(spec.name, spec.kind, other.to_string())),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.put_stop_list(list);
                return Ok(());
            }
            Value::Array(_) | Value::Object(_) => return Err(fail()),
            Value::Bool(b) => ParamValue::Bool(*b),
            Value::String(s) => ParamValue::Str(s.clone()),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    ParamValue::Int(i)
                } else if n.is_u64() {
                    // Above i64::MAX: fine as a float, never as an int.
                    match n.as_f64() {
                        Some(x) if spec.kind == ParamKind::Float => ParamValue::Float(x),
                        _ => return Err(fail()),
                    }
                } else {
                    ParamValue::Float(n.as_f64().ok_or_else(fail)?)
                }
            }
        };
        let typed = coerce(spec, typed).map_err(|_| fail())?;
        if spec.kind == ParamKind::String {
            self.put_stop_list(vec![typed]);
        } else {
            self.put(spec.name, typed);
        }
        Ok(())
    }

    /// Builds a set from a JSON object, refusing unknown names and values of
    /// the wrong type.
    pub fn from_json(object: &Map<String, Value>) -> Result<Self, ParamError> {
        let mut params = Self::new();
        for (name, value) in object {
            params.insert_json(name, value)?;
        }
        Ok(params)
    }

    /// Builds a set from a JSON object, skipping (and returning) the entries
    /// that [`from_json`](Self::from_json) would refuse. For params layers
    /// written by other tools, where one odd key should not make a model
    /// unusable.
    pub fn from_json_lossy(object: &Map<String, Value>) -> (Self, Vec<ParamError>) {
        let mut params = Self::new();
        let mut skipped = Vec::new();
        for (name, value) in object {
            if let Err(err) = params.insert_json(name, value) {
                skipped.push(err);
            }
        }
        (params, skipped)
    }

    /// The JSON object of the params layer: keys sorted, `stop` always an
    /// array.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut object = Map::new();
        for (name, slot) in self.sorted() {
            object.insert(name.to_string(), slot_json(slot));
        }
        object
    }

    fn sorted(&self) -> Vec<(&'static str, &Slot)> {
        let mut sorted: Vec<_> = self.entries.iter().map(|(n, s)| (*n, s)).collect();
        sorted.sort_by_key(|(name, _)| *name);
        sorted
    }

    /// The value of a single-valued parameter (`None` for `stop`: see
    /// [`stop`](Self::stop)).
    pub fn get(&self, name: &str) -> Option<&ParamValue> {
        match self.slot(name)? {
            Slot::One(value) => Some(value),
            Slot::Stop(_) => None,
        }
    }

    /// The stop sequences, in order (empty if none are set).
    pub fn stop(&self) -> Vec<&str> {
        match self.slot("stop") {
            Some(Slot::Stop(list)) => list.iter().filter_map(ParamValue::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether `name` is set.
    pub fn contains(&self, name: &str) -> bool {
        self.slot(name).is_some()
    }

    /// Unsets `name`; returns whether it was set.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| *n != name);
        self.entries.len() != before
    }

    /// Keeps only the names for which `keep` returns true (for example, to
    /// drop [`ParamStatus::Deprecated`] ones).
    pub fn retain(&mut self, mut keep: impl FnMut(&'static ParamSpec) -> bool) {
        self.entries
            .retain(|(name, _)| param_spec(name).is_some_and(&mut keep));
    }

    /// The set names, in insertion order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|(name, _)| *name)
    }

    /// Every value in insertion order, one item per Modelfile `PARAMETER`
    /// line: each stop sequence is its own `("stop", Str)` item.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &ParamValue)> + '_ {
        self.entries.iter().flat_map(|(name, slot)| {
            let values: &[ParamValue] = match slot {
                Slot::One(value) => std::slice::from_ref(value),
                Slot::Stop(list) => list,
            };
            values.iter().map(move |value| (*name, value))
        })
    }

    /// Overrides this set with `other`: every name set in `other` replaces
    /// the value here, and a `stop` list in `other` replaces the whole list.
    /// This is how a new Modelfile's parameters apply over its base model's.
    pub fn merge(&mut self, other: &Parameters) {
        for (name, slot) in &other.entries {
            match self.slot_mut(name) {
                Some(mine) => *mine = slot.clone(),
                None => self.entries.push((name, slot.clone())),
            }
        }
    }

    /// The lines of `/api/show`'s `parameters` field, as Ollama formats
    /// them: the name padded to 30 columns, a space, then the value (strings
    /// quoted); each stop sequence on its own line.
    pub fn to_modelfile_lines(&self) -> Vec<String> {
        self.iter()
            .map(|(name, value)| format!("{name:<30} {value}"))
            .collect()
    }
}

fn slot_json(slot: &Slot) -> Value {
    match slot {
        Slot::One(value) => value.to_json(),
        Slot::Stop(list) => Value::Array(list.iter().map(ParamValue::to_json).collect()),
    }
}

/// [`to_modelfile_lines`](Parameters::to_modelfile_lines) joined with `\n`
/// (no trailing newline), as in `/api/show`.
impl fmt::Display for Parameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.to_modelfile_lines().iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(line)?;
        }
        Ok(())
    }
}

impl Serialize for Parameters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sorted = self.sorted();
        let mut map = serializer.serialize_map(Some(sorted.len()))?;
        for (name, slot) in sorted {
            match slot {
                Slot::One(value) => map.serialize_entry(name, value)?,
                Slot::Stop(list) => map.serialize_entry(name, list)?,
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Parameters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = Map::<String, Value>::deserialize(deserializer)?;
        Parameters::from_json(&object).map_err(D::Error::custom)
    }
}

impl TryFrom<&Map<String, Value>> for Parameters {
    type Error = ParamError;

    fn try_from(object: &Map<String, Value>) -> Result<Self, Self::Error> {
        Parameters::from_json(object)
    }
}
