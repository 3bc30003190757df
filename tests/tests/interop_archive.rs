//! Interop of `llmpm save`/`load` with `skopeo`: skopeo reads and copies what save writes, and load reads what `skopeo copy … oci-archive:` writes.
//!
//! The model is a CNCF ModelPack artifact (an OCI manifest) pulled into the
//! store: skopeo refuses Ollama's layer media types inside a Docker v2
//! manifest (its own limit), but takes any layer type in an OCI manifest.
//! `skopeo copy … dir:` checks every blob's digest as it copies; the test
//! checks them again itself. Without `skopeo` (or `docker-registry`) the
//! tests skip; under `LLMPM_TEST_STRICT=1` they fail instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use llmpm_tests::registry::distribution::{find_on_path, DockerRegistry};
use llmpm_tests::registry::{sha256_digest, TestRegistry, MODELPACK_WEIGHT_RAW};
use llmpm_tests::{assert_ok, stderr, stdout, TestContext, TinyLlamaSpec};
use serde_json::Value;

fn skopeo() -> Option<PathBuf> {
    let found = find_on_path("skopeo");
    if found.is_none() {
        llmpm_tests::skip("`skopeo` is not installed (apt-get install skopeo)");
    }
    found
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// `llmpm list --json`'s `name` → `digest`.
fn digest_of(ctx: &TestContext, name: &str) -> Option<String> {
    let out = ctx.cli(&["list", "--json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .map(|m| format!("sha256:{}", m["digest"].as_str().unwrap()))
}

fn load(ctx: &TestContext, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["load", "-i", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    ctx.cli(&args)
}

fn assert_verify_clean(ctx: &TestContext) {
    let out = ctx.cli(&["verify", "--json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["corrupt"], serde_json::json!([]), "{v}");
    assert_eq!(v["missing"], serde_json::json!([]), "{v}");
}

#[test]
fn skopeo_reads_and_copies_what_save_writes_and_load_reads_skopeos_archives() {
    let Some(skopeo) = skopeo() else { return };
    let reg = TestRegistry::start();
    let ctx = TestContext::started();
    let gguf = std::fs::read(ctx.tiny_gguf("w.gguf", &TinyLlamaSpec::default())).unwrap();
    let digest = reg.publish_modelpack("ns/mp", "v1", &[(MODELPACK_WEIGHT_RAW, &gguf)]);
    let name = reg.model("ns/mp", "v1");
    assert_ok(&ctx.cli(&["pull", &name, "--insecure"]));
    let archive = ctx.work.join("mp.tar");
    assert_ok(&ctx.cli(&["save", &name, "-o", archive.to_str().unwrap()]));
    // skopeo finds the model by its ref name and sees the manifest byte for byte.
    let src = format!("oci-archive:{}:{name}", archive.display());
    let out = run(Command::new(&skopeo).args(["inspect", "--raw", &src]));
    assert_eq!(sha256_digest(&out.stdout), digest);

    // skopeo copies it out (checking every digest), and so do we.
    let dir = ctx.work.join("copied");
    run(Command::new(&skopeo).args(["copy", &src, &format!("dir:{}", dir.display())]));
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    assert_eq!(sha256_digest(&manifest), digest);
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    let mut descriptors = vec![m["config"].clone()];
    descriptors.extend(m["layers"].as_array().unwrap().iter().cloned());
    for d in &descriptors {
        let want = d["digest"].as_str().unwrap();
        let file = dir.join(want.strip_prefix("sha256:").unwrap());
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(sha256_digest(&bytes), want);
        assert_eq!(bytes.len() as u64, d["size"].as_u64().unwrap());
    }

    // skopeo's own archive of it, with a short ref name, loads under that name.
    let theirs = ctx.work.join("theirs.tar");
    let dst = format!("oci-archive:{}:other/mp:v9", theirs.display());
    run(Command::new(&skopeo).args(["copy", &src, &dst]));
    assert_ok(&ctx.cli(&["rm", &name]));
    assert!(ctx.blob_files().is_empty(), "{:?}", ctx.blob_files());
    assert_ok(&load(&ctx, &theirs, &[]));
    assert_eq!(digest_of(&ctx, "other/mp:v9"), Some(digest.clone()));
    assert_verify_clean(&ctx);

    // Without a ref name the archive's model needs `--name`.
    let unnamed = ctx.work.join("unnamed.tar");
    run(Command::new(&skopeo).args(["copy", &src, &format!("oci-archive:{}", unnamed.display())]));
    let out = load(&ctx, &unnamed, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--name"), "{}", stderr(&out));
    assert_ok(&load(&ctx, &unnamed, &["--name", "named:v1"]));
    assert_eq!(digest_of(&ctx, "named:v1"), Some(digest));
}

#[test]
fn load_reads_what_skopeo_copies_out_of_a_docker_registry() {
    let Some(skopeo) = skopeo() else { return };
    let Some(reg) = DockerRegistry::start() else {
        return;
    };
    let ctx = TestContext::started();
    let gguf = std::fs::read(ctx.tiny_gguf("w.gguf", &TinyLlamaSpec::default())).unwrap();
    let digest = reg.publish_modelpack("ns/mp", "v1", &[(MODELPACK_WEIGHT_RAW, &gguf)]);
    let archive = ctx.work.join("from-registry.tar");
    run(Command::new(&skopeo).args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}", reg.model("ns/mp", "v1")),
        &format!("oci-archive:{}:ns/mp:v1", archive.display()),
    ]));
    assert_ok(&load(&ctx, &archive, &[]));
    assert_eq!(digest_of(&ctx, "ns/mp:v1"), Some(digest));
    assert_verify_clean(&ctx);
    let show = ctx.cli(&["show", "ns/mp:v1"]);
    assert_ok(&show);
}
