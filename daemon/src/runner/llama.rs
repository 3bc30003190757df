//! Our forward pass on candle for the Llama family of decoders: `llama`
//! (grouped-query attention, interleaved RoPE with Llama 3.1 `rope_freqs`,
//! tied embeddings), `qwen2` (Q/K/V biases, NeoX RoPE), `qwen3`/`qwen3moe`
//! (per-head Q/K norms; experts, [`moe`]) and `gemma3`
//! (per-head Q/K norms, post-norms, GELU, scaled embeddings, sliding-window
//! layers with their own RoPE base) and `gpt-oss` (biased Q/K/V/O,
//! attention sinks, alternating sliding-window layers, biased experts,
//! YaRN), each as llama.cpp computes it.
//!
//! We write it rather than use `candle_transformers::models::quantized_llama`
//! because that one ignores `rope_freqs.weight` (Llama 3.1/3.2 long-context
//! scaling), cannot validate a file before using it, and hides the cache we
//! need to reset between requests. The numerics follow llama.cpp's CPU path
//! (see `tests/fixtures/llamacpp_greedy.json`): quantized and F16 weights
//! multiply activations converted to the weights' dot-product type, as ggml
//! does, and attention runs in F32.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::kv_cache::KvCache;

use llmpm_kernels::attention::{attend_quant_with, attend_with, Kv, KvType, QKv, QType, Scores};

pub use super::arch::Arch;
use super::weights::{Linear, MappedTable};

mod centre;
mod load;
mod moe;
pub(crate) use load::{load, read_config};
use moe::Moe;

/// The hyper-parameters read from `<arch>.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Which member of the family.
    pub arch: Arch,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Feed-forward size.
    pub n_ff: usize,
    /// Experts per layer (0: a dense feed-forward).
    pub n_expert: usize,
    /// Experts each token runs.
    pub n_expert_used: usize,
    /// One expert's feed-forward size.
    pub n_ff_exp: usize,
    /// Vocabulary size (rows of `token_embd`).
    pub n_vocab: usize,
    /// Size of one head (`attention.key_length`, else `n_embd / n_head`).
    pub head_dim: usize,
    /// Dimensions RoPE rotates (`rope.dimension_count`, the head size by default).
    pub rope_dim: usize,
    /// RoPE base frequency.
    pub rope_freq_base: f32,
    /// Linear RoPE scaling: positions are multiplied by this (1 / factor).
    pub rope_freq_scale: f32,
    /// RoPE's cos and sin are multiplied by this (`rope.scaling.attn_factor`).
    pub rope_attn_factor: f32,
    /// RMS norm epsilon.
    pub rms_eps: f32,
    /// The context the model was trained for.
    pub context_length: usize,
    /// The context RoPE was trained for before any long-context scaling.
    pub rope_orig_context: usize,
    /// How far back a sliding-window layer sees (Gemma 3's local layers).
    pub sliding_window: Option<usize>,
    /// RoPE base frequency of the sliding-window layers.
    pub rope_freq_base_swa: f32,
    /// Attention logits are multiplied by this.
    pub attn_scale: f64,
    /// YaRN RoPE scaling (gpt-oss), if the file asks for it.
    pub yarn: Option<Yarn>,
}

/// YaRN's parameters as ggml's `rope_yarn` takes them: positions
/// interpolated by `freq_scale` in the dimensions past the correction
/// range, extrapolated below it, a ramp between; cos and sin times
/// `mscale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Yarn {
    /// `1 / factor`.
    pub freq_scale: f32,
    /// The magnitude scale, `attn_factor` included.
    pub mscale: f32,
    /// The context the model was trained at before scaling.
    pub orig_ctx: usize,
    /// ggml's defaults: 32 and 1.
    pub beta_fast: f32,
    pub beta_slow: f32,
}

