//! Tests of Go's `strconv.Quote`: each expected string is what Go prints.

use super::*;

#[test]
fn quotes_as_go_does() {
    // Each pair: the input and `strconv.Quote` of it in Go.
    let cases = [
        ("", r#""""#),
        ("plain text", r#""plain text""#),
        ("say \"hi\" \\ bye", r#""say \"hi\" \\ bye""#),
        ("\u{7}\u{8}\u{c}\n\r\t\u{b}", r#""\a\b\f\n\r\t\v""#),
        ("\0\u{1}\u{1b}\u{1f}\u{7f}", r#""\x00\x01\x1b\x1f\x7f""#),
        // C1 controls are above U+007F: `\u`, not `\x`.
        ("\u{80}\u{9f}", r#""\u0080\u009f""#),
        // Printable Unicode is kept: letters, marks, symbols, emoji.
        ("héllo 世界 e\u{301} € 😀", "\"héllo 世界 e\u{301} € 😀\""),
        // Separators other than the ASCII space, and format characters.
        ("a\u{a0}b\u{3000}c", r#""a\u00a0b\u3000c""#),
        (
            "\u{200b}\u{feff}\u{2028}\u{2029}\u{ad}",
            r#""\u200b\ufeff\u2028\u2029\u00ad""#,
        ),
        // Private use and unassigned code points.
        ("\u{e000}\u{fdd0}\u{ffff}", r#""\ue000\ufdd0\uffff""#),
        // Above U+FFFF: `\U` with eight digits.
        (
            "\u{e0001}\u{10ffff}\u{f0000}",
            r#""\U000e0001\U0010ffff\U000f0000""#,
        ),
        ("x\u{1d400}y", "\"x\u{1d400}y\""),
    ];
    for (input, want) in cases {
        assert_eq!(go_quote(input), want, "{input:?}");
    }
}

#[test]
fn writes_into_a_formatter() {
    struct Q<'a>(&'a str);
    impl fmt::Display for Q<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_go_quote(f, self.0)
        }
    }
    assert_eq!(Q("a\tb").to_string(), r#""a\tb""#);
}

#[test]
fn printable_follows_go() {
    for c in [' ', 'a', '~', 'é', '世', '\u{301}', '€', '😀', '\u{fffd}'] {
        assert!(is_print(c), "{c:?}");
    }
    for c in [
        '\0',
        '\n',
        '\u{7f}',
        '\u{85}',
        '\u{a0}',
        '\u{200b}',
        '\u{e000}',
        '\u{10ffff}',
    ] {
        assert!(!is_print(c), "{c:?}");
    }
    // Every control and every whitespace but the space is escaped, whatever
    // Unicode version std is at (those sets do not move).
    for c in (0..=0x10_ffffu32).filter_map(char::from_u32) {
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            assert!(!is_print(c), "{c:?}");
        }
    }
}

#[test]
fn table_is_sorted_and_disjoint() {
    let t = not_printable::NOT_PRINTABLE;
    for w in t.windows(2) {
        assert!(w[0].0 <= w[0].1 && w[0].1 + 1 < w[1].0, "{w:x?}");
    }
}
