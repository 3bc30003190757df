//! GGUF v3 writer: metadata, the tensor table and aligned tensor data, plus
//! the f16 / bf16 / Q8_0 / Q4_0 encoders that tests and tiny models need.
//!
//! The quantizers follow ggml's `quantize_row_q8_0_ref` and
//! `quantize_row_q4_0_ref` bit for bit, so that files written here load in
//! llama.cpp with the same weights. Q4_K and Q6_K ([`kquant`]) have
//! ggml's layouts with a simpler choice of scales.

pub mod kquant;

use std::collections::HashSet;
use std::io::{self, Write};

use super::{
    divides, Array, GgmlType, GgufError, Value, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ALIGNMENT,
    MAX_ARRAY_DEPTH, MAX_DIMS, MAX_KEY_LEN, MAX_TENSOR_NAME_LEN,
};

/// The GGUF version written.
pub const GGUF_VERSION: u32 = 3;

/// Elements per Q8_0 / Q4_0 block.
pub const QK: usize = 32;

/// A GGUF file under construction, kept in memory until [`GgufWriter::write_to`].
#[derive(Debug, Clone)]
pub struct GgufWriter {
    alignment: u64,
    metadata: Vec<(String, Value)>,
    keys: HashSet<String>,
    tensors: Vec<PendingTensor>,
    names: HashSet<String>,
}

#[derive(Debug, Clone)]
struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    data: Vec<u8>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

impl GgufWriter {
    /// An empty file with the default alignment of 32.
    pub fn new() -> Self {
        GgufWriter {
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            keys: HashSet::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
        }
    }

    /// The data alignment that will be used.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Replaces the value of metadata entry `key` (added before), keeping
    /// its place: for tests that make a header disagree with its tensors.
    /// Whether there was such an entry.
    pub fn set_kv(&mut self, key: &str, value: impl Into<Value>) -> bool {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => {
                entry.1 = value.into();
                true
            }
            None => false,
        }
    }

    /// Adds a metadata entry. Entries are written in the order added.
    /// `general.alignment` must be a u32 power of two and sets the alignment.
    pub fn add_kv(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> Result<(), GgufError> {
        let key = key.into();
        let value = value.into();
        if key.len() as u64 > MAX_KEY_LEN {
            return Err(GgufError::StringTooLong {
                what: format!("key `{key}`"),
                len: key.len() as u64,
                limit: MAX_KEY_LEN,
            });
        }
        if self.keys.contains(&key) {
            return Err(GgufError::DuplicateKey { key });
        }
        if let Value::Array(a) = &value {
            let depth = array_depth(a);
            if depth > MAX_ARRAY_DEPTH {
                return Err(GgufError::ArrayTooDeep {
                    key,
                    depth,
                    limit: MAX_ARRAY_DEPTH,
                });
            }
        }
        if key == "general.alignment" {
            match value {
                Value::U32(a)
                    if u64::from(a).is_power_of_two() && u64::from(a) <= MAX_ALIGNMENT =>
                {
                    self.alignment = u64::from(a);
                }
                Value::U32(a) => {
                    return Err(GgufError::BadAlignment {
                        value: u64::from(a),
                        max: MAX_ALIGNMENT,
                    })
                }
                ref other => {
                    return Err(GgufError::WrongValueType {
                        key,
                        expected: super::ValueType::U32.name(),
                        found: other.value_type().name(),
                    })
                }
            }
        }
        self.keys.insert(key.clone());
        self.metadata.push((key, value));
        Ok(())
    }

    /// Adds a tensor from its encoded bytes; `dims` are in ggml order
    /// (`dims[0]` is the contiguous dimension).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ggml_type: GgmlType,
        data: Vec<u8>,
    ) -> Result<(), GgufError> {
        let name = name.into();
        let expected = check_shape(&name, dims, ggml_type)?;
        if data.len() as u64 != expected {
            return Err(GgufError::TensorDataSize {
                tensor: name,
                expected,
                actual: data.len() as u64,
            });
        }
        if self.names.contains(&name) {
            return Err(GgufError::DuplicateTensor { tensor: name });
        }
        self.names.insert(name.clone());
        self.tensors.push(PendingTensor {
            name,
            dims: dims.to_vec(),
            ggml_type,
            data,
        });
        Ok(())
    }

    /// Adds a tensor from f32 values (ggml order, `dims[0]` fastest),
    /// encoding them as `ggml_type`: F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K.
    pub fn add_tensor_f32(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ggml_type: GgmlType,
        values: &[f32],
    ) -> Result<(), GgufError> {
        let name = name.into();
        let expected = check_shape(&name, dims, ggml_type)?;
        // A shape that passed `check_shape` has a valid element count.
        let elements = dims.iter().product::<u64>();
        if values.len() as u64 != elements {
            return Err(GgufError::TensorDataSize {
                tensor: name,
                expected: elements.saturating_mul(4),
                actual: (values.len() as u64).saturating_mul(4),
            });
        }
        let Some(data) = encode_f32(values, ggml_type) else {
            return Err(GgufError::UnsupportedEncoding {
                tensor: name,
                ggml_type,
            });
        };
        debug_assert_eq!(data.len() as u64, expected);
        self.add_tensor(name, dims, ggml_type, data)
    }

    /// Writes the file: header, metadata, tensor table, then each tensor's
    /// data padded to the alignment (the last one too, as llama.cpp does).
    pub fn write_to<W: Write>(&self, w: &mut W) -> io::Result<()> {
        let mut w = Counting {
            inner: w,
            written: 0,
        };
        w.write_all(&GGUF_MAGIC)?;
        w.write_all(&GGUF_VERSION.to_le_bytes())?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        w.write_all(&(self.metadata.len() as u64).to_le_bytes())?;
        for (key, value) in &self.metadata {
            write_str(&mut w, key)?;
            w.write_all(&value.value_type().id().to_le_bytes())?;
            write_value(&mut w, value)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            write_str(&mut w, &t.name)?;
            w.write_all(&(t.dims.len() as u32).to_le_bytes())?;
            for d in &t.dims {
                w.write_all(&d.to_le_bytes())?;
            }
            w.write_all(&t.ggml_type.id().to_le_bytes())?;
            w.write_all(&offset.to_le_bytes())?;
            offset = padded(offset + t.data.len() as u64, self.alignment);
        }
        w.pad(self.alignment)?;
        for t in &self.tensors {
            w.write_all(&t.data)?;
            w.pad(self.alignment)?;
        }
        w.inner.flush()
    }

    /// The file as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_to(&mut out);
        out
    }
}