impl Yarn {
    /// The correction range `[start, end]` in pair indices for RoPE base
    /// `base` over `n_dims` dimensions (ggml's `rope_yarn_corr_dims`).
    pub(crate) fn corr_dims(&self, n_dims: usize, base: f32) -> [f32; 2] {
        let dim = |rot: f32| {
            n_dims as f32 * (self.orig_ctx as f32 / (rot * 2.0 * std::f32::consts::PI)).ln()
                / (2.0 * base.ln())
        };
        [
            dim(self.beta_fast).floor().max(0.0),
            dim(self.beta_slow).ceil().min(n_dims as f32 - 1.0),
        ]
    }
}

/// The feed-forward gate's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    Silu,
    /// GELU, tanh approximation (ggml's `gelu`).
    Gelu,
}

pub(crate) struct Layer {
    pub attn_norm: Tensor,
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    /// Q/K/V biases (qwen2).
    pub bq: Option<Tensor>,
    pub bk: Option<Tensor>,
    pub bv: Option<Tensor>,
    /// Per-head RMS norms of queries and keys (gemma3).
    pub q_norm: Option<Tensor>,
    pub k_norm: Option<Tensor>,
    pub wo: Linear,
    /// Norm of the attention output before the residual add (gemma3).
    pub post_attn_norm: Option<Tensor>,
    pub ffn_norm: Tensor,
    pub ffn: Ffn,
    /// Norm of the feed-forward output before the residual add (gemma3).
    pub post_ffw_norm: Option<Tensor>,
    /// A sliding-window layer: sees `sliding_window` tokens back and uses
    /// the local RoPE base.
    pub local: bool,
    /// The attention output's bias (gpt-oss).
    pub bo: Option<Tensor>,
    /// One sink logit per query head (gpt-oss).
    pub sinks: Option<Vec<f32>>,
}

/// A layer's feed-forward.
pub(crate) enum Ffn {
    /// Gated: `down(act(gate(x)) * up(x))`.
    Dense {
        gate: Linear,
        up: Linear,
        down: Linear,
    },
    /// A mixture of experts (qwen3moe).
    Moe(Moe),
}

/// The weights of a loaded Llama model.
pub struct Llama {
    pub(crate) config: LlamaConfig,
    pub(crate) tok_embd: Embeddings,
    pub(crate) layers: Vec<Layer>,
    pub(crate) output_norm: Tensor,
    pub(crate) output: Linear,
    /// Per-pair inverse frequencies, `rope_dim / 2` values.
    pub(crate) inv_freq: Vec<f32>,
    /// The same for sliding-window layers.
    pub(crate) inv_freq_swa: Vec<f32>,
    /// YaRN's correction ranges for the global and local bases.
    pub(crate) yarn_dims: [[f32; 2]; 2],
    /// Phi-3's long-context frequencies.
    pub(crate) long_rope: Option<LongRope>,
    /// Token embeddings are multiplied by this (gemma3: `sqrt(n_embd)`).
    pub(crate) embd_scale: Option<f64>,
    pub(crate) activation: Activation,
    pub(crate) device: Device,
}

impl std::fmt::Debug for Llama {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llama")
            .field("config", &self.config)
            .finish()
    }
}

/// The RoPE frequencies of a `longrope` model's long context: used by a
/// cache of more than `after` tokens (llama.cpp picks by context size).
pub(crate) struct LongRope {
    pub(crate) inv_freq: Vec<f32>,
    pub(crate) after: usize,
}

/// The key/value cache of one sequence; [`Cache::reset`] starts a new one.
pub struct Cache {
    layers: Vec<LayerKv>,
    max_len: usize,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("len", &self.len())
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl Cache {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerKv::len)
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most tokens it can hold (`num_ctx`).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// A cache of no layers (an encoder keeps nothing between passes).
    pub(crate) fn empty(max_len: usize) -> Cache {
        Cache {
            layers: Vec::new(),
            max_len,
        }
    }

    /// Forgets every token.
    pub fn reset(&mut self) {
        for l in &mut self.layers {
            match l {
                LayerKv::F16(kv) => kv.reset(),
                LayerKv::F32(kv) => kv.reset(),
                LayerKv::Quant(kv) => kv.reset(),
                LayerKv::Candle(kv) => kv.reset(),
            }
        }
    }
}

