//! The kernels on AVX-512 (F, BW, VL) with VNNI: the K-quant x16 blocks
//! and the Q8_0/Q4_0 strips in whole 512-bit vectors, one lane per weight
//! row, and the Q8_K quantizer compiled for it.

use std::arch::x86_64::*;

use half::f16;

use super::load::{ld128, ld256, ld512, ld512f, prefetch_part, prefetch_past};
use crate::formats::mxfp4;
use crate::formats::q8_0::{Q8_0Row, QK};
use crate::formats::q8_k::{self, Q8KRow};
use crate::layout::strips::STRIP;
use crate::layout::x16::{Q4KX16, Q5KX16, Q6KX16, X16};

/// [`q8_k::quantize`] vectorized by the compiler for AVX-512 (the same
/// integer results).
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) fn quantize_q8k(x: &[f32]) -> Q8KRow {
    q8_k::quantize(x)
}

/// ternlog's table for `(a & c) | b`: a byte's bits from `a` where the
/// mask `c` is set, or'ed with `b` (zero there).
const A_AND_C_OR_B: i32 = 0xEC;

/// The group-of-four dword `g` of an activation block, broadcast.
#[target_feature(enable = "avx512f")]
fn bcast(q: &[[i8; 4]; 64], g: usize) -> __m512i {
    _mm512_set1_epi32(i32::from_le_bytes(q[g].map(|v| v as u8)))
}

#[target_feature(enable = "avx512f")]
pub(crate) fn u8s(v: &[[u8; 8]; 2]) -> __m512 {
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(ld128(v)))
}

#[target_feature(enable = "avx512f")]
pub(crate) fn f16s(v: &[[half::f16; 8]; 2]) -> __m512 {
    _mm512_cvtph_ps(ld256(v))
}

#[target_feature(enable = "avx512f")]
pub(crate) fn store<const G: usize>(acc: [__m512; G]) -> [[f32; X16]; G] {
    let mut out = [[0.0f32; X16]; G];
    for (o, a) in out.iter_mut().zip(acc) {
        // SAFETY: `o` is 16 writable f32.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), a) };
    }
    out
}

/// The part of Q4_K and Q5_K after the sub-block sums: the mins, then
/// the super-block into `acc`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
fn finish45<const G: usize>(
    m: &[[[u8; 8]; 2]; 8],
    dmin: __m512,
    xs: [&Q8KRow; G],
    b: usize,
    s: &mut [__m512; G],
    acc: &mut [__m512; G],
) {
    for (j, m) in m.iter().enumerate() {
        let dm = _mm512_mul_ps(dmin, u8s(m));
        for r in 0..G {
            s[r] = _mm512_fnmadd_ps(dm, _mm512_set1_ps(xs[r].bsum32[b][j]), s[r]);
        }
    }
    for r in 0..G {
        acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(xs[r].d[b]), s[r], acc[r]);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) fn q4k<const G: usize>(blocks: &[Q4KX16], xs: [&Q8KRow; G]) -> [[f32; X16]; G] {
    let low = _mm512_set1_epi8(0x0F);
    let high = _mm512_set1_epi8(0xF0u8 as i8);
    let mut acc = [_mm512_setzero_ps(); G];
    for (b, t) in blocks.iter().enumerate() {
        let xq: [&[[i8; 4]; 64]; G] = std::array::from_fn(|r| &xs[r].qs[b]);
        let mut isum = [_mm512_setzero_si512(); G];
        for c in 0..4 {
            prefetch_part::<_, _MM_HINT_T1>(blocks, b, c, 4);
            let mut i0 = [_mm512_setzero_si512(); G];
            let mut i1 = [_mm512_setzero_si512(); G];
            for g in 0..8 {
                let q = ld512(&t.qs[8 * c + g]);
                let lo = _mm512_and_si512(q, low);
                // The high nibbles left in place are 16 times their
                // value; vpdpbusd sums them without overflow (no i16
                // step) and the scale below takes the 16 back, exactly.
                let hi = _mm512_and_si512(q, high);
                for r in 0..G {
                    i0[r] = _mm512_dpbusd_epi32(i0[r], lo, bcast(xq[r], 16 * c + g));
                    i1[r] = _mm512_dpbusd_epi32(i1[r], hi, bcast(xq[r], 16 * c + 8 + g));
                }
            }
            let sc0 = _mm512_cvtepu8_epi32(ld128(&t.sc[2 * c]));
            let sc1 = _mm512_cvtepu8_epi32(ld128(&t.sc[2 * c + 1]));
            for r in 0..G {
                let v0 = _mm512_mullo_epi32(sc0, i0[r]);
                // i1 holds 16 times the sums: exact to shift back.
                let v1 = _mm512_mullo_epi32(sc1, _mm512_srai_epi32(i1[r], 4));
                isum[r] = _mm512_add_epi32(isum[r], _mm512_add_epi32(v0, v1));
            }
        }
        finish4(t, xs, b, &isum, &mut acc);
    }
    store(acc)
}

