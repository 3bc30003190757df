//! gpt-oss's tiny models (`general.architecture` `gpt-oss`), as
//! llama.cpp's converter writes openai/gpt-oss-20b: Q/K/V and output
//! biases, a sink logit per head, alternating sliding-window and full
//! layers, a biased router over experts with biases of their own (3-D
//! tensors), YaRN RoPE, the o200k (`gpt-4o`) BPE tokenizer with the
//! harmony specials. With `MXFP4_MOE` the experts are MXFP4 and the other
//! matrices Q8_0, as llama-quantize's `MXFP4_MOE` leaves them.

use super::{Fill, GgmlType, GgufWriter, Planned, TinyLlamaSpec, Value};
use crate::tiny::vocab::bpe_vocab;
use crate::tiny::TOKEN_TYPE_CONTROL;
use crate::FileType;

/// o200k_harmony's special tokens the format uses, in their order.
pub const GPT_OSS_SPECIAL_TOKENS: [(&str, i32); 9] = [
    ("<|startoftext|>", TOKEN_TYPE_CONTROL),
    ("<|endoftext|>", TOKEN_TYPE_CONTROL),
    ("<|return|>", TOKEN_TYPE_CONTROL),
    ("<|constrain|>", TOKEN_TYPE_CONTROL),
    ("<|channel|>", TOKEN_TYPE_CONTROL),
    ("<|start|>", TOKEN_TYPE_CONTROL),
    ("<|end|>", TOKEN_TYPE_CONTROL),
    ("<|message|>", TOKEN_TYPE_CONTROL),
    ("<|call|>", TOKEN_TYPE_CONTROL),
];

/// gpt-oss's chat template (harmony), as its GGUFs carry it.
pub const GPT_OSS_CHAT_TEMPLATE: &str = include_str!("gptoss.jinja");

/// The sliding window when the spec leaves it 0 (gpt-oss-20b's).
pub(super) const DEFAULT_WINDOW: u32 = 128;

impl TinyLlamaSpec {
    /// The type of gpt-oss matrix `part`: experts MXFP4 and the rest Q8_0
    /// for `MXFP4_MOE`, else the file's one type.
    fn gpt_oss_type(&self, expert: bool) -> GgmlType {
        match (self.ftype, expert) {
            (FileType::MXFP4_MOE, true) => GgmlType::MXFP4,
            (FileType::MXFP4_MOE, false) => GgmlType::Q8_0,
            _ => self.weight_type().unwrap_or(GgmlType::F32),
        }
    }
}

/// Every tensor of a gpt-oss model, in the order written.
pub(super) fn plan(spec: &TinyLlamaSpec) -> Vec<Planned> {
    let embd = u64::from(spec.n_embd);
    let q = u64::from(spec.head_dim()) * u64::from(spec.n_head);
    let kv = u64::from(spec.head_dim()) * u64::from(spec.n_head_kv);
    let ff = u64::from(spec.n_ff);
    let n_exp = u64::from(spec.n_expert);
    let n_vocab = u64::from(spec.n_vocab);
    let mut out = Vec::new();
    let mut push = |name: String, dims: Vec<u64>, ggml_type, fill| {
        out.push(Planned {
            source: name.clone(),
            name,
            dims,
            ggml_type,
            fill,
        })
    };
    let dense = spec.gpt_oss_type(false);
    push(
        "token_embd.weight".into(),
        vec![embd, n_vocab],
        dense,
        Fill::Matrix,
    );
    for layer in 0..spec.n_layer {
        let w = |p: &str| format!("blk.{layer}.{p}.weight");
        let b = |p: &str| format!("blk.{layer}.{p}.bias");
        push(w("attn_norm"), vec![embd], GgmlType::F32, Fill::Norm);
        for (part, n) in [("attn_q", q), ("attn_k", kv), ("attn_v", kv)] {
            push(w(part), vec![embd, n], dense, Fill::Matrix);
            push(b(part), vec![n], GgmlType::F32, Fill::Scaled(0.1));
        }
        push(w("attn_output"), vec![q, embd], dense, Fill::Matrix);
        push(
            b("attn_output"),
            vec![embd],
            GgmlType::F32,
            Fill::Scaled(0.1),
        );
        // Learned sinks of a few units, as the real ones are.
        let heads = u64::from(spec.n_head);
        push(
            w("attn_sinks"),
            vec![heads],
            GgmlType::F32,
            Fill::Scaled(2.0),
        );
        push(
            w("post_attention_norm"),
            vec![embd],
            GgmlType::F32,
            Fill::Norm,
        );
        // The router stays F32 (llama-quantize leaves `ffn_gate_inp`).
        push(
            w("ffn_gate_inp"),
            vec![embd, n_exp],
            GgmlType::F32,
            Fill::Matrix,
        );
        push(
            b("ffn_gate_inp"),
            vec![n_exp],
            GgmlType::F32,
            Fill::Scaled(0.5),
        );
        let experts = spec.gpt_oss_type(true);
        for (part, ne0, ne1) in [
            ("ffn_gate_exps", embd, ff),
            ("ffn_up_exps", embd, ff),
            ("ffn_down_exps", ff, embd),
        ] {
            push(w(part), vec![ne0, ne1, n_exp], experts, Fill::Matrix);
            push(b(part), vec![ne1, n_exp], GgmlType::F32, Fill::Scaled(0.1));
        }
    }
    push(
        "output_norm.weight".into(),
        vec![embd],
        GgmlType::F32,
        Fill::Norm,
    );
    push(
        "output.weight".into(),
        vec![embd, n_vocab],
        dense,
        Fill::Matrix,
    );
    out
}

