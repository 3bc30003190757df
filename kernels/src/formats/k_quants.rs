//! The K-quant weight blocks (Q4_K, Q5_K, Q6_K) as GGUF stores them: their
//! sizes and the packed 6-bit scales and mins of Q4_K and Q5_K.

use half::f16;

use super::q8_k::QK_K;

/// Bytes of a GGUF Q4_K block: f16 `d` and `dmin`, twelve bytes of 6-bit
/// scales and mins for the eight sub-blocks of 32, 128 bytes of nibbles.
pub(crate) const Q4K_BYTES: usize = 2 + 2 + 12 + QK_K / 2;
/// Bytes of a GGUF Q5_K block: Q4_K's, with the fifth bits (32 bytes) before
/// the nibbles.
pub(crate) const Q5K_BYTES: usize = Q4K_BYTES + QK_K / 8;
/// Bytes of a GGUF Q6_K block: 128 bytes of low nibbles, 64 of high two-bit
/// fields, sixteen i8 scales (one per 16 values), f16 `d`.
pub(crate) const Q6K_BYTES: usize = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2;

/// The little-endian f16 at byte `at` of a block.
pub(crate) fn f16_at(b: &[u8], at: usize) -> f16 {
    f16::from_le_bytes([b[at], b[at + 1]])
}

/// Q4_K's and Q5_K's twelve bytes of 6-bit scales and mins as two times
/// eight: bytes 0..4 hold scales 0..4 and bytes 4..8 mins 0..4 in their low
/// six bits; bytes 8..12 hold the low four bits of scale and min `j` (4..8)
/// in their low and high nibble, and the top two bits of both are in the top
/// two bits of bytes `j - 4` (scale) and `j` (min).
pub(crate) fn unpack_scales(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut m) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
        sc[4 + j] = (s[j + 8] & 0x0F) | ((s[j] >> 6) << 4);
        m[4 + j] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
    (sc, m)
}
