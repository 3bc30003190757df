//! Tiny Llama-3-shaped GGUF models with deterministic random weights and a
//! byte-level BPE tokenizer, so tests run real models without a download.
//!
//! The files follow what llama.cpp's loader expects for
//! `general.architecture = "llama"` with a Llama 3 (`gpt2` / `llama-bpe`)
//! tokenizer: the same metadata keys, tensor names and ggml dimension order
//! as `convert_hf_to_gguf.py` writes for Meta-Llama-3.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use super::gpt2_byte_chars;
use super::writer::GgufWriter;
use super::{divides, FileType, GgmlType, Value};

/// Llama 3's special tokens, written as the last five tokens of the vocab.
pub const SPECIAL_TOKENS: [&str; 5] = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
];

/// The Jinja chat template of Meta-Llama-3-Instruct.
pub const LLAMA3_CHAT_TEMPLATE: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
pub const TOKEN_TYPE_NORMAL: i32 = 1;
/// A control token, never produced from plain text.
pub const TOKEN_TYPE_CONTROL: i32 = 3;

/// Byte-level tokens, plus special tokens.
const MIN_VOCAB: u32 = 256 + SPECIAL_TOKENS.len() as u32;
/// Keeps a mistyped spec from trying to allocate gigabytes.
const MAX_PARAMETERS: u64 = 1 << 31;

/// Text the tokenizer's merges are learned from, so that common English
/// pieces (` the`, `ll`) become tokens as in a real vocab.
const CORPUS: &str = "The quick brown fox jumps over the lazy dog. A llama is a \
domesticated South American camelid, widely used as a meat and pack animal by \
Andean cultures since the pre-Columbian era. Llamas are social animals and live \
with others as a herd. Their wool is soft and contains only a small amount of \
lanolin. Hello world! How are you today? I am fine, thank you. The model reads \
the question, thinks, and then answers the question in the shortest way. There \
is a house in the hills where the llamas sleep at the end of the day, and in \
the morning they walk down to the river to drink the cold water.";

/// The shape of a tiny Llama 3 model. Matrices use `ftype`'s type; norms
/// are always F32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyLlamaSpec {
    /// Transformer blocks.
    pub n_layer: u32,
    /// Hidden size; a multiple of 32 for Q8_0 / Q4_0.
    pub n_embd: u32,
    /// Attention heads; `n_embd / n_head` is the (even) head size.
    pub n_head: u32,
    /// Key/value heads (grouped-query attention); divides `n_head`.
    pub n_head_kv: u32,
    /// Feed-forward size; a multiple of 32 for Q8_0 / Q4_0.
    pub n_ff: u32,
    /// Tokens: 256 bytes, learned merges, then the 5 special tokens.
    pub n_vocab: u32,
    /// `llama.context_length`.
    pub context_length: u32,
    /// F32, F16, Q8_0 or Q4_0.
    pub ftype: FileType,
    /// Seed of the weights; the same spec gives the same bytes.
    pub seed: u64,
    /// Whether to write `tokenizer.chat_template` (Llama 3's). With it,
    /// `eos_token_id` is `<|eot_id|>` as in Llama 3 Instruct, without it
    /// `<|end_of_text|>` as in the base model.
    pub with_chat_template: bool,
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
            n_layer: 2,
            n_embd: 64,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 128,
            // 256 byte tokens + 59 merges + 5 specials.
            n_vocab: 320,
            context_length: 2048,
            ftype: FileType::F32,
            seed: 42,
            with_chat_template: true,
            output: OutputWeight::Own,
        }
    }
}

impl TinyLlamaSpec {
    /// The size of one attention head.
    pub fn head_dim(&self) -> u32 {
        self.n_embd.checked_div(self.n_head).unwrap_or(0)
    }

    /// The ggml type of the weight matrices.
    pub fn weight_type(&self) -> Option<GgmlType> {
        match self.ftype {
            FileType::F32 => Some(GgmlType::F32),
            FileType::F16 => Some(GgmlType::F16),
            FileType::Q8_0 => Some(GgmlType::Q8_0),
            FileType::Q4_0 => Some(GgmlType::Q4_0),
            _ => None,
        }
    }

