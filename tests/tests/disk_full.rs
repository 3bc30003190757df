//! End to end: the store on a small tmpfs that fills up during a create (the
//! blob upload) and during a pull: each fails with a clear error, its partial
//! data is gone, the models stored before are intact (`verify` clean), and
//! the daemon serves on. Needs `mount` (root); skips otherwise, and fails
//! under `LLMPM_TEST_STRICT=1` (CI runs as root on a machine that can mount).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use llmpm_tests::http::call_unix;
use llmpm_tests::registry::{noise, sha256_digest, TestRegistry};
use llmpm_tests::{assert_ok, stderr, TestContext, TinyLlamaSpec};
use serde_json::{json, Value};

/// The store's size: room for the tiny model and little more.
const STORE_MIB: u64 = 8;
/// What each failing operation tries to store: well past the room left.
const TOO_BIG: usize = 12 << 20;

/// A tmpfs mounted over a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mib: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0700")])
            .arg("tmpfs")
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs(at.to_owned()))
    }

    /// Bytes free on it.
    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn names(ctx: &TestContext) -> Vec<String> {
    let r = call_unix(&ctx.socket(), "GET", "/api/tags", b"").unwrap();
    let mut v: Vec<String> = r.json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

fn tmp_files(ctx: &TestContext) -> Vec<String> {
    std::fs::read_dir(ctx.home.join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// What must hold after each failure: the earlier model listed, every blob
/// whole, no partial left, the space given back, and the model answers.
fn store_intact(ctx: &TestContext, fs: &Tmpfs, blobs: &[String], free_before: u64, what: &str) {
    assert_eq!(names(ctx), ["tiny:latest"], "{what}");
    assert_eq!(ctx.blob_files(), blobs, "{what}: blobs changed");
    assert_eq!(tmp_files(ctx), Vec::<String>::new(), "{what}: partial left");
    // tmpfs counts in pages; the daemon may have written a few small files.
    let free = fs.free();
    assert!(
        free + (256 << 10) >= free_before,
        "{what}: {free} bytes free, {free_before} before"
    );
    let r = call_unix(&ctx.socket(), "POST", "/api/verify", b"").unwrap();
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    let v: Value = r.json();
    assert_eq!(v["corrupt"], json!([]), "{what}: {v}");
    let r = ctx.post_json(
        "/api/generate",
        &json!({"model": "tiny", "prompt": "Hi", "stream": false,
            "options": {"temperature": 0, "num_predict": 2}}),
    );
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(r.json()["done"], true);
}

#[test]
fn a_full_disk_fails_create_and_pull_cleanly_and_keeps_earlier_models() {
    let mut ctx = TestContext::new();
    let fs = match Tmpfs::mount(&ctx.home, STORE_MIB) {
        Ok(fs) => fs,
        Err(e) => {
            llmpm_tests::skip(&format!("cannot mount a tmpfs for the store ({e})"));
            return;
        }
    };
    ctx.daemon_env = vec![("LLMPM_PULL_PART_SIZE".into(), (1u32 << 20).to_string())];
    ctx.start();
    ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    std::fs::write(ctx.work.join("Modelfile"), "FROM ./tiny.gguf\n").unwrap();
    assert_ok(&ctx.cli(&["create", "tiny", "-f", "Modelfile"]));
    let blobs = ctx.blob_files();
    let free_before = fs.free();
    assert!((free_before as usize) < TOO_BIG, "{free_before} bytes free");

    // Create: the weights' upload fills the disk.
    // A real GGUF (the CLI reads its header before uploading) of ~17 MB.
    let big = TinyLlamaSpec {
        n_embd: 512,
        n_head: 8,
        n_head_kv: 4,
        n_ff: 1024,
        ..TinyLlamaSpec::default()
    };
    let big = ctx.tiny_gguf("big.gguf", &big);
    assert!(std::fs::metadata(&big).unwrap().len() > TOO_BIG as u64);
    std::fs::write(ctx.work.join("Modelfile"), "FROM ./big.gguf\n").unwrap();
    let out = ctx.cli(&["create", "big", "-f", "Modelfile"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).to_lowercase().contains("no space left"),
        "the error says why: {}",
        stderr(&out)
    );
    assert!(ctx.daemon().alive());
    store_intact(&ctx, &fs, &blobs, free_before, "create");

    // Pull: the weights' download fills the disk.
    let reg = TestRegistry::start();
    let weights = noise(TOO_BIG, 2);
    reg.publish_ollama_model(
        "ns/big",
        "v1",
        &[("application/vnd.ollama.image.model", &weights)],
    );
    let body = json!({"model": reg.model("ns/big", "v1"), "insecure": true});
    let r = ctx.post_json("/api/pull", &body);
    let lines = if r.status == 200 {
        r.ndjson()
    } else {
        vec![r.json()]
    };
    let err = lines.last().and_then(|l| l["error"].as_str()).unwrap_or("");
    assert!(err.to_lowercase().contains("no space left"), "{lines:?}");
    assert!(!ctx
        .blob_files()
        .contains(&sha256_digest(&weights).replace(':', "-")));
    assert!(ctx.daemon().alive());
    // The small layers fetched whole before the weights stay (verified) for
    // a resume, as after any failed pull, until prune removes them.
    assert_ok(&ctx.cli(&["prune"]));
    store_intact(&ctx, &fs, &blobs, free_before, "pull");
}
