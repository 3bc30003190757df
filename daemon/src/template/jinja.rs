//! The GGUF's Jinja `tokenizer.chat_template`, rendered the way Hugging Face
//! `transformers` does (`apply_chat_template`), in a sandboxed engine.
//!
//! minijinja has no file or network access; on top of that every render is
//! bounded by fuel (instructions and allocated data), a recursion limit and
//! an output cap. The environment mirrors transformers'
//! `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)`
//! with loop controls, `raise_exception`, `strftime_now`, Python-style
//! `tojson` and Python string/dict methods (minijinja-contrib `pycompat`),
//! which Llama 3.x, Qwen 2.5 and Gemma 3 templates use.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, State};

use super::{ChatMessage, RenderOptions, TemplateError};

mod infer;

const NAME: &str = "chat_template";
/// Prefix marking errors raised by the template itself.
const RAISED: &str = "raise_exception: ";

/// Bounds on one render.
#[derive(Debug, Clone, Copy)]
pub struct JinjaLimits {
    /// minijinja fuel: roughly instructions, and 64 bytes of data per unit.
    pub fuel: u64,
    /// Output bytes.
    pub max_output: usize,
    /// Nesting of loops, ifs and macro calls.
    pub recursion: usize,
}

impl Default for JinjaLimits {
    fn default() -> Self {
        Self {
            fuel: 1_000_000,
            max_output: 4 << 20,
            recursion: 200,
        }
    }
}

/// A compiled Jinja chat template.
#[derive(Debug)]
pub struct JinjaTemplate {
    src: String,
    env: Environment<'static>,
    limits: JinjaLimits,
}

impl JinjaTemplate {
    /// Compiles `src` with the default limits.
    pub fn new(src: &str) -> Result<Self, TemplateError> {
        Self::with_limits(src, JinjaLimits::default())
    }

    /// Compiles `src` with the given limits.
    pub fn with_limits(src: &str, limits: JinjaLimits) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        let mut syntax = minijinja::syntax::SyntaxConfig::builder();
        syntax.trim_blocks(true).lstrip_blocks(true);
        env.set_syntax(syntax.build().map_err(TemplateError::JinjaSyntax)?);
        env.set_fuel(Some(limits.fuel));
        env.set_recursion_limit(limits.recursion);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, src.to_owned())
            .map_err(TemplateError::JinjaSyntax)?;
        Ok(Self {
            src: src.to_owned(),
            env,
            limits,
        })
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// Renders a conversation.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
    ) -> Result<String, TemplateError> {
        self.render_with_tools(messages, None, add_generation_prompt, bos, eos)
    }

    /// Renders a conversation with a `tools` array (OpenAI/Ollama shape).
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
    ) -> Result<String, TemplateError> {
        self.render_with(
            messages,
            &RenderOptions {
                tools: tools.cloned(),
                think: None,
            },
            add_generation_prompt,
            bos,
            eos,
        )
    }

    /// Renders a conversation with the request's `tools` and `think`, as
    /// Ollama hands them to llama.cpp's Jinja: `tools`, and when `think` is
    /// set `enable_thinking` (and `reasoning_effort` for a named level).
    pub fn render_with(
        &self,
        messages: &[ChatMessage],
        opts: &RenderOptions,
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
    ) -> Result<String, TemplateError> {
        let tools = opts.tools.as_ref();
        let mut ctx = BTreeMap::new();
        if let Some(think) = opts.think {
            ctx.insert("enable_thinking".to_owned(), Value::from(think.enabled()));
            if let Some(level) = think.named_level() {
                ctx.insert("reasoning_effort".to_owned(), Value::from(level.as_str()));
            }
        }
        ctx.insert(
            "messages".to_owned(),
            Value::from(messages.iter().map(message_value).collect::<Vec<_>>()),
        );
        // transformers passes `tools=None` and `documents=None` explicitly,
        // so `tools is not none` is false rather than undefined.
        ctx.insert(
            "tools".to_owned(),
            tools.map_or(Value::from(()), json_value),
        );
        ctx.insert("documents".to_owned(), Value::from(()));
        ctx.insert(
            "add_generation_prompt".to_owned(),
            Value::from(add_generation_prompt),
        );
        ctx.insert("bos_token".to_owned(), Value::from(bos));
        ctx.insert("eos_token".to_owned(), Value::from(eos));
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(TemplateError::JinjaRender)?;
        let mut w = CappedWriter {
            buf: Vec::new(),
            cap: self.limits.max_output,
            overflow: false,
        };
        let res = tmpl.render_captured_to(Value::from(ctx), &mut w);
        if w.overflow {
            return Err(TemplateError::OutputLimit(self.limits.max_output));
        }
        match res {
            Ok(_) => Ok(String::from_utf8_lossy(&w.buf).into_owned()),
            Err(e) => Err(map_error(e, &self.limits)),
        }
    }
}

