//! Q4_K, Q5_K and Q6_K weights repacked in x16 blocks: per super-block of
//! 256 columns, the blocks of 16 weight rows interleaved, so that each
//! 64-byte vector holds four quants of each of the 16 rows and one
//! `vpdpbusd` multiplies it by four activation quants broadcast, 64 products
//! into the 16 rows' sums at once (ggml's `block_q4_Kx8` is the same idea
//! for 8 rows).
//!
//! ggml's own kernel shape, one weight row against one activation row with
//! the scales applied per row, spends most of its instructions on unpacking
//! and scaling rather than multiplying; on this project's machines it was
//! three times slower than candle 0.11's repacked kernel on prompts. The
//! bytes are GGUF's own, taken four at a time from each row (nibbles stay
//! packed); only the 6-bit scales and mins of Q4_K and Q5_K are unpacked to
//! bytes, and Q6_K's `d` is converted to f32 (so that every x16 block is
//! whole cache lines).

use std::ops::Range;

use half::f16;

use crate::formats::k_quants::{f16_at, unpack_scales, Q4K_BYTES, Q5K_BYTES, Q6K_BYTES};
use crate::formats::q8_k::QK_K;
use crate::pages;
use crate::{Error, Format};

/// Weight rows per x16 block: one 512-bit vector of i32 sums.
pub(crate) const X16: usize = 16;

/// 16 rows × 256 columns of Q4_K. Bytes `4r..4r + 4` of `qs[v]` are GGUF
/// bytes `4v..4v + 4` of row `r`'s block, so with `v = 8c + g` the low
/// nibbles are the row's values `64c + 4g..` (sub-block `2c`) and the high
/// ones `64c + 32 + 4g..` (sub-block `2c + 1`). Each 64 bytes split in two
/// halves of eight rows for 256-bit vectors.
#[derive(Clone, Copy, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub(crate) struct Q4KX16 {
    pub(crate) qs: [[[u8; 32]; 2]; 32],
    /// `sc[j]`: sub-block `j`'s scale for each row.
    pub(crate) sc: [[[u8; 8]; 2]; 8],
    /// `m[j]`: sub-block `j`'s min for each row.
    pub(crate) m: [[[u8; 8]; 2]; 8],
    pub(crate) d: [[f16; 8]; 2],
    pub(crate) dmin: [[f16; 8]; 2],
}

/// [`Q4KX16`] with Q5_K's fifth bits: bytes `4r..4r + 4` of `qh[g]` are
/// GGUF's `qh` bytes `4g..4g + 4` of row `r`, where bit `j` belongs to
/// sub-block `j`: bits `2c` and `2c + 1` complete the nibbles of `qs[8c + g]`.
#[derive(Clone, Copy, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub(crate) struct Q5KX16 {
    pub(crate) qs: [[[u8; 32]; 2]; 32],
    pub(crate) qh: [[[u8; 32]; 2]; 8],
    pub(crate) sc: [[[u8; 8]; 2]; 8],
    pub(crate) m: [[[u8; 8]; 2]; 8],
    pub(crate) d: [[f16; 8]; 2],
    pub(crate) dmin: [[f16; 8]; 2],
}

/// 16 rows × 256 columns of Q6_K: `ql[v]` holds GGUF's `ql` bytes
/// `4v..4v + 4` of each row and `qh[u]` its `qh` bytes `4u..4u + 4`. With
/// `v = 16h + 8a + l` (`l` < 8), the low nibbles of `ql[v]` are the row's
/// values `128h + 32a + 4l..` and take bits `2a..2a + 2` of `qh[8h + l]` on
/// top, the high nibbles are the values 64 further and take bits
/// `2a + 4..2a + 6`.
#[derive(Clone, Copy, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub(crate) struct Q6KX16 {
    pub(crate) ql: [[[u8; 32]; 2]; 32],
    pub(crate) qh: [[[u8; 32]; 2]; 16],
    /// `sc[j]`: sub-block `j`'s (16 values) scale for each row.
    pub(crate) sc: [[[i8; 8]; 2]; 16],
    pub(crate) d: [[f32; 8]; 2],
}

/// A matrix's x16 blocks, by format.
pub(crate) enum X16Blocks {
    Q4K(pages::Zeroed<Q4KX16>),
    Q5K(pages::Zeroed<Q5KX16>),
    Q6K(pages::Zeroed<Q6KX16>),
}

/// A Q4_K, Q5_K or Q6_K weight matrix `(n, k)` in x16 blocks: the
/// super-blocks of rows `16t..16t + 16` are `blocks[t * k / 256..]`, rows
/// past `n` zero.
pub(crate) struct X16Matrix {
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) blocks: X16Blocks,
}

impl std::fmt::Debug for X16Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X16Matrix")
            .field("format", &self.format())
            .field("n", &self.n)
            .field("k", &self.k)
            .finish_non_exhaustive()
    }
}

/// Row `r`'s scale, min scale and 6-bit sub-block scales and mins of a
/// Q4_K or Q5_K block `b` (the same first 16 bytes in both) into an x16
/// block.
fn put_header(
    d: &mut [[f16; 8]; 2],
    dmin: &mut [[f16; 8]; 2],
    sc: &mut [[[u8; 8]; 2]; 8],
    m: &mut [[[u8; 8]; 2]; 8],
    r: usize,
    b: &[u8],
) {
    d[r / 8][r % 8] = f16_at(b, 0);
    dmin[r / 8][r % 8] = f16_at(b, 2);
    let (s, mins) = unpack_scales(&b[4..16]);
    for j in 0..8 {
        sc[j][r / 8][r % 8] = s[j];
        m[j][r / 8][r % 8] = mins[j];
    }
}

