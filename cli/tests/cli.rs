//! The `llmpm` binary against no daemon and against a scripted fake one: output streams and exit codes.
//!
//! End-to-end tests against the real `llmpmd` live in the `tests` crate; these
//! pin what the CLI itself decides: which stream gets what, the error format,
//! and the exit code policy (0 ok, 1 failure, 2 user error).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

/// A temp dir used as `LLMPM_HOME`, with the socket inside it.
struct Ctx {
    dir: tempfile::TempDir,
}

impl Ctx {
    fn new() -> Ctx {
        Ctx {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("llmpm.sock")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmpm"));
        cmd.env_clear()
            .env("HOME", self.dir.path())
            .env("LLMPM_HOME", self.dir.path())
            .env("LLMPM_CONFIG", self.dir.path().join("none.yaml"))
            .env("LLMPM_NO_AUTOSTART", "1")
            .current_dir(self.dir.path())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One request the fake daemon received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: Vec<u8>,
}

type Handler = dyn Fn(&Seen) -> (u16, &'static str, Vec<u8>) + Send + Sync;

/// A fake llmpmd on a unix socket: answers each request with `handler`'s
/// `(status, content type, body)` and records what it saw.
fn fake_daemon(socket: &Path, handler: Box<Handler>) -> Arc<Mutex<Vec<Seen>>> {
    let listener = UnixListener::bind(socket).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let path = parts.next().unwrap_or_default().to_owned();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let req = Seen { method, path, body };
            let (status, ctype, resp) = handler(&req);
            log.lock().unwrap().push(req);
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                resp.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&resp);
        }
    });
    seen
}

const JSON: &str = "application/json";