fn map_error(e: Error, limits: &JinjaLimits) -> TemplateError {
    if e.kind() == ErrorKind::OutOfFuel {
        return TemplateError::StepLimit(limits.fuel);
    }
    if e.detail()
        .is_some_and(|d| d.contains("recursion limit exceeded"))
    {
        return TemplateError::DepthLimit(limits.recursion);
    }
    if let Some(msg) = e.detail().and_then(|d| d.strip_prefix(RAISED)) {
        return TemplateError::JinjaRaised(msg.to_owned());
    }
    TemplateError::JinjaRender(e)
}

/// Refuses writes past the cap, which aborts the render.
struct CappedWriter {
    buf: Vec<u8>,
    cap: usize,
    overflow: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            self.overflow = true;
            return Err(io::Error::other("output limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A message as transformers passes it: `role`, `content`, and the
/// tool fields only when set, so `message.tool_calls is defined` works.
fn message_value(m: &ChatMessage) -> Value {
    let mut map = BTreeMap::new();
    map.insert("role".to_owned(), Value::from(m.role.as_str()));
    map.insert("content".to_owned(), Value::from(m.content.as_str()));
    if !m.thinking.is_empty() {
        map.insert(
            "reasoning_content".to_owned(),
            Value::from(m.thinking.as_str()),
        );
    }
    if !m.tool_calls.is_empty() {
        let calls = m
            .tool_calls
            .iter()
            .map(|c| {
                // OpenAI clients send arguments as a JSON string; templates
                // expect a mapping (`tool_call.arguments | tojson`).
                let mut c = c.clone();
                if let Some(args) = c.pointer_mut("/function/arguments") {
                    if let Some(parsed) = args.as_str().and_then(|s| serde_json::from_str(s).ok()) {
                        *args = parsed;
                    }
                }
                json_value(&c)
            })
            .collect::<Vec<_>>();
        map.insert("tool_calls".to_owned(), Value::from(calls));
    }
    if !m.tool_name.is_empty() {
        map.insert("name".to_owned(), Value::from(m.tool_name.as_str()));
    }
    if !m.tool_call_id.is_empty() {
        map.insert(
            "tool_call_id".to_owned(),
            Value::from(m.tool_call_id.as_str()),
        );
    }
    Value::from(map)
}

fn json_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => Value::from(a.iter().map(json_value).collect::<Vec<_>>()),
        // In the order given, as Python's dicts keep it (`tools | tojson`
        // prints a tool as the client wrote it, `name` before `parameters`).
        serde_json::Value::Object(o) => Value::from(
            o.iter()
                .map(|(k, v)| (Value::from(k.as_str()), json_value(v)))
                .collect::<indexmap::IndexMap<_, _>>(),
        ),
    }
}

fn raise_exception(msg: String) -> Result<Value, Error> {
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("{RAISED}{msg}"),
    ))
}

/// Python's `time.strftime` for the common directives, in UTC.
fn strftime_now(fmt: String) -> String {
    strftime(&fmt, super::unix_now())
}

