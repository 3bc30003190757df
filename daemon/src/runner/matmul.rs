//! The driver that the integer kernels ([`super::q8`]) share: activations
//! quantized once per product, output rows in parallel bands, and for many activation rows (a prompt) a walk over the weights
//! that reads each band once.
//!
//! A product of many activation rows walks the weights once: each task takes
//! a band of weight rows and multiplies every activation row by it while the
//! band is in cache, instead of one pass over all weights per activation row.
//! Four activation rows go through the kernel together, so that each weight
//! block is loaded and unpacked once for four. A kernel gives one activation
//! row the same bits whether it comes alone or in a group of four, so a
//! sequence decodes the same alone and batched.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

/// Output rows per parallel task.
const ROWS_PER_TASK: usize = 16;
/// About how many bytes of quantized activation rows (roughly `3 k` bytes
/// each) a tile holds: a share of a core's L2.
const TILE_BYTES: usize = 256 << 10;

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
    /// Weight row `row` times `x`.
    fn dot_row(&self, row: usize, x: &Self::Act) -> f32;
    /// Weight row `row` times four activation rows; each result must be the
    /// bits `dot_row` gives for that row.
    fn dot_row4(&self, row: usize, xs: [&Self::Act; 4]) -> [f32; 4];
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
        out.par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(c, chunk)| {
                for (j, o) in chunk.iter_mut().enumerate() {
                    *o = w.dot_row(c * ROWS_PER_TASK + j, &rows[0]);
                }
            });
    } else {
        // Weight-row bands in parallel, every activation row per band. The
        // result comes out transposed, (n, m), and is turned round after.
        // The activation rows go in tiles that stay in the core's cache
        // while every weight row of the band passes over them: a prompt's
        // rows all together (megabytes) would be read from memory again
        // for each weight row.
        let tile = (TILE_BYTES / (3 * k).max(1)).clamp(4, m.max(4)) / 4 * 4;
        let mut t = vec![0.0f32; n * m];
        t.par_chunks_mut(ROWS_PER_TASK * m)
            .enumerate()
            .for_each(|(c, band)| {
                for start in (0..m).step_by(tile) {
                    let end = (start + tile).min(m);
                    let tile_rows = &rows[start..end];
                    for (j, outs) in band.chunks_exact_mut(m).enumerate() {
                        let r = c * ROWS_PER_TASK + j;
                        let mut o4 = outs[start..end].chunks_exact_mut(4);
                        let mut x4 = tile_rows.chunks_exact(4);
                        for (o, x) in (&mut o4).zip(&mut x4) {
                            o.copy_from_slice(&w.dot_row4(r, [&x[0], &x[1], &x[2], &x[3]]));
                        }
                        for (o, xr) in o4.into_remainder().iter_mut().zip(x4.remainder()) {
                            *o = w.dot_row(r, xr);
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
