//! Push: a stored model's blobs (HEAD first, cross-repository mount when possible, else uploaded) then its manifest.
//!
//! Uploads follow the OCI distribution spec: `POST …/blobs/uploads/` opens a
//! session whose `Location` every later request uses (and updates); a blob
//! up to one chunk goes in one `PUT ?digest=`; a larger one is sent as
//! `PATCH` chunks with `Content-Range`, at least `OCI-Chunk-Min-Length`
//! bytes each, checked against the registry's `Range` answer, then closed
//! with an empty `PUT ?digest=`. Progress lines are Ollama's:
//! `retrieving manifest`, `pushing <12 hex>`, `pushing manifest`, `success`.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use llmpm_spec::api::PullRequest;
use llmpm_spec::manifest::MAX_MANIFEST_BYTES;
use llmpm_spec::{Descriptor, Reference};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, Response, StatusCode, Url};

use super::client::Registry;
use super::mirrors::registry_for;
use super::pull::{blob_line, Reporter};
use super::ratelimit::Limits;
use super::{TransferError, Transfers};
use crate::store::Store;

/// Blobs up to one chunk go up in one request; larger ones in chunks. The
/// chunk is the download part size (`LLMPM_PULL_PART_SIZE`), at most this.
const MAX_CHUNK: u64 = 64 * 1024 * 1024;

fn octet_stream() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h
}

fn location(reg: &Registry, resp: &Response) -> Result<Url, TransferError> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            reg.invalid(format!(
                "no `Location` in its {} answer to an upload",
                resp.status()
            ))
        })?;
    reg.resolve(resp.url(), loc)
}

fn with_digest(mut url: Url, d: &llmpm_spec::Digest) -> Url {
    url.query_pairs_mut().append_pair("digest", &d.to_string());
    url
}

/// Reads `len` bytes of a blob file from `offset`, off the async threads.
async fn read_range(path: &Path, offset: u64, len: u64) -> Result<Bytes, TransferError> {
    let p = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&p).map_err(|e| TransferError::io("open", &p, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| TransferError::io("seek", &p, e))?;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        f.read_exact(&mut buf)
            .map_err(|e| TransferError::io("read", &p, e))?;
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(|e| TransferError::io("read", path, std::io::Error::other(e)))?
}

struct Pusher<'a> {
    reg: Arc<Registry>,
    repo: String,
    scope: String,
    store: &'a Store,
    out: &'a Reporter,
    chunk: u64,
    /// The daemon's upload limit and the push's own.
    limits: Limits,
}

impl Pusher<'_> {
    async fn send(
        &self,
        m: Method,
        url: Url,
        h: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Response, TransferError> {
        self.reg
            .send_limited(m, url, h, body, &self.scope, &self.limits)
            .await
    }

    /// One blob: already there, mounted, or uploaded.
    async fn blob(&self, d: &Descriptor, name: &Reference) -> Result<(), TransferError> {
        let line = |c| blob_line("pushing", &d.digest, d.size, c);
        self.out.send(line(0)).await?;
        let url = self.reg.url(&format!("{}/blobs/{}", self.repo, d.digest))?;
        let resp = self.send(Method::HEAD, url, HeaderMap::new(), None).await?;
        if resp.status() == StatusCode::OK {
            return self.out.send(line(d.size)).await;
        }
        if resp.status() != StatusCode::NOT_FOUND {
            self.reg.check(resp, &Method::HEAD).await?;
        }
        let mut session = None;
        // Another repository of this registry that has it (we pulled or pushed it there).
        let store = self.store.clone();
        let digest = d.digest.clone();
        let users = tokio::task::spawn_blocking(move || store.models_using(&digest))
            .await
            .map_err(|e| {
                TransferError::io("look up", self.store.root(), std::io::Error::other(e))
            })??;
        let from = users
            .iter()
            .find(|r| r.host() == name.host() && r.repository() != self.repo)
            .map(Reference::repository);
        if let Some(from) = from {
            let mut url = self.reg.url(&format!("{}/blobs/uploads/", self.repo))?;
            url.query_pairs_mut()
                .append_pair("mount", &d.digest.to_string())
                .append_pair("from", &from);
            let resp = self.send(Method::POST, url, HeaderMap::new(), None).await?;
            match resp.status() {
                StatusCode::CREATED => {
                    tracing::info!(blob = %d.digest, from, "mounted");
                    return self.out.send(line(d.size)).await;
                }
                StatusCode::ACCEPTED => session = Some(resp),
                _ => {
                    self.reg.check(resp, &Method::POST).await?;
                }
            }
        }
        let resp = match session {
            Some(r) => r,
            None => {
                let url = self.reg.url(&format!("{}/blobs/uploads/", self.repo))?;
                let r = self.send(Method::POST, url, HeaderMap::new(), None).await?;
                self.reg.check(r, &Method::POST).await?
            }
        };
        let min_chunk: u64 = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut loc = location(&self.reg, &resp)?;
        let path = self.store.blob_path(&d.digest);
        let chunk = self.chunk.min(MAX_CHUNK).max(min_chunk).max(1);
        if d.size <= chunk {
            let body = read_range(&path, 0, d.size).await?;
            let r = self
                .send(
                    Method::PUT,
                    with_digest(loc, &d.digest),
                    octet_stream(),
                    Some(body),
                )
                .await?;
            self.reg.check(r, &Method::PUT).await?;
            return self.out.send(line(d.size)).await;
        }
        let mut off = 0u64;
        while off < d.size {
            let len = chunk.min(d.size - off);
            let body = read_range(&path, off, len).await?;
            let mut h = octet_stream();
            if let Ok(v) = HeaderValue::from_str(&format!("{}-{}", off, off + len - 1)) {
                h.insert(CONTENT_RANGE, v);
            }
            let r = self.send(Method::PATCH, loc.clone(), h, Some(body)).await?;
            let r = self.reg.check(r, &Method::PATCH).await?;
            if let Some(range) = r.headers().get(RANGE).and_then(|v| v.to_str().ok()) {
                let end = range
                    .rsplit('-')
                    .next()
                    .and_then(|e| e.trim().parse::<u64>().ok());
                if end != Some(off + len - 1) {
                    return Err(self.reg.invalid(format!(
                        "after bytes {off}-{} it reports `Range: {range}`",
                        off + len - 1
                    )));
                }
            }
            loc = location(&self.reg, &r)?;
            off += len;
            self.out.send(line(off)).await?;
        }
        let r = self
            .send(
                Method::PUT,
                with_digest(loc, &d.digest),
                octet_stream(),
                Some(Bytes::new()),
            )
            .await?;
        self.reg.check(r, &Method::PUT).await?;
        Ok(())
    }
}

