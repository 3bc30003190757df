//! The inference runner: one process per loaded model (`llmpmd runner`),
//! its GGUF model on candle, the sampler and the request options.

pub mod batch;
pub mod client;
pub mod codec;
pub mod json;
pub mod llama;
pub mod model;
pub mod options;
pub mod protocol;
pub mod sampler;
pub mod serve;
pub mod text;
mod weights;

/// The key/value cache's element type, which [`model::Model`] is set to.
pub use llmpm_kernels::attention::KvType;
