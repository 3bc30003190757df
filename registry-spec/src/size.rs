//! Byte sizes and transfer rates as settings and flags write them: `64MiB`, `50M`, `50MB/s`; one rule for the daemon and the CLI.

/// Parses a byte size: `67108864`, `64MiB`, `64M`, `1GiB`, `512k` (binary
/// units); `None` when it is not one or is zero.
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult).filter(|n| *n > 0)
}

/// Parses a rate in bytes per second: a size with an optional `/s`
/// (`52428800`, `50M`, `50MB/s`, `50MiB/s`, `512k`); `None` when it is not
/// one or is zero.
pub fn parse_rate(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v
        .strip_suffix("/s")
        .or_else(|| v.strip_suffix("/S"))
        .unwrap_or(v);
    parse_size(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn sizes_and_rates() {
        assert_eq!(parse_size("64MiB"), Some(64 * MB));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_rate("50M"), Some(50 * MB));
        assert_eq!(parse_rate("50MB/s"), Some(50 * MB));
        assert_eq!(parse_rate("50MiB/s"), Some(50 * MB));
        assert_eq!(parse_rate("512k"), Some(512 * 1024));
        assert_eq!(parse_rate("1000"), Some(1000));
        assert_eq!(parse_rate(" 2G "), Some(2 << 30));
        for bad in ["", "0", "fast", "50 M/h", "-5M", "50M/m"] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }
}
