//! The gated feed-forward activation `gelu(gate) * up` (GEGLU) as ggml's
//! CPU path computes it: GELU read from a table indexed by the gate's f16
//! bits, so the arithmetic, and not only the formula, is llama.cpp's.
//!
//! ggml tabulates the tanh form of GELU once for every f16 value, rounds
//! each result to f16, and looks the gate up after rounding it to f16
//! (gates at or past ±10 skip the table: 0 below, the gate itself above).
//! Besides matching llama.cpp, the lookup is several times faster than
//! evaluating `tanh` per value, which was a sixth of Gemma 3's prefill.
//! (Off the CPU, or on other types than f32, the runner uses candle's GELU.)

use std::sync::OnceLock;

use half::f16;
use rayon::prelude::*;

use crate::Error;

/// GELU's tanh form in f32, the operations in ggml's order (no fused
/// multiply-adds), for one table entry.
fn gelu(x: f32) -> f32 {
    const COEF_A: f32 = 0.044715;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// `gelu` of every f16 value, rounded to f16 and widened back.
fn table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| f16::from_f32(gelu(f16::from_bits(bits).to_f32())).to_f32())
            .collect()
    })
}

/// `gelu(x) * g` for one value.
fn geglu_one(table: &[f32], x: f32, g: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x * g
    } else {
        table[usize::from(f16::from_f32(x).to_bits())] * g
    }
}

/// Values per task: enough to amortize the dispatch.
const CHUNK: usize = 16 << 10;

/// `out = gelu(gate) * up`, elementwise, as ggml's CPU path computes it.
pub fn geglu(gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<(), Error> {
    if gate.len() != up.len() || out.len() != gate.len() {
        return Err(Error::Lengths {
            a: gate.len(),
            b: up.len(),
            out: out.len(),
        });
    }
    let table = table();
    out.par_chunks_mut(CHUNK)
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|(o, (x, g))| {
            for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
                *o = geglu_one(table, x, g);
            }
        });
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The table is GELU within f16 rounding everywhere it is read, and
    /// the cut-offs give what ggml gives.
    #[test]
    fn geglu_is_gelu_at_f16_precision() {
        let table = table();
        for i in -2000..=2000 {
            let x = i as f32 * 0.0057;
            let exact = 0.5 * f64::from(x) * (1.0 + tanh_bracket(f64::from(x)));
            let got = f64::from(geglu_one(table, x, 2.0)) / 2.0;
            // f16 rounding of x and of the result: a few parts in 2^11.
            let tol = 2e-3 * exact.abs().max(1e-3) + 1e-4;
            assert!((got - exact).abs() <= tol, "x {x}: {got} vs {exact}");
        }
        assert_eq!(geglu_one(table, -10.0, 3.0), 0.0);
        assert_eq!(geglu_one(table, -1e30, 3.0), 0.0);
        assert_eq!(geglu_one(table, 10.0, 3.0), 30.0);
        assert_eq!(geglu_one(table, 1e4, 0.5), 5e3);
        assert!(geglu_one(table, f32::NAN, 1.0).is_nan());
    }

    /// The tanh form's bracket, `tanh(√(2/π)·(x + 0.044715·x³))`, in f64.
    fn tanh_bracket(x: f64) -> f64 {
        ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh()
    }

    /// A table entry is the f16 rounding of the f32 formula at that f16.
    #[test]
    fn entries_are_rounded_f32_gelu() {
        let table = table();
        for x in [-3.5f32, -1.0, -0.25, 0.0, 0.125, 1.0, 2.75, 9.5] {
            let bits = f16::from_f32(x).to_bits();
            assert_eq!(table[usize::from(bits)], f16::from_f32(gelu(x)).to_f32());
        }
    }

    #[test]
    fn slices_agree_with_candle_within_f16_rounding_and_check_lengths() {
        use candle_core::{Device, Tensor};
        let n = 17 * 3000; // more than three chunks
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 2001) as f32 / 100.0 - 10.0)
            .collect();
        let g: Vec<f32> = (0..n)
            .map(|i| ((i * 104_729) % 997) as f32 / 500.0 - 1.0)
            .collect();
        let mut ours = vec![0f32; n];
        geglu(&x, &g, &mut ours).unwrap();
        let gate = Tensor::from_vec(x.clone(), (n / 17, 17), &Device::Cpu).unwrap();
        let up = Tensor::from_vec(g.clone(), (n / 17, 17), &Device::Cpu).unwrap();
        let candle = (gate.gelu().unwrap() * &up)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (a, b) in ours.iter().zip(&candle) {
            assert!((a - b).abs() <= 2e-3 * b.abs() + 1e-3, "{a} vs {b}");
        }
        assert!(geglu(&x, &g[1..], &mut ours).is_err());
        assert!(geglu(&x, &g, &mut ours[1..]).is_err());
    }
}
