//! The inference runner: one process per loaded model (`llmpmd runner`),
//! its GGUF model on candle, the sampler and the request options.

mod amx;
pub mod attention;
pub mod batch;
pub mod client;
pub mod codec;
mod glu;
pub mod json;
pub mod kquant;
pub mod llama;
pub mod matmul;
pub mod model;
pub mod options;
mod pages;
pub mod protocol;
pub mod q8;
pub mod sampler;
pub mod serve;
pub mod strips;
pub mod text;
