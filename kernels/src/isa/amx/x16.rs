//! Prompts on AMX for the K-quants: many activation rows times a Q4_K or
//! Q6_K matrix, 16 activation rows per tile multiplication, with the same
//! bits per row as the row kernels. Each x16 block is unpacked into B tiles
//! with its sub-block scales multiplied in, so that the tile unit gives the
//! row kernels' integer sums directly; the float work after it is
//! [`crate::isa::avx512`]'s, in the same order.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::{tiles as tmm, Columns, Config};
use crate::formats::q8_k::{Q8KRow, QK_K};
use crate::isa::avx512::{f16s, store, u8s};
use crate::isa::load::{ld128, ld512, ld512f};
use crate::layout::x16::{Q4KX16, Q6KX16, X16};

/// Activation rows per tile multiplication (an A tile's rows).
const ROWS: usize = 16;
/// Activation rows per pass of the weights, kept in cache meanwhile:
/// 128 rows of 2048 quants are 256 KiB.
const PASS: usize = 128;

/// A in tiles 0 and 7 (16 rows × 64 activation bytes), B in 1 and 2
/// (16 rows × 64 weight bytes: four of each of 16 weight rows), the
/// sums in 3 to 6 (16 × 16 i32).
pub(crate) static CONFIG: Config = Config::new(&[(16, 64); 8]);

/// 64 columns of an x16 block as two B tiles, the low and the high
/// bytes of `sc · q`: row `kk` holds, for each weight row, its values
/// `4kk..4kk + 4` of the 64.
type BPair = [[[u8; 64]; 16]; 2];

