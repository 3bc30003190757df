//! Q8_0 and Q4_0 prompts on AMX: per block of 32 columns, one `tdpbsud`
//! gives 16 activation rows × 16 weight rows of the exact sums that
//! `vpdpbusd` gives the strip kernel, and the same float operations follow,
//! so a row has the same bits either way.

use std::arch::x86_64::*;

use half::f16;
use rayon::prelude::*;

use super::{tiles as tmm, Columns, Config};
use crate::formats::q8_0::{Q8_0Row, QK};
use crate::layout::strips::{Strips, STRIP};

/// Activation rows per A tile.
const ROWS: usize = 16;
/// Activation rows per pass of the weights, kept in cache meanwhile.
const PASS: usize = 128;

/// A in tiles 0 and 7 (16 rows × 32 activation bytes), B in 1 (8 rows
/// × 64 weight bytes: four of each of the strip's 16 rows), the sums in
/// 3 and 5 (16 × 16 i32).
static CONFIG: Config = Config::new(&[
    (16, 32),
    (8, 64),
    (0, 0),
    (16, 64),
    (0, 0),
    (16, 64),
    (0, 0),
    (16, 32),
]);

/// A block of a strip as a B tile: row `g` holds the four values
/// `4g..4g + 4` of each of the 16 rows (unsigned, as the strips hold them).
type BTile = [[u8; 64]; 8];

thread_local! {
    /// A task's Q4_0 strip unpacked; kept so that tasks allocate nothing.
    static UNPACKED: std::cell::RefCell<Vec<BTile>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The nibbles of a Q4_0 strip as bytes: the strip's vector `g` holds
/// groups `g` (low nibbles) and `g + 4` (high).
#[target_feature(enable = "avx512f,avx512bw")]
fn unpack_q4(wq: &[u8], out: &mut Vec<BTile>) {
    let nb = wq.len() / (STRIP * QK / 2);
    out.clear();
    out.resize(nb, [[0; 64]; 8]);
    let low = _mm512_set1_epi8(0x0F);
    for (block, o) in wq.chunks_exact(STRIP * QK / 2).zip(out.iter_mut()) {
        for g in 0..4 {
            // SAFETY: 64 readable bytes inside `block`, 64 writable in `o`.
            unsafe {
                let p = _mm512_loadu_si512(block[64 * g..].as_ptr().cast());
                _mm512_storeu_si512(o[g].as_mut_ptr().cast(), _mm512_and_si512(p, low));
                let hi = _mm512_and_si512(_mm512_srli_epi16(p, 4), low);
                _mm512_storeu_si512(o[g + 4].as_mut_ptr().cast(), hi);
            }
        }
    }
}

/// One strip (B tiles `bq`, scales `wd`) times two groups of 16 rows.
///
/// # Safety
/// AMX is granted and `CONFIG` loaded on this thread.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments)]
unsafe fn pair(
    bq: &[BTile],
    wd: &[f16],
    a: [&[[[i8; 32]; ROWS]]; 2],
    sums: [&[[i32; ROWS]]; 2],
    dx: [&[[f32; ROWS]]; 2],
    offset: i32,
) -> [[[f32; STRIP]; ROWS]; 2] {
    #[repr(C, align(64))]
    struct Sums([[i32; 16]; 16]);
    /// Starts block `b`'s products into tiles 3 and 5.
    #[inline(always)]
    unsafe fn issue(bq: &[BTile], a: [&[[[i8; 32]; ROWS]]; 2], b: usize) {
        // SAFETY: the caller loaded the shapes; each load reads one
        // entry of `bq` or `a`, 512 bytes.
        unsafe {
            tmm::zero::<3>();
            tmm::zero::<5>();
            tmm::load::<1>(bq[b].as_ptr().cast(), 64);
            tmm::load::<0>(a[0][b].as_ptr().cast(), 32);
            tmm::load::<7>(a[1][b].as_ptr().cast(), 32);
            tmm::dpbsud::<3, 0, 1>();
            tmm::dpbsud::<5, 7, 1>();
        }
    }
    let nb = bq.len();
    assert!(wd.len() >= nb * STRIP);
    for g in 0..2 {
        assert!(a[g].len() >= nb && sums[g].len() >= nb && dx[g].len() >= nb);
    }
    let mut c = [Sums([[0; 16]; 16]), Sums([[0; 16]; 16])];
    let mut acc = [[_mm512_setzero_ps(); ROWS]; 2];
    if nb > 0 {
        // SAFETY: the caller loaded the shapes.
        unsafe { issue(bq, a, 0) };
    }
    for b in 0..nb {
        // This block's sums are stored, then the next block's products
        // start and run while the vector units finish this block.
        // SAFETY: as above; each store writes 16 rows of 64 bytes.
        unsafe {
            let [c0, c1] = &mut c;
            tmm::store::<3>(c0.0.as_mut_ptr().cast(), 64);
            tmm::store::<5>(c1.0.as_mut_ptr().cast(), 64);
            if b + 1 < nb {
                issue(bq, a, b + 1);
            }
        }
        // SAFETY: scales b·16 .. b·16 + 16 exist (asserted above).
        let ws = unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(wd[b * STRIP..].as_ptr().cast())) };
        for g in 0..2 {
            for r in 0..ROWS {
                // SAFETY: a row of 16 i32.
                let v = unsafe { _mm512_load_si512(c[g].0[r].as_ptr().cast()) };
                // As the strip kernel: the offset's sum, the products,
                // then scale · sum into the accumulator.
                let s = _mm512_add_epi32(_mm512_set1_epi32(offset * sums[g][b][r]), v);
                let scale = _mm512_mul_ps(ws, _mm512_set1_ps(dx[g][b][r]));
                acc[g][r] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(s), acc[g][r]);
            }
        }
    }
    acc.map(|a| {
        a.map(|v| {
            let mut o = [0.0f32; STRIP];
            // SAFETY: `o` has room for 16 floats.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr(), v) };
            o
        })
    })
}

