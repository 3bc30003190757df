//! The daemon's lifecycle: autostart from the CLI, listener rules, API key, one daemon per socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use llmpm_tests::http::{call_tcp, call_unix};
use llmpm_tests::{assert_ok, stderr, TestContext};

fn wait_exit(cmd: &mut std::process::Command) -> std::process::Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn cli_starts_the_daemon_when_none_runs() {
    let ctx = TestContext::new();
    let mut cmd = ctx.cli_cmd(&["list"]);
    cmd.env_remove("LLMPM_NO_AUTOSTART");
    let out = cmd.output().unwrap();
    assert_ok(&out);
    assert!(stderr(&out).contains("started llmpmd"), "{}", stderr(&out));
    // It keeps running for the next command, which starts nothing.
    let r = call_unix(&ctx.socket(), "GET", "/api/version", b"").unwrap();
    assert_eq!(r.status, 200);
    let mut cmd = ctx.cli_cmd(&["list"]);
    cmd.env_remove("LLMPM_NO_AUTOSTART");
    let out = cmd.output().unwrap();
    assert_ok(&out);
    assert!(!stderr(&out).contains("started"), "{}", stderr(&out));
    let pid = std::fs::read_to_string(ctx.home.join("llmpmd.pid")).unwrap();
    let pid = pid.trim();
    std::process::Command::new("kill")
        .args(["-TERM", pid])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctx.socket().exists() {
        assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn no_autostart_says_how_to_start() {
    let ctx = TestContext::new();
    let out = ctx.cli(&["list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("llmpm serve"), "{err}");
    assert!(!ctx.socket().exists());
}

#[test]
fn refuses_public_bind_without_key_and_a_second_daemon() {
    let mut ctx = TestContext::new();
    let mut cmd = ctx.daemon_command();
    cmd.env("LLMPM_HOST", "0.0.0.0:0");
    let out = wait_exit(&mut cmd);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("LLMPM_API_KEY"), "{}", stderr(&out));

    ctx.start();
    let mut cmd = ctx.daemon_command();
    cmd.env("LLMPM_HOST", "none");
    let out = wait_exit(&mut cmd);
    assert!(
        !out.status.success(),
        "a second daemon on the same home started"
    );
    let err = stderr(&out);
    assert!(err.contains("another llmpmd"), "{err}");
    // The first one is unharmed.
    assert_eq!(
        call_unix(&ctx.socket(), "GET", "/", b"").unwrap().status,
        200
    );
}

#[test]
fn api_key_guards_tcp_not_the_socket() {
    let mut ctx = TestContext::new();
    ctx.daemon_env
        .push(("LLMPM_API_KEY".into(), "s3cret".into()));
    ctx.start();
    let r = call_tcp(ctx.port(), "GET", "/api/tags", &[], b"").unwrap();
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].as_str().unwrap().contains("API key"));
    let r = call_tcp(
        ctx.port(),
        "GET",
        "/api/tags",
        &[("Authorization", "Bearer wrong")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 401);
    let r = call_tcp(
        ctx.port(),
        "GET",
        "/api/tags",
        &[("Authorization", "Bearer s3cret")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        call_unix(&ctx.socket(), "GET", "/api/tags", b"")
            .unwrap()
            .status,
        200
    );
    // The CLI sends the key from the environment.
    let mut cmd = ctx.cli_cmd(&["list"]);
    cmd.env("LLMPM_HOST", format!("127.0.0.1:{}", ctx.port()))
        .env("LLMPM_API_KEY", "s3cret");
    assert_ok(&cmd.output().unwrap());
}
