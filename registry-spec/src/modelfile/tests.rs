//! Tests of the Modelfile parser and printer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const LLAMA3: &str = r#"# Modelfile for a Llama 3 assistant
FROM llama3:8b-instruct-q4_K_M

TEMPLATE """{{ if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>{{ end }}{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>

{{ .Prompt }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>

{{ .Response }}<|eot_id|>"""
PARAMETER stop "<|start_header_id|>"
PARAMETER stop "<|end_header_id|>"
PARAMETER stop <|eot_id|>
PARAMETER temperature 0.7
PARAMETER num_ctx 8192
PARAMETER use_mmap true
SYSTEM You are a helpful assistant who answers in one sentence.
LICENSE """META LLAMA 3 COMMUNITY LICENSE AGREEMENT
Meta Llama 3 Version Release Date: April 18, 2024
"Agreement" means the terms and conditions for use.
"""
MESSAGE user Is the sky blue?
MESSAGE assistant """Yes: "blue" is the usual answer."""
REQUIRES 0.5.0
"#;

fn err(text: &str) -> (usize, usize, String) {
    let e = Modelfile::parse(text).unwrap_err();
    (e.line, e.column, e.to_string())
}

#[test]
fn full_example() {
    let mf = Modelfile::parse(LLAMA3).unwrap();
    assert_eq!(mf.commands.len(), 13);
    assert_eq!(mf.from(), Some("llama3:8b-instruct-q4_K_M"));
    let template = mf.template().unwrap();
    assert!(template.starts_with("{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n"));
    assert!(template.ends_with("{{ .Response }}<|eot_id|>"));
    assert_eq!(
        mf.system(),
        Some("You are a helpful assistant who answers in one sentence.")
    );
    assert_eq!(
            mf.licenses(),
            vec![
                "META LLAMA 3 COMMUNITY LICENSE AGREEMENT\nMeta Llama 3 Version Release Date: April 18, 2024\n\"Agreement\" means the terms and conditions for use.\n"
            ]
        );
    assert_eq!(
        mf.messages(),
        vec![
            (Role::User, "Is the sky blue?"),
            (Role::Assistant, "Yes: \"blue\" is the usual answer.")
        ]
    );
    assert_eq!(mf.requires(), Some("0.5.0"));
    assert!(mf.adapters().is_empty());
    let params = mf.parameters();
    assert_eq!(
        params.stop(),
        vec!["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    );
    assert_eq!(params.get("temperature"), Some(&ParamValue::Float(0.7)));
    assert_eq!(params.get("num_ctx"), Some(&ParamValue::Int(8192)));
    assert_eq!(params.get("use_mmap"), Some(&ParamValue::Bool(true)));
    assert_eq!(
        serde_json::to_string(&params).unwrap(),
        r#"{"num_ctx":8192,"stop":["<|start_header_id|>","<|end_header_id|>","<|eot_id|>"],"temperature":0.7,"use_mmap":true}"#
    );
    assert_eq!(
        mf.commands[2],
        Command::Parameter {
            name: "stop".into(),
            value: ParamValue::Str("<|start_header_id|>".into())
        }
    );
}

#[test]
fn round_trip() {
    let mf = Modelfile::parse(LLAMA3).unwrap();
    let printed = mf.to_string();
    assert_eq!(Modelfile::parse(&printed).unwrap(), mf);
    // Printing is canonical: a second round prints the same text.
    assert_eq!(Modelfile::parse(&printed).unwrap().to_string(), printed);
    assert!(printed.contains("TEMPLATE \"\"\"{{ if .System }}"));
    assert!(printed.contains("PARAMETER stop \"<|eot_id|>\"\n"));
    assert!(printed.contains("PARAMETER temperature 0.7\n"));
    assert!(printed.contains("SYSTEM You are a helpful assistant"));
    assert!(printed.contains("MESSAGE assistant \"\"\"Yes: \"blue\" is the usual answer.\"\"\"\n"));
}

#[test]
fn tricky_values_round_trip() {
    let tricky = [
        "",
        " leading",
        "trailing ",
        "\"starts with a quote",
        "ends with a quote\"",
        "a \"\"\" in the middle",
        "ends with \"\"\"",
        "block end \"\"\"\nthen more",
        "block end \"\"\"  \r\nthen more",
        "back\\slash\\",
        "\\\"",
        "\n",
        "\r",
        "\"",
        "\"\"\"",
        "tab\tinside",
        "# not a comment",
        "unicode ✓ 日本語 \u{2028}",
    ];
    for s in tricky {
        let mut commands = vec![Command::From("base".into())];
        commands.push(Command::System(s.into()));
        commands.push(Command::Template(s.into()));
        commands.push(Command::License(s.into()));
        commands.push(Command::Message {
            role: Role::User,
            content: s.into(),
        });
        commands.push(Command::Parameter {
            name: "stop".into(),
            value: ParamValue::Str(s.into()),
        });
        if !s.is_empty() {
            commands.push(Command::From(s.into()));
            commands.push(Command::Adapter(s.into()));
        }
        let mf = Modelfile { commands };
        let printed = mf.to_string();
        assert_eq!(Modelfile::parse(&printed).unwrap(), mf, "{printed:?}");
    }
}

#[test]
fn instructions_are_case_insensitive() {
    let mf = Modelfile::parse("from base\nParameter Temperature 1\nsYsTeM hi\n").unwrap();
    assert_eq!(
        mf.commands,
        vec![
            Command::From("base".into()),
            Command::Parameter {
                name: "temperature".into(),
                value: ParamValue::Float(1.0)
            },
            Command::System("hi".into()),
        ]
    );
}

#[test]
fn comments_blank_lines_and_line_endings() {
    let text = "\u{feff}# top\r\n\r\n   # indented comment\r\nFROM base   \r\n\t\nSYSTEM \"\"\"a\r\nb\"\"\"\r\nLICENSE # not a comment\rADAPTER ./lora.gguf";
    let mf = Modelfile::parse(text).unwrap();
    assert_eq!(
        mf.commands,
        vec![
            Command::From("base".into()),
            Command::System("a\r\nb".into()),
            Command::License("# not a comment".into()),
            Command::Adapter("./lora.gguf".into()),
        ]
    );
}

#[test]
fn quoting_rules() {
    let parse1 = |arg: &str| -> String {
        let mf = Modelfile::parse(&format!("FROM x\nSYSTEM {arg}\n")).unwrap();
        mf.system().unwrap().to_string()
    };
    assert_eq!(parse1("  bare words  "), "bare words");
    assert_eq!(parse1("\"  padded  \""), "  padded  ");
    assert_eq!(parse1(r#""say \"hi\" \\ \n""#), r#"say "hi" \ \n"#);
    // Ollama's rule: a quote closes only at the end of a line.
    assert_eq!(parse1(r#""He said "hi"""#), r#"He said "hi""#);
    assert_eq!(parse1("\"two\nlines\""), "two\nlines");
    assert_eq!(parse1("\"\""), "");
    assert_eq!(parse1("\"\"\"\"\"\""), "");
    assert_eq!(parse1("\"'\""), "'");
    assert_eq!(
        parse1(r#""""''"'""'""'"'''''""'""'""""#),
        r#"''"'""'""'"'''''""'""'"#
    );
    assert_eq!(parse1("\"\"\"\nmulti\nline\n\"\"\"   "), "\nmulti\nline\n");
    assert_eq!(parse1("\"\"\"a \"\"\" b\nc\"\"\""), "a \"\"\" b\nc");
    assert_eq!(parse1("it's \"fine\""), "it's \"fine\"");
}

#[test]
fn message_roles() {
    let mf = Modelfile::parse("FROM x\nMESSAGE system be brief\nMESSAGE user hi\nMESSAGE assistant \"\"\"hello\nthere\"\"\"").unwrap();
    assert_eq!(
        mf.messages(),
        vec![
            (Role::System, "be brief"),
            (Role::User, "hi"),
            (Role::Assistant, "hello\nthere")
        ]
    );
    assert_eq!(
        serde_json::to_string(&Role::Assistant).unwrap(),
        "\"assistant\""
    );
}

#[test]
fn requires_versions() {
    for (text, want) in [
        ("0.14.0", "0.14.0"),
        ("v0.14.0", "0.14.0"),
        ("1", "1"),
        ("1.2", "1.2"),
        ("1.2.3-rc.1+build.5", "1.2.3-rc.1+build.5"),
    ] {
        let mf = Modelfile::parse(&format!("FROM x\nREQUIRES {text}")).unwrap();
        assert_eq!(mf.requires(), Some(want), "{text}");
    }
    for bad in [
        "latest", "1.2.3.4", "01.2.3", "1.2-rc1", "1.2.3-", "1.2.3-01", "v",
    ] {
        assert_eq!(
                err(&format!("FROM x\nREQUIRES {bad}")),
                (
                    2,
                    10,
                    format!("2:10: invalid version `{bad}` for `REQUIRES`: expected a semantic version such as `0.14.0`")
                ),
                "{bad}"
            );
    }
}

#[test]
fn ollama_extensions_are_accepted() {
    let mf = Modelfile::parse(
        "FROM x\nFROM ./mmproj.gguf\nDRAFT ./draft\nRENDERER qwen3-coder\nPARSER qwen3-coder\n",
    )
    .unwrap();
    assert_eq!(mf.froms(), vec!["x", "./mmproj.gguf"]);
    assert_eq!(mf.from(), Some("./mmproj.gguf"));
    assert_eq!(mf.draft(), Some("./draft"));
    assert_eq!(mf.renderer(), Some("qwen3-coder"));
    assert_eq!(mf.parser(), Some("qwen3-coder"));
}

#[test]
fn error_unknown_instruction() {
    assert_eq!(
            err("FROM x\n  BADCOMMAND param1 value1\n"),
            (
                2,
                3,
                "2:3: unknown instruction `BADCOMMAND`: expected one of FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER, LICENSE, MESSAGE, REQUIRES, DRAFT, RENDERER, PARSER".into()
            )
        );
    assert_eq!(err("FROM: x").0, 1);
    assert_eq!(err("SYSTEM\"hi\"\nFROM x").1, 1);
}

#[test]
fn error_unknown_parameter() {
    assert_eq!(
        err("FROM x\nPARAMETER temprature 0.7\n"),
        (
            2,
            11,
            "2:11: unknown parameter `temprature`; did you mean `temperature`?".into()
        )
    );
}

#[test]
fn error_wrong_type() {
    assert_eq!(
        err("FROM x\nPARAMETER num_ctx abc\n"),
        (
            2,
            19,
            "2:19: invalid value `abc` for parameter `num_ctx`: expected an integer".into()
        )
    );
    assert_eq!(
            err("FROM x\nPARAMETER use_mmap \"yes\"").2,
            "2:20: invalid value `yes` for parameter `use_mmap`: expected a boolean (`true` or `false`)"
        );
    assert_eq!(
        err("FROM x\nPARAMETER temperature 0.7 # warm").2,
        "2:23: invalid value `0.7 # warm` for parameter `temperature`: expected a number"
    );
}

#[test]
fn error_missing_value() {
    assert_eq!(
        err("FROM x\nPARAMETER num_ctx   \n"),
        (
            2,
            21,
            "2:21: missing value for parameter `num_ctx`: expected an integer".into()
        )
    );
}

#[test]
fn error_unterminated_block() {
    assert_eq!(
        err("FROM x\nTEMPLATE \"\"\"{{ .Prompt }}\n\nno end here\"\"\" x\n"),
        (
            2,
            10,
            "2:10: unterminated `\"\"\"`: expected a closing `\"\"\"` at the end of a line".into()
        )
    );
    assert_eq!(
        err("FROM x\nSYSTEM \"\"\"This is a multiline system.\"\"\n").0,
        2
    );
    assert_eq!(
        err("FROM x\nSYSTEM   \"open").2,
        "2:10: unterminated `\"`: expected a closing `\"` at the end of a line"
    );
    assert_eq!(err("FROM x\nSYSTEM \"ends with escape\\\"").1, 8);
}

#[test]
fn error_bad_role() {
    assert_eq!(
        err("FROM x\nMESSAGE badguy I'm a bad guy!\n"),
        (
            2,
            9,
            "2:9: invalid message role `badguy`: expected `system`, `user` or `assistant`".into()
        )
    );
    assert_eq!(err("FROM x\nMESSAGE User hi").1, 9);
    assert_eq!(
        err("FROM x\nMESSAGE user   ").2,
        "2:16: missing argument to `MESSAGE`: expected the message text after the role"
    );
}

#[test]
fn error_missing_from() {
    let expected = (
        1,
        1,
        "1:1: no FROM line: expected a `FROM <model or path>` instruction".to_string(),
    );
    assert_eq!(err(""), expected);
    assert_eq!(err("# only a comment\n"), expected);
    assert_eq!(err("PARAMETER seed 1\nSYSTEM hi"), expected);
    assert_eq!(
        Modelfile::parse("PARAMETER seed 1\nFROM foo")
            .unwrap()
            .from(),
        Some("foo")
    );
}

#[test]
fn error_empty_argument() {
    assert_eq!(
        err("FROM x\nSYSTEM\nTEMPLATE hi"),
        (
            2,
            7,
            "2:7: missing argument to `SYSTEM`: expected a system prompt".into()
        )
    );
    assert_eq!(
        err("FROM \t "),
        (
            1,
            8,
            "1:8: missing argument to `FROM`: expected a model name or a path to model weights"
                .into()
        )
    );
    assert_eq!(err("FROM \"\"").1, 6);
    assert_eq!(err("FROM x\nPARAMETER").1, 10);
    // An explicitly empty prompt is allowed.
    assert_eq!(
        Modelfile::parse("FROM x\nSYSTEM \"\"").unwrap().system(),
        Some("")
    );
}

#[test]
fn columns_count_characters() {
    assert_eq!(err("FROM ✓\n日本 x").1, 1);
    assert_eq!(err("FROM ✓\nPARAMETER seed ✓✓").1, 16);
}

/// xorshift64*: a tiny deterministic PRNG, so the fuzz run is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const PIECES: &[&str] = &[
    "FROM ",
    "from ",
    "PARAMETER ",
    "TEMPLATE ",
    "SYSTEM ",
    "ADAPTER ",
    "LICENSE ",
    "MESSAGE ",
    "REQUIRES ",
    "DRAFT ",
    "RENDERER ",
    "PARSER ",
    "stop ",
    "num_ctx ",
    "temperature ",
    "use_mmap ",
    "user ",
    "assistant ",
    "system ",
    "\"",
    "\"\"\"",
    "\\",
    "\\\"",
    "#",
    "\n",
    "\r\n",
    "\r",
    " ",
    "\t",
    "x",
    "42",
    "0.7",
    "true",
    "-",
    "é",
    "✓",
    "\u{feff}",
    "\u{2028}",
    "\u{0}",
    "v1.2.3",
    "{{ .Prompt }}",
];

fn check(text: &str) {
    match Modelfile::parse(text) {
        Ok(mf) => {
            let printed = mf.to_string();
            let again = Modelfile::parse(&printed)
                .unwrap_or_else(|e| panic!("reprint of {text:?} fails: {e}\n{printed:?}"));
            assert_eq!(again, mf, "input {text:?}, printed {printed:?}");
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1);
            let lines = text.chars().filter(|c| is_newline(*c)).count() + 1;
            assert!(e.line <= lines, "{e} for {text:?}");
            assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn fuzz_never_panics_and_round_trips() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Random bytes, made valid UTF-8 lossily.
    for _ in 0..3000 {
        let len = rng.below(64);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check(&String::from_utf8_lossy(&bytes));
    }
    // Random sequences of Modelfile-shaped pieces.
    for _ in 0..20000 {
        let n = rng.below(24);
        let text: String = (0..n).map(|_| rng.pick(PIECES)).collect();
        check(&text);
        check(&format!("FROM x\n{text}"));
    }
    // Mutations of a real Modelfile.
    let base: Vec<char> = LLAMA3.chars().collect();
    for _ in 0..3000 {
        let mut chars = base.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(chars.len() + 1);
            match rng.below(4) {
                0 if at < chars.len() => {
                    let end = (at + rng.below(20)).min(chars.len());
                    chars.drain(at..end);
                }
                1 => {
                    let piece = rng.pick(PIECES);
                    for (i, c) in piece.chars().enumerate() {
                        chars.insert(at + i, c);
                    }
                }
                2 if at < chars.len() => {
                    chars[at] = char::from(rng.next() as u8);
                }
                _ => {
                    let from = rng.below(chars.len());
                    let end = (from + rng.below(30)).min(chars.len());
                    let copy: Vec<char> = chars[from..end].to_vec();
                    for (i, c) in copy.into_iter().enumerate() {
                        chars.insert(at.min(chars.len()) + i, c);
                    }
                }
            }
        }
        check(&chars.into_iter().collect::<String>());
    }
}

#[test]
fn fuzz_generated_modelfiles_round_trip() {
    let mut rng = Rng(42);
    let atoms = [
        "a", " ", "\"", "\"\"\"", "\\", "\n", "\r", "\t", "#", "✓", "x y", "\u{2028}",
    ];
    let text = |rng: &mut Rng| -> String {
        let n = rng.below(8);
        (0..n).map(|_| rng.pick(&atoms)).collect()
    };
    for _ in 0..5000 {
        let mut commands = vec![Command::From(format!("m{}", text(&mut rng)))];
        for _ in 0..rng.below(6) {
            let s = text(&mut rng);
            commands.push(match rng.below(8) {
                0 => Command::Template(s),
                1 => Command::System(s),
                2 => Command::License(s),
                3 => Command::Message {
                    role: [Role::System, Role::User, Role::Assistant][rng.below(3)],
                    content: s,
                },
                4 => Command::Parameter {
                    name: "stop".into(),
                    value: ParamValue::Str(s),
                },
                5 => Command::Parameter {
                    name: "temperature".into(),
                    value: ParamValue::Float((rng.next() % 10_000) as f64 / 997.0),
                },
                6 => Command::Parameter {
                    name: "seed".into(),
                    value: ParamValue::Int(rng.next() as i64),
                },
                _ => Command::Adapter(format!("a{s}")),
            });
        }
        let mf = Modelfile { commands };
        let printed = mf.to_string();
        let back = Modelfile::parse(&printed).unwrap_or_else(|e| panic!("{e}: {printed:?}"));
        assert_eq!(back, mf, "{printed:?}");
    }
}
