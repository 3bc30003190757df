//! The Q8_0, Q4_0 and MXFP4 products on the strip layout (AVX-512 VNNI, AMX for
//! prompts): each strip's 16 outputs at once for one to four activation
//! rows. A block's integer dot product is exact, and each output
//! accumulates `d_w · d_x · dot` over the blocks in order, as ggml's
//! scalar reference does; the weights' unsigned offset comes back off
//! through each activation block's sum (each block's accumulator starts at
//! `-offset · Σx`).

use rayon::prelude::*;

use crate::formats::q8_0::{self, Q8_0Row, QK};
use crate::layout::strips::{Strips, STRIP};

#[cfg(test)]
mod tests;

/// About how many bytes of quantized activation rows a block of rows
/// holds while the strips of a task pass over it: a share of a core's L2.
const ROW_BLOCK_BYTES: usize = 256 << 10;

/// Strip `s` of `st` times `N` activation rows: 16 outputs per row.
fn dot<const N: usize>(st: &Strips, s: usize, xs: [&Q8_0Row; N]) -> [[f32; STRIP]; N] {
    let (wd, wq) = st.strip(s);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a `Strips` is multiplied only where `Isa::best` found
        // AVX-512 F, BW, VL and VNNI (the front's choice of layout), all
        // that `strip_dot` needs.
        unsafe {
            if st.fp4 {
                crate::isa::avx512::strip_dot::<N, true, true>(wq, wd, xs)
            } else if st.q4 {
                crate::isa::avx512::strip_dot::<N, true, false>(wq, wd, xs)
            } else {
                crate::isa::avx512::strip_dot::<N, false, false>(wq, wd, xs)
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (wd, wq, xs);
        unreachable!("strips are built on x86_64 only")
    }
}

/// `out = x @ stᵀ`: `x` is rows of `k` values, `out` as many rows of `n`
/// (the caller checked both lengths).
pub(crate) fn forward(st: &Strips, x: &[f32], out: &mut [f32]) {
    let (n, k) = (st.n, st.k);
    let m = x.len() / k;
    debug_assert_eq!(out.len(), m * n);
    let rows: Vec<Q8_0Row> = x.chunks_exact(k).map(|r| q8_0::quantize(r, true)).collect();
    let strips = st.strips();
    #[cfg(target_arch = "x86_64")]
    // The AMX tiles take Q8_0 and Q4_0; MXFP4 stays on AVX-512.
    if m >= super::driver::AMX_MIN_ROWS && !st.fp4 && crate::isa::amx::available() {
        crate::isa::amx::strips::forward(st, &rows, out);
        return;
    }
    // Per strip, its 16 outputs for every activation row: (strips·16, m).
    let mut t = vec![0.0f32; strips * STRIP * m];
    let block = (ROW_BLOCK_BYTES / (k + k / QK * 8).max(1)).clamp(4, m.max(4)) / 4 * 4;
    t.par_chunks_mut(STRIP * m)
        .enumerate()
        .for_each(|(s, outs)| {
            for start in (0..m).step_by(block) {
                let end = (start + block).min(m);
                let part = &rows[start..end];
                let mut x4 = part.chunks_exact(4);
                let mut i = start;
                let mut put = |v: &[f32; STRIP], i: usize| {
                    for (lane, &o) in v.iter().enumerate() {
                        outs[lane * m + i] = o;
                    }
                };
                for x in &mut x4 {
                    let r = dot(st, s, [&x[0], &x[1], &x[2], &x[3]]);
                    for v in &r {
                        put(v, i);
                        i += 1;
                    }
                }
                for x in x4.remainder() {
                    let [v] = dot(st, s, [x]);
                    put(&v, i);
                    i += 1;
                }
            }
        });
    for (r, col) in t.chunks_exact(m).take(n).enumerate() {
        for (i, v) in col.iter().enumerate() {
            out[i * n + r] = *v;
        }
    }
}
