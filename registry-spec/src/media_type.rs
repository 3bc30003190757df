//! Media types: the manifest and layer types llmpm understands, and how each maps onto a model part.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Docker image manifest v2 schema 2: what Ollama's registry serves.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest v1.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The config media type Ollama writes.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI empty config (`{}`), used by artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Ollama's layer media types.
pub mod ollama {
    /// GGUF weights.
    pub const MODEL: &str = "application/vnd.ollama.image.model";
    /// LoRA adapter (GGUF).
    pub const ADAPTER: &str = "application/vnd.ollama.image.adapter";
    /// Multimodal projector (GGUF).
    pub const PROJECTOR: &str = "application/vnd.ollama.image.projector";
    /// Go `text/template` prompt template.
    pub const TEMPLATE: &str = "application/vnd.ollama.image.template";
    /// System prompt text.
    pub const SYSTEM: &str = "application/vnd.ollama.image.system";
    /// JSON object of PARAMETER values.
    pub const PARAMS: &str = "application/vnd.ollama.image.params";
    /// License text (one layer per LICENSE).
    pub const LICENSE: &str = "application/vnd.ollama.image.license";
    /// JSON array of `{role, content}` messages.
    pub const MESSAGES: &str = "application/vnd.ollama.image.messages";
}

/// The manifest and config types llmpm asks for and accepts.
pub const MANIFEST_TYPES: &[&str] = &[
    OCI_MANIFEST,
    DOCKER_MANIFEST_V2,
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
];

/// What part of a model a layer is, whatever ecosystem named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// The weights (GGUF).
    Model,
    /// A LoRA adapter.
    Adapter,
    /// A multimodal projector.
    Projector,
    /// A prompt template.
    Template,
    /// A system prompt.
    System,
    /// Default parameters (JSON object).
    Params,
    /// A license text.
    License,
    /// Seed conversation messages (JSON array).
    Messages,
    /// A type llmpm does not interpret: carried and stored, never fatal.
    Unknown,
}

/// Compression applied to a layer's bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None,
    /// `+zstd`.
    Zstd,
    /// `+gzip` / `.tar+gzip`.
    Gzip,
}

/// A media type string. Any string is carried; [`MediaType::kind`] classifies it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MediaType(String);

impl MediaType {
    /// Wraps a media type string.
    pub fn new(s: impl Into<String>) -> MediaType {
        MediaType(s.into())
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The compression suffix, if any.
    pub fn compression(&self) -> Compression {
        let s = self.0.as_str();
        if s.ends_with("+zstd") || s.ends_with(".zstd") {
            Compression::Zstd
        } else if s.ends_with("+gzip") || s.ends_with(".gzip") {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// What part of a model this layer is.
    ///
    /// Ollama's `application/vnd.ollama.image.*`, CNCF ModelPack
    /// `application/vnd.cncf.model.*` (and the legacy `application/vnd.cnai.model.*`),
    /// and Docker model artifacts `application/vnd.docker.ai.*` all map here.
    pub fn kind(&self) -> LayerKind {
        let s = self.0.as_str();
        // Strip a compression suffix and the format hint ModelPack appends.
        let base = s
            .trim_end_matches("+zstd")
            .trim_end_matches("+gzip")
            .trim_end_matches(".zstd")
            .trim_end_matches(".gzip");
        if let Some(rest) = base.strip_prefix("application/vnd.ollama.image.") {
            return match rest {
                "model" => LayerKind::Model,
                "adapter" => LayerKind::Adapter,
                "projector" => LayerKind::Projector,
                "template" => LayerKind::Template,
                "system" => LayerKind::System,
                "params" => LayerKind::Params,
                "license" => LayerKind::License,
                "messages" => LayerKind::Messages,
                _ => LayerKind::Unknown,
            };
        }
        if let Some(rest) = base.strip_prefix("application/vnd.docker.ai.") {
            // e.g. application/vnd.docker.ai.gguf.v3, .license, .chat.template.jinja
            return if rest.starts_with("gguf") || rest.starts_with("safetensors") {
                LayerKind::Model
            } else if rest.starts_with("license") {
                LayerKind::License
            } else if rest.starts_with("chat.template") {
                LayerKind::Template
            } else if rest.starts_with("mmproj") {
                LayerKind::Projector
            } else if rest.starts_with("lora") || rest.starts_with("adapter") {
                LayerKind::Adapter
            } else {
                LayerKind::Unknown
            };
        }
        let pack = base
            .strip_prefix("application/vnd.cncf.model.")
            .or_else(|| base.strip_prefix("application/vnd.cnai.model."));
        if let Some(rest) = pack {
            // ModelPack: weight[.config], doc, code, dataset, each .v1.<format>
            return if rest.starts_with("weight.config") {
                LayerKind::Unknown
            } else if rest.starts_with("weight") {
                LayerKind::Model
            } else if rest.starts_with("doc") && rest.contains("license") {
                LayerKind::License
            } else {
                LayerKind::Unknown
            };
        }
        LayerKind::Unknown
    }

    /// The Ollama media type for a kind: what llmpm writes when it creates a model.
    pub fn ollama(kind: LayerKind) -> Option<MediaType> {
        let s = match kind {
            LayerKind::Model => ollama::MODEL,
            LayerKind::Adapter => ollama::ADAPTER,
            LayerKind::Projector => ollama::PROJECTOR,
            LayerKind::Template => ollama::TEMPLATE,
            LayerKind::System => ollama::SYSTEM,
            LayerKind::Params => ollama::PARAMS,
            LayerKind::License => ollama::LICENSE,
            LayerKind::Messages => ollama::MESSAGES,
            LayerKind::Unknown => return None,
        };
        Some(MediaType::new(s))
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaType({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_ecosystem() {
        let cases = [
            ("application/vnd.ollama.image.model", LayerKind::Model),
            ("application/vnd.ollama.image.template", LayerKind::Template),
            ("application/vnd.ollama.image.messages", LayerKind::Messages),
            ("application/vnd.cncf.model.weight.v1.raw", LayerKind::Model),
            (
                "application/vnd.cncf.model.weight.v1.tar+zstd",
                LayerKind::Model,
            ),
            (
                "application/vnd.cncf.model.weight.config.v1.raw",
                LayerKind::Unknown,
            ),
            ("application/vnd.cnai.model.weight.v1.raw", LayerKind::Model),
            (
                "application/vnd.cncf.model.doc.v1.license",
                LayerKind::License,
            ),
            ("application/vnd.docker.ai.gguf.v3", LayerKind::Model),
            ("application/vnd.docker.ai.license", LayerKind::License),
            (
                "application/vnd.docker.ai.chat.template.jinja",
                LayerKind::Template,
            ),
            ("application/x-something-new", LayerKind::Unknown),
        ];
        for (s, k) in cases {
            assert_eq!(MediaType::new(s).kind(), k, "{s}");
        }
        assert_eq!(
            MediaType::new("application/vnd.cncf.model.weight.v1.raw+zstd").compression(),
            Compression::Zstd
        );
        assert_eq!(
            MediaType::new(ollama::MODEL).compression(),
            Compression::None
        );
    }
}
