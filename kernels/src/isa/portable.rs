//! The reference arithmetic in plain Rust, lane by lane, for CPUs without
//! the SIMD paths; the SIMD paths do exactly this on 8 or 16 lanes at once.
//! The compiler vectorizes it for whatever target the crate builds for.

use crate::formats::q8_0::{Q8_0Row, QK};
use crate::formats::q8_k::{dword, Q8KRow};
use crate::layout::x16::{Q4KX16, Q5KX16, Q6KX16, Q6_ORDER, X16};

/// `Σ_b wd[b]·xd[b]·sumi(b)` over the blocks, in eight running sums so
/// that the float adds do not wait on each other (one chain of dependent
/// adds would cost more than the integer work of a block).
#[inline(always)]
fn blocks_dot(wd: &[f32], xd: &[f32], sumi: impl Fn(usize) -> i32) -> f32 {
    const LANES: usize = 8;
    let mut lanes = [0.0f32; LANES];
    let nb = wd.len().min(xd.len());
    let mut b = 0;
    while b < nb {
        let g = (nb - b).min(LANES);
        let mut si = [0.0f32; LANES];
        let mut sc = [0.0f32; LANES];
        for j in 0..g {
            si[j] = sumi(b + j) as f32;
            sc[j] = wd[b + j] * xd[b + j];
        }
        for j in 0..LANES {
            lanes[j] += sc[j] * si[j];
        }
        b += g;
    }
    lanes.iter().sum()
}

/// A Q8_0 weight row (`wq`, one scale per block in `wd`) times a Q8_0
/// activation row.
#[inline(always)]
pub(crate) fn q8_0_dot(wq: &[i8], wd: &[f32], x: &Q8_0Row) -> f32 {
    blocks_dot(wd, &x.d, |b| {
        let (wb, xb) = (&wq[b * QK..(b + 1) * QK], &x.qs[b * QK..(b + 1) * QK]);
        wb.iter()
            .zip(xb)
            .map(|(&a, &b)| i32::from(a) * i32::from(b))
            .sum()
    })
}

/// A row of packed nibbles (16 bytes per block: value `j` in byte `j`'s
/// low nibble, value `j + 16` in its high one) times a Q8_0 activation
/// row, each nibble read as `value(nibble)`.
#[inline(always)]
fn nibbles_dot(wq: &[u8], wd: &[f32], x: &Q8_0Row, value: impl Fn(u8) -> i32) -> f32 {
    let half = QK / 2;
    blocks_dot(wd, &x.d, |b| {
        let wb = &wq[b * half..(b + 1) * half];
        let (lo, hi) = x.qs[b * QK..(b + 1) * QK].split_at(half);
        wb.iter()
            .zip(lo.iter().zip(hi))
            .map(|(&w, (&a, &b))| value(w & 0x0F) * i32::from(a) + value(w >> 4) * i32::from(b))
            .sum()
    })
}

/// A Q4_0 weight row (16 packed bytes per block) times a Q8_0 activation
/// row.
#[inline(always)]
pub(crate) fn q4_0_dot(wq: &[u8], wd: &[f32], x: &Q8_0Row) -> f32 {
    nibbles_dot(wq, wd, x, |n| i32::from(n) - 8)
}

/// An MXFP4 weight row (16 packed bytes of codes per block, `wd` the
/// halved scales) times a Q8_0 activation row: ggml's
/// `vec_dot_mxfp4_q8_0`, the codes' doubled values from its table.
#[inline(always)]
pub(crate) fn mxfp4_dot(wq: &[u8], wd: &[f32], x: &Q8_0Row) -> f32 {
    use crate::formats::mxfp4::VALUES;
    nibbles_dot(wq, wd, x, |n| i32::from(VALUES[usize::from(n)]))
}

/// `Σ_e w[e]·x[e]` over one group of four.
fn dot4(w: [u8; 4], x: i32) -> i32 {
    let x = x.to_le_bytes();
    (0..4)
        .map(|e| i32::from(w[e]) * i32::from(x[e] as i8))
        .sum()
}

/// Row `r`'s four bytes in vector `v`.
fn four(v: &[[u8; 32]; 2], r: usize) -> [u8; 4] {
    let at = 4 * (r % 8);
    std::array::from_fn(|e| v[r / 8][at + e])
}

fn lane<T: Copy>(v: &[[T; 8]; 2], r: usize) -> T {
    v[r / 8][r % 8]
}

