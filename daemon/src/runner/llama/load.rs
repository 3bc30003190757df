//! Building a [`Llama`] from a mapped GGUF: the configuration read from
//! the hyperparameters, then every tensor of the architecture checked and
//! loaded. Where an architecture stores a tensor differently (Phi-3's fused
//! QKV and gate/up matrices, its `longrope` factors) it is turned into the
//! shared graph's form here.

use std::sync::Arc;

use candle_core::Device;
use llmpm_gguf::{GgufFile, Hyperparameters, RopeScaling};

use super::super::arch::Arch;
use super::super::loader::{Loader, ModelError};
use super::super::weights::{linear, Linear};
use super::moe::{Expert, ExpertBias, GateAct, Gating, Moe};
use super::{Activation, Embeddings, Ffn, Layer, Llama, LlamaConfig, LongRope, Yarn};

/// Whether layer `i` of `arch` is a sliding-window layer (llmpm-gguf's
/// rule, which the memory estimate counts by too).
fn is_local(arch: Arch, i: usize) -> bool {
    let name = match arch {
        Arch::GptOss => "gpt-oss",
        _ => "gemma3",
    };
    llmpm_gguf::is_local_layer(name, i)
}

/// The graph's configuration: the model's hyperparameters (read once, by
/// llmpm-gguf), refused where this runner cannot run what they describe.
pub(crate) fn read_config(file: &GgufFile) -> Result<LlamaConfig, ModelError> {
    let arch_name = Hyperparameters::architecture(file)?;
    let arch = Arch::from_name(arch_name)
        .filter(|a| !a.embeds_only())
        .ok_or_else(|| ModelError::Architecture(arch_name.into()))?;
    let mut hp = Hyperparameters::read(file)?;
    if arch == Arch::GptOss {
        ollama_gpt_oss(file, &mut hp);
    }
    if arch.moe() && hp.n_expert == 0 {
        return Err(ModelError::Metadata {
            key: hp.key("expert_count"),
            why: format!("is missing; `{arch_name}` is a mixture of experts"),
        });
    }
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
    // llama.cpp turns Phi-3's sliding window off (its converters write it
    // wrongly); so do we, to compute what it computes.
    let sliding_window = match arch {
        Arch::Gemma3 => hp.sliding_window()?,
        Arch::GptOss => match hp.sliding_window()? {
            Some(w) => Some(w),
            None => {
                return Err(ModelError::Metadata {
                    key: hp.key("attention.sliding_window"),
                    why: format!("is missing; `{arch_name}` has sliding-window layers"),
                })
            }
        },
        _ => None,
    };
    // gpt-oss's local layers share the global base unless the file says.
    let rope_freq_base_swa = match arch {
        Arch::GptOss if file.get(&hp.key("rope.freq_base_swa")).is_none() => hp.rope_freq_base,
        _ => hp.rope_freq_base_swa,
    };
    let mut yarn = None;
    let rope_freq_scale = match &hp.rope_scaling {
        RopeScaling::None | RopeScaling::Llama3 => 1.0,
        RopeScaling::LongRope if arch == Arch::Phi3 => 1.0,
        RopeScaling::Linear { freq_scale } => *freq_scale,
        RopeScaling::Yarn { freq_scale } => {
            // llama.cpp's context setup: `yarn_attn_factor` is
            // get_mscale(factor) cancelled by 1 / (1 + 0.1 ln factor), times
            // `rope.scaling.attn_factor`; ggml's `rope_yarn` multiplies it
            // by 1 + 0.1 ln(1 / freq_scale) again. Same float steps.
            let factor = 1.0 / freq_scale;
            let get_mscale = if factor <= 1.0 {
                1.0
            } else {
                0.1f32 * 1.0 * factor.ln() + 1.0
            };
            let attn = get_mscale * (1.0 / (1.0 + 0.1 * factor.ln())) * hp.rope_attn_factor;
            yarn = Some(Yarn {
                freq_scale: *freq_scale,
                mscale: attn * (1.0 + 0.1 * (1.0 / freq_scale).ln()),
                orig_ctx: hp.rope_orig_context,
                beta_fast: 32.0,
                beta_slow: 1.0,
            });
            *freq_scale
        }
        RopeScaling::LongRope | RopeScaling::Other(_) => {
            let name = match &hp.rope_scaling {
                RopeScaling::Other(other) => other.as_str(),
                _ => "longrope",
            };
            return Err(ModelError::Metadata {
                key: hp.key("rope.scaling.type"),
                why: format!(
                    "`{name}` is not supported for `{arch_name}` (use none, linear or llama3)"
                ),
            });
        }
    };
    Ok(LlamaConfig {
        arch,
        n_layer: hp.n_layer,
        n_embd: hp.n_embd,
        n_head: hp.n_head,
        n_head_kv: hp.n_head_kv,
        n_ff: hp.n_ff,
        n_expert: hp.n_expert,
        n_expert_used: hp.n_expert_used,
        n_ff_exp: hp.n_ff_exp,
        n_vocab: 0,
        head_dim,
        rope_dim: hp.rope_dim,
        rope_freq_base: hp.rope_freq_base,
        rope_freq_scale,
        rope_attn_factor: hp.rope_attn_factor,
        rms_eps: hp.rms_eps,
        context_length: hp.context_length,
        rope_orig_context: hp.rope_orig_context,
        sliding_window,
        rope_freq_base_swa,
        attn_scale: 1.0 / (head_dim as f64).sqrt(),
        yarn,
    })
}

