//! The test registry itself, driven by a plain HTTP client: the spec subset it serves and each fault it injects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use llmpm_spec::media_type::{ollama, DOCKER_MANIFEST_V2, OCI_INDEX, OCI_MANIFEST};
use llmpm_tests::http::{self, Response};
use llmpm_tests::registry::{sha256_digest, Fault, TestRegistry, MODELPACK_WEIGHT_RAW};
use serde_json::Value;

fn call(
    reg: &TestRegistry,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    http::call_tcp(reg.port(), method, path, headers, body).unwrap()
}

fn get(reg: &TestRegistry, path: &str) -> Response {
    call(reg, "GET", path, &[], b"")
}

fn error_code(r: &Response) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// Pseudo-random bytes, so a wrong offset never reads the same data.
fn data(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Sends a GET on a raw socket and returns (head, body bytes received)
/// until EOF, an error, or `read_timeout` with nothing arriving.
fn raw_get(port: u16, path: &str, read_timeout: Duration, max: usize) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(read_timeout)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    while all.len() < max {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head")
        + 4;
    (
        String::from_utf8_lossy(&all[..end]).into_owned(),
        all[end..].to_vec(),
    )
}

#[test]
fn base_and_manifests_by_tag_and_digest() {
    let reg = TestRegistry::start();
    let r = get(&reg, "/v2/");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert_eq!(reg.url(), format!("http://127.0.0.1:{}", reg.port()));
    assert_eq!(reg.host(), format!("127.0.0.1:{}", reg.port()));

    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    let digest = reg.put_manifest("ns/m", "v1", OCI_MANIFEST, body.to_vec());
    for reference in ["v1", digest.as_str()] {
        let r = get(&reg, &format!("/v2/ns/m/manifests/{reference}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, body);
        assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
        let h = call(
            &reg,
            "HEAD",
            &format!("/v2/ns/m/manifests/{reference}"),
            &[],
            b"",
        );
        assert_eq!(h.status, 200);
        assert!(h.body.is_empty());
        assert_eq!(
            h.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(h.header("docker-content-digest"), Some(digest.as_str()));
    }
    let r = get(&reg, "/v2/ns/m/manifests/v2");
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "MANIFEST_UNKNOWN");
    assert!(r.json()["errors"][0]["message"].is_string());
    assert_eq!(reg.tags("ns/m"), vec!["v1"]);
    let t = get(&reg, "/v2/ns/m/tags/list").json();
    assert_eq!(t["tags"], serde_json::json!(["v1"]));
}

#[test]
fn blobs_with_ranges_and_byte_counters() {
    let reg = TestRegistry::start();
    let bytes = data(100_000);
    let d = reg.add_blob("ns/m", bytes.clone());
    assert_eq!(d, sha256_digest(&bytes));
    let path = format!("/v2/ns/m/blobs/{d}");

    let r = get(&reg, &path);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, bytes);
    assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));

    let r = call(&reg, "GET", &path, &[("Range", "bytes=10-19")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/100000"));
    assert_eq!(r.body, &bytes[10..20]);
    let r = call(&reg, "GET", &path, &[("Range", "bytes=99990-")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[99_990..]);
    let r = call(&reg, "GET", &path, &[("Range", "bytes=100000-100001")], b"");
    assert_eq!(r.status, 416);

    let h = call(&reg, "HEAD", &path, &[], b"");
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-length"), Some("100000"));
    assert!(h.body.is_empty());

    assert_eq!(reg.blob_bytes_served(), 100_000 + 10 + 10);
    let c = reg.served(&d);
    assert_eq!(
        (c.bytes, c.gets),
        (100_020, 3),
        "HEAD and 416 fetch nothing"
    );

    // Blobs are served only from repositories that hold them.
    let r = get(&reg, &format!("/v2/other/m/blobs/{d}"));
    assert_eq!(r.status, 404);
    assert_eq!(error_code(&r), "BLOB_UNKNOWN");

    let log = reg.requests();
    assert_eq!(log.len(), 6);
    assert_eq!(log[1].method, "GET");
    assert_eq!(log[1].range.as_deref(), Some("bytes=10-19"));
    assert!(!log[1].authorization);
    reg.reset_counters();
    assert_eq!(reg.blob_bytes_served(), 0);
    assert!(reg.requests().is_empty());
}

#[test]
fn uploads_monolithic_chunked_mount_and_manifest_put() {
    let reg = TestRegistry::start();
    let a = data(5000);
    let da = sha256_digest(&a);

    // Monolithic POST ?digest=.
    let r = call(
        &reg,
        "POST",
        &format!("/v2/ns/m/blobs/uploads/?digest={da}"),
        &[],
        &a,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("docker-content-digest"), Some(da.as_str()));
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/ns/m/blobs/{da}").as_str())
    );
    assert!(reg.has_blob("ns/m", &da));

    // Chunked: POST, PATCH, PATCH, PUT ?digest=.
    let b = data(3000).into_iter().rev().collect::<Vec<u8>>();
    let db = sha256_digest(&b);
    let r = call(&reg, "POST", "/v2/ns/m/blobs/uploads/", &[], b"");
    assert_eq!(r.status, 202);
    let loc = r.header("location").unwrap().to_owned();
    let r = call(
        &reg,
        "PATCH",
        &loc,
        &[("Content-Range", "0-999")],
        &b[..1000],
    );
    assert_eq!(r.status, 202);
    assert_eq!(r.header("range"), Some("0-999"));
    let loc = r.header("location").unwrap().to_owned();
    // A chunk that does not start where the upload stands is refused.
    let r = call(
        &reg,
        "PATCH",
        &loc,
        &[("Content-Range", "500-999")],
        &b[500..1000],
    );
    assert_eq!(r.status, 416);
    assert_eq!(r.header("range"), Some("0-999"));
    let r = call(
        &reg,
        "PATCH",
        &loc,
        &[("Content-Range", "1000-2999")],
        &b[1000..],
    );
    assert_eq!(r.status, 202);
    assert_eq!(r.header("range"), Some("0-2999"));
    // A wrong digest is DIGEST_INVALID and stores nothing.
    let r = call(&reg, "PUT", &format!("{loc}?digest={da}"), &[], b"");
    assert_eq!(r.status, 400);
    assert_eq!(error_code(&r), "DIGEST_INVALID");
    assert!(reg.blob(&db).is_none());

    let r = call(&reg, "POST", "/v2/ns/m/blobs/uploads/", &[], b"");
    let loc = r.header("location").unwrap().to_owned();
    call(
        &reg,
        "PATCH",
        &loc,
        &[("Content-Range", "0-1999")],
        &b[..2000],
    );
    let r = call(&reg, "PUT", &format!("{loc}?digest={db}"), &[], &b[2000..]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(reg.blob(&db).unwrap(), b);

    // Cross-repository mount: 201 when the source holds it, else a new upload.
    let r = call(
        &reg,
        "POST",
        &format!("/v2/ns/n/blobs/uploads/?mount={da}&from=ns/m"),
        &[],
        b"",
    );
    assert_eq!(r.status, 201);
    assert!(reg.has_blob("ns/n", &da));
    let r = call(
        &reg,
        "POST",
        &format!("/v2/ns/n/blobs/uploads/?mount={da}&from=nope/x"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202);

    // A manifest may only reference blobs the repository holds.
    let manifest = |cfg: &str| {
        serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": 2},
            "layers": [{"mediaType": "x", "digest": da, "size": 5000}],
        })
        .to_string()
    };
    let missing = manifest(&sha256_digest(b"{}"));
    let r = call(
        &reg,
        "PUT",
        "/v2/ns/m/manifests/v1",
        &[("Content-Type", OCI_MANIFEST)],
        missing.as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(error_code(&r), "MANIFEST_BLOB_UNKNOWN");
    let ok = manifest(&db);
    let r = call(
        &reg,
        "PUT",
        "/v2/ns/m/manifests/v1",
        &[("Content-Type", OCI_MANIFEST)],
        ok.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let md = sha256_digest(ok.as_bytes());
    assert_eq!(r.header("docker-content-digest"), Some(md.as_str()));
    let m = reg.manifest("ns/m", "v1").unwrap();
    assert_eq!(
        (m.media_type.as_str(), m.bytes.as_slice()),
        (OCI_MANIFEST, ok.as_bytes())
    );
    assert!(reg.manifest("ns/m", &md).is_some());
    // PUT by a digest the bytes do not have.
    let r = call(
        &reg,
        "PUT",
        &format!("/v2/ns/m/manifests/{da}"),
        &[("Content-Type", OCI_MANIFEST)],
        ok.as_bytes(),
    );
    assert_eq!(error_code(&r), "DIGEST_INVALID");
}

#[test]
fn absolute_locations_option() {
    let reg = TestRegistry::start_with(llmpm_tests::registry::RegistryOptions {
        absolute_locations: true,
        ..Default::default()
    });
    let r = call(&reg, "POST", "/v2/ns/m/blobs/uploads/", &[], b"");
    assert!(r
        .header("location")
        .unwrap()
        .starts_with(&format!("{}/v2/ns/m/blobs/uploads/", reg.url())));
}

#[test]
fn drop_after_n_bytes_once_then_whole() {
    let reg = TestRegistry::start();
    let bytes = data(200_000);
    let d = reg.add_blob("ns/m", bytes.clone());
    reg.faults().set(Fault::DropAfter {
        digest: Some(d.clone()),
        after: 50_000,
        times: 1,
    });
    let path = format!("/v2/ns/m/blobs/{d}");
    let (head, body) = raw_get(reg.port(), &path, Duration::from_secs(10), usize::MAX);
    assert!(head.contains("content-length: 200000"), "{head}");
    assert_eq!(
        body.len(),
        50_000,
        "exactly the bytes before the drop arrive"
    );
    assert_eq!(body, &bytes[..50_000]);
    // Spent: the next request gets everything; the counter holds both.
    assert!(reg.faults().armed().is_empty());
    let r = call(&reg, "GET", &path, &[("Range", "bytes=50000-")], b"");
    assert_eq!(r.body, &bytes[50_000..]);
    assert_eq!(reg.blob_bytes_served(), 200_000);
    assert_eq!(reg.served(&d).gets, 2);
}

#[test]
fn wrong_bytes_same_length() {
    let reg = TestRegistry::start();
    let bytes = data(40_000);
    let d = reg.add_blob("ns/m", bytes.clone());
    reg.faults().set(Fault::WrongBytes { digest: d.clone() });
    let r = get(&reg, &format!("/v2/ns/m/blobs/{d}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), bytes.len());
    assert_ne!(sha256_digest(&r.body), d);
    let r = call(
        &reg,
        "GET",
        &format!("/v2/ns/m/blobs/{d}"),
        &[("Range", "bytes=0-9")],
        b"",
    );
    assert_ne!(r.body, &bytes[..10], "ranges are wrong too");
}

#[test]
fn status_faults_with_retry_after_then_recover() {
    let reg = TestRegistry::start();
    let d = reg.add_blob("ns/m", data(10));
    reg.faults().set(Fault::Status {
        path: "/blobs/".into(),
        status: 429,
        retry_after: Some(1),
        times: 2,
    });
    reg.faults().set(Fault::Status {
        path: "/manifests/".into(),
        status: 503,
        retry_after: None,
        times: 1,
    });
    let path = format!("/v2/ns/m/blobs/{d}");
    for _ in 0..2 {
        let r = get(&reg, &path);
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(error_code(&r), "TOOMANYREQUESTS");
    }
    assert_eq!(get(&reg, &path).status, 200);
    let r = get(&reg, "/v2/ns/m/manifests/v1");
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_none());
    assert_eq!(get(&reg, "/v2/ns/m/manifests/v1").status, 404);
}

#[test]
fn bearer_challenge_and_token_with_credentials() {
    let reg = TestRegistry::start();
    let d = reg.add_blob("ns/m", data(10));
    reg.faults().set(Fault::BearerAuth {
        credentials: Some(("alice".into(), "s3cret".into())),
    });
    let path = format!("/v2/ns/m/blobs/{d}");
    let r = get(&reg, &path);
    assert_eq!(r.status, 401);
    assert_eq!(error_code(&r), "UNAUTHORIZED");
    assert_eq!(
        r.header("www-authenticate").unwrap(),
        format!("Bearer realm=\"http://127.0.0.1:{}/token\",service=\"test\",scope=\"repository:ns/m:pull\"", reg.port())
    );
    let r = call(&reg, "POST", "/v2/ns/m/blobs/uploads/", &[], b"");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("repository:ns/m:pull,push"));

    // /token wants the credentials.
    let r = get(&reg, "/token?service=test&scope=repository:ns/m:pull");
    assert_eq!(r.status, 401);
    // base64("alice:s3cret")
    let r = call(
        &reg,
        "GET",
        "/token?service=test&scope=repository%3Ans%2Fm%3Apull",
        &[("Authorization", "Basic YWxpY2U6czNjcmV0")],
        b"",
    );
    assert_eq!(r.status, 200);
    let tok = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["access_token"], tok.as_str());
    assert_eq!(r.json()["scope"], "repository:ns/m:pull");
    assert_eq!(reg.tokens_issued(), 1);

    let bearer = format!("Bearer {tok}");
    let r = call(&reg, "GET", &path, &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 200);
    let log = reg.requests();
    assert!(log.last().unwrap().authorization);
    assert!(!log[0].authorization);
}

#[test]
fn anonymous_tokens() {
    let reg = TestRegistry::start();
    reg.faults().set(Fault::BearerAuth { credentials: None });
    assert_eq!(get(&reg, "/v2/").status, 401);
    let tok = get(&reg, "/token?service=test").json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = call(
        &reg,
        "GET",
        "/v2/",
        &[("Authorization", &format!("Bearer {tok}"))],
        b"",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn blob_redirect_to_another_host() {
    let reg = TestRegistry::start();
    let bytes = data(30_000);
    let d = reg.add_blob("ns/m", bytes.clone());
    reg.faults().set(Fault::RedirectBlobs);
    let r = call(
        &reg,
        "GET",
        &format!("/v2/ns/m/blobs/{d}"),
        &[("Authorization", "Bearer x")],
        b"",
    );
    assert_eq!(r.status, 307);
    let loc = r.header("location").unwrap().to_owned();
    let prefix = format!("http://localhost:{}", reg.redirect_port());
    assert!(loc.starts_with(&prefix), "{loc}");
    assert_eq!(
        reg.redirect_host(),
        format!("localhost:{}", reg.redirect_port())
    );
    assert_ne!(reg.redirect_port(), reg.port());
    assert_eq!(reg.blob_bytes_served(), 0, "a redirect serves no byte");

    // The other host serves ranges too and records what credentials came.
    let host = reg.redirect_host();
    let r = http::call_tcp(
        reg.redirect_port(),
        "GET",
        &loc[prefix.len()..],
        &[("Host", &host), ("Range", "bytes=0-99")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[..100]);
    let r = http::call_tcp(
        reg.redirect_port(),
        "GET",
        &loc[prefix.len()..],
        &[("Host", &host), ("Authorization", "Bearer leaked")],
        b"",
    )
    .unwrap();
    assert_eq!(r.body, bytes);
    let other: Vec<_> = reg
        .requests()
        .into_iter()
        .filter(|r| r.redirect_host)
        .collect();
    assert_eq!(other.len(), 2);
    assert!(!other[0].authorization);
    assert!(other[1].authorization);
    assert_eq!(reg.served(&d).bytes, 30_100);
}

#[test]
fn stall_pauses_mid_body_then_finishes() {
    let reg = TestRegistry::start();
    let bytes = data(100_000);
    let d = reg.add_blob("ns/m", bytes.clone());
    reg.faults().set(Fault::Stall {
        digest: None,
        after: 20_000,
        pause: Duration::from_secs(3),
        times: 1,
    });
    let path = format!("/v2/ns/m/blobs/{d}");
    // A reader that gives up after 300 ms of silence holds exactly the prefix.
    let (_, body) = raw_get(reg.port(), &path, Duration::from_millis(300), usize::MAX);
    assert_eq!(body, &bytes[..20_000]);
    // Spent: the next request streams straight through.
    let r = get(&reg, &path);
    assert_eq!(r.body, bytes);
}

#[test]
fn lying_content_length() {
    let reg = TestRegistry::start();
    let bytes = data(10_000);
    let d = reg.add_blob("ns/m", bytes.clone());
    reg.faults().set(Fault::LyingContentLength {
        digest: d.clone(),
        declared: 20_000,
    });
    let (head, body) = raw_get(
        reg.port(),
        &format!("/v2/ns/m/blobs/{d}"),
        Duration::from_secs(10),
        usize::MAX,
    );
    assert!(head.contains("content-length: 20000"), "{head}");
    assert_eq!(
        body, bytes,
        "fewer bytes than announced, then the connection ends"
    );

    let reg = TestRegistry::start();
    let d = reg.add_blob("ns/m", bytes.clone());
    reg.faults().set(Fault::LyingContentLength {
        digest: d.clone(),
        declared: 4_000,
    });
    let (head, body) = raw_get(
        reg.port(),
        &format!("/v2/ns/m/blobs/{d}"),
        Duration::from_secs(10),
        usize::MAX,
    );
    assert!(head.contains("content-length: 4000"), "{head}");
    assert_eq!(body, &bytes[..4000]);
}

#[test]
fn endless_manifest_body() {
    let reg = TestRegistry::start();
    reg.put_manifest("ns/m", "v1", OCI_MANIFEST, b"{}".to_vec());
    reg.faults().set(Fault::EndlessBody {
        path: "/manifests/".into(),
    });
    let (head, body) = raw_get(
        reg.port(),
        "/v2/ns/m/manifests/v1",
        Duration::from_secs(10),
        6 << 20,
    );
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(
        body.len() >= (6 << 20) - 64 * 1024,
        "still sending after 6 MiB"
    );
}

#[test]
fn publish_helpers_build_each_format() {
    let reg = TestRegistry::start();
    let weights = data(4096);
    let d = reg.publish_ollama_model(
        "library/tiny",
        "latest",
        &[
            (ollama::MODEL, &weights),
            (ollama::SYSTEM, b"be brief"),
            (ollama::PARAMS, br#"{"temperature":0.1}"#),
        ],
    );
    let r = get(&reg, "/v2/library/tiny/manifests/latest");
    assert_eq!(r.header("content-type"), Some(DOCKER_MANIFEST_V2));
    assert_eq!(sha256_digest(&r.body), d);
    let m: Value = r.json();
    assert_eq!(m["mediaType"], DOCKER_MANIFEST_V2);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(m["layers"][0]["mediaType"], ollama::MODEL);
    assert_eq!(m["layers"][0]["size"], 4096);
    let cfg = get(
        &reg,
        &format!(
            "/v2/library/tiny/blobs/{}",
            m["config"]["digest"].as_str().unwrap()
        ),
    )
    .json();
    assert_eq!(cfg["model_format"], "gguf");
    assert_eq!(cfg["rootfs"]["diff_ids"][0], sha256_digest(&weights));
    // Parses as llmpm's own manifest type.
    let parsed: llmpm_spec::Manifest = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(parsed.layers.len(), 3);

    reg.publish_modelpack("ns/mp", "v1", &[(MODELPACK_WEIGHT_RAW, &weights)]);
    let m = get(&reg, "/v2/ns/mp/manifests/v1").json();
    assert_eq!(m["mediaType"], OCI_MANIFEST);
    assert_eq!(
        m["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.cncf.model.config.v1+json"
    );
    assert_eq!(m["layers"][0]["mediaType"], MODELPACK_WEIGHT_RAW);

    reg.publish_docker_model(
        "ai/tiny",
        "v1",
        &[(llmpm_tests::registry::DOCKER_AI_GGUF, &weights)],
    );
    let m = get(&reg, "/v2/ai/tiny/manifests/v1").json();
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.docker.ai.gguf.v3"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.docker.ai.model.config.v0.1+json"
    );
}

#[test]
fn bad_manifests_for_client_tests() {
    let reg = TestRegistry::start();
    // Content-Type disagrees with the JSON's mediaType.
    let body = format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_V2}","layers":[]}}"#);
    reg.put_manifest("ns/m", "mixed", OCI_MANIFEST, body.into_bytes());
    assert_eq!(
        get(&reg, "/v2/ns/m/manifests/mixed").header("content-type"),
        Some(OCI_MANIFEST)
    );

    // Over 4 MiB.
    let big = format!(r#"{{"schemaVersion":2,"pad":"{}"}}"#, "x".repeat(5 << 20));
    reg.put_manifest("ns/m", "big", OCI_MANIFEST, big.into_bytes());
    assert!(get(&reg, "/v2/ns/m/manifests/big").body.len() > 4 << 20);

    // An index whose entry is answered with the index itself.
    let d = reg.publish_index_loop("ns/m", "loop");
    let r = get(&reg, "/v2/ns/m/manifests/loop");
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    let child = r.json()["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = get(&reg, &format!("/v2/ns/m/manifests/{child}"));
    assert_eq!(again.body, r.body);
    assert_eq!(
        again.header("docker-content-digest"),
        Some(d.as_str()),
        "not the digest asked for"
    );
}

/// The registry against llmpm's own client: a pull fetches every blob exactly
/// once (the byte counter), and a push into it (relative `Location`s,
/// chunked or monolithic uploads) stores the same manifest.
#[test]
fn llmpm_pulls_from_and_pushes_to_the_test_registry() {
    let reg = TestRegistry::start();
    let ctx = llmpm_tests::TestContext::started();
    let gguf =
        std::fs::read(ctx.tiny_gguf("tiny.gguf", &llmpm_tests::TinyLlamaSpec::default())).unwrap();
    let layers: &[(&str, &[u8])] = &[(ollama::MODEL, &gguf), (ollama::SYSTEM, b"Be brief.")];
    let digest = reg.publish_ollama_model("ns/m", "v1", layers);
    let name = reg.model("ns/m", "v1");
    let out = ctx.cli(&["pull", &name, "--insecure"]);
    assert!(
        out.status.success(),
        "pull failed\n{}\n{}",
        llmpm_tests::stderr(&out),
        ctx.daemon_log()
    );
    let config_len = publish_config_len(&reg, "ns/m", "v1");
    let total = gguf.len() as u64 + 9 + config_len;
    assert_eq!(reg.blob_bytes_served(), total, "each blob fetched once");
    for (_, b) in layers {
        assert_eq!(reg.served(&sha256_digest(b)).bytes, b.len() as u64);
    }

    let copy = reg.model("ns/copy", "v1");
    llmpm_tests::assert_ok(&ctx.cli(&["cp", &name, &copy]));
    let list = llmpm_tests::stdout(&ctx.cli(&["list", "--json"]));
    let listed: Value = serde_json::from_str(&list).unwrap();
    for m in listed["models"].as_array().unwrap() {
        assert_eq!(
            m["digest"],
            &digest["sha256:".len()..],
            "pull stores the manifest byte for byte, and cp is a new name for the same manifest: {m}"
        );
    }
    let out = ctx.cli(&["push", &copy, "--insecure"]);
    assert!(
        out.status.success(),
        "push failed\n{}\n{}",
        llmpm_tests::stderr(&out),
        ctx.daemon_log()
    );
    let pushed = reg.manifest("ns/copy", "v1").expect("manifest pushed");
    assert_eq!(
        sha256_digest(&pushed.bytes),
        digest,
        "the manifest travels byte for byte"
    );
    assert!(reg.has_blob("ns/copy", &sha256_digest(&gguf)));
}

fn publish_config_len(reg: &TestRegistry, repo: &str, tag: &str) -> u64 {
    let m: Value = serde_json::from_slice(&reg.manifest(repo, tag).unwrap().bytes).unwrap();
    m["config"]["size"].as_u64().unwrap()
}

#[test]
fn endless_blob_body() {
    let reg = TestRegistry::start();
    let d = reg.add_blob("ns/m", data(10));
    reg.faults().set(Fault::EndlessBody { path: d.clone() });
    let (head, body) = raw_get(
        reg.port(),
        &format!("/v2/ns/m/blobs/{d}"),
        Duration::from_secs(10),
        1 << 20,
    );
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(
        body.len() >= 512 * 1024,
        "far more than the blob's 10 bytes"
    );
}
