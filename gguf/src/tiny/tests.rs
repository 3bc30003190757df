#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::super::GgufFile;
use super::vocab::MIN_VOCAB;
use super::*;
use crate::gpt2_byte_chars;

fn parse(spec: &TinyLlamaSpec) -> (Vec<u8>, GgufFile) {
    let mut bytes = Vec::new();
    write_tiny_llama(spec, &mut bytes).unwrap();
    let f = GgufFile::from_bytes(&bytes).unwrap();
    (bytes, f)
}

#[test]
fn default_model_parses_with_the_expected_summary() {
    let spec = TinyLlamaSpec::default();
    let (_, f) = parse(&spec);
    assert_eq!(f.architecture(), Some("llama"));
    assert_eq!(f.context_length(), Some(2048));
    assert_eq!(f.chat_template(), Some(LLAMA3_CHAT_TEMPLATE));
    assert_eq!(f.tokenizer_model(), Some("gpt2"));
    assert_eq!(f.file_type(), Some(FileType::F32));
    let sum: u64 = f.tensors().iter().map(|t| t.element_count()).sum();
    assert_eq!(f.parameter_count(), sum);
    assert_eq!(Some(f.parameter_count()), spec.parameter_count());
    assert_eq!(f.human_parameter_size(), "115K");
    assert_eq!(f.tensors().len(), 3 + 9 * 2);
    assert_eq!(f.get_u64("llama.rope.dimension_count"), Some(16));
    assert_eq!(f.get_u64("llama.vocab_size"), Some(320));
    assert_eq!(f.get_str("tokenizer.ggml.pre"), Some("llama-bpe"));
    assert_eq!(
        f.get("llama.rope.freq_base").and_then(Value::as_f64),
        Some(500_000.0)
    );

    let info = f.model_info();
    assert_eq!(
        info["llama.attention.layer_norm_rms_epsilon"],
        serde_json::json!(1e-5)
    );
    assert_eq!(info["tokenizer.ggml.tokens"], serde_json::Value::Null);
    assert_eq!(info["general.parameter_count"], serde_json::json!(sum));
    assert!(!info.contains_key("tokenizer.chat_template"));
}

#[test]
fn tensors_have_llama_cpp_names_shapes_and_types() {
    for (ftype, weight) in [
        (FileType::F32, GgmlType::F32),
        (FileType::F16, GgmlType::F16),
        (FileType::Q8_0, GgmlType::Q8_0),
        (FileType::Q4_0, GgmlType::Q4_0),
    ] {
        let spec = TinyLlamaSpec {
            ftype,
            ..Default::default()
        };
        let (_, f) = parse(&spec);
        assert_eq!(f.file_type(), Some(ftype));
        assert_eq!(
            f.get_u64("general.file_type"),
            Some(u64::from(ftype.as_u32()))
        );
        let shape = |name: &str| {
            let t = f.tensor(name).unwrap();
            (t.dims.clone(), t.ggml_type)
        };
        assert_eq!(shape("token_embd.weight"), (vec![64, 320], weight));
        assert_eq!(shape("output.weight"), (vec![64, 320], weight));
        assert_eq!(shape("output_norm.weight"), (vec![64], GgmlType::F32));
        assert_eq!(shape("blk.1.attn_norm.weight"), (vec![64], GgmlType::F32));
        assert_eq!(shape("blk.1.ffn_norm.weight"), (vec![64], GgmlType::F32));
        assert_eq!(shape("blk.0.attn_q.weight"), (vec![64, 64], weight));
        assert_eq!(shape("blk.0.attn_k.weight"), (vec![64, 32], weight));
        assert_eq!(shape("blk.0.attn_v.weight"), (vec![64, 32], weight));
        assert_eq!(shape("blk.0.attn_output.weight"), (vec![64, 64], weight));
        assert_eq!(shape("blk.1.ffn_gate.weight"), (vec![64, 128], weight));
        assert_eq!(shape("blk.1.ffn_up.weight"), (vec![64, 128], weight));
        assert_eq!(shape("blk.1.ffn_down.weight"), (vec![128, 64], weight));
    }
}

