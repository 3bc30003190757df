//! Q8_0 and Q4_0 weights repacked in strips of 16 rows, for AVX-512 VNNI
//! and AMX (the layout of ggml's repacked CPU kernels).
//!
//! One 512-bit register holds four quants of each of the strip's 16 rows,
//! so one `vpdpbusd` multiplies those 64 quants with four activation values
//! broadcast to every lane: the lanes are the 16 outputs, with no sum across
//! lanes at the end and one float scale-and-add per block for 16 outputs
//! instead of per output.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so the weights go in
//! unsigned: Q4_0 nibbles as stored (0..15, value + 8), Q8_0 quants plus 128.
//! The kernels take the offset back off through the activation block's sum.

use std::ops::Range;

use half::f16;
use rayon::prelude::*;

use crate::formats::q8_0::{q5_0_as_q8_0, QK};
use crate::pages;
use crate::{Error, Format};

/// Rows per strip: one output per 32-bit lane of a 512-bit register.
pub(crate) const STRIP: usize = 16;

/// A Q8_0 or Q4_0 matrix `(n, k)` in strips of 16 rows. Per strip and
/// block: the 16 rows' scales (f16, as in the file), then the quants by
/// groups of four values, each group as 16 rows × 4 bytes (Q4_0: 4 packed
/// bytes hold groups `g` and `g + 4`, low and high nibbles).
#[derive(Debug)]
pub(crate) struct Strips {
    pub(crate) n: usize,
    pub(crate) k: usize,
    /// Q4_0 nibbles (else Q8_0 bytes).
    pub(crate) q4: bool,
    d: pages::Zeroed<f16>,
    qs: pages::Zeroed<u8>,
}

impl Strips {
    /// Repacks a `(n, k)` Q8_0, Q4_0 or Q5_0 matrix from its bytes in a GGUF
    /// file (rows of blocks, as llama.cpp writes them); `done` is told each
    /// range of `data` it has finished with.
    pub(crate) fn from_bytes(
        format: Format,
        n: usize,
        k: usize,
        data: &[u8],
        done: &mut dyn FnMut(Range<usize>),
    ) -> Result<Strips, Error> {
        let (q4, q5) = super::q0_kind(format, n, k, data, "strip")?;
        let nb = k / QK;
        let block_bytes = format.block_bytes();
        let strips = n.div_ceil(STRIP);
        let quant_bytes = if q4 { QK / 2 } else { QK };
        let memory = |source| Error::Memory {
            format,
            n,
            k,
            source,
        };
        // Rows past `n` in the last strip stay zero: scale 0, no output.
        let mut d = pages::Zeroed::new(strips * nb * STRIP).map_err(memory)?;
        let mut qs = pages::Zeroed::new(strips * nb * STRIP * quant_bytes).map_err(memory)?;
        let row_bytes = nb * block_bytes;
        let group = pages::group_units(STRIP * row_bytes);
        let per_q = nb * STRIP * quant_bytes;
        for (g, (gd, gq)) in d
            .chunks_mut(group * nb * STRIP)
            .zip(qs.chunks_mut(group * per_q))
            .enumerate()
        {
            let first_strip = g * group;
            // Strips in parallel: loading is mostly this copy.
            gd.par_chunks_mut(nb * STRIP)
                .zip(gq.par_chunks_mut(per_q))
                .enumerate()
                .for_each(|(j, (sd, sq))| {
                    let s = first_strip + j;
                    let first = s * STRIP * row_bytes;
                    let last = ((s + 1) * STRIP * row_bytes).min(data.len());
                    let rows = data[first..last].chunks_exact(row_bytes);
                    for (i, src) in rows.enumerate() {
                        for (b, block) in src.chunks_exact(block_bytes).enumerate() {
                            let as_q8;
                            let block = if q5 {
                                as_q8 = q5_0_as_q8_0(block);
                                &as_q8[..]
                            } else {
                                block
                            };
                            sd[b * STRIP + i] = f16::from_le_bytes([block[0], block[1]]);
                            let dst =
                                &mut sq[b * STRIP * quant_bytes..(b + 1) * STRIP * quant_bytes];
                            // Q8_0 quants are signed: plus 128 they are unsigned.
                            let flip = if q4 { 0 } else { 0x8080_8080u32 };
                            for (g, four) in block[2..].chunks_exact(4).enumerate() {
                                let o = g * STRIP * 4 + i * 4;
                                let v =
                                    u32::from_le_bytes([four[0], four[1], four[2], four[3]]) ^ flip;
                                dst[o..o + 4].copy_from_slice(&v.to_le_bytes());
                            }
                        }
                    }
                });
            let end = ((first_strip + group) * STRIP * row_bytes).min(data.len());
            done(first_strip * STRIP * row_bytes..end);
        }
        Ok(Strips { n, k, q4, d, qs })
    }

    /// Strips: rows / 16, rounded up.
    pub(crate) fn strips(&self) -> usize {
        self.n.div_ceil(STRIP)
    }

    /// Strip `s`'s scales and quants.
    pub(crate) fn strip(&self, s: usize) -> (&[f16], &[u8]) {
        let nb = self.k / QK;
        let per = nb * STRIP * if self.q4 { QK / 2 } else { QK };
        (
            &self.d[s * nb * STRIP..(s + 1) * nb * STRIP],
            &self.qs[s * per..(s + 1) * per],
        )
    }

    /// Rows `ids` of the matrix, dequantized into `out` (`ids.len()` rows
    /// of `k`): a tied token embedding read from the output matrix's strips
    /// instead of a second copy of the table.
    pub(crate) fn rows(&self, ids: &[u32], out: &mut [f32]) -> Result<(), Error> {
        for (&id, o) in ids.iter().zip(out.chunks_exact_mut(self.k)) {
            let r = id as usize;
            if r >= self.n {
                return Err(Error::Row { id, n: self.n });
            }
            let (wd, wq) = self.strip(r / STRIP);
            let i = r % STRIP;
            let qb = STRIP * if self.q4 { QK / 2 } else { QK };
            for (b, v) in o.chunks_exact_mut(QK).enumerate() {
                let d = wd[b * STRIP + i].to_f32();
                let block = &wq[b * qb..(b + 1) * qb];
                for g in 0..qb / (STRIP * 4) {
                    for t in 0..4 {
                        let q = block[g * STRIP * 4 + i * 4 + t];
                        if self.q4 {
                            v[g * 4 + t] = d * f32::from(i8::try_from(q & 0x0F).unwrap_or(0) - 8);
                            v[QK / 2 + g * 4 + t] =
                                d * f32::from(i8::try_from(q >> 4).unwrap_or(0) - 8);
                        } else {
                            v[g * 4 + t] = d * f32::from((q ^ 0x80) as i8);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
