//! Signed models end to end: `llmpm sign` and push to Debian's `docker-registry` (no referrers API, so the `sha256-<hex>` tag), pulls into fresh homes under `trust_policy`.
//!
//! Accepted with the right key; refused, with nothing of the model in the
//! store, with another key, a deleted bundle, a replaced layer (a new
//! manifest), flipped signature bytes and a bundle for another manifest;
//! `warn` pulls and says why; `off` never asks for referrers. Bad input (an
//! answer that is not an index, a 100 MiB bundle, unknown key types) is a
//! clear error and the daemon serves on. Without `docker-registry` these
//! skip (fail under `LLMPM_TEST_STRICT=1`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use llmpm_tests::registry::distribution::DockerRegistry;
use llmpm_tests::registry::{sha256_digest, TestRegistry};
use llmpm_tests::{assert_ok, http, stdout, TestContext, TinyLlamaSpec};
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A publisher: a daemon with models `m` and `m2` and two key pairs.
fn publisher() -> TestContext {
    let ctx = TestContext::started();
    ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default());
    for (name, system) in [("m", "You are terse."), ("m2", "You are verbose.")] {
        std::fs::write(
            ctx.work.join("Modelfile"),
            format!("FROM ./tiny.gguf\nSYSTEM {system}\n"),
        )
        .unwrap();
        assert_ok(&ctx.cli(&["create", name, "-f", "Modelfile"]));
    }
    assert_ok(&ctx.cli(&["keygen", "--out", "k1"]));
    assert_ok(&ctx.cli(&["keygen", "--type", "ed25519", "--out", "k2"]));
    ctx
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt as _;
    let ctx = TestContext::started();
    assert_ok(&ctx.cli(&["keygen", "--out", "k"]));
    let mode = |f: &str| {
        std::fs::metadata(ctx.work.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("k.key"), 0o600);
    let key = std::fs::read_to_string(ctx.work.join("k.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    let again = ctx.cli(&["keygen", "--out", "k"]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "{}",
        llmpm_tests::stderr(&again)
    );
    assert_eq!(
        std::fs::read_to_string(ctx.work.join("k.key")).unwrap(),
        key
    );
    let bad = ctx.cli(&["keygen", "--type", "rsa", "--out", "r"]);
    assert!(
        llmpm_tests::stderr(&bad).contains("use `ecdsa-p256` or `ed25519`"),
        "{}",
        llmpm_tests::stderr(&bad)
    );
}

#[test]
fn two_signers_both_reach_the_registry_and_either_key_is_enough() {
    let Some(reg) = DockerRegistry::start() else {
        return;
    };
    let p = publisher();
    let m = reg.model("ns/two", "v1");
    assert_ok(&p.cli(&["cp", "m", &m]));
    assert_ok(&p.cli(&["sign", &m, "--key", "k1.key"]));
    assert_ok(&p.cli(&["sign", &m, "--key", "k2.key"]));
    assert_ok(&p.cli(&["push", &m, "--insecure"]));
    // Pushing again adds nothing to the fallback index.
    assert_ok(&p.cli(&["push", &m, "--insecure"]));
    let (_, raw) = reg.get_manifest("ns/two", "v1").unwrap();
    let (_, idx) = reg
        .get_manifest("ns/two", &sha256_digest(&raw).replace(':', "-"))
        .unwrap();
    let idx: Value = serde_json::from_slice(&idx).unwrap();
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 2, "{idx}");
    let ed = consumer("require", &[p.work.join("k2.pub")]);
    let lines = assert_pulled(&ed, &m);
    assert!(
        lines.iter().any(|l| l["status"] == "signed by k2.pub"),
        "{lines:?}"
    );
    let show = ed.cli(&["show", &m, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&show)).unwrap();
    let sigs = v["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 2, "{v}");
    assert_eq!(
        sigs.iter().filter(|s| s["verified"] == true).count(),
        1,
        "{v}"
    );
    assert!(sigs.iter().all(|s| s["created"].is_string()), "{v}");
}

/// A fresh home whose config trusts `keys` for every name in `mode`.
fn consumer(mode: &str, keys: &[std::path::PathBuf]) -> TestContext {
    let mut ctx = TestContext::new();
    let keys: Vec<String> = keys
        .iter()
        .map(|k| format!("      - path: {}\n", k.display()))
        .collect();
    let policy = format!(
        "trust_policy:\n  - scope: \"*\"\n    mode: {mode}\n    keys:\n{}",
        if keys.is_empty() {
            "      []\n".to_owned()
        } else {
            keys.concat()
        }
    );
    std::fs::write(ctx.dir.path().join("none.yaml"), policy).unwrap();
    ctx.start();
    ctx
}

/// Pulls over the API; returns the NDJSON lines (the last is `success` or an error).
fn pull(ctx: &TestContext, model: &str) -> Vec<Value> {
    let body = json!({"model": model, "insecure": true}).to_string();
    let r = http::call_unix(&ctx.socket(), "POST", "/api/pull", body.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.ndjson()
}

/// Asserts a pull was refused for `why` and left nothing of the model behind.
fn assert_refused(ctx: &TestContext, model: &str, why: &str) {
    let lines = pull(ctx, model);
    let err = lines
        .last()
        .and_then(|l| l["error"].as_str())
        .unwrap_or_else(|| panic!("pull of {model} was not refused: {lines:?}"))
        .to_owned();
    assert!(err.contains("refusing") && err.contains(why), "{err}");
    assert!(err.contains("nothing was stored"), "{err}");
    let list = ctx.cli(&["list", "--json"]);
    let v: Value = serde_json::from_str(&stdout(&list)).unwrap();
    assert_eq!(v["models"], json!([]), "a refused model is listed");
    assert_eq!(
        ctx.blob_files(),
        Vec::<String>::new(),
        "a refused pull left blobs"
    );
    assert_eq!(http::get_unix(&ctx.socket(), "/").unwrap().status, 200);
}

fn assert_pulled(ctx: &TestContext, model: &str) -> Vec<Value> {
    let lines = pull(ctx, model);
    assert_eq!(
        lines.last().map(|l| l["status"].clone()),
        Some(json!("success")),
        "{lines:?}\n{}",
        ctx.daemon_log()
    );
    lines
}

/// The signature index at the fallback tag, its artifact manifest and bundle.
fn remote_signature(reg: &DockerRegistry, repo: &str, subject: &str) -> (Value, Value, Value) {
    let tag = subject.replace(':', "-");
    let (ct, idx) = reg
        .get_manifest(repo, &tag)
        .expect("the sha256-<hex> tag exists");
    assert_eq!(ct, OCI_INDEX);
    let idx: Value = serde_json::from_slice(&idx).unwrap();
    let entry = &idx["manifests"][0];
    assert_eq!(entry["artifactType"], BUNDLE_TYPE);
    let (_, art) = reg
        .get_manifest(repo, entry["digest"].as_str().unwrap())
        .unwrap();
    let art: Value = serde_json::from_slice(&art).unwrap();
    assert_eq!(art["subject"]["digest"], subject);
    let bundle = reg
        .get_blob(repo, art["layers"][0]["digest"].as_str().unwrap())
        .unwrap();
    (idx, art, serde_json::from_slice(&bundle).unwrap())
}

/// Replaces `subject`'s referrers with one artifact holding `bundle`.
fn attach(reg: &DockerRegistry, repo: &str, subject: &str, subject_size: u64, bundle: &[u8]) {
    let empty = reg.add_blob(repo, b"{}");
    let b = reg.add_blob(repo, bundle);
    let art = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": BUNDLE_TYPE, "digest": b, "size": bundle.len()}],
        "subject": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "digest": subject, "size": subject_size},
    });
    let art = serde_json::to_vec(&art).unwrap();
    let ad = reg.put_manifest(repo, &sha256_digest(&art), OCI_MANIFEST, &art);
    let idx = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": ad, "size": art.len(), "artifactType": BUNDLE_TYPE}]});
    reg.put_manifest(
        repo,
        &subject.replace(':', "-"),
        OCI_INDEX,
        &serde_json::to_vec(&idx).unwrap(),
    );
}