#[test]
fn weights_are_scaled_and_deterministic() {
    let spec = TinyLlamaSpec::default();
    let (bytes, f) = parse(&spec);
    let (again, _) = parse(&spec);
    assert_eq!(bytes, again);
    let (other, _) = parse(&TinyLlamaSpec {
        seed: 7,
        ..spec.clone()
    });
    assert_eq!(other.len(), bytes.len());
    assert_ne!(other, bytes);

    let mut cursor = io::Cursor::new(&bytes);
    let floats = |name: &str, cursor: &mut io::Cursor<&Vec<u8>>| -> Vec<f32> {
        let data = f.read_tensor_data(cursor, f.tensor(name).unwrap()).unwrap();
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let down = floats("blk.0.ffn_down.weight", &mut cursor);
    let bound = 1.0 / (128f32).sqrt();
    assert!(down.iter().all(|v| v.abs() <= bound));
    assert!(down.iter().any(|v| v.abs() > bound / 2.0));
    let norm = floats("output_norm.weight", &mut cursor);
    assert!(norm.iter().all(|v| (0.9..=1.1).contains(v)));
}

#[test]
fn quantized_weights_decode_near_the_f32_ones() {
    let base = TinyLlamaSpec::default();
    let (f32_bytes, f32_file) = parse(&base);
    let name = "blk.0.attn_q.weight";
    let read = |bytes: &Vec<u8>, f: &GgufFile| {
        f.read_tensor_data(&mut io::Cursor::new(bytes), f.tensor(name).unwrap())
            .unwrap()
    };
    let exact: Vec<f32> = read(&f32_bytes, &f32_file)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    for (ftype, tolerance) in [(FileType::Q8_0, 0.002), (FileType::Q4_0, 0.02)] {
        let (bytes, f) = parse(&TinyLlamaSpec {
            ftype,
            ..base.clone()
        });
        let data = read(&bytes, &f);
        let decoded = if ftype == FileType::Q8_0 {
            super::super::writer::dequantize_q8_0(&data)
        } else {
            super::super::writer::dequantize_q4_0(&data)
        };
        assert_eq!(decoded.len(), exact.len());
        for (a, b) in exact.iter().zip(&decoded) {
            assert!((a - b).abs() <= tolerance, "{ftype}: {a} vs {b}");
        }
    }
}

#[test]
fn vocab_is_consistent() {
    for n_vocab in [MIN_VOCAB, 320, 1000, 3000] {
        let vocab = tiny_vocab(n_vocab, true);
        assert_eq!(vocab.tokens.len(), n_vocab as usize);
        assert_eq!(vocab.token_types.len(), n_vocab as usize);
        let ids: std::collections::HashMap<&str, usize> = vocab
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        assert_eq!(ids.len(), vocab.tokens.len(), "tokens are unique");
        for merge in &vocab.merges {
            let (l, r) = merge.split_once(' ').unwrap();
            assert!(ids.contains_key(l) && ids.contains_key(r), "{merge}");
            assert!(ids.contains_key(format!("{l}{r}").as_str()), "{merge}");
        }
        let first_special = n_vocab as usize - SPECIAL_TOKENS.len();
        assert_eq!(&vocab.tokens[first_special..], SPECIAL_TOKENS);
        assert!(vocab.token_types[first_special..]
            .iter()
            .all(|&t| t == TOKEN_TYPE_CONTROL));
        assert_eq!(vocab.tokens[vocab.bos as usize], "<|begin_of_text|>");
        assert_eq!(vocab.tokens[vocab.eos as usize], "<|eot_id|>");
        // Every byte has its token, as llama.cpp's byte fallback needs.
        for c in gpt2_byte_chars() {
            assert!(ids.contains_key(c.to_string().as_str()));
        }
    }
    let vocab = tiny_vocab(320, false);
    assert_eq!(vocab.tokens[vocab.eos as usize], "<|end_of_text|>");
    assert!(vocab.merges.len() >= 320 - 261);
    assert!(vocab.tokens.contains(&"Ġthe".to_owned()));
    // GPT-2's byte order: `!` first, space as `Ġ`, newline as `Ċ`.
    assert_eq!(vocab.tokens[0], "!");
    let chars = gpt2_byte_chars();
    assert_eq!((chars[b' ' as usize], chars[b'\n' as usize]), ('Ġ', 'Ċ'));
}

#[test]
fn chat_template_is_optional() {
    let (_, f) = parse(&TinyLlamaSpec {
        with_chat_template: false,
        ..Default::default()
    });
    assert_eq!(f.chat_template(), None);
    let tokens = f
        .get("tokenizer.ggml.tokens")
        .and_then(Value::as_array)
        .unwrap();
    let eos = f.get_u64("tokenizer.ggml.eos_token_id").unwrap() as usize;
    assert_eq!(tokens.as_strings().unwrap()[eos], "<|end_of_text|>");
}

#[test]
fn rejects_specs_llama_cpp_cannot_load() {
    let bad = |spec: TinyLlamaSpec, needle: &str| {
        let err = tiny_llama_bytes(&spec).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains(needle), "{err}");
    };
    let d = TinyLlamaSpec::default;
    bad(
        TinyLlamaSpec {
            n_embd: 48,
            ftype: FileType::Q8_0,
            ..d()
        },
        "multiple of 32 for Q8_0",
    );
    bad(
        TinyLlamaSpec {
            n_ff: 100,
            ftype: FileType::Q4_0,
            ..d()
        },
        "`n_ff` (100) must be a multiple of 32",
    );
    bad(
        TinyLlamaSpec {
            n_vocab: 256,
            ..d()
        },
        "at least 261",
    );
    bad(TinyLlamaSpec { n_head: 3, ..d() }, "multiple of `n_head`");
    bad(
        TinyLlamaSpec {
            n_head_kv: 3,
            ..d()
        },
        "multiple of `n_head_kv`",
    );
    bad(
        TinyLlamaSpec {
            n_embd: 36,
            n_head: 4,
            ..d()
        },
        "even",
    );
    bad(TinyLlamaSpec { n_layer: 0, ..d() }, "`n_layer`");
    bad(
        TinyLlamaSpec {
            ftype: FileType::Q5_K_M,
            ..d()
        },
        "Q5_K_M",
    );
    bad(
        TinyLlamaSpec {
            ftype: FileType::Q4_K_M,
            ..d()
        },
        "`n_embd` (64) must be a multiple of 256 for Q4_K",
    );
    bad(
        TinyLlamaSpec {
            n_embd: 1 << 20,
            n_vocab: 1 << 20,
            ..d()
        },
        "tiny",
    );
    // Without quantization the sizes are free.
    assert!(tiny_llama_bytes(&TinyLlamaSpec {
        n_embd: 48,
        n_ff: 100,
        ..d()
    })
    .is_ok());
}

