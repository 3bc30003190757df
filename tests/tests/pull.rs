//! Pull and push against the test registry: progress, resume, faults, auth, redirects, dedup and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use llmpm_tests::http::call_unix;
use llmpm_tests::registry::{sha256_digest, Fault, TestRegistry, ALWAYS};
use llmpm_tests::{assert_ok, stderr, TestContext, TinyLlamaSpec};
use serde_json::{json, Value};

const PART: u64 = 64 * 1024;
const MODEL: &str = "application/vnd.ollama.image.model";
const TEMPLATE: &str = "application/vnd.ollama.image.template";
const PARAMS: &str = "application/vnd.ollama.image.params";

/// A daemon with small parts, so a test blob has many.
fn context(concurrency: u32) -> TestContext {
    let mut ctx = TestContext::new();
    ctx.daemon_env = vec![
        ("LLMPM_PULL_PART_SIZE".into(), PART.to_string()),
        ("LLMPM_PULL_CONCURRENCY".into(), concurrency.to_string()),
        ("LLMPM_PULL_STALL_TIMEOUT".into(), "2s".into()),
    ];
    ctx.start();
    ctx
}

/// Deterministic bytes that do not compress to nothing.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn pull(ctx: &TestContext, name: &str) -> Vec<Value> {
    let body = json!({"model": name, "insecure": true}).to_string();
    let r = call_unix(&ctx.socket(), "POST", "/api/pull", body.as_bytes()).unwrap();
    if r.status != 200 {
        return vec![r.json()];
    }
    r.ndjson()
}

fn push(ctx: &TestContext, name: &str) -> Vec<Value> {
    let body = json!({"model": name, "insecure": true}).to_string();
    let r = call_unix(&ctx.socket(), "POST", "/api/push", body.as_bytes()).unwrap();
    if r.status != 200 {
        return vec![r.json()];
    }
    r.ndjson()
}

fn succeeded(lines: &[Value]) -> bool {
    lines.last().and_then(|l| l["status"].as_str()) == Some("success")
}

fn error_of(lines: &[Value]) -> String {
    let e = lines.last().and_then(|l| l["error"].as_str());
    assert!(e.is_some(), "expected an error, got {lines:?}");
    e.unwrap_or_default().to_owned()
}

