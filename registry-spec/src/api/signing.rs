//! The signing routes' types (llmpm additions): `/api/keygen`, `/api/sign`, `/api/signatures`, `/api/export`.

use serde::{Deserialize, Serialize};

/// `POST /api/keygen`: a new key pair (nothing is stored by the daemon).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeygenRequest {
    /// `ecdsa-p256` (default; what `model-signing` verifies) or `ed25519`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
}

/// The answer to [`KeygenRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeygenResponse {
    /// `ecdsa-p256` or `ed25519`.
    #[serde(rename = "type")]
    pub key_type: String,
    /// PKCS#8 PEM.
    pub private_key: String,
    /// SPKI PEM.
    pub public_key: String,
    /// sha256 of the public PEM, hex: how bundles name the key.
    pub key_hint: String,
}

/// `POST /api/sign`: sign a stored model; the bundle is kept as its referrer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    /// The model.
    pub model: String,
    /// The private key, PEM (PKCS#8, or SEC1 for P-256).
    pub key: String,
}

/// The answer to [`SignRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignResponse {
    /// The model's manifest digest (what was signed).
    pub digest: String,
    /// The signature artifact's digest.
    pub artifact: String,
    /// `ecdsa-p256` or `ed25519`.
    #[serde(rename = "type")]
    pub key_type: String,
    /// The key's hint.
    pub key_hint: String,
    /// The Sigstore bundle, as `model-signing` writes it to a `.sig` file.
    pub bundle: serde_json::Value,
}

/// `POST /api/signatures`: a stored model's signatures, checked against the
/// trust policy's keys; with `bundle`, check that bundle (e.g. one
/// `model-signing` made over the exported files) instead, and keep it if it verifies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignaturesRequest {
    /// The model.
    pub model: String,
    /// A bundle to check (and keep when it verifies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<serde_json::Value>,
    /// Public keys (PEM) to trust besides the policy's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
}

/// The answer to [`SignaturesRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignaturesResponse {
    /// The model's manifest digest.
    pub digest: String,
    /// One per signature.
    pub signatures: Vec<SignatureInfo>,
}

/// One signature of a model, as checked now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureInfo {
    /// The signature artifact's digest (empty for a bundle checked but not kept).
    pub artifact: String,
    /// The key the bundle names (sha256 of its public PEM); unverified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hint: Option<String>,
    /// The trusted key that verified it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// Whether it verified.
    pub verified: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the artifact was made (RFC 3339; a claim of its maker, not signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// `POST /api/export`: write a model's files (`manifest.json`, `<media type>/sha256-<hex>`) to a directory;
/// with `format: "oci-archive"`, answer the OCI archive of `models` (and `model`) as the body instead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The model.
    #[serde(default)]
    pub model: String,
    /// An absolute path: new, or an empty directory (not with `format`).
    #[serde(default)]
    pub path: String,
    /// More models, for an archive (`llmpm save`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// `oci-archive`: the answer is an `application/x-tar` OCI image-layout archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// The answer to [`ExportRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportResponse {
    /// The files written, `/`-separated, relative to `path`.
    pub files: Vec<String>,
}
