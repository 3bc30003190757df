//! Loading a GGUF model for inference: check the architecture, the
//! metadata and every tensor's presence and shape, then build the candle
//! weights. Every refusal names what is wrong.

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{ggml_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use llmpm_gguf::{
    GgmlType, GgufError, GgufFile, HyperparameterError, Hyperparameters, MappedGguf, RopeScaling,
    TensorInfo,
};

use super::llama::{
    linear, Activation, Arch, Cache, Embeddings, Layer, Linear, Llama, LlamaConfig, MappedTable,
    Part,
};
use super::{weights::QuantWeights, KvType};

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be opened.
    #[error("cannot open model file `{path}`")]
    Open {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a GGUF file llmpm-gguf accepts.
    #[error("`{path}` is not a readable GGUF file: {message}")]
    Format {
        /// The file.
        path: String,
        /// What the reader said.
        message: String,
    },
    /// `general.architecture` names something we cannot run.
    #[error("unsupported model architecture `{0}`; llmpm runs `llama`, `qwen2` and `gemma3`")]
    Architecture(String),
    /// A metadata key is missing or has the wrong type or value.
    #[error("bad model metadata: `{key}` {why}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("the model has no tensor `{0}`")]
    MissingTensor(String),
    /// A tensor has the wrong shape.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The tensor.
        name: String,
        /// Its shape (candle order: rows first).
        found: Vec<usize>,
        /// What the metadata implies.
        expected: Vec<usize>,
    },
    /// A tensor's data could not be read or converted.
    #[error("cannot load tensor `{name}`: {message}")]
    Tensor {
        /// The tensor.
        name: String,
        /// Why.
        message: String,
    },
    /// The forward pass failed.
    #[error("inference failed: {0}")]
    Compute(String),
}

impl From<candle_core::Error> for ModelError {
    fn from(e: candle_core::Error) -> ModelError {
        ModelError::Compute(e.to_string())
    }
}

/// A loaded model: the weights plus what the runner needs to know about them.
#[derive(Debug)]
pub struct Model {
    llama: Llama,
    kv_type: KvType,
}

impl From<HyperparameterError> for ModelError {
    fn from(e: HyperparameterError) -> ModelError {
        ModelError::Metadata {
            key: e.key,
            why: e.why,
        }
    }
}

/// The graph's configuration: the model's hyperparameters (read once, by
/// llmpm-gguf), refused where this runner cannot run what they describe.
fn read_config(file: &GgufFile) -> Result<LlamaConfig, ModelError> {
    let arch_name = Hyperparameters::architecture(file)?;
    let arch =
        Arch::from_name(arch_name).ok_or_else(|| ModelError::Architecture(arch_name.into()))?;
    let hp = Hyperparameters::read(file)?;
    let head_dim = hp.key_length;
    if hp.value_length != head_dim as u64 {
        return Err(ModelError::Metadata {
            key: hp.key("attention.value_length"),
            why: format!(
                "({}) differs from the key length ({head_dim}); llmpm needs them equal",
                hp.value_length
            ),
        });
    }
    let sliding_window = match arch {
        Arch::Gemma3 => hp.sliding_window()?,
        _ => None,
    };
    let rope_freq_scale = match &hp.rope_scaling {
        RopeScaling::None | RopeScaling::Llama3 => 1.0,
        RopeScaling::Linear { freq_scale } => *freq_scale,
        RopeScaling::Other(other) => {
            return Err(ModelError::Metadata {
                key: hp.key("rope.scaling.type"),
                why: format!("`{other}` is not supported (use none, linear or llama3)"),
            })
        }
    };
    Ok(LlamaConfig {
        arch,
        n_layer: hp.n_layer,
        n_embd: hp.n_embd,
        n_head: hp.n_head,
        n_head_kv: hp.n_head_kv,
        n_ff: hp.n_ff,
        n_vocab: 0,
        head_dim,
        rope_dim: hp.rope_dim,
        rope_freq_base: hp.rope_freq_base,
        rope_freq_scale,
        rms_eps: hp.rms_eps,
        context_length: hp.context_length,
        sliding_window,
        rope_freq_base_swa: hp.rope_freq_base_swa,
        attn_scale: 1.0 / (head_dim as f64).sqrt(),
    })
}

