//! The resolved model: a name's manifest turned into what a request needs
//! (the weights file, the parameters, SYSTEM, the chat template, BOS/EOS
//! texts and the details), and [`Models`], which keeps each resolution
//! while the name still points at the same manifest.
//!
//! Resolving reads the manifest, the config, params, system and template
//! blobs and parses the GGUF's metadata (a 151k-token vocabulary
//! included): tens of milliseconds that a warm request should not pay. A
//! request still looks the name up in the store's index, so a model that
//! was re-created or re-pulled under the same name is resolved again.

mod capabilities;
mod chat;
mod prompt;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
mod tokens;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use llmpm_spec::api::ModelDetails;
use llmpm_spec::params::Parameters;
use llmpm_spec::{LayerKind, Reference};

pub use capabilities::{Capability, FimTokens};
pub use chat::{call_grammar, Features, ToolChoice};
pub use prompt::Prompt;

use super::error::LlmError;
use super::options::{self, Options};
use crate::store::Store;
use crate::template::{ChatTemplate, SelectedTemplate};
use llmpm_gguf::GgufFile;

/// What a request needs to know about its model. `X` is what the caller
/// reads from the GGUF header along with the rest (the daemon: the
/// scheduler's memory shape, which `llm` does not know).
#[derive(Debug)]
pub struct ResolvedModel<X> {
    /// The weights file (a blob).
    pub blob: PathBuf,
    /// The short name, for `ps`.
    pub name: String,
    /// The manifest digest (hex): the model's id.
    pub digest: String,
    /// Family, size, quantization, for `ps`.
    pub details: ModelDetails,
    /// The PARAMS layer.
    pub params: Parameters,
    /// The SYSTEM layer.
    pub system: Option<String>,
    /// The chat template (TEMPLATE layer, recognised built-in, or the GGUF's Jinja).
    pub template: SelectedTemplate,
    /// BOS/EOS texts for Jinja templates.
    bos: String,
    eos: String,
    /// What the caller derived from the GGUF header (default when it does not open).
    pub shape: X,
    /// What it can do, as Ollama computes it.
    pub capabilities: Vec<Capability>,
    /// Its fill-in-the-middle tokens, when the GGUF has them.
    pub fim: Option<FimTokens>,
    /// The daemon's tokenizers (shared by every resolved model).
    tokenizers: tokens::Tokenizers,
    /// It writes harmony (gpt-oss): channels and recipients instead of
    /// think tags and a call tag.
    pub harmony: bool,
}

impl<X> ResolvedModel<X> {
    /// A request's options over the model's parameters, with the
    /// template's stop strings when neither sets any.
    pub fn options(&self, request: Option<&serde_json::Value>) -> Result<Options, LlmError> {
        let mut opts = options::from_request(&self.params, request)?;
        if opts.stop.is_empty() {
            opts.stop = self.template.stops.clone();
        }
        Ok(opts)
    }

    /// Whether the model has `cap`.
    pub fn can(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }

    /// A 400 unless the model has `cap`; `model` is the name as the request
    /// gave it, which Ollama quotes in the error. A missing `completion` reads
    /// `does not support generate` (or `chat`, as `task` says).
    pub fn require(
        &self,
        model: &str,
        cap: Capability,
        task: &'static str,
    ) -> Result<(), LlmError> {
        if self.can(cap) {
            return Ok(());
        }
        let what = match cap {
            Capability::Completion => task,
            c => c.as_str(),
        };
        Err(LlmError::Unsupported {
            model: model.to_owned(),
            what,
        })
    }
}

/// Reads what the caller wants from a GGUF header.
type Derive<X> = fn(&GgufFile) -> X;

/// Resolved models by name, each kept while the name points at the same
/// manifest. Cheap to clone; clones share the cache.
pub struct Models<X> {
    inner: Arc<Inner<X>>,
}

struct Inner<X> {
    store: Store,
    derive: Derive<X>,
    /// The tokenizers of the models' weights, by blob.
    tokenizers: tokens::Tokenizers,
    /// By normalized name (without a pinned digest), with when each was
    /// last used: at most [`CACHED_MODELS`], the least recently used going.
    cache: Mutex<Cached<X>>,
}

type Cached<X> = (HashMap<String, (Arc<ResolvedModel<X>>, u64)>, u64);

/// Resolved models kept. Unbounded, the cache kept every name ever used:
/// the soak's daemon grew ~3.5 MB a minute as clients created, used and
/// removed thousands of names.
const CACHED_MODELS: usize = 64;

impl<X> Clone for Models<X> {
    fn clone(&self) -> Self {
        Models {
            inner: self.inner.clone(),
        }
    }
}

