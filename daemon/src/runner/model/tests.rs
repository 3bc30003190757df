#![allow(clippy::unwrap_used)]

use super::*;
use crate::runner::llama::Embeddings;
use crate::runner::loader::candle_dtype;
use candle_core::quantized::ggml_file;
use candle_core::Tensor;
use llmpm_gguf::tiny::{tiny_llama_bytes, TinyLlamaSpec};
use llmpm_gguf::writer::GgufWriter;
use llmpm_gguf::{GgmlType, GgufFile};

fn load_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, bytes).unwrap();
    Model::load(&path, &Device::Cpu)
}

/// A llama header (embd 32, 1 layer) with only the tensors given.
fn partial(arch: &str, tensors: &[(&str, &[u64])]) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", arch).unwrap();
    w.add_kv(format!("{arch}.block_count"), 1u32).unwrap();
    w.add_kv(format!("{arch}.embedding_length"), 32u32).unwrap();
    w.add_kv(format!("{arch}.feed_forward_length"), 64u32)
        .unwrap();
    w.add_kv(format!("{arch}.attention.head_count"), 4u32)
        .unwrap();
    for (name, dims) in tensors {
        let n: u64 = dims.iter().product();
        let values = vec![0.0f32; usize::try_from(n).unwrap()];
        w.add_tensor_f32(*name, dims, GgmlType::F32, &values)
            .unwrap();
    }
    w.to_bytes()
}

#[test]
fn loads_the_tiny_model() {
    let m = load_bytes(&tiny_llama_bytes(&TinyLlamaSpec::default()).unwrap()).unwrap();
    assert_eq!(m.config().n_vocab, 320);
    assert_eq!(m.greedy(&[315, 1, 2], 3).unwrap().len(), 3);
}

