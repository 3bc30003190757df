//! Hugging Face-style names end to end: a dotted host with two path parts, mixed-case repositories, quantization tags; pulled from Debian's `docker-registry`, then listed, shown, copied and removed by the real daemon and CLI.
//!
//! `hf.co` itself cannot be reached from the tests (no network), so the pull
//! goes to a local `docker-registry`. The OCI distribution spec allows only
//! lower-case repository names and `docker-registry` enforces it, so the
//! pulled name is the lower-case spelling; the mixed-case spellings go
//! through show, cp, create, list and rm, where llmpm matches names
//! case-insensitively and keeps the spelling first stored (SPEC.md, "Names").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use llmpm_spec::media_type::ollama;
use llmpm_tests::registry::distribution::DockerRegistry;
use llmpm_tests::registry::sha256_digest;
use llmpm_tests::{http, stderr, stdout, TestContext, TinyLlamaSpec};
use serde_json::{json, Value};

/// Every listed name, as `/api/tags` gives them.
fn tags(ctx: &TestContext) -> Vec<String> {
    let r = http::call_unix(&ctx.socket(), "GET", "/api/tags", b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let mut names: Vec<String> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// `POST /api/show` for `model`: its status and body.
fn api_show(ctx: &TestContext, model: &str) -> (u16, Value) {
    let r = ctx.post_json("/api/show", &json!({ "model": model }));
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn cli_ok(ctx: &TestContext, args: &[&str]) -> String {
    let out = ctx.cli(args);
    assert!(
        out.status.success(),
        "`llmpm {}` failed\nstdout:\n{}\nstderr:\n{}\ndaemon log:\n{}",
        args.join(" "),
        stdout(&out),
        stderr(&out),
        ctx.daemon_log()
    );
    stdout(&out)
}

#[test]
fn hugging_face_names_pull_list_show_copy_and_remove() {
    let Some(reg) = DockerRegistry::start() else {
        return;
    };
    let ctx = TestContext::started();
    let gguf = std::fs::read(ctx.tiny_gguf("tiny.gguf", &TinyLlamaSpec::default())).unwrap();
    let layers: &[(&str, &[u8])] = &[(ollama::MODEL, &gguf), (ollama::SYSTEM, b"Be brief.")];
    let repo = "bartowski/llama-3.2-1b-instruct-gguf";
    let digest = reg.publish_ollama_model(repo, "Q4_K_M", layers);
    let hex = digest.strip_prefix("sha256:").unwrap();

    // docker-registry refuses the mixed-case repository (the OCI rule); the
    // pull says so rather than storing anything.
    let mixed = format!("{}/Bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", reg.host());
    let out = ctx.cli(&["pull", &mixed, "--insecure"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let e = stderr(&out);
    assert!(
        e.contains("not found") && e.contains(&format!("try `{}/{repo}:Q4_K_M`", reg.host())),
        "{e}"
    );
    assert!(tags(&ctx).is_empty(), "{:?}", tags(&ctx));

    // A dotted host (with port), two path parts and a quantization tag.
    let pulled = reg.model(repo, "Q4_K_M");
    cli_ok(&ctx, &["pull", &pulled, "--insecure"]);
    assert_eq!(tags(&ctx), std::slice::from_ref(&pulled));

    // Shown by another spelling of the same name: the stored one comes back.
    let (status, s) = api_show(&ctx, &mixed);
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["system"], "Be brief.");
    let shown = cli_ok(&ctx, &["show", &mixed, "--system"]);
    assert!(shown.contains("Be brief."), "{shown}");
    // Tags keep their case: `q4_k_m` is another tag, not found.
    let (status, e) = api_show(&ctx, &format!("{}/{repo}:q4_k_m", reg.host()));
    assert_eq!(status, 404, "{e}");

    // Copied to hf.co and huggingface.co names in mixed case: kept as written.
    let hf = "hf.co/Bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M";
    let hface =
        "huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Llama-3.2-1B-Instruct-Q4_K_M.gguf";
    cli_ok(&ctx, &["cp", &pulled, hf]);
    cli_ok(&ctx, &["cp", hf, hface]);
    let mut want = vec![pulled.clone(), hf.to_owned(), hface.to_owned()];
    want.sort();
    assert_eq!(tags(&ctx), want);
    let list = cli_ok(&ctx, &["list"]);
    assert!(list.contains(hf) && list.contains(hface), "{list}");
    let r = http::call_unix(&ctx.socket(), "GET", "/api/tags", b"").unwrap();
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        v["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["digest"] == hex),
        "every name is the pulled manifest: {v}"
    );

    // Another spelling of an existing name is the same model: no second
    // entry, the first spelling stays.
    cli_ok(
        &ctx,
        &[
            "cp",
            &pulled,
            "HF.CO/bartowski/llama-3.2-1b-instruct-gguf:Q4_K_M",
        ],
    );
    assert_eq!(tags(&ctx), want);

    // A mixed-case name made by create, and used as a FROM.
    std::fs::write(
        ctx.work.join("Modelfile"),
        format!("FROM {hf}\nSYSTEM Be very brief.\n"),
    )
    .unwrap();
    let custom = "hf.co/Me/Custom-GGUF:Q8_0";
    cli_ok(&ctx, &["create", custom, "-f", "Modelfile"]);
    let (status, s) = api_show(&ctx, "hf.co/me/custom-gguf:Q8_0");
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["system"], "Be very brief.");
    assert!(tags(&ctx).contains(&custom.to_owned()));

    // Removed by any spelling; the blobs stay while a name uses them.
    cli_ok(
        &ctx,
        &["rm", "hf.co/bartowski/llama-3.2-1b-instruct-gguf:Q4_K_M"],
    );
    cli_ok(&ctx, &["rm", "HF.co/ME/CUSTOM-gguf:Q8_0"]);
    let mut want = vec![pulled.clone(), hface.to_owned()];
    want.sort();
    assert_eq!(tags(&ctx), want);
    assert!(ctx
        .blob_files()
        .contains(&sha256_digest(&gguf)[7..].to_owned()));
    cli_ok(&ctx, &["rm", hface]);
    cli_ok(&ctx, &["rm", &mixed]);
    assert!(tags(&ctx).is_empty(), "{:?}", tags(&ctx));
    assert!(ctx.blob_files().is_empty(), "{:?}", ctx.blob_files());
    let out = ctx.cli(&["rm", hf]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[test]
fn hostile_hugging_face_names_are_refused_with_400() {
    let ctx = TestContext::started();
    for bad in [
        "hf.co/bartowski/../../etc/passwd",
        "hf.co/bartowski/Llama:../../x",
        "hf.co/bartowski/Llama-GGUF/extra:Q4",
        "hf.co/Bart%2Fowski/Llama",
        "hf.co/bartowski/.Llama",
        "hf.co/bartowski/Llam\u{212a}",
    ] {
        let (status, e) = api_show(&ctx, bad);
        assert_eq!(status, 400, "{bad}: {e}");
        assert!(e["error"].as_str().unwrap().contains("model name"), "{e}");
        let r = ctx.post_json("/api/pull", &json!({ "model": bad, "insecure": true }));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}