thread_local! {
    /// A task's x16 blocks unpacked; kept so that tasks allocate nothing.
    static UNPACKED: std::cell::RefCell<Vec<BPair>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Row `r`'s four bytes of an x16 block's vector are 16-bit lanes `2r` and
/// `2r + 1`: `v`'s 16 scales (unsigned), each in both.
#[target_feature(enable = "avx512f,avx512bw")]
fn scale_u8(v: &[[u8; 8]; 2]) -> __m512i {
    let s = _mm512_cvtepu8_epi32(ld128(v));
    _mm512_or_si512(s, _mm512_slli_epi32(s, 16))
}

/// [`scale_u8`] for signed scales.
#[target_feature(enable = "avx512f,avx512bw")]
fn scale_i8(v: &[[i8; 8]; 2]) -> __m512i {
    let s = _mm512_and_si512(_mm512_cvtepi8_epi32(ld128(v)), _mm512_set1_epi32(0xFFFF));
    _mm512_or_si512(s, _mm512_slli_epi32(s, 16))
}

/// The products of `w`'s bytes (below 128) with the scales `s` of
/// their rows, in 16 bits: even bytes and odd bytes apart, then each
/// product's low byte to one vector and its high byte (signed) to the
/// other, at the byte it came from.
#[target_feature(enable = "avx512f,avx512bw")]
fn split(w: __m512i, s: __m512i) -> (__m512i, __m512i) {
    let low = _mm512_set1_epi16(0x00FF);
    let even = _mm512_mullo_epi16(_mm512_and_si512(w, low), s);
    let odd = _mm512_mullo_epi16(_mm512_srli_epi16(w, 8), s);
    let lo = _mm512_or_si512(_mm512_and_si512(even, low), _mm512_slli_epi16(odd, 8));
    let hi = _mm512_or_si512(
        _mm512_and_si512(_mm512_srai_epi16(even, 8), low),
        _mm512_andnot_si512(low, odd),
    );
    (lo, hi)
}

/// Q4_K nibbles times their sub-block's scale (at most 15 · 63), as
/// bytes: columns `64c..64c + 32` are the low nibbles of block vectors
/// `8c..8c + 8` (sub-block `2c`), the next 32 their high nibbles.
#[target_feature(enable = "avx512f,avx512bw")]
fn unpack_q4k(blocks: &[Q4KX16], out: &mut Vec<BPair>) {
    out.clear();
    out.resize(4 * blocks.len(), [[[0; 64]; 16]; 2]);
    let nib = _mm512_set1_epi8(0x0F);
    for (t, o) in blocks.iter().zip(out.chunks_exact_mut(4)) {
        for (c, pair) in o.iter_mut().enumerate() {
            let (s0, s1) = (scale_u8(&t.sc[2 * c]), scale_u8(&t.sc[2 * c + 1]));
            for g in 0..8 {
                let q = ld512(&t.qs[8 * c + g]);
                let (l0, h0) = split(_mm512_and_si512(q, nib), s0);
                let (l1, h1) = split(_mm512_and_si512(_mm512_srli_epi16(q, 4), nib), s1);
                // SAFETY: each destination is 64 writable bytes.
                unsafe {
                    _mm512_storeu_si512(pair[0][g].as_mut_ptr().cast(), l0);
                    _mm512_storeu_si512(pair[1][g].as_mut_ptr().cast(), h0);
                    _mm512_storeu_si512(pair[0][8 + g].as_mut_ptr().cast(), l1);
                    _mm512_storeu_si512(pair[1][8 + g].as_mut_ptr().cast(), h1);
                }
            }
        }
    }
}

/// Q6_K quants (0..63) times their sub-block's scale (i8), as bytes:
/// the low byte of each product in one B tile, the high byte (signed)
/// in the other; column group `G` of a block (values `4G..4G + 4`) is
/// B row `G % 16` of chunk `G / 16`.
#[target_feature(enable = "avx512f,avx512bw")]
fn unpack_q6k(blocks: &[Q6KX16], out: &mut Vec<BPair>) {
    out.clear();
    out.resize(4 * blocks.len(), [[[0; 64]; 16]; 2]);
    let (nib, two) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x03));
    for (t, o) in blocks.iter().zip(out.chunks_exact_mut(4)) {
        for group in 0..64 {
            // The block's layout (see `Q6KX16`): group 32h + 8a + l takes
            // the low nibbles of `ql[16h + 8a + l]`, group + 16 the high.
            let (h, rem) = (group / 32, group % 32);
            let (high, a, l) = (rem >= 16, rem % 16 / 8, rem % 8);
            let w = ld512(&t.ql[16 * h + 8 * a + l]);
            let hb = ld512(&t.qh[8 * h + l]);
            let shift = _mm_cvtsi32_si128(2 * a as i32 + if high { 4 } else { 0 });
            let top = _mm512_slli_epi16(_mm512_and_si512(_mm512_srl_epi16(hb, shift), two), 4);
            let w = if high { _mm512_srli_epi16(w, 4) } else { w };
            let q = _mm512_or_si512(_mm512_and_si512(w, nib), top);
            let (lo, hi) = split(q, scale_i8(&t.sc[group / 4]));
            let pair = &mut o[group / 16];
            // SAFETY: each destination is 64 writable bytes.
            unsafe {
                _mm512_storeu_si512(pair[0][group % 16].as_mut_ptr().cast(), lo);
                _mm512_storeu_si512(pair[1][group % 16].as_mut_ptr().cast(), hi);
            }
        }
    }
}

/// A kernel for 32 activation rows: x16 blocks, their B tiles, two
/// groups' A tiles, sums by sub-block and row, scales by row.
type Kernel<T, const J: usize> = unsafe fn(
    &[T],
    &[BPair],
    [&[[[i8; 64]; ROWS]]; 2],
    [&[[[f32; ROWS]; J]]; 2],
    [&[[f32; ROWS]]; 2],
) -> [[[f32; X16]; ROWS]; 2];

/// `out[i * n + j]` = weight row `j` times `xs[i]`, for a Q4_K matrix
/// in x16 `blocks` (`k / 256` per 16 rows). The caller has checked
/// that AMX is available.
pub(crate) fn q4k(blocks: &[Q4KX16], n: usize, k: usize, xs: &[Q8KRow], out: &mut [f32]) {
    let sums = |x: &Q8KRow, b: usize| x.bsum32[b];
    run::<_, 8>(blocks, n, k, xs, out, sums, unpack_q4k, q4k_amx);
}

/// [`q4k`] for Q6_K.
pub(crate) fn q6k(blocks: &[Q6KX16], n: usize, k: usize, xs: &[Q8KRow], out: &mut [f32]) {
    // The sums of 16 from Q8KRow's 32 times them (exact).
    let sums = |x: &Q8KRow, b: usize| x.bsum16x32[b].map(|v| (v / 32) as f32);
    run::<_, 16>(blocks, n, k, xs, out, sums, unpack_q6k, q6k_amx);
}