impl Cache {
    /// Keeps the first `n` tokens. False when this cache cannot cut (candle's,
    /// on a GPU; a sliding-window layer that forgot some of the `n`) and was
    /// emptied instead.
    pub fn truncate(&mut self, n: usize) -> bool {
        if n >= self.len() {
            return true;
        }
        let mut cut = true;
        for l in &mut self.layers {
            match l {
                // A sliding-window layer may have forgotten some of the `n`.
                LayerKv::F16(kv) => cut &= kv.truncate(n),
                LayerKv::F32(kv) => cut &= kv.truncate(n),
                LayerKv::Quant(kv) => kv.truncate(n),
                LayerKv::Candle(kv) => {
                    kv.reset();
                    cut = false;
                }
            }
        }
        if !cut {
            self.reset();
        }
        cut
    }

    /// Whether [`Cache::copy_prefix`] can work here (our CPU caches).
    pub fn can_copy(&self) -> bool {
        !self.layers.is_empty() && self.layers.iter().all(|l| !matches!(l, LayerKv::Candle(_)))
    }

    /// Becomes the first `n` tokens of `from`, another slot's cache of the
    /// same model. False, and this cache emptied, when that cannot be done
    /// (candle's caches, another shape).
    pub fn copy_prefix(&mut self, from: &Cache, n: usize) -> bool {
        let ok = self.layers.len() == from.layers.len()
            && self
                .layers
                .iter_mut()
                .zip(&from.layers)
                .all(|(a, b)| match (a, b) {
                    (LayerKv::F16(a), LayerKv::F16(b)) => a.copy_prefix(b, n),
                    (LayerKv::F32(a), LayerKv::F32(b)) => a.copy_prefix(b, n),
                    (LayerKv::Quant(a), LayerKv::Quant(b)) => a.copy_prefix(b, n),
                    _ => false,
                });
        if !ok {
            self.reset();
        }
        ok
    }
}

/// One layer's cache: f16, f32 or ggml's blocks for our fused CPU
/// attention ([`attend_with`], [`attend_quant_with`]), or candle's f32 tensors where
/// candle runs it (a GPU).
enum LayerKv {
    F16(Kv<half::f16>),
    F32(Kv<f32>),
    Quant(QKv),
    Candle(KvCache),
}

impl LayerKv {
    fn len(&self) -> usize {
        match self {
            LayerKv::F16(kv) => kv.len(),
            LayerKv::F32(kv) => kv.len(),
            LayerKv::Quant(kv) => kv.len(),
            LayerKv::Candle(kv) => kv.current_seq_len(),
        }
    }
}

/// Where token embeddings come from.
pub(crate) enum Embeddings {
    /// The table as the file has it.
    Table(Arc<QTensor>),
    /// The table read where the file is mapped: only the rows a prompt
    /// uses are ever in memory, as with llama.cpp's mapped `token_embd`.
    Mapped(MappedTable),
    /// The rows of the output matrix (tied embeddings), which holds the
    /// same table in its own layout: one copy in memory instead of two.
    Output,
}

impl Llama {
    /// The hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// An empty cache for up to `max_len` tokens, of `kv_type` on the CPU
    /// (candle's f32 elsewhere). Blocks of 32 need heads of a multiple of
    /// 32 values: other heads keep f16.
    pub fn new_cache(&self, max_len: usize, kv_type: KvType) -> Cache {
        let (h, d) = (self.config.n_head_kv, self.config.head_dim);
        let f16 = || LayerKv::F16(Kv::new(h, d, max_len));
        let quant = |ty, layer: &Layer| {
            let Ok(mut kv) = QKv::new(ty, h, d, max_len) else {
                return f16();
            };
            if let Some(c) = self.key_centre(layer, max_len) {
                // Only a centre of the wrong size fails, and then the keys
                // are stored as they are.
                let _ = kv.centre_keys(c);
            }
            LayerKv::Quant(kv)
        };
        Cache {
            layers: self
                .layers
                .iter()
                .map(|layer| match (self.device.is_cpu(), kv_type) {
                    (true, KvType::F32) => LayerKv::F32(Kv::new(h, d, max_len)),
                    (true, KvType::Q8_0) => quant(QType::Q8_0, layer),
                    (true, KvType::Q4_0) => quant(QType::Q4_0, layer),
                    (true, KvType::F16) => f16(),
                    (false, _) => LayerKv::Candle(KvCache::new(2, max_len)),
                })
                .collect(),
            max_len,
        }
    }

