//! The softmax's exponentials and their sum, as ggml computes them: a
//! polynomial `expf` that vectorizes, partial sums in f64 in a fixed order.

/// Lanes of the softmax's partial sums.
const LANES: usize = 8;

/// Replaces each score by `exp(score - max)` and returns their sum, in
/// f64 as ggml sums it: [`LANES`] running sums (score `j` in lane
/// `j % LANES`) added in a fixed order, so vectors compute it and every
/// build gets the same bits. A sink counts in the max and the sum only.
#[inline(always)]
pub(super) fn exp_sum(s: &mut [f32], sink: Option<f32>) -> f64 {
    let mut m = [sink.unwrap_or(f32::NEG_INFINITY); LANES];
    let mut chunks = s.chunks_exact(LANES);
    for c in &mut chunks {
        for (m, &x) in m.iter_mut().zip(c) {
            *m = m.max(x);
        }
    }
    for (m, &x) in m.iter_mut().zip(chunks.remainder()) {
        *m = m.max(x);
    }
    let max = m.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sums = [0f64; LANES];
    let mut chunks = s.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (sum, x) in sums.iter_mut().zip(c) {
            *x = exp(*x - max);
            *sum += f64::from(*x);
        }
    }
    for (sum, x) in sums.iter_mut().zip(chunks.into_remainder()) {
        *x = exp(*x - max);
        *sum += f64::from(*x);
    }
    // A sink joins the denominator only (see [`Scores`]).
    sums.iter().sum::<f64>() + sink.map_or(0.0, |k| f64::from(exp(k - max)))
}

/// `e^x` for `x <= 0` (a score less the largest), to about an ulp: Cephes'
/// `expf` (x = n·ln 2 + r, a degree-6 polynomial in r), in operations that
/// vectorize, fused multiply-adds included, so it gives the same bits on
/// every build. 0 below `e^-87`, where f32 leaves the normal numbers.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    // 1.5 · 2^23: adding it rounds to an integer, kept in the low bits.
    const ROUND: f32 = 12_582_912.0;
    let t = x.max(-87.0).mul_add(std::f32::consts::LOG2_E, ROUND);
    let n = t - ROUND;
    let r = n.mul_add(-0.693_359_4, x.max(-87.0));
    let r = n.mul_add(2.121_944_4e-4, r);
    let mut p = 1.987_569_1e-4_f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let y = (p * r).mul_add(r, r) + 1.0;
    // 2^n from n's bits in t (n in -126..=0 here).
    let n = t.to_bits() as i32 - ROUND.to_bits() as i32;
    let pow = f32::from_bits(((n + 127) << 23) as u32);
    if x < -87.0 {
        0.0
    } else {
        y * pow
    }
}
