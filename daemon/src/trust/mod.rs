//! Signatures: OpenSSF model-signing (OMS v1.0) bundles kept as OCI referrers of a model's manifest, the trust policy, sign and verify.
//!
//! - `keys`: ECDSA P-256 and Ed25519 keys in PEM (RustCrypto).
//! - `oms`: the statement of a model's files, DSSE signing, and the checks
//!   of a bundle against a manifest.
//! - `policy`: `trust_policy` from the config: scope → mode and keys.
//! - `export`: a model's files on disk in the layout the statement names
//!   (so `model-signing verify` can check them).
//!
//! Here: the referrer artifact (an OCI manifest whose `subject` is the
//! model's manifest and whose one layer is the bundle) and the store-level
//! operations the API calls. The registry side (fetching and pushing
//! referrers) is `transfer`'s.

mod export;
mod keys;
mod oms;
mod policy;

use std::collections::BTreeMap;
use std::time::SystemTime;

use llmpm_spec::media_type::{self, OCI_EMPTY, OCI_MANIFEST};
use llmpm_spec::signature::{self as sig, FileNameError};
use llmpm_spec::{Descriptor, Digest, Manifest, MediaType, Reference};

use crate::store::{Referrer, Store, StoreError};

pub use export::{export, ExportError};
pub use keys::{KeyError, KeyKind, PublicKey, SigningKey};
pub use oms::{BundleError, TrustedKey, Verified};
pub use policy::{KeyRef, Mode, PolicyEntry, PolicyKeyError, TrustPolicy};

/// The annotation that says when a signature artifact was made (not signed: the bundle has no time).
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// The empty JSON config of an artifact manifest.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// Why signing or checking failed.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A key cannot be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer cannot be named as a file.
    #[error("the model cannot be signed: {0}")]
    Layout(#[from] FileNameError),
    /// A configured key cannot be used.
    #[error(transparent)]
    PolicyKey(#[from] PolicyKeyError),
}

/// The descriptor of a stored manifest, for an artifact's `subject`.
pub fn subject_descriptor(manifest: &Manifest, digest: &Digest, size: u64) -> Descriptor {
    let mt = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| media_type::DOCKER_MANIFEST_V2.to_owned());
    Descriptor::new(MediaType::new(mt), digest.clone(), size)
}

/// The referrer artifact for a bundle: OCI 1.1, `artifactType` the bundle's
/// media type, the empty config, one layer (the bundle), `subject` the model.
pub fn artifact_manifest(subject: Descriptor, bundle: &[u8], created: SystemTime) -> Manifest {
    let digest = |b: &[u8]| {
        use sha2::Digest as _;
        Digest::sha256_from_bytes(sha2::Sha256::digest(b).into())
    };
    let mut layer = Descriptor::new(
        MediaType::new(sig::BUNDLE_MEDIA_TYPE),
        digest(bundle),
        bundle.len() as u64,
    );
    layer.annotations = Some(BTreeMap::from([(
        "dev.sigstore.bundle.predicateType".to_owned(),
        sig::PREDICATE_TYPE.to_owned(),
    )]));
    Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: Some(sig::BUNDLE_MEDIA_TYPE.to_owned()),
        config: Descriptor::new(
            MediaType::new(OCI_EMPTY),
            digest(EMPTY_CONFIG),
            EMPTY_CONFIG.len() as u64,
        ),
        layers: vec![layer],
        subject: Some(subject),
        annotations: Some(BTreeMap::from([(
            CREATED_ANNOTATION.to_owned(),
            humantime::format_rfc3339_seconds(created).to_string(),
        )])),
    }
}

/// The bundle layer of a signature artifact, if it is one.
pub fn bundle_layer(m: &Manifest) -> Option<&Descriptor> {
    let is_bundle = |t: &str| t == sig::BUNDLE_MEDIA_TYPE || t == sig::BUNDLE_MEDIA_TYPE_ALT;
    if !m.artifact_type.as_deref().is_some_and(is_bundle) {
        return None;
    }
    m.layers.iter().find(|l| is_bundle(l.media_type.as_str()))
}

/// What `llmpm sign` made.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The artifact's digest.
    pub artifact: Digest,
    /// The model's manifest digest.
    pub subject: Digest,
    /// The key's kind.
    pub kind: KeyKind,
    /// The key's hint (sha256 of its public PEM).
    pub key_hint: String,
    /// The bundle's bytes (also stored).
    pub bundle: Vec<u8>,
}

/// Signs a stored model with `key` and stores the bundle as its referrer.
pub fn sign_model(store: &Store, name: &Reference, key: &SigningKey) -> Result<Signed, TrustError> {
    let entry = store.get(name)?;
    let files = sig::model_files(&entry.digest, &entry.manifest)?;
    let statement = oms::statement(&name.display_short(), &files);
    let bundle = oms::sign(&statement, key);
    // Plain serde structs: serialization cannot fail.
    let bundle_bytes = serde_json::to_vec(&bundle).unwrap_or_default();
    let digest = keep_bundle(store, &entry, &bundle_bytes)?;
    tracing::info!(model = %name, artifact = %digest, key = %key.public().hint(), "signed");
    Ok(Signed {
        artifact: digest,
        subject: entry.digest,
        kind: key.kind(),
        key_hint: key.public().hint(),
        bundle: bundle_bytes,
    })
}