    /// The part of a layer's keys that hardly changes from token to token
    /// ([`centre::steady_bias`]), for a quantized cache to store keys as
    /// their difference from it. None without a key bias, behind a key norm
    /// (the bias is normed away), or with sinks ([`QKv::centre_keys`]).
    fn key_centre(&self, layer: &Layer, max_len: usize) -> Option<Vec<f32>> {
        let c = &self.config;
        if layer.k_norm.is_some() || layer.sinks.is_some() {
            return None;
        }
        let bias: Vec<f32> = layer
            .bk
            .as_ref()?
            .to_dtype(DType::F32)
            .ok()?
            .to_vec1()
            .ok()?;
        let inv_freq = match (&self.long_rope, layer.local) {
            (_, true) => &self.inv_freq_swa,
            (Some(long), false) if max_len > long.after => &long.inv_freq,
            _ => &self.inv_freq,
        };
        // YaRN's angles are at most the unscaled ones; cos and sin carry
        // its magnitude scale (or the attention factor) into the keys.
        let (pos_scale, magnitude) = match &c.yarn {
            Some(y) => (1.0, y.mscale),
            None => (c.rope_freq_scale, c.rope_attn_factor),
        };
        let rope = centre::Rope {
            head_dim: c.head_dim,
            rope_dim: c.rope_dim,
            neox: c.arch.rope_neox(),
            inv_freq,
            pos_scale,
            magnitude,
        };
        Some(centre::steady_bias(&bias, &rope, max_len))
    }

    fn rope_tables(
        &self,
        inv_freq: &[f32],
        local: bool,
        pos: usize,
        len: usize,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        let m = self.config.rope_attn_factor;
        if let Some(y) = &self.config.yarn {
            // ggml's `rope_yarn`: interpolated and extrapolated angles
            // mixed by a ramp over the correction range.
            let [low, high] = self.yarn_dims[usize::from(local)];
            for p in pos..pos + len {
                for (i, f) in inv_freq.iter().enumerate() {
                    let extrap = p as f32 * f;
                    let interp = y.freq_scale * extrap;
                    let r = (i as f32 - low) / (high - low).max(0.001);
                    let mix = 1.0 - r.clamp(0.0, 1.0);
                    let theta = interp * (1.0 - mix) + extrap * mix;
                    cos.push(theta.cos() * y.mscale);
                    sin.push(theta.sin() * y.mscale);
                }
            }
            return Ok((
                Tensor::from_vec(cos, (len, half), &self.device)?,
                Tensor::from_vec(sin, (len, half), &self.device)?,
            ));
        }
        for p in pos..pos + len {
            let p = p as f32 * self.config.rope_freq_scale;
            for f in inv_freq {
                let theta = p * f;
                cos.push(theta.cos() * m);
                sin.push(theta.sin() * m);
            }
        }
        Ok((
            Tensor::from_vec(cos, (len, half), &self.device)?,
            Tensor::from_vec(sin, (len, half), &self.device)?,
        ))
    }

