//! Tests of the type tables against ggml's and llama.cpp's numbering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

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
