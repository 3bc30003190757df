//! The blocks of 32 values: Q8_0, Q4_0 and Q5_0 weights as GGUF stores
//! them, and activations quantized to Q8_0 as ggml's `quantize_row_q8_0`
//! does (one scale per block, rounded half to even), which all three are
//! multiplied against.

use half::f16;

use super::round::round_half_even;

/// Values per block.
pub(crate) const QK: usize = 32;
/// Bytes of one GGUF Q8_0 block: an f16 scale and 32 int8.
pub(crate) const Q8_0_BYTES: usize = 2 + QK;

/// A GGUF Q5_0 block as the Q8_0 block of the same values. Its quants
/// `q - 16` (q of five bits) fit int8 exactly and the scale is kept, so a
/// Q8_0 kernel sums the same integers and scales them as ggml's
/// `vec_dot_q5_0_q8_0` does: Q5_0 (llama.cpp's type for the rows of
/// Q4_K_M files whose length is not a multiple of 256, most of Gemma 3
/// 270M) runs on the Q8_0 kernels, at 34 bytes a block instead of 22.
pub(crate) fn q5_0_as_q8_0(block: &[u8]) -> [u8; Q8_0_BYTES] {
    let mut out = [0u8; Q8_0_BYTES];
    out[..2].copy_from_slice(&block[..2]);
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    for (j, &byte) in block[6..6 + QK / 2].iter().enumerate() {
        let lo = (byte & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
        let hi = (byte >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
        out[2 + j] = (lo as i8 - 16) as u8;
        out[2 + j + QK / 2] = (hi as i8 - 16) as u8;
    }
    out
}

/// An activation row quantized like ggml's `quantize_row_q8_0`.
pub(crate) struct Q8_0Row {
    /// One scale per block.
    pub(crate) d: Vec<f32>,
    /// The quants.
    pub(crate) qs: Vec<i8>,
    /// Per block, the sum of its quants (for the strip kernels, which take
    /// the weights' offset off with it; empty elsewhere).
    pub(crate) sums: Vec<i32>,
}

/// Quantizes `x` (whole blocks), with the blocks' sums where `sums`.
pub(crate) fn quantize(x: &[f32], sums: bool) -> Q8_0Row {
    let nb = x.len() / QK;
    let mut d = Vec::with_capacity(nb);
    let mut qs = Vec::with_capacity(x.len());
    for block in x.chunks_exact(QK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        d.push(f16::from_f32(scale).to_f32());
        // ggml's SIMD paths round half to even.
        qs.extend(block.iter().map(|v| round_half_even(v * id) as i8));
    }
    let sums = if sums {
        qs.chunks_exact(QK)
            .map(|q| q.iter().map(|&v| i32::from(v)).sum())
            .collect()
    } else {
        Vec::new()
    };
    Q8_0Row { d, qs, sums }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing;
    use crate::Format;

    /// Every five-bit quant and both halves of a block come out as ggml's
    /// dequantization has them.
    #[test]
    fn q5_0_blocks_read_as_ggml_reads_them() {
        // Values -16..=15 times a power of two are exact Q5_0 quants.
        let v: Vec<f32> = (0..2 * QK).map(|i| ((i * 7) % 32) as f32 - 16.0).collect();
        let data = testing::quantize(Format::Q5_0, &v, 1, 2 * QK);
        let table = testing::dequantize(Format::Q5_0, &data, 1, 2 * QK);
        for (b, block) in data.chunks_exact(Format::Q5_0.block_bytes()).enumerate() {
            let q8 = q5_0_as_q8_0(block);
            let d = f16::from_le_bytes([q8[0], q8[1]]).to_f32();
            for j in 0..QK {
                assert_eq!(
                    d * f32::from(q8[2 + j] as i8),
                    table[b * QK + j],
                    "[{b}, {j}]"
                );
            }
        }
    }

    /// The quantizer rounds half to even, as ggml does, at every half step
    /// of its range.
    #[test]
    fn quantizer_rounds_half_to_even() {
        // amax 127 makes the scale 1: the quants are the values rounded.
        let mut x: Vec<f32> = (-254..=254).map(|i| i as f32 / 2.0).collect();
        x.retain(|v| v.abs() <= 127.0);
        x.resize(x.len().div_ceil(QK) * QK, 127.0);
        for block in x.chunks_exact_mut(QK) {
            block[0] = 127.0;
        }
        let q = quantize(&x, false);
        for (v, &got) in x.iter().zip(&q.qs) {
            assert_eq!(got, v.round_ties_even() as i8, "{v}");
        }
    }
}