/// Q4_K's super-block from the scaled integer sums `isum`: the mins
/// (exact in f32: each `m · bsum` and their sum are below 2^24), then
/// `d · isum − dmin · mins` into `acc`, in [`super::portable`]'s order.
#[target_feature(enable = "avx512f")]
fn finish4<const G: usize>(
    t: &Q4KX16,
    xs: [&Q8KRow; G],
    b: usize,
    isum: &[__m512i; G],
    acc: &mut [__m512; G],
) {
    let (d, dmin) = (f16s(&t.d), f16s(&t.dmin));
    let m: [__m512; 8] = std::array::from_fn(|j| u8s(&t.m[j]));
    for r in 0..G {
        let mut fm = _mm512_setzero_ps();
        for (j, m) in m.iter().enumerate() {
            fm = _mm512_fmadd_ps(*m, _mm512_set1_ps(xs[r].bsum32[b][j]), fm);
        }
        let s = _mm512_fmsub_ps(d, _mm512_cvtepi32_ps(isum[r]), _mm512_mul_ps(dmin, fm));
        acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(xs[r].d[b]), s, acc[r]);
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) fn q5k<const G: usize>(blocks: &[Q5KX16], xs: [&Q8KRow; G]) -> [[f32; X16]; G] {
    let low = _mm512_set1_epi8(0x0F);
    let bit4 = _mm512_set1_epi8(0x10);
    let mut acc = [_mm512_setzero_ps(); G];
    for (b, t) in blocks.iter().enumerate() {
        let xq: [&[[i8; 4]; 64]; G] = std::array::from_fn(|r| &xs[r].qs[b]);
        let d = f16s(&t.d);
        let mut s = [_mm512_setzero_ps(); G];
        for c in 0..4 {
            prefetch_part::<_, _MM_HINT_T1>(blocks, b, c, 4);
            let shift = _mm_cvtsi32_si128(2 * c as i32);
            let mut i0 = [_mm512_setzero_si512(); G];
            let mut i1 = [_mm512_setzero_si512(); G];
            for g in 0..8 {
                let q = ld512(&t.qs[8 * c + g]);
                // Bits 2c and 2c + 1 of each byte, moved to bit 4; the
                // 16-bit shifts carry nothing into bit 4 that the mask
                // keeps.
                let h = _mm512_srl_epi16(ld512(&t.qh[g]), shift);
                let h0 = _mm512_and_si512(_mm512_slli_epi16(h, 4), bit4);
                let h1 = _mm512_and_si512(_mm512_slli_epi16(h, 3), bit4);
                let lo = _mm512_ternarylogic_epi32(q, h0, low, A_AND_C_OR_B);
                let hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(q, 4), h1, low, A_AND_C_OR_B);
                for r in 0..G {
                    i0[r] = _mm512_dpbusd_epi32(i0[r], lo, bcast(xq[r], 16 * c + g));
                    i1[r] = _mm512_dpbusd_epi32(i1[r], hi, bcast(xq[r], 16 * c + 8 + g));
                }
            }
            let ds0 = _mm512_mul_ps(d, u8s(&t.sc[2 * c]));
            let ds1 = _mm512_mul_ps(d, u8s(&t.sc[2 * c + 1]));
            for r in 0..G {
                s[r] = _mm512_fmadd_ps(ds0, _mm512_cvtepi32_ps(i0[r]), s[r]);
                s[r] = _mm512_fmadd_ps(ds1, _mm512_cvtepi32_ps(i1[r]), s[r]);
            }
        }
        finish45(&t.m, f16s(&t.dmin), xs, b, &mut s, &mut acc);
    }
    store(acc)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) fn q6k<const G: usize>(blocks: &[Q6KX16], xs: [&Q8KRow; G]) -> [[f32; X16]; G] {
    let low = _mm512_set1_epi8(0x0F);
    let top = _mm512_set1_epi8(0x30);
    let mut acc = [_mm512_setzero_ps(); G];
    for (b, t) in blocks.iter().enumerate() {
        let xq: [&[[i8; 4]; 64]; G] = std::array::from_fn(|r| &xs[r].qs[b]);
        let mut isum = [_mm512_setzero_si512(); G];
        // Per (h, q), fields a = 0 and 1 together: each `qh` vector is
        // loaded once for both, and four sums run side by side instead of
        // two (integer sums: any order gives the same bits).
        for (h, q) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            prefetch_part::<_, _MM_HINT_T1>(blocks, b, 2 * h + q, 4);
            let mut i4 = [[_mm512_setzero_si512(); 4]; G];
            for l in 4 * q..4 * q + 4 {
                let hb = ld512(&t.qh[8 * h + l]);
                // Field pairs moved to bits 4 and 5; the 16-bit shifts
                // carry nothing into them that `top` keeps.
                let f = [
                    _mm512_and_si512(_mm512_slli_epi16(hb, 4), top),
                    _mm512_and_si512(hb, top),
                    _mm512_and_si512(_mm512_slli_epi16(hb, 2), top),
                    _mm512_and_si512(_mm512_srli_epi16(hb, 2), top),
                ];
                for a in 0..2 {
                    let w = ld512(&t.ql[16 * h + 8 * a + l]);
                    let lo = _mm512_ternarylogic_epi32(w, f[2 * a], low, A_AND_C_OR_B);
                    let hi = _mm512_ternarylogic_epi32(
                        _mm512_srli_epi16(w, 4),
                        f[2 * a + 1],
                        low,
                        A_AND_C_OR_B,
                    );
                    let g = 32 * h + 8 * a + l;
                    for r in 0..G {
                        i4[r][2 * a] = _mm512_dpbusd_epi32(i4[r][2 * a], lo, bcast(xq[r], g));
                        i4[r][2 * a + 1] =
                            _mm512_dpbusd_epi32(i4[r][2 * a + 1], hi, bcast(xq[r], g + 16));
                    }
                }
            }
            for a in 0..2 {
                let j = 8 * h + 2 * a + q;
                let sc0 = _mm512_cvtepi8_epi32(ld128(&t.sc[j]));
                let sc1 = _mm512_cvtepi8_epi32(ld128(&t.sc[j + 4]));
                for r in 0..G {
                    let off = &xs[r].bsum16x32[b];
                    let v0 = _mm512_sub_epi32(i4[r][2 * a], _mm512_set1_epi32(off[j]));
                    let v1 = _mm512_sub_epi32(i4[r][2 * a + 1], _mm512_set1_epi32(off[j + 4]));
                    let v =
                        _mm512_add_epi32(_mm512_mullo_epi32(sc0, v0), _mm512_mullo_epi32(sc1, v1));
                    isum[r] = _mm512_add_epi32(isum[r], v);
                }
            }
        }
        let d = ld512f(&t.d);
        for r in 0..G {
            let s = _mm512_mul_ps(d, _mm512_cvtepi32_ps(isum[r]));
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(xs[r].d[b]), s, acc[r]);
        }
    }
    store(acc)
}