/// Validates a tensor's name and shape; returns its size in bytes.
fn check_shape(name: &str, dims: &[u64], ggml_type: GgmlType) -> Result<u64, GgufError> {
    if name.len() as u64 > MAX_TENSOR_NAME_LEN {
        return Err(GgufError::StringTooLong {
            what: format!("tensor name `{name}`"),
            len: name.len() as u64,
            limit: MAX_TENSOR_NAME_LEN,
        });
    }
    if dims.is_empty() || dims.len() > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            tensor: name.to_owned(),
            n_dims: dims.len() as u64,
            max: MAX_DIMS,
        });
    }
    if let Some(index) = dims.iter().position(|&d| d == 0) {
        return Err(GgufError::ZeroDim {
            tensor: name.to_owned(),
            index,
        });
    }
    let overflow = || GgufError::ElementCountOverflow {
        tensor: name.to_owned(),
        dims: dims.to_vec(),
    };
    let elements = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(overflow)?;
    if !divides(ggml_type.block_size(), dims[0]) {
        return Err(GgufError::NotBlockMultiple {
            tensor: name.to_owned(),
            ne0: dims[0],
            ggml_type,
            block_size: ggml_type.block_size(),
        });
    }
    ggml_type.byte_size(elements).ok_or_else(overflow)
}

fn array_depth(a: &Array) -> u32 {
    match a {
        Array::Array(items) => 1 + items.iter().map(array_depth).max().unwrap_or(0),
        _ => 1,
    }
}

fn padded(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

/// A writer that counts bytes, to pad to the alignment.
struct Counting<'a, W> {
    inner: &'a mut W,
    written: u64,
}

impl<W: Write> Counting<'_, W> {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(())
    }

    fn pad(&mut self, align: u64) -> io::Result<()> {
        const ZEROS: [u8; 256] = [0; 256];
        let mut left = padded(self.written, align) - self.written;
        while left > 0 {
            let n = left.min(ZEROS.len() as u64);
            self.write_all(&ZEROS[..n as usize])?;
            left -= n;
        }
        Ok(())
    }
}

