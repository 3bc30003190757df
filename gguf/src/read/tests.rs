//! Tests of the reader: round trips through the writer, and every kind of
//! broken, truncated, lying or mutated file refused without a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;

use super::*;
use crate::test_support::{sample, values, Raw};
use crate::tiny;
use crate::types::FileType;
use crate::writer::encode_f32;

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
