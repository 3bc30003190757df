//! The weights as the kernels keep them: copied out of the file's blocks
//! into the layout each family of kernels reads fastest. Each layout is
//! plain data and its repacking; the products over it are
//! [`crate::matmul`]'s and [`crate::isa`]'s.
//!
//! - [`block_rows`]: Q8_0/Q4_0/MXFP4 row by row (CPUs without AVX-512 VNNI);
//! - [`strips`]: Q8_0/Q4_0/MXFP4 in strips of 16 rows (AVX-512 VNNI; AMX
//!   for Q8_0/Q4_0);
//! - [`x16`]: the K-quants in x16 blocks, one super-block of 16 rows
//!   interleaved (every path).

pub(crate) mod block_rows;
pub(crate) mod strips;
pub(crate) mod x16;

use crate::formats::q8_0::QK;
use crate::{Error, Format};

/// Checks that `data` is a whole `(n, k)` Q8_0, Q4_0 or Q5_0 matrix from a
/// GGUF file, for the layout named `layout`; gives whether it is Q4_0 and
/// whether it is Q5_0 (which both Q8_0 layouts store as Q8_0). MXFP4 is
/// checked by each layout that holds it.
pub(crate) fn q0_kind(
    format: Format,
    n: usize,
    k: usize,
    data: &[u8],
    layout: &'static str,
) -> Result<(bool, bool), Error> {
    let kind = match format {
        Format::Q8_0 => (false, false),
        Format::Q4_0 => (true, false),
        Format::Q5_0 => (false, true),
        Format::Q4K | Format::Q5K | Format::Q6K | Format::Mxfp4 => {
            return Err(Error::Layout { format, layout })
        }
    };
    whole_blocks(format, n, k, data)?;
    Ok(kind)
}

/// Checks that `data` is a whole `(n, k)` matrix of a format with blocks
/// of 32 values.
pub(crate) fn whole_blocks(format: Format, n: usize, k: usize, data: &[u8]) -> Result<(), Error> {
    if !k.is_multiple_of(QK) || k == 0 {
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
    Ok(())
}
