//! Loading: an archive read as a stream, every blob hashed into `tmp/` as it lands, the whole checked, then blobs installed and names made visible.
//!
//! Nothing reaches `blobs/` or the index before the end-of-archive marker
//! has been read and every check passed: the blobs wait in `tmp/` as
//! [`HeldBlob`]s (deleted if the load fails; left by a killed daemon, they
//! are deleted when it next opens the store). A blob the store already has
//! is hashed and dropped, never written twice. Sizes are checked before any
//! byte is read where they are known: against the descriptors of an
//! `index.json` and manifests that came earlier in the stream (as `save`
//! orders them), and against what the upload has left.

use std::collections::{BTreeMap, HashMap, HashSet};

use llmpm_spec::digest::Algorithm;
use llmpm_spec::manifest::MAX_MANIFEST_BYTES;
use llmpm_spec::media_type::{DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, OCI_INDEX, OCI_MANIFEST};
use llmpm_spec::{Descriptor, Digest, Manifest, Reference};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncRead;

use super::tar::{Kind, Reader};
use super::{check_size, ArchiveError, ImageIndex, CONTAINERD_NAME, MAX_INDEX_ENTRIES, REF_NAME};
use crate::store::{BlobWriter, HeldBlob, Store};

/// Bytes read from the stream per chunk.
const CHUNK: usize = 1 << 20;
/// `oci-layout` is a one-line JSON object.
const MAX_LAYOUT: u64 = 4096;
/// Files an OCI archive may carry beside the layout (Docker's `manifest.json`,
/// `repositories`) are read past, up to this size each.
const MAX_OTHER: u64 = 1 << 20;

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The name to give the archive's one model, over the name it carries.
    pub name: Option<Reference>,
    /// The archive's length, when the sender said it (`Content-Length`).
    pub len: Option<u64>,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The names now visible.
    pub models: Vec<Reference>,
    /// Blobs written into the store.
    pub blobs_written: u64,
    /// Blobs the store had already (hashed, not written).
    pub blobs_present: u64,
    /// Bytes of blobs written.
    pub bytes_written: u64,
}

/// What an entry's path is.
enum Path {
    Dir,
    Layout,
    Index,
    Blob(Digest),
    Other,
}

fn classify(raw: &str, kind: Kind) -> Result<Path, ArchiveError> {
    let bad = |why| ArchiveError::Path {
        path: raw.to_owned(),
        why,
    };
    if raw.starts_with('/') {
        return Err(bad("is an absolute path"));
    }
    if raw.contains('\\') || raw.contains('\0') {
        return Err(bad("has a backslash or NUL in its path"));
    }
    let parts: Vec<&str> = raw
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(bad("escapes the archive (`..`)"));
    }
    if kind == Kind::Dir {
        return Ok(Path::Dir);
    }
    Ok(match parts.as_slice() {
        ["oci-layout"] => Path::Layout,
        ["index.json"] => Path::Index,
        ["blobs", alg, hex] => {
            let d: Digest = format!("{alg}:{hex}")
                .parse()
                .map_err(|_| bad("is not named `blobs/sha256/<64 lowercase hex>`"))?;
            if d.algorithm() != Algorithm::Sha256 {
                return Err(bad("is not a sha256 blob; llmpm stores sha256 blobs only"));
            }
            Path::Blob(d)
        }
        [] => return Err(bad("is a file without a name")),
        _ => Path::Other,
    })
}

/// Where a landed blob lies.
enum Landed {
    Held(HeldBlob),
    /// In the store already; the archive's copy hashed to its digest.
    Present(u64),
}

struct Landing {
    blobs: HashMap<Digest, Landed>,
    layout: Option<Vec<u8>>,
    index: Option<Vec<u8>>,
    /// Sizes declared by the index and by manifests read so far.
    expect: HashMap<Digest, (u64, String)>,
    /// Digests the index says are manifests.
    manifests: HashSet<Digest>,
}

enum Sink {
    Write(BlobWriter),
    Hash(Sha256, u64),
}

/// Reads the current entry whole into memory (it is capped by its caller).
async fn read_small<R: AsyncRead + Unpin>(
    tar: &mut Reader<R>,
    path: &str,
    size: u64,
    limit: u64,
) -> Result<Vec<u8>, ArchiveError> {
    if size > limit {
        return Err(ArchiveError::TooLarge {
            what: format!("`{path}`"),
            size,
            limit,
        });
    }
    let mut out = vec![0u8; size as usize];
    let mut got = 0;
    while got < out.len() {
        let n = tar.read_content(&mut out[got..], path).await?;
        got += n;
        if n == 0 {
            break;
        }
    }
    Ok(out)
}