fn write_str<W: Write>(w: &mut Counting<'_, W>, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_value<W: Write>(w: &mut Counting<'_, W>, v: &Value) -> io::Result<()> {
    match v {
        Value::U8(x) => w.write_all(&x.to_le_bytes()),
        Value::I8(x) => w.write_all(&x.to_le_bytes()),
        Value::U16(x) => w.write_all(&x.to_le_bytes()),
        Value::I16(x) => w.write_all(&x.to_le_bytes()),
        Value::U32(x) => w.write_all(&x.to_le_bytes()),
        Value::I32(x) => w.write_all(&x.to_le_bytes()),
        Value::F32(x) => w.write_all(&x.to_le_bytes()),
        Value::Bool(x) => w.write_all(&[u8::from(*x)]),
        Value::String(s) => write_str(w, s),
        Value::Array(a) => write_array(w, a),
        Value::U64(x) => w.write_all(&x.to_le_bytes()),
        Value::I64(x) => w.write_all(&x.to_le_bytes()),
        Value::F64(x) => w.write_all(&x.to_le_bytes()),
    }
}

/// An array: element type, count, then the elements (nested arrays carry
/// their own type and count).
fn write_array<W: Write>(w: &mut Counting<'_, W>, a: &Array) -> io::Result<()> {
    w.write_all(&a.item_type().id().to_le_bytes())?;
    w.write_all(&(a.len() as u64).to_le_bytes())?;
    fn each<W: Write, T: Copy, const N: usize>(
        w: &mut Counting<'_, W>,
        items: &[T],
        f: impl Fn(T) -> [u8; N],
    ) -> io::Result<()> {
        items.iter().try_for_each(|&x| w.write_all(&f(x)))
    }
    match a {
        Array::U8(v) => w.write_all(v),
        Array::I8(v) => each(w, v, i8::to_le_bytes),
        Array::U16(v) => each(w, v, u16::to_le_bytes),
        Array::I16(v) => each(w, v, i16::to_le_bytes),
        Array::U32(v) => each(w, v, u32::to_le_bytes),
        Array::I32(v) => each(w, v, i32::to_le_bytes),
        Array::F32(v) => each(w, v, f32::to_le_bytes),
        Array::Bool(v) => each(w, v, |b| [u8::from(b)]),
        Array::String(v) => v.iter().try_for_each(|s| write_str(w, s)),
        Array::Array(v) => v.iter().try_for_each(|inner| write_array(w, inner)),
        Array::U64(v) => each(w, v, u64::to_le_bytes),
        Array::I64(v) => each(w, v, i64::to_le_bytes),
        Array::F64(v) => each(w, v, f64::to_le_bytes),
    }
}

/// Encodes f32 values as `ggml_type` (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K
/// or MXFP4);
/// `None` for other types, or for a block type when the count is not a
/// multiple of 32.
pub fn encode_f32(values: &[f32], ggml_type: GgmlType) -> Option<Vec<u8>> {
    match ggml_type {
        GgmlType::F32 => Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        GgmlType::F16 => Some(
            values
                .iter()
                .flat_map(|&v| f32_to_f16(v).to_le_bytes())
                .collect(),
        ),
        GgmlType::BF16 => Some(
            values
                .iter()
                .flat_map(|&v| f32_to_bf16(v).to_le_bytes())
                .collect(),
        ),
        GgmlType::Q8_0 => quantize_q8_0(values),
        GgmlType::Q4_0 => quantize_q4_0(values),
        GgmlType::Q4_K => kquant::quantize_q4_k(values),
        GgmlType::Q6_K => kquant::quantize_q6_k(values),
        GgmlType::MXFP4 if divides(crate::mxfp4::QK as u64, values.len() as u64) => {
            Some(crate::mxfp4::quantize_mxfp4(values))
        }
        _ => None,
    }
}

