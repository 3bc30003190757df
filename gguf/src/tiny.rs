//! Tiny GGUF models with deterministic random weights and their
//! architecture's kind of tokenizer, so tests run real models without a
//! download: Llama 3, Qwen 3 (dense and MoE), Phi-3 and BERT shaped
//! ([`TinyArch`]).
//!
//! The files follow what llama.cpp's loader expects for each
//! `general.architecture`: the same metadata keys, tensor names and ggml
//! dimension order as `convert_hf_to_gguf.py` writes for Meta-Llama-3,
//! Qwen3 and Phi-3.5-mini.

use std::io::{self, Write};

use super::writer::GgufWriter;
use super::{divides, FileType, GgmlType, Value};

mod bert;
mod gptoss;
mod vocab;
pub use gptoss::{GPT_OSS_CHAT_TEMPLATE, GPT_OSS_SPECIAL_TOKENS};
use vocab::{bpe_vocab, spm_vocab};
pub use vocab::{
    tiny_vocab, SpmVocab, TinyVocab, SPECIAL_TOKENS, TOKEN_TYPE_BYTE, TOKEN_TYPE_CONTROL,
    TOKEN_TYPE_NORMAL, TOKEN_TYPE_UNKNOWN, TOKEN_TYPE_USER_DEFINED,
};

/// The Jinja chat template of Meta-Llama-3-Instruct.
pub const LLAMA3_CHAT_TEMPLATE: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// Keeps a mistyped spec from trying to allocate gigabytes.
const MAX_PARAMETERS: u64 = 1 << 31;

/// The architecture a tiny model is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TinyArch {
    /// Llama 3: the `llama-bpe` tokenizer, Llama 3's chat template.
    #[default]
    Llama,
    /// Qwen 3 (dense): per-head Q/K norms, no biases, `qwen2` BPE
    /// tokenizer, ChatML specials and `<think>`, Qwen 3's chat template.
    Qwen3,
    /// Qwen 3 MoE (Qwen3-30B-A3B's kind): Qwen 3's attention and tokenizer,
    /// a router and `n_expert` experts in 3-D tensors instead of the
    /// feed-forward matrices (`n_ff` is one expert's size).
    Qwen3Moe,
    /// Phi-3/3.5: fused `attn_qkv` and gate/up `ffn_up`, `longrope` factors
    /// past `rope_orig_context`, a SentencePiece tokenizer, Phi-3.5's
    /// chat template.
    Phi3,
    /// BERT encoder (all-minilm's shape): embeddings only, WordPiece.
    Bert,
    /// Nomic's BERT (nomic-embed-text's): fused QKV, SwiGLU, rotary.
    NomicBert,
    /// gpt-oss: attention sinks and biases, alternating sliding-window
    /// layers, biased experts, YaRN, the o200k tokenizer and harmony.
    GptOss,
}