/// Streams the current entry into `sink`, then checks its digest.
async fn land<R: AsyncRead + Unpin>(
    tar: &mut Reader<R>,
    path: &str,
    digest: &Digest,
    mut sink: Sink,
) -> Result<Landed, ArchiveError> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = tar.read_content(&mut buf, path).await?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        match &mut sink {
            // Writes and hashing are short; inline keeps memory bounded, as `/api/blobs` does.
            Sink::Write(w) => tokio::task::block_in_place(|| w.write_sync(chunk))?,
            Sink::Hash(h, len) => {
                tokio::task::block_in_place(|| h.update(chunk));
                *len += n as u64;
            }
        }
    }
    let corrupt = |source| ArchiveError::Blob {
        path: path.to_owned(),
        source,
    };
    match sink {
        Sink::Write(w) => Ok(Landed::Held(
            tokio::task::block_in_place(|| w.hold_sync(digest)).map_err(corrupt)?,
        )),
        Sink::Hash(h, len) => {
            let actual = Digest::sha256_from_bytes(h.finalize().into());
            if actual != *digest {
                crate::metrics::verification_failed();
                return Err(corrupt(crate::store::StoreError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                }));
            }
            Ok(Landed::Present(len))
        }
    }
}

impl Landing {
    fn expect(&mut self, d: &Descriptor, by: &str) {
        self.expect
            .entry(d.digest.clone())
            .or_insert_with(|| (d.size, by.to_owned()));
    }

    /// Learns the sizes an early `index.json` declares; its errors wait for validation.
    fn learn_index(&mut self, bytes: &[u8]) {
        if let Ok(index) = serde_json::from_slice::<ImageIndex>(bytes) {
            for d in index.manifests.iter().take(MAX_INDEX_ENTRIES) {
                self.manifests.insert(d.digest.clone());
                self.expect(d, "index.json");
            }
        }
    }

    /// Learns the sizes a manifest that just landed declares.
    fn learn_manifest(&mut self, store: &Store, digest: &Digest) {
        if !self.manifests.contains(digest) {
            return;
        }
        if let Ok(bytes) = self.read(store, digest) {
            if let Ok(m) = Manifest::from_slice(&bytes) {
                let by = format!("manifest `{digest}`");
                for d in m.blobs() {
                    self.expect(d, &by);
                }
            }
        }
    }

    /// A landed manifest-sized blob's bytes.
    fn read(&self, store: &Store, digest: &Digest) -> Result<Vec<u8>, ArchiveError> {
        let limit = MAX_MANIFEST_BYTES as u64;
        match self.blobs.get(digest) {
            Some(Landed::Held(h)) => {
                let too_large = h.size() > limit;
                if too_large {
                    return Err(ArchiveError::TooLarge {
                        what: format!("manifest `{digest}`"),
                        size: h.size(),
                        limit,
                    });
                }
                std::fs::read(h.path())
                    .map_err(|e| crate::store::StoreError::io("read", h.path(), e).into())
            }
            Some(Landed::Present(_)) => Ok(store.read_blob(digest, limit)?),
            None => Err(ArchiveError::Missing {
                digest: digest.clone(),
                needed_by: "index.json".into(),
            }),
        }
    }

    fn size_of(&self, digest: &Digest) -> Option<u64> {
        self.blobs.get(digest).map(|b| match b {
            Landed::Held(h) => h.size(),
            Landed::Present(n) => *n,
        })
    }

    /// Checks that `d` landed with its declared size.
    fn check(&self, d: &Descriptor, needed_by: &str) -> Result<(), ArchiveError> {
        if d.digest.algorithm() != Algorithm::Sha256 {
            return Err(ArchiveError::Path {
                path: d.digest.to_string(),
                why: "is not a sha256 blob; llmpm stores sha256 blobs only",
            });
        }
        let actual = self
            .size_of(&d.digest)
            .ok_or_else(|| ArchiveError::Missing {
                digest: d.digest.clone(),
                needed_by: needed_by.to_owned(),
            })?;
        check_size(&d.digest, d.size, actual, needed_by)
    }
}