/// The driver of both: x16 rows in parallel, each unpacked once per pass
/// of up to `PASS` rows and multiplied by them 32 at a time.
#[allow(clippy::too_many_arguments)]
fn run<T: Sync, const J: usize>(
    blocks: &[T],
    n: usize,
    k: usize,
    xs: &[Q8KRow],
    out: &mut [f32],
    sums: impl Fn(&Q8KRow, usize) -> [f32; J],
    unpack: unsafe fn(&[T], &mut Vec<BPair>),
    kernel: Kernel<T, J>,
) {
    let nb = k / QK_K;
    let m = xs.len();
    // Groups of 16 rows, taken two at a time (rows past `m` are zero,
    // their results dropped).
    let groups = m.div_ceil(2 * ROWS) * 2;
    // The rows' quants as A tiles, each whole cache lines (a tile
    // gathered from rows far apart loads several times slower): per
    // group of 16 rows and 64 columns, the 16 rows' 64 quants. Beside
    // them, by group and block, the sub-block sums and scales by row.
    let mut a = vec![[[0i8; 64]; ROWS]; groups * nb * 4];
    let mut bsum = vec![[[0f32; ROWS]; J]; groups * nb];
    let mut dx = vec![[0f32; ROWS]; groups * nb];
    for (i, x) in xs.iter().enumerate() {
        let (g, r) = (i / ROWS, i % ROWS);
        for (b, q) in x.qs.iter().enumerate() {
            for (h, part) in q.as_flattened().chunks_exact(64).enumerate() {
                a[(g * nb + b) * 4 + h][r].copy_from_slice(part);
            }
            for (to, from) in bsum[g * nb + b].iter_mut().zip(sums(x, b)) {
                to[r] = from;
            }
            dx[g * nb + b][r] = x.d[b];
        }
    }
    let n16 = n.div_ceil(X16);
    assert_eq!(out.len(), m * n);
    let out = Columns::new(out);
    for first in (0..m).step_by(PASS) {
        let rows = PASS.min(m - first);
        (0..n16).into_par_iter().for_each(|t| {
            let x16 = &blocks[t * nb..(t + 1) * nb];
            let cols = X16.min(n - t * X16);
            UNPACKED.with_borrow_mut(|b_tiles| {
                // SAFETY: AVX-512 is there (AMX is only used with it);
                // AMX is granted (the caller checked), with the shapes
                // the kernels want, released before the task ends.
                unsafe {
                    unpack(x16, b_tiles);
                    tmm::config(&CONFIG);
                }
                for g0 in (0..rows).step_by(2 * ROWS) {
                    let g = (first + g0) / ROWS;
                    let span = |h: usize| (g + h) * nb..(g + h + 1) * nb;
                    let a4 = |h: usize| &a[span(h).start * 4..span(h).end * 4];
                    // SAFETY: as above.
                    let res = unsafe {
                        kernel(
                            x16,
                            b_tiles,
                            [a4(0), a4(1)],
                            [&bsum[span(0)], &bsum[span(1)]],
                            [&dx[span(0)], &dx[span(1)]],
                        )
                    };
                    for (r, v) in res.as_flattened().iter().enumerate() {
                        let i = first + g0 + r;
                        if i >= m {
                            break;
                        }
                        // SAFETY: this task alone writes columns
                        // `16t..16t + cols` ≤ n of each row.
                        unsafe {
                            out.put(i * n + t * X16, &v[..cols]);
                        }
                    }
                }
                // SAFETY: AMX is granted.
                unsafe {
                    tmm::release();
                }
            });
        });
    }
}

/// The four 16 × 16 sums of a block: low and high bytes' products for
/// activation group 0, then for group 1.
#[repr(C, align(64))]
struct Sums([[[i32; 16]; 16]; 4]);

