//! The driver that the integer kernels ([`super::q8`], [`super::kquant`])
//! share: activations quantized once per product, then output rows in
//! parallel bands of `BAND`.
//!
//! Many activation rows (a prompt) go in blocks of `M_BLOCK` that stay in
//! cache while each task multiplies its band of weight rows by all of them,
//! so the weights are read once per block instead of once per activation
//! row. Four activation rows go through the kernel together, so that each
//! weight block is loaded and unpacked once for four. A kernel gives one
//! activation row the same bits whether it comes alone or in a group of
//! four, so a sequence decodes the same alone and batched.

use std::ops::Range;

use candle_core::{DType, Tensor};
use rayon::prelude::*;

/// Output rows per parallel task; kernels that work on tiles of rows take
/// bands that start on a multiple of their tile, which divides this.
pub(super) const BAND: usize = 16;

/// Asks for every cache line of `v` ahead of its use: decoding streams the
/// weights, and the hardware prefetcher stops at each 4 KiB page.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse")]
pub(super) fn prefetch<T: ?Sized>(v: &T) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    let p = (v as *const T).cast::<i8>();
    for at in (0..std::mem::size_of_val(v)).step_by(64) {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at));
    }
}
/// Activation rows per pass over the weights: for the widest common rows
/// (k = 8192 in Q8_K, about 9 KiB each) 64 of them are half of a 2 MiB L2.
const M_BLOCK: usize = 64;

/// The instruction sets the kernels are built for; each kernel module
/// runs the best it has a path for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    /// Plain Rust, for any CPU.
    Portable,
    /// AVX2 with FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX2 with VEX-encoded VNNI (`vpdpbusd` on 256 bits).
    #[cfg(target_arch = "x86_64")]
    AvxVnni,
    /// AVX-512 (F, BW, VL) with VNNI.
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
}

impl Isa {
    /// Every instruction set this CPU runs, best last. Each x86 one past
    /// `Portable` implies AVX2, FMA and F16C.
    pub(super) fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut out = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use std::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") && has!("f16c") {
                out.push(Isa::Avx2);
                if has!("avxvnni") {
                    out.push(Isa::AvxVnni);
                }
                if has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni") {
                    out.push(Isa::Avx512Vnni);
                }
            }
        }
        out
    }

    /// The best instruction set here, detected once.
    pub(super) fn best() -> Isa {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Isa::available().last().copied().unwrap_or(Isa::Portable))
    }

    /// Whether this is AVX-512 VNNI.
    pub(super) fn vnni512(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return self == Isa::Avx512Vnni;
        #[cfg(not(target_arch = "x86_64"))]
        false
    }
}

/// `x` rounded to the nearest integer, ties to even, for |x| < 2^22, as
/// ggml rounds when it quantizes activations. `f32::round_ties_even` is a
/// libm call on baseline x86-64 (no SSE4.1); it made quantizing a prompt
/// cost a third as much as multiplying it.
#[inline(always)]
pub(super) fn round_half_even(x: f32) -> i32 {
    // Adding 1.5·2^23 leaves the integer in the low mantissa bits, rounded
    // by the float add itself (to nearest, ties to even).
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007F_FFFF) as i32 - 0x0040_0000
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
    /// The whole product for several activation rows, `out[i * n + j]`,
    /// where the kernel has a path of its own for them (AMX tiles), with
    /// the same bits per row as [`RowKernel::dot_band`]; false to leave it
    /// to the bands.
    fn forward_many(&self, _xs: &[Self::Act], _out: &mut [f32]) -> bool {
        false
    }
}

/// Activation rows from which the AMX paths run: they unpack every weight
/// into tiles per call, a cost the row kernels do not pay, so a few rows
/// (decoding several sequences at once) go faster through the row kernels
/// (measured on 8192 × 2048, Q4_K/Q6_K/Q4_0/Q8_0: rows 2–5× faster for 2 to
/// 8 rows, even at 16, AMX ahead from 32). Both give the same bits.
pub(super) const AMX_MIN_ROWS: usize = 16;

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
    let rows: Vec<K::Act> = if m >= 8 {
        xs.par_chunks_exact(k).map(|r| w.quantize(r)).collect()
    } else {
        xs.chunks_exact(k).map(|r| w.quantize(r)).collect()
    };
    let n = w.n();
    let mut out = vec![0.0f32; m * n];
    if m == 1 {
        out.par_chunks_mut(BAND).enumerate().for_each(|(c, chunk)| {
            let r0 = c * BAND;
            w.dot_band(r0..r0 + chunk.len(), &[&rows[0]], chunk);
        });
    } else if m < AMX_MIN_ROWS || !w.forward_many(&rows, &mut out) {
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
    let mut shape = lead.to_vec();
    shape.push(n);
    Tensor::from_vec(out, shape, x.device())
}

#[cfg(test)]
mod tests {
    use super::round_half_even;

    #[test]
    fn rounds_half_to_even_like_std() {
        let mut rng = fastrand::Rng::with_seed(7);
        let ties = (-300..300).map(|i| i as f32 + 0.5);
        let random = (0..100_000).map(|_| (rng.f32() - 0.5) * 300.0);
        for x in ties
            .chain(random)
            .chain([0.0, -0.0, 127.0, -127.0, 0.49999997])
        {
            assert_eq!(round_half_even(x), x.round_ties_even() as i32, "{x}");
        }
    }
}