/// Reads the archive to its end, landing every blob in `tmp/`.
async fn stream<R: AsyncRead + Unpin>(
    store: &Store,
    input: R,
    opts: &LoadOptions,
) -> Result<Landing, ArchiveError> {
    let mut tar = Reader::new(input);
    let mut l = Landing {
        blobs: HashMap::new(),
        layout: None,
        index: None,
        expect: HashMap::new(),
        manifests: HashSet::new(),
    };
    while let Some(e) = tar.next().await? {
        if let Some(total) = opts.len {
            let left = total.saturating_sub(tar.offset());
            if e.size > left {
                return Err(ArchiveError::Declared {
                    path: e.path,
                    size: e.size,
                    left,
                });
            }
        }
        match classify(&e.path, e.kind)? {
            Path::Dir => {}
            Path::Layout => {
                l.layout = Some(read_small(&mut tar, &e.path, e.size, MAX_LAYOUT).await?)
            }
            Path::Index => {
                let bytes =
                    read_small(&mut tar, &e.path, e.size, MAX_MANIFEST_BYTES as u64).await?;
                l.learn_index(&bytes);
                l.index = Some(bytes);
            }
            Path::Other => {
                if e.size > MAX_OTHER {
                    return Err(ArchiveError::TooLarge {
                        what: format!("entry `{}` (not part of an OCI layout)", e.path),
                        size: e.size,
                        limit: MAX_OTHER,
                    });
                }
                tracing::debug!(path = %e.path, "loading: skipping a file outside the OCI layout");
            }
            Path::Blob(d) => {
                if let Some((want, by)) = l.expect.get(&d) {
                    check_size(&d, *want, e.size, by)?;
                }
                if l.manifests.contains(&d) && e.size > MAX_MANIFEST_BYTES as u64 {
                    return Err(ArchiveError::TooLarge {
                        what: format!("manifest `{d}`"),
                        size: e.size,
                        limit: MAX_MANIFEST_BYTES as u64,
                    });
                }
                // A blob seen twice, or one the store has, is only hashed.
                let sink = if l.blobs.contains_key(&d) || store.has_blob(&d) {
                    Sink::Hash(Sha256::new(), 0)
                } else {
                    Sink::Write(store.blob_writer()?)
                };
                let landed = land(&mut tar, &e.path, &d, sink).await?;
                if !l.blobs.contains_key(&d) {
                    l.blobs.insert(d.clone(), landed);
                    l.learn_manifest(store, &d);
                }
            }
        }
    }
    tar.drain(MAX_OTHER).await?;
    Ok(l)
}

/// A model to name, or a signature artifact to keep.
struct Checked {
    digest: Digest,
    bytes: Vec<u8>,
    manifest: Manifest,
    descriptor: Descriptor,
}

/// The name a model entry gets: `--name`, else its containerd name, else its OCI ref name.
fn name_of(
    c: &Checked,
    given: Option<&Reference>,
    models: usize,
) -> Result<Reference, ArchiveError> {
    if let Some(n) = given {
        if models > 1 {
            return Err(ArchiveError::Name(format!(
                "the archive holds {models} models; `--name` names one, so leave it out and the archive's names are used"
            )));
        }
        return Ok(n.untagged_digest());
    }
    let ann = c.descriptor.annotations.as_ref();
    let raw = ann
        .and_then(|a| a.get(CONTAINERD_NAME).or_else(|| a.get(REF_NAME)))
        .ok_or_else(|| {
            ArchiveError::Name(format!(
                "the archive's model `{}` has no name (no `{REF_NAME}` annotation in index.json); pass `--name MODEL`",
                c.digest
            ))
        })?;
    let r: Reference = raw.parse().map_err(|source| ArchiveError::BadName {
        name: raw.clone(),
        source,
    })?;
    Ok(r.untagged_digest())
}

fn parse_layout(bytes: Option<&[u8]>) -> Result<(), ArchiveError> {
    let bytes = bytes.ok_or_else(|| ArchiveError::Layout("it has no `oci-layout` file".into()))?;
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ArchiveError::Layout(format!("`oci-layout` is not JSON: {e}")))?;
    match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some(ver) if ver.starts_with("1.") => Ok(()),
        Some(ver) => Err(ArchiveError::Layout(format!(
            "`oci-layout` says version `{ver}`; llmpm reads 1.x"
        ))),
        None => Err(ArchiveError::Layout(
            "`oci-layout` has no `imageLayoutVersion`".into(),
        )),
    }
}

