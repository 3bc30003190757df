//! MXFP4 as the kernels read it: the block layout and codec are
//! llmpm-gguf's ([`llmpm_gguf::mxfp4`], the one copy in the
//! project, which the tiny-model writer quantizes with); the kernels' own
//! constants are tested against its type table in [`super`].

#[cfg(test)]
pub(crate) use llmpm_gguf::mxfp4::QK;
pub use llmpm_gguf::mxfp4::{dequantize_mxfp4 as dequantize, quantize_mxfp4 as quantize};
pub(crate) use llmpm_gguf::mxfp4::{scale_half, MXFP4_BYTES, VALUES};
