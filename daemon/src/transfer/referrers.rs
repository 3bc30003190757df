//! OCI 1.1 referrers at a registry: list a manifest's signature artifacts (the referrers API, else the `sha256-<hex>` tag), fetch their bundles, and keep the fallback tag's index when pushing.
//!
//! Spec: distribution-spec v1.1, "Listing Referrers" and "Referrers Tag
//! Schema". A registry without the API (`docker-registry` 2.8) answers 404;
//! the fallback is an image index tagged `sha256-<hex of the subject>`.

use bytes::Bytes;
use llmpm_spec::media_type::OCI_INDEX;
use llmpm_spec::signature::{BUNDLE_MEDIA_TYPE, MAX_BUNDLE_BYTES};
use llmpm_spec::{Descriptor, Digest, Manifest, Reference};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::body;
use super::client::{accept_manifests, Registry};
use super::manifest::fetch_manifest;
use super::TransferError;

/// Signature artifacts looked at per manifest; more are ignored.
const MAX_REFERRERS: usize = 16;

/// An image index: what the referrers API and the fallback tag hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

/// A signature artifact fetched from the registry.
#[derive(Debug, Clone)]
pub struct RemoteSignature {
    /// The artifact manifest's exact bytes.
    pub artifact: Vec<u8>,
    /// The bundle's bytes.
    pub bundle: Vec<u8>,
}

/// The fallback tag of a subject: `sha256-<hex>`.
pub(super) fn fallback_tag(subject: &Digest) -> String {
    subject.dashed()
}

fn index_accept() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static(OCI_INDEX));
    h
}

fn parse_index(reg: &Registry, bytes: &[u8], what: &str) -> Result<Index, TransferError> {
    let not_index = |why: String| {
        reg.invalid(format!(
            "its referrers answer ({what}) is not an OCI image index: {why}"
        ))
    };
    let idx: Index = serde_json::from_slice(bytes).map_err(|e| not_index(e.to_string()))?;
    if let Some(mt) = &idx.media_type {
        if mt != OCI_INDEX {
            return Err(not_index(format!("media type `{mt}`")));
        }
    }
    if idx.schema_version != 2 {
        return Err(not_index(format!("schemaVersion {}", idx.schema_version)));
    }
    Ok(idx)
}

/// The referrers index of `subject`: from the API, else the fallback tag; `None` when neither exists.
async fn list(
    reg: &Registry,
    name: &Reference,
    subject: &Digest,
) -> Result<Option<Index>, TransferError> {
    let repo = name.repository();
    let scope = format!("repository:{repo}:pull");
    let mut url = reg.url(&format!("{repo}/referrers/{subject}"))?;
    url.query_pairs_mut()
        .append_pair("artifactType", BUNDLE_MEDIA_TYPE);
    let resp = reg
        .send(Method::GET, url.clone(), index_accept(), None, &scope)
        .await?;
    if resp.status() != StatusCode::NOT_FOUND {
        let resp = reg.check(resp, &Method::GET).await?;
        let bytes =
            body::read_limited(resp, llmpm_spec::manifest::MAX_MANIFEST_BYTES, url.as_str())
                .await?;
        return parse_index(reg, &bytes, "the referrers API").map(Some);
    }
    let tag = fallback_tag(subject);
    let url = reg.url(&format!("{repo}/manifests/{tag}"))?;
    // Every manifest type, so a tag holding something else is read and
    // named rather than refused by the registry's content negotiation.
    let resp = reg
        .send(Method::GET, url.clone(), accept_manifests(), None, &scope)
        .await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let resp = reg.check(resp, &Method::GET).await?;
    let bytes =
        body::read_limited(resp, llmpm_spec::manifest::MAX_MANIFEST_BYTES, url.as_str()).await?;
    parse_index(reg, &bytes, &format!("tag `{tag}`")).map(Some)
}

async fn fetch_bundle(reg: &Registry, name: &Reference, d: &Descriptor) -> Result<Vec<u8>, String> {
    if d.size > MAX_BUNDLE_BYTES {
        return Err(format!(
            "signature bundle `{}` is {} bytes; llmpm reads bundles of at most {} bytes",
            d.digest, d.size, MAX_BUNDLE_BYTES
        ));
    }
    let repo = name.repository();
    let fail = |e: TransferError| crate::errors::chain(&e);
    let url = reg
        .url(&format!("{repo}/blobs/{}", d.digest))
        .map_err(fail)?;
    let resp = reg
        .send(
            Method::GET,
            url.clone(),
            HeaderMap::new(),
            None,
            &format!("repository:{repo}:pull"),
        )
        .await
        .map_err(fail)?;
    let resp = reg.check(resp, &Method::GET).await.map_err(fail)?;
    let limit = usize::try_from(d.size.min(MAX_BUNDLE_BYTES)).unwrap_or(0);
    let bytes = body::read_limited(resp, limit, url.as_str())
        .await
        .map_err(fail)?;
    let actual = Digest::sha256_from_bytes(Sha256::digest(&bytes).into());
    if actual != d.digest {
        return Err(format!(
            "signature bundle `{}` hashes to `{actual}`",
            d.digest
        ));
    }
    Ok(bytes)
}