/// `bytes` in 8-byte aligned memory (the tail of the last word zero).
fn aligned_copy(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    if let Some(dst) = bytemuck::cast_slice_mut::<u64, u8>(&mut words).get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
    words
}

/// candle's name for a ggml type, where candle has one.
fn candle_dtype(t: GgmlType) -> Option<GgmlDType> {
    Some(match t {
        GgmlType::F32 => GgmlDType::F32,
        GgmlType::F16 => GgmlDType::F16,
        GgmlType::BF16 => GgmlDType::BF16,
        GgmlType::Q4_0 => GgmlDType::Q4_0,
        GgmlType::Q4_1 => GgmlDType::Q4_1,
        GgmlType::Q5_0 => GgmlDType::Q5_0,
        GgmlType::Q5_1 => GgmlDType::Q5_1,
        GgmlType::Q8_0 => GgmlDType::Q8_0,
        GgmlType::Q8_1 => GgmlDType::Q8_1,
        GgmlType::Q2_K => GgmlDType::Q2K,
        GgmlType::Q3_K => GgmlDType::Q3K,
        GgmlType::Q4_K => GgmlDType::Q4K,
        GgmlType::Q5_K => GgmlDType::Q5K,
        GgmlType::Q6_K => GgmlDType::Q6K,
        GgmlType::Q8_K => GgmlDType::Q8K,
        _ => return None,
    })
}

struct Loader<'a> {
    /// The file mapped, with its checked tensor table: every tensor's bytes
    /// are sliced from the mapping.
    gguf: &'a MappedGguf,
    device: &'a Device,
}

