//! The hardened reader: the header, the metadata and the tensor table of a
//! GGUF file.
//!
//! A GGUF file comes from the network, so every count, length and offset is
//! checked against the bytes left in the file and against fixed limits
//! before anything is allocated, and all arithmetic on them is checked: a
//! hostile file gives a [`GgufError`], never a panic or a huge allocation.
//! Every tensor of the table is checked to lie, aligned and whole, inside
//! the file and apart from the others, so its bytes can be sliced out of a
//! mapping without further checks.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::GgufError;
use crate::types::{divides, GgmlType};
use crate::value::{Array, Value, ValueType};

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
    /// Tensor name → position in `tensors`: the runner looks up hundreds.
    tensor_index: HashMap<String, usize>,
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
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
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
    let mut tensor_index: HashMap<String, usize> = HashMap::new();
    for i in 0..n_tensors {
        let info = read_tensor_info(src, i, &mut budget)?;
        if tensor_index.contains_key(&info.name) {
            return Err(GgufError::DuplicateTensor { tensor: info.name });
        }
        tensor_index.insert(info.name.clone(), tensors.len());
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
        tensor_index,
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
mod tests;
