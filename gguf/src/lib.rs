//! GGUF files, the one reader of them in llmpm: a hardened reader of the
//! header, metadata and tensor table, and the summary (`architecture`,
//! parameter count, quantization, `model_info`) that `/api/show` and `list`
//! print.
//!
//! The format is described in ggml's `docs/gguf.md`
//! (<https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>). A GGUF file
//! comes from the network, so every count, length and offset is checked
//! against the bytes left in the file and against fixed limits before
//! anything is allocated, and all arithmetic on them is checked: a hostile
//! file gives a [`GgufError`], never a panic or a huge allocation.
//!
//! With the `testing` feature, `writer` builds GGUF v3 files and `tiny`
//! generates tiny Llama 3 models with it, so tests need no download.

#[cfg(any(test, feature = "testing"))]
pub mod tiny;
pub mod vocab;
#[cfg(any(test, feature = "testing"))]
pub mod writer;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The largest `general.alignment` accepted; real files use 32 or 64.
pub const MAX_ALIGNMENT: u64 = 1 << 16;
/// The most tensors a file may declare; the largest models have a few thousand.
pub const MAX_TENSORS: u64 = 1 << 20;
/// The most metadata entries a file may declare.
pub const MAX_KV: u64 = 1 << 20;
/// The longest metadata key, from the spec (`2^16 - 1` bytes).
pub const MAX_KEY_LEN: u64 = (1 << 16) - 1;
/// The longest tensor name accepted.
pub const MAX_TENSOR_NAME_LEN: u64 = (1 << 16) - 1;
/// The longest string value accepted (embedded tokenizer JSON runs to a few MiB).
pub const MAX_STRING_LEN: u64 = 64 << 20;
/// The most dimensions a tensor may have (`GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// How deep arrays may nest inside arrays (1 = a plain array).
pub const MAX_ARRAY_DEPTH: u32 = 3;
/// Upper bound on the memory the decoded metadata may take.
pub const METADATA_BUDGET: u64 = 256 << 20;

/// ggml counts elements in `int64_t`.
const MAX_ELEMENTS: u64 = i64::MAX as u64;
/// Bytes read per step, so that a file lying about its length costs at most
/// this much memory beyond what it really holds.
const READ_CHUNK: usize = 1 << 20;
/// Smallest encoded metadata entry: key length, empty key, type, one byte.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest encoded tensor info: name length, empty name, n_dims, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;
/// Decoded bytes charged per metadata entry besides its key and value.
const KV_OVERHEAD: u64 = 64;

/// Everything that can be wrong with a GGUF file (or with a tensor handed to
/// [`writer::GgufWriter`]).
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot open `{}`", path.display())]
    Open {
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

/// The type tag of a metadata value, as numbered in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    const ALL: [ValueType; 13] = [
        ValueType::U8,
        ValueType::I8,
        ValueType::U16,
        ValueType::I16,
        ValueType::U32,
        ValueType::I32,
        ValueType::F32,
        ValueType::Bool,
        ValueType::String,
        ValueType::Array,
        ValueType::U64,
        ValueType::I64,
        ValueType::F64,
    ];

    /// The type for a tag read from a file.
    pub fn from_u32(id: u32) -> Option<Self> {
        usize::try_from(id)
            .ok()
            .and_then(|i| Self::ALL.get(i))
            .copied()
    }

    /// The tag written to a file.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The spec's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "uint8",
            ValueType::I8 => "int8",
            ValueType::U16 => "uint16",
            ValueType::I16 => "int16",
            ValueType::U32 => "uint32",
            ValueType::I32 => "int32",
            ValueType::F32 => "float32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "uint64",
            ValueType::I64 => "int64",
            ValueType::F64 => "float64",
        }
    }

    /// Encoded size of a fixed-size value; `None` for strings and arrays.
    fn fixed_size(self) -> Option<u64> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }

    /// The fewest bytes one array element of this type takes in the file.
    fn min_encoded_size(self) -> u64 {
        match self {
            ValueType::String => 8,
            ValueType::Array => 4 + 8,
            other => other.fixed_size().unwrap_or(1),
        }
    }

    /// Memory charged per decoded array element (a `String` or nested
    /// `Array` header costs more than its encoding).
    fn decoded_size(self) -> u64 {
        match self {
            ValueType::String => 24,
            ValueType::Array => 32,
            other => other.fixed_size().unwrap_or(1),
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metadata value, typed as in the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A metadata array. Arrays are homogeneous in GGUF, so each keeps its
/// element type (an empty array too) and stores its elements unboxed, which
/// keeps a 128k-entry `token_type` array at 4 bytes an entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl Value {
    /// The type tag of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Any non-negative integer value; writers disagree on integer widths
    /// (`context_length` is u32 in llama.cpp files, u64 in others).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(u64::from(v)),
            Value::U16(v) => Some(u64::from(v)),
            Value::U32(v) => Some(u64::from(v)),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer value that fits in an i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(i64::from(v)),
            Value::I16(v) => Some(i64::from(v)),
            Value::I32(v) => Some(i64::from(v)),
            Value::I64(v) => Some(v),
            Value::U8(v) => Some(i64::from(v)),
            Value::U16(v) => Some(i64::from(v)),
            Value::U32(v) => Some(i64::from(v)),
            Value::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A float value, or an integer one converted.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(f64::from(v)),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A boolean value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// An array value.
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value as JSON, the way Ollama prints metadata: floats that are
    /// not finite become `null`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::U8(v) => J::from(*v),
            Value::I8(v) => J::from(*v),
            Value::U16(v) => J::from(*v),
            Value::I16(v) => J::from(*v),
            Value::U32(v) => J::from(*v),
            Value::I32(v) => J::from(*v),
            Value::F32(v) => f32_json(*v),
            Value::Bool(v) => J::from(*v),
            Value::String(v) => J::from(v.as_str()),
            Value::Array(a) => a.to_json(),
            Value::U64(v) => J::from(*v),
            Value::I64(v) => J::from(*v),
            Value::F64(v) => f64_json(*v),
        }
    }
}

/// An f32 printed as its shortest decimal (1e-5, not 9.99999974737875e-6),
/// as Go's encoder prints Ollama's float32 metadata.
fn f32_json(v: f32) -> serde_json::Value {
    let widened = v.to_string().parse::<f64>().unwrap_or(f64::from(v));
    f64_json(widened)
}

fn f64_json(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

impl Array {
    /// The element type.
    pub fn item_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8,
            Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16,
            Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32,
            Array::I32(_) => ValueType::I32,
            Array::F32(_) => ValueType::F32,
            Array::Bool(_) => ValueType::Bool,
            Array::String(_) => ValueType::String,
            Array::Array(_) => ValueType::Array,
            Array::U64(_) => ValueType::U64,
            Array::I64(_) => ValueType::I64,
            Array::F64(_) => ValueType::F64,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements of a string array (`tokenizer.ggml.tokens`, `merges`).
    pub fn as_strings(&self) -> Option<&[String]> {
        match self {
            Array::String(v) => Some(v),
            _ => None,
        }
    }

    /// The elements as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        fn list<T: Copy>(v: &[T], f: impl Fn(T) -> J) -> J {
            J::Array(v.iter().map(|&x| f(x)).collect())
        }
        match self {
            Array::U8(v) => list(v, J::from),
            Array::I8(v) => list(v, J::from),
            Array::U16(v) => list(v, J::from),
            Array::I16(v) => list(v, J::from),
            Array::U32(v) => list(v, J::from),
            Array::I32(v) => list(v, J::from),
            Array::F32(v) => list(v, f32_json),
            Array::Bool(v) => list(v, J::from),
            Array::String(v) => J::Array(v.iter().map(|s| J::from(s.as_str())).collect()),
            Array::Array(v) => J::Array(v.iter().map(Array::to_json).collect()),
            Array::U64(v) => list(v, J::from),
            Array::I64(v) => list(v, J::from),
            Array::F64(v) => list(v, f64_json),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(
            impl From<$t> for Value {
                fn from(v: $t) -> Self {
                    Value::$variant(v)
                }
            }
            impl From<Vec<$t>> for Array {
                fn from(v: Vec<$t>) -> Self {
                    Array::$variant(v)
                }
            }
            impl From<Vec<$t>> for Value {
                fn from(v: Vec<$t>) -> Self {
                    Value::Array(Array::$variant(v))
                }
            }
        )*
    };
}

