//! The BERT-family encoders for embeddings (`bert`: all-minilm,
//! mxbai-embed-large; `nomic-bert`: nomic-embed-text), as llama.cpp's
//! `src/models/bert.cpp` computes them: token (+ type, + learned position
//! for `bert`) embeddings and a LayerNorm, then post-norm blocks of
//! bidirectional attention (rotary for `nomic-bert`) and a GELU (`bert`) or
//! SwiGLU (`nomic-bert`) feed-forward, then pooling (`{arch}.pooling_type`).
//! Embeddings only: there is no cache and no logits.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Tensor, D};
use llmpm_gguf::{GgufFile, Hyperparameters, Value};

use super::arch::Arch;
use super::llama::LlamaConfig;
use super::loader::{Loader, ModelError};
use super::weights::{geglu, Linear};

/// How token states become one embedding (llama.cpp's `llama_pooling_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over the tokens (`pooling_type` 1, and the default).
    Mean,
    /// The first token's state (`[CLS]`, 2).
    Cls,
    /// The last token's state (3).
    Last,
    /// A reranker's score: the classification head on `[CLS]` (4, rank).
    Rank,
}

/// One encoder block.
struct Block {
    wq: Linear,
    wk: Linear,
    wv: Linear,
    bq: Option<Tensor>,
    bk: Option<Tensor>,
    bv: Option<Tensor>,
    wo: Linear,
    bo: Option<Tensor>,
    attn_norm: (Tensor, Tensor),
    up: Linear,
    up_b: Option<Tensor>,
    /// SwiGLU's gate (`nomic-bert`); without it the feed-forward is GELU.
    gate: Option<Linear>,
    down: Linear,
    down_b: Option<Tensor>,
    out_norm: (Tensor, Tensor),
}

/// A loaded BERT-family encoder.
pub struct Bert {
    pub(crate) config: LlamaConfig,
    pooling: Pooling,
    eps: f64,
    tok_embd: Arc<QTensor>,
    /// Row 0 of `token_types` (every token is "sentence A", as llama.cpp).
    type_row: Option<Tensor>,
    /// Learned positions (`bert`); `nomic-bert` rotates instead.
    pos_embd: Option<Tensor>,
    embd_norm: (Tensor, Tensor),
    blocks: Vec<Block>,
    /// A reranker's classification head (rank pooling).
    cls: Option<super::rank::ClsHead>,
    /// RoPE's inverse frequencies (`nomic-bert`).
    inv_freq: Vec<f32>,
    device: Device,
}

impl std::fmt::Debug for Bert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bert")
            .field("config", &self.config)
            .field("pooling", &self.pooling)
            .finish()
    }
}

/// `{arch}.pooling_type`: absent or 1 is mean; 2 CLS; 3 last; 4 rank (a
/// reranker's score). None (0) gives no single sentence embedding and is refused.
fn pooling(file: &GgufFile, arch: &str) -> Result<Pooling, ModelError> {
    let key = format!("{arch}.pooling_type");
    let bad = |why: String| ModelError::Metadata {
        key: key.clone(),
        why,
    };
    match file.get(&key) {
        None => Ok(Pooling::Mean),
        Some(v) => match v.as_u64() {
            Some(1) => Ok(Pooling::Mean),
            Some(2) => Ok(Pooling::Cls),
            Some(3) => Ok(Pooling::Last),
            Some(4) => Ok(Pooling::Rank),
            Some(n) => Err(bad(format!(
                "is {n}; llmpm pools by mean (1), CLS (2), last token (3) or rank (4)"
            ))),
            None => Err(bad("must be an integer".into())),
        },
    }
}

