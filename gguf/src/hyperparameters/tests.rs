//! Tests of the hyperparameters: the tiny model's shape, llama.cpp's
//! defaults, and a refusal naming the key for each kind of bad value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::tiny::{tiny_llama_bytes, TinyLlamaSpec};
use crate::writer::GgufWriter;

/// A llama header (embd 32, 4 heads, 1 layer) plus `extra` entries.
fn header(extra: &[(&str, Value)]) -> GgufFile {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", "llama").unwrap();
    w.add_kv("llama.block_count", 1u32).unwrap();
    w.add_kv("llama.embedding_length", 32u32).unwrap();
    w.add_kv("llama.feed_forward_length", 64u32).unwrap();
    w.add_kv("llama.attention.head_count", 4u32).unwrap();
    for (k, v) in extra {
        w.add_kv(*k, v.clone()).unwrap();
    }
    GgufFile::from_bytes(&w.to_bytes()).unwrap()
}

fn refusal(extra: &[(&str, Value)]) -> String {
    Hyperparameters::read(&header(extra))
        .unwrap_err()
        .to_string()
}

#[test]
fn reads_the_tiny_model() {
    let spec = TinyLlamaSpec::default();
    let f = GgufFile::from_bytes(&tiny_llama_bytes(&spec).unwrap()).unwrap();
    let hp = Hyperparameters::read(&f).unwrap();
    assert_eq!(hp.architecture, "llama");
    assert_eq!(hp.n_layer, spec.n_layer as usize);
    assert_eq!(hp.n_embd, spec.n_embd as usize);
    assert_eq!(hp.n_head, spec.n_head as usize);
    assert_eq!(hp.n_head_kv, spec.n_head_kv as usize);
    assert_eq!(hp.n_ff, spec.n_ff as usize);
    assert_eq!(hp.key_length, spec.head_dim() as usize);
    assert_eq!(hp.value_length, u64::from(spec.head_dim()));
    assert_eq!(hp.context_length, spec.context_length as usize);
    assert_eq!(hp.key("block_count"), "llama.block_count");
}

#[test]
fn defaults_are_llama_cpps() {
    let hp = Hyperparameters::read(&header(&[])).unwrap();
    assert_eq!((hp.n_head_kv, hp.key_length, hp.value_length), (4, 8, 8));
    assert_eq!(hp.rope_dim, 8);
    assert_eq!(
        (hp.rope_freq_base, hp.rope_freq_base_swa),
        (10_000.0, 10_000.0)
    );
    assert_eq!(hp.rms_eps, 1e-5);
    assert_eq!(hp.rope_scaling, RopeScaling::None);
    assert_eq!(hp.context_length, 2048);
    assert_eq!(hp.sliding_window().unwrap(), None);

    let hp = Hyperparameters::read(&header(&[
        ("llama.attention.head_count_kv", 2u32.into()),
        ("llama.attention.key_length", 16u64.into()),
        ("llama.attention.value_length", 12u32.into()),
        ("llama.rope.dimension_count", 4u32.into()),
        ("llama.rope.freq_base", 5e5f32.into()),
        ("llama.attention.layer_norm_rms_epsilon", 1e-6f64.into()),
        ("llama.rope.scaling.type", "linear".into()),
        ("llama.rope.scaling.factor", 4.0f32.into()),
        ("llama.attention.sliding_window", 512u32.into()),
        ("llama.context_length", 0u32.into()),
    ]))
    .unwrap();
    assert_eq!((hp.n_head_kv, hp.key_length, hp.value_length), (2, 16, 12));
    assert_eq!((hp.rope_dim, hp.rope_freq_base), (4, 5e5));
    assert_eq!(hp.rms_eps, 1e-6);
    assert_eq!(hp.rope_scaling, RopeScaling::Linear { freq_scale: 0.25 });
    assert_eq!(hp.sliding_window().unwrap(), Some(512));
    assert_eq!(hp.context_length, 2048);

    for (kind, want) in [
        ("none", RopeScaling::None),
        ("llama3", RopeScaling::Llama3),
        ("yarn", RopeScaling::Yarn { freq_scale: 1.0 }),
        ("dynamic", RopeScaling::Other("dynamic".into())),
    ] {
        let hp =
            Hyperparameters::read(&header(&[("llama.rope.scaling.type", kind.into())])).unwrap();
        assert_eq!(hp.rope_scaling, want);
    }
}

