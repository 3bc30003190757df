//! [`GgufError`]: everything that can be wrong with a GGUF file, each
//! naming where (the byte, the key, the tensor) and what.

use std::io;
use std::path::PathBuf;

use crate::types::GgmlType;

/// Everything that can be wrong with a GGUF file (or with a tensor handed to
/// the `testing` feature's `GgufWriter`).
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot open `{}`", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot map `{}` into memory", path.display())]
    Map {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the GGUF file at byte {offset}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("not a GGUF file: it starts with `{}` instead of `GGUF`", found.escape_ascii())]
    BadMagic { found: [u8; 4] },
    #[error("GGUF file is big-endian (version field {version:#010x}); only little-endian files are supported")]
    BigEndian { version: u32 },
    #[error("GGUF version {version} is not supported; only versions 2 and 3 are")]
    UnsupportedVersion { version: u32 },
    #[error("{what} at byte {offset} needs {needed} bytes but the file ends at byte {file_len}")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        file_len: u64,
    },
    #[error("the file ended early while reading {what} at byte {offset}")]
    ShortRead { what: String, offset: u64 },
    #[error("tensor count {count} exceeds the limit of {limit}")]
    TooManyTensors { count: u64, limit: u64 },
    #[error("metadata entry count {count} exceeds the limit of {limit}")]
    TooManyKv { count: u64, limit: u64 },
    #[error("{what} has length {len}, over the limit of {limit} bytes")]
    StringTooLong { what: String, len: u64, limit: u64 },
    #[error(
        "array `{key}` claims {count} elements but at most {limit} fit in the rest of the file"
    )]
    ArrayTooLong { key: String, count: u64, limit: u64 },
    #[error("array `{key}` nests arrays {depth} deep, over the limit of {limit}")]
    ArrayTooDeep { key: String, depth: u32, limit: u32 },
    #[error("metadata grows past the budget of {limit} bytes at {what}")]
    MetadataTooLarge { what: String, limit: u64 },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: String },
    #[error("key `{key}` has unknown value type {type_id}")]
    UnknownValueType { key: String, type_id: u32 },
    #[error("key `{key}` holds boolean byte {byte}, expected 0 or 1")]
    InvalidBool { key: String, byte: u8 },
    #[error("key `{key}` appears more than once")]
    DuplicateKey { key: String },
    #[error("key `{key}` has type {found}, expected {expected}")]
    WrongValueType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("`general.alignment` is {value}, expected a power of two from 1 to {max}")]
    BadAlignment { value: u64, max: u64 },
    #[error("tensor `{tensor}` has {n_dims} dimensions, more than {max}")]
    TooManyDims {
        tensor: String,
        n_dims: u64,
        max: usize,
    },
    #[error("tensor `{tensor}` has size 0 in dimension {index}")]
    ZeroDim { tensor: String, index: usize },
    #[error("tensor `{tensor}` with dimensions {dims:?} has too many elements or bytes to count")]
    ElementCountOverflow { tensor: String, dims: Vec<u64> },
    #[error("tensor `{tensor}` has unknown ggml type {type_id}")]
    UnknownGgmlType { tensor: String, type_id: u32 },
    #[error("tensor `{tensor}` has ne[0] = {ne0}, not a multiple of the {ggml_type} block size {block_size}")]
    NotBlockMultiple {
        tensor: String,
        ne0: u64,
        ggml_type: GgmlType,
        block_size: u64,
    },
    #[error("tensor `{tensor}` appears more than once")]
    DuplicateTensor { tensor: String },
    #[error("tensor `{tensor}` has offset {offset}, not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error("tensor `{tensor}` data ends at byte {end} but the file has {file_len} bytes")]
    TensorPastEnd {
        tensor: String,
        end: u64,
        file_len: u64,
    },
    #[error("the file has no tensor `{tensor}`")]
    MissingTensor { tensor: String },
    #[error("tensor `{tensor}` lies beyond any 64-bit file offset")]
    OffsetOverflow { tensor: String },
    #[error("tensors `{first}` and `{second}` overlap at byte {offset}")]
    OverlappingTensors {
        first: String,
        second: String,
        offset: u64,
    },
    #[error(
        "tensor `{tensor}` has {actual} bytes of data, expected {expected} for its shape and type"
    )]
    TensorDataSize {
        tensor: String,
        expected: u64,
        actual: u64,
    },
    #[error("tensor `{tensor}` cannot be encoded as {ggml_type} from f32 values")]
    UnsupportedEncoding { tensor: String, ggml_type: GgmlType },
}
