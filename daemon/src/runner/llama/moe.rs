//! A mixture-of-experts feed-forward (Qwen 3 MoE) as llama.cpp's
//! `build_moe_ffn` computes it: a router's softmax over the experts, the
//! top-k of them per token, their weights renormalised to sum to 1, each
//! chosen expert's SwiGLU, and the weighted outputs summed in the router's
//! order. Only the chosen experts run, and each runs once per pass on all
//! the rows routed to it, so a prompt's products stay matrix products.

use candle_core::{DType, Device, Tensor};

use super::super::weights::Linear;

/// One expert: a SwiGLU feed-forward of its own.
pub(crate) struct Expert {
    pub(crate) gate: Linear,
    pub(crate) up: Linear,
    pub(crate) down: Linear,
}

/// A layer's experts and their router.
pub(crate) struct Moe {
    /// `(n_expert, n_embd)`: one logit per expert.
    pub(crate) router: Linear,
    pub(crate) experts: Vec<Expert>,
    /// Experts per token (top-k), 1 to `experts.len()`.
    pub(crate) n_used: usize,
    /// One expert's feed-forward size.
    pub(crate) n_ff: usize,
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
pub(crate) fn route(logits: &[f32], n_expert: usize, k: usize) -> (Vec<usize>, Vec<f32>) {
    let t = logits.len() / n_expert.max(1);
    let mut chosen = Vec::with_capacity(t * k);
    let mut weights = Vec::with_capacity(t * k);
    let mut probs = vec![0f32; n_expert];
    let mut order: Vec<usize> = Vec::with_capacity(n_expert);
    for row in logits.chunks_exact(n_expert) {
        probs.copy_from_slice(row);
        softmax(&mut probs);
        order.clear();
        order.extend(0..n_expert);
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let top = &order[..k];
        // ggml_sum_rows (f64 accumulation), clamped as llama.cpp does
        // against a zero sum, then each weight divided by it.
        let sum = top.iter().map(|&e| f64::from(probs[e])).sum::<f64>() as f32;
        let sum = sum.max(6.103_515_6e-5);
        for &e in top {
            chosen.push(e);
            weights.push(probs[e] / sum);
        }
    }
    (chosen, weights)
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
        let (n_expert, k, ff) = (self.experts.len(), self.n_used, self.n_ff);
        let logits: Vec<f32> = self
            .router
            .forward(h)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        if logits.len() != t * n_expert {
            candle_core::bail!("the router gave {} logits for {t} rows", logits.len());
        }
        let xs: Vec<f32> = h.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let (chosen, weights) = route(&logits, n_expert, k);
        // Slots (token * k + rank) per expert, so each expert runs once.
        let mut slots: Vec<Vec<usize>> = vec![Vec::new(); n_expert];
        for (slot, &ex) in chosen.iter().enumerate() {
            slots[ex].push(slot);
        }
        let mut outs = vec![0f32; t * k * e];
        let mut x = Vec::new();
        for (expert, slots) in self.experts.iter().zip(&slots) {
            if slots.is_empty() {
                continue;
            }
            let n = slots.len();
            x.clear();
            for &s in slots {
                x.extend_from_slice(&xs[s / k * e..][..e]);
            }
            let gate = product(&expert.gate, &x, n, e)?;
            let up = product(&expert.up, &x, n, e)?;
            let act: Vec<f32> = gate
                .iter()
                .zip(&up)
                .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let y = product(&expert.down, &act, n, ff)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_takes_the_top_k_renormalised_in_order() {
        // Two tokens, four experts, top-2.
        let logits = [0.0, 2.0, 1.0, -1.0, 3.0, 3.5, -2.0, 0.5];
        let (chosen, weights) = route(&logits, 4, 2);
        assert_eq!(chosen, vec![1, 2, 1, 0]);
        let e = |a: f32, b: f32| 1.0 / (1.0 + (b - a).exp());
        assert!((weights[0] - e(2.0, 1.0)).abs() < 1e-6);
        assert!((weights[1] - e(1.0, 2.0)).abs() < 1e-6);
        assert!((weights[2] + weights[3] - 1.0).abs() < 1e-6);
        assert!(weights[2] > weights[3]);
    }
}