value_from!(
    u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32,
    f32 => F32, bool => Bool, String => String, u64 => U64, i64 => I64, f64 => F64,
);

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}

impl From<Array> for Value {
    fn from(v: Array) -> Self {
        Value::Array(v)
    }
}

impl From<Vec<Array>> for Value {
    fn from(v: Vec<Array>) -> Self {
        Value::Array(Array::Array(v))
    }
}

impl From<Vec<&str>> for Value {
    fn from(v: Vec<&str>) -> Self {
        Value::Array(Array::String(v.into_iter().map(str::to_owned).collect()))
    }
}

/// Declares [`GgmlType`] from one table: (variant, id, name, block size,
/// bytes per block), from ggml's `type_traits`.
macro_rules! ggml_types {
    ($(($variant:ident, $id:literal, $name:literal, $block:literal, $size:literal)),* $(,)?) => {
        /// A tensor's element encoding (`enum ggml_type`). Ids that ggml has
        /// retired (4, 5, 31–33, 36–38) are not listed and are rejected.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum GgmlType {
            $($variant = $id,)*
        }

        impl GgmlType {
            /// Every known type.
            pub const ALL: &'static [GgmlType] = &[$(GgmlType::$variant,)*];

            /// The type for an id read from a file.
            pub fn from_u32(id: u32) -> Option<Self> {
                match id {
                    $($id => Some(GgmlType::$variant),)*
                    _ => None,
                }
            }

            /// ggml's name (`Q4_0`, `IQ2_XXS`, `BF16`).
            pub fn name(self) -> &'static str {
                match self {
                    $(GgmlType::$variant => $name,)*
                }
            }

            /// Elements per block.
            pub fn block_size(self) -> u64 {
                match self {
                    $(GgmlType::$variant => $block,)*
                }
            }

            /// Bytes per block.
            pub fn type_size(self) -> u64 {
                match self {
                    $(GgmlType::$variant => $size,)*
                }
            }
        }
    };
}

ggml_types!(
    (F32, 0, "F32", 1, 4),
    (F16, 1, "F16", 1, 2),
    (Q4_0, 2, "Q4_0", 32, 18),
    (Q4_1, 3, "Q4_1", 32, 20),
    (Q5_0, 6, "Q5_0", 32, 22),
    (Q5_1, 7, "Q5_1", 32, 24),
    (Q8_0, 8, "Q8_0", 32, 34),
    (Q8_1, 9, "Q8_1", 32, 36),
    (Q2_K, 10, "Q2_K", 256, 84),
    (Q3_K, 11, "Q3_K", 256, 110),
    (Q4_K, 12, "Q4_K", 256, 144),
    (Q5_K, 13, "Q5_K", 256, 176),
    (Q6_K, 14, "Q6_K", 256, 210),
    (Q8_K, 15, "Q8_K", 256, 292),
    (IQ2_XXS, 16, "IQ2_XXS", 256, 66),
    (IQ2_XS, 17, "IQ2_XS", 256, 74),
    (IQ3_XXS, 18, "IQ3_XXS", 256, 98),
    (IQ1_S, 19, "IQ1_S", 256, 50),
    (IQ4_NL, 20, "IQ4_NL", 32, 18),
    (IQ3_S, 21, "IQ3_S", 256, 110),
    (IQ2_S, 22, "IQ2_S", 256, 82),
    (IQ4_XS, 23, "IQ4_XS", 256, 136),
    (I8, 24, "I8", 1, 1),
    (I16, 25, "I16", 1, 2),
    (I32, 26, "I32", 1, 4),
    (I64, 27, "I64", 1, 8),
    (F64, 28, "F64", 1, 8),
    (IQ1_M, 29, "IQ1_M", 256, 56),
    (BF16, 30, "BF16", 1, 2),
    (TQ1_0, 34, "TQ1_0", 256, 54),
    (TQ2_0, 35, "TQ2_0", 256, 66),
    (MXFP4, 39, "MXFP4", 32, 17),
);

