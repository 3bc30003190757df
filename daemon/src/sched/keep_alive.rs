//! `keep_alive`: how long a model stays loaded after its last request, read
//! the way Ollama reads it (its `api.Duration` and `OLLAMA_KEEP_ALIVE`).
//!
//! A number is seconds; a string is a Go duration (`"10m"`, `"1h30m"`,
//! `"1.5s"`, `"0"`); zero unloads as soon as the request ends; anything
//! negative keeps the model loaded until the daemon stops. A string of digits
//! alone (`"300"`) is also taken as seconds, as `OLLAMA_KEEP_ALIVE` takes it.

use std::time::Duration;

/// How long an idle runner stays loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// This long after its last request ends (zero: unload right away).
    For(Duration),
    /// Until the daemon stops or the model is unloaded explicitly.
    Forever,
}

/// The default when neither the request nor the configuration says.
pub const DEFAULT: KeepAlive = KeepAlive::For(Duration::from_secs(300));

/// A `keep_alive` that is neither a number nor a duration.
#[derive(Debug, thiserror::Error)]
#[error("invalid keep_alive `{0}`: use a duration such as \"5m\", \"1h30m\" or \"10s\", a number of seconds, 0 to unload, or a negative value to keep the model loaded")]
pub struct KeepAliveError(pub String);

impl KeepAlive {
    /// Whether the model is unloaded as soon as its requests end.
    pub fn is_zero(self) -> bool {
        self == KeepAlive::For(Duration::ZERO)
    }

    /// From a number of seconds (fractions allowed; negative: forever).
    pub fn from_seconds(secs: f64) -> Result<KeepAlive, KeepAliveError> {
        if secs.is_nan() {
            return Err(KeepAliveError(secs.to_string()));
        }
        if secs < 0.0 {
            return Ok(KeepAlive::Forever);
        }
        // Past what a Duration holds is forever for any practical purpose.
        Ok(Duration::try_from_secs_f64(secs).map_or(KeepAlive::Forever, KeepAlive::For))
    }

    /// From a setting or a request string: a Go duration or whole seconds.
    pub fn parse(text: &str) -> Result<KeepAlive, KeepAliveError> {
        let t = text.trim();
        if let Some((negative, d)) = parse_go_duration(t) {
            return Ok(if negative && !d.is_zero() {
                KeepAlive::Forever
            } else {
                KeepAlive::For(d)
            });
        }
        match t.parse::<i64>() {
            Ok(n) if n < 0 => Ok(KeepAlive::Forever),
            Ok(n) => Ok(KeepAlive::For(Duration::from_secs(n.unsigned_abs()))),
            Err(_) => Err(KeepAliveError(text.to_owned())),
        }
    }

    /// From a request's `keep_alive` JSON value; `null` is `None` (the default applies).
    pub fn from_json(v: &serde_json::Value) -> Result<Option<KeepAlive>, KeepAliveError> {
        match v {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| KeepAliveError(n.to_string()))
                .and_then(KeepAlive::from_seconds)
                .map(Some),
            serde_json::Value::String(s) => KeepAlive::parse(s).map(Some),
            other => Err(KeepAliveError(other.to_string())),
        }
    }
}

/// Go's `time.ParseDuration`: `[-+]` then one or more `<decimal><unit>`
/// (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), or a bare `0`. Returns the sign
/// and the magnitude; `None` when it is not a duration or overflows.
pub fn parse_go_duration(s: &str) -> Option<(bool, Duration)> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some((negative, Duration::ZERO));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let nanos_per: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        let value: f64 = num.parse().ok()?;
        let nanos = value * nanos_per;
        if !nanos.is_finite() || nanos >= u64::MAX as f64 {
            return None;
        }
        total = total.checked_add(Duration::from_nanos(nanos.round() as u64))?;
        rest = tail;
    }
    Some((negative, total))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn secs(n: u64) -> KeepAlive {
        KeepAlive::For(Duration::from_secs(n))
    }

    #[test]
    fn go_durations() {
        let p = |s| parse_go_duration(s).map(|(neg, d)| (neg, d.as_secs_f64()));
        assert_eq!(p("10m"), Some((false, 600.0)));
        assert_eq!(p("1h30m"), Some((false, 5400.0)));
        assert_eq!(p("1.5s"), Some((false, 1.5)));
        assert_eq!(p(".5h"), Some((false, 1800.0)));
        assert_eq!(p("250ms"), Some((false, 0.25)));
        assert_eq!(p("-1m"), Some((true, 60.0)));
        assert_eq!(p("0"), Some((false, 0.0)));
        assert_eq!(p("+2h"), Some((false, 7200.0)));
        for bad in [
            "",
            "10",
            "5 m",
            "1d",
            "m",
            "1..2s",
            "-",
            "1h 30m",
            "99999999999999h",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ollama_forms() {
        let j = |v: serde_json::Value| KeepAlive::from_json(&v).unwrap();
        assert_eq!(j(json!(null)), None);
        assert_eq!(j(json!(0)), Some(secs(0)));
        assert_eq!(j(json!("0")), Some(secs(0)));
        assert_eq!(j(json!("0s")), Some(secs(0)));
        assert_eq!(j(json!(30)), Some(secs(30)));
        assert_eq!(
            j(json!(1.5)),
            Some(KeepAlive::For(Duration::from_millis(1500)))
        );
        assert_eq!(j(json!("1s")), Some(secs(1)));
        assert_eq!(j(json!("10m")), Some(secs(600)));
        assert_eq!(j(json!("1h30m")), Some(secs(5400)));
        assert_eq!(j(json!("300")), Some(secs(300)));
        assert_eq!(j(json!(-1)), Some(KeepAlive::Forever));
        assert_eq!(j(json!("-1")), Some(KeepAlive::Forever));
        assert_eq!(j(json!("-1m")), Some(KeepAlive::Forever));
        assert_eq!(j(json!(1e300)), Some(KeepAlive::Forever));
        for bad in [json!("soon"), json!(true), json!([1]), json!("5 minutes")] {
            let e = KeepAlive::from_json(&bad).unwrap_err().to_string();
            assert!(e.contains("keep_alive"), "{e}");
        }
        assert!(secs(0).is_zero() && !secs(1).is_zero() && !KeepAlive::Forever.is_zero());
    }

    #[test]
    fn settings() {
        assert_eq!(KeepAlive::parse("5m").unwrap(), DEFAULT);
        assert_eq!(KeepAlive::parse(" 24h ").unwrap(), secs(86400));
        assert_eq!(KeepAlive::parse("-1").unwrap(), KeepAlive::Forever);
        assert!(KeepAlive::parse("forever").is_err());
    }
}