fn models(ctx: &TestContext) -> Vec<(String, String)> {
    let r = call_unix(&ctx.socket(), "GET", "/api/tags", b"").unwrap();
    r.json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
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

fn hex(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_owned()
}

/// Publishes `ns/m:tag` with weights, a template and params; returns the weights' digest.
fn publish(
    reg: &TestRegistry,
    repo: &str,
    tag: &str,
    weights: &[u8],
    template: &str,
) -> (String, String) {
    let m = reg.publish_ollama_model(
        repo,
        tag,
        &[
            (MODEL, weights),
            (TEMPLATE, template.as_bytes()),
            (PARAMS, br#"{"temperature":0.5}"#),
        ],
    );
    (sha256_digest(weights), m)
}

#[test]
fn pulls_an_ollama_model_with_ollama_progress_and_the_registry_digest() {
    let reg = TestRegistry::start();
    let ctx = context(4);
    let gguf = std::fs::read(ctx.tiny_gguf("w.gguf", &TinyLlamaSpec::default())).unwrap();
    let (w, manifest) = publish(&reg, "library/tiny", "v1", &gguf, "{{ .Prompt }}");
    let name = reg.model("library/tiny", "v1");
    let lines = pull(&ctx, &name);
    assert!(succeeded(&lines), "{lines:?}");
    let statuses: Vec<&str> = lines.iter().filter_map(|l| l["status"].as_str()).collect();
    assert_eq!(statuses.first(), Some(&"pulling manifest"));
    let short = &hex(&w)[..12];
    let layer = lines
        .iter()
        .find(|l| l["status"] == format!("pulling {short}").as_str())
        .expect("a progress line for the weights");
    assert_eq!(layer["digest"], w.as_str());
    assert_eq!(layer["total"], gguf.len() as u64);
    let tail: Vec<&str> = statuses.iter().rev().take(3).rev().copied().collect();
    assert_eq!(
        tail,
        ["verifying sha256 digest", "writing manifest", "success"]
    );
    // Stored byte for byte: the local id is the registry's digest.
    let m = models(&ctx);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].1, hex(&manifest));
    assert!(ctx.blob_files().contains(&hex(&w)));
    assert_eq!(
        std::fs::read(ctx.home.join("blobs/sha256").join(hex(&w))).unwrap(),
        gguf
    );
    let show = call_unix(
        &ctx.socket(),
        "POST",
        "/api/show",
        json!({"model": name}).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(show.status, 200, "{}", show.text());
    assert_eq!(show.json()["template"], "{{ .Prompt }}");

    // Pulled again: nothing is fetched, the answer is the same.
    reg.reset_counters();
    assert!(succeeded(&pull(&ctx, &name)));
    assert_eq!(reg.blob_bytes_served(), 0);
    assert!(tmp_files(&ctx).is_empty(), "{:?}", tmp_files(&ctx));
}

#[test]
fn the_cli_pulls_and_lists_with_insecure() {
    let reg = TestRegistry::start();
    let ctx = context(2);
    publish(&reg, "ns/m", "latest", &bytes(100_000, 1), "t");
    let name = reg.model("ns/m", "latest");
    let out = ctx.cli(&["pull", &name, "--insecure"]);
    assert_ok(&out);
    assert!(stderr(&out).contains("success"), "{}", stderr(&out));
    let list = ctx.cli(&["list"]);
    assert_ok(&list);
    assert!(String::from_utf8_lossy(&list.stdout).contains("ns/m:latest"));
}

#[test]
fn a_dropped_connection_resumes_without_refetching_finished_parts() {
    let reg = TestRegistry::start();
    let ctx = context(1);
    let weights = bytes(16 * PART as usize, 2);
    let (w, _) = publish(&reg, "ns/drop", "v1", &weights, "t");
    // The connection drops 3 parts in, after 1000 bytes of the 4th part.
    reg.faults().set(Fault::DropAfter {
        digest: Some(w.clone()),
        after: 1000,
        times: 1,
    });
    let lines = pull(&ctx, &reg.model("ns/drop", "v1"));
    assert!(succeeded(&lines), "{lines:?}");
    let served = reg.served(&w);
    // Every byte once, plus at most the 1000 bytes the dropped request carried.
    assert!(served.bytes <= weights.len() as u64 + 1000, "{served:?}");
    assert!(served.gets >= 17, "one retry: {served:?}");
    assert_eq!(
        std::fs::read(ctx.home.join("blobs/sha256").join(hex(&w))).unwrap(),
        weights
    );
}

#[test]
fn wrong_bytes_are_rejected_naming_the_digest_and_nothing_is_stored() {
    let reg = TestRegistry::start();
    let ctx = context(4);
    let (w, _) = publish(&reg, "ns/bad", "v1", &bytes(300_000, 3), "t");
    reg.faults().set(Fault::WrongBytes { digest: w.clone() });
    let lines = pull(&ctx, &reg.model("ns/bad", "v1"));
    let e = error_of(&lines);
    assert!(e.contains(&w), "{e}");
    assert!(models(&ctx).is_empty());
    assert!(!ctx.blob_files().contains(&hex(&w)));
    assert!(tmp_files(&ctx).is_empty(), "{:?}", tmp_files(&ctx));
}

#[test]
fn status_429_and_503_are_retried() {
    let reg = TestRegistry::start();
    let ctx = context(2);
    publish(&reg, "ns/busy", "v1", &bytes(200_000, 4), "t");
    reg.faults().set(Fault::Status {
        path: "/manifests/".into(),
        status: 429,
        retry_after: Some(0),
        times: 2,
    });
    reg.faults().set(Fault::Status {
        path: "/blobs/".into(),
        status: 503,
        retry_after: None,
        times: 3,
    });
    let lines = pull(&ctx, &reg.model("ns/busy", "v1"));
    assert!(succeeded(&lines), "{lines:?}");
    assert!(reg.faults().armed().is_empty(), "every fault was hit");
}

#[test]
fn the_bearer_challenge_is_answered_anonymously_and_with_a_login() {
    let reg = TestRegistry::start();
    let ctx = context(2);
    publish(&reg, "ns/auth", "v1", &bytes(100_000, 5), "t");
    reg.faults().set(Fault::BearerAuth { credentials: None });
    assert!(succeeded(&pull(&ctx, &reg.model("ns/auth", "v1"))));
    assert!(reg.tokens_issued() >= 1);

    reg.faults().clear();
    reg.faults().set(Fault::BearerAuth {
        credentials: Some(("alice".into(), "s3cret".into())),
    });
    publish(&reg, "ns/auth", "v2", &bytes(100_000, 6), "t2");
    let e = error_of(&pull(&ctx, &reg.model("ns/auth", "v2")));
    assert!(e.contains("llmpm login"), "{e}");

    let mut login = ctx
        .cli_cmd(&["login", &reg.host(), "-u", "alice", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    login.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = login.wait_with_output().unwrap();
    assert_ok(&out);
    let creds = ctx.home.join("credentials.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&creds).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(succeeded(&pull(&ctx, &reg.model("ns/auth", "v2"))));
    assert_ok(&ctx.cli(&["logout", &reg.host()]));
}

#[test]
fn a_cross_host_redirect_is_followed_without_authorization() {
    let reg = TestRegistry::start();
    let ctx = context(2);
    let (w, _) = publish(&reg, "ns/cdn", "v1", &bytes(300_000, 7), "t");
    reg.faults().set(Fault::BearerAuth { credentials: None });
    reg.faults().set(Fault::RedirectBlobs);
    let lines = pull(&ctx, &reg.model("ns/cdn", "v1"));
    assert!(succeeded(&lines), "{lines:?}");
    let reqs = reg.requests();
    let other: Vec<_> = reqs.iter().filter(|r| r.redirect_host).collect();
    assert!(!other.is_empty(), "blobs came from the other host");
    assert!(other.iter().all(|r| !r.authorization), "{other:?}");
    assert!(reqs
        .iter()
        .any(|r| !r.redirect_host && r.authorization && r.path.contains("/blobs/")));
    assert!(ctx.blob_files().contains(&hex(&w)));
}

#[test]
fn a_killed_daemon_resumes_and_refetches_less_than_one_part() {
    let reg = TestRegistry::start();
    let mut ctx = context(1);
    let weights = bytes(24 * PART as usize, 8);
    let (w, _) = publish(&reg, "ns/crash", "v1", &weights, "t");
    // Every part request pauses after 1000 bytes, so the pull takes seconds.
    reg.faults().set(Fault::Stall {
        digest: Some(w.clone()),
        after: 1000,
        pause: Duration::from_millis(150),
        times: ALWAYS,
    });
    let sock = ctx.socket();
    let name = reg.model("ns/crash", "v1");
    let body = json!({"model": name, "insecure": true}).to_string();
    let bg = std::thread::spawn(move || call_unix(&sock, "POST", "/api/pull", body.as_bytes()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while reg.served(&w).bytes < weights.len() as u64 / 2 {
        assert!(Instant::now() < deadline, "the pull did not progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    ctx.daemon().kill9();
    let _ = bg.join();
    let before = reg.served(&w).bytes;
    assert!(before < weights.len() as u64, "killed mid-pull");
    reg.faults().clear();
    reg.reset_counters();
    ctx.start();
    let lines = pull(&ctx, &name);
    assert!(succeeded(&lines), "{lines:?}");
    let after = reg.served(&w).bytes;
    let refetched = (before + after).saturating_sub(weights.len() as u64);
    // At most the part that was in flight when the daemon died.
    assert!(
        refetched <= PART,
        "re-downloaded {refetched} bytes (before {before}, after {after})"
    );
    assert_eq!(
        std::fs::read(ctx.home.join("blobs/sha256").join(hex(&w))).unwrap(),
        weights
    );
}

#[test]
fn a_second_model_fetches_only_new_layers_and_concurrent_pulls_share_blobs() {
    let reg = TestRegistry::start();
    let ctx = context(2);
    let weights = bytes(8 * PART as usize, 9);
    let (w, _) = publish(&reg, "ns/a", "v1", &weights, "template one");
    publish(&reg, "ns/b", "v1", &weights, "template two");
    assert!(succeeded(&pull(&ctx, &reg.model("ns/a", "v1"))));
    reg.reset_counters();
    assert!(succeeded(&pull(&ctx, &reg.model("ns/b", "v1"))));
    assert_eq!(reg.served(&w).bytes, 0, "shared weights not fetched again");
    assert!(reg.served(&sha256_digest(b"template two")).bytes > 0);

    // Two pulls of one model at once: each blob crosses the wire once.
    let big = bytes(12 * PART as usize, 10);
    let (bw, _) = publish(&reg, "ns/c", "v1", &big, "t");
    reg.faults().set(Fault::Stall {
        digest: Some(bw.clone()),
        after: 1000,
        pause: Duration::from_millis(100),
        times: ALWAYS,
    });
    reg.reset_counters();
    let name = reg.model("ns/c", "v1");
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let sock = ctx.socket();
            let body = json!({"model": name, "insecure": true}).to_string();
            std::thread::spawn(move || {
                call_unix(&sock, "POST", "/api/pull", body.as_bytes()).unwrap()
            })
        })
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        let lines = r.ndjson();
        assert!(succeeded(&lines), "{lines:?}");
        assert!(lines
            .iter()
            .any(|l| l["digest"] == bw.as_str() && l["completed"].as_u64() > Some(0)));
    }
    assert_eq!(reg.served(&bw).bytes, big.len() as u64);
}

/// A manifest of one weights layer described by `layer` (media type, digest, size).
fn manifest_with(layer: Value) -> Vec<u8> {
    let config = b"{}";
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": sha256_digest(config), "size": 2},
        "layers": [layer],
    }))
    .unwrap()
}

#[test]
fn bad_input_is_refused_clearly_and_nothing_is_stored() {
    let reg = TestRegistry::start();
    let ctx = context(2);
    let docker = "application/vnd.docker.distribution.manifest.v2+json";
    reg.add_blob("ns/x", b"{}".to_vec());
    let blob = bytes(200_000, 11);
    let d = reg.add_blob("ns/x", blob.clone());
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "huge",
            {
                let mut m =
                    manifest_with(json!({"mediaType": MODEL, "digest": d, "size": blob.len()}));
                m.pop();
                m.extend_from_slice(
                    format!(",\"annotations\":{{\"pad\":\"{}\"}}}}", "x".repeat(5 << 20))
                        .as_bytes(),
                );
                m
            },
            docker,
            "4 MiB",
        ),
        (
            "md5",
            manifest_with(
                json!({"mediaType": MODEL, "digest": format!("md5:{}", "a".repeat(32)), "size": 1}),
            ),
            docker,
            "unsupported algorithm",
        ),
        (
            "short",
            manifest_with(json!({"mediaType": MODEL, "digest": "sha256:abc", "size": 1})),
            docker,
            "hex digits",
        ),
        (
            "larger",
            manifest_with(json!({"mediaType": MODEL, "digest": d, "size": blob.len() - 10})),
            docker,
            "declares",
        ),
        (
            "smaller",
            manifest_with(json!({"mediaType": MODEL, "digest": d, "size": blob.len() + 10})),
            docker,
            "declares",
        ),
        (
            "ctype",
            manifest_with(json!({"mediaType": MODEL, "digest": d, "size": blob.len()})),
            "application/vnd.oci.image.manifest.v1+json",
            "Content-Type",
        ),
    ];
    for (tag, bytes, ctype, want) in cases {
        reg.put_manifest("ns/x", tag, ctype, bytes);
        let e = error_of(&pull(&ctx, &reg.model("ns/x", tag)));
        assert!(e.contains(want), "{tag}: {e}");
        if tag == "larger" || tag == "smaller" {
            assert!(e.contains(&d), "{tag}: {e}");
        }
    }
    reg.publish_index_loop("ns/x", "loop");
    let e = error_of(&pull(&ctx, &reg.model("ns/x", "loop")));
    assert!(e.contains("index") || e.contains("hash to"), "loop: {e}");
    reg.put_manifest(
        "ns/x",
        "endless",
        docker,
        manifest_with(json!({"mediaType": MODEL, "digest": d, "size": blob.len()})),
    );
    reg.faults().set(Fault::EndlessBody {
        path: "/manifests/endless".into(),
    });
    let e = error_of(&pull(&ctx, &reg.model("ns/x", "endless")));
    assert!(e.contains("4 MiB"), "endless manifest: {e}");
    // An endless blob body is cut at the part end, and past the declared size it fails.
    let (w, _) = publish(&reg, "ns/y", "v1", &bytes(3 * PART as usize + 7, 12), "t");
    reg.faults().set(Fault::EndlessBody { path: w.clone() });
    let e = error_of(&pull(&ctx, &reg.model("ns/y", "v1")));
    assert!(e.contains(&w), "endless blob: {e}");
    assert!(!ctx.blob_files().contains(&hex(&w)));

    assert!(models(&ctx).is_empty());
    assert!(
        !ctx.blob_files().contains(&hex(&d)),
        "{:?}",
        ctx.blob_files()
    );
    // A rejected blob leaves no partial file; sibling downloads a failure
    // cut short keep theirs (and their journal) for the next pull.
    let tmp = tmp_files(&ctx);
    assert!(
        !tmp.iter()
            .any(|f| f.starts_with(&hex(&d)) || f.starts_with(&hex(&w))),
        "{tmp:?}"
    );
}

