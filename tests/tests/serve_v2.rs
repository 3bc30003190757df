//! llmpmd as a registry: its store read over `/v2/` (the OCI distribution API) through real sockets, by raw HTTP and by a second llmpmd.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use llmpm_tests::http::{call_tcp, call_unix, Response};
use llmpm_tests::registry::sha256_digest;
use llmpm_tests::{assert_ok, stdout, TestContext, TinyLlamaSpec};
use serde_json::{json, Value};

const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A daemon holding `m` (weights over 1 MiB, so a blob spans more than one
/// of the server's reads) and `me/other:v1`, a second name for it.
fn serving() -> TestContext {
    let ctx = TestContext::started();
    let spec = TinyLlamaSpec {
        n_layer: 12,
        ..TinyLlamaSpec::default()
    };
    ctx.tiny_gguf("big.gguf", &spec);
    std::fs::write(
        ctx.work.join("Modelfile"),
        "FROM ./big.gguf\nSYSTEM You are terse.\n",
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", "m", "-f", "Modelfile"]));
    assert_ok(&ctx.cli(&["cp", "m", "me/other:v1"]));
    ctx
}

fn get(ctx: &TestContext, path: &str, headers: &[(&str, &str)]) -> Response {
    call_tcp(ctx.port(), "GET", path, headers, b"").unwrap()
}

fn call(ctx: &TestContext, method: &str, path: &str) -> Response {
    call_tcp(ctx.port(), method, path, &[], b"").unwrap()
}

/// The OCI error code of an answer (and its message, for failures).
fn code(r: &Response) -> String {
    let v = r.json();
    let e = &v["errors"][0];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    e["code"].as_str().unwrap_or_default().to_owned()
}

/// The manifest digest `name` points at, from the daemon's own listing.
fn digest_of(ctx: &TestContext, name: &str) -> String {
    let tags = call_unix(&ctx.socket(), "GET", "/api/tags", b"")
        .unwrap()
        .json();
    let m = tags["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {tags}"));
    format!("sha256:{}", m["digest"].as_str().unwrap())
}

/// The stored bytes of blob `digest`.
fn stored(ctx: &TestContext, digest: &str) -> Vec<u8> {
    std::fs::read(
        ctx.home
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap()
}

fn manifest_json(ctx: &TestContext, name: &str) -> Value {
    serde_json::from_slice(&stored(ctx, &digest_of(ctx, name))).unwrap()
}

#[test]
fn manifests_byte_for_byte_and_blobs_whole_or_by_range() {
    let ctx = serving();
    let r = get(&ctx, "/v2/", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );

    let digest = digest_of(&ctx, "m:latest");
    let bytes = stored(&ctx, &digest);
    for path in [
        "/v2/library/m/manifests/latest".to_owned(),
        format!("/v2/library/m/manifests/{digest}"),
        "/v2/me/other/manifests/v1".to_owned(),
    ] {
        let r = get(
            &ctx,
            &path,
            &[("Accept", &format!("{OCI_MANIFEST}, {DOCKER_V2}"))],
        );
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.body, bytes, "{path}: the stored bytes");
        assert_eq!(r.header("content-type"), Some(DOCKER_V2), "{path}");
        assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    }
    // The unix socket serves the same, and needs nothing.
    let r = call_unix(&ctx.socket(), "GET", "/v2/library/m/manifests/latest", b"").unwrap();
    assert_eq!(r.body, bytes);
    // HEAD: the headers of a GET, no body.
    let r = call(&ctx, "HEAD", "/v2/library/m/manifests/latest");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    assert!(r.body.is_empty());
    // A client that takes only OCI manifests is not handed a Docker one.
    let r = get(
        &ctx,
        "/v2/library/m/manifests/latest",
        &[("Accept", OCI_MANIFEST)],
    );
    assert_eq!((r.status, code(&r).as_str()), (404, "MANIFEST_UNKNOWN"));
    assert!(r.text().contains(DOCKER_V2), "{}", r.text());

    let m = manifest_json(&ctx, "m:latest");
    for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
        let d = d["digest"].as_str().unwrap();
        let r = get(&ctx, &format!("/v2/library/m/blobs/{d}"), &[]);
        assert_eq!(r.status, 200, "{d}: {}", r.text());
        assert_eq!(sha256_digest(&r.body), d, "every blob, whole");
        assert_eq!(r.header("docker-content-digest"), Some(d));
    }
    let weights = m["layers"][0]["digest"].as_str().unwrap();
    let file = stored(&ctx, weights);
    let size = file.len();
    assert!(
        size > (1 << 20) + 100,
        "weights of {size} bytes span more than one of the server's 1 MiB reads"
    );
    let blob = format!("/v2/library/m/blobs/{weights}");

    let r = call(&ctx, "HEAD", &blob);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(size.to_string().as_str()));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.body.is_empty());

    // One range across a chunk boundary, an open one, one past the end (cut), a suffix.
    let mid = (1 << 20) - 7;
    for (range, from, to) in [
        (format!("bytes={mid}-{}", mid + 99), mid, mid + 99),
        (format!("bytes={}-", size - 10), size - 10, size - 1),
        (format!("bytes=5-{}", size + 1000), 5, size - 1),
        ("bytes=-300".to_owned(), size - 300, size - 1),
    ] {
        let r = get(&ctx, &blob, &[("Range", &range)]);
        assert_eq!(r.status, 206, "{range}: {}", r.text());
        assert_eq!(r.body, file[from..=to], "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {from}-{to}/{size}").as_str()),
            "{range}"
        );
    }
    // Past the end: 416, with the size.
    for range in [format!("bytes={size}-"), "bytes=-0".to_owned()] {
        let r = get(&ctx, &blob, &[("Range", &range)]);
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{size}").as_str())
        );
    }
    // Several ranges are not served piecemeal: the whole blob.
    let r = get(&ctx, &blob, &[("Range", "bytes=0-1,5-6")]);
    assert_eq!((r.status, r.body.len()), (200, size));
}

