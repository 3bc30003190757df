//! Building a model: a create request (uploaded blobs, a base model, text and parameters) → layers → manifest.

use std::io::Read;

use llmpm_gguf::{GgufError, GgufFile};
use llmpm_spec::api::{CreateRequest, Message, ProgressResponse};
use llmpm_spec::manifest::RootFs;
use llmpm_spec::media_type::{self, ollama};
use llmpm_spec::params::{ParamError, Parameters};
use llmpm_spec::{
    Descriptor, Digest, LayerKind, Manifest, MediaType, ModelConfig, NameError, Reference,
};

use crate::describe;
use crate::store::{Store, StoreError};

/// Why a create was refused. Nothing is stored under the new name when it fails.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The new name or `from` is not a valid name.
    #[error("invalid model name")]
    Name(#[from] NameError),
    /// The base model is not in the store.
    #[error("base model `{0}` not found; pull or create it first")]
    BaseNotFound(String),
    /// Neither `from` nor `files` was given.
    #[error("nothing to create from: give `from` (a model) or `files` (uploaded GGUF blobs)")]
    NoSource,
    /// A `files` or `adapters` digest is malformed.
    #[error("file `{name}` has an invalid digest")]
    Digest {
        /// The file name.
        name: String,
        /// Why.
        #[source]
        source: llmpm_spec::DigestError,
    },
    /// A referenced blob has not been uploaded.
    #[error("file `{name}` (blob `{digest}`) has not been uploaded; POST it to /api/blobs/{digest} first")]
    NotUploaded {
        /// The file name.
        name: String,
        /// Its digest.
        digest: Digest,
    },
    /// The weights are not a usable GGUF.
    #[error("file `{name}` is not a valid GGUF model")]
    Gguf {
        /// The file name.
        name: String,
        /// Why.
        #[source]
        source: GgufError,
    },
    /// The GGUF's `general.architecture` is one the runner cannot run.
    #[error("file `{name}`: {}", crate::runner::arch::unsupported_message(.architecture))]
    Architecture {
        /// The file name.
        name: String,
        /// Its architecture.
        architecture: String,
    },
    /// A format we cannot import.
    #[error("file `{0}` is not GGUF; llmpm imports GGUF weights only (convert safetensors with llama.cpp's convert_hf_to_gguf.py)")]
    NotGguf(String),
    /// More than one weights file.
    #[error("{0} weight files given; a model takes exactly one GGUF file")]
    TooManyWeights(usize),
    /// A parameter is unknown or mistyped.
    #[error("invalid parameter")]
    Param(#[from] ParamError),
    /// A message has a role we do not know.
    #[error("message {index} has role `{role}`; use `system`, `user`, `assistant` or `tool`")]
    Role {
        /// Position in `messages`.
        index: usize,
        /// The role given.
        role: String,
    },
    /// Requantizing is not implemented.
    #[error("quantize is not supported yet; quantize the GGUF with llama.cpp's llama-quantize and create from that")]
    Quantize,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn is_gguf(store: &Store, d: &Digest) -> Result<bool, StoreError> {
    let path = store.blob_path(d);
    let mut f = std::fs::File::open(&path).map_err(|e| StoreError::io("open", &path, e))?;
    let mut magic = [0u8; 4];
    let n = f
        .read(&mut magic)
        .map_err(|e| StoreError::io("read", &path, e))?;
    Ok(n == 4 && &magic == b"GGUF")
}

struct Builder<'a, F: FnMut(ProgressResponse)> {
    store: &'a Store,
    progress: F,
    layers: Vec<Descriptor>,
}

impl<F: FnMut(ProgressResponse)> Builder<'_, F> {
    /// Adds an existing blob as a layer, reporting it as Ollama does.
    fn existing(&mut self, media: MediaType, digest: Digest, size: u64) {
        (self.progress)(ProgressResponse::status(format!(
            "using existing layer {digest}"
        )));
        self.layers.push(Descriptor::new(media, digest, size));
    }

    /// Stores bytes as a new layer (or reuses the identical one).
    fn bytes(&mut self, kind: LayerKind, bytes: &[u8]) -> Result<(), StoreError> {
        let media = MediaType::ollama(kind).unwrap_or_else(|| MediaType::new(ollama::MODEL));
        let known = Digest::sha256_from_bytes(sha256(bytes));
        if self.store.has_blob(&known) {
            self.existing(media, known, bytes.len() as u64);
            return Ok(());
        }
        let digest = self.store.put_bytes(bytes)?;
        (self.progress)(ProgressResponse::status(format!(
            "creating new layer {digest}"
        )));
        self.layers
            .push(Descriptor::new(media, digest, bytes.len() as u64));
        Ok(())
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

fn uploaded(store: &Store, name: &str, raw: &str) -> Result<(Digest, u64), CreateError> {
    let digest: Digest = raw.parse().map_err(|source| CreateError::Digest {
        name: name.to_owned(),
        source,
    })?;
    match store.blob_size(&digest) {
        Some(size) => Ok((digest, size)),
        None => Err(CreateError::NotUploaded {
            name: name.to_owned(),
            digest,
        }),
    }
}

/// Creates (or replaces) the model `req.model`, reporting progress lines.
///
/// Everything is validated and every blob stored before the manifest is
/// written in one transaction, so a failure or a crash leaves the old model
/// (or none) and never half of the new one.
pub fn create(
    store: &Store,
    req: &CreateRequest,
    progress: impl FnMut(ProgressResponse),
) -> Result<(), CreateError> {
    let name: Reference = req.model.parse()?;
    if req.quantize.as_deref().is_some_and(|q| !q.is_empty()) {
        return Err(CreateError::Quantize);
    }
    let base = match &req.from {
        Some(f) if !f.is_empty() => {
            let r: Reference = f.parse()?;
            Some(store.get(&r).map_err(|e| match e {
                StoreError::ModelNotFound(_) => CreateError::BaseNotFound(r.display_short()),
                e => e.into(),
            })?)
        }
        _ => None,
    };
    if base.is_none() && req.files.is_empty() {
        return Err(CreateError::NoSource);
    }

    // Validate everything before writing anything.
    let mut params = match &base {
        Some(b) => describe::parameters(store, &b.manifest)?,
        None => Parameters::default(),
    };
    if let Some(p) = &req.parameters {
        for (k, v) in p {
            params.insert_json(k, v)?;
        }
    }
    if let Some(msgs) = &req.messages {
        for (index, m) in msgs.iter().enumerate() {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant" | "tool") {
                return Err(CreateError::Role {
                    index,
                    role: m.role.clone(),
                });
            }
        }
    }
    let mut weights = Vec::new();
    let mut progress = progress;
    if !req.files.is_empty() {
        progress(ProgressResponse::status("parsing GGUF"));
    }
    for (fname, raw) in &req.files {
        let (digest, size) = uploaded(store, fname, raw)?;
        if !is_gguf(store, &digest)? {
            return Err(CreateError::NotGguf(fname.clone()));
        }
        let gguf =
            GgufFile::open(store.blob_path(&digest)).map_err(|source| CreateError::Gguf {
                name: fname.clone(),
                source,
            })?;
        // Refused here, not at the first request: a model that cannot load
        // should not be created (Ollama refuses an unknown architecture at
        // create too).
        if let Some(arch) = gguf.architecture() {
            if !crate::runner::arch::is_supported(arch) {
                return Err(CreateError::Architecture {
                    name: fname.clone(),
                    architecture: arch.to_owned(),
                });
            }
        }
        weights.push((digest, size, gguf));
    }
    if weights.len() > 1 {
        return Err(CreateError::TooManyWeights(weights.len()));
    }
    let mut adapters = Vec::new();
    for (fname, raw) in &req.adapters {
        let (digest, size) = uploaded(store, fname, raw)?;
        if !is_gguf(store, &digest)? {
            return Err(CreateError::NotGguf(fname.clone()));
        }
        adapters.push((digest, size));
    }

    let mut b = Builder {
        store,
        progress,
        layers: Vec::new(),
    };
    // Weights: the new file, else the base's.
    let mut config = ModelConfig::default();
    if let Some((digest, size, gguf)) = weights.pop() {
        config = ModelConfig {
            model_format: "gguf".into(),
            model_family: gguf.architecture().unwrap_or_default().to_owned(),
            model_families: gguf.architecture().map(|a| vec![a.to_owned()]),
            model_type: gguf.human_parameter_size(),
            file_type: gguf.file_type().map(|t| t.to_string()).unwrap_or_default(),
            ..ModelConfig::default()
        };
        b.existing(MediaType::new(ollama::MODEL), digest, size);
    } else if let Some(base) = &base {
        config = describe::config(store, &base.manifest);
        for kind in [LayerKind::Model, LayerKind::Projector] {
            for l in base.manifest.layers_of(kind) {
                b.existing(l.media_type.clone(), l.digest.clone(), l.size);
            }
        }
    }
    // Adapters: the base's plus the new ones.
    if let Some(base) = &base {
        for l in base.manifest.layers_of(LayerKind::Adapter) {
            b.existing(l.media_type.clone(), l.digest.clone(), l.size);
        }
    }
    for (digest, size) in adapters {
        b.existing(MediaType::new(ollama::ADAPTER), digest, size);
    }
    // Text layers: the request's value replaces the base's.
    let base_text = |kind| -> Result<Vec<Descriptor>, StoreError> {
        Ok(base
            .as_ref()
            .map(|bm| bm.manifest.layers_of(kind).cloned().collect())
            .unwrap_or_default())
    };
    match &req.template {
        Some(t) => b.bytes(LayerKind::Template, t.as_bytes())?,
        None => {
            for l in base_text(LayerKind::Template)? {
                b.existing(l.media_type, l.digest, l.size);
            }
        }
    }
    match &req.system {
        Some(s) => b.bytes(LayerKind::System, s.as_bytes())?,
        None => {
            for l in base_text(LayerKind::System)? {
                b.existing(l.media_type, l.digest, l.size);
            }
        }
    }
    match &req.license {
        Some(lic) => {
            for text in lic.texts() {
                b.bytes(LayerKind::License, text.as_bytes())?;
            }
        }
        None => {
            for l in base_text(LayerKind::License)? {
                b.existing(l.media_type, l.digest, l.size);
            }
        }
    }
    if !params.is_empty() {
        let json = serde_json::to_vec(&params).unwrap_or_default();
        b.bytes(LayerKind::Params, &json)?;
    }
    let messages: Vec<Message> = match &req.messages {
        Some(m) => m.clone(),
        None => match &base {
            Some(bm) => describe::messages(store, &bm.manifest)?,
            None => Vec::new(),
        },
    };
    if !messages.is_empty() {
        let json = serde_json::to_vec(&messages).unwrap_or_default();
        b.bytes(LayerKind::Messages, &json)?;
    }
    // Layers llmpm does not interpret travel with the model.
    if let Some(base) = &base {
        for l in base.manifest.layers_of(LayerKind::Unknown) {
            b.existing(l.media_type.clone(), l.digest.clone(), l.size);
        }
    }

    let Builder {
        mut progress,
        layers,
        ..
    } = b;
    config.os = "linux".into();
    config.architecture = "amd64".into();
    config.rootfs = RootFs {
        kind: "layers".into(),
        diff_ids: layers.iter().map(|l| l.digest.clone()).collect(),
    };
    let config_bytes = serde_json::to_vec(&config).unwrap_or_default();
    let config_digest = store.put_bytes(&config_bytes)?;
    let manifest = Manifest::docker_v2(
        Descriptor::new(
            MediaType::new(media_type::DOCKER_CONFIG),
            config_digest,
            config_bytes.len() as u64,
        ),
        layers,
    );
    progress(ProgressResponse::status("writing manifest"));
    let (digest, _) = store.put_manifest(&name, &manifest)?;
    tracing::info!(model = %name, manifest = %digest, "created");
    progress(ProgressResponse::status("success"));
    Ok(())
}
