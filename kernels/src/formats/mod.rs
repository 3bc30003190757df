//! The GGUF block formats the integer kernels multiply, and the
//! activation quantizers they pair with: each format's block layout as the
//! file has it, byte for byte, in plain Rust with no instruction set in
//! mind. The kernels' repacked copies of the weights are the `layout`
//! module's.

pub(crate) mod k_quants;
pub mod mxfp4;
pub(crate) mod q8_0;
pub(crate) mod q8_k;
pub(crate) mod round;

use llmpm_gguf::GgmlType;

/// A weight format the integer kernels multiply (GGUF's type of a tensor).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Blocks of 32 values: an f16 scale and 32 int8.
    Q8_0,
    /// Blocks of 32 values: an f16 scale and 32 nibbles (value + 8).
    Q4_0,
    /// Blocks of 32 values: an f16 scale, the 32 fifth bits, 32 nibbles.
    Q5_0,
    /// Super-blocks of 256: eight sub-blocks of 32 with 6-bit scales and
    /// mins, 4-bit quants.
    Q4K,
    /// [`Format::Q4K`] with a fifth bit per quant.
    Q5K,
    /// Super-blocks of 256: sixteen sub-blocks of 16 with int8 scales,
    /// 6-bit quants.
    Q6K,
    /// Blocks of 32 values: an E8M0 scale (a power of two) and 32 E2M1
    /// codes, two per byte (gpt-oss's experts).
    Mxfp4,
}

impl Format {
    /// Every format, in the order above.
    pub const ALL: [Format; 7] = [
        Format::Q8_0,
        Format::Q4_0,
        Format::Q5_0,
        Format::Q4K,
        Format::Q5K,
        Format::Q6K,
        Format::Mxfp4,
    ];

    /// The name llama.cpp gives it (`Q4_K`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Q8_0 => "Q8_0",
            Format::Q4_0 => "Q4_0",
            Format::Q5_0 => "Q5_0",
            Format::Q4K => "Q4_K",
            Format::Q5K => "Q5_K",
            Format::Q6K => "Q6_K",
            Format::Mxfp4 => "MXFP4",
        }
    }

    /// The GGUF type of the same layout.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            Format::Q8_0 => GgmlType::Q8_0,
            Format::Q4_0 => GgmlType::Q4_0,
            Format::Q5_0 => GgmlType::Q5_0,
            Format::Q4K => GgmlType::Q4_K,
            Format::Q5K => GgmlType::Q5_K,
            Format::Q6K => GgmlType::Q6_K,
            Format::Mxfp4 => GgmlType::MXFP4,
        }
    }

    /// The format a GGUF type is stored in, where a kernel takes it.
    pub fn from_ggml_type(t: GgmlType) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.ggml_type() == t)
    }

    /// Values per block, from llmpm-gguf's type table (the one block table
    /// of the project; the kernels' own constants are tested against it).
    pub fn block_values(self) -> usize {
        // The table's sizes are small constants (at most 256).
        self.ggml_type().block_size() as usize
    }

    /// Bytes per block, from llmpm-gguf's type table.
    pub fn block_bytes(self) -> usize {
        self.ggml_type().type_size() as usize
    }

    /// Bytes of a `(n, k)` matrix in a GGUF file (rows of `k / block`
    /// blocks); `None` when that does not fit a `usize`.
    pub fn matrix_bytes(self, n: usize, k: usize) -> Option<usize> {
        n.checked_mul(k / self.block_values())?
            .checked_mul(self.block_bytes())
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block sizes are GGUF's (ggml's `ggml_type_traits`).
    #[test]
    fn blocks_are_ggufs() {
        let table = [
            (Format::Q8_0, 32, 34),
            (Format::Q4_0, 32, 18),
            (Format::Q5_0, 32, 22),
            (Format::Q4K, 256, 144),
            (Format::Q5K, 256, 176),
            (Format::Q6K, 256, 210),
            (Format::Mxfp4, 32, 17),
        ];
        for (f, values, bytes) in table {
            assert_eq!((f.block_values(), f.block_bytes()), (values, bytes), "{f}");
        }
        // The constants the kernels use in their loops are the table's.
        let constants = [
            (Format::Q8_0, q8_0::QK, q8_0::Q8_0_BYTES),
            (Format::Q4_0, q8_0::QK, 2 + q8_0::QK / 2),
            (Format::Q5_0, q8_0::QK, 2 + 4 + q8_0::QK / 2),
            (Format::Q4K, q8_k::QK_K, k_quants::Q4K_BYTES),
            (Format::Q5K, q8_k::QK_K, k_quants::Q5K_BYTES),
            (Format::Q6K, q8_k::QK_K, k_quants::Q6K_BYTES),
            (Format::Mxfp4, mxfp4::QK, mxfp4::MXFP4_BYTES),
        ];
        for (f, values, bytes) in constants {
            assert_eq!((f.block_values(), f.block_bytes()), (values, bytes), "{f}");
            assert_eq!(Format::from_ggml_type(f.ggml_type()), Some(f));
        }
        assert_eq!(Format::from_ggml_type(GgmlType::F16), None);
        assert_eq!(Format::Q4K.matrix_bytes(2, 512), Some(4 * 144));
        assert_eq!(Format::Q8_0.matrix_bytes(usize::MAX, 64), None);
    }
}