/// What Ollama's gpt-oss files (`gptoss`) leave out, filled in as
/// llama.cpp's compatibility layer for them does: one expert's size from
/// `ffn_gate_exps` (their `feed_forward_length` is the dense size), and
/// YaRN when the scaling type is missing.
fn ollama_gpt_oss(file: &GgufFile, hp: &mut Hyperparameters) {
    if file.get(&hp.key("expert_feed_forward_length")).is_none() {
        if let Some(&[_, ff, _]) = file
            .tensor("blk.0.ffn_gate_exps.weight")
            .map(|t| t.dims.as_slice())
        {
            hp.n_ff_exp = usize::try_from(ff).unwrap_or(0);
        }
    }
    if file.get(&hp.key("rope.scaling.type")).is_none() {
        if let Some(f) = file
            .get(&hp.key("rope.scaling.factor"))
            .and_then(|v| v.as_f64())
        {
            let freq_scale = if f > 0.0 { 1.0 / f as f32 } else { 1.0 };
            hp.rope_scaling = RopeScaling::Yarn { freq_scale };
        }
    }
}

/// The first of `names` the file has (Ollama's gpt-oss files name some
/// tensors otherwise), else the first.
fn either(l: &Loader<'_>, names: [String; 2]) -> String {
    let [a, b] = names;
    if !l.has(&a) && l.has(&b) {
        b
    } else {
        a
    }
}

/// `inv_freq` divided by the factors in tensor `name` (`rope_dim / 2` of
/// them, each a positive number), as ggml's `freq_factors`.
fn divided(l: &mut Loader<'_>, name: &str, inv_freq: &[f32]) -> Result<Vec<f32>, ModelError> {
    let factors = l.f32(name, &[inv_freq.len()])?.to_vec1::<f32>()?;
    inv_freq
        .iter()
        .zip(factors)
        .map(|(f, k)| {
            if k.is_finite() && k > 0.0 {
                Ok(f / k)
            } else {
                Err(ModelError::Tensor {
                    name: name.into(),
                    message: format!("factor {k} is not a positive number"),
                })
            }
        })
        .collect()
}

/// `n` rows of `len` values of the f32 tensor `name`, one per expert.
fn per_expert(
    l: &mut Loader<'_>,
    name: &str,
    n: usize,
    len: usize,
) -> Result<Vec<Vec<f32>>, ModelError> {
    Ok(l.f32(name, &[n, len])?.to_vec2::<f32>()?)
}

