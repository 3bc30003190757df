//! llmpm-gguf: GGUF files, and the one reader of them in llmpm.
//!
//! The format is described in ggml's `docs/gguf.md`
//! (<https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>). A GGUF file
//! comes from the network, so [`GgufFile`] checks every count, length and
//! offset against the bytes left in the file and against fixed limits before
//! anything is allocated, and all arithmetic on them: a hostile file gives a
//! [`GgufError`], never a panic or a huge allocation. [`MappedGguf`] maps a
//! model file and hands out each tensor's bytes through that checked table;
//! [`Hyperparameters`] reads the model's shape once; the summary methods of
//! [`GgufFile`] say what `/api/show` and `list` print.
//!
//! With the `testing` feature, `writer` builds GGUF v3 files and `tiny`
//! generates tiny Llama 3 models with it, so tests need no download.

mod error;
mod hyperparameters;
mod mmap;
pub mod mxfp4;
mod read;
mod summary;
mod types;
mod value;
mod vocab;

#[cfg(any(test, feature = "testing"))]
pub mod tiny;
#[cfg(any(test, feature = "testing"))]
pub mod writer;

#[cfg(test)]
mod test_support;

pub use error::GgufError;
pub use hyperparameters::{is_local_layer, HyperparameterError, Hyperparameters, RopeScaling};
pub use mmap::{Mapped, MappedGguf};
pub use read::{
    GgufFile, TensorInfo, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS,
    MAX_KEY_LEN, MAX_KV, MAX_STRING_LEN, MAX_TENSORS, MAX_TENSOR_NAME_LEN, METADATA_BUDGET,
};
pub use summary::human_number;
#[cfg(any(test, feature = "testing"))]
pub(crate) use types::divides;
pub use types::{FileType, GgmlType};
pub use value::{Array, Value, ValueType};
pub use vocab::gpt2_byte_chars;
