//! MXFP4 (OCP microscaling FP4, gpt-oss's expert weights), the one codec
//! of the project (the writer quantizes with it, the kernels read with it):
//! blocks of 32
//! values, one E8M0 scale byte (a power of two) and 16 bytes of 4-bit E2M1
//! codes, value `j` in the low nibble of byte `j` and value `j + 16` in the
//! high one, as ggml's `block_mxfp4` holds them. ggml keeps the E2M1
//! values doubled (integers -12..=12) and halves the scale, so a block's
//! dot product with a Q8_0 activation block is an integer sum times two
//! floats, as for Q4_0.

/// Values per block.
pub const QK: usize = 32;
/// Bytes of one block: the scale and 16 bytes of codes.
pub const MXFP4_BYTES: usize = 1 + QK / 2;

/// The E2M1 codes' values, doubled (ggml's `kvalues_mxfp4`).
pub const VALUES: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// Half the E8M0 scale `e`, `2^(e - 128)`, exactly (ggml's
/// `ggml_e8m0_to_fp32_half`: subnormal below `e = 2`; 255, a NaN in the
/// format, reads as `2^127` as there).
pub fn scale_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        u32::from(e - 1) << 23
    };
    f32::from_bits(bits)
}

/// Dequantizes whole blocks into `out` (32 values per block).
pub fn dequantize_mxfp4(blocks: &[u8], out: &mut [f32]) {
    for (b, o) in blocks
        .chunks_exact(MXFP4_BYTES)
        .zip(out.chunks_exact_mut(QK))
    {
        let d = scale_half(b[0]);
        for (j, &q) in b[1..].iter().enumerate() {
            o[j] = f32::from(VALUES[usize::from(q & 0x0F)]) * d;
            o[j + QK / 2] = f32::from(VALUES[usize::from(q >> 4)]) * d;
        }
    }
}

/// The code nearest `x` at half-scale `d`, the first on a tie.
fn nearest(x: f32, d: f32) -> u8 {
    let mut best = 0;
    let mut err = (f32::from(VALUES[0]) * d - x).abs();
    for (i, &v) in VALUES.iter().enumerate().skip(1) {
        let e = (f32::from(v) * d - x).abs();
        if e < err {
            best = i as u8;
            err = e;
        }
    }
    best
}

/// Quantizes whole blocks of `x` as ggml's `quantize_row_mxfp4_ref` does:
/// the scale is the block's largest magnitude's power of two over 4 (so
/// the largest code, 6, covers it), each value its nearest code.
pub fn quantize_mxfp4(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(x.len() / QK * MXFP4_BYTES);
    for block in x.chunks_exact(QK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let e = if amax > 0.0 {
            (amax.log2().floor() - 2.0 + 127.0).clamp(0.0, 255.0) as u8
        } else {
            0
        };
        let d = scale_half(e);
        out.push(e);
        for j in 0..QK / 2 {
            out.push(nearest(block[j], d) | (nearest(block[j + QK / 2], d) << 4));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_powers_of_two_as_ggml_reads_them() {
        assert_eq!(scale_half(128), 1.0);
        assert_eq!(scale_half(127), 0.5);
        assert_eq!(scale_half(130), 4.0);
        assert_eq!(scale_half(1), 2f32.powi(-127));
        assert_eq!(scale_half(0), 2f32.powi(-128));
        assert_eq!(scale_half(255), 2f32.powi(127));
    }

    #[test]
    fn exact_values_round_trip_and_others_take_the_nearest_code() {
        // Every code at scale 1 (e = 128 halves to 1, so values are doubled).
        let mut x: Vec<f32> = VALUES.iter().map(|&v| f32::from(v)).collect();
        x.extend(VALUES.iter().rev().map(|&v| f32::from(v)));
        let q = quantize_mxfp4(&x);
        assert_eq!(q.len(), MXFP4_BYTES);
        // amax 12: floor(log2 12) = 3, e = 128.
        assert_eq!(q[0], 128);
        let mut back = vec![0f32; QK];
        dequantize_mxfp4(&q, &mut back);
        assert_eq!(back, x);
        // 5 lies between 4 and 6: the first (4) wins the tie; 7 goes to 6.
        let mut y = vec![0f32; QK];
        y[0] = 12.0;
        y[1] = 5.0;
        y[2] = 7.0;
        y[3] = -11.0;
        let mut back = vec![0f32; QK];
        dequantize_mxfp4(&quantize_mxfp4(&y), &mut back);
        assert_eq!(&back[..4], &[12.0, 4.0, 6.0, -12.0]);
        // A zero block has scale byte 0 and zero values.
        let z = quantize_mxfp4(&[0.0; QK]);
        assert_eq!(z[0], 0);
        dequantize_mxfp4(&z, &mut back);
        assert!(back.iter().all(|&v| v == 0.0));
    }
}
