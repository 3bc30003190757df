//! The inference runner: one process per loaded model (`llmpmd runner`),
//! its GGUF model on candle, the tokenizer codec, the sampler and the
//! output constraints it enforces. The daemon's side of it (the wire
//! protocol, starting and calling it) is `crate::llm`.

pub mod arch;
pub mod batch;
pub mod bert;
pub mod codec;
pub mod guide;
pub mod llama;
mod loader;
pub mod model;
pub mod rank;
pub mod sampler;
pub mod serve;
pub mod text;
mod weights;

/// The key/value cache's element type, which [`model::Model`] is set to.
pub use llmpm_kernels::attention::KvType;
