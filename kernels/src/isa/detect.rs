//! Which instruction sets this CPU runs, detected once.

/// The instruction sets the kernels are built for; each kernel runs the
/// best it has a path for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Plain Rust, for any CPU.
    Portable,
    /// AVX2 with FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX2 with VEX-encoded VNNI (`vpdpbusd` on 256 bits).
    #[cfg(target_arch = "x86_64")]
    AvxVnni,
    /// AVX-512 (F, BW, VL) with VNNI.
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
}

impl Isa {
    /// Every instruction set this CPU runs, best last. Each x86 one past
    /// `Portable` implies AVX2, FMA and F16C.
    pub(crate) fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut out = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use std::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") && has!("f16c") {
                out.push(Isa::Avx2);
                if has!("avxvnni") {
                    out.push(Isa::AvxVnni);
                }
                if has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni") {
                    out.push(Isa::Avx512Vnni);
                }
            }
        }
        out
    }

    /// The best instruction set here, detected once.
    pub(crate) fn best() -> Isa {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Isa::available().last().copied().unwrap_or(Isa::Portable))
    }

    /// Whether this is AVX-512 VNNI.
    pub(crate) fn vnni512(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return self == Isa::Avx512Vnni;
        #[cfg(not(target_arch = "x86_64"))]
        false
    }
}
