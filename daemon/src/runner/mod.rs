//! The inference runner: one process per loaded model (`llmpmd runner`),
//! its GGUF model on candle, the tokenizer codec and the sampler. The
//! daemon's side of it (the wire protocol, starting and calling it) is
//! `crate::llm`.

mod amx;
pub mod attention;
pub mod batch;
pub mod codec;
mod glu;
pub mod json;
pub mod kquant;
pub mod llama;
pub mod matmul;
pub mod model;
mod pages;
pub mod q8;
pub mod sampler;
pub mod serve;
pub mod strips;
pub mod text;
