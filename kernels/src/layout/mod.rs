//! The weights as the kernels keep them: copied out of the file's blocks
//! into the layout each family of kernels reads fastest. Each layout is
//! plain data and its repacking; the products over it are
//! [`crate::matmul`]'s and [`crate::isa`]'s.
//!
//! - [`block_rows`]: Q8_0/Q4_0 row by row (the row kernels, any CPU);
//! - [`strips`]: Q8_0/Q4_0 in strips of 16 rows (AVX-512 VNNI and AMX);
//! - [`x16`]: the K-quants in x16 blocks, one super-block of 16 rows
//!   interleaved (every path).

pub(crate) mod block_rows;
pub(crate) mod strips;
pub(crate) mod x16;
