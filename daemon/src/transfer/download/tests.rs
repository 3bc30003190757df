//! Tests of the part plan, the journal and the hasher.

#![allow(clippy::unwrap_used)]

use sha2::{Digest as _, Sha256};

use super::worker::parse_content_range;
use super::*;

#[test]
fn range_plan_covers_the_blob_exactly() {
    assert_eq!(plan_parts(0, 10), vec![]);
    assert_eq!(plan_parts(10, 10), vec![(0, 10)]);
    assert_eq!(plan_parts(25, 10), vec![(0, 10), (10, 10), (20, 5)]);
    assert_eq!(plan_parts(3, 0), vec![(0, 1), (1, 1), (2, 1)]);
    let big = plan_parts(2 << 30, 64 << 20);
    assert_eq!(big.len(), 32);
    assert_eq!(big.iter().map(|p| p.1).sum::<u64>(), 2 << 30);
}

#[test]
fn prefix_stops_at_the_first_gap() {
    let mk = |v: &[(u64, u64, u64)]| -> Vec<Part> {
        v.iter()
            .map(|&(offset, len, done)| Part {
                offset,
                len,
                done: AtomicU64::new(done),
            })
            .collect()
    };
    assert_eq!(prefix_end(&mk(&[(0, 10, 10), (10, 10, 4), (20, 5, 5)])), 14);
    assert_eq!(prefix_end(&mk(&[(0, 10, 3), (10, 10, 10)])), 3);
    assert_eq!(prefix_end(&mk(&[(0, 10, 10), (10, 10, 10)])), 20);
    assert_eq!(prefix_end(&[]), 0);
}

#[test]
fn content_range_forms() {
    assert_eq!(
        parse_content_range("bytes 0-9/100"),
        Some((0, 9, Some(100)))
    );
    assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
    assert_eq!(parse_content_range("items 0-1/2"), None);
    assert_eq!(parse_content_range("bytes x-1/2"), None);
}

#[test]
fn journal_resumes_only_a_matching_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
    let http = crate::transfer::client::Http::new(Duration::from_secs(5)).unwrap();
    let reg = Registry::new(&http, "127.0.0.1:1", true, None, TransferOptions::default()).unwrap();
    let job = Job {
        store: store.clone(),
        source: Source {
            registries: vec![reg].into(),
            repository: "a/b".into(),
            limits: Limits::default(),
        },
        desc: Descriptor::new(llmpm_spec::MediaType::new("x"), digest.clone(), 25),
        opts: TransferOptions::default(),
        shared: Arc::new(Shared {
            status: watch::channel(Status::default()).0,
            waiters: AtomicUsize::new(0),
            cancel: CancellationToken::new(),
        }),
        current: Arc::new(AtomicUsize::new(0)),
        from_mirror: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        serving: Arc::new(AtomicUsize::new(0)),
    };
    let path = store.partial_path(&digest);
    assert!(job.load_journal(&path).is_none());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.set_len(25).unwrap();
    let parts: Vec<Part> = plan_parts(25, 10)
        .into_iter()
        .zip([10, 4, 0])
        .map(|((offset, len), d)| Part {
            offset,
            len,
            done: AtomicU64::new(d),
        })
        .collect();
    job.save_journal(&file, &parts, 10).unwrap();
    let j = job.load_journal(&path).unwrap();
    assert_eq!(j.done, vec![10, 4, 0]);
    assert_eq!(j.part_size, 10);
    // A file of the wrong length (truncated by hand) is not resumed.
    file.set_len(7).unwrap();
    assert!(job.load_journal(&path).is_none());
    job.discard(&path);
    assert!(!path.exists());
    assert!(store.journal().get(journal_key(&digest)).unwrap().is_none());
}

#[test]
fn zstd_unpacks_while_hashing_the_compressed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let plain = b"GGUF and then some weights, repeated ".repeat(1000);
    let packed = zstd::stream::encode_all(&plain[..], 3).unwrap();
    let d = Digest::sha256_from_bytes(Sha256::digest(&packed).into());
    let path = dir.path().join("z");
    std::fs::write(&path, &packed).unwrap();
    let file = File::open(&path).unwrap();
    let n = packed.len() as u64;
    let parts = vec![Part {
        offset: 0,
        len: n,
        done: AtomicU64::new(n),
    }];
    let (_tx, rx) = std::sync::mpsc::sync_channel(1);
    let (got, unpacked) = hash_prefix(
        &file,
        &path,
        &parts,
        n,
        rx,
        &CancellationToken::new(),
        Some((store.clone(), d.clone())),
    )
    .unwrap()
    .unwrap();
    assert_eq!(got, d);
    let f = unpacked.unwrap();
    assert_eq!(f.size, plain.len() as u64);
    assert_eq!(store.read_blob(&f.digest, 1 << 20).unwrap(), plain);
}
