#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::blob::{span, Span};
use super::*;
use base64::Engine as _;

#[test]
fn paths_read_from_their_end() {
    let hex = "a".repeat(64);
    assert_eq!(endpoint("/v2/").unwrap(), Endpoint::Base);
    assert_eq!(endpoint("/v2").unwrap(), Endpoint::Base);
    assert_eq!(endpoint("/v2/_catalog").unwrap(), Endpoint::Catalog);
    assert_eq!(endpoint("/v2/token").unwrap(), Endpoint::Token);
    assert_eq!(
        endpoint("/v2/library/m/tags/list").unwrap(),
        Endpoint::Tags("library/m")
    );
    // A repository may be called `manifests`: the path is read from its end.
    assert_eq!(
        endpoint("/v2/library/manifests/manifests/latest").unwrap(),
        Endpoint::Manifest("library/manifests", "latest")
    );
    let d = format!("sha256:{hex}");
    assert_eq!(
        endpoint(&format!("/v2/h_5000/ns/m/blobs/{d}")).unwrap(),
        Endpoint::Blob("h_5000/ns/m", &d)
    );
    assert!(matches!(
        endpoint("/v2/library/m/referrers/x").unwrap(),
        Endpoint::Referrers("library/m", "x")
    ));
    for bad in [
        "/v2/library%2Fm/manifests/latest",
        "/v2/library/m/blobs/sha256%3Aab",
        "/v2/library/%2e%2e/manifests/latest",
    ] {
        let e = endpoint(bad).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "NAME_INVALID")
        );
    }
    let e = endpoint("/v2/library/m/uploads/x").unwrap_err();
    assert_eq!(e.status, StatusCode::NOT_FOUND);
}

#[test]
fn ranges() {
    let s = |r: &str| span(Some(r), 100);
    assert_eq!(span(None, 100), Span::Whole);
    assert_eq!(s("bytes=0-9"), Span::Part(0, 9));
    assert_eq!(s("bytes=90-"), Span::Part(90, 99));
    assert_eq!(
        s("bytes=90-500"),
        Span::Part(90, 99),
        "an end past the blob is cut"
    );
    assert_eq!(s("bytes=-10"), Span::Part(90, 99));
    assert_eq!(
        s("bytes=-500"),
        Span::Part(0, 99),
        "a suffix longer than the blob is all of it"
    );
    assert_eq!(
        s("Bytes = 5-5"),
        Span::Whole,
        "a unit we do not read is ignored"
    );
    assert_eq!(s("BYTES=5-5"), Span::Part(5, 5));
    assert_eq!(s("bytes=100-"), Span::Unsatisfiable);
    assert_eq!(s("bytes=100-200"), Span::Unsatisfiable);
    assert_eq!(s("bytes=-0"), Span::Unsatisfiable);
    assert_eq!(span(Some("bytes=0-"), 0), Span::Unsatisfiable);
    assert_eq!(span(Some("bytes=-1"), 0), Span::Unsatisfiable);
    for ignored in [
        "bytes=9-1",
        "bytes=0-1,5-6",
        "items=0-1",
        "bytes=a-b",
        "bytes=-",
        "bytes=+1-2",
    ] {
        assert_eq!(s(ignored), Span::Whole, "{ignored}");
    }
}

#[test]
fn accept_negotiation() {
    let h = |v: &[&str]| {
        let mut m = HeaderMap::new();
        for v in v {
            m.append(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        m
    };
    let docker = llmpm_spec::media_type::DOCKER_MANIFEST_V2;
    let oci = llmpm_spec::media_type::OCI_MANIFEST;
    assert!(accepts(&h(&[]), docker));
    assert!(accepts(&h(&[oci, docker]), docker));
    assert!(accepts(&h(&[&format!("{oci}, {docker}; q=0.5")]), docker));
    assert!(accepts(&h(&["*/*"]), docker));
    assert!(accepts(&h(&["application/*"]), docker));
    assert!(!accepts(&h(&[oci]), docker));
    assert!(!accepts(&h(&[&format!("{docker};q=0")]), docker));
}

fn config(key: Option<&str>) -> crate::config::Config {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(&f, "").unwrap();
    let fs = f.to_str().unwrap();
    let home = dir.path().to_str().unwrap();
    // Without a key the bind stays on loopback (an empty value is unset).
    let env = [
        ("LLMPM_CONFIG", fs),
        ("LLMPM_HOME", home),
        ("LLMPM_API_KEY", key.unwrap_or("")),
        ("LLMPM_HOST", if key.is_some() { "0.0.0.0:1" } else { "" }),
    ];
    crate::config::Config::load(&env).unwrap()
}

fn headers(pairs: &[(header::HeaderName, String)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.insert(k.clone(), HeaderValue::from_str(v).unwrap());
    }
    m
}

#[test]
fn the_key_guards_a_network_bind() {
    let c = config(Some("sekrit"));
    let get = Method::GET;
    let basic = |user_pass: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    };
    let host = (header::HOST, "10.0.0.5:11434".to_owned());
    // Nothing, a wrong key, the key as a user name: a Bearer challenge
    // naming the realm on the host the client reached.
    for auth in [
        None,
        Some("Bearer nope".to_owned()),
        Some(basic("sekrit:x")),
    ] {
        let mut h = vec![host.clone()];
        h.extend(auth.map(|a| (header::AUTHORIZATION, a)));
        let e = auth::check(&c, &get, &headers(&h), "/v2/").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        );
        let www = e
            .headers
            .iter()
            .find(|(k, _)| k == header::WWW_AUTHENTICATE)
            .map(|(_, v)| v.to_str().unwrap().to_owned());
        assert_eq!(
            www.as_deref(),
            Some("Bearer realm=\"http://10.0.0.5:11434/v2/token\",service=\"llmpmd\"")
        );
    }
    for ok in ["Bearer sekrit".to_owned(), basic("anyone:sekrit")] {
        let h = headers(&[host.clone(), (header::AUTHORIZATION, ok)]);
        assert!(auth::check(&c, &get, &h, "/v2/library/m/tags/list").is_ok());
    }
    // The realm itself is reached without a token, and trades the key for one.
    let bare = headers(std::slice::from_ref(&host));
    assert!(auth::check(&c, &get, &bare, "/v2/token").is_ok());
    assert_eq!(
        auth::token(&c, &get, &bare).unwrap_err().status,
        StatusCode::UNAUTHORIZED
    );
    let h = headers(&[(header::AUTHORIZATION, basic("x:sekrit"))]);
    assert_eq!(auth::token(&c, &get, &h).unwrap().status(), StatusCode::OK);
    // A Host that would break out of the quoted realm gets a Basic challenge.
    let h = headers(&[(header::HOST, "evil\",realm=\"x".to_owned())]);
    let e = auth::check(&c, &get, &h, "/v2/").unwrap_err();
    assert!(e.headers.iter().any(|(_, v)| v == "Basic realm=\"llmpmd\""));
}

#[test]
fn without_a_key_only_loopback_names_are_answered() {
    let c = config(None);
    let h = headers(&[(header::HOST, "127.0.0.1:11434".to_owned())]);
    assert!(auth::check(&c, &Method::GET, &h, "/v2/").is_ok());
    let h = headers(&[(header::HOST, "rebound.example:11434".to_owned())]);
    let e = auth::check(&c, &Method::GET, &h, "/v2/").unwrap_err();
    assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, "DENIED"));
}
