//! Pull: name → registry manifest (indexes resolved) → every blob fetched or found → manifest stored, with Ollama's progress.
//!
//! Progress lines are Ollama's: `pulling manifest`, `pulling <12 hex>` with
//! `digest`/`total`/`completed`, `verifying sha256 digest`, `writing
//! manifest`, `removing unused layers` (when replacing a tag freed some),
//! `success`. Each `pulling` line also says where the blob's bytes come
//! from (`source`, an llmpm field). The manifest and the blobs are asked of
//! each configured mirror in turn, then of the upstream (`mirrors`). The manifest is stored byte for byte as the registry served it,
//! so the local digest is the registry's; only a `+zstd` layer, which is
//! stored decompressed, makes llmpm rewrite it (see `SPEC.md`).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use llmpm_spec::api::{ProgressResponse, PullRequest};
use llmpm_spec::media_type::{self, Compression};
use llmpm_spec::{Descriptor, Digest, Manifest, MediaType, Reference};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::client::Registry;
use super::download::{Fetched, Source};
use super::manifest::fetch_manifest;
use super::ratelimit::Limits;
use super::{TransferError, Transfers};
use crate::store::Store;

/// Indexes nested deeper than this are refused.
const MAX_INDEX_DEPTH: usize = 4;
/// The annotation that keeps a decompressed layer's registry digest.
pub const COMPRESSED_DIGEST_ANNOTATION: &str = "org.llmpm.compressed.digest";

/// Sends progress lines; a closed channel means the client went away.
#[derive(Debug, Clone)]
pub struct Reporter(pub mpsc::Sender<ProgressResponse>);

impl Reporter {
    /// Sends one line, or reports that nobody listens any more.
    pub async fn send(&self, p: ProgressResponse) -> Result<(), TransferError> {
        self.0.send(p).await.map_err(|_| TransferError::Cancelled)
    }

    /// A status-only line.
    pub async fn status(&self, s: &str) -> Result<(), TransferError> {
        self.send(ProgressResponse::status(s)).await
    }
}

