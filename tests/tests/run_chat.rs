//! `llmpm run` as a chat on a real terminal: util-linux `script` gives the
//! CLI a pseudo-terminal, the keystrokes are typed ahead into it, and the
//! session's commands (`/set`, `/show`, `"""`, `/clear`, `/bye`) must act.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use llmpm_tests::{assert_ok, TestContext, TinyLlamaSpec};

#[test]
fn interactive_chat_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        llmpm_tests::skip("util-linux `script` is not installed");
        return;
    }
    let ctx = TestContext::started();
    ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    std::fs::write(
        ctx.work.join("Modelfile"),
        "FROM ./tiny.gguf\nSYSTEM model system\n",
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", "tiny", "-f", "Modelfile"]));

    let llmpm = llmpm_tests::bin("llmpm");
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("{} run tiny", llmpm.display()),
            "/dev/null",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "dumb")
        .envs(ctx.envs())
        .env("LLMPM_NO_AUTOSTART", "1")
        .current_dir(&ctx.work)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let keys = "/show system\n\
        /set system Be brief.\n\
        /show system\n\
        /set parameter num_predict 3\n\
        /set parameter temperature 0\n\
        /show parameters\n\
        \"\"\"first line\n\
        second line\"\"\"\n\
        /set think extreme\n\
        /set think high\n\
        think hard\n\
        /set nothink\n\
        /set parameter top_p 7\n\
        hello again\n\
        /clear\n\
        /nonsense\n\
        /bye\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(keys.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "model system",
        "Set system message.",
        "Be brief.",
        "Set parameter 'num_predict' to '3'",
        "num_predict 3  (this session)",
        // An option the daemon refuses is an error for that turn only.
        "invalid option `top_p` = 7: must be between 0 and 1",
        "Cleared session context",
        "Unknown command '/nonsense'",
        // Thinking is chosen per session; a model that cannot think says so.
        "Usage: /set think [low|medium|high]",
        "Set 'think' mode to 'high'.",
        "\"tiny\" does not support thinking",
        "Set 'nothink' mode.",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The multi-line message went as one turn (one continuation prompt,
    // then an answer on that line), and the session outlived the error.
    assert_eq!(text.matches("... ").count(), 1, "{text}");
    let answered = text
        .lines()
        .find_map(|l| l.strip_prefix(">>> ... "))
        .unwrap_or_default();
    assert!(
        !answered.trim().is_empty(),
        "no answer to the multi-line message:\n{text}"
    );
    let after_error = text.split("must be between 0 and 1").nth(1).unwrap();
    assert!(after_error.contains("Cleared session context"), "{text}");
}
