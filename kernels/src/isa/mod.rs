//! The kernels per instruction set: which ones this CPU runs
//! ([`detect`]), and for each, the inner loops over the weight layouts of
//! [`crate::layout`]. Every path of a kernel does the same arithmetic in
//! the same order on exact integer sums, so a result has the same bits on
//! every CPU (the tests check each path against [`portable`]).

pub(crate) mod detect;
pub(crate) mod portable;

#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avxvnni;
#[cfg(target_arch = "x86_64")]
pub(crate) mod load;
#[cfg(target_arch = "x86_64")]
mod ymm;

pub(crate) use detect::Isa;