/// Reads and checks the encoder's configuration, then every tensor.
pub(crate) fn load(l: &mut Loader<'_>, arch: Arch, device: &Device) -> Result<Bert, ModelError> {
    let file = l.gguf.file();
    let hp = Hyperparameters::read(file)?;
    let name = hp.architecture.clone();
    let eps_key = hp.key("attention.layer_norm_epsilon");
    let eps = match file.get(&eps_key) {
        None => 1e-12,
        Some(Value::F32(x)) if x.is_finite() && *x > 0.0 => f64::from(*x),
        Some(_) => {
            return Err(ModelError::Metadata {
                key: eps_key,
                why: "must be a positive float".into(),
            })
        }
    };
    let pooling = pooling(file, &name)?;
    let (e, ff, hd) = (hp.n_embd, hp.n_ff, hp.key_length);
    if hp.n_head * hd != e || hp.n_head_kv != hp.n_head {
        return Err(ModelError::Metadata {
            key: hp.key("attention.head_count"),
            why: format!(
                "({} heads of {hd}, {} KV heads) must fill the hidden size {e} with one KV head each",
                hp.n_head, hp.n_head_kv
            ),
        });
    }
    let embd_dims = l.dims("token_embd.weight")?;
    let n_vocab = match embd_dims.as_slice() {
        [v, x] if *x == e && *v > 0 => *v,
        _ => {
            return Err(ModelError::Shape {
                name: "token_embd.weight".into(),
                found: embd_dims,
                expected: vec![0, e],
            })
        }
    };
    let tok_embd = Arc::new(l.qtensor("token_embd.weight", &[n_vocab, e])?);
    let type_row = match l.has("token_types.weight") {
        true => {
            let dims = l.dims("token_types.weight")?;
            let rows = match dims.as_slice() {
                [r, x] if *x == e && *r > 0 && *r <= 16 => *r,
                _ => {
                    return Err(ModelError::Shape {
                        name: "token_types.weight".into(),
                        found: dims,
                        expected: vec![2, e],
                    })
                }
            };
            Some(l.f32("token_types.weight", &[rows, e])?.get(0)?)
        }
        false => None,
    };
    let n_ctx = hp.context_length;
    let pos_embd = match arch {
        Arch::Bert => Some(l.f32("position_embd.weight", &[n_ctx, e])?),
        _ => None,
    };
    let norm = |l: &mut Loader<'_>, n: &str| -> Result<(Tensor, Tensor), ModelError> {
        Ok((
            l.f32(&format!("{n}.weight"), &[e])?,
            l.f32(&format!("{n}.bias"), &[e])?,
        ))
    };
    let embd_norm = norm(l, "token_embd_norm")?;
    let mut blocks = Vec::with_capacity(hp.n_layer);
    for i in 0..hp.n_layer {
        let n = |p: &str| format!("blk.{i}.{p}.weight");
        let b = |p: &str| format!("blk.{i}.{p}.bias");
        let bias = |l: &mut Loader<'_>, p: &str, len: usize| {
            let name = b(p);
            let has = l.has(&name);
            l.f32_if(has, &name, &[len])
        };
        let (wq, wk, wv) = if l.has(&n("attn_qkv")) {
            let [q, k, v]: [Linear; 3] = l
                .split_matrix(&n("attn_qkv"), &[e, e, e], e)?
                .try_into()
                .map_err(|_| ModelError::Compute("attn_qkv split".into()))?;
            (q, k, v)
        } else {
            (
                l.matrix(&n("attn_q"), &[e, e])?,
                l.matrix(&n("attn_k"), &[e, e])?,
                l.matrix(&n("attn_v"), &[e, e])?,
            )
        };
        let gate = match arch {
            Arch::NomicBert => Some(l.matrix(&n("ffn_gate"), &[ff, e])?),
            _ => None,
        };
        blocks.push(Block {
            wq: dense(wq)?,
            wk: dense(wk)?,
            wv: dense(wv)?,
            bq: bias(l, "attn_q", e)?,
            bk: bias(l, "attn_k", e)?,
            bv: bias(l, "attn_v", e)?,
            wo: dense(l.matrix(&n("attn_output"), &[e, e])?)?,
            bo: bias(l, "attn_output", e)?,
            attn_norm: norm(l, &format!("blk.{i}.attn_output_norm"))?,
            up: dense(l.matrix(&n("ffn_up"), &[ff, e])?)?,
            up_b: bias(l, "ffn_up", ff)?,
            gate: gate.map(dense).transpose()?,
            down: dense(l.matrix(&n("ffn_down"), &[e, ff])?)?,
            down_b: bias(l, "ffn_down", e)?,
            out_norm: norm(l, &format!("blk.{i}.layer_output_norm"))?,
        });
    }
    let cls = match pooling {
        Pooling::Rank => Some(super::rank::ClsHead::load(l, e)?),
        _ => None,
    };
    let half = hp.rope_dim / 2;
    let inv_freq = (0..half)
        .map(|i| hp.rope_freq_base.powf(-2.0 * i as f32 / hp.rope_dim as f32))
        .collect();
    Ok(Bert {
        config: LlamaConfig {
            arch,
            n_layer: hp.n_layer,
            n_embd: e,
            n_head: hp.n_head,
            n_head_kv: hp.n_head_kv,
            n_ff: ff,
            n_expert: 0,
            n_expert_used: 0,
            n_ff_exp: 0,
            n_vocab,
            head_dim: hd,
            rope_dim: hp.rope_dim,
            rope_freq_base: hp.rope_freq_base,
            rope_freq_scale: 1.0,
            rope_attn_factor: 1.0,
            rms_eps: eps as f32,
            context_length: n_ctx,
            rope_orig_context: n_ctx,
            sliding_window: None,
            rope_freq_base_swa: hp.rope_freq_base,
            attn_scale: 1.0 / (hd as f64).sqrt(),
            yarn: None,
        },
        pooling,
        eps,
        tok_embd,
        type_row,
        pos_embd,
        embd_norm,
        blocks,
        cls,
        inv_freq,
        device: device.clone(),
    })
}

