//! Tests of the `LLMPM_HOST` rule.

#![allow(clippy::unwrap_used)]

use super::*;

fn tcp(value: &str) -> HostPort {
    match value.parse::<HostSpec>() {
        Ok(HostSpec::Tcp(t)) => t,
        other => panic!("{value:?}: {other:?}"),
    }
}

#[test]
fn forms_ollama_accepts() {
    let a = |v: &str| tcp(v).authority();
    assert_eq!(a(""), "127.0.0.1:11434");
    assert_eq!(a(":9000"), "127.0.0.1:9000");
    assert_eq!(a("10.0.0.2"), "10.0.0.2:11434");
    assert_eq!(a("10.0.0.2:"), "10.0.0.2:11434");
    assert_eq!(a("0.0.0.0:0"), "0.0.0.0:0");
    assert_eq!(a("http://127.0.0.1:5/"), "127.0.0.1:5");
    assert_eq!(a("http://"), "127.0.0.1:11434");
    assert_eq!(a("[::1]:7"), "[::1]:7");
    assert_eq!(a("[::1]"), "[::1]:11434");
    assert_eq!(a("::1"), "[::1]:11434");
    assert_eq!(a("example.com"), "example.com:11434");
    assert_eq!(a("localhost:8080"), "localhost:8080");
    // Blanks and quotes around the value are dropped, as Ollama drops them.
    assert_eq!(a("  \"127.0.0.1:6\" "), "127.0.0.1:6");
    assert_eq!(a("'localhost'"), "localhost:11434");
    // A scheme without a port keeps the daemon's port (not 80 or 443).
    assert_eq!(a("http://10.0.0.2"), "10.0.0.2:11434");
    let t = tcp("https://h:1");
    assert!(t.https);
    assert_eq!((t.host.as_str(), t.port), ("h", 1));
    assert!(!tcp("http://h").https);
    assert_eq!(tcp("").ip(), Some(IpAddr::from([127, 0, 0, 1])));
    assert_eq!(tcp("name").ip(), None);
    assert_eq!(tcp("").to_string(), "127.0.0.1:11434");
    assert_eq!(tcp(""), HostPort::default());
}

#[test]
fn none_turns_tcp_off() {
    for v in ["none", "NONE", "off", " Off ", "\"none\""] {
        assert_eq!(v.parse::<HostSpec>(), Ok(HostSpec::Off), "{v}");
    }
}

#[test]
fn refused_forms_say_why() {
    let e = |v: &str| v.parse::<HostSpec>().unwrap_err();
    assert_eq!(e("127.0.0.1:99999"), HostError::Port);
    assert_eq!(e("127.0.0.1:-1"), HostError::Port);
    assert_eq!(e("h:port"), HostError::Port);
    assert_eq!(e("[::1"), HostError::Bracket);
    assert_eq!(e("[::1]x"), HostError::AfterBracket);
    assert_eq!(e("[::1]7"), HostError::AfterBracket);
    assert_eq!(e("a/b"), HostError::HostChar);
    assert_eq!(e("a b"), HostError::HostChar);
    assert_eq!(e("user@h"), HostError::HostChar);
    assert_eq!(e("::1]"), HostError::HostChar);
    assert_eq!(e("ftp://h"), HostError::Scheme);
    assert_eq!(e("HTTP://h"), HostError::Scheme);
    assert_eq!(e("[::1"), HostError::Bracket);
    assert_eq!(
        HostError::Bracket.to_string(),
        "an IPv6 address needs a closing `]`"
    );
}

#[test]
fn display_parses_back() {
    for v in ["none", "", ":1", "[::1]:2", "https://h", "example.com:0"] {
        let spec: HostSpec = v.parse().unwrap();
        assert_eq!(
            spec.to_string().parse::<HostSpec>(),
            Ok(spec.clone()),
            "{v}"
        );
    }
    assert_eq!(
        "::1".parse::<HostSpec>().unwrap().to_string(),
        "http://[::1]:11434"
    );
}