pub(crate) fn strftime(fmt: &str, secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = (secs / 86_400) as i64;
    let tod = secs % 86_400;
    let (y, m, d) = super::civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let wd = (days + 3).rem_euclid(7) as usize;
    let month = MONTHS[(m as usize).saturating_sub(1) % 12];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match chars.next() {
            Some('d') => write!(out, "{d:02}"),
            Some('-') => match chars.next() {
                Some('d') => write!(out, "{d}"),
                Some('m') => write!(out, "{m}"),
                Some(o) => write!(out, "%-{o}"),
                None => write!(out, "%-"),
            },
            Some('m') => write!(out, "{m:02}"),
            Some('Y') => write!(out, "{y:04}"),
            Some('y') => write!(out, "{:02}", y.rem_euclid(100)),
            Some('b') => write!(out, "{}", &month[..3]),
            Some('B') => write!(out, "{month}"),
            Some('a') => write!(out, "{}", &DAYS[wd][..3]),
            Some('A') => write!(out, "{}", DAYS[wd]),
            Some('H') => write!(out, "{:02}", tod / 3600),
            Some('M') => write!(out, "{:02}", tod / 60 % 60),
            Some('S') => write!(out, "{:02}", tod % 60),
            Some('j') => {
                let (jan1, _, _) = (y, 1, 1);
                let start = days_from_civil(jan1, 1, 1);
                write!(out, "{:03}", days - start + 1)
            }
            Some('%') => write!(out, "%"),
            Some(o) => write!(out, "%{o}"),
            None => write!(out, "%"),
        };
    }
    out
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent)`
/// — `", "`/`": "` separators, no HTML escaping (minijinja's own filter
/// escapes `<`, `>`, `&` and `'`, which would change the prompt).
fn tojson(
    state: &State,
    value: Value,
    indent: Option<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let indent = match indent {
        Some(v) => Some(v),
        None => kwargs.get::<Option<Value>>("indent")?,
    };
    let indent = match indent {
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => Some(usize::try_from(v)?.min(64)),
        None => None,
    };
    // Accepted for compatibility; output is always `ensure_ascii=False`
    // with the default separators, and keys come sorted.
    for unused in ["ensure_ascii", "separators", "sort_keys"] {
        let _: Option<Value> = kwargs.get(unused)?;
    }
    kwargs.assert_all_used()?;
    let mut out = String::new();
    py_json(&value, indent, 0, &mut out)?;
    state.consume_fuel((out.len() / 64) as u64)?;
    Ok(Value::from(out))
}

fn py_json(v: &Value, indent: Option<usize>, level: usize, out: &mut String) -> Result<(), Error> {
    use minijinja::value::ValueKind;
    if level > 128 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "tojson: value nested too deeply",
        ));
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => match v.as_i64() {
            Some(i) => {
                let _ = write!(out, "{i}");
            }
            None => {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                if f.is_finite() {
                    // Python's repr keeps a `.0` on whole floats.
                    if f.fract() == 0.0 && f.abs() < 1e16 {
                        let _ = write!(out, "{f:.1}");
                    } else {
                        let _ = write!(out, "{f}");
                    }
                } else {
                    out.push_str(if f.is_nan() {
                        "NaN"
                    } else if f > 0.0 {
                        "Infinity"
                    } else {
                        "-Infinity"
                    });
                }
            }
        },
        ValueKind::String => py_json_str(v.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                py_json(item, indent, level + 1, out)?;
            }
            newline(out, level);
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                match k.as_str() {
                    Some(s) => py_json_str(s, out),
                    None => py_json_str(&k.to_string(), out),
                }
                out.push_str(": ");
                py_json(&v.get_item(k)?, indent, level + 1, out)?;
            }
            newline(out, level);
            out.push('}');
        }
        _ => py_json_str(&v.to_string(), out),
    }
    Ok(())
}

fn py_json_str(s: &str, out: &mut String) {
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
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
