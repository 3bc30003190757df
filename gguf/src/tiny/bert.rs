//! Tiny BERT-family encoders (`bert`, `nomic-bert`) as llama.cpp's
//! converter writes them: a WordPiece vocabulary in its phantom-space form
//! (`▁word` starts a word, `piece` continues one; `[CLS]`, `[SEP]`), learned
//! position embeddings and biases (`bert`) or fused QKV, SwiGLU and rotary
//! positions (`nomic-bert`), post-norm LayerNorms with biases; with rank
//! pooling (4), a reranker's classification head (`cls`, `cls.output`).

use std::collections::BTreeSet;

use super::super::writer::GgufWriter;
use super::super::{GgmlType, GgufError, Value};
use super::{random_values, TinyArch, TinyLlamaSpec};
use super::{TOKEN_TYPE_CONTROL, TOKEN_TYPE_NORMAL, TOKEN_TYPE_UNKNOWN};

/// The special tokens first in the vocabulary: `[PAD]`, `[UNK]`, `[CLS]`,
/// `[SEP]`, `[MASK]` (ids 0 to 4).
pub const BERT_SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Words the vocabulary holds whole (lower case, as uncased BERT).
const WORDS: &str = "the quick brown fox jumps over lazy dog a llama is an animal \
that lives in hills and eats grass hello world how are you today i am fine thank \
model reads question answers sentence embedding search document query cat sat on mat";

/// A WordPiece vocabulary of `n_vocab` tokens: the specials, every printable
/// ASCII character as a word start (`▁a`) and a continuation (`a`), the
/// built-in words, then `[unusedN]` fillers.
pub(crate) fn wordpiece_vocab(n_vocab: u32) -> (Vec<String>, Vec<i32>) {
    let mut tokens: Vec<String> = BERT_SPECIAL_TOKENS.iter().map(|s| (*s).into()).collect();
    let mut types = vec![
        TOKEN_TYPE_CONTROL,
        TOKEN_TYPE_UNKNOWN,
        TOKEN_TYPE_CONTROL,
        TOKEN_TYPE_CONTROL,
        TOKEN_TYPE_CONTROL,
    ];
    let mut seen: BTreeSet<String> = tokens.iter().cloned().collect();
    let chars = (b'!'..=b'~')
        .filter(|c| !c.is_ascii_uppercase())
        .map(char::from);
    let pieces = chars
        .clone()
        .map(|c| format!("\u{2581}{c}"))
        .chain(chars.map(String::from))
        .chain(WORDS.split_whitespace().map(|w| format!("\u{2581}{w}")));
    for p in pieces {
        if tokens.len() >= n_vocab as usize {
            break;
        }
        if seen.insert(p.clone()) {
            tokens.push(p);
            types.push(TOKEN_TYPE_NORMAL);
        }
    }
    let mut n = 0;
    while tokens.len() < n_vocab as usize {
        tokens.push(format!("[unused{n}]"));
        types.push(TOKEN_TYPE_CONTROL);
        n += 1;
    }
    (tokens, types)
}

/// The fewest tokens a tiny encoder's vocabulary has (specials, characters
/// in both forms).
pub(crate) const MIN_BERT_VOCAB: u32 = 5 + 2 * 68;

