//! Registry mirrors and rate limits: a pull tries each configured mirror (real `docker-registry` processes, a pull-through cache among them, and the fault-injecting test registry) before the upstream, falls back on a miss or a fault, and says where each blob came from.
//!
//! The upstream is the in-memory test registry where a test must prove what
//! it did (not) serve; `docker-registry` plays the mirrors. Without
//! `docker-registry` those tests skip, and fail under `LLMPM_TEST_STRICT=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use llmpm_spec::media_type::ollama;
use llmpm_tests::http::{call_unix, Stream};
use llmpm_tests::registry::distribution::DockerRegistry;
use llmpm_tests::registry::{noise, sha256_digest, Fault, TestRegistry, ALWAYS};
use llmpm_tests::TestContext;
use serde_json::{json, Value};

/// A daemon whose pulls of `upstream` try `mirrors` first, in order.
fn daemon(upstream: &str, mirrors: &[String], extra: &[(&str, &str)]) -> TestContext {
    let mut ctx = TestContext::new();
    ctx.daemon_env = vec![
        (
            "LLMPM_REGISTRY_MIRRORS".into(),
            format!("{upstream}={}", mirrors.join(",")),
        ),
        ("LLMPM_PULL_STALL_TIMEOUT".into(), "3s".into()),
    ];
    ctx.daemon_env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    ctx.start();
    ctx
}

/// `POST /api/pull` with `--insecure`: every progress line, which must end in `success`.
fn pull_ok(ctx: &TestContext, model: &str) -> Vec<Value> {
    let body = json!({"model": model, "insecure": true}).to_string();
    let r = call_unix(&ctx.socket(), "POST", "/api/pull", body.as_bytes()).unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.text(), ctx.daemon_log());
    let lines = r.ndjson();
    assert_eq!(
        lines.last().map(|l| l["status"].clone()),
        Some(json!("success")),
        "{lines:?}\n{}",
        ctx.daemon_log()
    );
    lines
}

/// Per blob digest, the sources its progress lines named, in order, repeats folded.
fn sources(lines: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines {
        let (Some(d), Some(s)) = (l["digest"].as_str(), l["source"].as_str()) else {
            continue;
        };
        let v = out.entry(d.to_owned()).or_default();
        if v.last().map(String::as_str) != Some(s) {
            v.push(s.to_owned());
        }
    }
    out
}

/// Asserts the store holds `bytes` under their digest, read back and hashed here.
fn assert_stored(ctx: &TestContext, bytes: &[u8]) {
    let d = sha256_digest(bytes);
    let path = ctx
        .home
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"));
    let on_disk = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(sha256_digest(&on_disk), d, "the stored blob's bytes");
}

/// The layers of the test model: a weight blob and a small system prompt.
fn layers(weights: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (ollama::MODEL, weights.to_vec()),
        (ollama::SYSTEM, b"You are a mirror test.".to_vec()),
    ]
}