/// An F16 matrix on the CPU as an F32 tensor, multiplied by candle's
/// GEMM: an encoder multiplies every matrix by all of a batch's rows at
/// once, where the F16 dot-product path (one scalar dot per output) is ~30x
/// slower than llama.cpp's. Twice the memory for these weights (an
/// embedding model's are small: nomic-embed-text's 137M parameters are
/// 0.55 GB in F32); the activations are rounded to F16 first, as ggml's
/// F16 product does, so the results stay llama.cpp's.
fn dense(m: Linear) -> Result<Linear, ModelError> {
    match m {
        Linear::Candle(QMatMul::QTensor(q))
            if q.dtype() == GgmlDType::F16 && q.device().is_cpu() =>
        {
            Ok(Linear::Dense(q.dequantize(&Device::Cpu)?))
        }
        other => Ok(other),
    }
}

fn add_bias(x: Tensor, b: &Option<Tensor>) -> candle_core::Result<Tensor> {
    match b {
        Some(b) => x.broadcast_add(b),
        None => Ok(x),
    }
}

impl Bert {
    /// The pooling the model asks for.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// A reranker's head (with its pair layout), if this is one.
    pub fn cls_head(&self) -> Option<&super::rank::ClsHead> {
        self.cls.as_ref()
    }

    fn layer_norm(&self, x: &Tensor, (w, b): &(Tensor, Tensor)) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(&x.contiguous()?, w, b, self.eps as f32)
    }

    /// The final states of `seqs` packed one after another, `(Σt, n_embd)`:
    /// each sequence sees itself whole (no mask) and nothing of the others,
    /// as one llama.cpp batch of several sequences. The matrices run on
    /// all rows at once (compute-bound however short each sentence is);
    /// attention runs per sequence.
    pub fn states(&self, seqs: &[&[u32]]) -> candle_core::Result<Tensor> {
        let c = &self.config;
        if seqs.is_empty() || seqs.iter().any(|s| s.is_empty()) {
            candle_core::bail!("nothing to embed");
        }
        if let Some(long) = seqs.iter().find(|s| s.len() > c.context_length) {
            candle_core::bail!(
                "the input is {} tokens, more than the model's context of {}",
                long.len(),
                c.context_length
            );
        }
        let t: usize = seqs.iter().map(|s| s.len()).sum();
        let ids: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
        // Each sequence's positions start at 0.
        let positions: Vec<u32> = seqs.iter().flat_map(|s| 0..s.len() as u32).collect();
        let ids = Tensor::new(ids.as_slice(), &self.device)?;
        let mut x = self.tok_embd.embedding(&ids)?;
        if let Some(row) = &self.type_row {
            x = x.broadcast_add(row)?;
        }
        if let Some(pos) = &self.pos_embd {
            let at = Tensor::new(positions.as_slice(), &self.device)?;
            x = (pos.index_select(&at, 0)? + x)?;
        }
        let mut x = self.layer_norm(&x, &self.embd_norm)?;
        let (h, d) = (c.n_head, c.head_dim);
        let rope = match c.arch {
            Arch::NomicBert => {
                let half = self.inv_freq.len();
                let (mut cos, mut sin) =
                    (Vec::with_capacity(t * half), Vec::with_capacity(t * half));
                for &p in &positions {
                    for f in &self.inv_freq {
                        cos.push((p as f32 * f).cos());
                        sin.push((p as f32 * f).sin());
                    }
                }
                Some((
                    Tensor::from_vec(cos, (t, half), &self.device)?,
                    Tensor::from_vec(sin, (t, half), &self.device)?,
                ))
            }
            _ => None,
        };
        let rotate = |x: Tensor| -> candle_core::Result<Tensor> {
            let Some((cos, sin)) = &rope else {
                return x.contiguous();
            };
            let rd = c.rope_dim;
            if rd == d {
                return candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin);
            }
            let rot = x.narrow(D::Minus1, 0, rd)?.contiguous()?;
            let pass = x.narrow(D::Minus1, rd, d - rd)?;
            let rot = candle_nn::rotary_emb::rope(&rot, cos, sin)?;
            Tensor::cat(&[&rot, &pass], D::Minus1)?.contiguous()
        };
        for blk in &self.blocks {
            let heads = |y: Tensor| y.reshape((1, t, h, d))?.transpose(1, 2);
            let q = rotate(heads(add_bias(blk.wq.forward(&x)?, &blk.bq)?)?)?;
            let k = rotate(heads(add_bias(blk.wk.forward(&x)?, &blk.bk)?)?)?;
            let v = heads(add_bias(blk.wv.forward(&x)?, &blk.bv)?)?.contiguous()?;
            let mut parts = Vec::with_capacity(seqs.len());
            let mut at = 0;
            for s in seqs {
                let n = s.len();
                let (q, k, v) = (
                    q.narrow(2, at, n)?.contiguous()?,
                    k.narrow(2, at, n)?.contiguous()?,
                    v.narrow(2, at, n)?.contiguous()?,
                );
                let att = (q.matmul(&k.t()?)? * c.attn_scale)?;
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                parts.push(att.matmul(&v)?);
                at += n;
            }
            let y = match parts.len() {
                1 => parts.swap_remove(0),
                _ => Tensor::cat(&parts, 2)?,
            };
            let y = y.transpose(1, 2)?.reshape((t, h * d))?;
            let y = add_bias(blk.wo.forward(&y)?, &blk.bo)?;
            let ffn_in = self.layer_norm(&(y + &x)?, &blk.attn_norm)?;
            let up = add_bias(blk.up.forward(&ffn_in)?, &blk.up_b)?;
            let act = match &blk.gate {
                Some(gate) => (gate.forward(&ffn_in)?.silu()? * up)?,
                None => geglu(&up, &up.ones_like()?)?,
            };
            let y = add_bias(blk.down.forward(&act)?, &blk.down_b)?;
            x = self.layer_norm(&(y + ffn_in)?, &blk.out_norm)?;
        }
        Ok(x)
    }

    /// The pooled, L2-normalised embedding of `tokens` (what Ollama's
    /// `/api/embed` and llama.cpp's `llama-embedding` return); for a
    /// reranker, its head's logits (unnormalised; the first is the score).
    pub fn embed(&self, tokens: &[u32]) -> candle_core::Result<Vec<f32>> {
        let mut out = self.embed_batch(&[tokens])?;
        out.pop()
            .ok_or_else(|| candle_core::Error::Msg("nothing to embed".into()))
    }

    /// [`Self::embed`] of each sequence, computed as one batch.
    pub fn embed_batch(&self, seqs: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let x = self.states(seqs)?;
        let mut out = Vec::with_capacity(seqs.len());
        let mut at = 0;
        for s in seqs {
            let n = s.len();
            let rows = x.narrow(0, at, n)?;
            at += n;
            if let Some(head) = &self.cls {
                out.push(head.scores(&rows.get(0)?)?);
                continue;
            }
            let pooled: Vec<f32> = match self.pooling {
                Pooling::Mean => rows.mean(0)?.to_vec1()?,
                Pooling::Cls => rows.get(0)?.to_vec1()?,
                Pooling::Last => rows.get(n - 1)?.to_vec1()?,
                Pooling::Rank => candle_core::bail!("a reranker has no sentence embedding"),
            };
            let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt();
            out.push(if norm > 0.0 {
                pooled.iter().map(|v| v / norm).collect()
            } else {
                pooled
            });
        }
        Ok(out)
    }
}