impl<X> fmt::Debug for Models<X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Models").finish_non_exhaustive()
    }
}

impl<X: Default + Send + Sync + 'static> Models<X> {
    /// An empty cache over `store`; `derive` reads the caller's part of a GGUF header.
    pub fn new(store: Store, derive: Derive<X>) -> Models<X> {
        Models {
            inner: Arc::new(Inner {
                store,
                derive,
                tokenizers: tokens::Tokenizers::default(),
                cache: Mutex::new((HashMap::new(), 0)),
            }),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cached<X>> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The model `reference` names: from the cache when the name still
    /// points at the manifest it was resolved from, else read again.
    pub async fn resolve(&self, reference: &Reference) -> Result<Arc<ResolvedModel<X>>, LlmError> {
        let key = reference.key();
        let digest = match self.inner.store.manifest_digest(reference) {
            Ok(d) => d,
            Err(e) => {
                self.cache().0.remove(&key);
                return Err(e.into());
            }
        };
        {
            let (map, clock) = &mut *self.cache();
            *clock += 1;
            if let Some((m, used)) = map.get_mut(&key).filter(|(m, _)| m.digest == digest.hex()) {
                *used = *clock;
                return Ok(m.clone());
            }
        }
        let (store, derive, r, tokenizers) = (
            self.inner.store.clone(),
            self.inner.derive,
            reference.clone(),
            self.inner.tokenizers.clone(),
        );
        let model =
            tokio::task::spawn_blocking(move || resolve(&store, &r, derive, tokenizers)).await??;
        let model = Arc::new(model);
        let (map, clock) = &mut *self.cache();
        if map.len() >= CACHED_MODELS && !map.contains_key(&key) {
            let oldest = map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
        map.insert(key, (model.clone(), *clock));
        Ok(model)
    }
}

/// Reads everything a request needs about the model `reference` names.
fn resolve<X: Default>(
    store: &Store,
    reference: &Reference,
    derive: Derive<X>,
    tokenizers: tokens::Tokenizers,
) -> Result<ResolvedModel<X>, LlmError> {
    let entry = store.get(reference)?;
    let layer = entry
        .manifest
        .layers_of(LayerKind::Model)
        .next()
        .ok_or_else(|| LlmError::NoWeights(reference.display_short()))?;
    // The runner cannot apply a LoRA yet: answering as the base model
    // would pass off one model's output as another's.
    if entry
        .manifest
        .layers_of(LayerKind::Adapter)
        .next()
        .is_some()
    {
        return Err(LlmError::Adapter(reference.display_short()));
    }
    let blob = store.blob_path(&layer.digest);
    let params = crate::describe::parameters(store, &entry.manifest)?;
    let system = crate::describe::text_layers(store, &entry.manifest, LayerKind::System)?.pop();
    let layer = crate::describe::text_layers(store, &entry.manifest, LayerKind::Template)?.pop();
    let gguf = GgufFile::open(&blob).ok();
    let shape = gguf.as_ref().map(derive).unwrap_or_default();
    let details = crate::describe::details(store, &entry.manifest);
    let meta = |k: &str| gguf.as_ref().and_then(|f| f.get_str(k)).map(str::to_string);
    let token = |k: &str| {
        gguf.as_ref().and_then(|f| {
            let id = usize::try_from(f.get_u64(k)?).ok()?;
            f.get("tokenizer.ggml.tokens")?
                .as_array()?
                .as_strings()?
                .get(id)
                .cloned()
        })
    };
    let facts = gguf.as_ref().map(capabilities::GgufFacts::read);
    let fim = gguf.as_ref().and_then(FimTokens::read);
    let jinja = meta("tokenizer.chat_template");
    let arch = meta("general.architecture").unwrap_or_default();
    let template = ChatTemplate::select(layer.as_deref(), jinja.as_deref(), &arch)
        .map_err(LlmError::Template)?;
    let projector = entry
        .manifest
        .layers_of(LayerKind::Projector)
        .next()
        .is_some();
    let capabilities = capabilities::compute(facts, &template.template, projector);
    Ok(ResolvedModel {
        blob,
        name: entry.reference.display_short(),
        digest: entry.digest.hex().to_owned(),
        details,
        params,
        system,
        template,
        bos: token("tokenizer.ggml.bos_token_id").unwrap_or_default(),
        eos: token("tokenizer.ggml.eos_token_id").unwrap_or_default(),
        shape,
        capabilities,
        fim,
        tokenizers,
        harmony: facts.is_some_and(|f| f.gpt_oss),
    })
}