impl Sums {
    /// Group `g`, row `r`: low plus 256 times high.
    #[target_feature(enable = "avx512f")]
    fn isum(&self, g: usize, r: usize) -> __m512i {
        let (lo, hi) = (&self.0[2 * g][r], &self.0[2 * g + 1][r]);
        _mm512_add_epi32(ld512(lo), _mm512_slli_epi32(ld512(hi), 8))
    }
}

/// The tile work the K-quant kernels share: per block `b`, the low and
/// the high bytes' products of two activation groups (`tdpbssd` for
/// the high bytes when `SIGNED_HI`), into tiles 3 to 6, then
/// `finish(b, sums)`; the next block's products start before `finish`
/// runs, so the tile unit works while the vector units finish.
///
/// # Safety
/// AMX is granted and [`CONFIG`] loaded on this thread.
#[inline(always)]
unsafe fn amx_blocks<const SIGNED_HI: bool>(
    nb: usize,
    b_tiles: &[[[[u8; 64]; 16]; 2]],
    a: [&[[[i8; 64]; 16]]; 2],
    mut finish: impl FnMut(usize, &Sums),
) {
    assert!(b_tiles.len() >= 4 * nb && a[0].len() >= 4 * nb && a[1].len() >= 4 * nb);
    /// Starts block `b`'s products.
    #[inline(always)]
    unsafe fn issue<const SIGNED_HI: bool>(
        b_tiles: &[[[[u8; 64]; 16]; 2]],
        a: [&[[[i8; 64]; 16]]; 2],
        b: usize,
    ) {
        // SAFETY: the caller loaded the shapes; each load reads the 16
        // rows of 64 bytes of one entry of `a` or `b_tiles` (asserted).
        unsafe {
            tmm::zero::<3>();
            tmm::zero::<4>();
            tmm::zero::<5>();
            tmm::zero::<6>();
            for h in 0..4 {
                tmm::load::<1>(b_tiles[4 * b + h][0].as_ptr().cast(), 64);
                tmm::load::<2>(b_tiles[4 * b + h][1].as_ptr().cast(), 64);
                tmm::load::<0>(a[0][4 * b + h].as_ptr().cast(), 64);
                tmm::load::<7>(a[1][4 * b + h].as_ptr().cast(), 64);
                tmm::dpbsud::<3, 0, 1>();
                tmm::dpbsud::<5, 7, 1>();
                if SIGNED_HI {
                    tmm::dpbssd::<4, 0, 2>();
                    tmm::dpbssd::<6, 7, 2>();
                } else {
                    tmm::dpbsud::<4, 0, 2>();
                    tmm::dpbsud::<6, 7, 2>();
                }
            }
        }
    }
    let mut sums = Sums([[[0; 16]; 16]; 4]);
    if nb > 0 {
        // SAFETY: the caller's contract; block 0 exists.
        unsafe { issue::<SIGNED_HI>(b_tiles, a, 0) };
    }
    for b in 0..nb {
        // SAFETY: the caller loaded the shapes; each store writes 16
        // rows of 64 bytes inside `sums`.
        unsafe {
            tmm::store::<3>(sums.0[0].as_mut_ptr().cast(), 64);
            tmm::store::<4>(sums.0[1].as_mut_ptr().cast(), 64);
            tmm::store::<5>(sums.0[2].as_mut_ptr().cast(), 64);
            tmm::store::<6>(sums.0[3].as_mut_ptr().cast(), 64);
        }
        if b + 1 < nb {
            // SAFETY: as above.
            unsafe { issue::<SIGNED_HI>(b_tiles, a, b + 1) };
        }
        finish(b, &sums);
    }
}

