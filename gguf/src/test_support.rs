//! Test helpers shared by the reader's and the summary's tests: hand-made
//! raw files and a sample holding every value type and several tensor types.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::writer::GgufWriter;
use crate::{divides, Array, GgmlType, GgufError, GgufFile, Value, ValueType, GGUF_MAGIC};

/// Raw little-endian bytes, for hand-made and broken files.
pub(crate) struct Raw(pub(crate) Vec<u8>);

impl Raw {
    pub(crate) fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw(GGUF_MAGIC.to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }

    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }

    pub(crate) fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(ValueType::U32.id()).u32(v)
    }

    pub(crate) fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }

    pub(crate) fn pad(&mut self, align: usize) -> &mut Self {
        while !divides(align as u64, self.0.len() as u64) {
            self.0.push(0);
        }
        self
    }

    pub(crate) fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }

    pub(crate) fn parse(&self) -> Result<GgufFile, GgufError> {
        GgufFile::from_bytes(&self.0)
    }
}

pub(crate) fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect()
}

/// A file holding every value type and several tensor types.
pub(crate) fn sample() -> (GgufWriter, Vec<(String, Value)>) {
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
