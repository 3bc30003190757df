//! Rounding as ggml's quantizers round.

/// `x` rounded to the nearest integer, ties to even, for |x| < 2^22, as
/// ggml rounds when it quantizes activations. `f32::round_ties_even` is a
/// libm call on baseline x86-64 (no SSE4.1); it made quantizing a prompt
/// cost a third as much as multiplying it.
#[inline(always)]
pub(crate) fn round_half_even(x: f32) -> i32 {
    // Adding 1.5·2^23 leaves the integer in the low mantissa bits, rounded
    // by the float add itself (to nearest, ties to even).
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007F_FFFF) as i32 - 0x0040_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_to_even_like_std() {
        let mut rng = fastrand::Rng::with_seed(7);
        let ties = (-300..300).map(|i| i as f32 + 0.5);
        let random = (0..100_000).map(|_| (rng.f32() - 0.5) * 300.0);
        for x in ties
            .chain(random)
            .chain([0.0, -0.0, 127.0, -127.0, 0.49999997])
        {
            assert_eq!(round_half_even(x), x.round_ties_even() as i32, "{x}");
        }
    }
}
