//! How a stored model looks to a user: details, parameters, template, the Modelfile that recreates it.

use std::time::SystemTime;

use llmpm_gguf::GgufFile;
use llmpm_spec::api::{Message, ModelDetails, ShowResponse};
use llmpm_spec::modelfile::{Command, Modelfile, Role};
use llmpm_spec::params::Parameters;
use llmpm_spec::{LayerKind, Manifest, ModelConfig};

use crate::store::{ModelEntry, Store, StoreError};

/// The most text a template, system, license or messages layer may hold.
pub const MAX_TEXT_LAYER: u64 = 16 * 1024 * 1024;

/// RFC 3339 with microseconds: what Ollama's clients (Go and pydantic) parse.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// The config blob; when it is missing or not Ollama's shape (ModelPack and
/// Docker model artifacts have their own), the same facts read from the
/// weights layer's GGUF header, so a pulled artifact lists like a created model.
pub fn config(store: &Store, manifest: &Manifest) -> ModelConfig {
    let c: ModelConfig = store
        .read_blob(&manifest.config.digest, MAX_TEXT_LAYER)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if !c.model_format.is_empty() {
        return c;
    }
    let Some(weights) = manifest.layers_of(LayerKind::Model).next() else {
        return c;
    };
    match GgufFile::open(store.blob_path(&weights.digest)) {
        Ok(gguf) => ModelConfig {
            model_format: "gguf".into(),
            model_family: gguf.architecture().unwrap_or_default().to_owned(),
            model_families: gguf.architecture().map(|a| vec![a.to_owned()]),
            model_type: gguf.human_parameter_size(),
            file_type: gguf.file_type().map(|t| t.to_string()).unwrap_or_default(),
            ..c
        },
        Err(_) => c,
    }
}

/// `details` for `list` and `show`.
pub fn details(store: &Store, manifest: &Manifest) -> ModelDetails {
    let c = config(store, manifest);
    ModelDetails {
        parent_model: c.parent_model,
        format: c.model_format,
        family: c.model_family,
        families: c.model_families,
        parameter_size: c.model_type,
        quantization_level: c.file_type,
    }
}

/// The text of each layer of `kind`, in manifest order.
pub fn text_layers(
    store: &Store,
    manifest: &Manifest,
    kind: LayerKind,
) -> Result<Vec<String>, StoreError> {
    manifest
        .layers_of(kind)
        .map(|l| {
            let b = store.read_blob(&l.digest, MAX_TEXT_LAYER)?;
            Ok(String::from_utf8_lossy(&b).into_owned())
        })
        .collect()
}

/// The model's parameters layer, parsed (empty when it has none).
pub fn parameters(store: &Store, manifest: &Manifest) -> Result<Parameters, StoreError> {
    let mut params = Parameters::default();
    for text in text_layers(store, manifest, LayerKind::Params)? {
        match serde_json::from_str::<Parameters>(&text) {
            Ok(p) => params.merge(&p),
            Err(e) => tracing::warn!(error = %e, "ignoring unreadable params layer"),
        }
    }
    Ok(params)
}

/// The model's seed messages.
pub fn messages(store: &Store, manifest: &Manifest) -> Result<Vec<Message>, StoreError> {
    let mut out = Vec::new();
    for text in text_layers(store, manifest, LayerKind::Messages)? {
        match serde_json::from_str::<Vec<Message>>(&text) {
            Ok(m) => out.extend(m),
            Err(e) => tracing::warn!(error = %e, "ignoring unreadable messages layer"),
        }
    }
    Ok(out)
}

/// The full `/api/show` answer.
pub fn show(store: &Store, entry: &ModelEntry, verbose: bool) -> Result<ShowResponse, StoreError> {
    let m = &entry.manifest;
    let template = text_layers(store, m, LayerKind::Template)?.join("");
    let system = text_layers(store, m, LayerKind::System)?.join("");
    let licenses = text_layers(store, m, LayerKind::License)?;
    let params = parameters(store, m)?;
    let messages = messages(store, m)?;

    let mut commands = Vec::new();
    for l in m.layers_of(LayerKind::Model) {
        commands.push(Command::From(
            store.blob_path(&l.digest).display().to_string(),
        ));
    }
    for l in m.layers_of(LayerKind::Adapter) {
        commands.push(Command::Adapter(
            store.blob_path(&l.digest).display().to_string(),
        ));
    }
    if !template.is_empty() {
        commands.push(Command::Template(template.clone()));
    }
    if !system.is_empty() {
        commands.push(Command::System(system.clone()));
    }
    for (name, value) in params.iter() {
        commands.push(Command::Parameter {
            name: name.to_owned(),
            value: value.clone(),
        });
    }
    for l in &licenses {
        commands.push(Command::License(l.clone()));
    }
    for msg in &messages {
        if let Ok(role) = msg.role.parse::<Role>() {
            commands.push(Command::Message {
                role,
                content: msg.content.clone(),
            });
        }
    }
    let modelfile = format!(
        "# Modelfile generated by \"llmpm show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM {}\n\n{}",
        entry.reference.display_short(),
        Modelfile { commands }
    );

    let mut model_info = serde_json::Map::new();
    if let Some(l) = m.layers_of(LayerKind::Model).next() {
        match GgufFile::open(store.blob_path(&l.digest)) {
            Ok(g) => {
                model_info = if verbose {
                    g.model_info_verbose()
                } else {
                    g.model_info()
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read GGUF metadata for show"),
        }
    }
    Ok(ShowResponse {
        license: licenses.join("\n"),
        modelfile,
        parameters: params.to_modelfile_lines().join("\n"),
        template,
        system,
        details: details(store, m),
        messages,
        model_info,
        // Filled in by the API from the resolved model (llm::infer::Capability).
        capabilities: Vec::new(),
        modified_at: rfc3339(entry.modified),
        // Filled in by the API (trust::signature_infos, with the policy's keys).
        signatures: Vec::new(),
    })
}