    /// The number of weights the model will have, `None` on overflow.
    pub fn parameter_count(&self) -> Option<u64> {
        let embd = u64::from(self.n_embd);
        let kv = u64::from(self.head_dim()).checked_mul(u64::from(self.n_head_kv))?;
        let ff = u64::from(self.n_ff);
        let vocab = u64::from(self.n_vocab);
        // Norms, q, o, k, v, gate, up, down.
        let per_layer = (2 * embd)
            .checked_add(embd.checked_mul(embd)?.checked_mul(2)?)?
            .checked_add(embd.checked_mul(kv)?.checked_mul(2)?)?
            .checked_add(embd.checked_mul(ff)?.checked_mul(3)?)?;
        vocab
            .checked_mul(embd)?
            .checked_mul(2)?
            .checked_add(embd)?
            .checked_add(per_layer.checked_mul(u64::from(self.n_layer))?)
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
                "`ftype` {} is not supported; use F32, F16, Q8_0 or Q4_0",
                self.ftype
            ));
        };
        if !divides(u64::from(self.n_head), u64::from(self.n_embd)) {
            return Err(format!(
                "`n_embd` ({}) must be a multiple of `n_head` ({})",
                self.n_embd, self.n_head
            ));
        }
        if !divides(2, u64::from(self.head_dim())) {
            return Err(format!(
                "the head size `n_embd / n_head` ({}) must be even for RoPE",
                self.head_dim()
            ));
        }
        if !divides(u64::from(self.n_head_kv), u64::from(self.n_head)) {
            return Err(format!(
                "`n_head` ({}) must be a multiple of `n_head_kv` ({})",
                self.n_head, self.n_head_kv
            ));
        }
        if self.n_vocab < MIN_VOCAB {
            return Err(format!(
                "`n_vocab` ({}) must be at least {MIN_VOCAB}: 256 byte tokens and {} special tokens",
                self.n_vocab,
                SPECIAL_TOKENS.len()
            ));
        }
        // Every matrix's ne[0] is n_embd, except ffn_down's, which is n_ff.
        let block = weight_type.block_size();
        for (field, value) in [("n_embd", self.n_embd), ("n_ff", self.n_ff)] {
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
    let vocab = tiny_vocab(spec.n_vocab, spec.with_chat_template);
    let weight_type = spec.weight_type().unwrap_or(GgmlType::F32);
    let embd = u64::from(spec.n_embd);
    let kv = u64::from(spec.head_dim()) * u64::from(spec.n_head_kv);
    let ff = u64::from(spec.n_ff);
    let n_vocab = u64::from(spec.n_vocab);

    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", "llama")?;
    w.add_kv("general.name", "tiny-llama")?;
    w.add_kv("llama.block_count", spec.n_layer)?;
    w.add_kv("llama.context_length", spec.context_length)?;
    w.add_kv("llama.embedding_length", spec.n_embd)?;
    w.add_kv("llama.feed_forward_length", spec.n_ff)?;
    w.add_kv("llama.attention.head_count", spec.n_head)?;
    w.add_kv("llama.attention.head_count_kv", spec.n_head_kv)?;
    w.add_kv("llama.rope.freq_base", 500_000.0f32)?;
    w.add_kv("llama.attention.layer_norm_rms_epsilon", 1e-5f32)?;
    w.add_kv("general.file_type", spec.ftype.as_u32())?;
    w.add_kv("llama.vocab_size", spec.n_vocab)?;
    w.add_kv("llama.rope.dimension_count", spec.head_dim())?;
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
    w.add_kv("general.quantization_version", Value::U32(2))?;

    // Writes `name` with the values `source` would get.
    let matrix_as = |w: &mut GgufWriter, name: &str, source: &str, ne0: u64, ne1: u64| {
        let values = random_values(spec.seed, source, ne0 * ne1, |u| {
            // Uniform in ±1/sqrt(fan_in) keeps activations near unit scale.
            u / (ne0 as f32).sqrt()
        });
        w.add_tensor_f32(name, &[ne0, ne1], weight_type, &values)
    };
    let matrix =
        |w: &mut GgufWriter, name: &str, ne0: u64, ne1: u64| matrix_as(w, name, name, ne0, ne1);
    let norm = |w: &mut GgufWriter, name: &str| {
        let values = random_values(spec.seed, name, embd, |u| 1.0 + 0.1 * u);
        w.add_tensor_f32(name, &[embd], GgmlType::F32, &values)
    };

    matrix(&mut w, "token_embd.weight", embd, n_vocab)?;
    for layer in 0..spec.n_layer {
        let name = |part: &str| format!("blk.{layer}.{part}.weight");
        norm(&mut w, &name("attn_norm"))?;
        matrix(&mut w, &name("attn_q"), embd, embd)?;
        matrix(&mut w, &name("attn_k"), embd, kv)?;
        matrix(&mut w, &name("attn_v"), embd, kv)?;
        matrix(&mut w, &name("attn_output"), embd, embd)?;
        norm(&mut w, &name("ffn_norm"))?;
        matrix(&mut w, &name("ffn_gate"), embd, ff)?;
        matrix(&mut w, &name("ffn_up"), embd, ff)?;
        matrix(&mut w, &name("ffn_down"), ff, embd)?;
    }
    norm(&mut w, "output_norm.weight")?;
    match spec.output {
        OutputWeight::Own => matrix(&mut w, "output.weight", embd, n_vocab)?,
        OutputWeight::Tied => {}
        OutputWeight::CopyOfEmbeddings => {
            matrix_as(&mut w, "output.weight", "token_embd.weight", embd, n_vocab)?
        }
    }
    Ok(w)
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

/// A byte-level BPE vocabulary in the shape of Llama 3's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyVocab {
    /// Token texts in GPT-2's byte-to-unicode spelling; ids are indices.
    pub tokens: Vec<String>,
    /// [`TOKEN_TYPE_NORMAL`] or [`TOKEN_TYPE_CONTROL`] per token.
    pub token_types: Vec<i32>,
    /// Merges in rank order, `"left right"`.
    pub merges: Vec<String>,
    /// `<|begin_of_text|>`.
    pub bos: u32,
    /// `<|eot_id|>` or `<|end_of_text|>`.
    pub eos: u32,
}

