//! The driver that the integer kernels ([`super::q8`], [`super::kquant`])
//! share: activations quantized once per product, output rows in parallel
//! bands, and for many activation rows (a prompt) a walk over the weights
//! that reads each band once.
//!
//! A product of many activation rows walks the weights once: each task takes
//! a band of weight rows and multiplies every activation row by it while the
//! band is in cache, instead of one pass over all weights per activation row.
//! Four activation rows go through the kernel together, so that each weight
//! block is loaded and unpacked once for four. A kernel gives one activation
//! row the same bits whether it comes alone or in a group of four, so a
//! sequence decodes the same alone and batched.

use std::ops::Range;

use candle_core::{DType, Tensor};
use rayon::prelude::*;

/// Output rows per parallel task; kernels that work on tiles of rows take
/// bands that start on a multiple of their tile, which divides this.
pub(super) const BAND: usize = 16;

/// Whether the AVX2 kernels can run here (std caches the detection).
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// A weight matrix `(n, k)` in some packed format, with its dot products.
pub(super) trait RowKernel: Sync {
    /// An activation row quantized for this format.
    type Act: Send + Sync;

    /// Output rows.
    fn n(&self) -> usize;
    /// Input columns.
    fn k(&self) -> usize;
    /// The format, for errors.
    fn name(&self) -> &'static str;
    /// Quantizes one activation row of `k` values.
    fn quantize(&self, x: &[f32]) -> Self::Act;
    /// Weight rows `rows` (at most [`BAND`], from a multiple of it) times
    /// one to four activation rows: `out[i * rows.len() + j]` is row
    /// `rows.start + j` times `xs[i]`. A result must have the same bits
    /// whatever the other rows in `xs` are.
    fn dot_band(&self, rows: Range<usize>, xs: &[&Self::Act], out: &mut [f32]);
}

/// `x @ wᵀ` for `x` of shape `(..., k)`.
pub(super) fn forward<K: RowKernel>(w: &K, x: &Tensor) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let Some((&k, lead)) = dims.split_last() else {
        candle_core::bail!("{} matmul of a scalar", w.name());
    };
    if k != w.k() {
        candle_core::bail!(
            "{} matmul: input has {k} columns, weight {}",
            w.name(),
            w.k()
        );
    }
    let m: usize = lead.iter().product();
    let xs: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let rows: Vec<K::Act> = xs.chunks_exact(k).map(|r| w.quantize(r)).collect();
    let n = w.n();
    let mut out = vec![0.0f32; m * n];
    if m == 1 {
        out.par_chunks_mut(BAND).enumerate().for_each(|(c, chunk)| {
            let r0 = c * BAND;
            w.dot_band(r0..r0 + chunk.len(), &[&rows[0]], chunk);
        });
    } else {
        // Weight-row bands in parallel, every activation row per band. The
        // result comes out transposed, (n, m), and is turned round after.
        let mut t = vec![0.0f32; n * m];
        t.par_chunks_mut(BAND * m)
            .enumerate()
            .for_each(|(c, band)| {
                let r0 = c * BAND;
                let len = band.len() / m;
                let mut tmp = [0.0f32; 4 * BAND];
                for (g, group) in rows.chunks(4).enumerate() {
                    let mut xs = [&group[0]; 4];
                    for (x, row) in xs.iter_mut().zip(group) {
                        *x = row;
                    }
                    let tmp = &mut tmp[..group.len() * len];
                    w.dot_band(r0..r0 + len, &xs[..group.len()], tmp);
                    for (i, o) in tmp.chunks_exact(len).enumerate() {
                        for (j, v) in o.iter().enumerate() {
                            band[j * m + 4 * g + i] = *v;
                        }
                    }
                }
            });
        for (r, col) in t.chunks_exact(m).enumerate() {
            for (i, v) in col.iter().enumerate() {
                out[i * n + r] = *v;
            }
        }
    }
    let mut shape = lead.to_vec();
    shape.push(n);
    Tensor::from_vec(out, shape, x.device())
}
