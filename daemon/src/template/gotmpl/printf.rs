//! Go's `fmt.Sprintf` for the template function `printf`: the verbs and flags Ollama's templates use, Go's `%!verb(...)` markers for the rest.

use std::fmt::Write as _;

use super::value::{go_float, TValue};

/// A `fmt.Sprintf` subset: flags `-+0 `, width, precision, and the verbs
/// `%s %v %d %q %t %f %g %e %x %X %c %%`; malformed input prints Go's
/// `%!verb(...)` markers instead of failing. Stops growing at `cap` bytes.
pub(super) fn sprintf(fmt: &str, args: &[TValue], cap: usize) -> String {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if out.len() > cap {
            break;
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width: Option<usize> = None;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = Some(
                width
                    .unwrap_or(0)
                    .saturating_mul(10)
                    .saturating_add(d as usize)
                    .min(cap),
            );
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            prec = Some(0);
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                prec = Some(
                    prec.unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add(d as usize)
                        .min(1000),
                );
                chars.next();
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        let bad = |arg: &TValue| format!("%!{verb}({}={})", arg.type_name(), arg.to_print_string());
        let body = match (verb, arg) {
            ('v' | 's', TValue::Str(s)) => match prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('v', v) => v.to_print_string(),
            ('s', v @ (TValue::List(_) | TValue::Map(_) | TValue::Struct(_))) => {
                v.to_print_string()
            }
            ('q', TValue::Str(s)) => llmpm_spec::quote::go_quote(s),
            ('q', TValue::Int(i)) => match u32::try_from(*i).ok().and_then(char::from_u32) {
                Some(ch) => format!("'{ch}'"),
                None => bad(arg),
            },
            ('t', TValue::Bool(b)) => b.to_string(),
            ('d', TValue::Int(i)) => {
                let sign = if *i >= 0 && plus {
                    "+"
                } else if *i >= 0 && space {
                    " "
                } else {
                    ""
                };
                format!("{sign}{i}")
            }
            ('c', TValue::Int(i)) => u32::try_from(*i)
                .ok()
                .and_then(char::from_u32)
                .map_or_else(|| bad(arg), String::from),
            ('x', TValue::Int(i)) => format!("{i:x}"),
            ('X', TValue::Int(i)) => format!("{i:X}"),
            ('x', TValue::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('f' | 'F', TValue::Float(f)) => format!("{f:.*}", prec.unwrap_or(6)),
            ('f' | 'F', TValue::Int(_)) => bad(arg),
            ('e', TValue::Float(f)) => go_float_exp(*f, prec.unwrap_or(6)),
            ('g', TValue::Float(f)) => go_float(*f),
            _ => bad(arg),
        };
        let n = body.chars().count();
        let w = width.unwrap_or(0);
        if n < w {
            let pad = w - n;
            if minus {
                out.push_str(&body);
                out.extend(std::iter::repeat_n(' ', pad));
            } else if zero && matches!(verb, 'd' | 'f' | 'x' | 'X' | 'e') {
                let (sign, digits) = match body.strip_prefix(['-', '+']) {
                    Some(d) => (&body[..1], d),
                    None => ("", body.as_str()),
                };
                out.push_str(sign);
                out.extend(std::iter::repeat_n('0', pad));
                out.push_str(digits);
            } else {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
    }
    if next < args.len() && out.len() <= cap {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[next..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}={}", a.type_name(), a.to_print_string());
        }
        out.push(')');
    }
    out
}

fn go_float_exp(f: f64, prec: usize) -> String {
    let s = format!("{f:.prec$e}");
    match s.split_once('e') {
        Some((m, e)) if e.starts_with('-') => format!("{m}e-{:0>2}", &e[1..]),
        Some((m, e)) => format!("{m}e+{e:0>2}"),
        None => s,
    }
}