/// A vocabulary of exactly `n_vocab` tokens (at least 261): the 256 byte
/// tokens ordered as in GPT-2 and Llama 3, tokens learned by BPE from a
/// small built-in corpus, `<|reserved_special_token_N|>` fillers if the
/// corpus runs out, then [`SPECIAL_TOKENS`].
pub fn tiny_vocab(n_vocab: u32, eos_is_eot: bool) -> TinyVocab {
    let byte_chars = gpt2_byte_chars();
    let mut base: Vec<char> = byte_chars.to_vec();
    base.sort_unstable();
    let mut ordinary: Vec<String> = base.iter().map(|c| c.to_string()).collect();
    let mut known: HashSet<String> = ordinary.iter().cloned().collect();
    let n_vocab = n_vocab.max(MIN_VOCAB) as usize;
    let target = n_vocab - SPECIAL_TOKENS.len();

    let merges = learn_merges(&byte_chars, &mut ordinary, &mut known, target);

    let mut tokens = ordinary;
    let mut token_types = vec![TOKEN_TYPE_NORMAL; tokens.len()];
    let mut reserved = 0;
    while tokens.len() < target {
        tokens.push(format!("<|reserved_special_token_{reserved}|>"));
        token_types.push(TOKEN_TYPE_CONTROL);
        reserved += 1;
    }
    let first_special = tokens.len() as u32;
    for s in SPECIAL_TOKENS {
        tokens.push(s.to_owned());
        token_types.push(TOKEN_TYPE_CONTROL);
    }
    TinyVocab {
        tokens,
        token_types,
        merges,
        bos: first_special,
        eos: first_special + if eos_is_eot { 4 } else { 1 },
    }
}

/// Learns merges until `ordinary` holds `target` tokens or no pair is left
/// to merge: first from [`CORPUS`], then by extending existing tokens with
/// a letter. Each merge's halves are tokens and so is their concatenation,
/// as llama.cpp's BPE expects.
fn learn_merges(
    byte_chars: &[char; 256],
    ordinary: &mut Vec<String>,
    known: &mut HashSet<String>,
    target: usize,
) -> Vec<String> {
    let mut merges = Vec::new();
    // Words as llama-bpe pre-tokenizes roughly: runs of letters (with the
    // space before them) and runs of other characters.
    let mut counts: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    for word in CORPUS.split_whitespace() {
        let mut pieces: Vec<String> = Vec::new();
        let mut prev_alpha = None;
        for ch in word.chars() {
            let alpha = ch.is_alphabetic();
            match pieces.last_mut() {
                Some(last) if prev_alpha == Some(alpha) => last.push(ch),
                _ => pieces.push(if pieces.is_empty() {
                    format!(" {ch}")
                } else {
                    ch.to_string()
                }),
            }
            prev_alpha = Some(alpha);
        }
        for piece in pieces {
            let symbols = piece
                .bytes()
                .map(|b| byte_chars[usize::from(b)].to_string())
                .collect();
            *counts.entry(symbols).or_default() += 1;
        }
    }
    let mut words: Vec<(Vec<String>, u64)> = counts.into_iter().collect();

    while ordinary.len() < target {
        let mut pairs: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for (symbols, count) in &words {
            for pair in symbols.windows(2) {
                if let [l, r] = pair {
                    *pairs.entry((l.as_str(), r.as_str())).or_default() += count;
                }
            }
        }
        // Most frequent pair; ties go to the smallest pair, for determinism.
        let best = pairs
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|((l, r), _)| ((*l).to_owned(), (*r).to_owned()));
        let Some((left, right)) = best else { break };
        let merged = format!("{left}{right}");
        merges.push(format!("{left} {right}"));
        if known.insert(merged.clone()) {
            ordinary.push(merged.clone());
        }
        for (symbols, _) in &mut words {
            let mut out = Vec::with_capacity(symbols.len());
            let mut i = 0;
            while i < symbols.len() {
                if i + 1 < symbols.len() && symbols[i] == left && symbols[i + 1] == right {
                    out.push(merged.clone());
                    i += 2;
                } else {
                    out.push(symbols[i].clone());
                    i += 1;
                }
            }
            *symbols = out;
        }
    }

    // The corpus is used up: grow tokens by one letter each.
    let mut i = 0;
    while ordinary.len() < target && i < ordinary.len() {
        let left = ordinary[i].clone();
        for letter in 'a'..='z' {
            if ordinary.len() >= target {
                break;
            }
            let merged = format!("{left}{letter}");
            if known.insert(merged.clone()) {
                merges.push(format!("{left} {letter}"));
                ordinary.push(merged);
            }
        }
        i += 1;
    }
    merges
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::GgufFile;
    use super::*;

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
                ftype: FileType::Q4_K_M,
                ..d()
            },
            "Q4_K_M",
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
}