/// `out[i * n + j]` = row `j` of `st` times `xs[i]`. The caller has
/// checked that AMX is available.
pub(crate) fn forward(st: &Strips, xs: &[Q8_0Row], out: &mut [f32]) {
    let (n, k) = (st.n, st.k);
    let nb = k / QK;
    let m = xs.len();
    let groups = m.div_ceil(2 * ROWS) * 2;
    // The rows' quants as A tiles (whole cache lines), their blocks'
    // sums and scales, by group of 16 rows and block.
    let mut a = vec![[[0i8; 32]; ROWS]; groups * nb];
    let mut sums = vec![[0i32; ROWS]; groups * nb];
    let mut dx = vec![[0f32; ROWS]; groups * nb];
    for (i, x) in xs.iter().enumerate() {
        let (g, r) = (i / ROWS, i % ROWS);
        for (b, q) in x.qs.chunks_exact(QK).enumerate() {
            a[g * nb + b][r].copy_from_slice(q);
            sums[g * nb + b][r] = x.sums[b];
            dx[g * nb + b][r] = x.d[b];
        }
    }
    let offset: i32 = if st.q4 { -8 } else { -128 };
    assert_eq!(out.len(), m * n);
    let out = Columns::new(out);
    for first in (0..m).step_by(PASS) {
        let rows = PASS.min(m - first);
        (0..st.strips()).into_par_iter().for_each(|s| {
            let (wd, wq) = st.strip(s);
            let cols = STRIP.min(n - s * STRIP);
            UNPACKED.with_borrow_mut(|unpacked| {
                let bq: &[BTile] = if st.q4 {
                    // SAFETY: AMX runs only with AVX-512 (BW included).
                    unsafe { unpack_q4(wq, unpacked) };
                    unpacked
                } else {
                    // Q8_0 strips are B tiles as they are.
                    let (tiles, rest) = wq.as_chunks::<64>();
                    debug_assert!(rest.is_empty());
                    let (tiles, _) = tiles.as_chunks::<8>();
                    tiles
                };
                // SAFETY: AMX is granted (the caller checked), with the
                // shapes `pair` wants, released before the task ends.
                unsafe { tmm::config(&CONFIG) };
                for g0 in (0..rows).step_by(2 * ROWS) {
                    let g = (first + g0) / ROWS;
                    let span = |h: usize| (g + h) * nb..(g + h + 1) * nb;
                    // SAFETY: as above.
                    let res = unsafe {
                        pair(
                            bq,
                            wd,
                            [&a[span(0)], &a[span(1)]],
                            [&sums[span(0)], &sums[span(1)]],
                            [&dx[span(0)], &dx[span(1)]],
                            offset,
                        )
                    };
                    for (r, v) in res.as_flattened().iter().enumerate() {
                        let i = first + g0 + r;
                        if i >= m {
                            break;
                        }
                        // SAFETY: this task alone writes the strip's
                        // columns `16s..16s + cols` ≤ n of each row.
                        unsafe { out.put(i * n + s * STRIP, &v[..cols]) };
                    }
                }
                // SAFETY: AMX is granted.
                unsafe { tmm::release() };
            });
        });
    }
}
