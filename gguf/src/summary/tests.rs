//! Tests of the summary: what `/api/show` and `list` print.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::test_support::{sample, values};
use crate::writer::GgufWriter;

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
