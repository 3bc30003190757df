//! `LlmError`: why a model could not be resolved, prompted or run.

use crate::store::StoreError;
use crate::template::TemplateError;

use super::client::ClientError;
use super::options::OptionsError;

/// Why a request to a model failed on the daemon's side of its runner.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The store could not give the model (no such name, unreadable layer, …).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest has no model layer.
    #[error("`{0}` has no model weights (a model layer)")]
    NoWeights(String),
    /// The manifest has a LoRA layer, which the runner cannot apply yet:
    /// answering as the base model would pass off one model's output as
    /// another's.
    #[error(
        "`{0}` has an ADAPTER (LoRA) layer, and applying adapters is not supported yet; \
         create the model without ADAPTER, or from weights with the adapter merged in"
    )]
    Adapter(String),
    /// The model's template (TEMPLATE layer or GGUF Jinja) does not parse.
    #[error("the model's template is invalid: {0}")]
    Template(#[source] TemplateError),
    /// The template failed on this conversation.
    #[error("cannot render the model's template: {0}")]
    Render(#[source] TemplateError),
    /// The request's own `template` does not parse.
    #[error("invalid `template`: {0}")]
    RequestTemplate(#[source] TemplateError),
    /// A fill-in-the-middle request's own `template` has no `.Suffix`.
    #[error(
        "`template` does not use `.Suffix`, so `suffix` would be dropped; \
         give a template that reads `.Suffix`, or none to use the model's"
    )]
    TemplateWithoutSuffix,
    /// The model lacks a capability the request needs (Ollama's text).
    #[error("{} does not support {what}", llmpm_spec::quote::go_quote(model))]
    Unsupported {
        /// The model as the request named it.
        model: String,
        /// `tools`, `thinking`, `insert`, `generate`, `chat`, `embedding`, …
        what: &'static str,
    },
    /// A request field that cannot be honoured; the text names it.
    #[error("{0}")]
    Request(String),
    /// A refused option.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// The runner failed, died or answered with an error.
    #[error(transparent)]
    Runner(#[from] ClientError),
    /// The blocking task that read the model panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}