/// Layer `i`'s router and experts, their shapes checked against the
/// expert counts before anything is allocated for them; gpt-oss's with
/// their biases.
fn experts(l: &mut Loader<'_>, i: usize, c: &LlamaConfig) -> Result<Moe, ModelError> {
    let n = |p: &str| format!("blk.{i}.{p}.weight");
    let b = |p: &str| format!("blk.{i}.{p}.bias");
    let (e, ff, ne) = (c.n_embd, c.n_ff_exp, c.n_expert);
    let gpt_oss = c.arch == Arch::GptOss;
    let router = l.matrix(&n("ffn_gate_inp"), &[ne, e])?;
    let router_bias = match gpt_oss {
        true => Some(l.f32(&b("ffn_gate_inp"), &[ne])?.to_vec1::<f32>()?),
        false => None,
    };
    let gates = l.experts(&n("ffn_gate_exps"), ne, ff, e)?;
    let ups = l.experts(&n("ffn_up_exps"), ne, ff, e)?;
    let downs = l.experts(&n("ffn_down_exps"), ne, e, ff)?;
    let mut biases: Vec<Option<ExpertBias>> = if gpt_oss {
        let g = per_expert(l, &b("ffn_gate_exps"), ne, ff)?;
        let u = per_expert(l, &b("ffn_up_exps"), ne, ff)?;
        let d = per_expert(l, &b("ffn_down_exps"), ne, e)?;
        g.into_iter()
            .zip(u)
            .zip(d)
            .map(|((gate, up), down)| Some(ExpertBias { gate, up, down }))
            .collect()
    } else {
        (0..ne).map(|_| None).collect()
    };
    let experts = gates
        .into_iter()
        .zip(ups)
        .zip(downs)
        .zip(biases.drain(..))
        .map(|(((gate, up), down), bias)| Expert {
            gate,
            up,
            down,
            bias,
        })
        .collect();
    Ok(Moe {
        router,
        router_bias,
        experts,
        n_used: c.n_expert_used,
        n_ff: ff,
        gating: if gpt_oss {
            Gating::SoftmaxTopK
        } else {
            Gating::Softmax
        },
        act: if gpt_oss {
            GateAct::SwigluOai
        } else {
            GateAct::Silu
        },
    })
}