/// f32 → IEEE half, rounding to nearest even; overflow gives ±inf and NaN
/// stays NaN.
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x007f_ffff;
    if exp == 0xff {
        // Keep NaN a NaN even when its payload sits in the dropped bits.
        let nan_bit = if man != 0 { 0x0200 } else { 0 };
        return sign | 0x7c00 | nan_bit | (man >> 13) as u16;
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        // Subnormal half (or zero): the result counts units of 2^-24.
        if e < -10 {
            return sign;
        }
        let m = man | 0x0080_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rem = m & ((1u32 << shift) - 1);
        let mut h = m >> shift;
        if rem > half || (rem == half && h & 1 == 1) {
            h += 1;
        }
        return sign | h as u16;
    }
    let mut h = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    // A carry out of the mantissa bumps the exponent, up to inf: correct.
    if rem > 0x1000 || (rem == 0x1000 && h & 1 == 1) {
        h += 1;
    }
    sign | h as u16
}

/// IEEE half → f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x03ff);
    match (exp, man) {
        (0, 0) => f32::from_bits(sign),
        (0, m) => {
            // Subnormal: m * 2^-24, exact in f32.
            let v = m as f32 / 16_777_216.0;
            if sign != 0 {
                -v
            } else {
                v
            }
        }
        (0x1f, m) => f32::from_bits(sign | 0x7f80_0000 | (m << 13)),
        (e, m) => f32::from_bits(sign | ((e + 112) << 23) | (m << 13)),
    }
}

/// f32 → bfloat16, rounding to nearest even (as ggml's `GGML_FP32_TO_BF16`).
pub fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x0040) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// Q8_0 as ggml's `quantize_row_q8_0_ref`: per 32 values, an f16 scale
/// `d = amax / 127` and 32 signed bytes `round(x / d)`. `None` unless the
/// count is a multiple of 32.
pub fn quantize_q8_0(values: &[f32]) -> Option<Vec<u8>> {
    if !divides(QK as u64, values.len() as u64) {
        return None;
    }
    let mut out = Vec::with_capacity(values.len() / QK * 34);
    for block in values.chunks_exact(QK) {
        let amax = block.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
        // ggml's roundf rounds half away from zero, as f32::round does.
        out.extend(block.iter().map(|&v| (v * id).round() as i8 as u8));
    }
    Some(out)
}

/// Q4_0 as ggml's `quantize_row_q4_0_ref`: per 32 values, an f16 scale
/// `d = max / -8` (`max` the value of largest magnitude, sign kept) and 16
/// bytes of nibbles `min(15, trunc(x / d + 8.5))`, value `j` in the low
/// nibble of byte `j` and value `j + 16` in its high nibble. `None` unless
/// the count is a multiple of 32.
pub fn quantize_q4_0(values: &[f32]) -> Option<Vec<u8>> {
    if !divides(QK as u64, values.len() as u64) {
        return None;
    }
    let mut out = Vec::with_capacity(values.len() / QK * 18);
    for block in values.chunks_exact(QK) {
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in block {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f32_to_f16(d).to_le_bytes());
        // `as i8` truncates toward zero like C's (int8_t) cast.
        let nibble = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
        let (lo, hi) = block.split_at(QK / 2);
        out.extend(
            lo.iter()
                .zip(hi)
                .map(|(&a, &b)| nibble(a) | (nibble(b) << 4)),
        );
    }
    Some(out)
}

/// Decodes Q8_0 blocks back to f32 (`d * q`). Trailing partial blocks are
/// ignored.
pub fn dequantize_q8_0(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / 34 * QK);
    for block in bytes.chunks_exact(34) {
        let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
        out.extend(block[2..].iter().map(|&q| d * f32::from(q as i8)));
    }
    out
}

