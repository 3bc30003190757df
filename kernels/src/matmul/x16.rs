//! The Q4_K, Q5_K and Q6_K products on the x16 layout: activations
//! quantized to Q8_K as ggml does (blocks of 256, one f32 scale, the sums
//! of each 16 and 32 quants), exact integer dot products per sub-block
//! against the weights' quants, scaled and summed in f32.
//!
//! Q4_K_M, Ollama's default quantization, is a mix of Q4_K and Q6_K (some
//! files carry Q5_K too). Every path (AVX-512 VNNI, AVX2 with or without
//! AVX-VNNI, portable, and AMX for Q4_K and Q6_K prompts) does the same
//! float operations in the same order on the same exact integer sums, so
//! one row's result has the same bits on every CPU, alone or in a group of
//! activation rows. Q4_K and Q6_K, as ggml does, sum
//! `isum = Σ_j scale_j · sumi_j` in integers (Q6_K with its offset of 32
//! taken off each sub-block's sum) and take per super-block and row
//! `s = d · isum` (Q4_K: `− dmin · Σ_j min_j · bsum_j`, the mins' sum exact
//! in f32), then `acc += d_x · s`; the integer form lets AMX multiply the
//! scales into the weights. Q5_K scales each sub-block's sum in f32,
//! `s = Σ_j (d·scale_j)·sumi_j − …` (fused multiply-adds, sub-blocks in a
//! fixed order). Either differs from ggml only by rounding in the last bits
//! of f32.

use std::ops::Range;

use super::driver::RowKernel;
use crate::formats::q8_k::{self, Q8KRow, QK_K};
use crate::isa::{portable, Isa};
use crate::layout::x16::{X16Blocks, X16Matrix, X16};

#[cfg(test)]
mod tests;

/// Quantizes `x` to Q8_K on the best path here (each gives the same bits).
fn quantize_q8k(x: &[f32]) -> Q8KRow {
    match Isa::best() {
        // SAFETY: `Isa::best` only names instruction sets the CPU has.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { crate::isa::avx512::quantize_q8k(x) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::AvxVnni => unsafe { crate::isa::avx2::quantize_q8k(x) },
        Isa::Portable => q8_k::quantize(x),
    }
}

/// Rows `16t..16t + 16` of `w` times `G` activation rows on `isa`: one
/// result per row of the x16 block.
fn dot_x16<const G: usize>(w: &X16Matrix, isa: Isa, t: usize, xs: [&Q8KRow; G]) -> [[f32; X16]; G] {
    let nb = w.k / QK_K;
    let span = t * nb..(t + 1) * nb;
    for x in xs {
        assert!(x.d.len() == nb && x.qs.len() == nb);
        assert!(x.bsum32.len() == nb && x.bsum16x32.len() == nb);
    }
    macro_rules! on {
        ($blocks:expr, $f:ident) => {{
            let blocks = &$blocks[span];
            match isa {
                Isa::Portable => portable::$f(blocks, xs),
                // SAFETY: `isa` only names instruction sets the CPU has
                // (`Isa::available`).
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { crate::isa::avx2::x16::$f(blocks, xs) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Isa::AvxVnni => unsafe { crate::isa::avxvnni::x16::$f(blocks, xs) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512Vnni => unsafe { crate::isa::avx512::$f(blocks, xs) },
            }
        }};
    }
    match &w.blocks {
        X16Blocks::Q4K(blocks) => on!(blocks, q4k),
        X16Blocks::Q5K(blocks) => on!(blocks, q5k),
        X16Blocks::Q6K(blocks) => on!(blocks, q6k),
    }
}

/// [`RowKernel::dot_band`] on `isa`.
fn dot_band_on(w: &X16Matrix, isa: Isa, rows: Range<usize>, xs: &[&Q8KRow], out: &mut [f32]) {
    assert!(
        rows.start.is_multiple_of(X16) && rows.end <= w.n && out.len() == xs.len() * rows.len()
    );
    let len = rows.len();
    for (t0, o) in (rows.start..rows.end).step_by(X16).zip(0..) {
        let t = t0 / X16;
        let cols = X16.min(rows.end - t0);
        let mut put = |i: usize, block: &[f32; X16]| {
            out[i * len + o * X16..i * len + o * X16 + cols].copy_from_slice(&block[..cols]);
        };
        if let &[a, b, c, d] = xs {
            for (i, block) in dot_x16(w, isa, t, [a, b, c, d]).iter().enumerate() {
                put(i, block);
            }
        } else {
            for (i, x) in xs.iter().enumerate() {
                put(i, &dot_x16(w, isa, t, [*x])[0]);
            }
        }
    }
}

impl RowKernel for X16Matrix {
    type Act = Q8KRow;

    fn n(&self) -> usize {
        self.n
    }

    fn k(&self) -> usize {
        self.k
    }

    fn quantize(&self, x: &[f32]) -> Q8KRow {
        quantize_q8k(x)
    }

    fn dot_band(&self, rows: Range<usize>, xs: &[&Q8KRow], out: &mut [f32]) {
        dot_band_on(self, Isa::best(), rows, xs, out);
    }

    fn forward_many(&self, xs: &[Q8KRow], out: &mut [f32]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if crate::isa::amx::available() {
            use crate::isa::amx::x16 as amx;
            match &self.blocks {
                X16Blocks::Q4K(blocks) => amx::q4k(blocks, self.n, self.k, xs, out),
                X16Blocks::Q6K(blocks) => amx::q6k(blocks, self.n, self.k, xs, out),
                X16Blocks::Q5K(_) => return false,
            }
            return true;
        }
        let _ = (xs, out);
        false
    }
}