impl GgmlType {
    /// The id written to a file.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// Bytes taken by `elements` values, `None` when `elements` is not a
    /// whole number of blocks or the size overflows.
    pub fn byte_size(self, elements: u64) -> Option<u64> {
        if !divides(self.block_size(), elements) {
            return None;
        }
        (elements / self.block_size()).checked_mul(self.type_size())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Declares [`FileType`] from one table: (variant, `general.file_type`
/// value, the name Ollama and llama.cpp print).
macro_rules! file_types {
    ($(($variant:ident, $id:literal, $name:literal)),* $(,)?) => {
        /// What `general.file_type` says about a model's quantization
        /// (llama.cpp's `llama_ftype`, Ollama's `FileType`).
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum FileType {
            $($variant = $id,)*
        }

        impl FileType {
            /// The file type for a `general.file_type` value.
            pub fn from_u32(id: u32) -> Option<Self> {
                match id {
                    $($id => Some(FileType::$variant),)*
                    _ => None,
                }
            }

            /// The name shown as `quantization_level` (`Q4_K_M`, `F16`).
            pub fn name(self) -> &'static str {
                match self {
                    $(FileType::$variant => $name,)*
                }
            }
        }
    };
}

file_types!(
    (F32, 0, "F32"),
    (F16, 1, "F16"),
    (Q4_0, 2, "Q4_0"),
    (Q4_1, 3, "Q4_1"),
    // llama.cpp retired 4 (Q4_1_SOME_F16); Ollama reuses it for gpt-oss.
    (MXFP4, 4, "MXFP4"),
    (Q8_0, 7, "Q8_0"),
    (Q5_0, 8, "Q5_0"),
    (Q5_1, 9, "Q5_1"),
    (Q2_K, 10, "Q2_K"),
    (Q3_K_S, 11, "Q3_K_S"),
    (Q3_K_M, 12, "Q3_K_M"),
    (Q3_K_L, 13, "Q3_K_L"),
    (Q4_K_S, 14, "Q4_K_S"),
    (Q4_K_M, 15, "Q4_K_M"),
    (Q5_K_S, 16, "Q5_K_S"),
    (Q5_K_M, 17, "Q5_K_M"),
    (Q6_K, 18, "Q6_K"),
    (IQ2_XXS, 19, "IQ2_XXS"),
    (IQ2_XS, 20, "IQ2_XS"),
    (Q2_K_S, 21, "Q2_K_S"),
    (IQ3_XS, 22, "IQ3_XS"),
    (IQ3_XXS, 23, "IQ3_XXS"),
    (IQ1_S, 24, "IQ1_S"),
    (IQ4_NL, 25, "IQ4_NL"),
    (IQ3_S, 26, "IQ3_S"),
    (IQ3_M, 27, "IQ3_M"),
    (IQ2_S, 28, "IQ2_S"),
    (IQ2_M, 29, "IQ2_M"),
    (IQ4_XS, 30, "IQ4_XS"),
    (IQ1_M, 31, "IQ1_M"),
    (BF16, 32, "BF16"),
    (TQ1_0, 36, "TQ1_0"),
    (TQ2_0, 37, "TQ2_0"),
    (MXFP4_MOE, 38, "MXFP4_MOE"),
);

impl FileType {
    /// The `general.file_type` value.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The file type of a model whose weights are mostly `t`. K-quant mixes
    /// cannot be told apart from tensor types alone, so this picks the mix
    /// llama.cpp recommends for each (`Q4_K` → `Q4_K_M`).
    pub fn from_ggml_type(t: GgmlType) -> Option<Self> {
        Some(match t {
            GgmlType::F32 => FileType::F32,
            GgmlType::F16 => FileType::F16,
            GgmlType::BF16 => FileType::BF16,
            GgmlType::Q4_0 => FileType::Q4_0,
            GgmlType::Q4_1 => FileType::Q4_1,
            GgmlType::Q5_0 => FileType::Q5_0,
            GgmlType::Q5_1 => FileType::Q5_1,
            GgmlType::Q8_0 => FileType::Q8_0,
            GgmlType::Q2_K => FileType::Q2_K,
            GgmlType::Q3_K => FileType::Q3_K_M,
            GgmlType::Q4_K => FileType::Q4_K_M,
            GgmlType::Q5_K => FileType::Q5_K_M,
            GgmlType::Q6_K => FileType::Q6_K,
            GgmlType::IQ2_XXS => FileType::IQ2_XXS,
            GgmlType::IQ2_XS => FileType::IQ2_XS,
            GgmlType::IQ3_XXS => FileType::IQ3_XXS,
            GgmlType::IQ1_S => FileType::IQ1_S,
            GgmlType::IQ4_NL => FileType::IQ4_NL,
            GgmlType::IQ3_S => FileType::IQ3_S,
            GgmlType::IQ2_S => FileType::IQ2_S,
            GgmlType::IQ4_XS => FileType::IQ4_XS,
            GgmlType::IQ1_M => FileType::IQ1_M,
            GgmlType::TQ1_0 => FileType::TQ1_0,
            GgmlType::TQ2_0 => FileType::TQ2_0,
            GgmlType::MXFP4 => FileType::MXFP4,
            GgmlType::Q8_1
            | GgmlType::Q8_K
            | GgmlType::I8
            | GgmlType::I16
            | GgmlType::I32
            | GgmlType::I64
            | GgmlType::F64 => return None,
        })
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of the tensor table, validated against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Sizes in ggml order: `dims[0]` (ne[0]) is the contiguous dimension.
    pub dims: Vec<u64>,
    /// The element encoding.
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section, as stored.
    pub offset: u64,
    /// Offset of the data from the start of the file.
    pub absolute_offset: u64,
    /// Size of the data in bytes.
    pub size: u64,
}

impl TensorInfo {
    /// The number of elements (the product of `dims`).
    pub fn element_count(&self) -> u64 {
        // Checked when read: the product fits in an i64.
        self.dims.iter().fold(1u64, |n, &d| n.saturating_mul(d))
    }
}

/// A parsed GGUF file: its metadata and tensor table. Tensor data stays in
/// the file; [`GgufFile::read_tensor_data`] fetches one tensor's bytes.
#[derive(Debug, Clone)]
pub struct GgufFile {
    version: u32,
    metadata: Vec<(String, Value)>,
    index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    data_offset: u64,
    file_len: u64,
}

impl GgufFile {
    /// Parses the GGUF file of `file_len` bytes that `r` reads, from its
    /// start. Nothing past the tensor table is read. Wrap a `File` in a
    /// `BufReader`: metadata is read a few bytes at a time.
    ///
    /// `file_len` bounds every length in the file; if it overstates the real
    /// length, reading ends with [`GgufError::ShortRead`] and memory stays
    /// bounded by what the file really holds.
    pub fn read<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<GgufFile, GgufError> {
        r.seek(SeekFrom::Start(0))
            .map_err(|source| GgufError::Io { offset: 0, source })?;
        let mut src = Source {
            inner: r,
            pos: 0,
            len: file_len,
        };
        parse(&mut src)
    }

    /// Opens and parses the GGUF file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let open_err = |source| GgufError::Open {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let len = file.metadata().map_err(open_err)?.len();
        GgufFile::read(&mut BufReader::new(file), len)
    }

    /// Parses a GGUF file held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<GgufFile, GgufError> {
        GgufFile::read(&mut io::Cursor::new(bytes), bytes.len() as u64)
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Where the tensor data section starts, from the start of the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The file length the file was checked against.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// All metadata entries, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// The value of a metadata key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index
            .get(key)
            .and_then(|&i| self.metadata.get(i))
            .map(|(_, v)| v)
    }

    /// The value of a string metadata key.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The value of a non-negative integer metadata key, whatever its width.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    /// The tensor table, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Reads one tensor's bytes from the file this was parsed from.
    pub fn read_tensor_data<R: Read + Seek>(
        &self,
        r: &mut R,
        tensor: &TensorInfo,
    ) -> Result<Vec<u8>, GgufError> {
        r.seek(SeekFrom::Start(tensor.absolute_offset))
            .map_err(|source| GgufError::Io {
                offset: tensor.absolute_offset,
                source,
            })?;
        let mut src = Source {
            inner: r,
            pos: tensor.absolute_offset,
            len: self.file_len,
        };
        src.read_vec(tensor.size, &|| format!("data of tensor `{}`", tensor.name))
    }

    /// `general.architecture` (`llama`, `qwen2`).
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// The number of weights: the sum of the tensors' element counts.
    pub fn parameter_count(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0u64, |n, t| n.saturating_add(t.element_count()))
    }

    /// The quantization: `general.file_type` when it names a known type,
    /// else inferred from the tensor type holding most weights.
    pub fn file_type(&self) -> Option<FileType> {
        // llama.cpp ORs in 1024 (LLAMA_FTYPE_GUESSED) when it guessed.
        let declared = self
            .get_u64("general.file_type")
            .and_then(|v| u32::try_from(v & !1024).ok())
            .and_then(FileType::from_u32);
        declared.or_else(|| self.inferred_file_type())
    }

    fn inferred_file_type(&self) -> Option<FileType> {
        // Norms and biases (1-D) stay F32 in quantized models, so only
        // matrices vote, unless there are none.
        let has_matrices = self.tensors.iter().any(|t| t.dims.len() >= 2);
        let mut totals: Vec<(GgmlType, u64)> = Vec::new();
        for t in &self.tensors {
            if has_matrices && t.dims.len() < 2 {
                continue;
            }
            match totals.iter_mut().find(|(ty, _)| *ty == t.ggml_type) {
                Some((_, n)) => *n = n.saturating_add(t.element_count()),
                None => totals.push((t.ggml_type, t.element_count())),
            }
        }
        // Ties go to the lower type id so the answer does not depend on order.
        totals
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .and_then(|(t, _)| FileType::from_ggml_type(t))
    }

    /// `{arch}.context_length`.
    pub fn context_length(&self) -> Option<u64> {
        let arch = self.architecture()?;
        self.get_u64(&format!("{arch}.context_length"))
    }

    /// The Jinja chat template (`tokenizer.chat_template`).
    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
    }

    /// `tokenizer.ggml.model`: `gpt2` for byte-level BPE (Llama 3, Qwen),
    /// `llama` for SentencePiece.
    pub fn tokenizer_model(&self) -> Option<&str> {
        self.get_str("tokenizer.ggml.model")
    }

    /// The parameter count as Ollama prints it (`8.0B`, `494.03M`).
    pub fn human_parameter_size(&self) -> String {
        human_number(self.parameter_count())
    }

    /// `model_info` of Ollama's `/api/show`: every metadata entry but
    /// `general.name` and `tokenizer.chat_template` (shown elsewhere), plus
    /// `general.parameter_count`; non-empty arrays are `null`, as Ollama
    /// sends them unless asked to be verbose.
    pub fn model_info(&self) -> serde_json::Map<String, serde_json::Value> {
        self.model_info_with(false)
    }

    /// [`GgufFile::model_info`] with arrays in full (`"verbose": true`).
    pub fn model_info_verbose(&self) -> serde_json::Map<String, serde_json::Value> {
        self.model_info_with(true)
    }

    fn model_info_with(&self, verbose: bool) -> serde_json::Map<String, serde_json::Value> {
        let mut info = serde_json::Map::new();
        for (key, value) in &self.metadata {
            if key == "general.name" || key == "tokenizer.chat_template" {
                continue;
            }
            let json = match value {
                Value::Array(a) if !verbose && !a.is_empty() => serde_json::Value::Null,
                other => other.to_json(),
            };
            info.insert(key.clone(), json);
        }
        info.insert(
            "general.parameter_count".to_owned(),
            serde_json::Value::from(self.parameter_count()),
        );
        info
    }
}

