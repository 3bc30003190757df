//! The K-quant x16 kernels on AVX2 with VEX-encoded VNNI (`vpdpbusd` on
//! 256 bits).

/// The K-quant x16 kernels, with `vpdpbusd`.
pub(crate) mod x16 {
    crate::isa::ymm::ymm_x16_kernels!(
        "avx2,fma,f16c,avxvnni",
        |acc, w, x| _mm256_dpbusd_avx_epi32(acc, w, x)
    );
}
