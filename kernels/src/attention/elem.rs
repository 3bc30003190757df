//! The element types a full-precision cache holds (`f16`, `f32`) and their
//! conversions to and from the f32 the kernels compute in.

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::{attend_here, Kv, Scores};
use crate::isa::Isa;

mod sealed {
    /// Only the element types below: the kernels are built for them.
    pub trait Sealed {}
    impl Sealed for half::f16 {}
    impl Sealed for f32 {}
}

/// What the cache stores, `f16` or `f32`: converted from and to f32 a
/// slice at a time.
///
/// [`Kv::append`] and [`attend`] run through this trait's `append_to` and
/// `attend_over`, whose two implementations are plain functions of this
/// crate: the generic work is compiled here, at the kernels' optimisation
/// level, and not in each caller (a debug build of the daemon would
/// otherwise run attention unoptimised).
pub trait Elem: sealed::Sealed + Copy + Default + Send + Sync {
    /// Whether queries are rounded to this type before the dot products.
    const ROUNDS: bool;
    /// `x` as stored.
    fn one(x: f32) -> Self;
    /// `src` into `dst`, of one length.
    fn store(dst: &mut [Self], src: &[f32]);
    /// `src` out to `dst`, of one length.
    fn load(src: &[Self], dst: &mut [f32]);
    /// `src` as f16 where this type is f16 (attention reads it in place).
    fn as_f16(src: &[Self]) -> Option<&[f16]>;
    /// [`Kv::append`] for this type.
    fn append_to(kv: &mut Kv<Self>, k: &[f32], v: &[f32], t: usize) -> Result<(), String>;
    /// [`super::attend_with`] for this type.
    fn attend_over(
        q: &[f32],
        heads: usize,
        t: usize,
        kv: &Kv<Self>,
        pos: usize,
        scores: Scores<'_>,
    ) -> Result<Vec<f32>, String>;
}

/// The two [`Elem`] methods that instantiate the generic kernels inside this
/// crate (at its opt-level), the same for every element type.
macro_rules! built_here {
    () => {
        #[inline(never)]
        fn append_to(kv: &mut Kv<Self>, k: &[f32], v: &[f32], t: usize) -> Result<(), String> {
            kv.append_here(k, v, t)
        }
        #[inline(never)]
        fn attend_over(
            q: &[f32],
            heads: usize,
            t: usize,
            kv: &Kv<Self>,
            pos: usize,
            scores: Scores<'_>,
        ) -> Result<Vec<f32>, String> {
            attend_here(q, heads, t, kv, pos, scores)
        }
    };
}

impl Elem for f16 {
    const ROUNDS: bool = true;
    fn one(x: f32) -> f16 {
        f16::from_f32(x)
    }
    fn store(dst: &mut [f16], src: &[f32]) {
        dst.convert_from_f32_slice(src);
    }
    #[inline(always)]
    fn load(src: &[f16], dst: &mut [f32]) {
        widen(src, dst);
    }
    fn as_f16(src: &[f16]) -> Option<&[f16]> {
        Some(src)
    }
    built_here!();
}

/// `src` widened into `dst` (one length), exactly: with F16C eight at a
/// time where the CPU has it. `half`'s slice conversion calls a function
/// per eight values, and decoding 4,096 tokens deep spent a third of its
/// time in those calls.
#[inline(always)]
fn widen(src: &[f16], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if Isa::best() != Isa::Portable {
        // SAFETY: every x86 `Isa` past portable was detected with AVX2
        // and F16C (`Isa::available`).
        unsafe { widen_f16c(src, dst) };
        return;
    }
    src.convert_to_f32_slice(dst);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
fn widen_f16c(src: &[f16], dst: &mut [f32]) {
    use std::arch::x86_64::{_mm256_cvtph_ps, _mm256_storeu_ps, _mm_loadu_si128};
    assert_eq!(src.len(), dst.len());
    let mut from = src.chunks_exact(8);
    let mut to = dst.chunks_exact_mut(8);
    for (a, b) in (&mut from).zip(&mut to) {
        // SAFETY: `a` is eight readable halves (16 bytes), `b` eight
        // writable floats; unaligned accesses are allowed.
        unsafe {
            _mm256_storeu_ps(
                b.as_mut_ptr(),
                _mm256_cvtph_ps(_mm_loadu_si128(a.as_ptr().cast())),
            )
        };
    }
    for (a, b) in from.remainder().iter().zip(to.into_remainder()) {
        *b = a.to_f32();
    }
}

impl Elem for f32 {
    const ROUNDS: bool = false;
    fn one(x: f32) -> f32 {
        x
    }
    fn store(dst: &mut [f32], src: &[f32]) {
        dst.copy_from_slice(src);
    }
    fn load(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn as_f16(_: &[f32]) -> Option<&[f16]> {
        None
    }
    built_here!();
}