/// A blob progress line, as Ollama writes it.
pub fn blob_line(verb: &str, digest: &Digest, total: u64, completed: u64) -> ProgressResponse {
    ProgressResponse {
        status: format!("{verb} {}", digest.short()),
        digest: Some(digest.to_string()),
        total: Some(total),
        completed: Some(completed),
        source: None,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

fn is_index(t: &str) -> bool {
    t == media_type::OCI_INDEX || t == media_type::DOCKER_MANIFEST_LIST
}

/// Picks the entry of an index to pull: linux/amd64, else the first model
/// artifact, else the first entry.
fn choose(entries: &[Descriptor]) -> Option<&Descriptor> {
    let platform = |d: &&Descriptor| {
        d.platform.as_ref().is_some_and(|p| {
            p.get("os").and_then(|v| v.as_str()) == Some("linux")
                && p.get("architecture").and_then(|v| v.as_str()) == Some("amd64")
        })
    };
    let model = |d: &&Descriptor| {
        d.artifact_type
            .as_deref()
            .is_some_and(|a| a.contains(".model.") || a.contains(".ai."))
    };
    entries
        .iter()
        .find(platform)
        .or_else(|| entries.iter().find(model))
        .or_else(|| entries.first())
}

/// Reads manifest bytes served as `content_type`: the entry to follow when
/// they are an image index (`None` when they are a manifest), or why they
/// are neither.
pub fn index_entry(bytes: &[u8], content_type: &str) -> Result<Option<Descriptor>, String> {
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not JSON: {e}"))?;
    let known = llmpm_spec::media_type::MANIFEST_TYPES.contains(&content_type);
    if let Some(mt) = &probe.media_type {
        if known && mt != content_type {
            return Err(format!(
                "manifest says its media type is `{mt}` but was served as `Content-Type: {content_type}`"
            ));
        }
    }
    let media = probe.media_type.as_deref().unwrap_or(content_type);
    if !(is_index(media) || (probe.media_type.is_none() && probe.manifests.is_some())) {
        return Ok(None);
    }
    let entries = probe.manifests.unwrap_or_default();
    choose(&entries)
        .cloned()
        .map(Some)
        .ok_or_else(|| "the image index lists no manifest".to_owned())
}

/// Fetches the manifest from the first source that serves it (mirrors in
/// order, the upstream last); that source too.
async fn resolve_first(
    sources: &[Arc<Registry>],
    name: &Reference,
) -> Result<(Manifest, Vec<u8>, Digest, Arc<Registry>), TransferError> {
    let upstream = sources.len().saturating_sub(1);
    for (i, reg) in sources.iter().enumerate() {
        match resolve(reg, name).await {
            Ok((m, raw, d)) => return Ok((m, raw, d, reg.clone())),
            Err(e) if i < upstream && !e.is_cancelled() => {
                tracing::warn!(model = %name, mirror = reg.origin(), error = %crate::errors::chain(&e), "mirror cannot serve the manifest; trying the next source");
            }
            Err(e) => return Err(e),
        }
    }
    Err(TransferError::Cancelled)
}

/// Fetches the manifest `name` refers to, following indexes.
async fn resolve(
    reg: &Registry,
    name: &Reference,
) -> Result<(Manifest, Vec<u8>, Digest), TransferError> {
    let first = match name.digest() {
        Some(d) => fetch_manifest(reg, name, &d.to_string(), Some(d)).await?,
        None => fetch_manifest(reg, name, name.tag(), None).await?,
    };
    let mut cur = first;
    let mut seen: HashSet<Digest> = HashSet::new();
    for _ in 0..=MAX_INDEX_DEPTH {
        seen.insert(cur.digest.clone());
        if let Some(pick) =
            index_entry(&cur.bytes, &cur.content_type).map_err(|e| reg.invalid(e))?
        {
            if seen.contains(&pick.digest) {
                return Err(reg.invalid(format!(
                    "the image index points at `{}`, which was already visited (an index that refers to itself)",
                    pick.digest
                )));
            }
            cur = fetch_manifest(reg, name, &pick.digest.to_string(), Some(&pick.digest)).await?;
            continue;
        }
        let m =
            Manifest::from_slice(&cur.bytes).map_err(|e| reg.invalid(crate::errors::chain(&e)))?;
        return Ok((m, cur.bytes, cur.digest));
    }
    Err(reg.invalid(format!(
        "image indexes nested deeper than {MAX_INDEX_DEPTH}"
    )))
}

/// Pulls `req.model` into the store, reporting progress to `out`.
pub async fn pull(
    t: Arc<Transfers>,
    store: Store,
    home: &Path,
    req: &PullRequest,
    out: Reporter,
) -> Result<(), TransferError> {
    let name: Reference = req.model.parse()?;
    out.status("pulling manifest").await?;
    let sources = super::mirrors::sources_for(&t, home, &name, req.insecure)?;
    let (manifest, raw, digest, reg) = resolve_first(&sources, &name).await?;
    // Before any blob: a refused model leaves nothing behind.
    let signatures =
        super::referrers::check_on_pull(&reg, &name, &digest, &manifest, &t.trust, &out).await?;
    for d in manifest.blobs() {
        if d.digest.algorithm() != llmpm_spec::digest::Algorithm::Sha256 {
            return Err(reg.invalid(format!(
                "blob `{}` uses {}; llmpm stores sha256 blobs only",
                d.digest,
                d.digest.algorithm().as_str()
            )));
        }
    }
    // Blobs are asked of every source in order, whichever served the
    // manifest: a mirror may hold the blobs without the tag.
    let source = Source {
        registries: sources.into(),
        repository: name.repository(),
        limits: Limits::new(t.download_limit.as_ref(), req.limit_rate),
    };

    // Every distinct blob, fetched at once; progress funnels through one channel.
    let (ptx, mut prx) = mpsc::unbounded_channel::<ProgressResponse>();
    let mut jobs = tokio::task::JoinSet::new();
    let mut seen = HashSet::new();
    for d in manifest.blobs() {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let (t, store, source, d, ptx) = (
            t.clone(),
            store.clone(),
            source.clone(),
            d.clone(),
            ptx.clone(),
        );
        jobs.spawn(async move {
            let mut last = None;
            let mut last_source = None;
            let digest = d.digest.clone();
            let res = t
                .inflight
                .fetch(&store, &source, &d, &t.options, |c, total, src| {
                    if last != Some(c) || last_source.as_deref() != src {
                        last = Some(c);
                        last_source = src.map(str::to_owned);
                        let mut line = blob_line("pulling", &digest, total, c);
                        line.source = last_source.clone();
                        let _ = ptx.send(line);
                    }
                })
                .await;
            (d.digest, res)
        });
    }
    drop(ptx);
    let mut fetched: BTreeMap<Digest, Fetched> = BTreeMap::new();
    let mut failure = None;
    let mut lines_open = true;
    while lines_open || !jobs.is_empty() {
        tokio::select! {
            line = prx.recv(), if lines_open => match line {
                Some(p) => out.send(p).await?,
                None => lines_open = false,
            },
            joined = jobs.join_next(), if !jobs.is_empty() => match joined {
                Some(Ok((d, Ok(f)))) => { fetched.insert(d, f); }
                Some(Ok((_, Err(e)))) => { failure.get_or_insert(e); jobs.abort_all(); }
                Some(Err(e)) if e.is_cancelled() => {}
                Some(Err(e)) => { failure.get_or_insert(TransferError::io("pull", home, std::io::Error::other(e))); }
                None => {}
            },
            () = out.0.closed() => return Err(TransferError::Cancelled),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    out.status("verifying sha256 digest").await?;

    // A `+zstd` layer is stored decompressed: point the manifest at that blob.
    let mut local = manifest.clone();
    let mut rewritten = false;
    for d in std::iter::once(&mut local.config).chain(local.layers.iter_mut()) {
        if d.media_type.compression() != Compression::Zstd {
            continue;
        }
        let Some(f) = fetched.get(&d.digest) else {
            continue;
        };
        let plain = d
            .media_type
            .as_str()
            .trim_end_matches("+zstd")
            .trim_end_matches(".zstd");
        let mut ann = d.annotations.clone().unwrap_or_default();
        ann.insert(
            COMPRESSED_DIGEST_ANNOTATION.to_owned(),
            d.digest.to_string(),
        );
        *d = Descriptor {
            media_type: MediaType::new(plain),
            digest: f.digest.clone(),
            size: f.size,
            annotations: Some(ann),
            artifact_type: d.artifact_type.clone(),
            platform: d.platform.clone(),
        };
        rewritten = true;
    }
    out.status("writing manifest").await?;
    let key = name.untagged_digest();
    let s = store.clone();
    let (_, freed) = tokio::task::spawn_blocking(move || {
        if rewritten {
            s.put_manifest(&key, &local)
        } else {
            s.put_manifest_bytes(&key, &local, &raw)
        }
    })
    .await
    .map_err(|e| TransferError::io("store", home, std::io::Error::other(e)))??;
    if !freed.is_empty() {
        out.status("removing unused layers").await?;
    }
    keep_signatures(&store, &name, rewritten, signatures).await?;
    tracing::info!(model = %name, "pulled");
    out.status("success").await
}

/// Stores the pulled signature artifacts as referrers of the stored manifest.
async fn keep_signatures(
    store: &Store,
    name: &Reference,
    rewritten: bool,
    signatures: Vec<super::referrers::RemoteSignature>,
) -> Result<(), TransferError> {
    if signatures.is_empty() {
        return Ok(());
    }
    if rewritten {
        // The stored manifest is not the registry's (decompressed layers):
        // the signatures name the registry's, so they were checked on pull
        // but cannot be kept (SPEC.md, "Signatures").
        tracing::warn!(model = %name, "signatures of a `+zstd` manifest are checked on pull but not kept");
        return Ok(());
    }
    let s = store.clone();
    tokio::task::spawn_blocking(move || {
        for sig in signatures {
            let kept = s
                .put_bytes(crate::trust::EMPTY_CONFIG)
                .and_then(|_| s.put_bytes(&sig.bundle))
                .and_then(|_| s.put_referrer(&sig.artifact));
            // An artifact of another shape (a config other than `{}`) is not
            // kept; the model is stored either way.
            if let Err(e) = kept {
                tracing::warn!(error = %crate::errors::chain(&e), "a signature artifact was not kept");
            }
        }
        Ok::<_, crate::store::StoreError>(())
    })
    .await
    .map_err(|e| TransferError::io("store", store.root(), std::io::Error::other(e)))??;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn desc(platform: Option<serde_json::Value>, artifact: Option<&str>, n: char) -> Descriptor {
        let mut d = Descriptor::new(
            MediaType::new(media_type::OCI_MANIFEST),
            format!("sha256:{}", n.to_string().repeat(64))
                .parse()
                .unwrap(),
            1,
        );
        d.platform = platform;
        d.artifact_type = artifact.map(str::to_owned);
        d
    }

    #[test]
    fn index_choice() {
        let arm = desc(
            Some(serde_json::json!({"os":"linux","architecture":"arm64"})),
            None,
            '1',
        );
        let amd = desc(
            Some(serde_json::json!({"os":"linux","architecture":"amd64"})),
            None,
            '2',
        );
        let model = desc(
            None,
            Some("application/vnd.cncf.model.manifest.v1+json"),
            '3',
        );
        assert_eq!(
            choose(&[arm.clone(), amd.clone(), model.clone()]),
            Some(&amd)
        );
        assert_eq!(choose(&[arm.clone(), model.clone()]), Some(&model));
        assert_eq!(choose(std::slice::from_ref(&arm)), Some(&arm));
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn progress_lines_look_like_ollama() {
        let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
        let p = blob_line("pulling", &d, 10, 4);
        assert_eq!(p.status, "pulling abababababab");
        assert_eq!(p.digest.as_deref(), Some(d.to_string().as_str()));
        assert_eq!((p.total, p.completed), (Some(10), Some(4)));
    }
}
