//! llmpm's CPU compute kernels, on slices: the integer matrix products of
//! the GGUF quantized formats with ggml's arithmetic ([`QuantMatrix`]),
//! fused attention over an f16 or f32 key/value cache ([`attention`]), and
//! GEGLU ([`glu`]). Every instruction-set path of a kernel gives the same
//! bits, alone or batched, so greedy decoding matches llama.cpp's on every
//! CPU.
//!
//! Organised as ggml's `ggml-cpu` and candle's `quantized` are: the block
//! formats as files hold them ([`formats`]), the layouts the weights are
//! repacked into (`layout`: row-major blocks, strips of 16 rows, x16
//! K-quant blocks), the inner loops per instruction set (`isa`: portable,
//! AVX2, AVX-VNNI, AVX-512 VNNI, AMX), and the fronts that pick them
//! ([`matmul`]).
//!
//! All of the project's `unsafe` is here (but for the one mmap of a model
//! file): SIMD intrinsics behind runtime detection, AMX tile instructions,
//! and the anonymous mappings the repacked weights live in. Every unsafe
//! block says why it is sound.

#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod attention;
mod error;
pub mod formats;
pub mod glu;
mod isa;
mod layout;
pub mod matmul;
pub mod pages;

#[cfg(test)]
mod testing;

pub use error::Error;
pub use formats::Format;
pub use matmul::QuantMatrix;