/// A count as Ollama's `format.HumanNumber` prints it: `8.0B`, `1B`,
/// `494.03M`, `135K`, `999`.
pub fn human_number(n: u64) -> String {
    const THOUSAND: u64 = 1_000;
    const MILLION: u64 = 1_000_000;
    const BILLION: u64 = 1_000_000_000;
    let scaled = |unit: u64| n as f64 / unit as f64;
    if n >= BILLION {
        let x = scaled(BILLION);
        if x == x.floor() {
            format!("{x:.0}B")
        } else {
            format!("{x:.1}B")
        }
    } else if n >= MILLION {
        let x = scaled(MILLION);
        if x == x.floor() {
            format!("{x:.0}M")
        } else {
            format!("{x:.2}M")
        }
    } else if n >= THOUSAND {
        format!("{:.0}K", scaled(THOUSAND))
    } else {
        n.to_string()
    }
}

/// Whether `d` divides `x`. (`u64::is_multiple_of` needs Rust 1.87; the
/// workspace declares 1.85.)
#[allow(clippy::manual_is_multiple_of)]
pub(crate) fn divides(d: u64, x: u64) -> bool {
    d != 0 && x % d == 0
}

/// `x` rounded up to a multiple of `align` (a power of two).
fn align_up(x: u64, align: u64) -> Option<u64> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// The reader with its position and the length every read is checked against.
struct Source<'a, R> {
    inner: &'a mut R,
    pos: u64,
    len: u64,
}

type What<'a> = &'a dyn Fn() -> String;

impl<R: Read> Source<'_, R> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn truncated(&self, needed: u64, what: What<'_>) -> GgufError {
        GgufError::Truncated {
            what: what(),
            offset: self.pos,
            needed,
            file_len: self.len,
        }
    }

    fn read_err(&self, e: io::Error, what: What<'_>) -> GgufError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            GgufError::ShortRead {
                what: what(),
                offset: self.pos,
            }
        } else {
            GgufError::Io {
                offset: self.pos,
                source: e,
            }
        }
    }

    fn fill(&mut self, buf: &mut [u8], what: What<'_>) -> Result<(), GgufError> {
        let n = buf.len() as u64;
        if n > self.remaining() {
            return Err(self.truncated(n, what));
        }
        self.inner
            .read_exact(buf)
            .map_err(|e| self.read_err(e, what))?;
        self.pos += n;
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: What<'_>) -> Result<[u8; N], GgufError> {
        let mut buf = [0u8; N];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    fn u8(&mut self, what: What<'_>) -> Result<u8, GgufError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: What<'_>) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: What<'_>) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Reads `n` bytes, already known to fit in the file, growing the buffer
    /// only as data arrives.
    fn read_vec(&mut self, n: u64, what: What<'_>) -> Result<Vec<u8>, GgufError> {
        if n > self.remaining() {
            return Err(self.truncated(n, what));
        }
        let mut left = usize::try_from(n).map_err(|_| self.truncated(n, what))?;
        let mut out = Vec::with_capacity(left.min(READ_CHUNK));
        while left > 0 {
            let take = left.min(READ_CHUNK);
            let start = out.len();
            out.resize(start + take, 0);
            self.inner
                .read_exact(&mut out[start..])
                .map_err(|e| self.read_err(e, what))?;
            self.pos += take as u64;
            left -= take;
        }
        Ok(out)
    }

    /// Reads a length-prefixed UTF-8 string of at most `max` bytes, charging
    /// it to `budget` before reading it.
    fn string(
        &mut self,
        max: u64,
        budget: &mut Budget,
        what: What<'_>,
    ) -> Result<String, GgufError> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        if len > max {
            return Err(GgufError::StringTooLong {
                what: what(),
                len,
                limit: max,
            });
        }
        budget.charge(len, what)?;
        let bytes = self.read_vec(len, what)?;
        String::from_utf8(bytes).map_err(|_| GgufError::InvalidUtf8 { what: what() })
    }
}

/// Decoded-metadata memory left to spend.
struct Budget {
    left: u64,
}

impl Budget {
    fn charge(&mut self, n: u64, what: What<'_>) -> Result<(), GgufError> {
        match self.left.checked_sub(n) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(GgufError::MetadataTooLarge {
                what: what(),
                limit: METADATA_BUDGET,
            }),
        }
    }
}

fn parse<R: Read>(src: &mut Source<'_, R>) -> Result<GgufFile, GgufError> {
    let magic = src.array::<4>(&|| "magic".to_owned())?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::BadMagic { found: magic });
    }
    let version = src.u32(&|| "version".to_owned())?;
    match version {
        2 | 3 => {}
        // A big-endian writer stores 3 as 00 00 00 03, read here as
        // 0x03000000; llama.cpp's test is the same.
        v if v & 0xffff == 0 && v != 0 => return Err(GgufError::BigEndian { version: v }),
        v => return Err(GgufError::UnsupportedVersion { version: v }),
    }

    let n_tensors = src.u64(&|| "tensor count".to_owned())?;
    let n_kv = src.u64(&|| "metadata entry count".to_owned())?;
    let tensor_limit = MAX_TENSORS.min(src.remaining() / MIN_TENSOR_INFO_BYTES);
    if n_tensors > tensor_limit {
        return Err(GgufError::TooManyTensors {
            count: n_tensors,
            limit: tensor_limit,
        });
    }
    // The tensor infos follow the metadata, so their minimum size is taken off.
    let kv_room = src.remaining() - n_tensors * MIN_TENSOR_INFO_BYTES;
    let kv_limit = MAX_KV.min(kv_room / MIN_KV_BYTES);
    if n_kv > kv_limit {
        return Err(GgufError::TooManyKv {
            count: n_kv,
            limit: kv_limit,
        });
    }

    let mut budget = Budget {
        left: METADATA_BUDGET,
    };
    let mut metadata: Vec<(String, Value)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for i in 0..n_kv {
        let key = src.string(MAX_KEY_LEN, &mut budget, &|| {
            format!("key of metadata entry {i}")
        })?;
        budget.charge(KV_OVERHEAD, &|| format!("key `{key}`"))?;
        if index.contains_key(&key) {
            return Err(GgufError::DuplicateKey { key });
        }
        let type_id = src.u32(&|| format!("value type of `{key}`"))?;
        let ty = ValueType::from_u32(type_id).ok_or_else(|| GgufError::UnknownValueType {
            key: key.clone(),
            type_id,
        })?;
        let value = read_value(src, &key, ty, &mut budget)?;
        index.insert(key.clone(), metadata.len());
        metadata.push((key, value));
    }

    let alignment = match index
        .get("general.alignment")
        .and_then(|&i| metadata.get(i))
    {
        None => DEFAULT_ALIGNMENT,
        Some((_, Value::U32(a))) => {
            let a = u64::from(*a);
            if !a.is_power_of_two() || a > MAX_ALIGNMENT {
                return Err(GgufError::BadAlignment {
                    value: a,
                    max: MAX_ALIGNMENT,
                });
            }
            a
        }
        Some((key, other)) => {
            return Err(GgufError::WrongValueType {
                key: key.clone(),
                expected: ValueType::U32.name(),
                found: other.value_type().name(),
            })
        }
    };

    let mut tensors = Vec::with_capacity(usize::try_from(n_tensors.min(4096)).unwrap_or(0));
    let mut names: HashSet<String> = HashSet::new();
    for i in 0..n_tensors {
        let info = read_tensor_info(src, i, &mut budget)?;
        if !names.insert(info.name.clone()) {
            return Err(GgufError::DuplicateTensor { tensor: info.name });
        }
        tensors.push(info);
    }

    let data_offset = align_up(src.pos, alignment).ok_or_else(|| GgufError::OffsetOverflow {
        tensor: "(data section)".to_owned(),
    })?;
    place_tensors(&mut tensors, data_offset, alignment, src.len)?;

    Ok(GgufFile {
        version,
        metadata,
        index,
        tensors,
        alignment,
        data_offset,
        file_len: src.len,
    })
}