/// [`q4k`] for 32 activation rows (two groups of 16) at once on AMX.
/// The weights come with their sub-block scales multiplied in (`sc ·
/// q` < 1024, split into a low byte and the bits above it, as
/// [`unpack_q4k`] unpacks them), so per super-block sixteen `tdpbsud`
/// give `q4k`'s `isum` for 32 × 16 outputs, exactly; then `finish4`'s
/// operations. Each A tile feeds two products and each B tile two,
/// into four independent sums. `a[g]` holds group `g`'s quants as A
/// tiles (per block, four of 64 columns), `b_tiles` per block four
/// pairs (low, high) of B tiles, `bsum[g][b]` the groups' sums of 32
/// quants by sub-block and row, `dx[g][b]` their scales by row.
///
/// # Safety
/// AMX is granted and [`CONFIG`] loaded on this thread.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn q4k_amx(
    blocks: &[Q4KX16],
    b_tiles: &[[[[u8; 64]; 16]; 2]],
    a: [&[[[i8; 64]; 16]]; 2],
    bsum: [&[[[f32; 16]; 8]]; 2],
    dx: [&[[f32; 16]]; 2],
) -> [[[f32; X16]; 16]; 2] {
    let nb = blocks.len();
    for g in 0..2 {
        assert!(bsum[g].len() >= nb && dx[g].len() >= nb);
    }
    let mut acc = [[_mm512_setzero_ps(); 16]; 2];
    // SAFETY: the caller's contract.
    unsafe {
        amx_blocks::<false>(nb, b_tiles, a, |b, sums| {
            let t = &blocks[b];
            // `finish4`, with the sums of 32 quants laid out by row.
            let (d, dmin) = (f16s(&t.d), f16s(&t.dmin));
            let m: [__m512; 8] = std::array::from_fn(|j| u8s(&t.m[j]));
            for g in 0..2 {
                let bs = &bsum[g][b];
                for r in 0..16 {
                    let isum = sums.isum(g, r);
                    let mut fm = _mm512_setzero_ps();
                    for (j, m) in m.iter().enumerate() {
                        fm = _mm512_fmadd_ps(*m, _mm512_set1_ps(bs[j][r]), fm);
                    }
                    let s = _mm512_fmsub_ps(d, _mm512_cvtepi32_ps(isum), _mm512_mul_ps(dmin, fm));
                    acc[g][r] = _mm512_fmadd_ps(_mm512_set1_ps(dx[g][b][r]), s, acc[g][r]);
                }
            }
        });
    }
    [store(acc[0]), store(acc[1])]
}

/// [`q6k`] for 32 activation rows (two groups of 16) at once on AMX,
/// as [`q4k_amx`]: the weights come with their sub-block scales
/// multiplied in (`scale · q` in i16, split into an unsigned low byte
/// and a signed high one, `tdpbssd` for the latter), the offset of 32
/// from the rows' sums of 16 (exact in f32), then `q6k`'s operations.
/// `bsum[g][b][j]` holds the sums of 16 quants of sub-block `j` by row.
///
/// # Safety
/// AMX is granted and [`CONFIG`] loaded on this thread.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn q6k_amx(
    blocks: &[Q6KX16],
    b_tiles: &[[[[u8; 64]; 16]; 2]],
    a: [&[[[i8; 64]; 16]]; 2],
    bsum: [&[[[f32; 16]; 16]]; 2],
    dx: [&[[f32; 16]]; 2],
) -> [[[f32; X16]; 16]; 2] {
    let nb = blocks.len();
    for g in 0..2 {
        assert!(bsum[g].len() >= nb && dx[g].len() >= nb);
    }
    let mut acc = [[_mm512_setzero_ps(); 16]; 2];
    // SAFETY: the caller's contract.
    unsafe {
        amx_blocks::<true>(nb, b_tiles, a, |b, sums| {
            let t = &blocks[b];
            let d = ld512f(&t.d);
            let sc: [__m512; 16] =
                std::array::from_fn(|j| _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(ld128(&t.sc[j]))));
            for g in 0..2 {
                let bs = &bsum[g][b];
                for r in 0..16 {
                    // Σ_j scale_j · (sum of 16), exact: each term below 2^18.
                    let mut off = _mm512_setzero_ps();
                    for (j, sc) in sc.iter().enumerate() {
                        off = _mm512_fmadd_ps(*sc, _mm512_set1_ps(bs[j][r]), off);
                    }
                    let off = _mm512_slli_epi32(_mm512_cvtps_epi32(off), 5);
                    let isum = _mm512_sub_epi32(sums.isum(g, r), off);
                    let s = _mm512_mul_ps(d, _mm512_cvtepi32_ps(isum));
                    acc[g][r] = _mm512_fmadd_ps(_mm512_set1_ps(dx[g][b][r]), s, acc[g][r]);
                }
            }
        });
    }
    [store(acc[0]), store(acc[1])]
}