#[test]
fn tags_and_catalog_page_with_links() {
    let ctx = serving();
    for t in ["b", "a", "c", "V1"] {
        assert_ok(&ctx.cli(&["cp", "m", &format!("m:{t}")]));
    }
    assert_ok(&ctx.cli(&["cp", "m", "zz/last:x"]));
    let r = get(&ctx, "/v2/library/m/tags/list", &[]);
    assert_eq!(
        r.json(),
        json!({"name": "library/m", "tags": ["V1", "a", "b", "c", "latest"]})
    );
    // Follow the Link headers two at a time.
    let mut next = Some("/v2/library/m/tags/list?n=2".to_owned());
    let mut pages = Vec::new();
    while let Some(path) = next.take() {
        let r = get(&ctx, &path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        pages.push(r.json()["tags"].clone());
        next = r.header("link").map(|l| {
            assert!(l.ends_with(">; rel=\"next\""), "{l}");
            l[1..l.find('>').unwrap()].to_owned()
        });
        assert!(pages.len() < 10);
    }
    assert_eq!(
        pages,
        [json!(["V1", "a"]), json!(["b", "c"]), json!(["latest"])]
    );
    let r = get(&ctx, "/v2/library/m/tags/list?n=2&last=b", &[]);
    assert_eq!(r.json()["tags"], json!(["c", "latest"]));
    assert!(r.header("link").is_none());
    let r = get(&ctx, "/v2/library/m/tags/list?n=many", &[]);
    assert_eq!(r.status, 400);

    let r = get(&ctx, "/v2/_catalog", &[]);
    assert_eq!(
        r.json(),
        json!({"repositories": ["library/m", "me/other", "zz/last"]})
    );
    let r = get(&ctx, "/v2/_catalog?n=1&last=library/m", &[]);
    assert_eq!(r.json(), json!({"repositories": ["me/other"]}));
    assert_eq!(
        r.header("link"),
        Some("</v2/_catalog?n=1&last=me/other>; rel=\"next\"")
    );
}

#[test]
fn unknown_names_manifests_and_blobs_and_writes_answer_as_the_spec_words_them() {
    let ctx = serving();
    let unknown_digest = format!("sha256:{}", "0".repeat(64));
    let weights = manifest_json(&ctx, "m:latest")["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    for (path, status, want) in [
        (
            "/v2/library/nope/manifests/latest".to_owned(),
            404,
            "NAME_UNKNOWN",
        ),
        ("/v2/library/nope/tags/list".to_owned(), 404, "NAME_UNKNOWN"),
        (
            "/v2/library/m/manifests/nope".to_owned(),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/library/m/manifests/{unknown_digest}"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        // A blob is not a manifest.
        (
            format!("/v2/library/m/manifests/{weights}"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/library/m/blobs/{unknown_digest}"),
            404,
            "BLOB_UNKNOWN",
        ),
        (
            format!("/v2/library/nope/blobs/{weights}"),
            404,
            "NAME_UNKNOWN",
        ),
        (
            "/v2/library/m/blobs/md5:abcd".to_owned(),
            400,
            "DIGEST_INVALID",
        ),
        (
            format!("/v2/library/m/blobs/sha256:{}", "a".repeat(63)),
            400,
            "DIGEST_INVALID",
        ),
        (
            format!("/v2/library/m/blobs/sha256:{}", "A".repeat(64)),
            400,
            "DIGEST_INVALID",
        ),
        ("/v2/Library/m/tags/list".to_owned(), 400, "NAME_INVALID"),
    ] {
        let r = get(&ctx, &path, &[]);
        assert_eq!(
            (r.status, code(&r).as_str()),
            (status, want),
            "{path}: {}",
            r.text()
        );
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
    }
    // Blobs are scoped by repository: another model's blob is unknown here.
    std::fs::write(
        ctx.work.join("Modelfile"),
        "FROM ./big.gguf\nSYSTEM other words\n",
    )
    .unwrap();
    assert_ok(&ctx.cli(&["create", "n", "-f", "Modelfile"]));
    let system_n = manifest_json(&ctx, "n:latest")["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = get(&ctx, &format!("/v2/library/m/blobs/{system_n}"), &[]);
    assert_eq!((r.status, code(&r).as_str()), (404, "BLOB_UNKNOWN"));
    let r = get(&ctx, &format!("/v2/library/n/blobs/{system_n}"), &[]);
    assert_eq!(r.status, 200);

    // Read-only: every write is refused, and nothing changes.
    let before = ctx.blob_files();
    for (method, path) in [
        ("PUT", "/v2/library/m/manifests/latest".to_owned()),
        ("DELETE", "/v2/library/m/manifests/latest".to_owned()),
        ("POST", "/v2/library/m/blobs/uploads/".to_owned()),
        ("PATCH", "/v2/library/m/blobs/uploads/x".to_owned()),
        ("DELETE", format!("/v2/library/m/blobs/{weights}")),
    ] {
        let r = call_tcp(ctx.port(), method, &path, &[], b"{}").unwrap();
        assert_eq!(
            (r.status, code(&r).as_str()),
            (405, "UNSUPPORTED"),
            "{method} {path}"
        );
        assert!(r.text().contains("read-only"), "{}", r.text());
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    assert_eq!(ctx.blob_files(), before);
    assert_eq!(get(&ctx, "/v2/library/m/manifests/latest", &[]).status, 200);
}

#[test]
fn hostile_names_and_digests_reach_no_file() {
    let ctx = serving();
    // Files a traversal would aim at: one in the home, one beside the blobs.
    std::fs::write(ctx.home.join("canary"), "CANARY-HOME").unwrap();
    std::fs::write(ctx.home.join("blobs/canary"), "CANARY-BLOBS").unwrap();
    let hex = "a".repeat(64);
    for path in [
        "/v2/../canary".to_owned(),
        "/v2/library/../../canary/manifests/latest".to_owned(),
        "/v2/library/m/blobs/../../canary".to_owned(),
        "/v2/library/m/blobs/sha256:../../canary".to_owned(),
        "/v2/library/m/blobs/sha256:..%2F..%2Fcanary".to_owned(),
        "/v2/library/m/blobs/..%2F..%2Fcanary".to_owned(),
        "/v2/library%2Fm/manifests/latest".to_owned(),
        "/v2/library/m%2F..%2F..%2Fcanary/manifests/latest".to_owned(),
        "/v2/library/m/manifests/..%2F..%2Fcanary".to_owned(),
        "/v2/library/m/manifests/..".to_owned(),
        "/v2/library/m/manifests/sha256:../../canary".to_owned(),
        "/v2/library/m/blobs/sha256%3A..%2Fcanary".to_owned(),
        "/v2/library/m/blobs/sha256-..".to_owned(),
        "/v2/library/m/blobs/canary".to_owned(),
        format!("/v2/library/m/blobs/sha256:{hex}%00"),
        format!("/v2/library/m/blobs/sha1:{hex}"),
        "/v2/%2e%2e/%2e%2e/manifests/canary".to_owned(),
        "/v2/library/m/referrers/..%2F..%2Fcanary".to_owned(),
        "/v2/./m/tags/list".to_owned(),
        "/v2//library/m/tags/list".to_owned(),
    ] {
        let r = get(&ctx, &path, &[]);
        assert!(
            (400..500).contains(&r.status),
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("CANARY"), "{path}: {}", r.text());
        assert!(
            r.header("content-type")
                .is_none_or(|t| t == "application/json"),
            "{path}"
        );
    }
    // The daemon is unharmed.
    assert_eq!(get(&ctx, "/v2/library/m/tags/list", &[]).status, 200);
}

/// A loopback connection's view of a non-loopback bind: the same rules as
/// the rest of the API (the key on every TCP request), answered as registry
/// clients expect. Also from the machine's own non-loopback address when it
/// has one, so the request really arrives from the network side.
#[test]
fn a_network_bind_needs_the_key_through_a_bearer_challenge() {
    let ctx = TestContext::network_bound("v2-key");
    ctx.create_tiny("m", "");
    let digest = digest_of(&ctx, "m:latest");
    let path = "/v2/library/m/manifests/latest";
    let mut hosts = vec![std::net::IpAddr::from([127, 0, 0, 1])];
    hosts.extend(own_address());
    for ip in hosts {
        let req = |path: &str, headers: &[(&str, &str)]| {
            let s = std::net::TcpStream::connect((ip, ctx.port())).unwrap();
            let host = format!("{ip}:{}", ctx.port());
            let mut h = vec![("Host", host.as_str())];
            h.extend_from_slice(headers);
            llmpm_tests::http::request(s, "GET", path, &h, b"").unwrap()
        };
        for auth in [None, Some("Bearer wrong"), Some("Basic djItd2Vy")] {
            let r = req(
                path,
                &auth
                    .map(|a| ("Authorization", a))
                    .into_iter()
                    .collect::<Vec<_>>(),
            );
            assert_eq!(
                (r.status, code(&r).as_str()),
                (401, "UNAUTHORIZED"),
                "{ip} {auth:?}"
            );
            assert!(!r.text().contains("schemaVersion"));
            assert_eq!(
                r.header("www-authenticate"),
                Some(
                    format!(
                        "Bearer realm=\"http://{ip}:{}/v2/token\",service=\"llmpmd\"",
                        ctx.port()
                    )
                    .as_str()
                )
            );
        }
        // The realm trades the key, as a Basic password, for a token.
        let r = req(
            "/v2/token?service=llmpmd&scope=repository:library/m:pull",
            &[],
        );
        assert_eq!(r.status, 401);
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("anyone:v2-key")
        );
        let r = req("/v2/token?service=llmpmd", &[("Authorization", &basic)]);
        assert_eq!(r.status, 200, "{}", r.text());
        let token = r.json()["token"].as_str().unwrap().to_owned();
        let bearer = format!("Bearer {token}");
        for auth in [&bearer, &basic] {
            let r = req(path, &[("Authorization", auth)]);
            assert_eq!(r.status, 200, "{ip}: {}", r.text());
            assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
        }
    }
}

#[test]
fn a_second_llmpmd_logs_in_with_the_key_and_pulls() {
    let first = TestContext::network_bound("v2-key");
    first.create_tiny("m", "");
    let second = TestContext::started();
    let host = format!("127.0.0.1:{}", first.port());
    let name = format!("{host}/library/m:latest");
    let refused = second.cli(&["pull", "--insecure", &name]);
    assert!(!refused.status.success());
    let why = llmpm_tests::stderr(&refused);
    assert!(
        why.contains("llmpm login") && why.contains("API key"),
        "{why}"
    );
    let mut login = second
        .cli_cmd(&["login", &host, "-u", "anyone", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut login.stdin.take().unwrap(), b"v2-key\n").unwrap();
    assert_ok(&login.wait_with_output().unwrap());
    assert_ok(&second.cli(&["pull", "--insecure", &name]));
    assert_eq!(digest_of(&second, &name), digest_of(&first, "m:latest"));
}

/// This machine's address on the interface its default route uses, if any
/// (a UDP connect sends nothing).
fn own_address() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn a_second_llmpmd_pulls_a_signed_model_from_the_first() {
    let first = serving();
    assert_ok(&first.cli(&["keygen", "--out", "k"]));
    assert_ok(&first.cli(&["sign", "m", "--key", "k.key"]));
    let digest = digest_of(&first, "m:latest");
    let r = get(&first, &format!("/v2/library/m/referrers/{digest}"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    let index = r.json();
    let sigs = index["manifests"].as_array().unwrap();
    assert_eq!(sigs.len(), 1, "{index}");
    let sig = sigs[0]["digest"].as_str().unwrap();
    let r = get(&first, &format!("/v2/library/m/manifests/{sig}"), &[]);
    assert_eq!(
        r.status, 200,
        "the signature is served in the model's repository"
    );
    assert_eq!(sha256_digest(&r.body), sig);
    let r = get(
        &first,
        &format!("/v2/library/m/referrers/{digest}?artifactType=application/x-other"),
        &[],
    );
    assert_eq!(r.json()["manifests"], json!([]));
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));

    // A second daemon, its own home and port, requiring the first's key.
    let mut second = TestContext::new();
    std::fs::write(
        second.dir.path().join("none.yaml"),
        format!(
            "trust_policy:\n  - scope: \"*\"\n    mode: require\n    keys:\n      - path: {}\n",
            first.work.join("k.pub").display()
        ),
    )
    .unwrap();
    second.start();
    let name = format!("127.0.0.1:{}/library/m:latest", first.port());
    let out = second.cli(&["pull", "--insecure", &name]);
    assert_ok(&out);
    assert_eq!(
        digest_of(&second, &name),
        digest,
        "the same manifest, so the same id"
    );
    let m = manifest_json(&first, "m:latest");
    for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
        let d = d["digest"].as_str().unwrap();
        assert_eq!(stored(&second, d), stored(&first, d), "{d}");
    }
    let show = second.cli(&["show", &name, "--system"]);
    assert_eq!(stdout(&show).trim(), "You are terse.");
    let show = second.cli(&["show", &name, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&show)).unwrap();
    assert_eq!(v["signatures"][0]["verified"], true, "{v}");
    // And the second serves it on, under the first's host.
    let r = get(
        &second,
        &format!("/v2/127.0.0.1_{}/library/m/manifests/latest", first.port()),
        &[],
    );
    assert_eq!(r.body, stored(&first, &digest));
}