/// The signature artifacts attached to `subject`: each fetched and checked
/// for shape (its subject, a bundle layer within the size limit), or the
/// reason it was skipped. An answer that is not an index is an error.
pub async fn fetch(
    reg: &Registry,
    name: &Reference,
    subject: &Digest,
) -> Result<Vec<Result<RemoteSignature, String>>, TransferError> {
    let Some(index) = list(reg, name, subject).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let candidates = index.manifests.iter().filter(|d| {
        d.artifact_type
            .as_deref()
            .is_none_or(|t| t == BUNDLE_MEDIA_TYPE)
    });
    for d in candidates.take(MAX_REFERRERS) {
        let one = async {
            let f = fetch_manifest(reg, name, &d.digest.to_string(), Some(&d.digest))
                .await
                .map_err(|e| crate::errors::chain(&e))?;
            let m = Manifest::from_slice(&f.bytes)
                .map_err(|e| format!("artifact `{}`: {}", d.digest, crate::errors::chain(&e)))?;
            if m.subject.as_ref().map(|s| &s.digest) != Some(subject) {
                return Err(format!(
                    "artifact `{}` is attached to another manifest",
                    d.digest
                ));
            }
            let layer = crate::trust::bundle_layer(&m)
                .ok_or_else(|| format!("artifact `{}` holds no signature bundle", d.digest))?;
            let bundle = fetch_bundle(reg, name, layer).await?;
            Ok(RemoteSignature {
                artifact: f.bytes,
                bundle,
            })
        };
        out.push(one.await);
    }
    Ok(out)
}

/// After pushing an artifact to a registry without the referrers API: adds
/// it to the subject's fallback tag index.
pub async fn add_to_fallback(
    reg: &Registry,
    name: &Reference,
    subject: &Digest,
    artifact: Descriptor,
) -> Result<(), TransferError> {
    let repo = name.repository();
    let tag = fallback_tag(subject);
    let scope = format!("repository:{repo}:pull,push");
    let url = reg.url(&format!("{repo}/manifests/{tag}"))?;
    let resp = reg
        .send(Method::GET, url.clone(), accept_manifests(), None, &scope)
        .await?;
    let mut index = if resp.status() == StatusCode::NOT_FOUND {
        Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_owned()),
            manifests: Vec::new(),
        }
    } else {
        let resp = reg.check(resp, &Method::GET).await?;
        let bytes =
            body::read_limited(resp, llmpm_spec::manifest::MAX_MANIFEST_BYTES, url.as_str())
                .await?;
        parse_index(reg, &bytes, &format!("tag `{tag}`"))?
    };
    if index.manifests.iter().any(|d| d.digest == artifact.digest) {
        return Ok(());
    }
    index.manifests.push(artifact);
    index.media_type = Some(OCI_INDEX.to_owned());
    let bytes = serde_json::to_vec(&index).unwrap_or_default();
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    let r = reg
        .send(Method::PUT, url, h, Some(Bytes::from(bytes)), &scope)
        .await?;
    reg.check(r, &Method::PUT).await?;
    Ok(())
}

/// The signature check of a pull, before any blob is fetched: under
/// `require` an unsigned or wrongly signed manifest is an error (nothing is
/// stored); under `warn` the reason is reported and the pull goes on; `off`
/// never asks the registry. Returns the artifacts to keep with the model.
pub async fn check_on_pull(
    reg: &Registry,
    name: &Reference,
    subject: &Digest,
    manifest: &Manifest,
    policy: &crate::trust::TrustPolicy,
    out: &super::Reporter,
) -> Result<Vec<RemoteSignature>, TransferError> {
    use crate::trust::Mode;
    let Some(entry) = policy.entry_for(name).filter(|e| e.mode != Mode::Off) else {
        return Ok(Vec::new());
    };
    out.status("verifying signature").await?;
    let verdict: Result<(String, Vec<RemoteSignature>), (String, Vec<RemoteSignature>)> = async {
        let keys = entry
            .load_keys()
            .map_err(|e| (crate::errors::chain(&e), Vec::new()))?;
        let fetched = fetch(reg, name, subject)
            .await
            .map_err(|e| (crate::errors::chain(&e), Vec::new()))?;
        if fetched.is_empty() {
            return Err((
                format!("`{subject}` has no signature at the registry"),
                Vec::new(),
            ));
        }
        let mut reasons = Vec::new();
        let mut kept = Vec::new();
        let mut signer = None;
        for f in fetched {
            match f {
                Ok(sig) => {
                    match crate::trust::verify_bundle(&sig.bundle, &keys, subject, manifest) {
                        Ok(v) if signer.is_none() => signer = Some(v.key_name),
                        Ok(_) => {}
                        Err(e) => reasons.push(e.to_string()),
                    }
                    kept.push(sig);
                }
                Err(why) => reasons.push(why),
            }
        }
        match signer {
            Some(s) => Ok((s, kept)),
            None => Err((reasons.join("; "), kept)),
        }
    }
    .await;
    match verdict {
        Ok((signer, kept)) => {
            tracing::info!(model = %name, signer, "signature verified");
            out.status(&format!("signed by {signer}")).await?;
            Ok(kept)
        }
        Err((reason, _)) if entry.mode == Mode::Require => Err(TransferError::Untrusted {
            model: name.display_short(),
            scope: entry.scope.clone(),
            reason,
        }),
        Err((reason, kept)) => {
            tracing::warn!(model = %name, reason, "pulling a model whose signature does not verify (trust_policy mode warn)");
            out.status(&format!(
                "warning: the signature does not verify: {reason} (trust_policy `{}` is `warn`, so the pull goes on)",
                entry.scope
            ))
            .await?;
            Ok(kept)
        }
    }
}
