//! A mixture-of-experts feed-forward as llama.cpp's `build_moe_ffn`
//! computes it, in its two kinds: Qwen 3 MoE's (a softmax over all the
//! router's logits, the top-k, their weights renormalised to sum to 1,
//! SwiGLU experts) and gpt-oss's (a biased router, the top-k logits, a
//! softmax over those k only, biased experts with OpenAI's clamped SwiGLU).
//! Each chosen expert's weighted output is summed in the router's order.
//! Only the chosen experts run, and each runs once per pass on all the rows
//! routed to it, so a prompt's products stay matrix products.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::super::weights::Linear;

/// One expert: a gated feed-forward of its own.
pub(crate) struct Expert {
    pub(crate) gate: Linear,
    pub(crate) up: Linear,
    pub(crate) down: Linear,
    /// gpt-oss: biases after each product.
    pub(crate) bias: Option<ExpertBias>,
}

/// One expert's biases.
pub(crate) struct ExpertBias {
    pub(crate) gate: Vec<f32>,
    pub(crate) up: Vec<f32>,
    pub(crate) down: Vec<f32>,
}

/// How the router's logits become the chosen experts' weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gating {
    /// Softmax over every expert, the top-k renormalised (Qwen 3 MoE).
    Softmax,
    /// The top-k logits, then a softmax over them (gpt-oss; llama.cpp's
    /// `SOFTMAX_WEIGHT`).
    SoftmaxTopK,
}

/// The experts' gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GateAct {
    /// `silu(gate) * up`.
    Silu,
    /// OpenAI's: `gate` clamped above at 7, `up` to ±7, then
    /// `gate * sigmoid(1.702 * gate) * (up + 1)` (ggml's `swiglu_oai`).
    SwigluOai,
}

/// A layer's experts and their router.
pub(crate) struct Moe {
    /// `(n_expert, n_embd)`: one logit per expert.
    pub(crate) router: Linear,
    /// gpt-oss: added to the logits.
    pub(crate) router_bias: Option<Vec<f32>>,
    pub(crate) experts: Vec<Expert>,
    /// Experts per token (top-k), 1 to `experts.len()`.
    pub(crate) n_used: usize,
    /// One expert's feed-forward size.
    pub(crate) n_ff: usize,
    pub(crate) gating: Gating,
    pub(crate) act: GateAct,
}

/// ggml's `soft_max` of one row: exponentials of the differences from the
/// maximum, summed in f64, scaled by the sum's f32 inverse.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let scale = (1.0 / sum) as f32;
    for v in row.iter_mut() {
        *v *= scale;
    }
}

/// The experts of each token and their weights, `k` per token in the
/// router's descending order: `(experts, weights)`, both `t * k` long.
pub(crate) fn route(
    logits: &[f32],
    n_expert: usize,
    k: usize,
    gating: Gating,
) -> (Vec<usize>, Vec<f32>) {
    let t = logits.len() / n_expert.max(1);
    let mut chosen = Vec::with_capacity(t * k);
    let mut weights = Vec::with_capacity(t * k);
    let mut probs = vec![0f32; n_expert];
    let mut order: Vec<usize> = Vec::with_capacity(n_expert);
    let mut top_w = vec![0f32; k];
    for row in logits.chunks_exact(n_expert) {
        probs.copy_from_slice(row);
        if gating == Gating::Softmax {
            softmax(&mut probs);
        }
        order.clear();
        order.extend(0..n_expert);
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let top = &order[..k];
        match gating {
            Gating::Softmax => {
                // ggml_sum_rows (f64 accumulation), clamped as llama.cpp
                // does against a zero sum, then each weight divided by it.
                let sum = top.iter().map(|&e| f64::from(probs[e])).sum::<f64>() as f32;
                let sum = sum.max(6.103_515_6e-5);
                for &e in top {
                    chosen.push(e);
                    weights.push(probs[e] / sum);
                }
            }
            Gating::SoftmaxTopK => {
                for (w, &e) in top_w.iter_mut().zip(top) {
                    *w = probs[e];
                }
                softmax(&mut top_w);
                chosen.extend_from_slice(top);
                weights.extend_from_slice(&top_w);
            }
        }
    }
    (chosen, weights)
}

/// ggml's `swiglu_oai` of one value pair.
fn swiglu_oai(g: f32, u: f32) -> f32 {
    const ALPHA: f32 = 1.702;
    const LIMIT: f32 = 7.0;
    let x = g.min(LIMIT);
    let y = u.clamp(-LIMIT, LIMIT);
    x / (1.0 + (ALPHA * -x).exp()) * (y + 1.0)
}

/// Adds `bias` to every row of `x`.
fn add_rows(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len().max(1)) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

/// `x @ wᵀ` for `rows` rows of `k` values in a slice.
fn product(w: &Linear, x: &[f32], rows: usize, k: usize) -> candle_core::Result<Vec<f32>> {
    match w {
        Linear::Quant(m) => m.forward_slice(x),
        Linear::Candle(_) | Linear::Dense(_) => {
            let t = Tensor::from_slice(x, (rows, k), &Device::Cpu)?;
            w.forward(&t)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1()
        }
    }
}