pub(crate) fn q4k<const G: usize>(blocks: &[Q4KX16], xs: [&Q8KRow; G]) -> [[f32; X16]; G] {
    std::array::from_fn(|i| {
        std::array::from_fn(|r| {
            let x = xs[i];
            let mut acc = 0.0f32;
            for (b, t) in blocks.iter().enumerate() {
                let (d, dmin) = (lane(&t.d, r).to_f32(), lane(&t.dmin, r).to_f32());
                let mut isum = 0i32;
                for c in 0..4 {
                    let (mut i0, mut i1) = (0, 0);
                    for g in 0..8 {
                        let w = four(&t.qs[8 * c + g], r);
                        i0 += dot4(w.map(|q| q & 0x0F), dword(x, b, 16 * c + g));
                        i1 += dot4(w.map(|q| q >> 4), dword(x, b, 16 * c + 8 + g));
                    }
                    let sc = |j: usize| i32::from(lane(&t.sc[j], r));
                    isum += sc(2 * c) * i0 + sc(2 * c + 1) * i1;
                }
                let mut fm = 0.0f32;
                for j in 0..8 {
                    fm = f32::from(lane(&t.m[j], r)).mul_add(x.bsum32[b][j], fm);
                }
                let s = d.mul_add(isum as f32, -(dmin * fm));
                acc = x.d[b].mul_add(s, acc);
            }
            acc
        })
    })
}

pub(crate) fn q5k<const G: usize>(blocks: &[Q5KX16], xs: [&Q8KRow; G]) -> [[f32; X16]; G] {
    std::array::from_fn(|i| {
        std::array::from_fn(|r| {
            let x = xs[i];
            let mut acc = 0.0f32;
            for (b, t) in blocks.iter().enumerate() {
                let (d, dmin) = (lane(&t.d, r).to_f32(), lane(&t.dmin, r).to_f32());
                let mut s = 0.0f32;
                for c in 0..4 {
                    let (mut i0, mut i1) = (0, 0);
                    for g in 0..8 {
                        let w = four(&t.qs[8 * c + g], r);
                        let h = four(&t.qh[g], r);
                        let lo =
                            std::array::from_fn(|e| (w[e] & 0x0F) | (((h[e] >> (2 * c)) & 1) << 4));
                        let hi = std::array::from_fn(|e| {
                            (w[e] >> 4) | (((h[e] >> (2 * c + 1)) & 1) << 4)
                        });
                        i0 += dot4(lo, dword(x, b, 16 * c + g));
                        i1 += dot4(hi, dword(x, b, 16 * c + 8 + g));
                    }
                    let sc = |j: usize| d * f32::from(lane(&t.sc[j], r));
                    s = sc(2 * c).mul_add(i0 as f32, s);
                    s = sc(2 * c + 1).mul_add(i1 as f32, s);
                }
                for j in 0..8 {
                    let dm = dmin * f32::from(lane(&t.m[j], r));
                    s = (-dm).mul_add(x.bsum32[b][j], s);
                }
                acc = x.d[b].mul_add(s, acc);
            }
            acc
        })
    })
}

pub(crate) fn q6k<const G: usize>(blocks: &[Q6KX16], xs: [&Q8KRow; G]) -> [[f32; X16]; G] {
    std::array::from_fn(|i| {
        std::array::from_fn(|r| {
            let x = xs[i];
            let mut acc = 0.0f32;
            for (b, t) in blocks.iter().enumerate() {
                let d = lane(&t.d, r);
                let mut isum = 0i32;
                for (h, a, q) in Q6_ORDER {
                    let (mut i0, mut i1) = (0, 0);
                    for l in 4 * q..4 * q + 4 {
                        let w = four(&t.ql[16 * h + 8 * a + l], r);
                        let hb = four(&t.qh[8 * h + l], r);
                        let lo = std::array::from_fn(|e| {
                            (w[e] & 0x0F) | (((hb[e] >> (2 * a)) & 3) << 4)
                        });
                        let hi = std::array::from_fn(|e| {
                            (w[e] >> 4) | (((hb[e] >> (2 * a + 4)) & 3) << 4)
                        });
                        let g = 32 * h + 8 * a + l;
                        i0 += dot4(lo, dword(x, b, g));
                        i1 += dot4(hi, dword(x, b, g + 16));
                    }
                    let j = 8 * h + 2 * a + q;
                    let sc = |j: usize| i32::from(lane(&t.sc[j], r));
                    isum += sc(j) * (i0 - x.bsum16x32[b][j]);
                    isum += sc(j + 4) * (i1 - x.bsum16x32[b][j + 4]);
                }
                acc = x.d[b].mul_add(d * isum as f32, acc);
            }
            acc
        })
    })
}
