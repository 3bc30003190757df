//! The integer matrix products' front: [`QuantMatrix`], a weight matrix in
//! one of the [`Format`]s, repacked into the layout this CPU multiplies
//! fastest, times activation rows quantized to 8 bits as ggml quantizes
//! them (Q8_0 blocks for Q8_0/Q4_0/Q5_0 weights, Q8_K for the K-quants).
//!
//! candle 0.11 multiplies Q8_0 weights on AVX512-VNNI machines through a
//! repacked kernel that quantizes activations to Q8_K (one scale per 256
//! values). That is faster but coarser than ggml, and it makes the result
//! depend on the CPU: on an AVX2-only machine the same file gave other
//! logits. Greedy decoding then drifts from llama.cpp's after a dozen
//! tokens (tests/tests/reference.rs), so Q8_0 goes through these kernels.
//! candle's Q4_0 CPU path is several times slower than ggml's (issue 6), so
//! Q4_0 does too; its quants stay packed, two per byte.

use std::ops::Range;

use crate::isa::Isa;
use crate::layout::block_rows::BlockRows;
use crate::layout::strips::Strips;
use crate::layout::x16::X16Matrix;
use crate::{Error, Format};

mod block_rows;
mod driver;
mod strips;
mod x16;

#[cfg(test)]
mod tests;

/// A weight matrix `(n, k)` for the integer kernels: output `i` of a
/// product is row `i` times the activation row.
#[derive(Debug)]
pub struct QuantMatrix {
    format: Format,
    layout: Layout,
}

/// Which layout holds the weights, and so which kernels multiply them.
#[derive(Debug)]
enum Layout {
    /// Q8_0, Q4_0, Q5_0 row by row (CPUs without AVX-512 VNNI).
    BlockRows(BlockRows),
    /// Q8_0, Q4_0, Q5_0, MXFP4 in strips of 16 rows (AVX-512 VNNI).
    Strips(Strips),
    /// The K-quants in x16 blocks (every CPU).
    X16(X16Matrix),
}

/// Whether `format` goes into strips on this CPU.
fn strips_here(format: Format) -> bool {
    Isa::best().vnni512()
        && matches!(
            format,
            Format::Q8_0 | Format::Q4_0 | Format::Q5_0 | Format::Mxfp4
        )
}

impl QuantMatrix {
    /// Bytes of a `(n, k)` matrix of `format` in a GGUF file, where this
    /// CPU's layout for it is repacked straight from the file's pages (the
    /// strips and the x16 blocks, which tell `done` as they go, so the
    /// caller can drop each group of pages once repacked); `None` for the
    /// block-row layout, which the caller fills from a copy, and for sizes
    /// past `usize`.
    pub fn file_bytes(format: Format, n: usize, k: usize) -> Option<usize> {
        match format {
            Format::Q4K | Format::Q5K | Format::Q6K => format.matrix_bytes(n, k),
            _ if strips_here(format) => format.matrix_bytes(n, k),
            _ => None,
        }
    }

    /// Repacks a `(n, k)` matrix of `format` from its bytes as a GGUF file
    /// holds them (rows of blocks); `done` is told each range of `data` it
    /// has finished with, in order.
    pub fn from_bytes(
        format: Format,
        n: usize,
        k: usize,
        data: &[u8],
        done: &mut dyn FnMut(Range<usize>),
    ) -> Result<QuantMatrix, Error> {
        let layout = match format {
            Format::Q4K | Format::Q5K | Format::Q6K => {
                Layout::X16(X16Matrix::from_bytes(format, n, k, data, done)?)
            }
            // MXFP4 with a scale past f16's range keeps block rows.
            Format::Mxfp4 if !crate::layout::strips::fp4_scales_fit(data) => {
                let m = BlockRows::from_bytes(format, n, k, data)?;
                done(0..data.len());
                Layout::BlockRows(m)
            }
            _ if strips_here(format) => {
                Layout::Strips(Strips::from_bytes(format, n, k, data, done)?)
            }
            _ => {
                let m = BlockRows::from_bytes(format, n, k, data)?;
                done(0..data.len());
                Layout::BlockRows(m)
            }
        };
        Ok(QuantMatrix { format, layout })
    }

    /// The weights' format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Rows (outputs of a product).
    pub fn n(&self) -> usize {
        match &self.layout {
            Layout::BlockRows(m) => m.n,
            Layout::Strips(m) => m.n,
            Layout::X16(m) => m.n,
        }
    }

    /// Values per row (inputs of a product).
    pub fn k(&self) -> usize {
        match &self.layout {
            Layout::BlockRows(m) => m.k,
            Layout::Strips(m) => m.k,
            Layout::X16(m) => m.k,
        }
    }

    /// `out = x @ selfᵀ`: `x` is `m` rows of `k` values, `out` `m` rows of
    /// `n`. A row's result has the same bits whatever other rows come with
    /// it.
    pub fn forward(&self, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
        let (n, k, format) = (self.n(), self.k(), self.format);
        if !x.len().is_multiple_of(k) {
            return Err(Error::Input {
                format,
                len: x.len(),
                k,
            });
        }
        let m = x.len() / k;
        if out.len() != m * n {
            return Err(Error::Output {
                format,
                found: out.len(),
                expected: m * n,
            });
        }
        if m == 0 {
            return Ok(());
        }
        match &self.layout {
            Layout::BlockRows(w) => driver::forward(w, x, out),
            Layout::Strips(w) => strips::forward(w, x, out),
            Layout::X16(w) => driver::forward(w, x, out),
        }
        Ok(())
    }

    /// Whether [`QuantMatrix::rows`] can read rows (the strip layout).
    pub fn has_rows(&self) -> bool {
        matches!(self.layout, Layout::Strips(_))
    }

    /// Rows `ids`, dequantized into `out` (`ids.len()` rows of `k`): a tied
    /// token embedding read from the output matrix's strips instead of a
    /// second copy of the table (strip layout only).
    pub fn rows(&self, ids: &[u32], out: &mut [f32]) -> Result<(), Error> {
        let Layout::Strips(m) = &self.layout else {
            return Err(Error::NoRows {
                format: self.format,
            });
        };
        if out.len() != ids.len() * m.k {
            return Err(Error::Output {
                format: self.format,
                found: out.len(),
                expected: ids.len() * m.k,
            });
        }
        m.rows(ids, out)
    }
}
