//! Fetching one manifest: bounded (4 MiB), its digest checked against the one asked for and the registry's header.
//!
//! Below `pull` (which follows indexes) and `referrers` (which reads
//! signature artifacts by digest).

use llmpm_spec::manifest::MAX_MANIFEST_BYTES;
use llmpm_spec::{Digest, Reference};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use sha2::{Digest as _, Sha256};

use super::body;
use super::client::{self, Registry};
use super::TransferError;

/// A manifest as fetched.
pub(super) struct Fetch {
    pub bytes: Vec<u8>,
    pub content_type: String,
    pub digest: Digest,
}

/// Fetches one manifest (by tag or digest), bounded, its digest checked against `expect` and the header.
pub(super) async fn fetch_manifest(
    reg: &Registry,
    name: &Reference,
    reference: &str,
    expect: Option<&Digest>,
) -> Result<Fetch, TransferError> {
    let repo = name.repository();
    let url = reg.url(&format!("{repo}/manifests/{reference}"))?;
    let scope = format!("repository:{repo}:pull");
    let resp = reg
        .send(
            Method::GET,
            url.clone(),
            client::accept_manifests(),
            None,
            &scope,
        )
        .await?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        let body = body::read_limited(resp, 64 * 1024, url.as_str())
            .await
            .unwrap_or_default();
        let mut message = body::error_message(reqwest::StatusCode::NOT_FOUND, &body);
        if repo.bytes().any(|b| b.is_ascii_uppercase()) {
            // Hugging Face takes any case; OCI registries take lower case only
            // (docker-registry answers a plain 404), so say what to try.
            message.push_str(&format!(
                "; OCI registries accept only lower-case repository names: try `{}`",
                name.key()
            ));
        }
        return Err(TransferError::NotFound {
            model: name.display_short(),
            host: reg.host().to_owned(),
            message,
        });
    }
    let resp = reg.check(resp, &Method::GET).await?;
    let too_big = || {
        reg.invalid(format!(
            "manifest `{reference}` is larger than 4 MiB; refused"
        ))
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_MANIFEST_BYTES as u64)
    {
        return Err(too_big());
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
        .unwrap_or_default();
    let header_digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok());
    let bytes = match body::read_limited(resp, MAX_MANIFEST_BYTES, url.as_str()).await {
        Err(TransferError::Invalid { .. }) => return Err(too_big()),
        other => other?,
    };
    let digest = Digest::sha256_from_bytes(Sha256::digest(&bytes).into());
    for want in expect.into_iter().chain(header_digest.as_ref()) {
        if want.algorithm() == llmpm_spec::digest::Algorithm::Sha256 && *want != digest {
            return Err(reg.invalid(format!(
                "manifest `{reference}` should be `{want}` but its bytes hash to `{digest}`"
            )));
        }
    }
    Ok(Fetch {
        bytes,
        content_type,
        digest,
    })
}
