//! Tests of the mapped file: each tensor's bytes as the writer wrote them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::test_support::{sample, values};
use crate::types::GgmlType;
use crate::writer::encode_f32;

#[test]
fn slices_each_tensor_from_the_mapping() {
    let (w, _) = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, w.to_bytes()).unwrap();
    let m = MappedGguf::open(&path).unwrap();
    assert_eq!(m.mapped().len() as u64, m.file().file_len());
    for t in m.file().tensors() {
        let want = match t.ggml_type {
            GgmlType::Q6_K => vec![9u8; 210],
            ty => encode_f32(&values(t.element_count() as usize), ty).unwrap(),
        };
        assert_eq!(
            m.tensor_bytes(&t.name).unwrap(),
            want.as_slice(),
            "{}",
            t.name
        );
        // Dropping the pages loses nothing: they fault in from the file.
        m.release(t, 0..usize::MAX);
        assert_eq!(m.tensor_data(t).unwrap(), want.as_slice(), "{}", t.name);
    }
    let e = m.tensor_bytes("nope").unwrap_err();
    assert!(matches!(e, GgufError::MissingTensor { .. }), "{e}");
    assert!(e.to_string().contains("`nope`"), "{e}");

    // A table entry of another, longer file is refused, not sliced.
    let mut far = m.file().tensors()[0].clone();
    far.absolute_offset = m.file().file_len();
    assert!(matches!(
        m.tensor_data(&far).unwrap_err(),
        GgufError::TensorPastEnd { .. }
    ));
    m.release(&far, 0..1);
}

#[test]
fn refuses_what_is_not_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let e = MappedGguf::open(dir.path().join("missing.gguf")).unwrap_err();
    assert!(matches!(e, GgufError::Open { .. }), "{e}");
    let path = dir.path().join("short.gguf");
    std::fs::write(&path, b"GGUF\x03\0\0\0").unwrap();
    let e = MappedGguf::open(&path).unwrap_err();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    let path = dir.path().join("empty.gguf");
    std::fs::write(&path, b"").unwrap();
    assert!(MappedGguf::open(&path).is_err());
}