/// The token table read in place from the mapped file gives the rows
/// the whole table loaded into candle gives, and refuses an id past its end.
#[test]
fn mapped_token_table_gives_the_files_rows() {
    use llmpm_gguf::FileType;
    for ftype in [FileType::F32, FileType::F16, FileType::Q8_0, FileType::Q4_0] {
        let spec = TinyLlamaSpec {
            ftype,
            ..TinyLlamaSpec::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, tiny_llama_bytes(&spec).unwrap()).unwrap();
        let m = Model::load(&path, &Device::Cpu).unwrap();
        let Net::Decoder(llama) = &m.net else {
            panic!("a decoder");
        };
        let Embeddings::Mapped(table) = &llama.tok_embd else {
            panic!("{ftype:?}: the token table is not read from the mapped file");
        };
        let gguf = MappedGguf::open(&path).unwrap();
        let info = gguf.file().tensor("token_embd.weight").unwrap();
        let copy = ggml_file::qtensor_from_ggml(
            candle_dtype(info.ggml_type).unwrap(),
            gguf.tensor_data(info).unwrap(),
            vec![spec.n_vocab as usize, spec.n_embd as usize],
            &Device::Cpu,
        )
        .unwrap();
        let ids = [0u32, 7, 319, 7];
        let want = copy
            .embedding(&Tensor::new(&ids[..], &Device::Cpu).unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let got = table
            .rows(&ids, &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(got, want, "{ftype:?}");
        let e = table.rows(&[320], &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("320"), "{e}");
    }
}

/// A file whose alignment leaves tensor data at odd addresses loads
/// the same model (candle's blocks are copied aligned first).
#[test]
fn an_odd_alignment_loads_the_same_model() {
    use llmpm_gguf::tiny::tiny_llama_writer;
    use llmpm_gguf::FileType;
    for ftype in [FileType::F32, FileType::F16] {
        let spec = TinyLlamaSpec {
            ftype,
            ..TinyLlamaSpec::default()
        };
        let mut w = tiny_llama_writer(&spec).unwrap();
        w.add_kv("general.alignment", 1u32).unwrap();
        let odd = w.to_bytes();
        let f = GgufFile::from_bytes(&odd).unwrap();
        assert!(f.tensors().iter().any(|t| t.absolute_offset % 8 != 0));
        let want = load_bytes(&tiny_llama_bytes(&spec).unwrap()).unwrap();
        let got = load_bytes(&odd).unwrap();
        let prompt = [315, 1, 2, 40];
        assert_eq!(
            got.greedy(&prompt, 4).unwrap(),
            want.greedy(&prompt, 4).unwrap(),
            "{ftype:?}"
        );
    }
}

#[test]
fn refuses_unknown_architecture() {
    let e = load_bytes(&partial("mamba9", &[])).unwrap_err();
    assert!(e.to_string().contains("`mamba9`"), "{e}");
}

#[test]
fn names_a_missing_tensor() {
    let e = load_bytes(&partial("llama", &[("token_embd.weight", &[32, 100])])).unwrap_err();
    assert!(e.to_string().contains("`blk.0.attn_norm.weight`"), "{e}");
}

#[test]
fn names_a_wrong_shape() {
    let e = load_bytes(&partial(
        "llama",
        &[
            ("token_embd.weight", &[32, 100]),
            ("blk.0.attn_norm.weight", &[16]),
        ],
    ))
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("`blk.0.attn_norm.weight`") && msg.contains("[16]"),
        "{msg}"
    );
}

/// Every cut of a quantized file's tensor data is an error that names
/// a tensor, never a panic or a read past the end (the strip layout
/// repacks straight from the mapped file).
#[test]
fn a_truncated_file_names_a_tensor() {
    use llmpm_gguf::FileType;
    for ftype in [FileType::Q8_0, FileType::Q4_0, FileType::F32] {
        let spec = TinyLlamaSpec {
            ftype,
            ..TinyLlamaSpec::default()
        };
        let good = tiny_llama_bytes(&spec).unwrap();
        for cut in [1, 100, good.len() / 3] {
            let e = load_bytes(&good[..good.len() - cut])
                .unwrap_err()
                .to_string();
            assert!(e.contains(".weight"), "{ftype:?} cut {cut}: {e}");
        }
    }
}

#[test]
fn names_missing_metadata() {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", "llama").unwrap();
    let e = load_bytes(&w.to_bytes()).unwrap_err();
    assert!(e.to_string().contains("`llama.block_count`"), "{e}");
}

/// A Qwen 3 or Phi-3 header that disagrees with its tensors (a head size,
/// a feed-forward size, a rotary width) or asks for an absurd size is an
/// error naming the tensor or key, never a panic or a huge allocation.
#[test]
fn hostile_qwen3_and_phi3_headers_are_refused_by_name() {
    use llmpm_gguf::tiny::TinyArch;
    let qwen3 = TinyLlamaSpec {
        arch: TinyArch::Qwen3,
        head_dim: 32,
        ..TinyLlamaSpec::default()
    };
    let phi3 = TinyLlamaSpec {
        arch: TinyArch::Phi3,
        rope_dim: 12,
        context_length: 4096,
        rope_orig_context: 1024,
        ..TinyLlamaSpec::default()
    };
    for (spec, key, value, needle) in [
        (
            &qwen3,
            "qwen3.attention.head_count",
            8u32,
            "`blk.0.attn_q.weight`",
        ),
        (
            &qwen3,
            "qwen3.attention.key_length",
            16,
            "`qwen3.attention.value_length`",
        ),
        (
            &qwen3,
            "qwen3.attention.key_length",
            1 << 31,
            "`qwen3.attention.key_length`",
        ),
        (
            &qwen3,
            "qwen3.attention.head_count_kv",
            3,
            "`qwen3.attention.head_count_kv`",
        ),
        (
            &phi3,
            "phi3.feed_forward_length",
            96,
            "`blk.0.ffn_up.weight`",
        ),
        (
            &phi3,
            "phi3.attention.head_count_kv",
            4,
            "`blk.0.attn_qkv.weight`",
        ),
        (
            &phi3,
            "phi3.rope.dimension_count",
            8,
            "`rope_factors_long.weight`",
        ),
        (&phi3, "phi3.block_count", u32::MAX, "`phi3.block_count`"),
    ] {
        refuses_each(spec, &[(key, value, needle)]);
    }
    // Both load as generated, and a long context picks Phi-3's long factors.
    for spec in [&qwen3, &phi3] {
        let m = load_bytes(&tiny_llama_bytes(spec).unwrap()).unwrap();
        assert_eq!(m.greedy(&[5, 1, 2], 3).unwrap().len(), 3);
    }
    let m = load_bytes(&tiny_llama_bytes(&phi3).unwrap()).unwrap();
    let prompt: Vec<u32> = (1..20).collect();
    let short = m.forward(&prompt, &mut m.new_cache(1024)).unwrap();
    let long = m.forward(&prompt, &mut m.new_cache(1025)).unwrap();
    assert_ne!(
        short, long,
        "the cache past the original context uses the long factors"
    );
}

/// `spec`'s model with each `(key, value)` set in its header is refused
/// with an error containing the needle.
fn refuses_each<K: AsRef<str>>(spec: &TinyLlamaSpec, cases: &[(K, u32, &str)]) {
    for (key, value, needle) in cases {
        let key = key.as_ref();
        let mut w = llmpm_gguf::tiny::tiny_llama_writer(spec).unwrap();
        assert!(w.set_kv(key, *value), "{key}");
        let e = load_bytes(&w.to_bytes()).unwrap_err().to_string();
        assert!(e.contains(needle), "{key} = {value}: {e}");
    }
}

/// A BERT header that disagrees with its tensors or asks for a pooling we
/// do not do is refused by name; as generated, it embeds and cannot generate.
#[test]
fn hostile_bert_headers_are_refused_by_name() {
    use llmpm_gguf::tiny::TinyArch;
    for arch in [TinyArch::Bert, TinyArch::NomicBert] {
        let spec = TinyLlamaSpec {
            arch,
            n_vocab: 300,
            context_length: 512,
            ..TinyLlamaSpec::default()
        };
        let a = arch.name();
        refuses_each(
            &spec,
            &[
                (format!("{a}.feed_forward_length"), 96u32, "ffn_"),
                (format!("{a}.pooling_type"), 0, "pooling_type"),
                (format!("{a}.attention.head_count"), 3, "the head count (3)"),
                (format!("{a}.block_count"), u32::MAX, "block_count"),
            ],
        );
        let m = load_bytes(&tiny_llama_bytes(&spec).unwrap()).unwrap();
        assert!(m.embeds_only());
        let mut cache = m.new_cache(16);
        assert_eq!(m.embed(&[2, 40, 3], &mut cache).unwrap().len(), 64);
        let e = m.forward(&[2, 40], &mut cache).unwrap_err().to_string();
        assert!(e.contains("only embeds"), "{e}");
        // Past the learned positions (bert) or the context: an error.
        let long: Vec<u32> = (0..600).map(|i| 5 + i % 200).collect();
        assert!(m.embed(&long, &mut cache).is_err());
    }
}

/// A Qwen 3 MoE header with an absurd expert count, a top-k above the
/// expert count, or expert sizes its tensors disagree with is refused by
/// name before anything is allocated for the experts; as generated, it runs.
#[test]
fn hostile_qwen3moe_headers_are_refused_by_name() {
    use llmpm_gguf::tiny::TinyArch;
    let spec = TinyLlamaSpec {
        arch: TinyArch::Qwen3Moe,
        n_expert: 8,
        n_expert_used: 2,
        ..TinyLlamaSpec::default()
    };
    refuses_each(
        &spec,
        &[
            (
                "qwen3moe.expert_count",
                1u32 << 31,
                "`qwen3moe.expert_count` is 2147483648, more than 1024",
            ),
            (
                "qwen3moe.expert_used_count",
                9,
                "`qwen3moe.expert_used_count` is 9, more than the expert count (8)",
            ),
            ("qwen3moe.expert_used_count", 0, "must be at least 1"),
            ("qwen3moe.expert_count", 4, "`blk.0.ffn_gate_inp.weight`"),
            (
                "qwen3moe.expert_feed_forward_length",
                256,
                "`blk.0.ffn_gate_exps.weight`",
            ),
        ],
    );
    let m = load_bytes(&tiny_llama_bytes(&spec).unwrap()).unwrap();
    assert_eq!(m.greedy(&[5, 1, 2], 3).unwrap().len(), 3);
}

/// The same for gpt-oss, and a sliding window of 0 and a head count the
/// attention tensors disagree with; as generated (MXFP4 experts too), it
/// runs.
#[test]
fn hostile_gpt_oss_headers_are_refused_by_name() {
    use llmpm_gguf::tiny::TinyArch;
    use llmpm_gguf::FileType;
    let spec = TinyLlamaSpec {
        arch: TinyArch::GptOss,
        n_expert: 8,
        n_expert_used: 2,
        sliding_window: 4,
        ..TinyLlamaSpec::default()
    };
    refuses_each(
        &spec,
        &[
            (
                "gpt-oss.expert_count",
                1u32 << 31,
                "`gpt-oss.expert_count` is 2147483648, more than 1024",
            ),
            (
                "gpt-oss.expert_used_count",
                9,
                "`gpt-oss.expert_used_count` is 9, more than the expert count (8)",
            ),
            (
                "gpt-oss.attention.sliding_window",
                0,
                "`gpt-oss.attention.sliding_window` must be at least 1",
            ),
            ("gpt-oss.expert_count", 4, "`blk.0.ffn_gate_inp.weight`"),
            ("gpt-oss.attention.head_count", 2, "`blk.0.attn_q.weight`"),
            (
                "gpt-oss.expert_feed_forward_length",
                256,
                "`blk.0.ffn_gate_exps.weight`",
            ),
        ],
    );
    for ftype in [FileType::F32, FileType::MXFP4_MOE] {
        let spec = TinyLlamaSpec {
            ftype,
            ..spec.clone()
        };
        let m = load_bytes(&tiny_llama_bytes(&spec).unwrap()).unwrap();
        assert_eq!(m.greedy(&[5, 1, 2, 7, 9, 11], 3).unwrap().len(), 3);
    }
}
