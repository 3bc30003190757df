//! Bad input and crashes: clear errors, nothing stored, nothing lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use llmpm_tests::http::{call_tcp, call_unix};
use llmpm_tests::{assert_ok, stderr, stdout, TestContext, TinyLlamaSpec};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn names(ctx: &TestContext) -> Vec<String> {
    let r = call_unix(&ctx.socket(), "GET", "/api/tags", b"").unwrap();
    assert_eq!(r.status, 200);
    let mut v: Vec<String> = r.json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}@{}",
                m["name"].as_str().unwrap(),
                m["digest"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

fn upload(ctx: &TestContext, bytes: &[u8]) -> String {
    let d = sha(bytes);
    let r = call_unix(&ctx.socket(), "POST", &format!("/api/blobs/{d}"), bytes).unwrap();
    assert!(
        r.status == 201 || r.status == 200,
        "{} {}",
        r.status,
        r.text()
    );
    d
}

fn create(ctx: &TestContext, body: Value) -> llmpm_tests::http::Response {
    call_unix(
        &ctx.socket(),
        "POST",
        "/api/create",
        body.to_string().as_bytes(),
    )
    .unwrap()
}

fn base_model(ctx: &TestContext) -> Vec<u8> {
    let gguf = std::fs::read(ctx.tiny_gguf("base.gguf", &TinyLlamaSpec::default())).unwrap();
    let d = upload(ctx, &gguf);
    let r = create(
        ctx,
        json!({"model": "base", "files": {"base.gguf": d}, "stream": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    gguf
}

#[test]
fn bad_blob_uploads_store_nothing() {
    let ctx = TestContext::started();
    let sock = ctx.socket();
    let before = ctx.blob_files();
    // Bytes that do not match their digest.
    let claimed = sha(b"other bytes");
    let r = call_unix(
        &sock,
        "POST",
        &format!("/api/blobs/{claimed}"),
        b"these bytes",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    let e = r.json()["error"].as_str().unwrap().to_owned();
    assert!(e.contains("mismatch") && e.contains(&claimed), "{e}");
    // Digests that are not digests, including path tricks.
    for (path, want) in [
        ("/api/blobs/sha256:..%2F..%2Fetc%2Fpasswd", 400),
        ("/api/blobs/sha256:../x", 404),
        ("/api/blobs/sha256:abc", 400),
        ("/api/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", 400),
        (&format!("/api/blobs/{}", sha(b"x").to_uppercase()), 400),
    ] {
        let r = call_unix(&sock, "POST", path, b"x").unwrap();
        assert_eq!(r.status, want, "{path}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{path}");
    }
    let r = call_unix(&sock, "POST", "/api/blobs/sha256:abc", b"x").unwrap();
    assert!(r.json()["error"].as_str().unwrap().contains("3 hex digits"));
    assert_eq!(ctx.blob_files(), before);
    assert_eq!(std::fs::read_dir(ctx.home.join("tmp")).unwrap().count(), 0);
    // HEAD tells present from absent.
    let d = upload(&ctx, b"present");
    assert_eq!(
        call_unix(&sock, "HEAD", &format!("/api/blobs/{d}"), b"")
            .unwrap()
            .status,
        200
    );
    let absent = sha(b"absent");
    assert_eq!(
        call_unix(&sock, "HEAD", &format!("/api/blobs/{absent}"), b"")
            .unwrap()
            .status,
        404
    );
}

#[test]
fn bad_requests_get_clear_errors() {
    let ctx = TestContext::started();
    base_model(&ctx);
    let before = names(&ctx);
    let blobs = ctx.blob_files();
    let sock = ctx.socket();
    for path in ["/api/create", "/api/show", "/api/copy"] {
        let r = call_unix(&sock, "POST", path, b"this is not json").unwrap();
        assert_eq!(r.status, 400, "{path}");
        assert!(
            r.json()["error"].as_str().unwrap().contains("JSON"),
            "{path}: {}",
            r.text()
        );
    }
    let r = call_unix(&sock, "DELETE", "/api/delete", b"{").unwrap();
    assert_eq!(r.status, 400);

    let long = "a".repeat(300);
    for bad in [
        "../../etc/passwd",
        "a/b/c/d/e",
        long.as_str(),
        // Upper case is a valid name now (Hugging Face repositories keep
        // theirs, as in Ollama); spaces and a leading dash are not.
        "has space",
        "ns/-model:tag",
        "m:bad/tag",
    ] {
        let r = create(&ctx, json!({"model": bad, "from": "base", "stream": false}));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        let e = r.json()["error"].as_str().unwrap().to_owned();
        assert!(e.contains("model name"), "{bad}: {e}");
        let r = call_unix(
            &sock,
            "POST",
            "/api/copy",
            json!({"source": "base", "destination": bad})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 400, "copy to {bad}");
        let r = call_unix(
            &sock,
            "POST",
            "/api/show",
            json!({"model": bad}).to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 400, "show {bad}");
    }
    let r = create(
        &ctx,
        json!({"model": "x", "from": "base", "parameters": {"nonsense": 1}, "stream": false}),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("nonsense"), "{}", r.text());
    let r = create(
        &ctx,
        json!({"model": "x", "from": "base", "parameters": {"num_ctx": "lots"}, "stream": false}),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("num_ctx"), "{}", r.text());
    let r = create(
        &ctx,
        json!({"model": "x", "files": {"w.gguf": sha(b"never uploaded")}, "stream": false}),
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("not been uploaded"), "{}", r.text());
    let r = create(
        &ctx,
        json!({"model": "x", "from": "missing", "stream": false}),
    );
    assert_eq!(r.status, 404);
    let r = call_unix(&sock, "POST", "/api/show", br#"{"model":"nope"}"#).unwrap();
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("not found"));

    assert_eq!(names(&ctx), before, "no model added or changed");
    assert_eq!(ctx.blob_files(), blobs, "no blob added");
}

/// A GGUF header with one metadata array that claims 2^40 entries.
fn gguf_huge_array() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // tensors
    b.extend_from_slice(&1u64.to_le_bytes()); // kv pairs
    b.extend_from_slice(&1u64.to_le_bytes());
    b.push(b'a');
    b.extend_from_slice(&9u32.to_le_bytes()); // array
    b.extend_from_slice(&0u32.to_le_bytes()); // of u8
    b.extend_from_slice(&(1u64 << 40).to_le_bytes());
    b.extend_from_slice(&[0; 64]);
    b
}

/// A GGUF header with a string that claims 2^40 bytes.
fn gguf_huge_string() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&(1u64 << 40).to_le_bytes());
    b.extend_from_slice(b"key");
    b
}

#[test]
fn hostile_gguf_is_refused() {
    let mut ctx = TestContext::started();
    let good = std::fs::read(ctx.tiny_gguf("t.gguf", &TinyLlamaSpec::default())).unwrap();
    // Cut the tensor data short: the last tensor's offset now points past the end.
    let truncated = good[..good.len() - 100].to_vec();
    for (what, bytes) in [
        ("tensor past end", truncated),
        ("2^40 array", gguf_huge_array()),
        ("2^40 string", gguf_huge_string()),
        ("not gguf", b"PK\x03\x04 a zip file".to_vec()),
    ] {
        let d = upload(&ctx, &bytes);
        let r = create(
            &ctx,
            json!({"model": "evil", "files": {"evil.gguf": d}, "stream": false}),
        );
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        let e = r.json()["error"].as_str().unwrap().to_owned();
        assert!(e.contains("evil.gguf"), "{what}: {e}");
        assert!(ctx.daemon().alive(), "{what}: the daemon died");
    }
    assert!(names(&ctx).is_empty());
    // The daemon is still serving.
    assert_eq!(
        call_unix(&ctx.socket(), "GET", "/api/version", b"")
            .unwrap()
            .status,
        200
    );
}

#[test]
fn modelfile_errors_name_line_and_column() {
    let ctx = TestContext::started();
    ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    for (text, want) in [
        ("FROM ./tiny.gguf\nTEMPLATE \"\"\"never closed\n", "2:"),
        ("FROM ./tiny.gguf\nPARAMETER nonsense 1\n", "2:"),
        ("FROM ./tiny.gguf\n\nPARAMETER num_ctx abc\n", "3:"),
        ("FROM ./tiny.gguf\nFOO bar\n", "2:"),
        ("SYSTEM no from\n", "no FROM"),
        ("FROM ./tiny.gguf\nMESSAGE robot hi\n", "2:"),
    ] {
        std::fs::write(ctx.work.join("Modelfile"), text).unwrap();
        let out = ctx.cli(&["create", "m", "-f", "Modelfile"]);
        assert!(!out.status.success(), "{text:?} was accepted");
        assert_eq!(
            out.status.code(),
            Some(2),
            "a bad Modelfile is a user error: {text:?}"
        );
        let err = stderr(&out);
        assert!(err.contains(want), "{text:?}: {err}");
    }
    assert!(names(&ctx).is_empty());
    assert!(ctx.blob_files().is_empty(), "nothing was uploaded");
}

#[test]
fn kill_during_upload_leaves_no_partial_blob() {
    let mut ctx = TestContext::started();
    base_model(&ctx);
    let before = names(&ctx);
    let blobs = ctx.blob_files();
    let big = vec![7u8; 8 << 20];
    let d = sha(&big);
    // Send half the body, then crash the daemon.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", ctx.port())).unwrap();
    write!(
        s,
        "POST /api/blobs/{d} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        big.len()
    )
    .unwrap();
    s.write_all(&big[..big.len() / 2]).unwrap();
    s.flush().unwrap();
    let tmp = ctx.home.join("tmp");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&tmp).unwrap().count() == 0 {
        assert!(Instant::now() < deadline, "upload never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    ctx.daemon().kill9();
    drop(s);
    ctx.start();
    assert_eq!(ctx.blob_files(), blobs, "no partial blob became visible");
    assert_eq!(names(&ctx), before, "the store lists exactly what it had");
    let out = ctx.cli(&["prune"]);
    assert_ok(&out);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "prune removed the partial"
    );
    assert_eq!(names(&ctx), before);
}

#[test]
fn kill_during_create_leaves_old_or_new_never_half() {
    let mut ctx = TestContext::started();
    let gguf = base_model(&ctx);
    let weights = sha(&gguf);
    let mut before = names(&ctx);
    for i in 0..8u64 {
        let body = json!({
            "model": format!("new{i}"),
            "files": {"w.gguf": weights},
            "system": format!("system prompt {i}"),
            "license": ["a license", format!("another {i}")],
            "parameters": {"temperature": 0.5, "stop": ["x", "y"]},
            "messages": [{"role": "user", "content": format!("hi {i}")}],
        })
        .to_string();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", ctx.port())).unwrap();
        write!(
            s,
            "POST /api/create HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_micros(i * 1500));
        ctx.daemon().kill9();
        ctx.start();
        let now = names(&ctx);
        let new: Vec<&String> = now.iter().filter(|n| !before.contains(n)).collect();
        assert!(new.len() <= 1, "round {i}: {now:?}");
        for b in &before {
            assert!(now.contains(b), "round {i}: {b} lost");
        }
        // Whatever is listed is whole: every blob present and intact.
        let r = call_unix(&ctx.socket(), "POST", "/api/verify", b"").unwrap();
        let v = r.json();
        assert!(
            v["corrupt"].as_array().unwrap().is_empty(),
            "round {i}: {v}"
        );
        assert!(
            v["missing"].as_array().unwrap().is_empty(),
            "round {i}: {v}"
        );
        for n in &new {
            let name = n.split('@').next().unwrap();
            let show = ctx.cli(&["show", name, "--system"]);
            assert_ok(&show);
            assert_eq!(stdout(&show).trim(), format!("system prompt {i}"));
        }
        before = now;
    }
}

#[test]
fn tcp_guards() {
    let ctx = TestContext::started();
    let r = call_tcp(
        ctx.port(),
        "GET",
        "/api/tags",
        &[("Host", "evil.example:11434")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 403, "DNS-rebinding Host refused");
    let r = call_tcp(
        ctx.port(),
        "GET",
        "/api/tags",
        &[("Host", "127.0.0.1:11434")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200);
    // The unix socket is private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(ctx.socket())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}