/// MXFP4's doubled values plus 12, by code: unsigned bytes for vpdpbusd.
const FP4_TABLE: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        t[i] = (mxfp4::VALUES[i] + 12) as u8;
        i += 1;
    }
    t
};

/// Where the strip kernel asks its lines into: L2. Into L1 was as fast on
/// one thread, but on two the output matrix (151,936 × 1,024 Q8_0, called
/// from a thread of the pool as the runner does) streams 27 → 30–33 GB/s.
const PREFETCH_HINT: i32 = _MM_HINT_T1;

/// How far ahead of its reads the strip kernel asks for weight lines.
const STRIP_PREFETCH_BYTES: usize = 4 << 10;

/// One strip (`wq`, scales `wd`) times `N` activation rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) fn strip_dot<const N: usize, const Q4: bool, const FP4: bool>(
    wq: &[u8],
    wd: &[f16],
    xs: [&Q8_0Row; N],
) -> [[f32; STRIP]; N] {
    let nb = wd.len() / STRIP;
    let block = STRIP * if Q4 { QK / 2 } else { QK };
    assert!(wq.len() >= nb * block);
    for x in xs {
        assert!(x.qs.len() >= nb * QK && x.d.len() >= nb && x.sums.len() >= nb);
    }
    // MXFP4's doubled values plus 12 are unsigned (0..=24), as vpdpbusd
    // wants them; the 12 comes back off through the activation sums.
    let offset: i32 = if FP4 {
        -12
    } else if Q4 {
        -8
    } else {
        -128
    };
    let low = _mm512_set1_epi8(0x0F);
    let table = _mm512_broadcast_i32x4(ld128(&FP4_TABLE));
    let mut acc = [_mm512_setzero_ps(); N];
    // Blocks ahead whose lines are asked for: the hardware prefetcher
    // stops at each 4 KiB page, and decoding streams the weights.
    let ahead = STRIP_PREFETCH_BYTES / block;
    for b in 0..nb {
        // Past the strip's end too: the next strip follows in memory (a
        // strip of a 1,024-wide matrix is 32 blocks, its last 8 asked
        // for nothing).
        let next = b + ahead;
        prefetch_past::<PREFETCH_HINT>(wq.as_ptr().wrapping_add(next * block), block);
        prefetch_past::<PREFETCH_HINT>(wd.as_ptr().wrapping_add(next * STRIP).cast(), 2 * STRIP);
        // SAFETY: scales b·16 .. b·16 + 16 and quant bytes b·block ..
        // (b + 1)·block exist (asserted above).
        let ws = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(wd.as_ptr().add(b * STRIP).cast())) };
        let mut w = [_mm512_setzero_si512(); 8];
        // SAFETY: block b's bytes exist (asserted above).
        let base = unsafe { wq.as_ptr().add(b * block) };
        if Q4 {
            for g in 0..4 {
                // SAFETY: within this block's bytes (asserted above).
                let p = unsafe { _mm512_loadu_si512(base.add(g * 64).cast()) };
                w[g] = _mm512_and_si512(p, low);
                w[g + 4] = _mm512_and_si512(_mm512_srli_epi16(p, 4), low);
                if FP4 {
                    w[g] = _mm512_shuffle_epi8(table, w[g]);
                    w[g + 4] = _mm512_shuffle_epi8(table, w[g + 4]);
                }
            }
        } else {
            for (g, wg) in w.iter_mut().enumerate() {
                // SAFETY: within this block's bytes (asserted above).
                *wg = unsafe { _mm512_loadu_si512(base.add(g * 64).cast()) };
            }
        }
        for (a, x) in acc.iter_mut().zip(xs) {
            // SAFETY: bytes b·32 .. b·32 + 32 of the row exist (asserted above).
            let xp = unsafe { x.qs.as_ptr().add(b * QK) }.cast::<i32>();
            let group = |g: usize| {
                // SAFETY: group g < 8 lies in the block; unaligned read.
                _mm512_set1_epi32(unsafe { xp.add(g).read_unaligned() })
            };
            // Two chains, so the multiply-adds do not all wait on one.
            let mut s0 = _mm512_set1_epi32(offset * x.sums[b]);
            let mut s1 = _mm512_setzero_si512();
            for g in (0..8).step_by(2) {
                s0 = _mm512_dpbusd_epi32(s0, w[g], group(g));
                s1 = _mm512_dpbusd_epi32(s1, w[g + 1], group(g + 1));
            }
            let s = _mm512_add_epi32(s0, s1);
            let scale = _mm512_mul_ps(ws, _mm512_set1_ps(x.d[b]));
            *a = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(s), *a);
        }
    }
    acc.map(|a| {
        let mut o = [0.0f32; STRIP];
        // SAFETY: `o` has room for 16 floats.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), a) };
        o
    })
}