impl Loader<'_> {
    fn info(&self, name: &str) -> Result<&TensorInfo, ModelError> {
        self.gguf
            .file()
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor(name.into()))
    }

    /// The shape of `name` in candle's order (rows first).
    fn dims(&self, name: &str) -> Result<Vec<usize>, ModelError> {
        let info = self.info(name)?;
        // The reader checked the element count fits an i64.
        Ok(info
            .dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect())
    }

    fn check(&self, name: &str, expected: &[usize]) -> Result<(), ModelError> {
        let found = self.dims(name)?;
        if found != expected {
            return Err(ModelError::Shape {
                name: name.into(),
                found,
                expected: expected.to_vec(),
            });
        }
        Ok(())
    }

    /// The candle type of `info`, or why it cannot be loaded.
    fn dtype(info: &TensorInfo) -> Result<GgmlDType, ModelError> {
        candle_dtype(info.ggml_type).ok_or_else(|| ModelError::Tensor {
            name: info.name.clone(),
            message: format!("ggml type {} is not supported", info.ggml_type),
        })
    }

    /// The `len` bytes of `info`'s data in the mapped file.
    fn data(&self, info: &TensorInfo, len: usize) -> Result<&[u8], ModelError> {
        let err = |message: String| ModelError::Tensor {
            name: info.name.clone(),
            message,
        };
        let bytes = self
            .gguf
            .tensor_data(info)
            .map_err(|e: GgufError| err(e.to_string()))?;
        if bytes.len() != len {
            return Err(err(format!(
                "its data is {} bytes, expected {len}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// The tensor `name` of shape `expected`, copied out of the mapped file
    /// (whose pages are then dropped: the copy is what is read from now on).
    fn qtensor(&mut self, name: &str, expected: &[usize]) -> Result<QTensor, ModelError> {
        self.check(name, expected)?;
        let info = self.info(name)?;
        let err = |e: candle_core::Error| ModelError::Tensor {
            name: name.into(),
            message: e.to_string(),
        };
        let dtype = Self::dtype(info)?;
        let len = usize::try_from(info.size).unwrap_or(usize::MAX);
        let bytes = self.data(info, len)?;
        // candle views the bytes as its blocks (f32 and f16 fields): data at
        // an offset the file's alignment leaves odd is copied aligned first.
        let copy: Vec<u64>;
        let bytes = if bytes.as_ptr().align_offset(8) == 0 {
            bytes
        } else {
            copy = aligned_copy(bytes);
            bytemuck::cast_slice(&copy).get(..len).unwrap_or(bytes)
        };
        let q = ggml_file::qtensor_from_ggml(dtype, bytes, expected.to_vec(), self.device)
            .map_err(err)?;
        self.gguf.release(info, 0..len);
        Ok(q)
    }

    /// The weight matrix `name` of shape `expected` (rows, columns), in the
    /// layout its kernel wants: the types our kernels take repacked straight
    /// from the mapped file (no intermediate copy, and each group of file
    /// pages dropped once repacked), the rest through candle.
    fn matrix(&mut self, name: &str, expected: &[usize]) -> Result<Linear, ModelError> {
        self.check(name, expected)?;
        let err = |e: candle_core::Error| ModelError::Tensor {
            name: name.into(),
            message: e.to_string(),
        };
        let info = self.info(name)?;
        if let (Some(dtype), [n, k]) = (candle_dtype(info.ggml_type), expected) {
            let len = QuantWeights::file_bytes(dtype, *n, *k);
            if let (true, Some(len)) = (self.device.is_cpu(), len) {
                let data = self.data(info, len)?;
                let gguf = self.gguf;
                let m = QuantWeights::from_bytes(dtype, *n, *k, data, &mut |done| {
                    gguf.release(info, done)
                })
                .map_err(err)?;
                return Ok(Linear::Quant(m));
            }
        }
        let q = self.qtensor(name, expected)?;
        linear(Arc::new(q)).map_err(err)
    }

    /// The table `name` of shape `expected` (rows, values) read in place
    /// from the mapped file, on the CPU; `None` where it cannot be (another
    /// device, rows that are not whole blocks).
    fn mapped_table(
        &self,
        name: &str,
        expected: &[usize],
    ) -> Result<Option<MappedTable>, ModelError> {
        self.check(name, expected)?;
        let info = self.info(name)?;
        let (Some(dtype), &[rows, hidden]) = (candle_dtype(info.ggml_type), expected) else {
            return Ok(None);
        };
        let Some(row) = MappedTable::row_bytes(dtype, hidden) else {
            return Ok(None);
        };
        let Some(len) = rows.checked_mul(row) else {
            return Ok(None);
        };
        if !self.device.is_cpu() {
            return Ok(None);
        }
        self.data(info, len)?;
        let range = self
            .gguf
            .tensor_range(info)
            .map_err(|e| ModelError::Tensor {
                name: name.into(),
                message: e.to_string(),
            })?;
        Ok(Some(MappedTable {
            map: self.gguf.mapped().clone(),
            range,
            dtype,
            rows,
            hidden,
        }))
    }

    fn has(&self, name: &str) -> bool {
        self.gguf.file().tensor(name).is_some()
    }

    /// `f32` of `name` when `want`; a missing tensor is an error only then.
    fn f32_if(
        &mut self,
        want: bool,
        name: &str,
        expected: &[usize],
    ) -> Result<Option<Tensor>, ModelError> {
        want.then(|| self.f32(name, expected)).transpose()
    }

    fn f32(&mut self, name: &str, expected: &[usize]) -> Result<Tensor, ModelError> {
        let q = self.qtensor(name, expected)?;
        q.dequantize(self.device)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| ModelError::Tensor {
                name: name.into(),
                message: e.to_string(),
            })
    }
}

impl Model {
    /// Loads and validates the GGUF at `path` on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Model, ModelError> {
        let shown = path.display().to_string();
        let gguf = MappedGguf::open(path).map_err(|e| match e {
            GgufError::Open { source, .. } | GgufError::Map { source, .. } => ModelError::Open {
                path: shown.clone(),
                source,
            },
            e => ModelError::Format {
                path: shown.clone(),
                message: e.to_string(),
            },
        })?;
        let mut config = read_config(gguf.file())?;
        let mut l = Loader {
            gguf: &gguf,
            device,
        };
        let embd_dims = l.dims("token_embd.weight")?;
        let n_vocab = match embd_dims.as_slice() {
            [v, e] if *e == config.n_embd && *v > 0 => *v,
            _ => {
                return Err(ModelError::Shape {
                    name: "token_embd.weight".into(),
                    found: embd_dims,
                    expected: vec![0, config.n_embd],
                })
            }
        };
        config.n_vocab = n_vocab;
        let (e, ff, qd, kv) = (
            config.n_embd,
            config.n_ff,
            config.n_head * config.head_dim,
            config.n_head_kv * config.head_dim,
        );
        let (qwen2, gemma3) = (config.arch == Arch::Qwen2, config.arch == Arch::Gemma3);
        let hd = config.head_dim;
        // Gemma 3: every sixth layer is global, the rest see a window.
        const SWA_PATTERN: usize = 6;
        // Models with tied embeddings (Llama 3.2 1B/3B) ship no
        // `output.weight`: the table is the output matrix too. When that
        // matrix's layout gives rows back, one copy serves both.
        let (tok_embd, tied_output) = if l.has("output.weight") {
            match l.mapped_table("token_embd.weight", &[n_vocab, e])? {
                Some(t) => (Embeddings::Mapped(t), None),
                None => {
                    let t = Arc::new(l.qtensor("token_embd.weight", &[n_vocab, e])?);
                    (Embeddings::Table(t), None)
                }
            }
        } else {
            let output = l.matrix("token_embd.weight", &[n_vocab, e])?;
            if output.has_rows() {
                (Embeddings::Output, Some(output))
            } else {
                let t = Arc::new(l.qtensor("token_embd.weight", &[n_vocab, e])?);
                let output = linear(t.clone()).map_err(|e| ModelError::Tensor {
                    name: "token_embd.weight".into(),
                    message: e.to_string(),
                })?;
                (Embeddings::Table(t), Some(output))
            }
        };
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let n = |p: &str| format!("blk.{i}.{p}.weight");
            let mm = |l: &mut Loader<'_>, name: String, shape: &[usize]| l.matrix(&name, shape);
            let b = |p: &str| format!("blk.{i}.{p}.bias");
            // Biases are qwen2's; any architecture may carry them.
            let (bq, bk, bv) = (b("attn_q"), b("attn_k"), b("attn_v"));
            let (hq, hk, hv) = (
                qwen2 || l.has(&bq),
                qwen2 || l.has(&bk),
                qwen2 || l.has(&bv),
            );
            layers.push(Layer {
                attn_norm: l.f32(&n("attn_norm"), &[e])?,
                wq: mm(&mut l, n("attn_q"), &[qd, e])?,
                wk: mm(&mut l, n("attn_k"), &[kv, e])?,
                wv: mm(&mut l, n("attn_v"), &[kv, e])?,
                bq: l.f32_if(hq, &bq, &[qd])?,
                bk: l.f32_if(hk, &bk, &[kv])?,
                bv: l.f32_if(hv, &bv, &[kv])?,
                q_norm: l.f32_if(gemma3, &n("attn_q_norm"), &[hd])?,
                k_norm: l.f32_if(gemma3, &n("attn_k_norm"), &[hd])?,
                wo: mm(&mut l, n("attn_output"), &[e, qd])?,
                post_attn_norm: l.f32_if(gemma3, &n("post_attention_norm"), &[e])?,
                ffn_norm: l.f32(&n("ffn_norm"), &[e])?,
                w_gate: mm(&mut l, n("ffn_gate"), &[ff, e])?,
                w_up: mm(&mut l, n("ffn_up"), &[ff, e])?,
                w_down: mm(&mut l, n("ffn_down"), &[e, ff])?,
                post_ffw_norm: l.f32_if(gemma3, &n("post_ffw_norm"), &[e])?,
                local: config.sliding_window.is_some() && (i + 1) % SWA_PATTERN != 0,
            });
        }
        let output_norm = l.f32("output_norm.weight", &[e])?;
        // Models with tied embeddings (Llama 3.2 1B/3B) ship no `output.weight`.
        let output = match tied_output {
            Some(output) => output,
            None => l.matrix("output.weight", &[n_vocab, e])?,
        };
        let half = config.rope_dim / 2;
        let freqs = |base: f32| -> Vec<f32> {
            (0..half)
                .map(|i| base.powf(-2.0 * i as f32 / config.rope_dim as f32))
                .collect()
        };
        let mut inv_freq = freqs(config.rope_freq_base);
        let inv_freq_swa = freqs(config.rope_freq_base_swa);
        if config.arch == Arch::Llama && l.has("rope_freqs.weight") {
            let factors = l.f32("rope_freqs.weight", &[half])?.to_vec1::<f32>()?;
            for (f, k) in inv_freq.iter_mut().zip(factors) {
                if !(k.is_finite() && k > 0.0) {
                    return Err(ModelError::Tensor {
                        name: "rope_freqs.weight".into(),
                        message: format!("factor {k} is not a positive number"),
                    });
                }
                *f /= k;
            }
        }
        Ok(Model {
            kv_type: KvType::F16,
            llama: Llama {
                config,
                tok_embd,
                layers,
                output_norm,
                output,
                inv_freq,
                inv_freq_swa,
                embd_scale: gemma3.then_some((e as f64).sqrt()),
                activation: if gemma3 {
                    Activation::Gelu
                } else {
                    Activation::Silu
                },
                device: device.clone(),
            },
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        self.llama.config()
    }

    /// An empty cache for up to `max_len` tokens.
    pub fn new_cache(&self, max_len: usize) -> Cache {
        self.llama.new_cache(max_len, self.kv_type)
    }

    /// The element type of the caches made from now on (f16 unless set).
    pub fn set_kv_type(&mut self, kv_type: KvType) {
        self.kv_type = kv_type;
    }

    /// Evaluates `tokens` after those in `cache` and returns the next-token logits.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>, ModelError> {
        self.check_tokens(tokens)?;
        Ok(self.llama.forward(tokens, cache)?)
    }

    /// Evaluates several sequences in one pass (see [`Llama::hidden_batch`])
    /// and returns each one's next-token logits, in order.
    pub fn forward_batch(&self, parts: &mut [Part<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        for p in parts.iter() {
            self.check_tokens(p.tokens)?;
        }
        Ok(self.llama.forward_batch(parts)?)
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<(), ModelError> {
        match tokens
            .iter()
            .find(|&&t| t as usize >= self.config().n_vocab)
        {
            Some(bad) => Err(ModelError::Compute(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.config().n_vocab
            ))),
            None => Ok(()),
        }
    }

    /// An embedding of `tokens`: the mean of the final hidden states,
    /// L2-normalised (what Ollama returns for `/api/embed`).
    pub fn embed(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::Compute("nothing to embed".into()));
        }
        cache.reset();
        let h = self.llama.hidden(tokens, cache)?;
        cache.reset();
        let mean: Vec<f32> = h.mean(0)?.to_vec1()?;
        let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        Ok(if norm > 0.0 {
            mean.iter().map(|x| x / norm).collect()
        } else {
            mean
        })
    }

    /// Greedy decoding of `n` tokens after `prompt` (the reference check).
    pub fn greedy(&self, prompt: &[u32], n: usize) -> Result<Vec<u32>, ModelError> {
        let mut cache = self.new_cache(prompt.len() + n);
        let mut out = Vec::with_capacity(n);
        let mut logits = self.forward(prompt, &mut cache)?;
        for i in 0..n {
            let next = argmax(&logits);
            out.push(next);
            if i + 1 < n {
                logits = self.forward(&[next], &mut cache)?;
            }
        }
        Ok(out)
    }
}

/// The index of the largest logit (the first on ties, as llama.cpp's loop).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    u32::try_from(best).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use llmpm_gguf::tiny::{tiny_llama_bytes, TinyLlamaSpec};
    use llmpm_gguf::writer::GgufWriter;

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
            let Embeddings::Mapped(table) = &m.llama.tok_embd else {
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
}