#[test]
fn version() {
    let out = Ctx::new().run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        format!("llmpm {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    let ctx = Ctx::new();
    assert_eq!(ctx.run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        ctx.run(&["show", "m", "--system", "--license"])
            .status
            .code(),
        Some(2)
    );
    let out = ctx.run(&["show", "Bad Name"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: model name `Bad Name`"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn no_daemon_and_no_autostart() {
    let ctx = Ctx::new();
    let out = ctx.run(&["list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let want = format!(
        "error: cannot reach llmpmd at `{}`\n",
        ctx.socket().display()
    );
    assert!(err.starts_with(&want), "{err}");
    assert!(err.contains("  Caused by: "), "{err}");
    assert!(
        err.ends_with("\nhint: start it with `llmpm serve`\n"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
    // The flag does the same as the variable.
    let mut cmd = ctx.cmd(&["--no-autostart", "list"]);
    cmd.env_remove("LLMPM_NO_AUTOSTART");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach llmpmd"),
        "{}",
        stderr(&out)
    );
    // An explicit TCP host is never autostarted either.
    let mut cmd = ctx.cmd(&["list", "--host", "127.0.0.1:1"]);
    cmd.env_remove("LLMPM_NO_AUTOSTART");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: cannot reach llmpmd at `http://127.0.0.1:1`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_modelfiles_exit_2_before_contacting_the_daemon() {
    let ctx = Ctx::new();
    ctx.write("tiny.gguf", b"GGUF\x03\x00\x00\x00");
    for (text, want) in [
        (
            "FROM ./tiny.gguf\nPARAMETER num_ctx abc\n",
            "error: Modelfile:2:",
        ),
        ("SYSTEM hi\n", "error: Modelfile:1:1: no FROM"),
        (
            "FROM ./nope.gguf\n",
            "error: FROM `./nope.gguf`: no such file",
        ),
    ] {
        ctx.write("Modelfile", text.as_bytes());
        let out = ctx.run(&["create", "m"]);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with(want), "{text:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("cannot reach"), "{}", stderr(&out));
    }
    let out = ctx.run(&["create", "m", "-f", "Missing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Modelfile `Missing` does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn list_table_and_json() {
    let ctx = Ctx::new();
    let tags = r#"{"models":[{"name":"m:latest","model":"m:latest","modified_at":"2020-01-01T00:00:00.000000Z","size":1234567,"digest":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","details":{"format":"gguf","family":"llama","parameter_size":"1M","quantization_level":"F32"}}]}"#;
    let seen = fake_daemon(
        &ctx.socket(),
        Box::new(move |_| (200, JSON, tags.as_bytes().to_vec())),
    );
    let out = ctx.run(&["ls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["NAME", "ID", "SIZE", "MODIFIED", "FAMILY", "PARAMS", "QUANT"]
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("m:latest    0123456789ab    1.2 MB    "),
        "{row}"
    );
    assert!(
        row.contains(" years ago    llama     1M        F32"),
        "{row}"
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    let out = ctx.run(&["list", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["models"][0]["digest"].as_str().unwrap().len(), 64);
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|s| s.method == "GET" && s.path == "/api/tags"),
        "{seen:?}"
    );
}

#[test]
fn daemon_errors_map_to_exit_codes() {
    let ctx = Ctx::new();
    fake_daemon(
        &ctx.socket(),
        Box::new(|req| match req.path.as_str() {
            "/api/show" => (
                404,
                JSON,
                br#"{"error":"model `m:latest` not found"}"#.to_vec(),
            ),
            "/api/delete" => (500, JSON, br#"{"error":"the index is broken"}"#.to_vec()),
            _ => (200, JSON, b"{}".to_vec()),
        }),
    );
    let out = ctx.run(&["show", "m"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: model `m:latest` not found\n\nhint: see the local models with `llmpm list`\n"
    );
    let out = ctx.run(&["rm", "m"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: the index is broken\n");
    let out = ctx.run(&["cp", "a", "b"]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "copied 'a' to 'b'\n");
}

#[test]
fn create_uploads_missing_blobs_and_streams_progress() {
    let ctx = Ctx::new();
    let weights = b"GGUF\x03\x00\x00\x00 weights".repeat(1000);
    ctx.write("w.gguf", &weights);
    ctx.write("Modelfile", b"FROM w.gguf\nSYSTEM hi\nPARAMETER stop x\n");
    let progress = "{\"status\":\"parsing GGUF\"}\n{\"status\":\"writing manifest\"}\n{\"status\":\"success\"}\n";
    let seen = fake_daemon(
        &ctx.socket(),
        Box::new(move |req| match (req.method.as_str(), req.path.as_str()) {
            ("HEAD", _) => (404, JSON, Vec::new()),
            ("POST", "/api/create") => (200, "application/x-ndjson", progress.as_bytes().to_vec()),
            ("POST", _) => (201, JSON, Vec::new()),
            _ => (500, JSON, Vec::new()),
        }),
    );
    let out = ctx.run(&["create", "m"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "transferring model data\nparsing GGUF\nwriting manifest\nsuccess\n"
    );
    assert!(stdout(&out).is_empty());
    let seen = seen.lock().unwrap();
    let methods: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    use sha2::Digest as _;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&weights)));
    let blob = format!("/api/blobs/{digest}");
    assert_eq!(
        methods,
        [
            ("HEAD", blob.as_str()),
            ("POST", blob.as_str()),
            ("POST", "/api/create")
        ]
    );
    assert_eq!(seen[1].body, weights, "the upload is the file's bytes");
    let req: serde_json::Value = serde_json::from_slice(&seen[2].body).unwrap();
    assert_eq!(
        req,
        serde_json::json!({
            "model": "m",
            "files": {"w.gguf": digest},
            "system": "hi",
            "parameters": {"stop": ["x"]},
            "stream": true,
        })
    );
}

#[test]
fn create_skips_present_blobs_and_reports_stream_errors() {
    let ctx = Ctx::new();
    ctx.write("w.gguf", b"GGUF\x03\x00\x00\x00");
    ctx.write("Modelfile", b"FROM ./w.gguf\n");
    let seen = fake_daemon(
        &ctx.socket(),
        Box::new(|req| match req.method.as_str() {
            "HEAD" => (200, JSON, Vec::new()),
            _ => (
                200,
                "application/x-ndjson",
                b"{\"status\":\"parsing GGUF\"}\n{\"error\":\"`w.gguf` is not a valid GGUF\"}\n"
                    .to_vec(),
            ),
        }),
    );
    let out = ctx.run(&["create", "m"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .ends_with("error: Failed to create `m`\n  Caused by: `w.gguf` is not a valid GGUF\n"),
        "{}",
        stderr(&out)
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "no upload: {seen:?}");
}

#[test]
fn verify_damage_exits_1_and_prune_reports() {
    let ctx = Ctx::new();
    fake_daemon(
        &ctx.socket(),
        Box::new(|req| {
            match req.path.as_str() {
            "/api/verify" => (
                200,
                JSON,
                br#"{"blobs_checked":3,"bytes_checked":3000,"corrupt":[{"digest":"sha256:aa","problem":"hash mismatch","quarantined_to":"/q/aa","models":["m:latest"]}],"missing":["sha256:bb"]}"#.to_vec(),
            ),
            _ => (200, JSON, br#"{"blobs_removed":1,"bytes_freed":2000000,"temp_files_removed":0}"#.to_vec()),
        }
        }),
    );
    let out = ctx.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "checked 3 blobs (3 KB)\ncorrupt sha256:aa: hash mismatch\n  moved to /q/aa\n  needed by m:latest\nmissing sha256:bb\n"
    );
    assert_eq!(
        stderr(&out),
        "error: 2 blobs are corrupt or missing\n\nhint: create or pull these models again: `m:latest`\n"
    );
    let out = ctx.run(&["prune"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "removed 1 unused blob (2 MB freed) and 0 stale temporary files\n"
    );
}
