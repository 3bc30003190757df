#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn store_with(models: &[(&str, &[u8])]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (name, weights) in models {
        crate::registry::put_test_model(&store, name, weights);
    }
    (dir, store)
}

fn repo(name: &str) -> Repository {
    Repository::parse(name, None).unwrap()
}

#[test]
fn names_map_both_ways() {
    for (oci, store_name) in [
        ("library/llama3.2", "llama3.2:1b"),
        ("me/m", "me/m:1b"),
        ("127.0.0.1_5000/ns/m", "127.0.0.1:5000/ns/m:1b"),
        ("hf.co/bartowski/x-gguf", "hf.co/bartowski/x-gguf:1b"),
    ] {
        let r: Reference = store_name.parse().unwrap();
        assert_eq!(Repository::of(&r).name(), oci);
        assert_eq!(repo(oci), Repository::of(&r), "{oci}");
        assert_eq!(repo(oci).reference("1b"), Some(r));
    }
    // A mirror request names the upstream host apart.
    let mirrored = Repository::parse("ns/m", Some("localhost:5000")).unwrap();
    assert_eq!(mirrored, repo("localhost_5000/ns/m"));
}

#[test]
fn hostile_and_foreign_names_refused() {
    for bad in [
        "..",
        "library/..",
        "../../etc/passwd",
        "library/../x",
        "library/%2e%2e",
        "library%2Fm",
        "library/M",
        "library//m",
        "library/m/",
        "/library/m",
        "a/b:c",
        "127.0.0.1:5000/ns/m",
        "h_99999/ns/m",
        "library/a..b",
        "library/a___b",
        "",
    ] {
        assert!(
            matches!(
                Repository::parse(bad, None),
                Err(RegistryError::NameInvalid { .. })
            ),
            "`{bad}`: {:?}",
            Repository::parse(bad, None)
        );
    }
    for shape in ["m", "a/b/c/d"] {
        assert!(
            matches!(
                Repository::parse(shape, None),
                Err(RegistryError::NameShape(_))
            ),
            "{shape}"
        );
    }
    assert!(Repository::parse("ns/m", Some("not a host")).is_err());
}

#[test]
fn digests_only_in_colon_form() {
    let hex = "a".repeat(64);
    assert!(parse_digest(&format!("sha256:{hex}")).is_ok());
    for bad in [
        format!("sha256-{hex}"),
        format!("md5:{hex}"),
        "sha256:../../x".to_owned(),
        format!("sha256:{}", &hex[..63]),
        format!("sha256:{}", hex.to_uppercase()),
    ] {
        assert!(parse_digest(&bad).is_err(), "{bad}");
    }
    assert_eq!(
        ManifestRef::parse(&format!("sha256-{hex}")).unwrap(),
        ManifestRef::Tag(format!("sha256-{hex}"))
    );
}

#[test]
fn blobs_scoped_by_repository() {
    let (_dir, store) = store_with(&[("a:v1", b"weights a"), ("b:v1", b"weights b")]);
    let a = repo("library/a");
    let m = manifest(&store, &a, &ManifestRef::Tag("v1".into())).unwrap();
    assert_eq!(m.media_type, media_type::DOCKER_MANIFEST_V2);
    let parsed = Manifest::from_slice(&m.bytes).unwrap();
    let own = &parsed.layers[0].digest;
    assert_eq!(blob(&store, &a, own).unwrap().1, 9);
    assert!(
        blob(&store, &a, &m.digest).is_ok(),
        "the manifest is a blob too"
    );
    let b = manifest(&store, &repo("library/b"), &ManifestRef::Tag("v1".into())).unwrap();
    let other = &Manifest::from_slice(&b.bytes).unwrap().layers[0].digest;
    assert!(store.has_blob(other));
    assert!(matches!(
        blob(&store, &a, other),
        Err(RegistryError::BlobUnknown { .. })
    ));
    assert!(matches!(
        manifest(&store, &a, &ManifestRef::Digest(b.digest.clone())),
        Err(RegistryError::ManifestUnknown { .. })
    ));
    assert!(matches!(
        manifest(&store, &a, &ManifestRef::Tag("v2".into())),
        Err(RegistryError::ManifestUnknown { .. })
    ));
    assert!(matches!(
        manifest(&store, &repo("library/c"), &ManifestRef::Tag("v1".into())),
        Err(RegistryError::NameUnknown(_))
    ));
}

#[test]
fn catalog_tags_and_pages() {
    let (_dir, store) = store_with(&[
        ("a:v2", b"1"),
        ("a:v1", b"1"),
        ("a:V0", b"1"),
        ("me/b:x", b"2"),
        ("localhost:5000/ns/c:y", b"3"),
    ]);
    assert_eq!(
        catalog(&store).unwrap(),
        ["library/a", "localhost_5000/ns/c", "me/b"]
    );
    let tags = tags(&store, &repo("library/a")).unwrap();
    assert_eq!(tags, ["V0", "v1", "v2"]);
    assert_eq!(
        page(tags.clone(), Some(2), None),
        (vec!["V0".to_owned(), "v1".to_owned()], true)
    );
    assert_eq!(
        page(tags.clone(), Some(2), Some("v1")),
        (vec!["v2".to_owned()], false)
    );
    assert_eq!(page(tags.clone(), Some(0), None), (vec![], true));
    assert_eq!(page(tags, None, Some("v2")), (vec![], false));
}

#[test]
fn mixed_case_names_are_served_lower_cased() {
    let (_dir, store) = store_with(&[(
        "hf.co/Bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
        b"w".as_slice(),
    )]);
    let oci = "hf.co/bartowski/llama-3.2-1b-instruct-gguf";
    assert_eq!(catalog(&store).unwrap(), [oci]);
    let rp = repo(oci);
    assert_eq!(tags(&store, &rp).unwrap(), ["Q4_K_M"]);
    let m = manifest(&store, &rp, &ManifestRef::Tag("Q4_K_M".into())).unwrap();
    assert_eq!(
        Some(m.digest),
        store.names().unwrap().first().map(|(_, d)| d.clone())
    );
    // Tags keep their case here too.
    assert!(matches!(
        manifest(&store, &rp, &ManifestRef::Tag("q4_k_m".into())),
        Err(RegistryError::ManifestUnknown { .. })
    ));
    // The OCI grammar still refuses the mixed-case spelling in a path.
    assert!(Repository::parse("hf.co/Bartowski/Llama-3.2-1B-Instruct-GGUF", None).is_err());
}