fn read_value<R: Read>(
    src: &mut Source<'_, R>,
    key: &str,
    ty: ValueType,
    budget: &mut Budget,
) -> Result<Value, GgufError> {
    let what = || format!("value of `{key}`");
    Ok(match ty {
        ValueType::U8 => Value::U8(src.u8(&what)?),
        ValueType::I8 => Value::I8(i8::from_le_bytes(src.array(&what)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(src.array(&what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(src.array(&what)?)),
        ValueType::U32 => Value::U32(src.u32(&what)?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(src.array(&what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(src.array(&what)?)),
        ValueType::Bool => Value::Bool(read_bool(src.u8(&what)?, key)?),
        ValueType::String => Value::String(src.string(MAX_STRING_LEN, budget, &what)?),
        ValueType::Array => Value::Array(read_array(src, key, 1, budget)?),
        ValueType::U64 => Value::U64(src.u64(&what)?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(src.array(&what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(src.array(&what)?)),
    })
}

fn read_bool(byte: u8, key: &str) -> Result<bool, GgufError> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        byte => Err(GgufError::InvalidBool {
            key: key.to_owned(),
            byte,
        }),
    }
}

/// Decodes fixed-size little-endian elements from `bytes`.
fn decode<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

fn read_array<R: Read>(
    src: &mut Source<'_, R>,
    key: &str,
    depth: u32,
    budget: &mut Budget,
) -> Result<Array, GgufError> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufError::ArrayTooDeep {
            key: key.to_owned(),
            depth,
            limit: MAX_ARRAY_DEPTH,
        });
    }
    let type_id = src.u32(&|| format!("element type of array `{key}`"))?;
    let ty = ValueType::from_u32(type_id).ok_or_else(|| GgufError::UnknownValueType {
        key: key.to_owned(),
        type_id,
    })?;
    let count = src.u64(&|| format!("length of array `{key}`"))?;
    let limit = src.remaining() / ty.min_encoded_size();
    if count > limit {
        return Err(GgufError::ArrayTooLong {
            key: key.to_owned(),
            count,
            limit,
        });
    }
    let what = || format!("elements of array `{key}`");
    // Charged before anything is allocated; `count` fits in the file, so
    // the product only overflows for a file length near 2^64.
    let decoded = count.saturating_mul(ty.decoded_size());
    budget.charge(decoded, &|| format!("array `{key}`"))?;

    let fixed = |src: &mut Source<'_, R>| -> Result<Vec<u8>, GgufError> {
        let size = ty.fixed_size().unwrap_or(1);
        src.read_vec(count * size, &what)
    };
    Ok(match ty {
        ValueType::U8 => Array::U8(fixed(src)?),
        ValueType::I8 => Array::I8(decode(&fixed(src)?, i8::from_le_bytes)),
        ValueType::U16 => Array::U16(decode(&fixed(src)?, u16::from_le_bytes)),
        ValueType::I16 => Array::I16(decode(&fixed(src)?, i16::from_le_bytes)),
        ValueType::U32 => Array::U32(decode(&fixed(src)?, u32::from_le_bytes)),
        ValueType::I32 => Array::I32(decode(&fixed(src)?, i32::from_le_bytes)),
        ValueType::F32 => Array::F32(decode(&fixed(src)?, f32::from_le_bytes)),
        ValueType::U64 => Array::U64(decode(&fixed(src)?, u64::from_le_bytes)),
        ValueType::I64 => Array::I64(decode(&fixed(src)?, i64::from_le_bytes)),
        ValueType::F64 => Array::F64(decode(&fixed(src)?, f64::from_le_bytes)),
        ValueType::Bool => Array::Bool(
            fixed(src)?
                .into_iter()
                .map(|b| read_bool(b, key))
                .collect::<Result<_, _>>()?,
        ),
        ValueType::String => {
            let mut items = Vec::with_capacity(capacity_hint(count));
            for i in 0..count {
                items.push(src.string(MAX_STRING_LEN, budget, &|| {
                    format!("element {i} of array `{key}`")
                })?);
            }
            Array::String(items)
        }
        ValueType::Array => {
            let mut items = Vec::with_capacity(capacity_hint(count));
            for _ in 0..count {
                items.push(read_array(src, key, depth + 1, budget)?);
            }
            Array::Array(items)
        }
    })
}

/// Capacity to reserve for `count` elements parsed one by one: the count is
/// already checked against the file, but the file may still be short.
fn capacity_hint(count: u64) -> usize {
    usize::try_from(count.min(1 << 16)).unwrap_or(0)
}

fn read_tensor_info<R: Read>(
    src: &mut Source<'_, R>,
    i: u64,
    budget: &mut Budget,
) -> Result<TensorInfo, GgufError> {
    let name = src.string(MAX_TENSOR_NAME_LEN, budget, &|| {
        format!("name of tensor {i}")
    })?;
    let n_dims = src.u32(&|| format!("dimension count of tensor `{name}`"))?;
    let n_dims = usize::try_from(n_dims)
        .ok()
        .filter(|&n| n <= MAX_DIMS)
        .ok_or_else(|| GgufError::TooManyDims {
            tensor: name.clone(),
            n_dims: u64::from(n_dims),
            max: MAX_DIMS,
        })?;
    let mut dims = Vec::with_capacity(n_dims);
    for index in 0..n_dims {
        let d = src.u64(&|| format!("dimension {index} of tensor `{name}`"))?;
        if d == 0 {
            return Err(GgufError::ZeroDim {
                tensor: name,
                index,
            });
        }
        dims.push(d);
    }
    let type_id = src.u32(&|| format!("type of tensor `{name}`"))?;
    let offset = src.u64(&|| format!("offset of tensor `{name}`"))?;
    let ggml_type = GgmlType::from_u32(type_id).ok_or_else(|| GgufError::UnknownGgmlType {
        tensor: name.clone(),
        type_id,
    })?;
    let elements = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS);
    let Some(elements) = elements else {
        return Err(GgufError::ElementCountOverflow { tensor: name, dims });
    };
    let ne0 = dims.first().copied().unwrap_or(1);
    if !divides(ggml_type.block_size(), ne0) {
        return Err(GgufError::NotBlockMultiple {
            tensor: name,
            ne0,
            ggml_type,
            block_size: ggml_type.block_size(),
        });
    }
    let Some(size) = ggml_type.byte_size(elements) else {
        return Err(GgufError::ElementCountOverflow { tensor: name, dims });
    };
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        absolute_offset: 0,
        size,
    })
}