impl Moe {
    /// The feed-forward of `h`, `(t, n_embd)`, on the CPU.
    pub(crate) fn forward(&self, h: &Tensor) -> candle_core::Result<Tensor> {
        let (t, e) = h.dims2()?;
        let (n_expert, k) = (self.experts.len(), self.n_used);
        let mut logits: Vec<f32> = self
            .router
            .forward(h)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        if logits.len() != t * n_expert {
            candle_core::bail!("the router gave {} logits for {t} rows", logits.len());
        }
        if let Some(b) = &self.router_bias {
            add_rows(&mut logits, b);
        }
        let xs: Vec<f32> = h.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let (chosen, weights) = route(&logits, n_expert, k, self.gating);
        // Slots (token * k + rank) per expert, so each expert runs once.
        let mut slots: Vec<Vec<usize>> = vec![Vec::new(); n_expert];
        for (slot, &ex) in chosen.iter().enumerate() {
            slots[ex].push(slot);
        }
        // The chosen experts run side by side, each on one of the pool's
        // threads (its products' own splitting then mostly runs inline):
        // decoding a token is k small products of three matrices each, and
        // one fork per product woke the other threads dozens of times per
        // layer. A row's result does not depend on the threads.
        let work: Vec<(&Expert, &[usize])> = self
            .experts
            .iter()
            .zip(&slots)
            .filter(|(_, slots)| !slots.is_empty())
            .map(|(ex, slots)| (ex, slots.as_slice()))
            .collect();
        let ys: Vec<Vec<f32>> = work
            .par_iter()
            .map(|&(expert, slots)| self.expert_rows(expert, slots, &xs, e))
            .collect::<candle_core::Result<_>>()?;
        let mut outs = vec![0f32; t * k * e];
        for (y, &(_, slots)) in ys.iter().zip(&work) {
            for (row, &s) in y.chunks_exact(e).zip(slots) {
                outs[s * e..][..e].copy_from_slice(row);
            }
        }
        // Each output times its weight, then summed from the top expert
        // down (ggml's mul, then its chain of adds).
        let mut out = vec![0f32; t * e];
        for (tok, o) in out.chunks_exact_mut(e).enumerate() {
            for j in 0..k {
                let s = tok * k + j;
                let w = weights[s];
                let y = &outs[s * e..][..e];
                if j == 0 {
                    o.iter_mut().zip(y).for_each(|(o, y)| *o = y * w);
                } else {
                    o.iter_mut().zip(y).for_each(|(o, y)| *o += y * w);
                }
            }
        }
        Tensor::from_vec(out, (t, e), h.device())
    }
}

impl Moe {
    /// One expert's output for the rows of `xs` (`n_embd` wide) its
    /// `slots` name (`token * k + rank`), `slots.len()` rows of `e`.
    fn expert_rows(
        &self,
        expert: &Expert,
        slots: &[usize],
        xs: &[f32],
        e: usize,
    ) -> candle_core::Result<Vec<f32>> {
        let (k, ff, n) = (self.n_used, self.n_ff, slots.len());
        let mut x = Vec::with_capacity(n * e);
        for &s in slots {
            x.extend_from_slice(&xs[s / k * e..][..e]);
        }
        let mut gate = product(&expert.gate, &x, n, e)?;
        let mut up = product(&expert.up, &x, n, e)?;
        if let Some(b) = &expert.bias {
            add_rows(&mut up, &b.up);
            add_rows(&mut gate, &b.gate);
        }
        let act: Vec<f32> = match self.act {
            GateAct::Silu => gate
                .iter()
                .zip(&up)
                .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
                .collect(),
            GateAct::SwigluOai => gate
                .iter()
                .zip(&up)
                .map(|(&g, &u)| swiglu_oai(g, u))
                .collect(),
        };
        let mut y = product(&expert.down, &act, n, ff)?;
        if let Some(b) = &expert.bias {
            add_rows(&mut y, &b.down);
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_takes_the_top_k_renormalised_in_order() {
        // Two tokens, four experts, top-2.
        let logits = [0.0, 2.0, 1.0, -1.0, 3.0, 3.5, -2.0, 0.5];
        let (chosen, weights) = route(&logits, 4, 2, Gating::Softmax);
        assert_eq!(chosen, vec![1, 2, 1, 0]);
        let e = |a: f32, b: f32| 1.0 / (1.0 + (b - a).exp());
        assert!((weights[0] - e(2.0, 1.0)).abs() < 1e-6);
        assert!((weights[1] - e(1.0, 2.0)).abs() < 1e-6);
        assert!((weights[2] + weights[3] - 1.0).abs() < 1e-6);
        assert!(weights[2] > weights[3]);
    }

    /// gpt-oss's gating: the same experts, weights a softmax of the chosen
    /// logits alone (equal to the renormalised full softmax in exact
    /// arithmetic; the two differ in rounding and in the logits they see).
    #[test]
    fn softmax_of_the_top_k_logits() {
        let logits = [0.0, 2.0, 1.0, -1.0];
        let (chosen, weights) = route(&logits, 4, 3, Gating::SoftmaxTopK);
        assert_eq!(chosen, vec![1, 2, 0]);
        let z = 2f32.exp() + 1f32.exp() + 1.0;
        for (w, l) in weights.iter().zip([2.0f32, 1.0, 0.0]) {
            assert!((w - l.exp() / z).abs() < 1e-6);
        }
    }

    #[test]
    fn swiglu_oai_clamps_as_ggml() {
        // Below the limits: g·σ(1.702 g)·(u + 1).
        let want = 0.5 / (1.0 + (-1.702f32 * 0.5).exp()) * 1.25;
        assert!((swiglu_oai(0.5, 0.25) - want).abs() < 1e-7);
        // The gate clamps above only, `up` on both sides.
        assert_eq!(swiglu_oai(100.0, 100.0), swiglu_oai(7.0, 7.0));
        assert_eq!(swiglu_oai(1.0, -100.0), swiglu_oai(1.0, -7.0));
        assert!(swiglu_oai(-100.0, 1.0).abs() < 1e-30);
    }
}