impl TinyArch {
    /// `general.architecture`.
    pub fn name(self) -> &'static str {
        match self {
            TinyArch::Llama => "llama",
            TinyArch::Qwen3 => "qwen3",
            TinyArch::Qwen3Moe => "qwen3moe",
            TinyArch::Phi3 => "phi3",
            TinyArch::Bert => "bert",
            TinyArch::NomicBert => "nomic-bert",
            TinyArch::GptOss => "gpt-oss",
        }
    }

    /// The architecture named `name`, if the generator writes it.
    pub fn from_name(name: &str) -> Option<TinyArch> {
        [
            TinyArch::Llama,
            TinyArch::Qwen3,
            TinyArch::Qwen3Moe,
            TinyArch::Phi3,
            TinyArch::Bert,
            TinyArch::NomicBert,
            TinyArch::GptOss,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    /// The special tokens written last in the vocabulary, with their types.
    fn specials(self) -> Vec<(&'static str, i32)> {
        match self {
            TinyArch::Llama => SPECIAL_TOKENS.map(|s| (s, TOKEN_TYPE_CONTROL)).to_vec(),
            TinyArch::Qwen3 | TinyArch::Qwen3Moe => QWEN3_SPECIAL_TOKENS.to_vec(),
            TinyArch::Phi3 => PHI3_SPECIAL_TOKENS.to_vec(),
            TinyArch::GptOss => GPT_OSS_SPECIAL_TOKENS.to_vec(),
            TinyArch::Bert | TinyArch::NomicBert => bert::BERT_SPECIAL_TOKENS
                .map(|(s, _)| (s, TOKEN_TYPE_CONTROL))
                .to_vec(),
        }
    }
}

/// Qwen 3's special tokens in their order, with their types.
pub const QWEN3_SPECIAL_TOKENS: [(&str, i32); 7] = [
    ("<|endoftext|>", TOKEN_TYPE_CONTROL),
    ("<|im_start|>", TOKEN_TYPE_CONTROL),
    ("<|im_end|>", TOKEN_TYPE_CONTROL),
    ("<tool_call>", TOKEN_TYPE_USER_DEFINED),
    ("</tool_call>", TOKEN_TYPE_USER_DEFINED),
    ("<think>", TOKEN_TYPE_USER_DEFINED),
    ("</think>", TOKEN_TYPE_USER_DEFINED),
];

/// Phi-3's added tokens in their order, with their types.
pub const PHI3_SPECIAL_TOKENS: [(&str, i32); 5] = [
    ("<|endoftext|>", TOKEN_TYPE_CONTROL),
    ("<|assistant|>", TOKEN_TYPE_CONTROL),
    ("<|system|>", TOKEN_TYPE_CONTROL),
    ("<|end|>", TOKEN_TYPE_CONTROL),
    ("<|user|>", TOKEN_TYPE_CONTROL),
];

/// Qwen3-0.6B's chat template (thinking, tools).
pub const QWEN3_CHAT_TEMPLATE: &str = include_str!("tiny/qwen3.jinja");

/// Phi-3.5-mini-instruct's chat template.
pub const PHI3_CHAT_TEMPLATE: &str = include_str!("tiny/phi3.jinja");

/// The shape of a tiny model. Matrices use `ftype`'s type (for `Q4_K_M`,
/// llama.cpp's mix: Q6_K for the output and some `attn_v` / `ffn_down`,
/// Q4_K elsewhere); norms are always F32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyLlamaSpec {
    /// Which architecture's tensors, metadata and tokenizer.
    pub arch: TinyArch,
    /// Transformer blocks.
    pub n_layer: u32,
    /// Hidden size; a multiple of 32 for Q8_0 / Q4_0, of 256 for Q4_K_M.
    pub n_embd: u32,
    /// Attention heads.
    pub n_head: u32,
    /// Key/value heads (grouped-query attention); divides `n_head`.
    pub n_head_kv: u32,
    /// Size of one head; 0 for `n_embd / n_head`. Another value is written
    /// as `attention.key_length` (Qwen 3's heads are wider than that).
    pub head_dim: u32,
    /// Dimensions RoPE rotates; 0 for the whole head (Phi-4-mini rotates 3/4).
    pub rope_dim: u32,
    /// Feed-forward size; a multiple of 32 for Q8_0 / Q4_0, of 256 for Q4_K_M.
    pub n_ff: u32,
    /// Tokens: 256 bytes, learned merges, then the special tokens.
    pub n_vocab: u32,
    /// `{arch}.context_length`.
    pub context_length: u32,
    /// Phi-3: the context RoPE's short factors are for
    /// (`rope.scaling.original_context_length`); 0 writes no `longrope`.
    pub rope_orig_context: u32,
    /// F32, F16, Q8_0, Q4_0 or Q4_K_M.
    pub ftype: FileType,
    /// Seed of the weights; the same spec gives the same bytes.
    pub seed: u64,
    /// Whether to write `tokenizer.chat_template` (the architecture's). With
    /// it, `eos_token_id` is the end of a turn as in the instruct models
    /// (`<|eot_id|>`, `<|im_end|>`), without it the end of text.
    pub with_chat_template: bool,
    /// Encoders: `{arch}.pooling_type` (1 mean, 2 CLS, 4 rank: a reranker
    /// with a classification head); `None` writes 1.
    pub pooling: Option<u32>,
    /// gpt-oss: how far back its sliding-window layers see; 0 for 128.
    pub sliding_window: u32,
    /// Mixture of experts (qwen3moe): experts per layer; 0 for dense.
    pub n_expert: u32,
    /// Experts each token runs (the router's top-k).
    pub n_expert_used: u32,
    /// Whether `output.weight` is its own matrix (the default), left out
    /// (tied embeddings, as Llama 3.2 1B/3B ship), or a copy of the token
    /// embeddings (the same model, untied, for comparing the two).
    pub output: OutputWeight,
}

