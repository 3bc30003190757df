//! Four queries at once through a block of keys or values on AVX-512: a
//! decode step's query heads that share a kv head (or a prompt's queries
//! that see the same keys) load each key and value row once instead of
//! four times. The accumulators are named vector registers: the same loops
//! written on arrays of `f32` (as the one-query path is) were kept in memory
//! by the compiler and ran at half the speed.
//!
//! Each sum runs in the order [`super::dot_block`] and [`super::weigh`]
//! run it, with the same fused multiply-adds, so a query gets the same bits
//! here as alone.

use std::arch::x86_64::*;

use half::f16;

use super::KEYS;

/// What key and value rows are read as: f32 (the one-query path's
/// converted blocks) or the f16 cache in place (no conversion pass, no
/// buffer written and read back).
pub(super) trait Lanes: Copy {
    /// One value as f32, exactly.
    fn to_f32(self) -> f32;
    /// 16 values from `p` as f32, exactly.
    ///
    /// # Safety
    /// `p` must point at 16 readable values, on a CPU with AVX-512 F.
    unsafe fn load16(p: *const Self) -> __m512;
}

impl Lanes for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    unsafe fn load16(p: *const f32) -> __m512 {
        // SAFETY: the caller's.
        unsafe { _mm512_loadu_ps(p) }
    }
}

impl Lanes for f16 {
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    unsafe fn load16(p: *const f16) -> __m512 {
        // SAFETY: the caller's; 16 halves are 32 bytes.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
}

/// Vectors of 16 across a block of [`KEYS`] keys.
const V: usize = KEYS / 16;

/// Four queries' dot products with a block of keys (`kt`, `[dim][key]`,
/// [`KEYS`] to a row), over the queries' `d` dimensions.
#[target_feature(enable = "avx512f")]
pub(super) fn dot4<T: Lanes>(q: [&[f32]; 4], kt: &[T]) -> [[f32; KEYS]; 4] {
    let d = q[0].len();
    assert!(q.iter().all(|q| q.len() == d) && kt.len() >= d * KEYS);
    let mut acc = [[_mm512_setzero_ps(); V]; 4];
    for (x, row) in kt.chunks_exact(KEYS).take(d).enumerate() {
        // SAFETY: a row is KEYS = 16·V values, on AVX-512 F (this
        // function's feature).
        let k: [__m512; V] =
            std::array::from_fn(|c| unsafe { T::load16(row.as_ptr().add(16 * c)) });
        for (a, q) in acc.iter_mut().zip(&q) {
            let qx = _mm512_set1_ps(q[x]);
            for (a, &k) in a.iter_mut().zip(&k) {
                *a = _mm512_fmadd_ps(qx, k, *a);
            }
        }
    }
    let mut out = [[0f32; KEYS]; 4];
    for (o, a) in out.iter_mut().zip(&acc) {
        for (c, &a) in a.iter().enumerate() {
            // SAFETY: `o` is KEYS = 16·V floats.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(16 * c), a) };
        }
    }
    out
}

/// Value columns summed in registers at a time: four queries' 64 columns
/// take 16 registers.
const COLUMNS: usize = 64;

/// For four queries (`acc`: four rows of the head's `d` values),
/// `acc[k] += Σ p[k][j] · vs[j]` over value rows of `d` values, row `j`
/// at `vs[j · stride..]`, each column's sum in the order of `j`.
#[target_feature(enable = "avx512f")]
pub(super) fn weigh4<T: Lanes>(acc: &mut [f32], p: [&[f32]; 4], vs: &[T], stride: usize) {
    let d = acc.len() / 4;
    let rows = p[0].len();
    assert!(p.iter().all(|p| p.len() == rows));
    assert!(rows == 0 || vs.len() >= (rows - 1) * stride + d);
    let mut c0 = 0;
    while c0 + COLUMNS <= d {
        let mut r: [[__m512; COLUMNS / 16]; 4] = std::array::from_fn(|k| {
            // SAFETY: columns c0..c0 + COLUMNS of each of the four rows
            // exist (c0 + COLUMNS <= d, acc.len() >= 4·d).
            std::array::from_fn(|c| unsafe {
                _mm512_loadu_ps(acc.as_ptr().add(k * d + c0 + 16 * c))
            })
        });
        for j in 0..rows {
            // SAFETY: row j's columns c0..c0 + COLUMNS exist (asserted),
            // on AVX-512 F.
            let v: [__m512; COLUMNS / 16] = std::array::from_fn(|c| unsafe {
                T::load16(vs.as_ptr().add(j * stride + c0 + 16 * c))
            });
            for (r, p) in r.iter_mut().zip(&p) {
                let pj = _mm512_set1_ps(p[j]);
                for (a, &v) in r.iter_mut().zip(&v) {
                    *a = _mm512_fmadd_ps(pj, v, *a);
                }
            }
        }
        for (k, r) in r.iter().enumerate() {
            for (c, &a) in r.iter().enumerate() {
                // SAFETY: as for the loads above.
                unsafe { _mm512_storeu_ps(acc.as_mut_ptr().add(k * d + c0 + 16 * c), a) };
            }
        }
        c0 += COLUMNS;
    }
    if c0 < d {
        for (k, p) in p.iter().enumerate() {
            for (j, &pj) in p.iter().enumerate() {
                for (a, x) in acc[k * d + c0..(k + 1) * d]
                    .iter_mut()
                    .zip(&vs[j * stride + c0..j * stride + d])
                {
                    *a = pj.mul_add(x.to_f32(), *a);
                }
            }
        }
    }
}