/// Checks each tensor's data lies aligned inside the file and apart from
/// the others, and fills in `absolute_offset`.
fn place_tensors(
    tensors: &mut [TensorInfo],
    data_offset: u64,
    alignment: u64,
    file_len: u64,
) -> Result<(), GgufError> {
    for t in tensors.iter_mut() {
        if !divides(alignment, t.offset) {
            return Err(GgufError::MisalignedTensor {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let start = data_offset.checked_add(t.offset);
        let Some((start, end)) = start.and_then(|s| Some((s, s.checked_add(t.size)?))) else {
            return Err(GgufError::OffsetOverflow {
                tensor: t.name.clone(),
            });
        };
        if end > file_len {
            return Err(GgufError::TensorPastEnd {
                tensor: t.name.clone(),
                end,
                file_len,
            });
        }
        t.absolute_offset = start;
    }
    let mut order: Vec<&TensorInfo> = tensors.iter().collect();
    order.sort_by_key(|t| t.absolute_offset);
    for pair in order.windows(2) {
        if let [a, b] = pair {
            // Sizes are non-zero (no zero dims), so touching is not overlapping.
            if b.absolute_offset < a.absolute_offset + a.size {
                return Err(GgufError::OverlappingTensors {
                    first: a.name.clone(),
                    second: b.name.clone(),
                    offset: b.absolute_offset,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::writer::{encode_f32, GgufWriter};
    use super::*;

    /// Raw little-endian bytes, for hand-made and broken files.
    struct Raw(Vec<u8>);

    impl Raw {
        fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
            let mut r = Raw(GGUF_MAGIC.to_vec());
            r.u32(version).u64(n_tensors).u64(n_kv);
            r
        }

        fn u32(&mut self, v: u32) -> &mut Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }

        fn u64(&mut self, v: u64) -> &mut Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }

        fn bytes(&mut self, b: &[u8]) -> &mut Self {
            self.0.extend_from_slice(b);
            self
        }

        fn str(&mut self, s: &str) -> &mut Self {
            self.u64(s.len() as u64).bytes(s.as_bytes())
        }

        fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
            self.str(key).u32(ValueType::U32.id()).u32(v)
        }

        fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
            self.str(name).u32(dims.len() as u32);
            for &d in dims {
                self.u64(d);
            }
            self.u32(ty).u64(offset)
        }

        fn pad(&mut self, align: usize) -> &mut Self {
            while !divides(align as u64, self.0.len() as u64) {
                self.0.push(0);
            }
            self
        }

        fn zeros(&mut self, n: usize) -> &mut Self {
            self.0.resize(self.0.len() + n, 0);
            self
        }

        fn parse(&self) -> Result<GgufFile, GgufError> {
            GgufFile::from_bytes(&self.0)
        }
    }

    fn values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect()
    }

    /// A file holding every value type and several tensor types.
    fn sample() -> (GgufWriter, Vec<(String, Value)>) {
        let entries: Vec<(String, Value)> = vec![
            ("general.architecture".into(), "llama".into()),
            ("general.name".into(), "sample".into()),
            ("llama.context_length".into(), 4096u32.into()),
            ("v.u8".into(), 7u8.into()),
            ("v.i8".into(), (-3i8).into()),
            ("v.u16".into(), u16::MAX.into()),
            ("v.i16".into(), i16::MIN.into()),
            ("v.u32".into(), 123_456u32.into()),
            ("v.i32".into(), (-123_456i32).into()),
            ("v.f32".into(), 1e-5f32.into()),
            ("v.bool".into(), true.into()),
            ("v.string".into(), "héllo\nwörld".into()),
            ("v.u64".into(), u64::MAX.into()),
            ("v.i64".into(), i64::MIN.into()),
            ("v.f64".into(), (-2.25f64).into()),
            ("a.u8".into(), vec![1u8, 2, 255].into()),
            ("a.i8".into(), vec![-1i8, 0, 1].into()),
            ("a.u16".into(), vec![1u16, 65535].into()),
            ("a.i16".into(), vec![-2i16, 2].into()),
            ("a.u32".into(), vec![3u32, 4].into()),
            ("a.i32".into(), vec![-5i32, 5].into()),
            ("a.f32".into(), vec![0.5f32, -0.25].into()),
            ("a.bool".into(), vec![true, false, true].into()),
            ("a.string".into(), vec!["a", "", "ü Ġ"].into()),
            ("a.u64".into(), vec![u64::MAX, 0].into()),
            ("a.i64".into(), vec![i64::MIN, i64::MAX].into()),
            ("a.f64".into(), vec![1.0f64, f64::MIN_POSITIVE].into()),
            ("a.empty".into(), Array::F32(vec![]).into()),
            (
                "a.nested".into(),
                vec![Array::U32(vec![1, 2]), Array::String(vec!["x".into()])].into(),
            ),
            (
                "a.nested3".into(),
                vec![Array::Array(vec![Array::I8(vec![1, 2, 3])])].into(),
            ),
        ];
        let mut w = GgufWriter::new();
        for (k, v) in &entries {
            w.add_kv(k.clone(), v.clone()).unwrap();
        }
        w.add_tensor_f32("t.f32", &[4, 2], GgmlType::F32, &values(8))
            .unwrap();
        w.add_tensor_f32("t.f16", &[5], GgmlType::F16, &values(5))
            .unwrap();
        w.add_tensor_f32("t.q8", &[32, 2], GgmlType::Q8_0, &values(64))
            .unwrap();
        w.add_tensor_f32("t.q4", &[64], GgmlType::Q4_0, &values(64))
            .unwrap();
        w.add_tensor_f32("t.bf16", &[3, 1, 1, 2], GgmlType::BF16, &values(6))
            .unwrap();
        w.add_tensor("t.q6k", &[256], GgmlType::Q6_K, vec![9u8; 210])
            .unwrap();
        (w, entries)
    }

    #[test]
    fn round_trips_every_value_type_and_tensor() {
        let (w, entries) = sample();
        let bytes = w.to_bytes();
        let f = GgufFile::from_bytes(&bytes).unwrap();
        assert_eq!(f.version(), 3);
        assert_eq!(f.alignment(), 32);
        assert_eq!(f.metadata(), entries.as_slice());
        for (k, v) in &entries {
            assert_eq!(f.get(k), Some(v), "{k}");
        }
        assert_eq!(f.data_offset() % 32, 0);

        let expected = [
            ("t.f32", vec![4, 2], GgmlType::F32, 32),
            ("t.f16", vec![5], GgmlType::F16, 10),
            ("t.q8", vec![32, 2], GgmlType::Q8_0, 68),
            ("t.q4", vec![64], GgmlType::Q4_0, 36),
            ("t.bf16", vec![3, 1, 1, 2], GgmlType::BF16, 12),
            ("t.q6k", vec![256], GgmlType::Q6_K, 210),
        ];
        assert_eq!(f.tensors().len(), expected.len());
        let mut cursor = io::Cursor::new(&bytes);
        for (t, (name, dims, ty, size)) in f.tensors().iter().zip(expected) {
            assert_eq!(t.name, name);
            assert_eq!(t.dims, dims);
            assert_eq!(t.ggml_type, ty);
            assert_eq!(t.size, size);
            assert_eq!(t.offset % 32, 0);
            assert_eq!(t.absolute_offset, f.data_offset() + t.offset);
            let data = f.read_tensor_data(&mut cursor, t).unwrap();
            let n = t.element_count() as usize;
            let want = match ty {
                GgmlType::Q6_K => vec![9u8; 210],
                ty => encode_f32(&values(n), ty).unwrap(),
            };
            assert_eq!(data, want, "{name}");
        }
        assert_eq!(f.parameter_count(), 8 + 5 + 64 + 64 + 6 + 256);
    }

    #[test]
    fn reads_version_2_and_custom_alignment() {
        let (mut w, _) = sample();
        w.add_kv("general.alignment", 64u32).unwrap();
        let mut bytes = w.to_bytes();
        let f = GgufFile::from_bytes(&bytes).unwrap();
        assert_eq!(f.alignment(), 64);
        assert_eq!(f.data_offset() % 64, 0);
        assert!(f.tensors().iter().all(|t| t.absolute_offset % 64 == 0));

        bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(GgufFile::from_bytes(&bytes).unwrap().version(), 2);
    }

    #[test]
    fn opens_a_file_on_disk() {
        let (w, _) = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, w.to_bytes()).unwrap();
        let f = GgufFile::open(&path).unwrap();
        assert_eq!(f.architecture(), Some("llama"));
        let missing = GgufFile::open(dir.path().join("missing.gguf")).unwrap_err();
        assert!(matches!(missing, GgufError::Open { .. }), "{missing}");
        assert!(missing.to_string().contains("missing.gguf"));
    }

    #[test]
    fn summary_reads_the_metadata() {
        let (w, _) = sample();
        let f = GgufFile::from_bytes(&w.to_bytes()).unwrap();
        assert_eq!(f.architecture(), Some("llama"));
        assert_eq!(f.context_length(), Some(4096));
        assert_eq!(f.chat_template(), None);
        assert_eq!(f.tokenizer_model(), None);
        assert_eq!(f.human_parameter_size(), "403");

        let info = f.model_info();
        assert!(!info.contains_key("general.name"));
        assert_eq!(info["general.architecture"], "llama");
        assert_eq!(info["general.parameter_count"], 403);
        assert_eq!(info["v.f32"], serde_json::json!(1e-5));
        assert_eq!(info["v.u64"], serde_json::json!(u64::MAX));
        assert_eq!(info["a.string"], serde_json::Value::Null);
        assert_eq!(info["a.empty"], serde_json::json!([]));
        let verbose = f.model_info_verbose();
        assert_eq!(verbose["a.string"], serde_json::json!(["a", "", "ü Ġ"]));
        assert_eq!(verbose["a.nested"], serde_json::json!([[1, 2], ["x"]]));
        assert_eq!(verbose["a.f32"], serde_json::json!([0.5, -0.25]));
    }

    #[test]
    fn file_type_comes_from_metadata_or_the_weights() {
        let (w, _) = sample();
        let f = GgufFile::from_bytes(&w.to_bytes()).unwrap();
        // Matrices: t.f32 (8 elements), t.q8 (64), t.bf16 (6) vote; Q8_0 wins.
        assert_eq!(f.file_type(), Some(FileType::Q8_0));

        for (declared, want) in [
            (15u32, "Q4_K_M"),
            (7 | 1024, "Q8_0"),
            (2, "Q4_0"),
            (32, "BF16"),
            (999, "Q8_0"),
        ] {
            let (mut w, _) = sample();
            w.add_kv("general.file_type", declared).unwrap();
            let f = GgufFile::from_bytes(&w.to_bytes()).unwrap();
            assert_eq!(f.file_type().map(FileType::name), Some(want));
        }

        let mut w = GgufWriter::new();
        w.add_tensor_f32("norm", &[4], GgmlType::F32, &values(4))
            .unwrap();
        let f = GgufFile::from_bytes(&w.to_bytes()).unwrap();
        assert_eq!(f.file_type(), Some(FileType::F32));
        assert_eq!(
            GgufFile::from_bytes(&GgufWriter::new().to_bytes())
                .unwrap()
                .file_type(),
            None
        );
    }

    #[test]
    fn file_type_names_match_llama_cpp() {
        let names: Vec<(u32, &str)> = (0..40)
            .filter_map(|i| FileType::from_u32(i).map(|t| (t.as_u32(), t.name())))
            .collect();
        assert!(names.contains(&(15, "Q4_K_M")));
        assert!(names.contains(&(18, "Q6_K")));
        assert!(names.contains(&(30, "IQ4_XS")));
        assert!(FileType::from_u32(5).is_none());
        for (id, name) in names {
            assert_eq!(FileType::from_u32(id).unwrap().to_string(), name);
        }
    }

    #[test]
    fn ggml_type_table_is_consistent() {
        for &t in GgmlType::ALL {
            assert_eq!(GgmlType::from_u32(t.id()), Some(t));
            assert!(t.block_size() > 0 && t.type_size() > 0);
        }
        for retired in [4, 5, 31, 32, 33, 36, 37, 38, 40, 1000] {
            assert_eq!(GgmlType::from_u32(retired), None);
        }
        assert_eq!(
            GgmlType::Q4_K.byte_size(4096 * 4096),
            Some(4096 * 4096 / 256 * 144)
        );
        assert_eq!(GgmlType::Q8_0.byte_size(33), None);
    }

    #[test]
    fn human_number_matches_ollama() {
        for (n, want) in [
            (8_030_261_248, "8.0B"),
            (1_235_814_400, "1.2B"),
            (70_553_706_496, "70.6B"),
            (1_000_000_000, "1B"),
            (494_032_768, "494.03M"),
            (7_000_000, "7M"),
            (135_000, "135K"),
            (1_500, "2K"),
            (999, "999"),
            (0, "0"),
        ] {
            assert_eq!(human_number(n), want, "{n}");
        }
    }

    #[test]
    fn rejects_bad_magic_and_versions() {
        let mut bad = Raw::header(3, 0, 0);
        bad.0[..4].copy_from_slice(b"GGML");
        let err = bad.parse().unwrap_err();
        assert!(
            matches!(err, GgufError::BadMagic { found } if &found == b"GGML"),
            "{err}"
        );
        assert!(err.to_string().contains("GGML"));

        for version in [0, 1, 4, 99] {
            let err = Raw::header(version, 0, 0).parse().unwrap_err();
            assert!(
                matches!(err, GgufError::UnsupportedVersion { version: v } if v == version),
                "{err}"
            );
        }
        let err = Raw::header(3u32.swap_bytes(), 0, 0).parse().unwrap_err();
        assert!(matches!(err, GgufError::BigEndian { .. }), "{err}");

        assert!(Raw::header(3, 0, 0).parse().is_ok());
        assert!(matches!(
            GgufFile::from_bytes(b"GG").unwrap_err(),
            GgufError::Truncated { .. }
        ));
    }

    #[test]
    fn rejects_huge_counts_and_lengths() {
        let huge = 1u64 << 40;
        let err = Raw::header(3, huge, 0).parse().unwrap_err();
        assert!(
            matches!(err, GgufError::TooManyTensors { count, .. } if count == huge),
            "{err}"
        );
        let err = Raw::header(3, 0, huge).parse().unwrap_err();
        assert!(
            matches!(err, GgufError::TooManyKv { count, .. } if count == huge),
            "{err}"
        );

        // A key claiming 2^40 bytes.
        let mut r = Raw::header(3, 0, 1);
        r.u64(huge).zeros(64);
        let err = r.parse().unwrap_err();
        assert!(
            matches!(err, GgufError::StringTooLong { len, .. } if len == huge),
            "{err}"
        );

        // A string value claiming 2^40 bytes.
        let mut r = Raw::header(3, 0, 1);
        r.str("k").u32(ValueType::String.id()).u64(huge).zeros(64);
        let err = r.parse().unwrap_err();
        assert!(
            matches!(err, GgufError::StringTooLong { len, .. } if len == huge),
            "{err}"
        );

        // A string value longer than the rest of the file.
        let mut r = Raw::header(3, 0, 1);
        r.str("k").u32(ValueType::String.id()).u64(1000).zeros(10);
        let err = r.parse().unwrap_err();
        assert!(
            matches!(err, GgufError::Truncated { needed: 1000, .. }),
            "{err}"
        );

        // Arrays claiming 2^40 elements, of numbers and of strings.
        for ty in [ValueType::U8, ValueType::String, ValueType::Array] {
            let mut r = Raw::header(3, 0, 1);
            r.str("k")
                .u32(ValueType::Array.id())
                .u32(ty.id())
                .u64(huge)
                .zeros(64);
            let err = r.parse().unwrap_err();
            assert!(
                matches!(err, GgufError::ArrayTooLong { count, .. } if count == huge),
                "{err}"
            );
        }
    }

    #[test]
    fn a_lying_file_length_fails_without_allocating_it() {
        // Every length fits the claimed 2^50 bytes; the data is not there.
        let claimed = 1u64 << 50;
        let mut r = Raw::header(3, 0, 1);
        r.str("k")
            .u32(ValueType::String.id())
            .u64(60 << 20)
            .zeros(16);
        let err = GgufFile::read(&mut io::Cursor::new(&r.0), claimed).unwrap_err();
        assert!(matches!(err, GgufError::ShortRead { .. }), "{err}");

        let mut r = Raw::header(3, 0, 1);
        r.str("k")
            .u32(ValueType::Array.id())
            .u32(ValueType::U8.id())
            .u64(1 << 40);
        let err = GgufFile::read(&mut io::Cursor::new(&r.0), claimed).unwrap_err();
        assert!(matches!(err, GgufError::MetadataTooLarge { .. }), "{err}");

        let r = Raw::header(3, MAX_TENSORS, MAX_KV);
        let err = GgufFile::read(&mut io::Cursor::new(&r.0), claimed).unwrap_err();
        assert!(matches!(err, GgufError::ShortRead { .. }), "{err}");
    }

    #[test]
    fn rejects_bad_metadata() {
        let mut r = Raw::header(3, 0, 1);
        r.str("k").u32(13).u32(0);
        let err = r.parse().unwrap_err();
        assert!(
            matches!(err, GgufError::UnknownValueType { type_id: 13, .. }),
            "{err}"
        );

        let mut r = Raw::header(3, 0, 1);
        r.str("k").u32(ValueType::Bool.id()).bytes(&[2]);
        let err = r.parse().unwrap_err();
        assert!(
            matches!(err, GgufError::InvalidBool { byte: 2, .. }),
            "{err}"
        );

        let mut r = Raw::header(3, 0, 1);
        r.u64(2)
            .bytes(&[0xff, 0xfe])
            .u32(ValueType::U8.id())
            .bytes(&[0]);
        let err = r.parse().unwrap_err();
        assert!(matches!(err, GgufError::InvalidUtf8 { .. }), "{err}");

        let mut r = Raw::header(3, 0, 2);
        r.kv_u32("k", 1).kv_u32("k", 2);
        let err = r.parse().unwrap_err();
        assert!(
            matches!(&err, GgufError::DuplicateKey { key } if key == "k"),
            "{err}"
        );

        // Arrays of arrays of arrays of arrays: one level too deep.
        let mut r = Raw::header(3, 0, 1);
        r.str("deep").u32(ValueType::Array.id());
        for _ in 0..MAX_ARRAY_DEPTH {
            r.u32(ValueType::Array.id()).u64(1);
        }
        r.u32(ValueType::U8.id()).u64(1).bytes(&[1]);
        let err = r.parse().unwrap_err();
        assert!(
            matches!(err, GgufError::ArrayTooDeep { depth, .. } if depth == MAX_ARRAY_DEPTH + 1),
            "{err}"
        );
        // One level less is fine.
        let mut r = Raw::header(3, 0, 1);
        r.str("deep").u32(ValueType::Array.id());
        for _ in 1..MAX_ARRAY_DEPTH {
            r.u32(ValueType::Array.id()).u64(1);
        }
        r.u32(ValueType::U8.id()).u64(1).bytes(&[1]);
        assert!(r.parse().is_ok());
    }

    #[test]
    fn rejects_bad_alignment() {
        for a in [0u32, 3, 48, 1 << 20] {
            let mut r = Raw::header(3, 0, 1);
            r.kv_u32("general.alignment", a);
            let err = r.parse().unwrap_err();
            assert!(
                matches!(err, GgufError::BadAlignment { value, .. } if value == u64::from(a)),
                "{err}"
            );
        }
        let mut r = Raw::header(3, 0, 1);
        r.str("general.alignment").u32(ValueType::U64.id()).u64(32);
        let err = r.parse().unwrap_err();
        assert!(
            matches!(
                err,
                GgufError::WrongValueType {
                    found: "uint64",
                    ..
                }
            ),
            "{err}"
        );
    }

    /// One F32 tensor of `dims` at `offset`, with `data` bytes after the table.
    fn one_tensor(dims: &[u64], ty: u32, offset: u64, data: usize) -> Raw {
        let mut r = Raw::header(3, 1, 0);
        r.tensor("w", dims, ty, offset).pad(32).zeros(data);
        r
    }

    #[test]
    fn rejects_bad_tensors() {
        assert!(one_tensor(&[4], 0, 0, 16).parse().is_ok());

        let err = one_tensor(&[4], 0, 0, 15).parse().unwrap_err();
        assert!(matches!(err, GgufError::TensorPastEnd { .. }), "{err}");
        assert!(
            err.to_string().contains("tensor `w` data ends at byte"),
            "{err}"
        );

        let err = one_tensor(&[4], 0, 1 << 20, 16).parse().unwrap_err();
        assert!(matches!(err, GgufError::TensorPastEnd { .. }), "{err}");

        let err = one_tensor(&[4], 0, u64::MAX - 31, 16).parse().unwrap_err();
        assert!(matches!(err, GgufError::OffsetOverflow { .. }), "{err}");

        let err = one_tensor(&[4], 0, 8, 64).parse().unwrap_err();
        assert!(
            matches!(err, GgufError::MisalignedTensor { offset: 8, .. }),
            "{err}"
        );

        for ty in [4, 5, 31, 38, 40, u32::MAX] {
            let err = one_tensor(&[4], ty, 0, 16).parse().unwrap_err();
            assert!(
                matches!(err, GgufError::UnknownGgmlType { type_id, .. } if type_id == ty),
                "{err}"
            );
        }

        let err = one_tensor(&[4, 0], 0, 0, 16).parse().unwrap_err();
        assert!(matches!(err, GgufError::ZeroDim { index: 1, .. }), "{err}");

        let err = one_tensor(&[1, 1, 1, 1, 1], 0, 0, 16).parse().unwrap_err();
        assert!(
            matches!(err, GgufError::TooManyDims { n_dims: 5, .. }),
            "{err}"
        );

        let err = one_tensor(&[1 << 32, 1 << 32, 1 << 32], 0, 0, 16)
            .parse()
            .unwrap_err();
        assert!(
            matches!(err, GgufError::ElementCountOverflow { .. }),
            "{err}"
        );
        // Elements fit an i64 but the bytes do not fit a u64.
        let err = one_tensor(&[1 << 62], 0, 0, 16).parse().unwrap_err();
        assert!(
            matches!(err, GgufError::ElementCountOverflow { .. }),
            "{err}"
        );

        let err = one_tensor(&[33], GgmlType::Q8_0.id(), 0, 64)
            .parse()
            .unwrap_err();
        assert!(
            matches!(err, GgufError::NotBlockMultiple { ne0: 33, .. }),
            "{err}"
        );

        let mut r = Raw::header(3, 2, 0);
        r.tensor("a", &[16], 0, 0)
            .tensor("b", &[16], 0, 32)
            .pad(32)
            .zeros(128);
        let err = r.parse().unwrap_err();
        assert!(
            matches!(&err, GgufError::OverlappingTensors { first, second, .. } if first == "a" && second == "b"),
            "{err}"
        );

        let mut r = Raw::header(3, 2, 0);
        r.tensor("a", &[8], 0, 0)
            .tensor("a", &[8], 0, 32)
            .pad(32)
            .zeros(128);
        let err = r.parse().unwrap_err();
        assert!(matches!(err, GgufError::DuplicateTensor { .. }), "{err}");

        // Out-of-order but disjoint tensors are fine.
        let mut r = Raw::header(3, 2, 0);
        r.tensor("a", &[8], 0, 32)
            .tensor("b", &[8], 0, 0)
            .pad(32)
            .zeros(64);
        assert!(r.parse().is_ok());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let (w, _) = sample();
        let bytes = w.to_bytes();
        let full = GgufFile::from_bytes(&bytes).unwrap();
        let data_end = full
            .tensors()
            .iter()
            .map(|t| t.absolute_offset + t.size)
            .max()
            .unwrap();
        for len in 0..bytes.len() {
            let result = GgufFile::from_bytes(&bytes[..len]);
            if (len as u64) < data_end {
                assert!(result.is_err(), "prefix of {len} bytes parsed");
            } else {
                // Only the last tensor's padding is missing.
                assert!(result.is_ok(), "prefix of {len} bytes failed");
            }
        }
    }

    /// xorshift64*, for the mutation loop.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn exercise(f: &GgufFile) {
        let _ = (f.architecture(), f.parameter_count(), f.file_type());
        let _ = (f.context_length(), f.chat_template(), f.tokenizer_model());
        let _ = (
            f.human_parameter_size(),
            f.model_info(),
            f.model_info_verbose(),
        );
    }

    #[test]
    fn mutated_files_never_panic() {
        let spec = tiny::TinyLlamaSpec {
            n_layer: 1,
            ftype: FileType::Q8_0,
            ..Default::default()
        };
        let files = [
            sample().0.to_bytes(),
            tiny::tiny_llama_bytes(&spec).unwrap(),
        ];
        let interesting = [0, 1, 31, 32, 1 << 31, 1 << 40, u64::MAX, u64::MAX / 2];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for (n, original) in files.iter().enumerate() {
            let header_len = GgufFile::from_bytes(original).unwrap().data_offset() as usize;
            let mut bytes = original.clone();
            for _ in 0..3000 {
                let mut touched = Vec::new();
                for _ in 0..1 + rng.below(4) {
                    // Mostly the header and metadata, where the parser looks.
                    let limit = if rng.below(10) == 0 {
                        bytes.len()
                    } else {
                        header_len
                    };
                    let at = rng.below(limit);
                    if rng.below(4) == 0 && at + 8 <= bytes.len() {
                        let v = interesting[rng.below(interesting.len())];
                        touched.push((at, 8));
                        bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
                    } else {
                        touched.push((at, 1));
                        bytes[at] ^= 1 << rng.below(8);
                    }
                }
                if let Ok(f) = GgufFile::from_bytes(&bytes) {
                    parsed += 1;
                    exercise(&f);
                }
                for (at, len) in touched.into_iter().rev() {
                    bytes[at..at + len].copy_from_slice(&original[at..at + len]);
                }
            }
            assert_eq!(&bytes, original, "file {n} restored");
        }
        // Some mutations (in tensor data, in values) keep the file valid.
        assert!(parsed > 0);
    }
}