/// Writes the encoder `spec` describes (its arch `Bert` or `NomicBert`).
pub(crate) fn build(spec: &TinyLlamaSpec) -> Result<GgufWriter, GgufError> {
    let arch = spec.arch.name();
    let k = |s: &str| format!("{arch}.{s}");
    let nomic = spec.arch == TinyArch::NomicBert;
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", arch)?;
    w.add_kv("general.name", format!("tiny-{arch}"))?;
    w.add_kv(k("context_length"), spec.context_length)?;
    w.add_kv(k("embedding_length"), spec.n_embd)?;
    w.add_kv(k("feed_forward_length"), spec.n_ff)?;
    w.add_kv(k("block_count"), spec.n_layer)?;
    w.add_kv(k("attention.head_count"), spec.n_head)?;
    w.add_kv(k("attention.layer_norm_epsilon"), 1e-12f32)?;
    w.add_kv("general.file_type", spec.ftype.as_u32())?;
    w.add_kv(k("attention.causal"), false)?;
    // all-minilm and nomic-embed-text pool by mean (1); bge and mxbai by CLS (2).
    w.add_kv(k("pooling_type"), spec.pooling.unwrap_or(1))?;
    if nomic {
        w.add_kv(k("rope.freq_base"), 1000.0f32)?;
    }
    let (tokens, types) = wordpiece_vocab(spec.n_vocab);
    w.add_kv("tokenizer.ggml.model", "bert")?;
    w.add_kv("tokenizer.ggml.token_type_count", 2u32)?;
    w.add_kv("tokenizer.ggml.tokens", tokens)?;
    w.add_kv("tokenizer.ggml.token_type", types)?;
    w.add_kv("tokenizer.ggml.unknown_token_id", 1u32)?;
    w.add_kv("tokenizer.ggml.bos_token_id", 2u32)?;
    w.add_kv("tokenizer.ggml.cls_token_id", 2u32)?;
    w.add_kv("tokenizer.ggml.seperator_token_id", 3u32)?;
    w.add_kv("tokenizer.ggml.padding_token_id", 0u32)?;
    w.add_kv("tokenizer.ggml.mask_token_id", 4u32)?;
    w.add_kv("general.quantization_version", Value::U32(2))?;

    let wt = spec.weight_type().unwrap_or(GgmlType::F32);
    let (e, ff, v) = (
        u64::from(spec.n_embd),
        u64::from(spec.n_ff),
        u64::from(spec.n_vocab),
    );
    let seed = spec.seed;
    let matrix = |w: &mut GgufWriter, name: &str, ne0: u64, ne1: u64| {
        let values = random_values(seed, name, ne0 * ne1, |u| u / (ne0 as f32).sqrt());
        w.add_tensor_f32(name, &[ne0, ne1], wt, &values)
    };
    let vector = |w: &mut GgufWriter, name: &str, n: u64, base: f32| {
        let values = random_values(seed, name, n, |u| base + 0.1 * u);
        w.add_tensor_f32(name, &[n], GgmlType::F32, &values)
    };
    let norm = |w: &mut GgufWriter, name: &str| -> Result<(), GgufError> {
        vector(w, &format!("{name}.weight"), e, 1.0)?;
        vector(w, &format!("{name}.bias"), e, 0.0)
    };
    matrix(&mut w, "token_embd.weight", e, v)?;
    let table = |w: &mut GgufWriter, name: &str, rows: u64| {
        let values = random_values(seed, name, e * rows, |u| 0.5 * u);
        w.add_tensor_f32(name, &[e, rows], GgmlType::F32, &values)
    };
    table(&mut w, "token_types.weight", 2)?;
    if !nomic {
        table(
            &mut w,
            "position_embd.weight",
            u64::from(spec.context_length),
        )?;
    }
    norm(&mut w, "token_embd_norm")?;
    for i in 0..spec.n_layer {
        let n = |p: &str| format!("blk.{i}.{p}.weight");
        let b = |p: &str| format!("blk.{i}.{p}.bias");
        if nomic {
            matrix(&mut w, &n("attn_qkv"), e, 3 * e)?;
            matrix(&mut w, &n("attn_output"), e, e)?;
        } else {
            for p in ["attn_q", "attn_k", "attn_v"] {
                matrix(&mut w, &n(p), e, e)?;
                vector(&mut w, &b(p), e, 0.0)?;
            }
            matrix(&mut w, &n("attn_output"), e, e)?;
            vector(&mut w, &b("attn_output"), e, 0.0)?;
        }
        norm(&mut w, &format!("blk.{i}.attn_output_norm"))?;
        matrix(&mut w, &n("ffn_up"), e, ff)?;
        if nomic {
            matrix(&mut w, &n("ffn_gate"), e, ff)?;
        } else {
            vector(&mut w, &b("ffn_up"), ff, 0.0)?;
        }
        matrix(&mut w, &n("ffn_down"), ff, e)?;
        if !nomic {
            vector(&mut w, &b("ffn_down"), e, 0.0)?;
        }
        norm(&mut w, &format!("blk.{i}.layer_output_norm"))?;
    }
    if spec.pooling == Some(4) {
        // A cross-encoder reranker (rank pooling): the classification head
        // llama.cpp reads, dense + tanh then one logit (`cls.output`). In
        // F32 whatever the ftype: with F16 head weights both sides round
        // the [CLS] state to f16 first, and the encoders' 1e-5 differences
        // flip some of those roundings, which moves the score by about
        // 1e-4, the tolerance of the reference check.
        let head = |w: &mut GgufWriter, name: &str, ne0: u64, ne1: u64| {
            let values = random_values(seed, name, ne0 * ne1, |u| u / (ne0 as f32).sqrt());
            w.add_tensor_f32(name, &[ne0, ne1], GgmlType::F32, &values)
        };
        head(&mut w, "cls.weight", e, e)?;
        vector(&mut w, "cls.bias", e, 0.0)?;
        head(&mut w, "cls.output.weight", e, 1)?;
        vector(&mut w, "cls.output.bias", 1, 0.0)?;
    }
    Ok(w)
}