/// The metadata after the common keys.
pub(super) fn metadata(spec: &TinyLlamaSpec, w: &mut GgufWriter) -> Result<(), crate::GgufError> {
    let k = |s: &str| format!("gpt-oss.{s}");
    w.add_kv(k("expert_count"), spec.n_expert)?;
    w.add_kv(k("expert_used_count"), spec.n_expert_used)?;
    w.add_kv(k("expert_feed_forward_length"), spec.n_ff)?;
    w.add_kv(k("attention.key_length"), spec.head_dim())?;
    w.add_kv(k("attention.value_length"), spec.head_dim())?;
    w.add_kv(k("attention.layer_norm_rms_epsilon"), 1e-5f32)?;
    w.add_kv(k("rope.freq_base"), 150_000.0f32)?;
    let window = match spec.sliding_window {
        0 => DEFAULT_WINDOW,
        n => n,
    };
    w.add_kv(k("attention.sliding_window"), window)?;
    // YaRN from the original context to the model's (gpt-oss-20b: 4096 to
    // 131072, a factor of 32).
    if spec.rope_orig_context > 0 {
        let factor = spec.context_length as f32 / spec.rope_orig_context as f32;
        w.add_kv(k("rope.scaling.type"), "yarn")?;
        w.add_kv(k("rope.scaling.factor"), factor)?;
        w.add_kv(
            k("rope.scaling.original_context_length"),
            spec.rope_orig_context,
        )?;
    }
    w.add_kv("general.file_type", spec.ftype.as_u32())?;
    Ok(())
}

/// The tokenizer: o200k's kind of BPE (`gpt-4o` pre-tokenizer), harmony's
/// specials, `<|return|>` as the end of a reply as in gpt-oss's files.
pub(super) fn vocab(spec: &TinyLlamaSpec, w: &mut GgufWriter) -> Result<(), crate::GgufError> {
    let (tokens, types, merges, _) =
        bpe_vocab(spec.n_vocab, &GPT_OSS_SPECIAL_TOKENS, "<|reserved_");
    let id = |text: &str| {
        tokens
            .iter()
            .position(|t| t == text)
            .map_or(0, |i| i as u32)
    };
    let (bos, eos, pad) = (id("<|startoftext|>"), id("<|return|>"), id("<|endoftext|>"));
    w.add_kv("tokenizer.ggml.model", "gpt2")?;
    w.add_kv("tokenizer.ggml.pre", "gpt-4o")?;
    w.add_kv("tokenizer.ggml.tokens", tokens)?;
    w.add_kv("tokenizer.ggml.token_type", types)?;
    w.add_kv("tokenizer.ggml.merges", merges)?;
    w.add_kv("tokenizer.ggml.bos_token_id", bos)?;
    w.add_kv("tokenizer.ggml.eos_token_id", eos)?;
    w.add_kv("tokenizer.ggml.padding_token_id", pad)?;
    w.add_kv("tokenizer.ggml.add_bos_token", Value::Bool(false))?;
    if spec.with_chat_template {
        w.add_kv("tokenizer.chat_template", GPT_OSS_CHAT_TEMPLATE)?;
    }
    Ok(())
}