/// How a tiny model's output matrix is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputWeight {
    /// Random weights of its own.
    #[default]
    Own,
    /// No `output.weight`: the token embeddings serve.
    Tied,
    /// `output.weight` holds the token embeddings' values.
    CopyOfEmbeddings,
}

impl Default for TinyLlamaSpec {
    fn default() -> Self {
        TinyLlamaSpec {
            arch: TinyArch::Llama,
            n_layer: 2,
            n_embd: 64,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 0,
            rope_dim: 0,
            n_ff: 128,
            // 256 byte tokens + 59 merges + 5 specials.
            n_vocab: 320,
            context_length: 2048,
            rope_orig_context: 0,
            ftype: FileType::F32,
            seed: 42,
            with_chat_template: true,
            pooling: None,
            sliding_window: 0,
            n_expert: 0,
            n_expert_used: 0,
            output: OutputWeight::Own,
        }
    }
}

/// What a planned tensor holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fill {
    /// Uniform in ±1/sqrt(ne0), which keeps activations near unit scale.
    Matrix,
    /// Near 1 (a norm's gain).
    Norm,
    /// RoPE frequency factors between 1 and `1 + spread`.
    Factors(f32),
    /// Uniform in ±the value (biases, sinks).
    Scaled(f32),
}

/// One tensor of a tiny model: name, ggml dims, type and contents;
/// `source` names the random stream (a copy reads another tensor's).
struct Planned {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    fill: Fill,
    source: String,
}

/// llama.cpp's `use_more_bits`: the layers `Q4_K_M` gives Q6_K
/// `attn_v` and `ffn_down` (the first and last eighth, every third between).
fn more_bits(layer: u32, n_layer: u32) -> bool {
    layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2
}

impl TinyLlamaSpec {
    /// The size of one attention head.
    pub fn head_dim(&self) -> u32 {
        match self.head_dim {
            0 => self.n_embd.checked_div(self.n_head).unwrap_or(0),
            d => d,
        }
    }

    /// The dimensions RoPE rotates per head.
    pub fn rope_dims(&self) -> u32 {
        match self.rope_dim {
            0 => self.head_dim(),
            d => d,
        }
    }

    /// The ggml type of the weight matrices (the main one for a mix).
    pub fn weight_type(&self) -> Option<GgmlType> {
        match self.ftype {
            FileType::F32 => Some(GgmlType::F32),
            FileType::F16 => Some(GgmlType::F16),
            FileType::Q8_0 => Some(GgmlType::Q8_0),
            FileType::Q4_0 => Some(GgmlType::Q4_0),
            FileType::Q4_K_M => Some(GgmlType::Q4_K),
            // gpt-oss's: MXFP4 experts, Q8_0 elsewhere (blocks of 32).
            FileType::MXFP4_MOE if self.arch == TinyArch::GptOss => Some(GgmlType::Q8_0),
            _ => None,
        }
    }

    /// The type of matrix `part` (`attn_v`, `output`) of `layer`.
    fn matrix_type(&self, part: &str, layer: u32) -> GgmlType {
        let main = self.weight_type().unwrap_or(GgmlType::F32);
        if self.ftype != FileType::Q4_K_M {
            return main;
        }
        match part {
            "output" => GgmlType::Q6_K,
            "attn_v" | "ffn_down" | "ffn_down_exps" if more_bits(layer, self.n_layer) => {
                GgmlType::Q6_K
            }
            _ => main,
        }
    }

