//! Unit tests of saving and loading against temp stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use llmpm_spec::Reference;

use super::load::classify_for_tests as classify;
use super::*;
use crate::store::Store;

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    (dir, s)
}

fn model(store: &Store, name: &str, weights: &[u8]) {
    crate::registry::put_test_model(store, name, weights);
}

async fn archive(store: &Store, names: &[&str]) -> Vec<u8> {
    let names: Vec<Reference> = names.iter().map(|n| r(n)).collect();
    let plan = plan(store, &names).unwrap();
    let len = plan.len;
    let mut out = Vec::new();
    let mut s = Box::pin(plan.into_stream());
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(
        out.len() as u64,
        len,
        "the planned length is the streamed length"
    );
    out
}

fn tmp_files(store: &Store) -> usize {
    std::fs::read_dir(store.root().join("tmp")).unwrap().count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_archive_loads_into_another_store_with_the_same_digests() {
    let (_a, src) = store();
    model(&src, "m", &[3u8; 5000]);
    model(&src, "ns/n:v1", &[3u8; 5000]);
    let bytes = archive(&src, &["m", "ns/n:v1"]).await;
    let (_b, dst) = store();
    let got = load(&dst, bytes.as_slice(), LoadOptions::default())
        .await
        .unwrap();
    assert_eq!(got.models.len(), 2);
    // Weights and config are shared: 2 blobs and 1 manifest (same bytes) written.
    assert_eq!(got.blobs_written, 3, "{got:?}");
    for n in ["m", "ns/n:v1"] {
        assert_eq!(
            dst.get(&r(n)).unwrap().digest,
            src.get(&r(n)).unwrap().digest
        );
    }
    assert_eq!(tmp_files(&dst), 0);
    // Again: everything is present, nothing written.
    let again = load(&dst, bytes.as_slice(), LoadOptions::default())
        .await
        .unwrap();
    assert_eq!((again.blobs_written, again.blobs_present), (0, 3));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_load_leaves_no_name_blob_or_temp_file() {
    let (_a, src) = store();
    model(&src, "m", &[9u8; 3000]);
    let mut bytes = archive(&src, &["m"]).await;
    // Flip a byte of the weights (the only 3000-byte run of 9s).
    let at = bytes
        .windows(3000)
        .position(|w| w.iter().all(|&b| b == 9))
        .unwrap();
    bytes[at + 1500] = 8;
    let (_b, dst) = store();
    let err = load(&dst, bytes.as_slice(), LoadOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ArchiveError::Blob { .. }), "{err}");
    assert!(dst.list().unwrap().is_empty());
    assert_eq!(tmp_files(&dst), 0);
    assert_eq!(
        std::fs::read_dir(dst.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_given_name_replaces_the_archives_and_is_refused_for_many() {
    let (_a, src) = store();
    model(&src, "m", b"w");
    model(&src, "n", b"x");
    let one = archive(&src, &["m"]).await;
    let (_b, dst) = store();
    let opts = LoadOptions {
        name: Some(r("other:v2")),
        len: Some(one.len() as u64),
    };
    let got = load(&dst, one.as_slice(), opts.clone()).await.unwrap();
    assert_eq!(got.models, vec![r("registry.ollama.ai/library/other:v2")]);
    let two = archive(&src, &["m", "n"]).await;
    let opts = LoadOptions {
        len: Some(two.len() as u64),
        ..opts
    };
    let err = load(&dst, two.as_slice(), opts).await.unwrap_err();
    assert!(err.to_string().contains("holds 2 models"), "{err}");
}

#[test]
fn entry_paths_are_checked() {
    use super::tar::Kind;
    let hex = "ab".repeat(32);
    assert!(classify(&format!("./blobs/sha256/{hex}"), Kind::File).is_ok());
    assert!(classify("blobs/sha256/", Kind::Dir).is_ok());
    assert!(
        classify("manifest.json", Kind::File).is_ok(),
        "skipped, not refused"
    );
    for bad in [
        "../x".to_owned(),
        "a/../../x".to_owned(),
        "/etc/passwd".to_owned(),
        "blobs\\sha256\\x".to_owned(),
        format!("blobs/sha512/{hex}"),
        "blobs/sha256/NOTHEX".to_owned(),
    ] {
        assert!(classify(&bad, Kind::File).is_err(), "{bad}");
    }
    // Directories are checked for escapes too.
    assert!(classify("../", Kind::Dir).is_err());
}