fn as_refs<'a>(l: &'a [(&'static str, Vec<u8>)]) -> Vec<(&'static str, &'a [u8])> {
    l.iter().map(|(m, b)| (*m, b.as_slice())).collect()
}

#[test]
fn a_mirror_that_holds_the_model_serves_all_of_it() {
    let Some(mirror) = DockerRegistry::start() else {
        return;
    };
    let upstream = TestRegistry::start();
    let l = layers(&noise(300_000, 1));
    upstream.publish_ollama_model("library/m", "v1", &as_refs(&l));
    mirror.publish_ollama_model("library/m", "v1", &as_refs(&l));
    let ctx = daemon(&upstream.host(), &[mirror.url()], &[]);
    let lines = pull_ok(&ctx, &upstream.model("library/m", "v1"));

    // Every blob came from the mirror, and the upstream was not asked at all.
    let src = sources(&lines);
    assert_eq!(src.len(), 3, "config and two layers: {src:?}");
    for (d, s) in &src {
        assert_eq!(s, &[mirror.url()], "{d}");
    }
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
    for (_, b) in &l {
        assert_stored(&ctx, b);
    }
    // Ollama's fields are unchanged around the new one.
    let line = lines.iter().find(|l| l["source"].is_string()).unwrap();
    assert!(line["status"].as_str().unwrap().starts_with("pulling "));
    assert!(line["total"].is_u64() && line["completed"].is_u64());
}

#[test]
fn a_dead_mirror_and_an_empty_one_fall_back_to_the_upstream() {
    let Some(empty) = DockerRegistry::start() else {
        return;
    };
    // Nothing listens here: a connection refused.
    let dead = format!("http://127.0.0.1:{}", llmpm_tests::free_port());
    let upstream = TestRegistry::start();
    let l = layers(&noise(200_000, 2));
    upstream.publish_ollama_model("library/m", "v1", &as_refs(&l));
    let ctx = daemon(&upstream.host(), &[dead, empty.url()], &[]);
    let lines = pull_ok(&ctx, &upstream.model("library/m", "v1"));
    for (d, s) in sources(&lines) {
        assert_eq!(s, [upstream.url()], "{d}");
    }
    for (_, b) in &l {
        assert_stored(&ctx, b);
    }
    // A second pull finds everything stored: no source, no bytes.
    upstream.reset_counters();
    let again = pull_ok(&ctx, &upstream.model("library/m", "v1"));
    assert!(sources(&again).is_empty(), "{again:?}");
    assert_eq!(upstream.blob_bytes_served(), 0);
}

#[test]
fn a_mirror_killed_mid_blob_hands_the_rest_to_the_upstream() {
    let Some(mut mirror) = DockerRegistry::start() else {
        return;
    };
    let upstream = TestRegistry::start();
    let big = noise(24 << 20, 3);
    let l = layers(&big);
    upstream.publish_ollama_model("library/big", "v1", &as_refs(&l));
    mirror.publish_ollama_model("library/big", "v1", &as_refs(&l));
    // Slow enough (8 MiB/s, about 3 s) to kill the mirror part way.
    let ctx = daemon(
        &upstream.host(),
        &[mirror.url()],
        &[
            ("LLMPM_PULL_PART_SIZE", "2MiB"),
            ("LLMPM_PULL_CONCURRENCY", "4"),
            ("LLMPM_MAX_DOWNLOAD_SPEED", "8MB/s"),
        ],
    );
    let big_digest = sha256_digest(&big);
    let mut stream = Stream::open(
        &ctx.socket(),
        "/api/pull",
        &json!({"model": upstream.model("library/big", "v1"), "insecure": true}),
    );
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut killed_at = None;
    while let Some(l) = stream.next() {
        let from_mirror = l["source"] == json!(mirror.url());
        let done = l["completed"].as_u64().unwrap_or(0);
        if killed_at.is_none() && l["digest"] == json!(big_digest) && from_mirror && done >= 4 << 20
        {
            mirror.kill();
            killed_at = Some(done);
        }
        lines.push(l);
        assert!(Instant::now() < deadline, "the pull took over a minute");
    }
    let killed_at = killed_at.expect("the mirror was serving the big blob");
    assert!(
        killed_at < big.len() as u64,
        "killed after the blob was done"
    );
    assert_eq!(
        lines.last().map(|l| l["status"].clone()),
        Some(json!("success")),
        "{lines:?}\n{}",
        ctx.daemon_log()
    );
    assert_eq!(
        sources(&lines)[&big_digest],
        [mirror.url(), upstream.url()],
        "the big blob's sources"
    );
    // The upstream sent the rest, not the whole blob again.
    let from_upstream = upstream.served(&big_digest).bytes;
    assert!(
        from_upstream > 0 && from_upstream < big.len() as u64,
        "upstream served {from_upstream} of {}",
        big.len()
    );
    for (_, b) in &l {
        assert_stored(&ctx, b);
    }
}

#[test]
fn a_mirror_that_cuts_the_stream_or_sends_wrong_bytes_is_left_for_the_upstream() {
    let mirror = TestRegistry::start();
    let upstream = TestRegistry::start();
    let cut = noise(1 << 20, 4);
    let wrong = noise(700_000, 5);
    let l = vec![
        (ollama::MODEL, cut.clone()),
        (ollama::ADAPTER, wrong.clone()),
    ];
    upstream.publish_ollama_model("library/m", "v1", &as_refs(&l));
    mirror.publish_ollama_model("library/m", "v1", &as_refs(&l));
    mirror.faults().set(Fault::DropAfter {
        digest: Some(sha256_digest(&cut)),
        after: 300_000,
        times: ALWAYS,
    });
    mirror.faults().set(Fault::WrongBytes {
        digest: sha256_digest(&wrong),
    });
    let ctx = daemon(&upstream.host(), &[mirror.url()], &[]);
    let lines = pull_ok(&ctx, &upstream.model("library/m", "v1"));
    // Progress names the source sending at each moment: a phase shorter
    // than a progress tick may not show, but the last source always does.
    let src = sources(&lines);
    // The cut blob resumed at the upstream: only the rest came from there.
    let cut_d = sha256_digest(&cut);
    assert_eq!(src[&cut_d].last(), Some(&upstream.url()));
    assert!(mirror.served(&cut_d).bytes >= 300_000);
    let resumed = upstream.served(&cut_d).bytes;
    assert!(
        resumed < cut.len() as u64,
        "the upstream resent {resumed} bytes"
    );
    // The wrong bytes failed their digest and the blob came again, whole,
    // from the upstream.
    let wrong_d = sha256_digest(&wrong);
    assert_eq!(src[&wrong_d].last(), Some(&upstream.url()));
    assert_eq!(mirror.served(&wrong_d).bytes, wrong.len() as u64);
    assert_eq!(upstream.served(&wrong_d).bytes, wrong.len() as u64);
    assert!(
        ctx.daemon_log().contains("did not verify"),
        "{}",
        ctx.daemon_log()
    );
    for (_, b) in &l {
        assert_stored(&ctx, b);
    }
}

#[test]
fn a_pull_through_cache_in_front_of_a_docker_registry_serves_the_pull() {
    let Some(origin) = DockerRegistry::start() else {
        return;
    };
    let Some(cache) = DockerRegistry::start_proxy(&origin.url()) else {
        return;
    };
    let l = layers(&noise(500_000, 6));
    origin.publish_ollama_model("library/m", "v1", &as_refs(&l));
    assert!(
        cache
            .get_blob("library/m", &sha256_digest(&l[1].1))
            .is_some(),
        "the cache proxies the origin:\n{}",
        cache.log()
    );
    let ctx = daemon(&origin.host(), &[cache.url()], &[]);
    let lines = pull_ok(&ctx, &origin.model("library/m", "v1"));
    let src = sources(&lines);
    assert_eq!(src.len(), 3, "{src:?}");
    for (d, s) in &src {
        assert_eq!(s, &[cache.url()], "{d}");
    }
    for (_, b) in &l {
        assert_stored(&ctx, b);
    }
}

#[test]
fn rate_limits_are_checked_and_a_limited_push_uploads_every_byte() {
    let reg = TestRegistry::start();
    let src = TestRegistry::start();
    let l = layers(&noise(3 << 20, 7));
    src.publish_ollama_model("library/m", "v1", &as_refs(&l));
    let ctx = daemon(&src.host(), &[], &[("LLMPM_MAX_UPLOAD_SPEED", "64MB/s")]);
    pull_ok(&ctx, &src.model("library/m", "v1"));
    assert!(ctx
        .cli(&[
            "cp",
            &src.model("library/m", "v1"),
            &reg.model("ns/m", "v1")
        ])
        .status
        .success());
    // Paced by the daemon's limit and its own: the body is streamed in
    // slices with its length declared, and arrives whole.
    let body = json!({"model": reg.model("ns/m", "v1"), "insecure": true, "limit_rate": "32MB/s"});
    let r = call_unix(
        &ctx.socket(),
        "POST",
        "/api/push",
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.ndjson().last().map(|l| l["status"].clone()),
        Some(json!("success")),
        "{}",
        ctx.daemon_log()
    );
    for (_, b) in &l {
        assert_eq!(reg.blob(&sha256_digest(b)).as_deref(), Some(b.as_slice()));
    }

    // A rate that is not one: a 400 naming the field, and the CLI's own words.
    let body = json!({"model": "m", "limit_rate": "fast"}).to_string();
    let r = call_unix(&ctx.socket(), "POST", "/api/pull", body.as_bytes()).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("limit_rate"), "{}", r.text());
    let out = ctx.cli(&["pull", "m", "--limit-rate", "fast"]);
    assert!(!out.status.success());
    let err = llmpm_tests::stderr(&out);
    assert!(
        err.contains("--limit-rate") && err.contains("50MB/s"),
        "{err}"
    );
    // And a daemon refuses to start on one.
    let mut bad = TestContext::new();
    bad.daemon_env = vec![("LLMPM_MAX_DOWNLOAD_SPEED".into(), "fast".into())];
    let out = bad.daemon_command().output().unwrap();
    assert!(!out.status.success());
    let err = llmpm_tests::stderr(&out);
    assert!(err.contains("LLMPM_MAX_DOWNLOAD_SPEED"), "{err}");
}
