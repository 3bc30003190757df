//! The type tables: [`GgmlType`] (a tensor's element encoding, with ggml's
//! block sizes and bytes per block: the one such table in llmpm) and
//! [`FileType`] (what `general.file_type` says about a model's quantization).

use std::fmt;

/// Declares [`GgmlType`] from one table: (variant, id, name, block size,
/// bytes per block), from ggml's `type_traits`.
macro_rules! ggml_types {
    ($(($variant:ident, $id:literal, $name:literal, $block:literal, $size:literal)),* $(,)?) => {
        /// A tensor's element encoding (`enum ggml_type`). Ids that ggml has
        /// retired (4, 5, 31–33, 36–38) are not listed and are rejected.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum GgmlType {
            $($variant = $id,)*
        }

        impl GgmlType {
            /// Every known type.
            pub const ALL: &'static [GgmlType] = &[$(GgmlType::$variant,)*];

            /// The type for an id read from a file.
            pub fn from_u32(id: u32) -> Option<Self> {
                match id {
                    $($id => Some(GgmlType::$variant),)*
                    _ => None,
                }
            }

            /// ggml's name (`Q4_0`, `IQ2_XXS`, `BF16`).
            pub fn name(self) -> &'static str {
                match self {
                    $(GgmlType::$variant => $name,)*
                }
            }

            /// Elements per block.
            pub fn block_size(self) -> u64 {
                match self {
                    $(GgmlType::$variant => $block,)*
                }
            }

            /// Bytes per block.
            pub fn type_size(self) -> u64 {
                match self {
                    $(GgmlType::$variant => $size,)*
                }
            }
        }
    };
}

ggml_types!(
    (F32, 0, "F32", 1, 4),
    (F16, 1, "F16", 1, 2),
    (Q4_0, 2, "Q4_0", 32, 18),
    (Q4_1, 3, "Q4_1", 32, 20),
    (Q5_0, 6, "Q5_0", 32, 22),
    (Q5_1, 7, "Q5_1", 32, 24),
    (Q8_0, 8, "Q8_0", 32, 34),
    (Q8_1, 9, "Q8_1", 32, 36),
    (Q2_K, 10, "Q2_K", 256, 84),
    (Q3_K, 11, "Q3_K", 256, 110),
    (Q4_K, 12, "Q4_K", 256, 144),
    (Q5_K, 13, "Q5_K", 256, 176),
    (Q6_K, 14, "Q6_K", 256, 210),
    (Q8_K, 15, "Q8_K", 256, 292),
    (IQ2_XXS, 16, "IQ2_XXS", 256, 66),
    (IQ2_XS, 17, "IQ2_XS", 256, 74),
    (IQ3_XXS, 18, "IQ3_XXS", 256, 98),
    (IQ1_S, 19, "IQ1_S", 256, 50),
    (IQ4_NL, 20, "IQ4_NL", 32, 18),
    (IQ3_S, 21, "IQ3_S", 256, 110),
    (IQ2_S, 22, "IQ2_S", 256, 82),
    (IQ4_XS, 23, "IQ4_XS", 256, 136),
    (I8, 24, "I8", 1, 1),
    (I16, 25, "I16", 1, 2),
    (I32, 26, "I32", 1, 4),
    (I64, 27, "I64", 1, 8),
    (F64, 28, "F64", 1, 8),
    (IQ1_M, 29, "IQ1_M", 256, 56),
    (BF16, 30, "BF16", 1, 2),
    (TQ1_0, 34, "TQ1_0", 256, 54),
    (TQ2_0, 35, "TQ2_0", 256, 66),
    (MXFP4, 39, "MXFP4", 32, 17),
);

