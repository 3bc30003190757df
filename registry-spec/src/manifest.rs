//! Image manifests (Docker v2 schema 2, OCI v1.1) and descriptors, read strictly and written canonically.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::media_type::{self, LayerKind, MediaType};

/// The largest manifest llmpm reads (the OCI distribution spec's recommended limit).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A content descriptor: what a manifest says about one blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The blob's media type.
    pub media_type: MediaType,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// OCI annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// OCI 1.1 artifact type (on index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Platform (on index entries), carried as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
}

impl Descriptor {
    /// A descriptor without annotations.
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type,
            digest,
            size,
            annotations: None,
            artifact_type: None,
            platform: None,
        }
    }
}

/// An image manifest: a config blob and an ordered list of layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type (Docker v2 or OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// OCI 1.1 artifact type (ModelPack: `application/vnd.cncf.model.manifest.v1+json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, in order.
    pub layers: Vec<Descriptor>,
    /// OCI 1.1 subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// OCI annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Why bytes are not a manifest llmpm can use.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest is {0} bytes; the limit is 4 MiB")]
    TooLarge(usize),
    /// Not JSON of the right shape.
    #[error("manifest is not a valid image manifest")]
    Json(#[source] serde_json::Error),
    /// `schemaVersion` is not 2.
    #[error("manifest has schemaVersion {0}; only 2 is supported")]
    SchemaVersion(u32),
    /// A manifest type llmpm does not read as a manifest.
    #[error("manifest has media type `{0}`, which is not an image manifest")]
    MediaType(String),
}

impl Manifest {
    /// A Docker v2 schema 2 manifest, the shape Ollama writes.
    pub fn docker_v2(config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(media_type::DOCKER_MANIFEST_V2.to_owned()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: None,
        }
    }

    /// Parses and checks manifest bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
        if m.schema_version != 2 {
            return Err(ManifestError::SchemaVersion(m.schema_version));
        }
        if let Some(t) = &m.media_type {
            if t != media_type::DOCKER_MANIFEST_V2 && t != media_type::OCI_MANIFEST {
                return Err(ManifestError::MediaType(t.clone()));
            }
        }
        Ok(m)
    }

    /// The canonical bytes llmpm writes (compact JSON): their sha256 is the model's digest.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Every blob this manifest refers to: config first, then the layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }

    /// The layers of one kind, in order.
    pub fn layers_of(&self, kind: LayerKind) -> impl Iterator<Item = &Descriptor> {
        self.layers
            .iter()
            .filter(move |l| l.media_type.kind() == kind)
    }

    /// The total size of config and layers: the size `list` shows.
    pub fn total_size(&self) -> u64 {
        self.blobs().map(|d| d.size).fold(0u64, u64::saturating_add)
    }
}

/// The config blob Ollama writes for a model (`application/vnd.docker.container.image.v1+json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// `gguf`.
    #[serde(default)]
    pub model_format: String,
    /// The architecture family (`llama`, `qwen2`, …).
    #[serde(default)]
    pub model_family: String,
    /// All families.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_families: Option<Vec<String>>,
    /// Human parameter size (`8.0B`).
    #[serde(default)]
    pub model_type: String,
    /// Quantization (`Q4_K_M`).
    #[serde(default)]
    pub file_type: String,
    /// The model this one was created from, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent_model: String,
    /// OCI platform fields Ollama fills in.
    #[serde(default)]
    pub architecture: String,
    /// OCI platform fields Ollama fills in.
    #[serde(default)]
    pub os: String,
    /// The layer diff ids.
    #[serde(default)]
    pub rootfs: RootFs,
}

/// The `rootfs` of a config blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// One per layer.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_ollama_and_oci_shapes() {
        let d = format!("sha256:{}", "1".repeat(64));
        let ollama = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{d}","size":10}},"layers":[{{"mediaType":"application/vnd.ollama.image.model","digest":"{d}","size":5}},{{"mediaType":"x/unknown","digest":"{d}","size":1}}]}}"#,
            media_type::DOCKER_MANIFEST_V2,
            media_type::DOCKER_CONFIG
        );
        let m = Manifest::from_slice(ollama.as_bytes()).unwrap();
        assert_eq!(m.total_size(), 16);
        assert_eq!(m.layers_of(LayerKind::Model).count(), 1);
        assert_eq!(Manifest::from_slice(&m.to_bytes()).unwrap(), m);

        let oci = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/vnd.cncf.model.manifest.v1+json","config":{{"mediaType":"application/vnd.cncf.model.config.v1+json","digest":"{d}","size":2}},"layers":[{{"mediaType":"application/vnd.cncf.model.weight.v1.raw","digest":"{d}","size":3,"annotations":{{"org.cncf.model.filepath":"m.gguf"}}}}]}}"#,
            media_type::OCI_MANIFEST
        );
        let m = Manifest::from_slice(oci.as_bytes()).unwrap();
        assert_eq!(m.layers_of(LayerKind::Model).count(), 1);
    }

    #[test]
    fn rejects_bad_manifests() {
        assert!(Manifest::from_slice(&vec![b' '; MAX_MANIFEST_BYTES + 1]).is_err());
        assert!(Manifest::from_slice(b"not json").is_err());
        assert!(Manifest::from_slice(br#"{"schemaVersion":1,"config":{},"layers":[]}"#).is_err());
        let bad_digest = r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:../x","size":1},"layers":[]}"#;
        assert!(Manifest::from_slice(bad_digest.as_bytes()).is_err());
        let d = format!("sha256:{}", "1".repeat(64));
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"a","digest":"{d}","size":1}},"layers":[]}}"#,
            media_type::OCI_INDEX
        );
        assert!(Manifest::from_slice(index.as_bytes()).is_err());
    }
}