    /// Rotates the first `rope_dim` dimensions of each head: adjacent pairs
    /// as llama.cpp's `LLAMA_ROPE_TYPE_NORM` for `llama`, the two halves as
    /// its `LLAMA_ROPE_TYPE_NEOX` for qwen2 and gemma3.
    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
        let head_dim = self.config.head_dim;
        let rope_dim = self.config.rope_dim;
        let rotate = |x: &Tensor| {
            if self.config.arch.rope_neox() {
                candle_nn::rotary_emb::rope(x, cos, sin)
            } else {
                candle_nn::rotary_emb::rope_i(x, cos, sin)
            }
        };
        if rope_dim == head_dim {
            return rotate(&x.contiguous()?);
        }
        let rot = x.narrow(D::Minus1, 0, rope_dim)?.contiguous()?;
        let pass = x.narrow(D::Minus1, rope_dim, head_dim - rope_dim)?;
        let rot = rotate(&rot)?;
        Tensor::cat(&[&rot, &pass], D::Minus1)
    }

    /// The additive attention mask for queries at `pos..pos + t`: key `j` is
    /// hidden from query `i` when it lies ahead of it or, with a `window`,
    /// `window` or more positions behind it. `None` when nothing is hidden.
    fn mask(
        &self,
        pos: usize,
        t: usize,
        window: Option<usize>,
    ) -> candle_core::Result<Option<Tensor>> {
        let total = pos + t;
        let behind = |i: usize, j: usize| window.is_some_and(|w| pos + i >= j + w);
        if t == 1 && !(0..total).any(|j| behind(0, j)) {
            return Ok(None);
        }
        let m: Vec<f32> = (0..t)
            .flat_map(|i| {
                (0..total).map(move |j| {
                    if j > pos + i || behind(i, j) {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        Ok(Some(Tensor::from_vec(m, (1, 1, t, total), &self.device)?))
    }

    /// Runs `tokens` at positions `cache.len()..` and returns the hidden
    /// states after the final norm, `(tokens.len(), n_embd)`.
    pub fn hidden(&self, tokens: &[u32], cache: &mut Cache) -> candle_core::Result<Tensor> {
        let mut parts = [Part {
            tokens,
            cache,
            logits: false,
        }];
        self.hidden_batch(&mut parts)
    }

    /// Runs several sequences in one pass: their tokens are stacked so that
    /// each weight matrix is read once for all of them (decoding is bound by
    /// reading the weights), while attention runs per sequence against its
    /// own cache. Returns the final-norm hidden states of all tokens, the
    /// parts' rows one after another, `(Σ tokens, n_embd)`. A sequence's
    /// rows are computed exactly as they would be alone: every kernel treats
    /// activation rows independently.
    pub fn hidden_batch(&self, parts: &mut [Part<'_>]) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let any_local = self.layers.iter().any(|l| l.local);
        let fused = self.device.is_cpu();
        // Per part: where its rows start, how many, and its RoPE tables and masks.
        struct Span {
            off: usize,
            t: usize,
            global: (Tensor, Tensor),
            local: Option<(Tensor, Tensor)>,
            mask: Option<Tensor>,
            mask_swa: Option<Tensor>,
        }
        let mut spans = Vec::with_capacity(parts.len());
        let mut ids = Vec::new();
        for part in parts.iter() {
            let t = part.tokens.len();
            let pos = part.cache.len();
            if t == 0 {
                candle_core::bail!("no tokens to evaluate");
            }
            if pos + t > part.cache.max_len {
                candle_core::bail!(
                    "the context is full: {pos} + {t} tokens exceed num_ctx {}",
                    part.cache.max_len
                );
            }
            let inv_freq = match &self.long_rope {
                Some(long) if part.cache.max_len > long.after => &long.inv_freq,
                _ => &self.inv_freq,
            };
            spans.push(Span {
                off: ids.len(),
                t,
                global: self.rope_tables(inv_freq, false, pos, t)?,
                local: if any_local {
                    Some(self.rope_tables(&self.inv_freq_swa, true, pos, t)?)
                } else {
                    None
                },
                // The fused CPU attention skips hidden keys without a mask.
                mask: match fused {
                    true => None,
                    false => self.mask(pos, t, None)?,
                },
                mask_swa: match (fused, any_local, c.sliding_window) {
                    (false, true, Some(w)) => self.mask(pos, t, Some(w))?,
                    _ => None,
                },
            });
            ids.extend_from_slice(part.tokens);
        }
        if parts.is_empty() {
            candle_core::bail!("no sequences to evaluate");
        }
        let mut x = match &self.tok_embd {
            Embeddings::Table(t) => t.embedding(&Tensor::new(ids.as_slice(), &self.device)?)?,
            Embeddings::Mapped(t) => t.rows(&ids, &self.device)?,
            Embeddings::Output => self.output.rows(&ids, &self.device)?,
        }; // (T, embd)
        if let Some(s) = self.embd_scale {
            x = (x * s)?;
        }
        let n_rep = c.n_head / c.n_head_kv;
        let eps = c.rms_eps;
        let bias = |x: Tensor, b: &Option<Tensor>| match b {
            Some(b) => x.broadcast_add(b),
            None => Ok(x),
        };
        let norm = |x: Tensor, w: &Option<Tensor>| match w {
            Some(w) => candle_nn::ops::rms_norm(&x.contiguous()?, w, eps),
            None => Ok(x),
        };
        for (li, layer) in self.layers.iter().enumerate() {
            let residual = x.clone();
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let q_all = bias(layer.wq.forward(&h)?, &layer.bq)?;
            let k_all = bias(layer.wk.forward(&h)?, &layer.bk)?;
            let v_all = bias(layer.wv.forward(&h)?, &layer.bv)?;
            let mut ys = Vec::with_capacity(parts.len());
            for (part, span) in parts.iter_mut().zip(&spans) {
                let ((cos, sin), mask) = match (&span.local, layer.local) {
                    (Some(tables), true) => (tables, &span.mask_swa),
                    _ => (&span.global, &span.mask),
                };
                let (off, t) = (span.off, span.t);
                let q = q_all
                    .narrow(0, off, t)?
                    .reshape((1, t, c.n_head, c.head_dim))?;
                let q = norm(q, &layer.q_norm)?.transpose(1, 2)?;
                let k = k_all
                    .narrow(0, off, t)?
                    .reshape((1, t, c.n_head_kv, c.head_dim))?;
                let k = norm(k, &layer.k_norm)?.transpose(1, 2)?;
                let v = v_all
                    .narrow(0, off, t)?
                    .reshape((1, t, c.n_head_kv, c.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()?;
                let q = self.rope(&q, cos, sin)?;
                // Phi-3 scales the queries, then takes the scores as they are.
                let (q, scale) = match c.arch.scale_queries() {
                    true => ((q * c.attn_scale)?, 1.0),
                    false => (q, c.attn_scale),
                };
                let k = self.rope(&k, cos, sin)?;
                let Some(kv) = part.cache.layers.get_mut(li) else {
                    candle_core::bail!("the cache has fewer layers than the model");
                };
                let window = if layer.local { c.sliding_window } else { None };
                let scores = Scores {
                    scale: scale as f32,
                    window,
                    sinks: layer.sinks.as_deref(),
                };
                let flat = |x: &Tensor| x.flatten_all()?.to_vec1::<f32>();
                // Appends the new keys and values, then attends over them.
                macro_rules! fused {
                    ($kv:expr) => {{
                        let at = $kv.len();
                        // A sliding-window layer keeps only the blocks its
                        // queries from `at` on can see.
                        if let Some(w) = window {
                            $kv.forget_before((at + 1).saturating_sub(w));
                        }
                        $kv.append(&flat(&k)?, &flat(&v)?, t)
                            .map_err(candle_core::Error::Msg)?;
                        let y = attend_with(&flat(&q)?, c.n_head, t, $kv, at, scores)
                            .map_err(candle_core::Error::Msg)?;
                        Tensor::from_vec(y, (1, c.n_head, t, c.head_dim), &self.device)?
                    }};
                }
                let y = match kv {
                    LayerKv::F16(kv) => fused!(kv),
                    LayerKv::F32(kv) => fused!(kv),
                    LayerKv::Quant(kv) => {
                        let at = kv.len();
                        kv.append(&flat(&k)?, &flat(&v)?, t)
                            .map_err(candle_core::Error::Msg)?;
                        let y = attend_quant_with(&flat(&q)?, c.n_head, t, kv, at, scores)
                            .map_err(candle_core::Error::Msg)?;
                        Tensor::from_vec(y, (1, c.n_head, t, c.head_dim), &self.device)?
                    }
                    LayerKv::Candle(kv) => {
                        let (k, v) = kv.append(&k.contiguous()?, &v)?;
                        let k = repeat_kv(&k, n_rep)?;
                        let v = repeat_kv(&v, n_rep)?;
                        let att = (q.matmul(&k.t()?)? * scale)?;
                        let att = match mask {
                            Some(m) => att.broadcast_add(m)?,
                            None => att,
                        };
                        let att = match &layer.sinks {
                            // A sink is one more logit per head, with no value.
                            Some(sinks) => {
                                let total = att.dim(3)?;
                                let sink =
                                    Tensor::from_slice(sinks, (1, c.n_head, 1, 1), &self.device)?
                                        .broadcast_as((1, c.n_head, t, 1))?
                                        .to_dtype(att.dtype())?;
                                let att = Tensor::cat(&[&att, &sink], 3)?;
                                candle_nn::ops::softmax_last_dim(&att)?.narrow(3, 0, total)?
                            }
                            None => candle_nn::ops::softmax_last_dim(&att)?,
                        };
                        att.matmul(&v.contiguous()?)? // (1, h, t, d)
                    }
                };
                ys.push(y.transpose(1, 2)?.reshape((t, c.n_head * c.head_dim))?);
            }
            let y = match ys.len() {
                1 => ys.swap_remove(0),
                _ => Tensor::cat(&ys, 0)?,
            };
            let y = norm(
                bias(layer.wo.forward(&y)?, &layer.bo)?,
                &layer.post_attn_norm,
            )?;
            x = (y + residual)?;

            let residual = x.clone();
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let y = match &layer.ffn {
                Ffn::Dense { gate, up, down } => {
                    let (gate, up) = (gate.forward(&h)?, up.forward(&h)?);
                    let act = match self.activation {
                        Activation::Silu => (gate.silu()? * up)?,
                        Activation::Gelu => super::weights::geglu(&gate, &up)?,
                    };
                    down.forward(&act)?
                }
                Ffn::Moe(moe) => moe.forward(&h)?,
            };
            let y = norm(y, &layer.post_ffw_norm)?;
            x = (y + residual)?;
        }
        candle_nn::ops::rms_norm(&x, &self.output_norm, eps)
    }

    /// Runs `tokens` and returns the logits of the last one.
    pub fn forward(&self, tokens: &[u32], cache: &mut Cache) -> candle_core::Result<Vec<f32>> {
        let mut parts = [Part {
            tokens,
            cache,
            logits: true,
        }];
        let mut logits = self.forward_batch(&mut parts)?;
        logits
            .pop()
            .ok_or_else(|| candle_core::Error::Msg("no logits".into()))
    }

    /// [`Llama::hidden_batch`], then the logits of the last token of each
    /// part that asks for them (`Part::logits`), in order, from one product
    /// with the output matrix.
    pub fn forward_batch(&self, parts: &mut [Part<'_>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let h = self.hidden_batch(parts)?;
        let mut last = Vec::with_capacity(parts.len());
        let mut end = 0;
        for p in parts.iter() {
            end += p.tokens.len();
            if p.logits {
                last.push(h.narrow(0, end - 1, 1)?);
            }
        }
        let last = match last.len() {
            0 => return Ok(Vec::new()),
            1 => last.swap_remove(0),
            _ => Tensor::cat(&last, 0)?,
        };
        self.output.forward(&last)?.to_dtype(DType::F32)?.to_vec2()
    }
}

/// One sequence's share of a batched pass: tokens to evaluate after those
/// its cache holds.
pub struct Part<'a> {
    /// The new tokens.
    pub tokens: &'a [u32],
    /// The sequence's cache.
    pub cache: &'a mut Cache,
    /// Whether [`Llama::forward_batch`] returns the next-token logits (a
    /// chunk in the middle of a prompt needs none).
    pub logits: bool,
}

/// `(b, kv_heads, t, d)` to `(b, kv_heads * n_rep, t, d)`, each kv head
/// repeated for the `n_rep` query heads that share it (llama.cpp's order).
fn repeat_kv(x: &Tensor, n_rep: usize) -> candle_core::Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.clone());
    }
    let (b, kvh, t, d) = x.dims4()?;
    x.unsqueeze(2)?
        .expand((b, kvh, n_rep, t, d))?
        .reshape((b, kvh * n_rep, t, d))
}
