//! Q8_0, Q4_0 and MXFP4 weights repacked in strips of 16 rows, for AVX-512
//! VNNI and AMX (the layout of ggml's repacked CPU kernels).
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
//! MXFP4's codes are packed as Q4_0's nibbles and stored as they are; the
//! AVX-512 kernel looks each up in its doubled-value table plus 12, and its
//! E8M0 scale (halved, a power of two) is kept as an f16, which holds it
//! exactly from 2^-24 to 2^15 (`fp4_scale`; a matrix with a scale outside
//! stays in block rows).

use std::ops::Range;

use half::f16;
use rayon::prelude::*;

use crate::formats::mxfp4;
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
    /// Q4_0 or MXFP4 nibbles (else Q8_0 bytes).
    pub(crate) q4: bool,
    /// MXFP4 codes (the nibbles index [`mxfp4::VALUES`]).
    pub(crate) fp4: bool,
    d: pages::Zeroed<f16>,
    qs: pages::Zeroed<u8>,
}

impl Strips {
    /// Repacks a `(n, k)` Q8_0, Q4_0, Q5_0 or MXFP4 matrix from its bytes
    /// in a GGUF file (rows of blocks, as llama.cpp writes them); `done` is
    /// told each range of `data` it has finished with. MXFP4's scales must
    /// fit an f16 ([`fp4_scales_fit`]).
    pub(crate) fn from_bytes(
        format: Format,
        n: usize,
        k: usize,
        data: &[u8],
        done: &mut dyn FnMut(Range<usize>),
    ) -> Result<Strips, Error> {
        let fp4 = format == Format::Mxfp4;
        let (q4, q5) = if fp4 {
            super::whole_blocks(format, n, k, data)?;
            if !fp4_scales_fit(data) {
                return Err(Error::Layout {
                    format,
                    layout: "strip (a scale outside f16's range)",
                });
            }
            (true, false)
        } else {
            super::q0_kind(format, n, k, data, "strip")?
        };
        // Where each block's quants start: after its scale (1 byte E8M0, or
        // 2 bytes f16).
        let head = if fp4 { 1 } else { 2 };
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
                            sd[b * STRIP + i] = if fp4 {
                                // Checked above (`fp4_scales_fit`).
                                fp4_scale(block).unwrap_or(f16::ZERO)
                            } else {
                                f16::from_le_bytes([block[0], block[1]])
                            };
                            let dst =
                                &mut sq[b * STRIP * quant_bytes..(b + 1) * STRIP * quant_bytes];
                            // Q8_0 quants are signed: plus 128 they are unsigned.
                            let flip = if q4 { 0 } else { 0x8080_8080u32 };
                            for (g, four) in block[head..].chunks_exact(4).enumerate() {
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
        Ok(Strips {
            n,
            k,
            q4,
            fp4,
            d,
            qs,
        })
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
                        if self.fp4 {
                            v[g * 4 + t] = d * f32::from(mxfp4::VALUES[usize::from(q & 0x0F)]);
                            v[QK / 2 + g * 4 + t] =
                                d * f32::from(mxfp4::VALUES[usize::from(q >> 4)]);
                        } else if self.q4 {
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

/// Whether every block scale of an MXFP4 matrix (`data`, whole blocks),
/// halved, is exactly an f16 ([`fp4_scale`]). Real checkpoints' scales are
/// well inside; a file with others keeps the block-row layout, whose
/// scales are f32.
pub(crate) fn fp4_scales_fit(data: &[u8]) -> bool {
    data.chunks_exact(mxfp4::MXFP4_BYTES)
        .all(|b| fp4_scale(b).is_some())
}

/// An MXFP4 block's halved scale as an f16, where one holds it exactly:
/// E8M0 `e` from 104 to 143 (`2^-24 ..= 2^15`), or any scale of a block
/// whose codes are all zero (±0: nothing to scale; quantizers give those
/// blocks `e = 0`).
fn fp4_scale(block: &[u8]) -> Option<f16> {
    let v = mxfp4::scale_half(block[0]);
    let h = f16::from_f32(v);
    if h.to_f32() == v {
        Some(h)
    } else if block[1..].iter().all(|q| q & 0x77 == 0) {
        Some(f16::ZERO)
    } else {
        None
    }
}
