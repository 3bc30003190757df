#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use llmpm_spec::media_type::{ollama, DOCKER_CONFIG};
use llmpm_spec::{Descriptor, MediaType};

fn model(store: &Store, weights: &[u8], system: &str) -> Manifest {
    let w = store.put_bytes(weights).unwrap();
    let s = store.put_bytes(system.as_bytes()).unwrap();
    let c = store.put_bytes(b"{}").unwrap();
    Manifest::docker_v2(
        Descriptor::new(MediaType::new(DOCKER_CONFIG), c, 2),
        vec![
            Descriptor::new(MediaType::new(ollama::MODEL), w, weights.len() as u64),
            Descriptor::new(MediaType::new(ollama::SYSTEM), s, system.len() as u64),
        ],
    )
}

fn r(s: &str) -> Reference {
    s.parse().unwrap()
}

fn blob_count(store: &Store) -> usize {
    store.blob_files().unwrap().len()
}

#[test]
fn refcounted_delete_keeps_shared_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let m1 = model(&store, b"weights", "sys one");
    let m2 = model(&store, b"weights", "sys two");
    store.put_manifest(&r("a"), &m1).unwrap();
    store.put_manifest(&r("b"), &m2).unwrap();
    // weights, sys1, sys2, config, 2 manifests
    assert_eq!(blob_count(&store), 6);
    store.copy(&r("a"), &r("c")).unwrap();
    assert_eq!(blob_count(&store), 6, "copy adds no blob");
    let freed = store.delete(&r("a")).unwrap();
    assert!(freed.is_empty(), "c still uses a's blobs: {freed:?}");
    let freed = store.delete(&r("c")).unwrap();
    assert_eq!(freed.len(), 2, "sys one and m1's manifest: {freed:?}");
    assert_eq!(blob_count(&store), 4);
    assert!(store.has_blob(&m2.layers[0].digest));
    store.delete(&r("b")).unwrap();
    assert_eq!(blob_count(&store), 0);
    assert!(matches!(
        store.delete(&r("b")),
        Err(StoreError::ModelNotFound(_))
    ));
}

#[test]
fn retag_frees_old_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let m1 = model(&store, b"old", "s");
    store.put_manifest(&r("a"), &m1).unwrap();
    let m2 = model(&store, b"new", "s");
    let (_, freed) = store.put_manifest(&r("a"), &m2).unwrap();
    assert!(freed.contains(&m1.layers[0].digest));
    assert!(!store.has_blob(&m1.layers[0].digest));
    assert!(
        store.has_blob(&m2.layers[1].digest),
        "shared system layer kept"
    );
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn manifest_must_name_stored_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut m = model(&store, b"w", "s");
    m.layers[0].digest = Digest::sha256_from_bytes([7; 32]);
    assert!(matches!(
        store.put_manifest(&r("a"), &m),
        Err(StoreError::MissingLayer(_))
    ));
    m.layers[0].digest = m.layers[1].digest.clone();
    m.layers[0].size = 999;
    assert!(matches!(
        store.put_manifest(&r("a"), &m),
        Err(StoreError::SizeMismatch { .. })
    ));
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn wrong_digest_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.blob_writer().unwrap();
    w.write_sync(b"hello").unwrap();
    let claimed = Digest::sha256_from_bytes([1; 32]);
    let e = w.commit_sync(Some(&claimed)).unwrap_err();
    assert!(e.to_string().contains(&claimed.to_string()), "{e}");
    assert_eq!(blob_count(&store), 0);
    assert_eq!(
        fs::read_dir(store.tmp_dir()).unwrap().count(),
        0,
        "temp removed"
    );
}

#[test]
fn prune_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let m = model(&store, b"weights", "s");
    store.put_manifest(&r("a"), &m).unwrap();
    let orphan = store.put_bytes(b"orphan").unwrap();
    fs::write(store.tmp_dir().join("stale.partial"), b"x").unwrap();
    let live = store.blob_writer().unwrap();
    let rep = store.prune().unwrap();
    assert_eq!(rep.blobs_removed, 1);
    assert_eq!(rep.temp_files_removed, 1, "the live writer's file stays");
    assert!(!store.has_blob(&orphan));
    drop(live);

    // Corrupt the weights: verify quarantines them and names the model.
    let wpath = store.blob_path(&m.layers[0].digest);
    fs::write(&wpath, b"weightz").unwrap();
    let rep = store.verify().unwrap();
    assert_eq!(rep.corrupt.len(), 1);
    assert_eq!(rep.corrupt[0].models, vec![r("a")]);
    assert!(!wpath.exists());
    assert!(rep.corrupt[0].quarantined_to.exists());
    assert_eq!(rep.missing, vec![m.layers[0].digest.clone()]);
    assert!(
        store.get(&r("a")).is_ok(),
        "the model's name is kept so it can be pulled again"
    );
}

/// A prune racing blob writers never deletes a temp file that is being
/// written (the soak test saw a create fail with "cannot rename": its temp
/// file was swept between being created and being marked live).
#[test]
fn prune_spares_writers_created_while_it_sweeps() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.prune().unwrap();
            }
        });
        let writers: Vec<_> = (0..2u32)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    for i in 0..500u32 {
                        let mut w = store.blob_writer().unwrap();
                        w.write_sync(format!("{t}-{i}").as_bytes()).unwrap();
                        w.commit_sync(None).unwrap();
                    }
                })
            })
            .collect();
        let ok = writers.into_iter().all(|w| w.join().is_ok());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(ok, "a writer's temp file was pruned under it");
    });
}