/// Copies four bytes of each row into the rows' lanes of a 64-byte vector.
fn put4(v: &mut [[u8; 32]; 2], r: usize, src: &[u8]) {
    v[r / 8][4 * (r % 8)..4 * (r % 8) + 4].copy_from_slice(&src[..4]);
}

/// Interleaves `(n, k)` GGUF blocks of `block_bytes` into x16 blocks;
/// `fill(x16, r, block)` copies row `r`'s block into one (rows past `n`
/// stay zero). After each group of x16 rows, `done` is told the range of
/// `data` it has finished.
fn interleave<T: bytemuck::Zeroable + Send + Sync>(
    data: &[u8],
    n: usize,
    k: usize,
    block_bytes: usize,
    fill: impl Fn(&mut T, usize, &[u8]) + Sync,
    done: &mut dyn FnMut(Range<usize>),
) -> std::io::Result<pages::Zeroed<T>> {
    use rayon::prelude::*;
    let nb = k / QK_K;
    let groups = n.div_ceil(X16);
    let row_bytes = nb * block_bytes;
    let mut out = pages::Zeroed::new(groups * nb)?;
    let group = pages::group_units(X16 * row_bytes);
    for (g, part) in out.chunks_mut(group * nb).enumerate() {
        let first = g * group;
        // Large matrices load in parallel: this is all the loading work.
        part.par_chunks_mut(nb).enumerate().for_each(|(i, row)| {
            let t = first + i;
            for r in 0..X16.min(n - t * X16) {
                let at = (t * X16 + r) * row_bytes;
                for (b, x16) in row.iter_mut().enumerate() {
                    fill(
                        x16,
                        r,
                        &data[at + b * block_bytes..at + (b + 1) * block_bytes],
                    );
                }
            }
        });
        let end = ((first + group) * X16).min(n);
        done(first * X16 * row_bytes..end * row_bytes);
    }
    Ok(out)
}

impl X16Matrix {
    /// Interleaves a `(n, k)` Q4_K, Q5_K or Q6_K matrix from its bytes in a
    /// GGUF file (rows of super-blocks); `done` is told each range of
    /// `data` it has finished with.
    pub(crate) fn from_bytes(
        format: Format,
        n: usize,
        k: usize,
        data: &[u8],
        done: &mut dyn FnMut(Range<usize>),
    ) -> Result<X16Matrix, Error> {
        if matches!(
            format,
            Format::Q8_0 | Format::Q4_0 | Format::Q5_0 | Format::Mxfp4
        ) {
            return Err(Error::Layout {
                format,
                layout: "K-quant",
            });
        }
        if !k.is_multiple_of(QK_K) || k == 0 {
            return Err(Error::PartialBlocks { format, k });
        }
        if Some(data.len()) != format.matrix_bytes(n, k) {
            return Err(Error::Length {
                format,
                n,
                k,
                found: data.len(),
            });
        }
        let memory = |source| Error::Memory {
            format,
            n,
            k,
            source,
        };
        let blocks = match format {
            Format::Q4K => X16Blocks::Q4K(
                interleave::<Q4KX16>(
                    data,
                    n,
                    k,
                    Q4K_BYTES,
                    |t, r, b| {
                        put_header(&mut t.d, &mut t.dmin, &mut t.sc, &mut t.m, r, b);
                        for (v, q) in t.qs.iter_mut().enumerate() {
                            put4(q, r, &b[16 + 4 * v..]);
                        }
                    },
                    done,
                )
                .map_err(memory)?,
            ),
            Format::Q5K => X16Blocks::Q5K(
                interleave::<Q5KX16>(
                    data,
                    n,
                    k,
                    Q5K_BYTES,
                    |t, r, b| {
                        put_header(&mut t.d, &mut t.dmin, &mut t.sc, &mut t.m, r, b);
                        for (g, q) in t.qh.iter_mut().enumerate() {
                            put4(q, r, &b[16 + 4 * g..]);
                        }
                        for (v, q) in t.qs.iter_mut().enumerate() {
                            put4(q, r, &b[48 + 4 * v..]);
                        }
                    },
                    done,
                )
                .map_err(memory)?,
            ),
            _ => X16Blocks::Q6K(
                interleave::<Q6KX16>(
                    data,
                    n,
                    k,
                    Q6K_BYTES,
                    |t, r, b| {
                        for (v, q) in t.ql.iter_mut().enumerate() {
                            put4(q, r, &b[4 * v..]);
                        }
                        for (u, q) in t.qh.iter_mut().enumerate() {
                            put4(q, r, &b[128 + 4 * u..]);
                        }
                        for j in 0..16 {
                            t.sc[j][r / 8][r % 8] = b[192 + j] as i8;
                        }
                        t.d[r / 8][r % 8] = f16_at(b, 208).to_f32();
                    },
                    done,
                )
                .map_err(memory)?,
            ),
        };
        Ok(X16Matrix { n, k, blocks })
    }

    /// The weights' format.
    pub(crate) fn format(&self) -> Format {
        match self.blocks {
            X16Blocks::Q4K(_) => Format::Q4K,
            X16Blocks::Q5K(_) => Format::Q5K,
            X16Blocks::Q6K(_) => Format::Q6K,
        }
    }
}

/// Q6_K's sub-block pairs `(h, a, q)`: sub-blocks `8h + 2a + q` and 4
/// more, which share their `ql` bytes; the order the portable and AVX2
/// paths sum them in (AVX-512 takes both `a` per `qh` load; the sums are
/// integers, so any order gives the same bits).
pub(crate) const Q6_ORDER: [(usize, usize, usize); 8] = [
    (0, 0, 0),
    (0, 0, 1),
    (0, 1, 0),
    (0, 1, 1),
    (1, 0, 0),
    (1, 0, 1),
    (1, 1, 0),
    (1, 1, 1),
];