#[test]
fn require_accepts_the_right_key_and_refuses_every_tampering() {
    let Some(reg) = DockerRegistry::start() else {
        return;
    };
    let p = publisher();
    let (k1, k2) = (p.work.join("k1.pub"), p.work.join("k2.pub"));
    assert_ok(&p.cli(&["sign", "m", "--key", "k1.key"]));
    assert_ok(&p.cli(&["sign", "m2", "--key", "k1.key"]));
    let (m, m2) = (reg.model("ns/m", "v1"), reg.model("ns/m2", "v1"));
    for (local, remote) in [("m", &m), ("m2", &m2)] {
        assert_ok(&p.cli(&["cp", local, remote]));
        let out = p.cli(&["push", remote, "--insecure"]);
        assert_ok(&out);
    }
    let (_, raw) = reg.get_manifest("ns/m", "v1").unwrap();
    let subject = sha256_digest(&raw);
    let (_, _, bundle) = remote_signature(&reg, "ns/m", &subject);

    // The right key: accepted, and the signature is kept and shown.
    let ok = consumer("require", std::slice::from_ref(&k1));
    let lines = assert_pulled(&ok, &m);
    assert!(
        lines.iter().any(|l| l["status"] == "signed by k1.pub"),
        "{lines:?}"
    );
    let show = ok.cli(&["show", &m]);
    assert_ok(&show);
    assert!(
        stdout(&show).contains("signed by k1.pub"),
        "{}",
        stdout(&show)
    );
    assert_ok(&ok.cli(&["verify", "--signatures", &m]));

    // Another key.
    let other = consumer("require", std::slice::from_ref(&k2));
    assert_refused(&other, &m, "no trusted key verifies the signature");
    // An unknown key type in the bundle.
    let mut odd = bundle.clone();
    odd["verificationMaterial"]["publicKey"]["keyDetails"] = json!("PKIX_RSA_PKCS1V15_2048_SHA256");
    attach(
        &reg,
        "ns/m",
        &subject,
        raw.len() as u64,
        &serde_json::to_vec(&odd).unwrap(),
    );
    assert_refused(
        &other,
        &m,
        "key type `PKIX_RSA_PKCS1V15_2048_SHA256` is not supported",
    );

    let fresh = || consumer("require", std::slice::from_ref(&k1));
    // The signature bytes flipped.
    let mut flipped = bundle.clone();
    let sig = flipped["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap();
    let mut raw_sig = B64.decode(sig).unwrap();
    let n = raw_sig.len();
    raw_sig[n - 2] ^= 0x40;
    flipped["dsseEnvelope"]["signatures"][0]["sig"] = json!(B64.encode(raw_sig));
    attach(
        &reg,
        "ns/m",
        &subject,
        raw.len() as u64,
        &serde_json::to_vec(&flipped).unwrap(),
    );
    assert_refused(&fresh(), &m, "no trusted key verifies the signature");

    // A good bundle for another manifest (m2's), attached to m.
    let (_, raw2) = reg.get_manifest("ns/m2", "v1").unwrap();
    let (_, _, bundle2) = remote_signature(&reg, "ns/m2", &sha256_digest(&raw2));
    attach(
        &reg,
        "ns/m",
        &subject,
        raw.len() as u64,
        &serde_json::to_vec(&bundle2).unwrap(),
    );
    assert_refused(&fresh(), &m, &format!("not `{subject}`"));

    // One layer's bytes replaced: a new manifest, which nobody signed.
    let mut man: Value = serde_json::from_slice(&raw).unwrap();
    let sys = reg.add_blob("ns/m", b"You are evil.");
    let layers = man["layers"].as_array_mut().unwrap();
    let l = layers
        .iter_mut()
        .find(|l| l["mediaType"] == "application/vnd.ollama.image.system")
        .unwrap();
    l["digest"] = json!(sys);
    l["size"] = json!(13);
    let evil = serde_json::to_vec(&man).unwrap();
    reg.put_manifest(
        "ns/m",
        "evil",
        "application/vnd.docker.distribution.manifest.v2+json",
        &evil,
    );
    assert_refused(&fresh(), &reg.model("ns/m", "evil"), "has no signature");

    // The bundle deleted.
    let tag = subject.replace(':', "-");
    let (_, cur) = reg.get_manifest("ns/m", &tag).unwrap();
    reg.delete_manifest("ns/m", &sha256_digest(&cur));
    assert_refused(&fresh(), &m, "has no signature");

    // `warn` pulls the unsigned model and says why.
    let warn = consumer("warn", std::slice::from_ref(&k1));
    let lines = assert_pulled(&warn, &m);
    assert!(
        lines.iter().any(|l| l["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("warning: the signature does not verify")
                && s.contains("has no signature"))),
        "{lines:?}"
    );
}

#[test]
fn off_never_asks_for_referrers_and_warn_does() {
    let reg = TestRegistry::start();
    reg.publish_ollama_model(
        "ns/u",
        "v1",
        &[("application/vnd.ollama.image.system", b"hi")],
    );
    let off = TestContext::started();
    assert_pulled(&off, &reg.model("ns/u", "v1"));
    let asked = |r: &TestRegistry| {
        r.requests()
            .iter()
            .any(|q| q.path.contains("/referrers/") || q.path.contains("/manifests/sha256-"))
    };
    assert!(!asked(&reg), "{:?}", reg.requests());
    let warn = consumer("warn", &[]);
    let lines = assert_pulled(&warn, &reg.model("ns/u", "v1"));
    assert!(asked(&reg), "{:?}", reg.requests());
    assert!(
        lines.iter().any(|l| l["status"]
            .as_str()
            .is_some_and(|s| s.contains("has no signature"))),
        "{lines:?}"
    );
}

#[test]
fn bad_referrers_and_bundles_are_clear_errors_and_the_daemon_serves_on() {
    let Some(reg) = DockerRegistry::start() else {
        return;
    };
    let p = publisher();
    let m = reg.model("ns/b", "v1");
    assert_ok(&p.cli(&["cp", "m", &m]));
    assert_ok(&p.cli(&["push", &m, "--insecure"]));
    let (_, raw) = reg.get_manifest("ns/b", "v1").unwrap();
    let subject = sha256_digest(&raw);
    let tag = subject.replace(':', "-");
    let ctx = consumer("require", &[p.work.join("k1.pub")]);

    // The fallback tag holds an image manifest, not an index.
    reg.put_manifest(
        "ns/b",
        &tag,
        "application/vnd.docker.distribution.manifest.v2+json",
        &raw,
    );
    assert_refused(&ctx, &m, "is not an OCI image index");

    // A 100 MiB bundle: refused by its declared size, never fetched.
    let big = vec![b' '; 100 * 1024 * 1024];
    reg.delete_manifest("ns/b", &subject); // drops the tag too; push the model again
    assert_ok(&p.cli(&["push", &m, "--insecure"]));
    attach(&reg, "ns/b", &subject, raw.len() as u64, &big);
    assert_refused(&ctx, &m, "llmpm reads bundles of at most 1048576 bytes");

    // A certificate bundle (here an expired one): refused, saying whose and why.
    let cert = "MIIBJjCBzaADAgECAgEBMAoGCCqGSM49BAMCMB0xGzAZBgNVBAMMEnNpZ25lckBleGFtcGxlLmNvbTAeFw0yMDAxMDEwMDAwMDBaFw0yMDAxMDIwMDAwMDBaMB0xGzAZBgNVBAMMEnNpZ25lckBleGFtcGxlLmNvbTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABKFBdBU0Le89BWAv36PrL+bmZct7spap4BBwMf8rtk8KfK2f19bMViUghmI0kYGZe6eRBaTaKDKOV1h3QdFfpNkwCgYIKoZIzj0EAwIDSAAwRQIhAKNxiFUduy5VtV0ZUbzE1LTJLYy8DdPxTMAa5WNOa5MvAiAD98yBeOOFG2ZT/Y0iPeOGocDbYbK2G4QagTQEtue1Nw==";
    let certified = json!({"mediaType": BUNDLE_TYPE,
        "verificationMaterial": {"certificate": {"rawBytes": cert}, "tlogEntries": []},
        "dsseEnvelope": {"payload": "e30=", "payloadType": "application/vnd.in-toto+json",
                         "signatures": [{"sig": "MEUCIQ==", "keyid": ""}]}});
    attach(
        &reg,
        "ns/b",
        &subject,
        raw.len() as u64,
        &serde_json::to_vec(&certified).unwrap(),
    );
    assert_refused(&ctx, &m, "valid until 2020-01-02T00:00:00Z, expired");

    // A trusted key of an unknown type: the pull says which and why.
    let rsa = ctx.work.join("rsa.pub");
    std::fs::write(&rsa, "-----BEGIN PUBLIC KEY-----\nMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDidTvHoshmCRDf0bC33Z3P9pqa\n4p+x59jbOLc9f0DWHBMdYzOc00l6sH1FPKRGvm74lqRy5JETbgxeZnw2dV/bBknr\nJVmGSy0QAuG9W4tdRtX2h6pBMyV4/n+tIZXJhGQY+Vp7clG7gtSBgY8rPQKSvChF\noAtCPxY7rJHhqsZd/QIDAQAB\n-----END PUBLIC KEY-----\n").unwrap();
    let rsa_ctx = consumer("require", std::slice::from_ref(&rsa));
    assert_refused(
        &rsa_ctx,
        &m,
        "is an RSA key; llmpm signs and verifies with ECDSA P-256 and Ed25519 keys only",
    );

    // Signing with a key llmpm does not take is a 400 naming the key.
    let r = p.post_json("/api/sign", &json!({"model": "m", "key": "not a key"}));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("`key` is not a PEM key"), "{}", r.text());
    assert_eq!(http::get_unix(&ctx.socket(), "/").unwrap().status, 200);
}
