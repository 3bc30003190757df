//! Model signatures: the OpenSSF model-signing (OMS v1.0) bundle, its in-toto statement, and how a model's blobs become the statement's files.
//!
//! A signature is a Sigstore bundle (`application/vnd.dev.sigstore.bundle.v0.3+json`)
//! holding a DSSE envelope over an in-toto statement whose predicate
//! (`https://model_signing/signature/v1.0`) lists one resource per file:
//! name, algorithm, hex digest. llmpm names a model's files as
//! [`MANIFEST_FILE`] (the manifest's exact bytes, so its digest, the model's
//! id, is signed) and `<media type>/sha256-<hex>` for the config and each
//! layer (see `SPEC.md`, "Signatures"). Serde types only; the cryptography
//! is the daemon's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest::{Descriptor, Manifest};
use crate::Digest;

/// The Sigstore bundle media type `model-signing` writes (and the referrer's `artifactType`).
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Older spellings of a v0.3 bundle's media type, accepted on input.
pub const BUNDLE_MEDIA_TYPE_ALT: &str = "application/vnd.dev.sigstore.bundle+json;version=0.3";
/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The OMS v1.0 predicate type.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// The file that holds the manifest's bytes.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The largest bundle llmpm reads (a bundle for a model of a few layers is a few KiB).
pub const MAX_BUNDLE_BYTES: u64 = 1024 * 1024;

/// A Sigstore bundle (the parts OMS key signing uses; the rest is carried).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// [`BUNDLE_MEDIA_TYPE`].
    pub media_type: String,
    /// What verifies the signature.
    pub verification_material: VerificationMaterial,
    /// The signed statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
    /// A bare message signature (not used by OMS; refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_signature: Option<serde_json::Value>,
}

/// A bundle's verification material: a key hint, or a certificate (keyless).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    /// Key signing: which key (by hint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyIdentifier>,
    /// Keyless or certificate signing: the leaf certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<serde_json::Value>,
    /// Older bundles' certificate chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<serde_json::Value>,
    /// Transparency log entries (empty for key signing).
    #[serde(default)]
    pub tlog_entries: Vec<serde_json::Value>,
    /// Signed timestamps, carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<serde_json::Value>,
}

/// `publicKey`: the sha256 of the key's SPKI PEM, hex (`model-signing`'s hint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyIdentifier {
    /// The hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Sigstore's key details (e.g. `PKIX_ECDSA_P256_SHA_256`), when a producer writes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_details: Option<String>,
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// The statement's bytes, base64.
    pub payload: String,
    /// [`PAYLOAD_TYPE`].
    pub payload_type: String,
    /// Signatures over the PAE of type and payload.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// The signature bytes, base64 (DER for ECDSA).
    pub sig: String,
    /// Unused by OMS (empty).
    #[serde(default)]
    pub keyid: String,
}

/// An in-toto v1 statement with the OMS predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// One subject: the model's name and the sha256 over every resource digest.
    pub subject: Vec<Subject>,
    /// [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The files.
    pub predicate: Predicate,
}

/// A statement subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// The model's name (informative).
    pub name: String,
    /// `{"sha256": hex}`.
    pub digest: BTreeMap<String, String>,
}

/// The OMS predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predicate {
    /// How the files were hashed (`method: files`, `hash_type: sha256`, …).
    pub serialization: serde_json::Value,
    /// One entry per file.
    pub resources: Vec<Resource>,
}

/// A resource descriptor: one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Its path in the model directory, `/`-separated.
    pub name: String,
    /// `sha256`.
    pub algorithm: String,
    /// Hex digest.
    pub digest: String,
}

/// Why a blob cannot be named as a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("media type `{0}` cannot name a file (it must be `type/subtype` of letters, digits and `!#$&^_.+-`)")]
pub struct FileNameError(pub String);

/// The file a blob becomes: `<media type>/sha256-<hex>`.
pub fn blob_file(d: &Descriptor) -> Result<String, FileNameError> {
    let mt = d.media_type.as_str();
    let ok_part = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
    };
    match mt.split_once('/') {
        Some((t, s)) if ok_part(t) && ok_part(s) => Ok(format!("{mt}/{}", d.digest.dashed())),
        _ => Err(FileNameError(mt.to_owned())),
    }
}

/// Every file of a model and its digest: [`MANIFEST_FILE`] (the manifest's
/// digest) and one per distinct config or layer blob.
pub fn model_files(
    manifest_digest: &Digest,
    manifest: &Manifest,
) -> Result<BTreeMap<String, Digest>, FileNameError> {
    let mut out = BTreeMap::new();
    out.insert(MANIFEST_FILE.to_owned(), manifest_digest.clone());
    for d in manifest.blobs() {
        out.insert(blob_file(d)?, d.digest.clone());
    }
    Ok(out)
}

/// Sorts file names as `model-signing` does (Python path order: component by component).
pub fn sort_files<T>(files: &mut [(String, T)]) {
    files.sort_by(|a, b| a.0.split('/').cmp(b.0.split('/')));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::MediaType;

    fn desc(mt: &str, c: char) -> Descriptor {
        Descriptor::new(
            MediaType::new(mt),
            format!("sha256:{}", c.to_string().repeat(64))
                .parse()
                .unwrap(),
            1,
        )
    }

    #[test]
    fn blob_files_are_media_type_and_digest() {
        assert_eq!(
            blob_file(&desc("application/vnd.ollama.image.model", 'a')).unwrap(),
            format!(
                "application/vnd.ollama.image.model/sha256-{}",
                "a".repeat(64)
            )
        );
        for bad in ["../x", "a/../b", "a/b/c", "noslash", "a/b;x=1", "/b", "a/"] {
            assert!(blob_file(&desc(bad, 'a')).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_sort_by_path_components() {
        let mut v = vec![
            ("a.b".to_owned(), ()),
            ("a/b".to_owned(), ()),
            ("manifest.json".to_owned(), ()),
        ];
        sort_files(&mut v);
        let names: Vec<_> = v.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(names, ["a/b", "a.b", "manifest.json"]);
    }

    #[test]
    fn model_signing_bundle_parses() {
        let b = r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"18"},"tlogEntries":[]},"dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"MEY=","keyid":""}]}}"#;
        let bundle: Bundle = serde_json::from_str(b).unwrap();
        assert_eq!(
            bundle
                .verification_material
                .public_key
                .unwrap()
                .hint
                .as_deref(),
            Some("18")
        );
        assert_eq!(bundle.dsse_envelope.unwrap().signatures[0].sig, "MEY=");
    }
}
