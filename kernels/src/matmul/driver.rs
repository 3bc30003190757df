//! The driver that the row kernels (the block-row and x16 layouts) share:
//! activations quantized once per product, then output rows in parallel
//! bands of `BAND`.
//!
//! Many activation rows (a prompt) go in blocks of `M_BLOCK` that stay in
//! cache while each task multiplies its band of weight rows by all of them,
//! so the weights are read once per block instead of once per activation
//! row. Four activation rows go through the kernel together, so that each
//! weight block is loaded and unpacked once for four. A kernel gives one
//! activation row the same bits whether it comes alone or in a group of
//! four, so a sequence decodes the same alone and batched.

use std::ops::Range;

use rayon::prelude::*;

/// Output rows per parallel task; kernels that work on groups of rows (the
/// x16 blocks) take bands that start on a multiple of their group, which
/// divides this.
pub(crate) const BAND: usize = 16;

/// Activation rows per pass over the weights: for the widest common rows
/// (k = 8192 in Q8_K, about 9 KiB each) 64 of them are half of a 2 MiB L2.
const M_BLOCK: usize = 64;

/// Activation rows from which the AMX paths run: they unpack every weight
/// into tiles per call, a cost the row kernels do not pay, so a few rows
/// (decoding several sequences at once) go faster through the row kernels
/// (measured on 8192 × 2048, Q4_K/Q6_K/Q4_0/Q8_0: rows 2–5× faster for 2 to
/// 8 rows, even at 16, AMX ahead from 32). Both give the same bits.
pub(crate) const AMX_MIN_ROWS: usize = 16;

/// A weight matrix `(n, k)` in some packed layout, with its dot products.
pub(crate) trait RowKernel: Sync {
    /// An activation row quantized for this format.
    type Act: Send + Sync;

    /// Output rows.
    fn n(&self) -> usize;
    /// Input columns.
    fn k(&self) -> usize;
    /// Quantizes one activation row of `k` values.
    fn quantize(&self, x: &[f32]) -> Self::Act;
    /// Weight rows `rows` (at most [`BAND`], from a multiple of it) times
    /// one to four activation rows: `out[i * rows.len() + j]` is row
    /// `rows.start + j` times `xs[i]`. A result must have the same bits
    /// whatever the other rows in `xs` are.
    fn dot_band(&self, rows: Range<usize>, xs: &[&Self::Act], out: &mut [f32]);
    /// The whole product for several activation rows, `out[i * n + j]`,
    /// where the kernel has a path of its own for them (AMX), with the
    /// same bits per row as [`RowKernel::dot_band`]; false to leave it to
    /// the bands.
    fn forward_many(&self, _xs: &[Self::Act], _out: &mut [f32]) -> bool {
        false
    }
}

/// `out = x @ wᵀ`: `x` is rows of `w.k()` values, `out` as many rows of
/// `w.n()` (the caller checked both lengths).
pub(crate) fn forward<K: RowKernel>(w: &K, x: &[f32], out: &mut [f32]) {
    let (n, k) = (w.n(), w.k());
    let m = x.len() / k;
    debug_assert_eq!(out.len(), m * n);
    let rows: Vec<K::Act> = if m >= 8 {
        x.par_chunks_exact(k).map(|r| w.quantize(r)).collect()
    } else {
        x.chunks_exact(k).map(|r| w.quantize(r)).collect()
    };
    if m == 1 {
        out.par_chunks_mut(BAND).enumerate().for_each(|(c, chunk)| {
            let r0 = c * BAND;
            w.dot_band(r0..r0 + chunk.len(), &[&rows[0]], chunk);
        });
    } else if m < AMX_MIN_ROWS || !w.forward_many(&rows, out) {
        // Activation rows in blocks small enough to stay in a core's cache
        // while every weight band passes over them; per block, the bands in
        // parallel. A band's results come out as [row][BAND] and are copied
        // into place a cache line at a time.
        let bands = n.div_ceil(BAND);
        let mut t = vec![0.0f32; bands * M_BLOCK * BAND];
        for (blk, block) in rows.chunks(M_BLOCK).enumerate() {
            t.par_chunks_mut(M_BLOCK * BAND)
                .enumerate()
                .for_each(|(c, buf)| {
                    let r0 = c * BAND;
                    let len = BAND.min(n - r0);
                    let mut tmp = [0.0f32; 4 * BAND];
                    for (g, group) in block.chunks(4).enumerate() {
                        let mut xs = [&group[0]; 4];
                        for (x, row) in xs.iter_mut().zip(group) {
                            *x = row;
                        }
                        let tmp = &mut tmp[..group.len() * len];
                        w.dot_band(r0..r0 + len, &xs[..group.len()], tmp);
                        for (i, o) in tmp.chunks_exact(len).enumerate() {
                            buf[(4 * g + i) * BAND..][..len].copy_from_slice(o);
                        }
                    }
                });
            for (c, buf) in t.chunks_exact(M_BLOCK * BAND).enumerate() {
                let r0 = c * BAND;
                let len = BAND.min(n - r0);
                for i in 0..block.len() {
                    let row = blk * M_BLOCK + i;
                    out[row * n + r0..][..len].copy_from_slice(&buf[i * BAND..][..len]);
                }
            }
        }
    }
}
