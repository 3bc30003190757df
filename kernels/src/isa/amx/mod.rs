//! Intel AMX (tile registers and the tile matrix unit) for the integer
//! kernels: whether this process may use it, and the few instructions they
//! need, as inline assembly (Rust's AMX intrinsics are not stable).
//!
//! One `tdpbsud` multiplies a 16 × 32 tile of signed activation bytes by a
//! 32 × 16 tile of unsigned weight bytes into 16 × 16 exact i32 sums, 8192
//! products in about 16 cycles, where AVX-512 VNNI does 64 a cycle. The
//! kernels use it for prompts (many activation rows at once) and keep the
//! same float arithmetic on the sums as their VNNI paths, so a row's result
//! has the same bits either way.
//!
//! "Tile" means the AMX tile registers only; the kernels' repacked weight
//! layouts are strips and x16 blocks ([`crate::layout`]).

pub(crate) mod strips;
pub(crate) mod x16;

/// Tile shapes as one `ldtilecfg` block (palette 1): per tile register, the
/// bytes per row and the rows.
#[repr(C, align(64))]
pub(crate) struct Config([u8; 64]);

impl Config {
    /// `tiles[t] = (rows, bytes per row)` for tiles `0..tiles.len()`.
    pub(crate) const fn new(tiles: &[(u8, u16)]) -> Config {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut t = 0;
        while t < tiles.len() {
            let (rows, colsb) = tiles[t];
            let b = colsb.to_le_bytes();
            c[16 + 2 * t] = b[0];
            c[17 + 2 * t] = b[1];
            c[48 + t] = rows;
            t += 1;
        }
        Config(c)
    }
}

/// An output matrix written by parallel tasks that each own some of its
/// elements (a band of columns).
pub(crate) struct Columns<'a>(*mut f32, usize, std::marker::PhantomData<&'a mut [f32]>);

// SAFETY: tasks write disjoint elements (`put`'s contract); the buffer is
// borrowed for as long as `Columns` lives.
unsafe impl Sync for Columns<'_> {}

impl<'a> Columns<'a> {
    pub(crate) fn new(out: &'a mut [f32]) -> Columns<'a> {
        Columns(out.as_mut_ptr(), out.len(), std::marker::PhantomData)
    }

    /// Writes `v` at `at`.
    ///
    /// # Safety
    /// No other task writes `at..at + v.len()` meanwhile.
    pub(crate) unsafe fn put(&self, at: usize, v: &[f32]) {
        assert!(at + v.len() <= self.1, "write past the output");
        // SAFETY: inside the buffer (asserted), written by this task alone
        // (the caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), self.0.add(at), v.len()) };
    }
}

/// Whether AMX-INT8 runs here: the CPU has it, the kernel granted this
/// process the tile data state, the kernels' AVX-512 VNNI epilogue runs,
/// and `LLMPM_NO_AMX` is not set (to compare paths). Asked once.
pub(crate) fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| std::env::var_os("LLMPM_NO_AMX").is_none() && detect())
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use std::arch::x86_64::__cpuid_count;
    if !crate::isa::Isa::best().vnni512() {
        return false;
    }
    let leaf7 = __cpuid_count(7, 0);
    let (tile, int8) = (leaf7.edx >> 24 & 1 == 1, leaf7.edx >> 25 & 1 == 1);
    if !(tile && int8) {
        return false;
    }
    // Linux hands out the 8 KiB of tile state only on request
    // (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA), once per process.
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes which xsave
    // features this process may use; it reads and writes no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    if r != 0 {
        tracing::debug!("AMX present but not granted by the kernel; using AVX-512");
    }
    r == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// The instructions, for callers that have checked [`available`]. Each is
/// `unsafe`: it needs AMX granted ([`available`]), a configuration loaded
/// on this thread ([`tiles::config`]) whose shapes fit the operands, and
/// pointers to as many readable or writable rows as the tile has.
#[cfg(target_arch = "x86_64")]
pub(crate) mod tiles {
    use std::arch::asm;

    use super::Config;

    /// Loads the tile shapes on this thread (zeroing every tile).
    #[inline(always)]
    pub(crate) unsafe fn config(c: &Config) {
        // SAFETY: the caller's contract; `c` is 64 readable bytes.
        unsafe { asm!("ldtilecfg [{0}]", in(reg) c.0.as_ptr(), options(nostack, readonly)) };
    }

    /// Frees this thread's tile state (so context switches save less).
    #[inline(always)]
    pub(crate) unsafe fn release() {
        // SAFETY: the caller's contract.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }

    /// Tile `T` from rows at `p`, `stride` bytes apart.
    #[inline(always)]
    pub(crate) unsafe fn load<const T: u8>(p: *const u8, stride: usize) {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("tileloadd tmm{t}, [{p} + {s} * 1]", t = const T, p = in(reg) p,
                 s = in(reg) stride, options(nostack, readonly))
        };
    }

    /// Tile `T` to rows at `p`, `stride` bytes apart.
    #[inline(always)]
    pub(crate) unsafe fn store<const T: u8>(p: *mut u8, stride: usize) {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("tilestored [{p} + {s} * 1], tmm{t}", t = const T, p = in(reg) p,
                 s = in(reg) stride, options(nostack))
        };
    }

    /// Tile `T` set to zero.
    #[inline(always)]
    pub(crate) unsafe fn zero<const T: u8>() {
        // SAFETY: the caller's contract.
        unsafe { asm!("tilezero tmm{t}", t = const T, options(nostack, nomem)) };
    }

    /// `C += A · B` with both A's bytes and B's signed, four at a time.
    #[inline(always)]
    pub(crate) unsafe fn dpbssd<const C: u8, const A: u8, const B: u8>() {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("tdpbssd tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A, b = const B,
                 options(nostack, nomem))
        };
    }

    /// `C += A · B` with A's bytes signed and B's unsigned, four at a time:
    /// `C[i][j] += Σ_k A[i][4k..4k+4] · B[k][4j..4j+4]`.
    #[inline(always)]
    pub(crate) unsafe fn dpbsud<const C: u8, const A: u8, const B: u8>() {
        // SAFETY: the caller's contract.
        unsafe {
            asm!("tdpbsud tmm{c}, tmm{a}, tmm{b}", c = const C, a = const A, b = const B,
                 options(nostack, nomem))
        };
    }
}
