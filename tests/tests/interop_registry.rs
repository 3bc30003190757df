//! Interop with real third-party software: llmpm pushes to and pulls from Debian's `docker-registry`; `skopeo` reads what llmpm pushed.
//!
//! Each test starts its own `docker-registry` on a free loopback port
//! (see `llmpm_tests::registry::distribution`). Without the binary the tests
//! skip and say why; under `LLMPM_TEST_STRICT=1` (CI, which installs it)
//! they fail instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;

use llmpm_spec::media_type::ollama;
use llmpm_tests::registry::distribution::{find_on_path, DockerRegistry};
use llmpm_tests::registry::{sha256_digest, DOCKER_AI_GGUF, MODELPACK_WEIGHT_RAW};
use llmpm_tests::{assert_ok, http, stderr, stdout, TestContext, TinyLlamaSpec};
use serde_json::{json, Value};

const MODELFILE: &str = "FROM ./tiny.gguf\nSYSTEM You are terse.\nPARAMETER temperature 0.2\n";

fn list_json(ctx: &TestContext) -> Vec<Value> {
    let out = ctx.cli(&["list", "--json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_str(&stdout(&out)).expect("list --json is JSON");
    v["models"].as_array().cloned().unwrap_or_default()
}

/// The listed model called `name` (with or without a `:latest` the CLI may add).
fn listed(ctx: &TestContext, name: &str) -> Option<Value> {
    list_json(ctx)
        .into_iter()
        .find(|m| m["name"] == name || m["model"] == name)
}

/// Every blob file's bytes, by name.
fn blobs(ctx: &TestContext) -> BTreeMap<String, Vec<u8>> {
    ctx.blob_files()
        .into_iter()
        .map(|f| {
            let b = std::fs::read(ctx.home.join("blobs/sha256").join(&f)).unwrap();
            (f, b)
        })
        .collect()
}

/// `llmpm ARGS`, asserting success and that the progress ended in `success`.
fn cli_ok(ctx: &TestContext, args: &[&str]) {
    let out = ctx.cli(args);
    assert!(
        out.status.success(),
        "`llmpm {}` failed ({:?})\nstdout:\n{}\nstderr:\n{}\ndaemon log:\n{}",
        args.join(" "),
        out.status.code(),
        stdout(&out),
        stderr(&out),
        ctx.daemon_log()
    );
}

/// A tiny GGUF's bytes.
fn tiny_gguf_bytes(ctx: &TestContext) -> Vec<u8> {
    std::fs::read(ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default())).unwrap()
}

/// `POST /api/pull` or `/api/push` over the daemon's socket: Ollama's NDJSON
/// progress, which must end in `success`.
fn api_transfer(ctx: &TestContext, endpoint: &str, model: &str) -> Vec<Value> {
    let body = json!({"model": model, "insecure": true}).to_string();
    let r = http::call_unix(&ctx.socket(), "POST", endpoint, body.as_bytes()).unwrap();
    assert_eq!(
        r.status,
        200,
        "{endpoint}: {}\n{}",
        r.text(),
        ctx.daemon_log()
    );
    let lines = r.ndjson();
    assert!(
        lines.iter().all(|l| l.get("error").is_none()),
        "{endpoint} streamed an error: {lines:?}"
    );
    assert_eq!(
        lines.last().map(|l| l["status"].clone()),
        Some(json!("success")),
        "{endpoint}: {lines:?}"
    );
    lines
}

#[test]
fn docker_registry_fixture_round_trips_blobs_and_manifests() {
    // The registry side alone, so a failure here is not blamed on llmpm.
    let Some(reg) = DockerRegistry::start() else {
        return;
    };
    let layers: &[(&str, &[u8])] = &[(ollama::MODEL, b"GGUF not really"), (ollama::SYSTEM, b"hi")];
    let d = reg.publish_ollama_model("ns/fixture", "v1", layers);
    let (ct, m) = reg.get_manifest("ns/fixture", "v1").unwrap();
    assert_eq!(ct, llmpm_spec::media_type::DOCKER_MANIFEST_V2);
    assert_eq!(sha256_digest(&m), d);
    let d = sha256_digest(b"hi");
    assert_eq!(reg.get_blob("ns/fixture", &d).unwrap(), b"hi");
    let d = reg.publish_modelpack("ns/fixture-mp", "v1", &[(MODELPACK_WEIGHT_RAW, b"w")]);
    let (_, m) = reg.get_manifest("ns/fixture-mp", &d).unwrap();
    let m: Value = serde_json::from_slice(&m).unwrap();
    assert_eq!(
        m["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
}

#[test]
fn push_rm_pull_back_byte_identical_and_skopeo_reads_it() {
    let Some(reg) = DockerRegistry::start() else {
        return;
    };
    let ctx = TestContext::started();
    ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    std::fs::write(ctx.work.join("Modelfile"), MODELFILE).unwrap();
    assert_ok(&ctx.cli(&["create", "m", "-f", "Modelfile"]));
    let name = reg.model("ns/m", "v1");
    assert_ok(&ctx.cli(&["cp", "m", &name]));
    let digest = listed(&ctx, &name).expect("copied name listed")["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = blobs(&ctx);

    cli_ok(&ctx, &["push", &name, "--insecure"]);

    // The registry holds exactly llmpm's manifest, and every blob it names.
    let (_, pushed) = reg.get_manifest("ns/m", "v1").expect("manifest pushed");
    assert_eq!(sha256_digest(&pushed), format!("sha256:{digest}"));
    let m: Value = serde_json::from_slice(&pushed).unwrap();
    let mut named = vec![m["config"]["digest"].as_str().unwrap().to_owned()];
    named.extend(
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned()),
    );
    for d in &named {
        let hex = d.strip_prefix("sha256:").unwrap();
        assert_eq!(
            reg.get_blob("ns/m", d).as_ref(),
            before.get(hex),
            "blob {d}"
        );
    }

    // skopeo, a third-party OCI client, reads it.
    match find_on_path("skopeo") {
        None => llmpm_tests::skip("`skopeo` is not installed (apt-get install skopeo)"),
        Some(skopeo) => {
            let out = Command::new(skopeo)
                .args(["inspect", "--raw", "--tls-verify=false"])
                .arg(format!("docker://{name}"))
                .output()
                .unwrap();
            assert_ok(&out);
            assert_eq!(
                sha256_digest(&out.stdout),
                format!("sha256:{digest}"),
                "skopeo sees the same manifest"
            );
        }
    }

    // Gone locally, then back from the registry, byte for byte.
    assert_ok(&ctx.cli(&["rm", "m", &name]));
    assert!(ctx.blob_files().is_empty(), "left: {:?}", ctx.blob_files());
    cli_ok(&ctx, &["pull", &name, "--insecure"]);
    let m = listed(&ctx, &name).expect("pulled model listed");
    assert_eq!(m["digest"], digest.as_str());
    assert_eq!(blobs(&ctx), before, "same blobs, same bytes");
    let show = ctx.cli(&["show", &name, "--system"]);
    assert_ok(&show);
    assert_eq!(stdout(&show).trim(), "You are terse.");

    // Pushing again uploads nothing new and still succeeds.
    cli_ok(&ctx, &["push", &name, "--insecure"]);
}

#[test]
fn ollama_format_placed_in_the_registry_pulls_and_lists() {
    let Some(reg) = DockerRegistry::start() else {
        return;
    };
    let ctx = TestContext::started();
    let gguf = tiny_gguf_bytes(&ctx);
    let template = b"{{ .Prompt }}".as_slice();
    let params = br#"{"temperature":0.3,"stop":["<|eot_id|>"]}"#.as_slice();
    let layers: &[(&str, &[u8])] = &[
        (ollama::MODEL, &gguf),
        (ollama::TEMPLATE, template),
        (ollama::SYSTEM, b"Answer in French."),
        (ollama::PARAMS, params),
        (ollama::LICENSE, b"MIT"),
    ];
    let digest = reg.publish_ollama_model("library/tiny", "1b", layers);
    let name = reg.model("library/tiny", "1b");

    // Through the API, as Ollama's clients call it.
    let lines = api_transfer(&ctx, "/api/pull", &name);
    assert_eq!(lines[0]["status"], "pulling manifest", "{lines:?}");
    let gguf_digest = sha256_digest(&gguf);
    assert!(
        lines
            .iter()
            .any(|l| l["digest"] == gguf_digest.as_str() && l["total"] == gguf.len()),
        "a progress line for the weights: {lines:?}"
    );

    let m = listed(&ctx, &name).expect("pulled model listed");
    assert_eq!(m["digest"], digest.strip_prefix("sha256:").unwrap());
    assert_eq!(m["details"]["format"], "gguf");
    assert_eq!(m["details"]["family"], "llama");
    let files = ctx.blob_files();
    for (_, b) in layers {
        let hex = sha256_digest(b)["sha256:".len()..].to_owned();
        assert!(files.contains(&hex), "layer {hex} stored: {files:?}");
    }
    let show = ctx.cli(&["show", &name, "--json"]);
    assert_ok(&show);
    let s: Value = serde_json::from_str(&stdout(&show)).unwrap();
    assert_eq!(s["system"], "Answer in French.");
    assert_eq!(s["template"], "{{ .Prompt }}");
    assert!(
        s["parameters"].as_str().unwrap().contains("temperature"),
        "{s}"
    );
    assert!(s["license"].to_string().contains("MIT"), "{s}");

    // And back out through /api/push into another repository of the same registry.
    let copy = reg.model("ns/copy", "v1");
    assert_ok(&ctx.cli(&["cp", &name, &copy]));
    let c = listed(&ctx, &copy).expect("copy listed");
    assert_eq!(
        c["digest"],
        digest.strip_prefix("sha256:").unwrap(),
        "cp is a new name for the same manifest: {c}"
    );
    api_transfer(&ctx, "/api/push", &copy);
    let (_, pushed) = reg.get_manifest("ns/copy", "v1").expect("pushed");
    assert_eq!(sha256_digest(&pushed), digest);
}

#[test]
fn modelpack_and_docker_model_artifacts_pull_and_list() {
    let Some(reg) = DockerRegistry::start() else {
        return;
    };
    let ctx = TestContext::started();
    let gguf = tiny_gguf_bytes(&ctx);

    let mp = reg.publish_modelpack("ns/modelpack", "v1", &[(MODELPACK_WEIGHT_RAW, &gguf)]);
    let mp_name = reg.model("ns/modelpack", "v1");
    cli_ok(&ctx, &["pull", &mp_name, "--insecure"]);

    let dm = reg.publish_docker_model("ai/tiny", "v1", &[(DOCKER_AI_GGUF, &gguf)]);
    let dm_name = reg.model("ai/tiny", "v1");
    cli_ok(&ctx, &["pull", &dm_name, "--insecure"]);

    for (name, digest) in [(&mp_name, &mp), (&dm_name, &dm)] {
        let m =
            listed(&ctx, name).unwrap_or_else(|| panic!("{name} listed: {:?}", list_json(&ctx)));
        assert_eq!(
            m["digest"],
            digest.strip_prefix("sha256:").unwrap(),
            "{name}"
        );
        assert_eq!(m["details"]["format"], "gguf", "{name}: {m}");
        assert_eq!(m["details"]["family"], "llama", "{name}: {m}");
    }
    // One weights blob serves both models.
    let hex = sha256_digest(&gguf)["sha256:".len()..].to_owned();
    assert_eq!(ctx.blob_files().iter().filter(|f| **f == hex).count(), 1);
    let table = stdout(&ctx.cli(&["list"]));
    assert!(
        table.contains("ns/modelpack:v1") && table.contains("ai/tiny:v1"),
        "{table}"
    );
}

/// `skopeo`, or a skip (a failure under `LLMPM_TEST_STRICT=1`).
fn skopeo() -> Option<std::path::PathBuf> {
    let found = find_on_path("skopeo");
    if found.is_none() {
        llmpm_tests::skip("`skopeo` is not installed (apt-get install skopeo)");
    }
    found
}

/// The stored bytes of blob `digest` (`sha256:…` or bare hex).
fn stored(ctx: &TestContext, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    std::fs::read(ctx.home.join("blobs/sha256").join(hex)).unwrap()
}

#[test]
fn skopeo_reads_llmpmds_own_v2_byte_for_byte() {
    let Some(skopeo) = skopeo() else {
        return;
    };
    let ctx = TestContext::network_bound("interop-key");
    ctx.create_tiny("m", "SYSTEM You are terse.\n");
    let digest = listed(&ctx, "m:latest").expect("m listed")["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let image = format!("docker://127.0.0.1:{}/library/m:latest", ctx.port());
    let run = |args: &[&str]| {
        Command::new(&skopeo)
            .args(args)
            .output()
            .expect("run skopeo")
    };
    // Without the key: refused, through the Bearer challenge.
    let out = run(&["inspect", "--raw", "--tls-verify=false", &image]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));
    // With it (as the Basic password the token realm takes): the stored bytes.
    let creds = ["--creds", "anyone:interop-key", "--tls-verify=false"];
    let out = run(&[&["inspect", "--raw"][..], &creds, &[image.as_str()]].concat());
    assert_ok(&out);
    assert_eq!(out.stdout, stored(&ctx, &digest), "byte for byte");
    let repo = format!("docker://127.0.0.1:{}/library/m", ctx.port());
    let out = run(&[&["list-tags"][..], &creds, &[repo.as_str()]].concat());
    assert_ok(&out);
    let tags: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tags["Tags"], json!(["latest"]));
    // skopeo's own limit: no Ollama layer type inside a Docker v2 manifest.
    let dir = ctx.work.join("copied");
    let dest = format!("dir:{}", dir.display());
    let out = run(&[
        &[
            "copy",
            "--src-creds",
            "anyone:interop-key",
            "--src-tls-verify=false",
        ][..],
        &[image.as_str(), dest.as_str()],
    ]
    .concat());
    if !out.status.success() {
        assert!(
            stderr(&out).contains("unsupported docker v2s2 media type"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn skopeo_copies_a_modelpack_model_out_of_llmpmd() {
    let Some(skopeo) = skopeo() else {
        return;
    };
    let Some(reg) = DockerRegistry::start() else {
        return;
    };
    let ctx = TestContext::started();
    let gguf = tiny_gguf_bytes(&ctx);
    let mp = reg.publish_modelpack("ns/modelpack", "v1", &[(MODELPACK_WEIGHT_RAW, &gguf)]);
    cli_ok(
        &ctx,
        &["pull", &reg.model("ns/modelpack", "v1"), "--insecure"],
    );
    // Served under the upstream's host, the port as `_port`.
    let image = format!(
        "docker://127.0.0.1:{}/127.0.0.1_{}/ns/modelpack:v1",
        ctx.port(),
        reg.port()
    );
    let dir = ctx.work.join("copied");
    let out = Command::new(&skopeo)
        .args(["copy", "--src-tls-verify=false", &image])
        .arg(format!("dir:{}", dir.display()))
        .output()
        .unwrap();
    assert_ok(&out);
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    assert_eq!(sha256_digest(&manifest), mp, "the manifest as stored");
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
        let d = d["digest"].as_str().unwrap();
        let copied = std::fs::read(dir.join(d.strip_prefix("sha256:").unwrap())).unwrap();
        assert_eq!(sha256_digest(&copied), d);
        assert_eq!(copied, stored(&ctx, d));
    }
}