/// Stores a bundle (already verified by the caller) as a referrer of a stored model.
pub fn keep_bundle(
    store: &Store,
    entry: &crate::store::ModelEntry,
    bundle: &[u8],
) -> Result<Digest, TrustError> {
    let raw = store.read_blob(
        &entry.digest,
        llmpm_spec::manifest::MAX_MANIFEST_BYTES as u64,
    )?;
    store.put_bytes(EMPTY_CONFIG)?;
    store.put_bytes(bundle)?;
    let subject = subject_descriptor(&entry.manifest, &entry.digest, raw.len() as u64);
    let artifact = artifact_manifest(subject, bundle, SystemTime::now());
    Ok(store.put_referrer(&artifact.to_bytes())?)
}

/// Checks one bundle against a manifest with the trusted keys.
pub fn verify_bundle(
    bundle: &[u8],
    keys: &[TrustedKey],
    manifest_digest: &Digest,
    manifest: &Manifest,
) -> Result<Verified, BundleError> {
    oms::verify(bundle, keys, manifest_digest, manifest)
}

/// The key hint a bundle names (unverified), for display.
pub fn bundle_hint(bundle: &[u8]) -> Option<String> {
    oms::parse(bundle)
        .ok()
        .and_then(|b| oms::hint(&b).map(str::to_owned))
}

/// One stored signature of a model, checked.
#[derive(Debug, Clone)]
pub struct SignatureStatus {
    /// The artifact's digest.
    pub artifact: Digest,
    /// The key the bundle names (sha256 of its PEM), unverified.
    pub key_hint: Option<String>,
    /// The artifact's creation time annotation (a claim, not signed).
    pub created: Option<String>,
    /// Who signed it (the trusted key's name), or why it does not verify.
    pub result: Result<Verified, String>,
}

/// Every stored signature of a model, each checked with `keys`.
pub fn check_stored(
    store: &Store,
    manifest_digest: &Digest,
    manifest: &Manifest,
    keys: &[TrustedKey],
) -> Result<Vec<SignatureStatus>, TrustError> {
    let mut out = Vec::new();
    for r in store.referrers(manifest_digest)? {
        let Some(layer) = bundle_layer(&r.manifest) else {
            continue;
        };
        let created = created_of(&r);
        let bundle = match store.read_blob(&layer.digest, sig::MAX_BUNDLE_BYTES) {
            Ok(b) => b,
            Err(e) => {
                out.push(SignatureStatus {
                    artifact: r.digest.clone(),
                    key_hint: None,
                    created,
                    result: Err(crate::errors::chain(&e)),
                });
                continue;
            }
        };
        out.push(SignatureStatus {
            artifact: r.digest.clone(),
            key_hint: bundle_hint(&bundle),
            created,
            result: verify_bundle(&bundle, keys, manifest_digest, manifest)
                .map_err(|e| e.to_string()),
        });
    }
    Ok(out)
}

fn created_of(r: &Referrer) -> Option<String> {
    r.manifest
        .annotations
        .as_ref()
        .and_then(|a| a.get(CREATED_ANNOTATION))
        .cloned()
}

/// A model's stored signatures as the API reports them, checked with the
/// policy's keys (all entries') and `extra`. A key that cannot be loaded
/// makes every entry say so rather than failing the caller.
pub fn signature_infos(
    store: &Store,
    manifest_digest: &Digest,
    manifest: &Manifest,
    policy: &TrustPolicy,
    extra: &[TrustedKey],
) -> Result<Vec<llmpm_spec::api::SignatureInfo>, TrustError> {
    let (mut keys, key_error) = match policy.all_keys() {
        Ok(k) => (k, None),
        Err(e) => (Vec::new(), Some(crate::errors::chain(&e))),
    };
    keys.extend(extra.iter().cloned());
    Ok(check_stored(store, manifest_digest, manifest, &keys)?
        .into_iter()
        .map(|s| info(s, key_error.as_deref()))
        .collect())
}

/// The API's view of one checked signature.
pub fn info(s: SignatureStatus, key_error: Option<&str>) -> llmpm_spec::api::SignatureInfo {
    let (signer, verified, error) = match s.result {
        Ok(v) => (Some(v.key_name), true, None),
        Err(e) => (
            None,
            false,
            Some(match key_error {
                Some(k) => format!("{e} (and the trust policy's keys could not be read: {k})"),
                None => e,
            }),
        ),
    };
    llmpm_spec::api::SignatureInfo {
        artifact: s.artifact.to_string(),
        key_hint: s.key_hint,
        signer,
        verified,
        error,
        created: s.created,
    }
}
