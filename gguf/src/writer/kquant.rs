//! Q4_K and Q6_K blocks for the tiny models' `Q4_K_M` files: ggml's block
//! layouts (`block_q4_K`, `block_q6_K` in ggml-common.h) filled by a plain
//! min/max quantizer. The bytes need not equal what `llama-quantize` writes
//! (that searches for better scales); they must decode as ggml decodes
//! them, which the round-trip tests check.

use super::{f16_to_f32, f32_to_f16};

/// Values per super-block.
pub const QK_K: usize = 256;
/// Bytes of one Q4_K block: d, dmin, 12 bytes of 6-bit scales and mins, 128 of nibbles.
pub const Q4_K_BYTES: usize = 144;
/// Bytes of one Q6_K block: 128 low nibbles, 64 bytes of high bits, 16 scales, d.
pub const Q6_K_BYTES: usize = 210;

fn nearest(x: f32) -> i32 {
    x.round() as i32
}

/// Q4_K: per 32 values a 6-bit scale and a 6-bit min, both relative to the
/// block's f16 `d` and `dmin`; the value is `d * sc * q - dmin * m`,
/// `q` in 0..=15. `None` unless the count is a multiple of 256.
pub fn quantize_q4_k(values: &[f32]) -> Option<Vec<u8>> {
    if !values.len().is_multiple_of(QK_K) {
        return None;
    }
    let mut out = Vec::with_capacity(values.len() / QK_K * Q4_K_BYTES);
    for x in values.chunks_exact(QK_K) {
        let mut scales = [0f32; 8];
        let mut mins = [0f32; 8];
        for (j, sub) in x.chunks_exact(32).enumerate() {
            let lo = sub.iter().fold(0f32, |m, &v| m.min(v));
            let hi = sub.iter().fold(f32::MIN, |m, &v| m.max(v));
            scales[j] = (hi - lo) / 15.0;
            mins[j] = -lo;
        }
        let max_scale = scales.iter().fold(0f32, |m, &v| m.max(v));
        let max_min = mins.iter().fold(0f32, |m, &v| m.max(v));
        let inv_scale = if max_scale > 0.0 {
            63.0 / max_scale
        } else {
            0.0
        };
        let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
        let ls: Vec<u8> = scales
            .iter()
            .map(|&s| nearest(inv_scale * s).clamp(0, 63) as u8)
            .collect();
        let lm: Vec<u8> = mins
            .iter()
            .map(|&m| nearest(inv_min * m).clamp(0, 63) as u8)
            .collect();
        let d = f32_to_f16(max_scale / 63.0);
        let dmin = f32_to_f16(max_min / 63.0);
        let mut packed = [0u8; 12];
        for j in 0..8 {
            if j < 4 {
                packed[j] = ls[j];
                packed[j + 4] = lm[j];
            } else {
                packed[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
                packed[j - 4] |= (ls[j] >> 4) << 6;
                packed[j] |= (lm[j] >> 4) << 6;
            }
        }
        let (df, mf) = (f16_to_f32(d), f16_to_f32(dmin));
        let mut q = [0u8; QK_K];
        for (j, sub) in x.chunks_exact(32).enumerate() {
            let dl = df * f32::from(ls[j]);
            if dl == 0.0 {
                continue;
            }
            let dm = mf * f32::from(lm[j]);
            for (i, &v) in sub.iter().enumerate() {
                q[32 * j + i] = nearest((v + dm) / dl).clamp(0, 15) as u8;
            }
        }
        out.extend_from_slice(&d.to_le_bytes());
        out.extend_from_slice(&dmin.to_le_bytes());
        out.extend_from_slice(&packed);
        for chunk in q.chunks_exact(64) {
            out.extend((0..32).map(|l| chunk[l] | (chunk[l + 32] << 4)));
        }
    }
    Some(out)
}

/// Q6_K: per 16 values a signed 8-bit scale relative to the block's f16
/// `d`; the value is `d * sc * (q - 32)`, `q` in 0..=63. `None` unless the
/// count is a multiple of 256.
pub fn quantize_q6_k(values: &[f32]) -> Option<Vec<u8>> {
    if !values.len().is_multiple_of(QK_K) {
        return None;
    }
    let mut out = Vec::with_capacity(values.len() / QK_K * Q6_K_BYTES);
    for x in values.chunks_exact(QK_K) {
        // Each sub-block's scale maps its largest magnitude to -32.
        let mut scales = [0f32; 16];
        for (j, sub) in x.chunks_exact(16).enumerate() {
            let max = sub
                .iter()
                .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
            scales[j] = max / -32.0;
        }
        let max_scale = scales
            .iter()
            .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let iscale = if max_scale != 0.0 {
            -128.0 / max_scale
        } else {
            0.0
        };
        let sc: Vec<i8> = scales
            .iter()
            .map(|&s| nearest(iscale * s).clamp(-128, 127) as i8)
            .collect();
        let d = f32_to_f16(if iscale != 0.0 { 1.0 / iscale } else { 0.0 });
        let df = f16_to_f32(d);
        let mut l = [32u8; QK_K];
        for (j, sub) in x.chunks_exact(16).enumerate() {
            let dl = df * f32::from(sc[j]);
            if dl == 0.0 {
                continue;
            }
            for (i, &v) in sub.iter().enumerate() {
                l[16 * j + i] = (nearest(v / dl).clamp(-32, 31) + 32) as u8;
            }
        }
        let mut ql = [0u8; 128];
        let mut qh = [0u8; 64];
        for half in 0..2 {
            let (lb, ql, qh) = (
                &l[128 * half..128 * (half + 1)],
                &mut ql[64 * half..64 * (half + 1)],
                &mut qh[32 * half..32 * (half + 1)],
            );
            for i in 0..32 {
                let (a, b, c, e) = (lb[i], lb[i + 32], lb[i + 64], lb[i + 96]);
                ql[i] = (a & 0xF) | ((c & 0xF) << 4);
                ql[i + 32] = (b & 0xF) | ((e & 0xF) << 4);
                qh[i] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
            }
        }
        out.extend_from_slice(&ql);
        out.extend_from_slice(&qh);
        out.extend(sc.iter().map(|&s| s as u8));
        out.extend_from_slice(&d.to_le_bytes());
    }
    Some(out)
}

/// Decodes Q4_K blocks as ggml's `dequantize_row_q4_K`.
pub fn dequantize_q4_k(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / Q4_K_BYTES * QK_K);
    for b in bytes.chunks_exact(Q4_K_BYTES) {
        let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        let dmin = f16_to_f32(u16::from_le_bytes([b[2], b[3]]));
        let s = &b[4..16];
        let scale_min = |j: usize| -> (u8, u8) {
            if j < 4 {
                (s[j] & 63, s[j + 4] & 63)
            } else {
                (
                    (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4),
                    (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
                )
            }
        };
        for (n, q) in b[16..].chunks_exact(32).enumerate() {
            let (sc1, m1) = scale_min(2 * n);
            let (sc2, m2) = scale_min(2 * n + 1);
            let (d1, d2) = (d * f32::from(sc1), d * f32::from(sc2));
            let (m1, m2) = (dmin * f32::from(m1), dmin * f32::from(m2));
            out.extend(q.iter().map(|&v| d1 * f32::from(v & 0xF) - m1));
            out.extend(q.iter().map(|&v| d2 * f32::from(v >> 4) - m2));
        }
    }
    out
}

/// Decodes Q6_K blocks as ggml's `dequantize_row_q6_K`.
pub fn dequantize_q6_k(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / Q6_K_BYTES * QK_K);
    for b in bytes.chunks_exact(Q6_K_BYTES) {
        let d = f16_to_f32(u16::from_le_bytes([b[208], b[209]]));
        let mut y = [0f32; QK_K];
        for half in 0..2 {
            let ql = &b[64 * half..64 * (half + 1)];
            let qh = &b[128 + 32 * half..128 + 32 * (half + 1)];
            let sc = &b[192 + 8 * half..192 + 8 * (half + 1)];
            let y = &mut y[128 * half..128 * (half + 1)];
            for l in 0..32 {
                let is = l / 16;
                let q = |lo: u8, shift: u8| i32::from(lo | (((qh[l] >> shift) & 3) << 4)) - 32;
                let scale = |k: usize| d * f32::from(sc[is + k] as i8);
                y[l] = scale(0) * q(ql[l] & 0xF, 0) as f32;
                y[l + 32] = scale(2) * q(ql[l + 32] & 0xF, 2) as f32;
                y[l + 64] = scale(4) * q(ql[l] >> 4, 4) as f32;
                y[l + 96] = scale(6) * q(ql[l + 32] >> 4, 6) as f32;
            }
        }
        out.extend_from_slice(&y);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<f32> {
        (0..1024)
            .map(|i| ((i as f32 * 0.37).sin() + 0.3 * (i as f32 * 1.7).cos()) * 0.05)
            .collect()
    }

    #[test]
    fn q4_k_round_trips_within_a_step() {
        let x = values();
        let bytes = quantize_q4_k(&x).unwrap_or_default();
        assert_eq!(bytes.len(), 4 * Q4_K_BYTES);
        let y = dequantize_q4_k(&bytes);
        // A sub-block's span is at most 0.13: one step of 15 is < 0.01.
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 0.01, "{a} vs {b}");
        }
        assert!(quantize_q4_k(&x[..100]).is_none());
    }

    #[test]
    fn q6_k_round_trips_within_a_step() {
        let x = values();
        let bytes = quantize_q6_k(&x).unwrap_or_default();
        assert_eq!(bytes.len(), 4 * Q6_K_BYTES);
        let y = dequantize_q6_k(&bytes);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 0.003, "{a} vs {b}");
        }
        assert!(quantize_q6_k(&x[..100]).is_none());
    }
}