/// A WordPiece vocabulary of any size has exactly that many distinct
/// tokens, the specials at bert-base-uncased's ids.
#[test]
fn wordpiece_vocabularies_fill_their_size() {
    for n in [super::bert::MIN_BERT_VOCAB, 3000, 30522, 40000] {
        let (tokens, types) = super::bert::wordpiece_vocab(n);
        assert_eq!((tokens.len(), types.len()), (n as usize, n as usize));
        let distinct: std::collections::BTreeSet<&String> = tokens.iter().collect();
        assert_eq!(distinct.len(), tokens.len(), "{n}: duplicates");
        for (name, id) in super::bert::BERT_SPECIAL_TOKENS {
            assert_eq!(tokens[id as usize], name);
            assert_eq!(types[id as usize], TOKEN_TYPE_CONTROL);
        }
    }
}

/// gpt-oss as llama.cpp's converter and `MXFP4_MOE` quantization write it:
/// biases, sinks, the renamed pre-expert norm, MXFP4 experts and Q8_0
/// elsewhere, YaRN and the window, the o200k tokenizer kind with harmony's
/// specials and `<|return|>` as EOS.
#[test]
fn gpt_oss_is_written_as_llama_cpp_writes_it() {
    let spec = TinyLlamaSpec {
        arch: TinyArch::GptOss,
        n_expert: 4,
        n_expert_used: 2,
        sliding_window: 8,
        context_length: 4096,
        rope_orig_context: 128,
        ftype: FileType::MXFP4_MOE,
        ..TinyLlamaSpec::default()
    };
    let (_, f) = parse(&spec);
    assert_eq!(f.architecture(), Some("gpt-oss"));
    assert_eq!(f.get_u64("gpt-oss.attention.sliding_window"), Some(8));
    assert_eq!(f.get_str("gpt-oss.rope.scaling.type"), Some("yarn"));
    assert_eq!(
        f.get("gpt-oss.rope.scaling.factor").and_then(Value::as_f64),
        Some(32.0)
    );
    assert_eq!(f.get_str("tokenizer.ggml.pre"), Some("gpt-4o"));
    let t = |name: &str| f.tensor(name).unwrap();
    assert_eq!(t("blk.0.ffn_gate_exps.weight").ggml_type, GgmlType::MXFP4);
    assert_eq!(t("blk.0.ffn_down_exps.weight").dims, vec![128, 64, 4]);
    assert_eq!(t("blk.0.ffn_down_exps.bias").dims, vec![64, 4]);
    assert_eq!(t("blk.0.attn_q.weight").ggml_type, GgmlType::Q8_0);
    assert_eq!(t("blk.0.ffn_gate_inp.weight").ggml_type, GgmlType::F32);
    assert_eq!(t("blk.1.attn_sinks.weight").dims, vec![4]);
    assert!(f.tensor("blk.0.post_attention_norm.weight").is_some());
    assert!(f.tensor("blk.0.ffn_norm.weight").is_none());
    let tokens = f.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap();
    let tokens = tokens.as_strings().unwrap();
    let eos = f.get_u64("tokenizer.ggml.eos_token_id").unwrap() as usize;
    assert_eq!(tokens[eos], "<|return|>");
    assert!(tokens.iter().any(|t| t == "<|channel|>"));
}