#[test]
fn refusals_name_the_key() {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", 3u32).unwrap();
    let f = GgufFile::from_bytes(&w.to_bytes()).unwrap();
    let e = Hyperparameters::read(&f).unwrap_err().to_string();
    assert_eq!(
        e,
        "bad model metadata: `general.architecture` must be a string"
    );
    let f = GgufFile::from_bytes(&GgufWriter::new().to_bytes()).unwrap();
    let e = Hyperparameters::read(&f).unwrap_err().to_string();
    assert!(e.contains("`general.architecture` is missing"), "{e}");

    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", "llama").unwrap();
    let f = GgufFile::from_bytes(&w.to_bytes()).unwrap();
    let e = Hyperparameters::read(&f).unwrap_err().to_string();
    assert!(e.contains("`llama.block_count` is missing"), "{e}");

    for (extra, want) in [
        (
            ("llama.attention.head_count_kv", Value::from(3u32)),
            "`llama.attention.head_count_kv` (3) does not divide the head count (4)",
        ),
        (
            ("llama.attention.head_count_kv", Value::from(-1i32)),
            "`llama.attention.head_count_kv` must be at least 1",
        ),
        (
            ("llama.attention.head_count_kv", Value::from(vec![4u32, 4])),
            "`llama.attention.head_count_kv` must be an integer",
        ),
        (
            ("llama.attention.key_length", Value::from(1u64 << 20)),
            "`llama.attention.key_length` is 1048576, more than 65536",
        ),
        (
            ("llama.rope.dimension_count", Value::from(3u32)),
            "`llama.rope.dimension_count` (3) must be even and at most the head size (8)",
        ),
        (
            ("llama.rope.freq_base", Value::from(10_000u32)),
            "`llama.rope.freq_base` must be a float",
        ),
        (
            ("llama.attention.sliding_window", Value::from("wide")),
            "`llama.attention.sliding_window` must be an integer",
        ),
    ] {
        let e = refusal(&[extra]);
        assert!(e.contains(want), "{e}");
    }

    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", "llama").unwrap();
    w.add_kv("llama.block_count", 1u32).unwrap();
    w.add_kv("llama.embedding_length", 30u32).unwrap();
    w.add_kv("llama.attention.head_count", 4u32).unwrap();
    w.add_kv("llama.feed_forward_length", 64u32).unwrap();
    let f = GgufFile::from_bytes(&w.to_bytes()).unwrap();
    let e = Hyperparameters::read(&f).unwrap_err().to_string();
    assert!(
        e.contains("`llama.embedding_length` (30) is not a multiple of the head count (4)"),
        "{e}"
    );

    // The window is checked only when asked for (Gemma 3's local layers).
    let hp = Hyperparameters::read(&header(&[(
        "llama.attention.sliding_window",
        Value::from(0u32),
    )]))
    .unwrap();
    let e = hp.sliding_window().unwrap_err().to_string();
    assert!(
        e.contains("`llama.attention.sliding_window` must be at least 1"),
        "{e}"
    );
}

#[test]
fn expert_counts_are_bounded_and_consistent() {
    let hp = Hyperparameters::read(&header(&[])).unwrap();
    assert_eq!((hp.n_expert, hp.n_expert_used, hp.n_ff_exp), (0, 0, 0));
    let hp = Hyperparameters::read(&header(&[
        ("llama.expert_count", Value::U32(8)),
        ("llama.expert_used_count", Value::U32(2)),
    ]))
    .unwrap();
    // llama.cpp's default expert size: the dense size over the used count.
    assert_eq!((hp.n_expert, hp.n_expert_used, hp.n_ff_exp), (8, 2, 32));
    let huge = refusal(&[
        ("llama.expert_count", Value::U32(1 << 31)),
        ("llama.expert_used_count", Value::U32(2)),
    ]);
    assert!(
        huge.contains("`llama.expert_count` is 2147483648, more than 1024"),
        "{huge}"
    );
    let topk = refusal(&[
        ("llama.expert_count", Value::U32(4)),
        ("llama.expert_used_count", Value::U32(5)),
    ]);
    assert!(
        topk.contains("`llama.expert_used_count` is 5, more than the expert count (4)"),
        "{topk}"
    );
    let missing = refusal(&[("llama.expert_count", Value::U32(4))]);
    assert!(
        missing.contains("`llama.expert_used_count` is missing"),
        "{missing}"
    );
    let zero = refusal(&[
        ("llama.expert_count", Value::U32(4)),
        ("llama.expert_used_count", Value::U32(0)),
    ]);
    assert!(zero.contains("must be at least 1"), "{zero}");
}
