//! Builds the manifests of the three model formats llmpm pulls (Ollama, CNCF ModelPack, Docker model artifacts).
//!
//! Each builder returns an [`Artifact`]: the blobs to upload first and the
//! manifest bytes to put last, so the same model can be published into the
//! in-memory [`super::TestRegistry`] or a real `docker-registry`.

use serde_json::{json, Value};

use super::sha256_digest;
use llmpm_spec::media_type::{DOCKER_CONFIG, DOCKER_MANIFEST_V2, OCI_INDEX, OCI_MANIFEST};

/// ModelPack manifest `artifactType`.
pub const MODELPACK_ARTIFACT: &str = "application/vnd.cncf.model.manifest.v1+json";
/// ModelPack config media type.
pub const MODELPACK_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
/// ModelPack raw (uncompressed, untarred) weight layer.
pub const MODELPACK_WEIGHT_RAW: &str = "application/vnd.cncf.model.weight.v1.raw";
/// Docker model artifact config media type.
pub const DOCKER_AI_CONFIG: &str = "application/vnd.docker.ai.model.config.v0.1+json";
/// Docker model artifact GGUF layer.
pub const DOCKER_AI_GGUF: &str = "application/vnd.docker.ai.gguf.v3";
/// Docker model artifact license layer.
pub const DOCKER_AI_LICENSE: &str = "application/vnd.docker.ai.license";

/// A model ready to publish: blobs first, then the manifest.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The config blob and every layer blob.
    pub blobs: Vec<Vec<u8>>,
    /// The manifest's media type (its `Content-Type`).
    pub media_type: String,
    /// The manifest bytes.
    pub manifest: Vec<u8>,
}

impl Artifact {
    /// The manifest's digest.
    pub fn digest(&self) -> String {
        sha256_digest(&self.manifest)
    }
}

/// A descriptor `{mediaType, digest, size}` of `bytes`.
pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({
        "mediaType": media_type,
        "digest": sha256_digest(bytes),
        "size": bytes.len(),
    })
}

fn build(
    media_type: &str,
    manifest: &Value,
    config: Vec<u8>,
    layers: &[(&str, &[u8])],
) -> Artifact {
    let mut blobs = vec![config];
    blobs.extend(layers.iter().map(|(_, b)| b.to_vec()));
    Artifact {
        blobs,
        media_type: media_type.to_owned(),
        manifest: serde_json::to_vec_pretty(manifest).expect("manifest JSON"),
    }
}

fn diff_ids(layers: &[(&str, &[u8])]) -> Vec<String> {
    layers.iter().map(|(_, b)| sha256_digest(b)).collect()
}

/// An Ollama model as `registry.ollama.ai` serves it: Docker v2 schema 2,
/// a `application/vnd.docker.container.image.v1+json` config with the
/// model's format and family, and `application/vnd.ollama.image.*` layers.
pub fn ollama_model(layers: &[(&str, &[u8])]) -> Artifact {
    let config = json!({
        "model_format": "gguf",
        "model_family": "llama",
        "model_families": ["llama"],
        "model_type": "tiny",
        "file_type": "F32",
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids(layers)},
    });
    let config = serde_json::to_vec(&config).expect("config JSON");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_V2,
        "config": descriptor(DOCKER_CONFIG, &config),
        "layers": layers.iter().map(|(m, b)| descriptor(m, b)).collect::<Vec<_>>(),
    });
    build(DOCKER_MANIFEST_V2, &manifest, config, layers)
}

/// A CNCF ModelPack artifact: an OCI image manifest with artifactType
/// `application/vnd.cncf.model.manifest.v1+json`, a
/// `application/vnd.cncf.model.config.v1+json` config and `layers` (use
/// [`MODELPACK_WEIGHT_RAW`] for GGUF weights).
///
/// Spec: <https://github.com/modelpack/model-spec/blob/main/docs/spec.md>.
pub fn modelpack(layers: &[(&str, &[u8])]) -> Artifact {
    let config = json!({
        "descriptor": {"name": "tiny", "version": "1", "createdAt": "2026-01-01T00:00:00Z"},
        "config": {"architecture": "transformer", "format": "gguf", "precision": "float32"},
        "modelfs": {"type": "layers", "diffIds": diff_ids(layers)},
    });
    let config = serde_json::to_vec(&config).expect("config JSON");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": MODELPACK_ARTIFACT,
        "config": descriptor(MODELPACK_CONFIG, &config),
        "layers": layers
            .iter()
            .enumerate()
            .map(|(i, (m, b))| {
                let mut d = descriptor(m, b);
                d["annotations"] = json!({"org.cncf.model.filepath": format!("layer{i}.gguf")});
                d
            })
            .collect::<Vec<_>>(),
    });
    build(OCI_MANIFEST, &manifest, config, layers)
}

/// A Docker model artifact as Docker Model Runner pushes it: an OCI
/// manifest, a `application/vnd.docker.ai.model.config.v0.1+json` config,
/// `layers` such as [`DOCKER_AI_GGUF`] and [`DOCKER_AI_LICENSE`].
pub fn docker_model(layers: &[(&str, &[u8])]) -> Artifact {
    let config = json!({
        "config": {"format": "gguf", "quantization": "F32", "architecture": "llama"},
        "descriptor": {"created": "2026-01-01T00:00:00Z"},
        "rootfs": {"type": "rootfs", "diff_ids": diff_ids(layers)},
    });
    let config = serde_json::to_vec(&config).expect("config JSON");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(DOCKER_AI_CONFIG, &config),
        "layers": layers.iter().map(|(m, b)| descriptor(m, b)).collect::<Vec<_>>(),
    });
    build(OCI_MANIFEST, &manifest, config, layers)
}

/// `(child digest, index bytes)`: an OCI index whose one entry is `child`, a
/// digest the bytes do not hash to, for a registry that answers `child`
/// with the index itself.
pub fn index_loop() -> (String, Vec<u8>) {
    let child = sha256_digest(b"the index itself");
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_INDEX, "digest": child, "size": 200}],
    });
    (child, serde_json::to_vec(&index).expect("index JSON"))
}
