//! Rendering an error with its causes on one line, for logs and for the
//! messages clients read; every layer uses it, so it lives below them all.

/// `error: cause: cause`, the way the CLI prints it.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