/// Pushes `req.model` from the store to its registry, reporting progress to `out`.
pub async fn push(
    t: Arc<Transfers>,
    store: Store,
    home: &Path,
    req: &PullRequest,
    out: Reporter,
) -> Result<(), TransferError> {
    let name: Reference = req.model.parse()?;
    out.status("retrieving manifest").await?;
    let s = store.clone();
    let key = name.clone();
    let (entry, raw) = tokio::task::spawn_blocking(move || {
        let entry = s.get(&key)?;
        let raw = s.read_blob(&entry.digest, MAX_MANIFEST_BYTES as u64)?;
        Ok::<_, crate::store::StoreError>((entry, raw))
    })
    .await
    .map_err(|e| TransferError::io("read", home, std::io::Error::other(e)))??;
    let reg = registry_for(&t, home, &name, req.insecure)?;
    let repo = name.repository();
    let p = Pusher {
        scope: format!("repository:{repo}:pull,push"),
        reg: reg.clone(),
        repo: repo.clone(),
        store: &store,
        out: &out,
        chunk: t.options.part_size,
        limits: Limits::new(t.upload_limit.as_ref(), req.limit_rate),
    };
    let mut seen = HashSet::new();
    for d in entry.manifest.blobs() {
        if seen.insert(d.digest.clone()) {
            p.blob(d, &name).await?;
        }
    }
    out.status("pushing manifest").await?;
    let media = entry
        .manifest
        .media_type
        .clone()
        .unwrap_or_else(|| llmpm_spec::media_type::DOCKER_MANIFEST_V2.to_owned());
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&media) {
        h.insert(CONTENT_TYPE, v);
    }
    let url = reg.url(&format!("{repo}/manifests/{}", name.tag()))?;
    let r = p.send(Method::PUT, url, h, Some(Bytes::from(raw))).await?;
    reg.check(r, &Method::PUT).await?;
    push_signatures(&p, &store, &name, &entry.digest).await?;
    tracing::info!(model = %name, "pushed");
    out.status("success").await
}

/// Pushes the model's stored signature artifacts as referrers: their blobs,
/// the artifact manifest by digest, and, when the registry does not answer
/// `OCI-Subject` (no referrers API), an entry in the `sha256-<hex>` tag's index.
async fn push_signatures(
    p: &Pusher<'_>,
    store: &Store,
    name: &Reference,
    subject: &llmpm_spec::Digest,
) -> Result<(), TransferError> {
    let s = store.clone();
    let d = subject.clone();
    let found = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for r in s.referrers(&d)? {
            if crate::trust::bundle_layer(&r.manifest).is_some() {
                let raw = s.read_blob(&r.digest, MAX_MANIFEST_BYTES as u64)?;
                out.push((r, raw));
            }
        }
        Ok::<_, crate::store::StoreError>(out)
    })
    .await
    .map_err(|e| TransferError::io("read", store.root(), std::io::Error::other(e)))??;
    for (r, raw) in found {
        p.out
            .status(&format!("pushing signature {}", r.digest.short()))
            .await?;
        for d in r.manifest.blobs() {
            p.blob(d, name).await?;
        }
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(llmpm_spec::media_type::OCI_MANIFEST),
        );
        let url = p.reg.url(&format!("{}/manifests/{}", p.repo, r.digest))?;
        let size = raw.len() as u64;
        let resp = p.send(Method::PUT, url, h, Some(Bytes::from(raw))).await?;
        let resp = p.reg.check(resp, &Method::PUT).await?;
        if resp.headers().get("oci-subject").is_none() {
            let mut desc = Descriptor::new(
                llmpm_spec::MediaType::new(llmpm_spec::media_type::OCI_MANIFEST),
                r.digest.clone(),
                size,
            );
            desc.artifact_type = r.manifest.artifact_type.clone();
            desc.annotations = r.manifest.annotations.clone();
            super::referrers::add_to_fallback(&p.reg, name, subject, desc).await?;
        }
        tracing::info!(model = %name, artifact = %r.digest, "pushed signature");
    }
    Ok(())
}