impl GgmlType {
    /// The id written to a file.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// Bytes taken by `elements` values, `None` when `elements` is not a
    /// whole number of blocks or the size overflows.
    pub fn byte_size(self, elements: u64) -> Option<u64> {
        if !divides(self.block_size(), elements) {
            return None;
        }
        (elements / self.block_size()).checked_mul(self.type_size())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Declares [`FileType`] from one table: (variant, `general.file_type`
/// value, the name Ollama and llama.cpp print).
macro_rules! file_types {
    ($(($variant:ident, $id:literal, $name:literal)),* $(,)?) => {
        /// What `general.file_type` says about a model's quantization
        /// (llama.cpp's `llama_ftype`, Ollama's `FileType`).
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum FileType {
            $($variant = $id,)*
        }

        impl FileType {
            /// The file type for a `general.file_type` value.
            pub fn from_u32(id: u32) -> Option<Self> {
                match id {
                    $($id => Some(FileType::$variant),)*
                    _ => None,
                }
            }

            /// The name shown as `quantization_level` (`Q4_K_M`, `F16`).
            pub fn name(self) -> &'static str {
                match self {
                    $(FileType::$variant => $name,)*
                }
            }
        }
    };
}

file_types!(
    (F32, 0, "F32"),
    (F16, 1, "F16"),
    (Q4_0, 2, "Q4_0"),
    (Q4_1, 3, "Q4_1"),
    // llama.cpp retired 4 (Q4_1_SOME_F16); Ollama reuses it for gpt-oss.
    (MXFP4, 4, "MXFP4"),
    (Q8_0, 7, "Q8_0"),
    (Q5_0, 8, "Q5_0"),
    (Q5_1, 9, "Q5_1"),
    (Q2_K, 10, "Q2_K"),
    (Q3_K_S, 11, "Q3_K_S"),
    (Q3_K_M, 12, "Q3_K_M"),
    (Q3_K_L, 13, "Q3_K_L"),
    (Q4_K_S, 14, "Q4_K_S"),
    (Q4_K_M, 15, "Q4_K_M"),
    (Q5_K_S, 16, "Q5_K_S"),
    (Q5_K_M, 17, "Q5_K_M"),
    (Q6_K, 18, "Q6_K"),
    (IQ2_XXS, 19, "IQ2_XXS"),
    (IQ2_XS, 20, "IQ2_XS"),
    (Q2_K_S, 21, "Q2_K_S"),
    (IQ3_XS, 22, "IQ3_XS"),
    (IQ3_XXS, 23, "IQ3_XXS"),
    (IQ1_S, 24, "IQ1_S"),
    (IQ4_NL, 25, "IQ4_NL"),
    (IQ3_S, 26, "IQ3_S"),
    (IQ3_M, 27, "IQ3_M"),
    (IQ2_S, 28, "IQ2_S"),
    (IQ2_M, 29, "IQ2_M"),
    (IQ4_XS, 30, "IQ4_XS"),
    (IQ1_M, 31, "IQ1_M"),
    (BF16, 32, "BF16"),
    (TQ1_0, 36, "TQ1_0"),
    (TQ2_0, 37, "TQ2_0"),
    (MXFP4_MOE, 38, "MXFP4_MOE"),
);

impl FileType {
    /// The `general.file_type` value.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The file type of a model whose weights are mostly `t`. K-quant mixes
    /// cannot be told apart from tensor types alone, so this picks the mix
    /// llama.cpp recommends for each (`Q4_K` → `Q4_K_M`).
    pub fn from_ggml_type(t: GgmlType) -> Option<Self> {
        Some(match t {
            GgmlType::F32 => FileType::F32,
            GgmlType::F16 => FileType::F16,
            GgmlType::BF16 => FileType::BF16,
            GgmlType::Q4_0 => FileType::Q4_0,
            GgmlType::Q4_1 => FileType::Q4_1,
            GgmlType::Q5_0 => FileType::Q5_0,
            GgmlType::Q5_1 => FileType::Q5_1,
            GgmlType::Q8_0 => FileType::Q8_0,
            GgmlType::Q2_K => FileType::Q2_K,
            GgmlType::Q3_K => FileType::Q3_K_M,
            GgmlType::Q4_K => FileType::Q4_K_M,
            GgmlType::Q5_K => FileType::Q5_K_M,
            GgmlType::Q6_K => FileType::Q6_K,
            GgmlType::IQ2_XXS => FileType::IQ2_XXS,
            GgmlType::IQ2_XS => FileType::IQ2_XS,
            GgmlType::IQ3_XXS => FileType::IQ3_XXS,
            GgmlType::IQ1_S => FileType::IQ1_S,
            GgmlType::IQ4_NL => FileType::IQ4_NL,
            GgmlType::IQ3_S => FileType::IQ3_S,
            GgmlType::IQ2_S => FileType::IQ2_S,
            GgmlType::IQ4_XS => FileType::IQ4_XS,
            GgmlType::IQ1_M => FileType::IQ1_M,
            GgmlType::TQ1_0 => FileType::TQ1_0,
            GgmlType::TQ2_0 => FileType::TQ2_0,
            GgmlType::MXFP4 => FileType::MXFP4,
            GgmlType::Q8_1
            | GgmlType::Q8_K
            | GgmlType::I8
            | GgmlType::I16
            | GgmlType::I32
            | GgmlType::I64
            | GgmlType::F64 => return None,
        })
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `d` divides `x`. (`u64::is_multiple_of` needs Rust 1.87; the
/// workspace declares 1.85.)
#[allow(clippy::manual_is_multiple_of)]
pub(crate) fn divides(d: u64, x: u64) -> bool {
    d != 0 && x % d == 0
}

#[cfg(test)]
mod tests;
