//! The kernels on AVX2 with FMA and F16C: ggml's Q8_0 and Q4_0 block
//! products for the row layout, the K-quant x16 kernels on 256-bit vectors
//! with `vpdpbusd` done in three instructions, and the Q8_K quantizer
//! compiled for it.

use std::arch::x86_64::*;

use crate::formats::q8_0::QK;
use crate::formats::q8_k::{self, Q8KRow};

/// [`q8_k::quantize`] vectorized by the compiler for AVX2 (the same
/// integer results).
#[target_feature(enable = "avx2,fma")]
pub(crate) fn quantize_q8k(x: &[f32]) -> Q8KRow {
    q8_k::quantize(x)
}

// ggml's AVX2 block products, in Rust intrinsics: per block of 32, the
// signed bytes multiplied pairwise (`maddubs` on |w| and x·sign(w)), summed
// to eight i32 lanes, converted, and accumulated with the two scales.

/// Σ over the 32 products of one block of signed bytes, as 8 f32 lanes.
#[target_feature(enable = "avx2,fma")]
fn block_sum(w: __m256i, x: __m256i) -> __m256 {
    let aw = _mm256_sign_epi8(w, w);
    let sx = _mm256_sign_epi8(x, w);
    // |w|·(±x) pairs fit i16: at most 2·128·127.
    let pairs = _mm256_maddubs_epi16(aw, sx);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// `N` activation rows against one weight row: each weight block is
/// loaded (and for Q4_0 unpacked) once for all of them, and each row
/// gets the bits it would get alone. `w_at(b)` gives block `b` of the
/// weights as 32 signed bytes.
#[target_feature(enable = "avx2,fma")]
fn dot_xn<const N: usize>(
    wd: &[f32],
    xs: [(&[i8], &[f32]); N],
    w_at: impl Fn(usize) -> __m256i,
) -> [f32; N] {
    let nb = wd.len();
    for (q, d) in xs {
        assert!(q.len() >= nb * QK && d.len() >= nb);
    }
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..nb {
        let w = w_at(b);
        for (a, (q, d)) in acc.iter_mut().zip(xs) {
            // SAFETY: bytes b·32 .. b·32 + 32 of the row exist (asserted above).
            let x = unsafe { _mm256_loadu_si256(q.as_ptr().add(b * QK).cast()) };
            *a = _mm256_fmadd_ps(_mm256_set1_ps(wd[b] * d[b]), block_sum(w, x), *a);
        }
    }
    acc.map(|a| hsum(a))
}

/// A Q8_0 row (`wq`, one scale per block in `wd`) times `N` Q8_0
/// activation rows.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn dot_q8<const N: usize>(wq: &[i8], wd: &[f32], xs: [(&[i8], &[f32]); N]) -> [f32; N] {
    assert!(wq.len() >= wd.len() * QK);
    dot_xn(wd, xs, |b| {
        // SAFETY: bytes b·32 .. b·32 + 32 exist (asserted above).
        unsafe { _mm256_loadu_si256(wq.as_ptr().add(b * QK).cast()) }
    })
}

/// A Q4_0 row (16 packed bytes per block) times `N` Q8_0 activation rows.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn dot_q4<const N: usize>(wq: &[u8], wd: &[f32], xs: [(&[i8], &[f32]); N]) -> [f32; N] {
    let half = QK / 2;
    assert!(wq.len() >= wd.len() * half);
    let low = _mm256_set1_epi8(0x0F);
    let eight = _mm256_set1_epi8(8);
    dot_xn(wd, xs, |b| {
        // SAFETY: bytes b·16 .. b·16 + 16 exist (asserted above).
        let packed = unsafe { _mm_loadu_si128(wq.as_ptr().add(b * half).cast()) };
        // Values 0..16 from the low nibbles, 16..32 from the high ones.
        let both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
        _mm256_sub_epi8(_mm256_and_si256(both, low), eight)
    })
}

/// An MXFP4 row (16 packed bytes of codes per block, `wd` the halved
/// scales) times `N` Q8_0 activation rows: the codes looked up in the
/// doubled-value table with one byte shuffle, as ggml's AVX2 kernel does.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn dot_fp4<const N: usize>(wq: &[u8], wd: &[f32], xs: [(&[i8], &[f32]); N]) -> [f32; N] {
    let half = QK / 2;
    assert!(wq.len() >= wd.len() * half);
    let low = _mm256_set1_epi8(0x0F);
    // SAFETY: the table is 16 bytes.
    let table =
        unsafe { _mm_loadu_si128(crate::formats::mxfp4::VALUES.as_ptr().cast::<__m128i>()) };
    let table = _mm256_set_m128i(table, table);
    dot_xn(wd, xs, |b| {
        // SAFETY: bytes b·16 .. b·16 + 16 exist (asserted above).
        let packed = unsafe { _mm_loadu_si128(wq.as_ptr().add(b * half).cast()) };
        let both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
        _mm256_shuffle_epi8(table, _mm256_and_si256(both, low))
    })
}

/// The K-quant x16 kernels, `vpdpbusd` as `maddubs` and `madd`.
pub(crate) mod x16 {
    crate::isa::ymm::ymm_x16_kernels!("avx2,fma,f16c", |acc, w, x| {
        // u8·i8 pairs ≤ 2·63·127: within i16.
        let pairs = _mm256_maddubs_epi16(w, x);
        _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    });
}
