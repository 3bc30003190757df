//! Text for people: byte sizes, relative times and aligned tables, as `ollama` prints them.

use std::time::{Duration, SystemTime};

/// A byte count in decimal units, as `ollama list` shows it: `512 B`,
/// `1.2 GB`, `15 GB`, `120 MB` (one decimal below 10, none above).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000_000, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ];
    for (size, unit) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            // Ollama's rule: a decimal only when it shows, and only below 10.
            // Rounding first keeps 9.96 GB from printing as `10.0 GB`.
            let rounded = (value * 10.0).round() / 10.0;
            return if rounded >= 10.0 || rounded.fract() == 0.0 {
                format!("{} {unit}", value.round() as u64)
            } else {
                format!("{rounded:.1} {unit}")
            };
        }
    }
    format!("{bytes} B")
}

/// A duration as `ollama` words it: `Less than a second`, `About a minute`,
/// `5 hours`, `3 weeks`.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    match seconds {
        0 => return "Less than a second".to_owned(),
        1 => return "1 second".to_owned(),
        2..=59 => return format!("{seconds} seconds"),
        _ => {}
    }
    let minutes = seconds / 60;
    match minutes {
        1 => return "About a minute".to_owned(),
        2..=59 => return format!("{minutes} minutes"),
        _ => {}
    }
    let hours = (d.as_secs_f64() / 3600.0).round() as u64;
    match hours {
        0 | 1 => "About an hour".to_owned(),
        2..=47 => format!("{hours} hours"),
        48..=335 => format!("{} days", hours / 24),
        336..=1439 => format!("{} weeks", hours / 24 / 7),
        1440..=17519 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

/// How long ago `then` was, relative to `now`: `2 minutes ago`; a time in the
/// future (a clock skew) reads `… from now`.
pub fn human_since(then: SystemTime, now: SystemTime) -> String {
    match now.duration_since(then) {
        Ok(d) => format!("{} ago", human_duration(d)),
        Err(e) => format!("{} from now", human_duration(e.duration())),
    }
}

/// An RFC 3339 time (as the daemon sends it) relative to `now`; the raw text
/// if it does not parse.
pub fn human_rfc3339(text: &str, now: SystemTime) -> String {
    match humantime::parse_rfc3339_weak(text) {
        Ok(t) => human_since(t, now),
        Err(_) => text.to_owned(),
    }
}

/// Rows under a header, each column padded to its widest cell and separated
/// by `gap` spaces; trailing spaces are trimmed.
pub fn table(header: &[&str], rows: &[Vec<String>], gap: usize) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count()) + gap;
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `one` for a count of 1, else `many`.
pub fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// The short ID of a digest: its first 12 hex digits (with or without `sha256:`).
pub fn short_id(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.get(..12).unwrap_or(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_000), "1 KB");
        assert_eq!(human_bytes(1_500), "1.5 KB");
        assert_eq!(human_bytes(1_234_567_890), "1.2 GB");
        assert_eq!(human_bytes(4_661_224_676), "4.7 GB");
        assert_eq!(human_bytes(9_960_000_000), "10 GB");
        assert_eq!(human_bytes(15_400_000_000), "15 GB");
        assert_eq!(human_bytes(120_000_000), "120 MB");
        assert_eq!(human_bytes(2_000_000_000_000), "2 TB");
    }

    #[test]
    fn durations() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(42)), "42 seconds");
        assert_eq!(human_duration(s(60)), "About a minute");
        assert_eq!(human_duration(s(119)), "About a minute");
        assert_eq!(human_duration(s(120)), "2 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
        assert_eq!(human_duration(s(21 * 86400)), "3 weeks");
        assert_eq!(human_duration(s(90 * 86400)), "3 months");
        assert_eq!(human_duration(s(800 * 86400)), "2 years");
    }

    #[test]
    fn relative_times() {
        let now =
            humantime::parse_rfc3339("2024-05-01T12:00:00Z").unwrap_or(SystemTime::UNIX_EPOCH);
        assert_eq!(
            human_rfc3339("2024-05-01T11:57:59.123456Z", now),
            "2 minutes ago"
        );
        assert_eq!(
            human_rfc3339("2024-05-01T11:59:59.9Z", now),
            "Less than a second ago"
        );
        assert_eq!(
            human_rfc3339("2024-05-01T12:01:30Z", now),
            "About a minute from now"
        );
        assert_eq!(human_rfc3339("yesterday", now), "yesterday");
    }

    #[test]
    fn tables() {
        let t = table(
            &["NAME", "ID"],
            &[
                vec!["a:latest".into(), "0123".into()],
                vec!["bb".into(), "".into()],
            ],
            3,
        );
        assert_eq!(t, "NAME       ID\na:latest   0123\nbb\n");
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
    }
}
