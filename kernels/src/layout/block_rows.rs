//! Q8_0, Q4_0 and MXFP4 (and Q5_0, as Q8_0) weights row by row, as the
//! file has them but with the scales and quants apart: the layout of the
//! row kernels, which multiply one weight row against up to four
//! activation rows (portable and AVX2 CPUs; MXFP4 also on AVX-512 where a
//! block scale is past f16, see `strips`).

use half::f16;

use crate::formats::mxfp4;
use crate::formats::q8_0::{q5_0_as_q8_0, QK};
use crate::{Error, Format};

/// The quants of a weight matrix.
#[derive(Debug)]
enum Quants {
    /// Q8_0: one int8 per value.
    Q8(Vec<i8>),
    /// Q4_0: per block 16 bytes; byte `j` holds value `j` in its low nibble
    /// and value `j + 16` in its high one, each stored plus 8.
    Q4(Vec<u8>),
    /// MXFP4: per block 16 bytes of E2M1 codes, packed as Q4_0's nibbles.
    Fp4(Vec<u8>),
}

/// One weight row's quants, as [`BlockRows`] stores them.
pub(crate) enum RowQuants<'a> {
    /// Q8_0 (and Q5_0): one int8 per value.
    Q8(&'a [i8]),
    /// Q4_0: 16 packed bytes per block.
    Q4(&'a [u8]),
    /// MXFP4: 16 packed bytes of codes per block.
    Fp4(&'a [u8]),
}

/// A Q8_0 or Q4_0 weight matrix `(n, k)`: row `i` produces output `i`.
#[derive(Debug)]
pub(crate) struct BlockRows {
    pub(crate) n: usize,
    pub(crate) k: usize,
    /// `n * k / 32` block scales.
    d: Vec<f32>,
    qs: Quants,
}

impl BlockRows {
    /// Copies a Q8_0, Q4_0 or Q5_0 (as Q8_0) matrix `(n, k)` from its
    /// bytes in a GGUF file (rows of blocks).
    pub(crate) fn from_bytes(
        format: Format,
        n: usize,
        k: usize,
        data: &[u8],
    ) -> Result<BlockRows, Error> {
        if format == Format::Mxfp4 {
            return Self::from_mxfp4(n, k, data);
        }
        let (q4, q5) = super::q0_kind(format, n, k, data, "block-row")?;
        let blocks = n * k / QK;
        let mut d = Vec::with_capacity(blocks);
        let mut packed = Vec::with_capacity(blocks * QK);
        for b in data.chunks_exact(format.block_bytes()) {
            d.push(f16::from_le_bytes([b[0], b[1]]).to_f32());
            if q5 {
                packed.extend_from_slice(&q5_0_as_q8_0(b)[2..]);
            } else {
                packed.extend_from_slice(&b[2..]);
            }
        }
        let qs = if q4 {
            Quants::Q4(packed)
        } else {
            Quants::Q8(packed.into_iter().map(|q| q as i8).collect())
        };
        Ok(BlockRows { n, k, d, qs })
    }

    /// Copies an MXFP4 matrix `(n, k)`: each block's E8M0 scale as the f32
    /// ggml multiplies by (half the power of two), its codes as stored.
    fn from_mxfp4(n: usize, k: usize, data: &[u8]) -> Result<BlockRows, Error> {
        super::whole_blocks(Format::Mxfp4, n, k, data)?;
        let blocks = n * k / QK;
        let mut d = Vec::with_capacity(blocks);
        let mut codes = Vec::with_capacity(blocks * QK / 2);
        for b in data.chunks_exact(mxfp4::MXFP4_BYTES) {
            d.push(mxfp4::scale_half(b[0]));
            codes.extend_from_slice(&b[1..]);
        }
        Ok(BlockRows {
            n,
            k,
            d,
            qs: Quants::Fp4(codes),
        })
    }

    /// Row `row`'s block scales and quants.
    pub(crate) fn row(&self, row: usize) -> (&[f32], RowQuants<'_>) {
        let nb = self.k / QK;
        let wd = &self.d[row * nb..(row + 1) * nb];
        let wq = match &self.qs {
            Quants::Q8(qs) => RowQuants::Q8(&qs[row * self.k..(row + 1) * self.k]),
            Quants::Q4(qs) => {
                let bytes = nb * QK / 2;
                RowQuants::Q4(&qs[row * bytes..(row + 1) * bytes])
            }
            Quants::Fp4(qs) => {
                let bytes = nb * QK / 2;
                RowQuants::Fp4(&qs[row * bytes..(row + 1) * bytes])
            }
        };
        (wd, wq)
    }
}