#[test]
fn reopen_sees_same_state_and_lock_is_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let m = model(&store, b"w", "s");
        store.put_manifest(&r("ns/a:v1"), &m).unwrap();
        let again = Store::open(dir.path());
        assert!(matches!(again, Err(StoreError::Locked(_))), "{again:?}");
    }
    let store = Store::open(dir.path()).unwrap();
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].reference, r("ns/a:v1"));
}

/// A signature-like artifact for `subject` holding `payload`.
fn artifact(store: &Store, subject: &Digest, size: u64, payload: &[u8]) -> Vec<u8> {
    let c = store.put_bytes(b"{}").unwrap();
    let b = store.put_bytes(payload).unwrap();
    let mut m = Manifest::docker_v2(
        Descriptor::new(MediaType::new("application/vnd.oci.empty.v1+json"), c, 2),
        vec![Descriptor::new(
            MediaType::new("application/x-bundle"),
            b,
            payload.len() as u64,
        )],
    );
    m.media_type = Some(llmpm_spec::media_type::OCI_MANIFEST.into());
    m.artifact_type = Some("application/x-bundle".into());
    m.subject = Some(Descriptor::new(
        MediaType::new(llmpm_spec::media_type::DOCKER_MANIFEST_V2),
        subject.clone(),
        size,
    ));
    m.to_bytes()
}

#[test]
fn referrers_live_and_die_with_their_subject() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let m = model(&store, b"weights", "sys");
    let (d, _) = store.put_manifest(&r("a"), &m).unwrap();
    store.copy(&r("a"), &r("b")).unwrap();
    let size = store.blob_size(&d).unwrap();
    let art = artifact(&store, &d, size, b"bundle");
    let ad = store.put_referrer(&art).unwrap();
    assert_eq!(store.put_referrer(&art).unwrap(), ad, "idempotent");
    let refs = store.referrers(&d).unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].digest, ad);
    // A referrer of a manifest no name points at is refused (it could never be released).
    let stray = artifact(
        &store,
        &format!("sha256:{}", "e".repeat(64)).parse().unwrap(),
        1,
        b"x",
    );
    assert!(matches!(
        store.put_referrer(&stray),
        Err(StoreError::ModelNotFound(_))
    ));
    // prune and verify keep what a referrer needs.
    store.prune().unwrap();
    let v = store.verify().unwrap();
    assert_eq!(v.counts_fixed, 0, "{v:?}");
    assert!(store.has_blob(&ad));
    store.delete(&r("a")).unwrap();
    assert_eq!(
        store.referrers(&d).unwrap().len(),
        1,
        "b still points at the subject"
    );
    store.delete(&r("b")).unwrap();
    assert!(store.referrers(&d).unwrap().is_empty());
    store.prune().unwrap();
    assert_eq!(
        blob_count(&store),
        0,
        "the artifact, its bundle and config went with the model"
    );
}

#[test]
fn names_differing_only_in_case_are_one_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let hf = "hf.co/Bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M";
    let m1 = model(&store, b"w1", "s");
    store.put_manifest(&r(hf), &m1).unwrap();
    // Found by any spelling, shown as first written.
    let got = store
        .get(&r("hf.co/bartowski/llama-3.2-1b-instruct-gguf:Q4_K_M"))
        .unwrap();
    assert_eq!(got.reference.display_short(), hf);
    // Tags keep their case: another tag, not found.
    assert!(matches!(
        store.get(&r("hf.co/bartowski/llama-3.2-1b-instruct-gguf:q4_k_m")),
        Err(StoreError::ModelNotFound(_))
    ));
    // Another spelling replaces the model, keeps the first spelling, never adds a second name.
    let m2 = model(&store, b"w2", "s");
    let (_, freed) = store
        .put_manifest(&r("hf.co/BARTOWSKI/llama-3.2-1B-instruct-gguf:Q4_K_M"), &m2)
        .unwrap();
    assert!(freed.contains(&m1.layers[0].digest), "{freed:?}");
    let names: Vec<String> = store
        .list()
        .unwrap()
        .iter()
        .map(|e| e.reference.display_short())
        .collect();
    assert_eq!(names, [hf]);
    // Copy to a lower-case name onto itself is no new name either.
    store
        .copy(
            &r(hf),
            &r("hf.co/bartowski/llama-3.2-1b-instruct-gguf:Q4_K_M"),
        )
        .unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    store.copy(&r(hf), &r("hf.co/Other/Name:v1")).unwrap();
    assert_eq!(
        store
            .get(&r("hf.co/other/name:v1"))
            .unwrap()
            .reference
            .display_short(),
        "hf.co/Other/Name:v1"
    );
    // Lower-case names are stored as before: no spelling recorded.
    store.copy(&r(hf), &r("me/m:V1")).unwrap();
    let raw = store
        .inner
        .index
        .get_ref("registry.ollama.ai/me/m:V1")
        .unwrap()
        .unwrap();
    assert_eq!(raw.name, None);
    // Removed by any spelling, and a reopened store sees the same.
    store
        .delete(&r("HF.CO/bartowski/LLAMA-3.2-1B-INSTRUCT-GGUF:Q4_K_M"))
        .unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let names: Vec<String> = store
        .names()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n.display_short())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"hf.co/Other/Name:v1".to_owned()),
        "{names:?}"
    );
}