    /// Every tensor, in the order written.
    fn plan(&self) -> Vec<Planned> {
        if self.arch == TinyArch::GptOss {
            return gptoss::plan(self);
        }
        let embd = u64::from(self.n_embd);
        let q = u64::from(self.head_dim()) * u64::from(self.n_head);
        let kv = u64::from(self.head_dim()) * u64::from(self.n_head_kv);
        let ff = u64::from(self.n_ff);
        let n_vocab = u64::from(self.n_vocab);
        let mut out = Vec::new();
        let push = |out: &mut Vec<Planned>, name: String, dims: Vec<u64>, ggml_type, fill| {
            out.push(Planned {
                source: name.clone(),
                name,
                dims,
                ggml_type,
                fill,
            })
        };
        if self.arch == TinyArch::Phi3 && self.rope_orig_context > 0 {
            let half = u64::from(self.rope_dims() / 2);
            for (name, spread) in [("long", 4.0), ("short", 0.5)] {
                let name = format!("rope_factors_{name}.weight");
                push(
                    &mut out,
                    name,
                    vec![half],
                    GgmlType::F32,
                    Fill::Factors(spread),
                );
            }
        }
        let t = self.matrix_type("token_embd", 0);
        push(
            &mut out,
            "token_embd.weight".into(),
            vec![embd, n_vocab],
            t,
            Fill::Matrix,
        );
        for layer in 0..self.n_layer {
            let name = |part: &str| format!("blk.{layer}.{part}.weight");
            let m = |out: &mut Vec<Planned>, part: &str, ne0: u64, ne1: u64| {
                let t = self.matrix_type(part, layer);
                push(out, name(part), vec![ne0, ne1], t, Fill::Matrix);
            };
            let norm = |out: &mut Vec<Planned>, part: &str, n: u64| {
                push(out, name(part), vec![n], GgmlType::F32, Fill::Norm);
            };
            norm(&mut out, "attn_norm", embd);
            if self.arch == TinyArch::Phi3 {
                m(&mut out, "attn_qkv", embd, q + 2 * kv);
            } else {
                m(&mut out, "attn_q", embd, q);
                m(&mut out, "attn_k", embd, kv);
                m(&mut out, "attn_v", embd, kv);
            }
            m(&mut out, "attn_output", q, embd);
            if matches!(self.arch, TinyArch::Qwen3 | TinyArch::Qwen3Moe) {
                let hd = u64::from(self.head_dim());
                norm(&mut out, "attn_q_norm", hd);
                norm(&mut out, "attn_k_norm", hd);
            }
            norm(&mut out, "ffn_norm", embd);
            if self.arch == TinyArch::Qwen3Moe {
                // The router stays F32 (llama-quantize leaves it); experts
                // are the matrices stacked along ggml's third dimension.
                let n_exp = u64::from(self.n_expert);
                push(
                    &mut out,
                    name("ffn_gate_inp"),
                    vec![embd, n_exp],
                    GgmlType::F32,
                    Fill::Matrix,
                );
                for (part, ne0, ne1) in [
                    ("ffn_gate_exps", embd, ff),
                    ("ffn_up_exps", embd, ff),
                    ("ffn_down_exps", ff, embd),
                ] {
                    let t = self.matrix_type(part, layer);
                    push(&mut out, name(part), vec![ne0, ne1, n_exp], t, Fill::Matrix);
                }
                continue;
            } else if self.arch == TinyArch::Phi3 {
                m(&mut out, "ffn_up", embd, 2 * ff);
            } else {
                m(&mut out, "ffn_gate", embd, ff);
                m(&mut out, "ffn_up", embd, ff);
            }
            m(&mut out, "ffn_down", ff, embd);
        }
        push(
            &mut out,
            "output_norm.weight".into(),
            vec![embd],
            GgmlType::F32,
            Fill::Norm,
        );
        let t = self.matrix_type("output", 0);
        match self.output {
            OutputWeight::Own => push(
                &mut out,
                "output.weight".into(),
                vec![embd, n_vocab],
                t,
                Fill::Matrix,
            ),
            OutputWeight::Tied => {}
            OutputWeight::CopyOfEmbeddings => out.push(Planned {
                name: "output.weight".into(),
                dims: vec![embd, n_vocab],
                ggml_type: t,
                fill: Fill::Matrix,
                source: "token_embd.weight".into(),
            }),
        }
        out
    }

    /// The number of weights the model will have, `None` on overflow.
    pub fn parameter_count(&self) -> Option<u64> {
        // Checked first: the plan multiplies the dimensions.
        let big = [self.n_embd, self.n_ff, self.n_vocab, self.head_dim()];
        let counts = [self.n_head, self.n_layer, self.n_expert];
        if big.iter().any(|&d| d > 1 << 24) || counts.iter().any(|&c| c > 1 << 12) {
            return None;
        }
        self.plan().iter().try_fold(0u64, |sum, t| {
            sum.checked_add(t.dims.iter().try_fold(1u64, |p, &d| p.checked_mul(d))?)
        })
    }

