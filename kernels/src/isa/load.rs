//! Memory access for the x86 kernels: loads of exactly-sized arrays into
//! vectors, and prefetching the weights ahead of their use.

use std::arch::x86_64::*;

/// x16 blocks ahead of the one in use whose lines the row kernels ask
/// for: the hardware prefetcher stops at each 4 KiB page, and decoding
/// streams the weights (measured: a 1B Q4_K_M decode step 72 → 50 ms; 1 to
/// 4 blocks ahead alike, 8 worse).
pub(crate) const AHEAD: usize = 2;

/// Asks for every cache line of the x16 block [`AHEAD`] after `b` in
/// `blocks` ahead of its use (decoding streams the weights, and the
/// hardware prefetcher stops at each 4 KiB page). That block
/// may lie past the slice's end: a band of 16 rows is only `k / 256`
/// blocks (4 for a 1,024-wide output matrix), and the next band's blocks
/// follow it in memory; stopping at the band's end left its first blocks
/// unasked for (Q4_K's output matrix on one core: 4.2 → 3.3 ms). A
/// prefetch never faults, so an address past the allocation is harmless.
///
/// `HINT` is the cache level asked for. Q5_K and Q6_K read two streams per
/// block (`qs`/`ql` and `qh`); asked into L1 (`_MM_HINT_T0`) their output
/// matrix streamed at half the speed of asking into L2 (`_MM_HINT_T1`):
/// 151,936 × 1,024 Q6_K on one AVX-512 core 18.3 → 8.5 ms, Q5_K 15 → 6 ms.
/// Q4_K on AVX-512 was ~15% faster with T0 on that one matrix, but a whole
/// 1B Q4_K_M model's matrices one after another (the `stream` bench, on a
/// thread of the pool as the runner calls them) go faster with T1 in
/// pieces, most on two threads: 28 → 34 tokens/s of weights; on the AVX2 kernels (measured
/// on the same CPU with `Isa::best` forced to AVX2) T1 is faster for all
/// three: Q6_K 19.5 → 10.9 ms, Q5_K 16 → 7 ms, Q4_K 7.9 → 5.5 ms
/// (`cargo bench -p llmpm-kernels -- output`).
#[target_feature(enable = "sse")]
#[inline]
pub(crate) fn prefetch_ahead<T, const HINT: i32>(blocks: &[T], b: usize) {
    prefetch_part::<T, HINT>(blocks, b, 0, 1);
}

/// [`prefetch_ahead`] in `parts` pieces, piece `part` now: the kernel asks
/// for a piece of the block ahead at each of its steps instead of all of
/// it at once. The output matrix (151,936 × 1,024) on one AVX-512 core:
/// Q6_K 8.5 → 5.3 ms, Q5_K 6.8 → 4.8 ms (lines asked for in one burst
/// wait on each other); Q4_K, which reads one stream, is faster asking for
/// the whole block.
#[target_feature(enable = "sse")]
#[inline]
pub(crate) fn prefetch_part<T, const HINT: i32>(blocks: &[T], b: usize, part: usize, parts: usize) {
    let at = blocks.as_ptr().wrapping_add(b + AHEAD).cast::<u8>();
    let size = std::mem::size_of::<T>();
    let (start, end) = (size * part / parts, size * (part + 1) / parts);
    // Each line whose first byte lies in the piece.
    let first = start.next_multiple_of(64);
    prefetch_past::<HINT>(at.wrapping_add(first), end.saturating_sub(first));
}

/// Asks for the `bytes` from `p` on, which may lie past the slice a kernel
/// was given (the strips of a matrix follow each other in memory); a
/// prefetch never faults, so an address past the allocation is harmless.
#[target_feature(enable = "sse")]
#[inline]
pub(crate) fn prefetch_past<const HINT: i32>(p: *const u8, bytes: usize) {
    for off in (0..bytes).step_by(64) {
        _mm_prefetch::<HINT>(p.wrapping_add(off).cast());
    }
}

/// The bytes of `v`, which must be exactly `N` of them (checked at
/// compile time).
macro_rules! loader {
    ($name:ident, $n:literal, $ty:ty, $load:ident, $features:literal) => {
        #[target_feature(enable = $features)]
        pub(crate) fn $name<T: Copy>(v: &T) -> $ty {
            const { assert!(std::mem::size_of::<T>() == $n) };
            // SAFETY: `v` is $n readable bytes (asserted above), and
            // unaligned loads are allowed.
            unsafe { $load((v as *const T).cast()) }
        }
    };
}
loader!(ld64, 8, __m128i, _mm_loadl_epi64, "sse2");
loader!(ld128, 16, __m128i, _mm_loadu_si128, "sse2");
loader!(ld256, 32, __m256i, _mm256_loadu_si256, "avx");
loader!(ld256f, 32, __m256, _mm256_loadu_ps, "avx");
loader!(ld512, 64, __m512i, _mm512_loadu_si512, "avx512f");
loader!(ld512f, 64, __m512, _mm512_loadu_ps, "avx512f");