/// Decodes Q4_0 blocks back to f32 (`d * (q - 8)`). Trailing partial
/// blocks are ignored.
pub fn dequantize_q4_0(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / 18 * QK);
    for block in bytes.chunks_exact(18) {
        let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
        let qs = &block[2..];
        out.extend(qs.iter().map(|&q| d * f32::from((q & 0x0f) as i8 - 8)));
        out.extend(qs.iter().map(|&q| d * f32::from((q >> 4) as i8 - 8)));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::{GgufFile, ValueType};
    use super::*;

    #[test]
    fn f16_round_trips_every_half() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert!(f16_to_f32(f32_to_f16(f)).is_nan(), "{h:#06x}");
            } else {
                assert_eq!(f32_to_f16(f), h, "{h:#06x} = {f}");
            }
        }
    }

    #[test]
    fn f16_rounds_to_nearest_even() {
        let cases: [(f32, u16); 14] = [
            (0.0, 0x0000),
            (-0.0, 0x8000),
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (65504.0, 0x7bff),
            // Halfway between 65504 and 65536 (inf): ties to even, so inf.
            (65520.0, 0x7c00),
            (65519.0, 0x7bff),
            (1e10, 0x7c00),
            (f32::INFINITY, 0x7c00),
            (f32::NEG_INFINITY, 0xfc00),
            // 1 + 2^-11 is halfway between 1 and the next half: stays at 1.
            (1.0 + 1.0 / 2048.0, 0x3c00),
            // 1 + 3 * 2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9: up.
            (1.0 + 3.0 / 2048.0, 0x3c02),
            // Smallest subnormal, and half of it (ties to even: zero).
            (1.0 / 16_777_216.0, 0x0001),
            (1.0 / 33_554_432.0, 0x0000),
        ];
        for (x, h) in cases {
            assert_eq!(f32_to_f16(x), h, "{x}");
        }
        // Just above half the smallest subnormal rounds up.
        assert_eq!(f32_to_f16(1.0 / 33_554_432.0 * 1.0001), 0x0001);
        // Largest subnormal rounding into the smallest normal.
        assert_eq!(f32_to_f16(6.1032e-5), 0x0400);
        assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
        assert_eq!(f16_to_f32(0x0001), 1.0 / 16_777_216.0);
        assert_eq!(f16_to_f32(0x3555), 1365.0 / 4096.0);
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(f32_to_bf16(-2.0), 0xc000);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert!(f32::from_bits(u32::from(f32_to_bf16(f32::NAN)) << 16).is_nan());
    }

    fn ramp() -> Vec<f32> {
        (0..32).map(|j| j as f32 - 16.0).collect()
    }

    #[test]
    fn q4_0_matches_ggml_reference() {
        let q = quantize_q4_0(&ramp()).unwrap();
        // max = -16 (largest magnitude, sign kept), so d = -16 / -8 = 2.
        let mut want = vec![0x00, 0x40];
        for j in 0..16u8 {
            let lo = j.div_ceil(2);
            let hi = (8 + j.div_ceil(2)).min(15);
            want.push(lo | (hi << 4));
        }
        assert_eq!(q, want);
        let back = dequantize_q4_0(&q);
        for (x, y) in ramp().iter().zip(&back) {
            assert!((x - y).abs() <= 1.0, "{x} vs {y}");
        }

        // All zeros: d = 0 / -8 = -0.0 (f16 0x8000, as in ggml) and every
        // nibble is 8.
        let zeros = quantize_q4_0(&[0.0; 64]).unwrap();
        assert_eq!(zeros.len(), 36);
        assert!(zeros
            .chunks(18)
            .all(|b| b[..2] == [0x00, 0x80] && b[2..].iter().all(|&q| q == 0x88)));
        // The positive extreme lands on nibble 0, the negative is clamped to 15.
        let q = quantize_q4_0(&[[8.0f32; 16], [-8.0; 16]].concat()).unwrap();
        assert_eq!(f16_to_f32(u16::from_le_bytes([q[0], q[1]])), -1.0);
        assert!(q[2..].iter().all(|&b| b == 0xf0));
        assert!(quantize_q4_0(&[1.0; 31]).is_none());
    }

    #[test]
    fn q8_0_matches_ggml_reference() {
        let q = quantize_q8_0(&ramp()).unwrap();
        assert_eq!(q.len(), 34);
        assert_eq!(u16::from_le_bytes([q[0], q[1]]), f32_to_f16(16.0 / 127.0));
        assert_eq!(q[2] as i8, -127);
        assert_eq!(q[2 + 16] as i8, 0);
        assert_eq!(q[2 + 31] as i8, 119); // 15 * 127 / 16 = 119.06
        let back = dequantize_q8_0(&q);
        let d = 16.0 / 127.0;
        for (x, y) in ramp().iter().zip(&back) {
            assert!((x - y).abs() <= d, "{x} vs {y}");
        }
        let zeros = quantize_q8_0(&[0.0; 32]).unwrap();
        assert!(zeros.iter().all(|&b| b == 0));
        assert!(quantize_q8_0(&[1.0; 33]).is_none());
    }

    #[test]
    fn lays_out_tensors_as_llama_cpp_expects() {
        let mut w = GgufWriter::new();
        w.add_kv("general.architecture", "llama").unwrap();
        for (i, n) in [3u64, 32, 17, 64].into_iter().enumerate() {
            let data: Vec<f32> = (0..n).map(|x| x as f32).collect();
            w.add_tensor_f32(format!("t{i}"), &[n], GgmlType::F32, &data)
                .unwrap();
        }
        let bytes = w.to_bytes();
        let f = GgufFile::from_bytes(&bytes).unwrap();
        // llama.cpp wants each offset to be the padded end of the previous.
        let mut expected = 0;
        for t in f.tensors() {
            assert_eq!(t.offset, expected, "{}", t.name);
            expected = padded(t.offset + t.size, 32);
        }
        assert_eq!(bytes.len() as u64, f.data_offset() + expected);
    }

    #[test]
    fn rejects_invalid_tensors_and_keys() {
        let mut w = GgufWriter::new();
        let err = w
            .add_tensor("t", &[4], GgmlType::F32, vec![0; 15])
            .unwrap_err();
        assert!(
            matches!(
                err,
                GgufError::TensorDataSize {
                    expected: 16,
                    actual: 15,
                    ..
                }
            ),
            "{err}"
        );
        let err = w
            .add_tensor_f32("t", &[4], GgmlType::F32, &[0.0; 3])
            .unwrap_err();
        assert!(matches!(err, GgufError::TensorDataSize { .. }), "{err}");
        let err = w
            .add_tensor_f32("t", &[48], GgmlType::Q4_0, &[0.0; 48])
            .unwrap_err();
        assert!(
            matches!(err, GgufError::NotBlockMultiple { ne0: 48, .. }),
            "{err}"
        );
        let err = w
            .add_tensor_f32("t", &[256], GgmlType::Q5_K, &[0.0; 256])
            .unwrap_err();
        assert!(
            matches!(err, GgufError::UnsupportedEncoding { .. }),
            "{err}"
        );
        let err = w.add_tensor("t", &[], GgmlType::F32, vec![]).unwrap_err();
        assert!(
            matches!(err, GgufError::TooManyDims { n_dims: 0, .. }),
            "{err}"
        );
        let err = w
            .add_tensor("t", &[2, 0], GgmlType::F32, vec![])
            .unwrap_err();
        assert!(matches!(err, GgufError::ZeroDim { index: 1, .. }), "{err}");
        let err = w
            .add_tensor("t", &[1 << 40, 1 << 40], GgmlType::F32, vec![])
            .unwrap_err();
        assert!(
            matches!(err, GgufError::ElementCountOverflow { .. }),
            "{err}"
        );
        w.add_tensor("t", &[1], GgmlType::F32, vec![0; 4]).unwrap();
        let err = w
            .add_tensor("t", &[1], GgmlType::F32, vec![0; 4])
            .unwrap_err();
        assert!(matches!(err, GgufError::DuplicateTensor { .. }), "{err}");

        w.add_kv("k", 1u32).unwrap();
        let err = w.add_kv("k", 2u32).unwrap_err();
        assert!(matches!(err, GgufError::DuplicateKey { .. }), "{err}");
        let err = w.add_kv("general.alignment", 3u32).unwrap_err();
        assert!(
            matches!(err, GgufError::BadAlignment { value: 3, .. }),
            "{err}"
        );
        let err = w.add_kv("general.alignment", 32u64).unwrap_err();
        assert!(matches!(err, GgufError::WrongValueType { .. }), "{err}");
        let mut deep = Array::U8(vec![1]);
        for _ in 0..MAX_ARRAY_DEPTH {
            deep = Array::Array(vec![deep]);
        }
        let err = w.add_kv("deep", deep).unwrap_err();
        assert!(matches!(err, GgufError::ArrayTooDeep { .. }), "{err}");
        assert_eq!(w.alignment(), 32);
        // Nothing invalid made it into the file.
        let f = GgufFile::from_bytes(&w.to_bytes()).unwrap();
        assert_eq!(f.metadata().len(), 1);
        assert_eq!(f.get("k").map(Value::value_type), Some(ValueType::U32));
        assert_eq!(f.tensors().len(), 1);
    }
}
