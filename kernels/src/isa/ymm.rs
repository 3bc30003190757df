//! The K-quant x16 kernels on 256-bit vectors, written once as a macro and
//! compiled per instruction set ([`super::avx2`], [`super::avxvnni`]):
//! each x16 block as two halves of eight rows, the arithmetic of the
//! AVX-512 kernels in the same order.

/// The K-quant x16 kernels on 256-bit vectors, for an instruction set:
/// `$dp` is `vpdpbusd` (`acc` plus the four products of each dword of `w`
/// and `x`), which plain AVX2 does in three instructions.
macro_rules! ymm_x16_kernels {
    ($features:literal, |$acc:ident, $w:ident, $x:ident| $dp:expr) => {
        use std::arch::x86_64::*;

        use crate::formats::q8_k::Q8KRow;
        use crate::isa::load::{ld128, ld256, ld256f, ld64, prefetch_ahead};
        use crate::layout::x16::{Q4KX16, Q5KX16, Q6KX16, Q6_ORDER, X16};

        #[target_feature(enable = $features)]
        fn dp($acc: __m256i, $w: __m256i, $x: __m256i) -> __m256i {
            $dp
        }

        #[target_feature(enable = $features)]
        fn bcast(q: &[[i8; 4]; 64], g: usize) -> __m256i {
            _mm256_set1_epi32(i32::from_le_bytes(q[g].map(|v| v as u8)))
        }

        #[target_feature(enable = $features)]
        fn u8s(v: &[u8; 8]) -> __m256 {
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(ld64(v)))
        }

        #[target_feature(enable = $features)]
        fn f16s(v: &[half::f16; 8]) -> __m256 {
            _mm256_cvtph_ps(ld128(v))
        }

        #[target_feature(enable = $features)]
        fn store<const G: usize>(out: &mut [[f32; X16]; G], hh: usize, acc: [__m256; G]) {
            for (o, a) in out.iter_mut().zip(acc) {
                // SAFETY: lanes 8·hh .. 8·hh + 8 of `o` are 8 writable f32.
                unsafe { _mm256_storeu_ps(o[8 * hh..].as_mut_ptr(), a) };
            }
        }

        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        fn finish45<const G: usize>(
            m: &[[[u8; 8]; 2]; 8],
            dmin: __m256,
            hh: usize,
            xs: [&Q8KRow; G],
            b: usize,
            s: &mut [__m256; G],
            acc: &mut [__m256; G],
        ) {
            for (j, m) in m.iter().enumerate() {
                let dm = _mm256_mul_ps(dmin, u8s(&m[hh]));
                for r in 0..G {
                    s[r] = _mm256_fnmadd_ps(dm, _mm256_set1_ps(xs[r].bsum32[b][j]), s[r]);
                }
            }
            for r in 0..G {
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(xs[r].d[b]), s[r], acc[r]);
            }
        }

        #[target_feature(enable = $features)]
        pub(crate) fn q4k<const G: usize>(blocks: &[Q4KX16], xs: [&Q8KRow; G]) -> [[f32; X16]; G] {
            let low = _mm256_set1_epi8(0x0F);
            let mut out = [[0.0f32; X16]; G];
            for hh in 0..2 {
                let mut acc = [_mm256_setzero_ps(); G];
                for (b, t) in blocks.iter().enumerate() {
                    prefetch_ahead::<_, _MM_HINT_T1>(blocks, b);
                    let xq: [&[[i8; 4]; 64]; G] = std::array::from_fn(|r| &xs[r].qs[b]);
                    let mut isum = [_mm256_setzero_si256(); G];
                    for c in 0..4 {
                        let mut i0 = [_mm256_setzero_si256(); G];
                        let mut i1 = [_mm256_setzero_si256(); G];
                        for g in 0..8 {
                            let q = ld256(&t.qs[8 * c + g][hh]);
                            // Nibbles ≤ 15: maddubs' i16 pairs cannot saturate.
                            let lo = _mm256_and_si256(q, low);
                            let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
                            for r in 0..G {
                                i0[r] = dp(i0[r], lo, bcast(xq[r], 16 * c + g));
                                i1[r] = dp(i1[r], hi, bcast(xq[r], 16 * c + 8 + g));
                            }
                        }
                        let sc0 = _mm256_cvtepu8_epi32(ld64(&t.sc[2 * c][hh]));
                        let sc1 = _mm256_cvtepu8_epi32(ld64(&t.sc[2 * c + 1][hh]));
                        for r in 0..G {
                            let v = _mm256_add_epi32(
                                _mm256_mullo_epi32(sc0, i0[r]),
                                _mm256_mullo_epi32(sc1, i1[r]),
                            );
                            isum[r] = _mm256_add_epi32(isum[r], v);
                        }
                    }
                    // As the AVX-512 kernel's `finish4`.
                    let (d, dmin) = (f16s(&t.d[hh]), f16s(&t.dmin[hh]));
                    let m: [__m256; 8] = std::array::from_fn(|j| u8s(&t.m[j][hh]));
                    for r in 0..G {
                        let mut fm = _mm256_setzero_ps();
                        for (j, m) in m.iter().enumerate() {
                            fm = _mm256_fmadd_ps(*m, _mm256_set1_ps(xs[r].bsum32[b][j]), fm);
                        }
                        let s = _mm256_fmsub_ps(
                            d,
                            _mm256_cvtepi32_ps(isum[r]),
                            _mm256_mul_ps(dmin, fm),
                        );
                        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(xs[r].d[b]), s, acc[r]);
                    }
                }
                store(&mut out, hh, acc);
            }
            out
        }

        #[target_feature(enable = $features)]
        pub(crate) fn q5k<const G: usize>(blocks: &[Q5KX16], xs: [&Q8KRow; G]) -> [[f32; X16]; G] {
            let low = _mm256_set1_epi8(0x0F);
            let bit4 = _mm256_set1_epi8(0x10);
            let mut out = [[0.0f32; X16]; G];
            for hh in 0..2 {
                let mut acc = [_mm256_setzero_ps(); G];
                for (b, t) in blocks.iter().enumerate() {
                    prefetch_ahead::<_, _MM_HINT_T1>(blocks, b);
                    let xq: [&[[i8; 4]; 64]; G] = std::array::from_fn(|r| &xs[r].qs[b]);
                    let d = f16s(&t.d[hh]);
                    let mut s = [_mm256_setzero_ps(); G];
                    for c in 0..4 {
                        let shift = _mm_cvtsi32_si128(2 * c as i32);
                        let mut i0 = [_mm256_setzero_si256(); G];
                        let mut i1 = [_mm256_setzero_si256(); G];
                        for g in 0..8 {
                            let q = ld256(&t.qs[8 * c + g][hh]);
                            // As in the AVX-512 kernel; values ≤ 31.
                            let h = _mm256_srl_epi16(ld256(&t.qh[g][hh]), shift);
                            let h0 = _mm256_and_si256(_mm256_slli_epi16(h, 4), bit4);
                            let h1 = _mm256_and_si256(_mm256_slli_epi16(h, 3), bit4);
                            let lo = _mm256_or_si256(_mm256_and_si256(q, low), h0);
                            let hi =
                                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low), h1);
                            for r in 0..G {
                                i0[r] = dp(i0[r], lo, bcast(xq[r], 16 * c + g));
                                i1[r] = dp(i1[r], hi, bcast(xq[r], 16 * c + 8 + g));
                            }
                        }
                        let ds0 = _mm256_mul_ps(d, u8s(&t.sc[2 * c][hh]));
                        let ds1 = _mm256_mul_ps(d, u8s(&t.sc[2 * c + 1][hh]));
                        for r in 0..G {
                            s[r] = _mm256_fmadd_ps(ds0, _mm256_cvtepi32_ps(i0[r]), s[r]);
                            s[r] = _mm256_fmadd_ps(ds1, _mm256_cvtepi32_ps(i1[r]), s[r]);
                        }
                    }
                    finish45(&t.m, f16s(&t.dmin[hh]), hh, xs, b, &mut s, &mut acc);
                }
                store(&mut out, hh, acc);
            }
            out
        }

        #[target_feature(enable = $features)]
        pub(crate) fn q6k<const G: usize>(blocks: &[Q6KX16], xs: [&Q8KRow; G]) -> [[f32; X16]; G] {
            let low = _mm256_set1_epi8(0x0F);
            let top = _mm256_set1_epi8(0x30);
            let mut out = [[0.0f32; X16]; G];
            for hh in 0..2 {
                let mut acc = [_mm256_setzero_ps(); G];
                for (b, t) in blocks.iter().enumerate() {
                    prefetch_ahead::<_, _MM_HINT_T1>(blocks, b);
                    let xq: [&[[i8; 4]; 64]; G] = std::array::from_fn(|r| &xs[r].qs[b]);
                    let mut isum = [_mm256_setzero_si256(); G];
                    for (h, a, q) in Q6_ORDER {
                        let mut i0 = [_mm256_setzero_si256(); G];
                        let mut i1 = [_mm256_setzero_si256(); G];
                        for l in 4 * q..4 * q + 4 {
                            let w = ld256(&t.ql[16 * h + 8 * a + l][hh]);
                            let hb = ld256(&t.qh[8 * h + l][hh]);
                            // As in the AVX-512 kernel; values ≤ 63.
                            let (f0, f1) = if a == 0 {
                                (_mm256_slli_epi16(hb, 4), hb)
                            } else {
                                (_mm256_slli_epi16(hb, 2), _mm256_srli_epi16(hb, 2))
                            };
                            let lo = _mm256_or_si256(
                                _mm256_and_si256(w, low),
                                _mm256_and_si256(f0, top),
                            );
                            let hi = _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16(w, 4), low),
                                _mm256_and_si256(f1, top),
                            );
                            let g = 32 * h + 8 * a + l;
                            for r in 0..G {
                                i0[r] = dp(i0[r], lo, bcast(xq[r], g));
                                i1[r] = dp(i1[r], hi, bcast(xq[r], g + 16));
                            }
                        }
                        let j = 8 * h + 2 * a + q;
                        let sc0 = _mm256_cvtepi8_epi32(ld64(&t.sc[j][hh]));
                        let sc1 = _mm256_cvtepi8_epi32(ld64(&t.sc[j + 4][hh]));
                        for r in 0..G {
                            let off = &xs[r].bsum16x32[b];
                            let v0 = _mm256_sub_epi32(i0[r], _mm256_set1_epi32(off[j]));
                            let v1 = _mm256_sub_epi32(i1[r], _mm256_set1_epi32(off[j + 4]));
                            let v = _mm256_add_epi32(
                                _mm256_mullo_epi32(sc0, v0),
                                _mm256_mullo_epi32(sc1, v1),
                            );
                            isum[r] = _mm256_add_epi32(isum[r], v);
                        }
                    }
                    let d = ld256f(&t.d[hh]);
                    for r in 0..G {
                        let s = _mm256_mul_ps(d, _mm256_cvtepi32_ps(isum[r]));
                        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(xs[r].d[b]), s, acc[r]);
                    }
                }
                store(&mut out, hh, acc);
            }
            out
        }
    };
}

pub(crate) use ymm_x16_kernels;