/// Loads the decoder `config` describes (its `n_vocab` set here).
pub(crate) fn load(
    l: &mut Loader<'_>,
    mut config: LlamaConfig,
    device: &Device,
) -> Result<Llama, ModelError> {
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
    let arch = config.arch;
    let (e, ff, qd, kv) = (
        config.n_embd,
        config.n_ff,
        config.n_head * config.head_dim,
        config.n_head_kv * config.head_dim,
    );
    let gemma3 = arch == Arch::Gemma3;
    let hd = config.head_dim;
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
        let b = |p: &str| format!("blk.{i}.{p}.bias");
        let attn_norm = l.f32(&n("attn_norm"), &[e])?;
        // Phi-3 fuses Q, K and V into one matrix (as llama.cpp allows for
        // any architecture); its pieces are the same rows.
        let (wq, wk, wv) = if l.has(&n("attn_qkv")) {
            let [q, k, v]: [Linear; 3] = l
                .split_matrix(&n("attn_qkv"), &[qd, kv, kv], e)?
                .try_into()
                .map_err(|_| ModelError::Compute("attn_qkv split".into()))?;
            (q, k, v)
        } else {
            (
                l.matrix(&n("attn_q"), &[qd, e])?,
                l.matrix(&n("attn_k"), &[kv, e])?,
                l.matrix(&n("attn_v"), &[kv, e])?,
            )
        };
        // Phi-3's `ffn_up` holds the gate's rows, then the up rows.
        let ffn = if arch.moe() {
            Ffn::Moe(experts(l, i, &config)?)
        } else if arch == Arch::Phi3 {
            let [gate, up]: [Linear; 2] = l
                .split_matrix(&n("ffn_up"), &[ff, ff], e)?
                .try_into()
                .map_err(|_| ModelError::Compute("ffn_up split".into()))?;
            let down = l.matrix(&n("ffn_down"), &[e, ff])?;
            Ffn::Dense { gate, up, down }
        } else {
            Ffn::Dense {
                gate: l.matrix(&n("ffn_gate"), &[ff, e])?,
                up: l.matrix(&n("ffn_up"), &[ff, e])?,
                down: l.matrix(&n("ffn_down"), &[e, ff])?,
            }
        };
        // Biases are qwen2's; any architecture may carry them.
        let (bq, bk, bv) = (b("attn_q"), b("attn_k"), b("attn_v"));
        let bias = arch.qkv_bias();
        let (hq, hk, hv) = (bias || l.has(&bq), bias || l.has(&bk), bias || l.has(&bv));
        let qk_norm = arch.qk_norm();
        let gpt_oss = arch == Arch::GptOss;
        // gpt-oss names its pre-feed-forward norm `post_attention_norm`
        // (Ollama's files `ffn_norm`), its sinks `attn_sinks.weight`
        // (Ollama's `attn_sinks`), its output `attn_output` (`attn_out`).
        let ffn_norm = match gpt_oss {
            true => either(l, [n("post_attention_norm"), n("ffn_norm")]),
            false => n("ffn_norm"),
        };
        let sinks = match gpt_oss {
            true => {
                let name = either(l, [n("attn_sinks"), format!("blk.{i}.attn_sinks")]);
                Some(l.f32(&name, &[config.n_head])?.to_vec1::<f32>()?)
            }
            false => None,
        };
        let wo = either(l, [n("attn_output"), n("attn_out")]);
        layers.push(Layer {
            attn_norm,
            wq,
            wk,
            wv,
            bq: l.f32_if(hq, &bq, &[qd])?,
            bk: l.f32_if(hk, &bk, &[kv])?,
            bv: l.f32_if(hv, &bv, &[kv])?,
            q_norm: l.f32_if(qk_norm, &n("attn_q_norm"), &[hd])?,
            k_norm: l.f32_if(qk_norm, &n("attn_k_norm"), &[hd])?,
            wo: l.matrix(&wo, &[e, qd])?,
            post_attn_norm: l.f32_if(gemma3, &n("post_attention_norm"), &[e])?,
            ffn_norm: l.f32(&ffn_norm, &[e])?,
            ffn,
            post_ffw_norm: l.f32_if(gemma3, &n("post_ffw_norm"), &[e])?,
            local: config.sliding_window.is_some() && is_local(arch, i),
            bo: l.f32_if(gpt_oss, &wo.replace(".weight", ".bias"), &[e])?,
            sinks,
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
    let yarn_dims = match &config.yarn {
        Some(y) => [
            y.corr_dims(config.rope_dim, config.rope_freq_base),
            y.corr_dims(config.rope_dim, config.rope_freq_base_swa),
        ],
        None => [[0.0; 2]; 2],
    };
    if arch == Arch::Llama && l.has("rope_freqs.weight") {
        inv_freq = divided(l, "rope_freqs.weight", &inv_freq)?;
    }
    // Phi-3's `longrope`: the short factors within the original context,
    // the long ones for a longer `num_ctx` (llama.cpp picks by context size).
    let mut long_rope = None;
    if arch == Arch::Phi3 {
        let (short, long) = ("rope_factors_short.weight", "rope_factors_long.weight");
        match (l.has(short), l.has(long)) {
            (false, false) => {}
            (true, true) => {
                let long = divided(l, long, &inv_freq)?;
                inv_freq = divided(l, short, &inv_freq)?;
                long_rope = Some(LongRope {
                    inv_freq: long,
                    after: config.rope_orig_context,
                });
            }
            (has_short, _) => {
                return Err(ModelError::MissingTensor(
                    if has_short { long } else { short }.into(),
                ))
            }
        }
    }
    Ok(Llama {
        config,
        tok_embd,
        layers,
        output_norm,
        output,
        inv_freq,
        inv_freq_swa,
        yarn_dims,
        long_rope,
        embd_scale: gemma3.then_some((e as f64).sqrt()),
        activation: if gemma3 {
            Activation::Gelu
        } else {
            Activation::Silu
        },
        device: device.clone(),
    })
}
