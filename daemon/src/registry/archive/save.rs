//! Saving: the archive of some models planned up front (every blob file opened, the exact length known), then streamed from the files.
//!
//! Entry order: `oci-layout`, `index.json`, the `blobs/` directories, then
//! per model its manifest, config and layers, then its signature artifacts'
//! manifests and blobs, each blob once. Putting the index and each manifest
//! before the blobs they name lets a reader check every declared size before
//! it reads the bytes (our `load` does). The blob files are opened while
//! planning, so a model removed while its archive streams still streams
//! whole (the open files keep their bytes).

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;

use bytes::Bytes;
use futures_util::Stream;
use llmpm_spec::media_type::{OCI_INDEX, OCI_MANIFEST};
use llmpm_spec::{Descriptor, Digest, Manifest, MediaType, Reference};
use tokio::io::AsyncReadExt;

use super::tar::{self, Kind};
use super::{ArchiveError, ImageIndex, LAYOUT, REF_NAME};
use crate::store::{Store, StoreError};

/// Bytes read from a blob file per chunk of the stream.
const CHUNK: usize = 1 << 20;

/// An archive ready to stream.
#[derive(Debug)]
pub struct SavePlan {
    /// Everything before the first blob: layout, index, directories.
    head: Vec<u8>,
    /// The blobs in order, each with its size and open file.
    blobs: Vec<(Digest, u64, fs::File)>,
    /// The archive's exact length in bytes.
    pub len: u64,
    /// The names saved, as written into `index.json`.
    pub names: Vec<String>,
}

fn file_entry(out: &mut Vec<u8>, name: &str, content: &[u8]) {
    out.extend_from_slice(&tar::header(name, content.len() as u64, Kind::File));
    out.extend_from_slice(content);
    out.resize(out.len() + tar::padding(content.len() as u64), 0);
}

/// The descriptor of a stored manifest, as `index.json` lists it.
fn manifest_descriptor(digest: &Digest, raw_len: usize, m: &Manifest) -> Descriptor {
    // A manifest without `mediaType` is an OCI one (image-spec: it SHOULD be set).
    let media = m.media_type.as_deref().unwrap_or(OCI_MANIFEST);
    let mut d = Descriptor::new(MediaType::new(media), digest.clone(), raw_len as u64);
    d.artifact_type = m.artifact_type.clone();
    d
}

/// Plans the archive of `names` (each a model in the store): reads the
/// manifests and signature artifacts, opens every blob file.
pub fn plan(store: &Store, names: &[Reference]) -> Result<SavePlan, ArchiveError> {
    let mut index = Vec::new();
    let mut order: Vec<(Digest, u64)> = Vec::new();
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut saved = Vec::new();
    let mut push = |d: &Digest, size: u64, order: &mut Vec<(Digest, u64)>| {
        if seen.insert(d.clone()) {
            order.push((d.clone(), size));
        }
    };
    let mut referrer_subjects: HashSet<Digest> = HashSet::new();
    for name in names {
        let entry = store.get(name)?;
        let raw = store.read_blob(
            &entry.digest,
            llmpm_spec::manifest::MAX_MANIFEST_BYTES as u64,
        )?;
        let full = entry.reference.to_string();
        let mut d = manifest_descriptor(&entry.digest, raw.len(), &entry.manifest);
        d.annotations = Some(BTreeMap::from([(REF_NAME.to_owned(), full.clone())]));
        index.push(d);
        saved.push(full);
        push(&entry.digest, raw.len() as u64, &mut order);
        for b in entry.manifest.blobs() {
            push(&b.digest, b.size, &mut order);
        }
        // Two names of one model carry its signatures once.
        if !referrer_subjects.insert(entry.digest.clone()) {
            continue;
        }
        for r in store.referrers(&entry.digest)? {
            let raw =
                store.read_blob(&r.digest, llmpm_spec::manifest::MAX_MANIFEST_BYTES as u64)?;
            index.push(manifest_descriptor(&r.digest, raw.len(), &r.manifest));
            push(&r.digest, raw.len() as u64, &mut order);
            for b in r.manifest.blobs() {
                push(&b.digest, b.size, &mut order);
            }
        }
    }
    let index_json = serde_json::to_vec(&ImageIndex {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_owned()),
        manifests: index,
    })
    .map_err(|e| StoreError::io("encode", "index.json", io::Error::other(e)))?;

    let mut head = Vec::new();
    file_entry(&mut head, "oci-layout", LAYOUT);
    file_entry(&mut head, "index.json", &index_json);
    head.extend_from_slice(&tar::header("blobs/", 0, Kind::Dir));
    head.extend_from_slice(&tar::header("blobs/sha256/", 0, Kind::Dir));
    let mut len = head.len() as u64 + (tar::BLOCK * 2) as u64;
    let mut blobs = Vec::with_capacity(order.len());
    for (digest, size) in order {
        let path = store.blob_path(&digest);
        let f = fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingLayer(digest.clone()),
            _ => StoreError::io("open", &path, e),
        })?;
        let actual = f
            .metadata()
            .map_err(|e| StoreError::io("stat", &path, e))?
            .len();
        if actual != size {
            return Err(StoreError::SizeMismatch {
                digest,
                expected: size,
                actual,
            }
            .into());
        }
        len += tar::header(&blob_name(&digest), size, Kind::File).len() as u64
            + size
            + tar::padding(size) as u64;
        blobs.push((digest, size, f));
    }
    Ok(SavePlan {
        head,
        blobs,
        len,
        names: saved,
    })
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())
}

impl SavePlan {
    /// The archive's bytes, read from the blob files as the consumer takes
    /// them. A blob file that reads short (changed under us) ends the stream
    /// with an error, so a reader never sees a tar that looks whole.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(4);
        tokio::spawn(async move {
            let SavePlan { head, blobs, .. } = self;
            if tx.send(Ok(Bytes::from(head))).await.is_err() {
                return;
            }
            for (digest, size, file) in blobs {
                let name = blob_name(&digest);
                let header = tar::header(&name, size, Kind::File);
                if tx.send(Ok(Bytes::from(header))).await.is_err() {
                    return;
                }
                let mut file = tokio::fs::File::from_std(file);
                let mut left = size;
                while left > 0 {
                    let want = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
                    let mut buf = vec![0u8; want];
                    let res = file.read_exact(&mut buf).await.map(|_| buf);
                    let failed = res.is_err();
                    let item = res.map(Bytes::from).map_err(|e| {
                        tracing::warn!(blob = %digest, error = %e, "saving: a blob file read short");
                        io::Error::new(e.kind(), format!("reading blob `{digest}`: {e}"))
                    });
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                    left -= want as u64;
                }
                let pad = tar::padding(size);
                if pad > 0 && tx.send(Ok(Bytes::from(vec![0u8; pad]))).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(Ok(Bytes::copy_from_slice(&tar::trailer()))).await;
        });
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
    }
}