    /// The fewest tokens the vocabulary can have.
    fn min_vocab(&self) -> u32 {
        let specials = self.arch.specials().len() as u32;
        match self.arch {
            // <unk>, <s>, </s>, 256 bytes, at least one piece.
            TinyArch::Phi3 => 3 + 256 + 1 + specials,
            TinyArch::Bert | TinyArch::NomicBert => bert::MIN_BERT_VOCAB,
            _ => 256 + specials,
        }
    }

    /// Checks the spec describes a model llama.cpp can load.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("n_layer", self.n_layer),
            ("n_embd", self.n_embd),
            ("n_head", self.n_head),
            ("n_head_kv", self.n_head_kv),
            ("n_ff", self.n_ff),
            ("context_length", self.context_length),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{field}` must be at least 1"));
        }
        let Some(weight_type) = self.weight_type() else {
            return Err(format!(
                "`ftype` {} is not supported; use F32, F16, Q8_0, Q4_0, Q4_K_M (or MXFP4_MOE for gpt-oss)",
                self.ftype
            ));
        };
        if self.head_dim == 0 && !divides(u64::from(self.n_head), u64::from(self.n_embd)) {
            return Err(format!(
                "`n_embd` ({}) must be a multiple of `n_head` ({})",
                self.n_embd, self.n_head
            ));
        }
        if !divides(2, u64::from(self.head_dim())) {
            return Err(format!(
                "the head size ({}) must be even for RoPE",
                self.head_dim()
            ));
        }
        if self.rope_dims() > self.head_dim() || !divides(2, u64::from(self.rope_dims())) {
            return Err(format!(
                "`rope_dim` ({}) must be even and at most the head size ({})",
                self.rope_dims(),
                self.head_dim()
            ));
        }
        if self.arch == TinyArch::Phi3 && self.head_dim() * self.n_head != self.n_embd {
            return Err("phi3's heads must fill `n_embd` (`head_dim` 0)".into());
        }
        if !divides(u64::from(self.n_head_kv), u64::from(self.n_head)) {
            return Err(format!(
                "`n_head` ({}) must be a multiple of `n_head_kv` ({})",
                self.n_head, self.n_head_kv
            ));
        }
        if matches!(self.arch, TinyArch::Qwen3Moe | TinyArch::GptOss)
            && (self.n_expert == 0 || self.n_expert_used == 0 || self.n_expert_used > self.n_expert)
        {
            return Err(format!(
                "{} needs `n_expert` ≥ 1 and `n_expert_used` from 1 to it (got {} and {})",
                self.arch.name(),
                self.n_expert,
                self.n_expert_used
            ));
        }
        let min_vocab = self.min_vocab();
        if self.n_vocab < min_vocab {
            return Err(format!(
                "`n_vocab` ({}) must be at least {min_vocab}: the byte tokens and {} special tokens",
                self.n_vocab,
                self.arch.specials().len()
            ));
        }
        // Every matrix's ne[0] is n_embd, except ffn_down's (n_ff) and
        // attn_output's (the heads' width).
        let block = weight_type.block_size();
        let heads = self.head_dim().saturating_mul(self.n_head);
        for (field, value) in [
            ("n_embd", self.n_embd),
            ("n_ff", self.n_ff),
            ("n_head * head_dim", heads),
        ] {
            if !divides(block, u64::from(value)) {
                return Err(format!(
                    "`{field}` ({value}) must be a multiple of {block} for {weight_type} weights"
                ));
            }
        }
        match self.parameter_count() {
            Some(n) if n <= MAX_PARAMETERS => Ok(()),
            _ => Err(format!(
                "the model would have more than {MAX_PARAMETERS} parameters; this generator is for tiny models"
            )),
        }
    }
}

/// Writes the tiny model `spec` describes as a GGUF v3 file.
pub fn write_tiny_llama(spec: &TinyLlamaSpec, w: &mut impl Write) -> io::Result<()> {
    tiny_llama_writer(spec)?.write_to(w)
}

/// The tiny model as bytes.
pub fn tiny_llama_bytes(spec: &TinyLlamaSpec) -> io::Result<Vec<u8>> {
    Ok(tiny_llama_writer(spec)?.to_bytes())
}

/// The tiny model as a writer, for tests that add or change entries.
pub fn tiny_llama_writer(spec: &TinyLlamaSpec) -> io::Result<GgufWriter> {
    spec.validate()
        .map_err(|msg| io::Error::new(io::ErrorKind::InvalidInput, msg))?;
    build(spec).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn build(spec: &TinyLlamaSpec) -> Result<GgufWriter, super::GgufError> {
    if matches!(spec.arch, TinyArch::Bert | TinyArch::NomicBert) {
        return bert::build(spec);
    }
    let arch = spec.arch.name();
    let k = |s: &str| format!("{arch}.{s}");
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", arch)?;
    w.add_kv("general.name", format!("tiny-{arch}"))?;
    w.add_kv(k("block_count"), spec.n_layer)?;
    w.add_kv(k("context_length"), spec.context_length)?;
    w.add_kv(k("embedding_length"), spec.n_embd)?;
    w.add_kv(k("feed_forward_length"), spec.n_ff)?;
    w.add_kv(k("attention.head_count"), spec.n_head)?;
    w.add_kv(k("attention.head_count_kv"), spec.n_head_kv)?;
    match spec.arch {
        // Written by `bert::build`.
        TinyArch::Bert | TinyArch::NomicBert => {}
        TinyArch::Llama => {
            w.add_kv(k("rope.freq_base"), 500_000.0f32)?;
            w.add_kv(k("attention.layer_norm_rms_epsilon"), 1e-5f32)?;
            w.add_kv("general.file_type", spec.ftype.as_u32())?;
            w.add_kv(k("vocab_size"), spec.n_vocab)?;
            w.add_kv(k("rope.dimension_count"), spec.rope_dims())?;
        }
        TinyArch::Qwen3 | TinyArch::Qwen3Moe => {
            if spec.arch == TinyArch::Qwen3Moe {
                w.add_kv(k("expert_count"), spec.n_expert)?;
                w.add_kv(k("expert_used_count"), spec.n_expert_used)?;
                w.add_kv(k("expert_feed_forward_length"), spec.n_ff)?;
            }
            w.add_kv(k("rope.freq_base"), 1_000_000.0f32)?;
            w.add_kv(k("attention.layer_norm_rms_epsilon"), 1e-6f32)?;
            w.add_kv(k("attention.key_length"), spec.head_dim())?;
            w.add_kv(k("attention.value_length"), spec.head_dim())?;
            w.add_kv("general.file_type", spec.ftype.as_u32())?;
        }
        TinyArch::GptOss => gptoss::metadata(spec, &mut w)?,
        TinyArch::Phi3 => {
            w.add_kv(k("attention.layer_norm_rms_epsilon"), 1e-5f32)?;
            w.add_kv(k("rope.dimension_count"), spec.rope_dims())?;
            w.add_kv(k("rope.freq_base"), 10_000.0f32)?;
            w.add_kv("general.file_type", spec.ftype.as_u32())?;
            // Phi-3-mini's converter writes its (unused) window.
            w.add_kv(k("attention.sliding_window"), 2047u32)?;
            if spec.rope_orig_context > 0 {
                let orig = f64::from(spec.rope_orig_context);
                let scale = f64::from(spec.context_length) / orig;
                let factor = if scale > 1.0 {
                    (1.0 + scale.ln() / orig.ln()).sqrt()
                } else {
                    1.0
                };
                w.add_kv(
                    k("rope.scaling.original_context_length"),
                    spec.rope_orig_context,
                )?;
                w.add_kv(k("rope.scaling.attn_factor"), factor as f32)?;
            }
        }
    }
    write_vocab(spec, &mut w)?;
    w.add_kv("general.quantization_version", Value::U32(2))?;

    for t in spec.plan() {
        let n: u64 = t.dims.iter().product();
        let ne0 = t.dims.first().copied().unwrap_or(1);
        let values = random_values(spec.seed, &t.source, n, |u| match t.fill {
            Fill::Matrix => u / (ne0 as f32).sqrt(),
            Fill::Norm => 1.0 + 0.1 * u,
            Fill::Factors(spread) => 1.0 + spread * (u + 1.0) / 2.0,
            Fill::Scaled(s) => s * u,
        });
        w.add_tensor_f32(&t.name, &t.dims, t.ggml_type, &values)?;
    }
    Ok(w)
}

/// The tokenizer's metadata and chat template.
fn write_vocab(spec: &TinyLlamaSpec, w: &mut GgufWriter) -> Result<(), super::GgufError> {
    let specials = spec.arch.specials();
    let id = |tokens: &[String], text: &str| {
        tokens
            .iter()
            .position(|t| t == text)
            .map_or(0, |i| i as u32)
    };
    match spec.arch {
        TinyArch::Llama => {
            let vocab = tiny_vocab(spec.n_vocab, spec.with_chat_template);
            w.add_kv("tokenizer.ggml.model", "gpt2")?;
            w.add_kv("tokenizer.ggml.pre", "llama-bpe")?;
            w.add_kv("tokenizer.ggml.tokens", vocab.tokens)?;
            w.add_kv("tokenizer.ggml.token_type", vocab.token_types)?;
            w.add_kv("tokenizer.ggml.merges", vocab.merges)?;
            w.add_kv("tokenizer.ggml.bos_token_id", vocab.bos)?;
            w.add_kv("tokenizer.ggml.eos_token_id", vocab.eos)?;
            if spec.with_chat_template {
                w.add_kv("tokenizer.chat_template", LLAMA3_CHAT_TEMPLATE)?;
            }
        }
        TinyArch::Qwen3 | TinyArch::Qwen3Moe => {
            let (tokens, types, merges, _) = bpe_vocab(spec.n_vocab, &specials, "<|extra_");
            let text_end = id(&tokens, "<|endoftext|>");
            let eos = match spec.with_chat_template {
                true => id(&tokens, "<|im_end|>"),
                false => text_end,
            };
            w.add_kv("tokenizer.ggml.model", "gpt2")?;
            w.add_kv("tokenizer.ggml.pre", "qwen2")?;
            w.add_kv("tokenizer.ggml.tokens", tokens)?;
            w.add_kv("tokenizer.ggml.token_type", types)?;
            w.add_kv("tokenizer.ggml.merges", merges)?;
            w.add_kv("tokenizer.ggml.eos_token_id", eos)?;
            w.add_kv("tokenizer.ggml.padding_token_id", text_end)?;
            w.add_kv("tokenizer.ggml.bos_token_id", text_end)?;
            w.add_kv("tokenizer.ggml.add_bos_token", false)?;
            if spec.with_chat_template {
                w.add_kv("tokenizer.chat_template", QWEN3_CHAT_TEMPLATE)?;
            }
        }
        TinyArch::Bert | TinyArch::NomicBert => {}
        TinyArch::GptOss => gptoss::vocab(spec, w)?,
        TinyArch::Phi3 => {
            let vocab = spm_vocab(spec.n_vocab, &specials);
            let text_end = id(&vocab.tokens, "<|endoftext|>");
            w.add_kv("tokenizer.ggml.model", "llama")?;
            w.add_kv("tokenizer.ggml.pre", "default")?;
            w.add_kv("tokenizer.ggml.tokens", vocab.tokens)?;
            w.add_kv("tokenizer.ggml.scores", vocab.scores)?;
            w.add_kv("tokenizer.ggml.token_type", vocab.token_types)?;
            w.add_kv("tokenizer.ggml.bos_token_id", 1u32)?;
            w.add_kv("tokenizer.ggml.eos_token_id", text_end)?;
            w.add_kv("tokenizer.ggml.unknown_token_id", 0u32)?;
            w.add_kv("tokenizer.ggml.padding_token_id", text_end)?;
            w.add_kv("tokenizer.ggml.add_bos_token", false)?;
            w.add_kv("tokenizer.ggml.add_eos_token", false)?;
            if spec.with_chat_template {
                w.add_kv("tokenizer.chat_template", PHI3_CHAT_TEMPLATE)?;
            }
        }
    }
    Ok(())
}

/// `n` values `f(u)` for `u` uniform in [-1, 1), from a stream that depends
/// only on the seed and the tensor's name.
fn random_values(seed: u64, name: &str, n: u64, f: impl Fn(f32) -> f32) -> Vec<f32> {
    let mut rng = SplitMix64(seed ^ fnv1a(name.as_bytes()));
    (0..n).map(|_| f(rng.uniform())).collect()
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and the same on every
/// platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1); 24 random bits, so every step is exact in f32.
    fn uniform(&mut self) -> f32 {
        let x = (self.next_u64() >> 40) as f32 / (1u32 << 24) as f32;
        x * 2.0 - 1.0
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
