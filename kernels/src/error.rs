//! Why a kernel refused its input: a shape or length that does not fit the
//! format, or memory that could not be had. The kernels check what they are
//! given instead of trusting it, so a bad file is an error, not a panic.

use crate::Format;

/// A kernel's refusal; each names the format and the numbers that disagree.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Rows whose length is not a multiple of the format's block.
    #[error("{format} rows of {k} values are not whole blocks")]
    PartialBlocks {
        /// The weights' format.
        format: Format,
        /// Values per row.
        k: usize,
    },
    /// A format that a layout does not hold.
    #[error("no {layout} kernel for {format}")]
    Layout {
        /// The weights' format.
        format: Format,
        /// The layout's name.
        layout: &'static str,
    },
    /// Weight bytes of another length than the shape needs.
    #[error("{format} data is {found} bytes, not {n} rows of {k} values")]
    Length {
        /// The weights' format.
        format: Format,
        /// Rows.
        n: usize,
        /// Values per row.
        k: usize,
        /// Bytes given.
        found: usize,
    },
    /// No memory for the repacked copy.
    #[error("cannot map memory for a {n} × {k} {format} matrix")]
    Memory {
        /// The weights' format.
        format: Format,
        /// Rows.
        n: usize,
        /// Values per row.
        k: usize,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Activations that are not whole rows of the weights' width.
    #[error("{format} matmul: {len} input values are not rows of {k}")]
    Input {
        /// The weights' format.
        format: Format,
        /// Values given.
        len: usize,
        /// Values per row.
        k: usize,
    },
    /// An output slice of another length than the product's.
    #[error("{format} matmul: {found} output values, expected {expected}")]
    Output {
        /// The weights' format.
        format: Format,
        /// Values given.
        found: usize,
        /// Rows of activations times rows of weights.
        expected: usize,
    },
    /// A row asked for past the matrix.
    #[error("row {id} is outside the {n} rows")]
    Row {
        /// The row asked for.
        id: u32,
        /// Rows in the matrix.
        n: usize,
    },
    /// Rows asked of a layout that does not give them.
    #[error("the {format} matrix does not give rows in this layout")]
    NoRows {
        /// The weights' format.
        format: Format,
    },
    /// Elementwise operands of different lengths.
    #[error("operands of {a} and {b} values, output of {out}")]
    Lengths {
        /// The first operand's length.
        a: usize,
        /// The second operand's length.
        b: usize,
        /// The output's length.
        out: usize,
    },
}