#[test]
fn push_uploads_mounts_and_pulls_back_byte_identical() {
    let reg = TestRegistry::start();
    let ctx = context(2);
    let gguf = std::fs::read(ctx.tiny_gguf("p.gguf", &TinyLlamaSpec::default())).unwrap();
    assert!(
        gguf.len() as u64 > PART,
        "chunked upload needs a blob over one part"
    );
    let d = sha256_digest(&gguf);
    let up = call_unix(&ctx.socket(), "POST", &format!("/api/blobs/{d}"), &gguf).unwrap();
    assert_eq!(up.status, 201, "{}", up.text());
    let name = reg.model("ns/pushed", "v1");
    let create = json!({"model": name, "files": {"p.gguf": d}, "system": "terse", "stream": false});
    let r = call_unix(
        &ctx.socket(),
        "POST",
        "/api/create",
        create.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let local = models(&ctx)[0].1.clone();

    let lines = push(&ctx, &name);
    assert!(succeeded(&lines), "{lines:?}");
    let statuses: Vec<&str> = lines.iter().filter_map(|l| l["status"].as_str()).collect();
    assert_eq!(statuses.first(), Some(&"retrieving manifest"));
    assert!(statuses.contains(&"pushing manifest"));
    assert!(statuses.contains(&format!("pushing {}", &hex(&d)[..12]).as_str()));
    assert_eq!(reg.blob(&d).as_deref(), Some(&gguf[..]));
    let pushed = reg.manifest("ns/pushed", "v1").unwrap();
    assert_eq!(sha256_digest(&pushed.bytes), format!("sha256:{local}"));
    assert_eq!(
        pushed.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert!(
        reg.requests().iter().any(|r| r.method == "PATCH"),
        "chunked upload"
    );

    // Another repository of the same registry: blobs are mounted, not sent.
    let other = reg.model("ns/other", "v1");
    let cp = json!({"source": name, "destination": other}).to_string();
    assert_eq!(
        call_unix(&ctx.socket(), "POST", "/api/copy", cp.as_bytes())
            .unwrap()
            .status,
        200
    );
    reg.reset_counters();
    assert!(succeeded(&push(&ctx, &other)));
    assert!(
        reg.requests().iter().any(|r| r.path.contains("mount=")),
        "{:?}",
        reg.requests()
    );
    assert!(!reg.requests().iter().any(|r| r.method == "PATCH"));
    assert!(reg.has_blob("ns/other", &d));

    // Removed locally, pulled back: the same digest.
    assert_ok(&ctx.cli(&["rm", &name, &other]));
    assert!(succeeded(&pull(&ctx, &name)));
    assert_eq!(models(&ctx)[0].1, local);
}

#[test]
fn a_client_that_disconnects_cancels_the_pull_and_keeps_its_journal() {
    use std::io::Read;
    let reg = TestRegistry::start();
    let ctx = context(1);
    let weights = bytes(40 * PART as usize, 13);
    let (w, _) = publish(&reg, "ns/gone", "v1", &weights, "t");
    reg.faults().set(Fault::Stall {
        digest: Some(w.clone()),
        after: 1000,
        pause: Duration::from_millis(100),
        times: ALWAYS,
    });
    let name = reg.model("ns/gone", "v1");
    let body = json!({"model": name, "insecure": true}).to_string();
    let mut s = std::os::unix::net::UnixStream::connect(ctx.socket()).unwrap();
    write!(
        s,
        "POST /api/pull HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reg.served(&w).bytes < 4 * PART {
        assert!(Instant::now() < deadline, "the pull did not progress");
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
    }
    drop(s);
    // The daemon notices the client left and cancels the transfer.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ctx
        .daemon_log()
        .contains("transfer cancelled: the client went away")
    {
        assert!(Instant::now() < deadline, "{}", ctx.daemon_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Then the download stops: the registry serves nothing more (absence
    // is observed over a second; there is no event for it).
    let stopped = reg.served(&w).bytes;
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        reg.served(&w).bytes,
        stopped,
        "still downloading after the client left"
    );
    assert!(stopped < weights.len() as u64);
    assert!(
        tmp_files(&ctx).iter().any(|f| f.ends_with(".download")),
        "{:?}",
        tmp_files(&ctx)
    );
    assert!(models(&ctx).is_empty());
    // Pulled again, it resumes.
    reg.faults().clear();
    reg.reset_counters();
    assert!(succeeded(&pull(&ctx, &name)));
    let again = reg.served(&w).bytes;
    assert!(
        again + stopped <= weights.len() as u64 + PART,
        "again {again}, before {stopped}"
    );
}
