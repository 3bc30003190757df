//! llmpm's CPU compute kernels: the integer matrix products of the GGUF
//! quantized formats (ggml's arithmetic, every instruction-set path giving
//! the same bits), fused attention over an f16 or f32 cache, and GEGLU.
//!
//! All of the project's `unsafe` is here (and the one mmap of a model
//! file): SIMD intrinsics behind runtime detection, AMX tile instructions,
//! and the anonymous mappings the repacked weights live in. Every unsafe
//! block says why it is sound.

#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod amx;
pub mod attention;
pub mod glu;
pub mod kquant;
pub mod matmul;
mod pages;
pub mod q8;
pub mod strips;
