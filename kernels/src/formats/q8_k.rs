//! Activations quantized to Q8_K, as ggml's `quantize_row_q8_K` does, for
//! the K-quant products: blocks of 256, one f32 scale each, and the sums of
//! each 16 and 32 quants that the weights' mins and offsets need.

use std::ops::Range;

use super::round::round_half_even;

/// Values per super-block (of the K-quants, and of Q8_K).
pub(crate) const QK_K: usize = 256;

/// An activation row quantized like ggml's `quantize_row_q8_K`.
pub(crate) struct Q8KRow {
    /// Per block: the scale.
    pub(crate) d: Vec<f32>,
    /// Per block: the 256 quants, four to a group (one broadcast dword).
    pub(crate) qs: Vec<[[i8; 4]; 64]>,
    /// Per block: the sum of each 32 quants (Q4_K's and Q5_K's sub-blocks),
    /// as f32 (exact).
    pub(crate) bsum32: Vec<[f32; 8]>,
    /// Per block: 32 times the sum of each 16 quants (Q6_K's sub-blocks and
    /// its quants' offset of 32).
    pub(crate) bsum16x32: Vec<[i32; 16]>,
}

/// Quantizes `x` (whole blocks). Plain Rust, inlined into each instruction
/// set's copy (`crate::isa`), which the compiler vectorizes for it: the
/// same integers on every path.
#[inline(always)]
pub(crate) fn quantize(x: &[f32]) -> Q8KRow {
    let nb = x.len() / QK_K;
    let mut row = Q8KRow {
        d: Vec::with_capacity(nb),
        qs: Vec::with_capacity(nb),
        bsum32: Vec::with_capacity(nb),
        bsum16x32: Vec::with_capacity(nb),
    };
    for block in x.chunks_exact(QK_K) {
        // The value of largest magnitude, the first one on ties, maps to
        // -127, so the other end may reach 127 only (ggml's choice). The
        // magnitude first, in eight lanes the compiler vectorizes, then the
        // value that has it.
        let mut lanes = [0.0f32; 8];
        for c in block.chunks_exact(8) {
            for (l, v) in lanes.iter_mut().zip(c) {
                if v.abs() > *l {
                    *l = v.abs();
                }
            }
        }
        let amax = lanes.iter().fold(0.0f32, |m, &a| if a > m { a } else { m });
        let max = block
            .iter()
            .copied()
            .find(|v| v.abs() == amax)
            .unwrap_or(0.0);
        let mut qs = [[0i8; 4]; 64];
        if amax == 0.0 {
            row.d.push(0.0);
        } else {
            let iscale = -127.0 / max;
            for (q, v) in qs.as_flattened_mut().iter_mut().zip(block) {
                *q = round_half_even(iscale * v).min(127) as i8;
            }
            row.d.push(1.0 / iscale);
        }
        let flat = qs.as_flattened();
        let sum = |r: Range<usize>| flat[r].iter().map(|&v| i32::from(v)).sum::<i32>();
        row.bsum32
            .push(std::array::from_fn(|j| sum(32 * j..32 * j + 32) as f32));
        row.bsum16x32
            .push(std::array::from_fn(|j| 32 * sum(16 * j..16 * j + 16)));
        row.qs.push(qs);
    }
    row
}

/// The activation quants `4g..4g + 4` of block `b` as one little-endian
/// dword, for a broadcast.
#[inline(always)]
pub(crate) fn dword(x: &Q8KRow, b: usize, g: usize) -> i32 {
    i32::from_le_bytes(x.qs[b][g].map(|v| v as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn q8_k_quantizes_as_ggml() {
        let mut x = testing::k_values(3 * QK_K, 3);
        // The largest magnitude is negative here, and appears twice: the
        // first one sets the scale and becomes -127.
        x[QK_K + 9] = -3.0;
        x[QK_K + 200] = 3.0;
        let q = quantize(&x);
        assert_eq!(q.d[0], 0.0);
        assert!(q.qs[0].as_flattened().iter().all(|&v| v == 0));
        assert_eq!(q.qs[1][2][1], -127);
        assert_eq!(q.qs[1][50][0], 127);
        assert_eq!(q.d[1], 1.0 / (-127.0 / -3.0));
        for b in 0..3 {
            let flat = q.qs[b].as_flattened();
            let sum = |r: Range<usize>| flat[r].iter().map(|&v| i32::from(v)).sum::<i32>();
            for j in 0..16 {
                assert_eq!(q.bsum16x32[b][j], 32 * sum(16 * j..16 * j + 16));
            }
            for j in 0..8 {
                assert_eq!(q.bsum32[b][j], sum(32 * j..32 * j + 32) as f32);
            }
        }
    }
}