/// Checks everything the index names; returns the models and signature artifacts.
fn validate(store: &Store, l: &Landing) -> Result<(Vec<Checked>, Vec<Checked>), ArchiveError> {
    parse_layout(l.layout.as_deref())?;
    let raw = l
        .index
        .as_deref()
        .ok_or_else(|| ArchiveError::Index("is missing".into()))?;
    let index: ImageIndex = serde_json::from_slice(raw)
        .map_err(|e| ArchiveError::Index(format!("is not an OCI image index: {e}")))?;
    if index.manifests.len() > MAX_INDEX_ENTRIES {
        return Err(ArchiveError::Index(format!(
            "lists {} manifests, more than the {MAX_INDEX_ENTRIES} allowed",
            index.manifests.len()
        )));
    }
    let (mut models, mut referrers) = (Vec::new(), Vec::new());
    for d in &index.manifests {
        let media = d.media_type.as_str();
        if media == OCI_INDEX || media == DOCKER_MANIFEST_LIST {
            return Err(ArchiveError::Index(format!(
                "lists `{}`, a nested image index; llmpm loads archives of single manifests (copy one platform with `skopeo copy`)",
                d.digest
            )));
        }
        if media != OCI_MANIFEST && media != DOCKER_MANIFEST_V2 {
            return Err(ArchiveError::Index(format!(
                "lists `{}` as `{media}`, which is not an image manifest",
                d.digest
            )));
        }
        l.check(d, "index.json")?;
        let bytes = l.read(store, &d.digest)?;
        let manifest = Manifest::from_slice(&bytes).map_err(|source| ArchiveError::Manifest {
            digest: d.digest.clone(),
            source,
        })?;
        let by = format!("manifest `{}`", d.digest);
        for b in manifest.blobs() {
            l.check(b, &by)?;
        }
        let c = Checked {
            digest: d.digest.clone(),
            bytes,
            manifest,
            descriptor: d.clone(),
        };
        if c.manifest.subject.is_some() {
            referrers.push(c);
        } else {
            models.push(c);
        }
    }
    if models.is_empty() {
        return Err(ArchiveError::Index("lists no model manifest".into()));
    }
    Ok((models, referrers))
}

/// Loads an archive from `input` into `store`; see the module docs.
pub async fn load<R: AsyncRead + Unpin>(
    store: &Store,
    input: R,
    opts: LoadOptions,
) -> Result<Loaded, ArchiveError> {
    let mut landing = stream(store, input, &opts).await?;
    let (models, referrers) = validate(store, &landing)?;
    let mut named: BTreeMap<String, (Reference, usize)> = BTreeMap::new();
    for (i, c) in models.iter().enumerate() {
        let name = name_of(c, opts.name.as_ref(), models.len())?;
        if let Some((_, j)) = named.get(&name.to_string()) {
            if models[*j].digest != c.digest {
                return Err(ArchiveError::Name(format!(
                    "the archive names two different models `{}`",
                    name.display_short()
                )));
            }
            continue;
        }
        named.insert(name.to_string(), (name, i));
    }
    let subjects: HashSet<&Digest> = models.iter().map(|c| &c.digest).collect();
    let kept: Vec<&Checked> = referrers
        .iter()
        .filter(|r| {
            let keep = r
                .manifest
                .subject
                .as_ref()
                .is_some_and(|s| subjects.contains(&s.digest));
            if !keep {
                tracing::warn!(artifact = %r.digest, "loading: skipping an artifact whose subject is no model of the archive");
            }
            keep
        })
        .collect();

    // Everything checked: install the blobs the named manifests use, then the names.
    let mut needed: HashSet<Digest> = HashSet::new();
    for c in models.iter().chain(kept.iter().copied()) {
        needed.insert(c.digest.clone());
        needed.extend(c.manifest.blobs().map(|d| d.digest.clone()));
    }
    let mut done = Loaded::default();
    tokio::task::block_in_place(|| -> Result<(), ArchiveError> {
        for d in &needed {
            match landing.blobs.remove(d) {
                Some(Landed::Held(h)) => {
                    done.bytes_written += h.size();
                    h.install()?;
                    done.blobs_written += 1;
                }
                Some(Landed::Present(_)) => done.blobs_present += 1,
                None => {}
            }
        }
        for (name, i) in named.values() {
            let c = &models[*i];
            store.put_manifest_bytes(name, &c.manifest, &c.bytes)?;
            done.models.push(name.clone());
        }
        for r in kept {
            store.put_referrer(&r.bytes)?;
        }
        Ok(())
    })?;
    // Held blobs nothing named are dropped here, deleting their temp files.
    drop(landing);
    tracing::info!(
        models = done.models.len(),
        written = done.blobs_written,
        present = done.blobs_present,
        "archive loaded"
    );
    Ok(done)
}

/// [`classify`] for the unit tests, which only ask whether a path passes.
#[cfg(test)]
pub(super) fn classify_for_tests(raw: &str, kind: Kind) -> Result<(), ArchiveError> {
    classify(raw, kind).map(drop)
}
