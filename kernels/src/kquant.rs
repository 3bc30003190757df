//! Q4_K, Q5_K and Q6_K matrix products: activations quantized to Q8_K as
//! ggml does (blocks of 256, one f32 scale, the sums of each 16 and 32
//! quants), exact integer dot products per sub-block against the weights'
//! quants, scaled and summed in f32.
//!
//! Q4_K_M, Ollama's default quantization, is a mix of Q4_K and Q6_K (some
//! files carry Q5_K too). ggml's own kernel shape, one weight row against one
//! activation row with the scales applied per row, spends most of its
//! instructions on unpacking and scaling rather than multiplying; on this
//! project's machines it was three times slower than candle 0.11's tiled
//! kernel on prompts. So the weights are stored in tiles of `TILE` rows:
//! per super-block of 256 columns, each 64-byte vector holds four quants of
//! each of the 16 rows, and one `vpdpbusd` multiplies it by four activation
//! quants broadcast, 64 products into the 16 rows' sums at once. The bytes
//! are GGUF's own, taken four at a time from each row (nibbles stay packed);
//! only the 6-bit scales and mins of Q4_K and Q5_K are unpacked to bytes, and
//! Q6_K's `d` is converted to f32 (so that every tile is whole cache lines).
//!
//! Every path (AVX-512 VNNI, AVX2 with or without AVX-VNNI, portable, and
//! AMX for Q4_K prompts) does the same float operations in the same order on
//! the same exact integer sums, so one row's result has the same bits on
//! every CPU, alone or in a group of activation rows. Q4_K and Q6_K, as ggml
//! does, sum `isum = Σ_j scale_j · sumi_j` in integers (Q6_K with its
//! offset of 32 taken off each sub-block's sum) and take per super-block and
//! row `s = d · isum` (Q4_K: `− dmin · Σ_j min_j · bsum_j`, the mins' sum
//! exact in f32), then `acc += d_x · s`; the integer form lets AMX multiply
//! the scales into the weights. Q5_K scales each sub-block's sum in f32,
//! `s = Σ_j (d·scale_j)·sumi_j − …` (fused multiply-adds, sub-blocks in a
//! fixed order). Either differs from ggml only by rounding in the last bits
//! of f32.

use std::ops::Range;

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;

use super::matmul::{round_half_even, Isa, RowKernel};
use super::pages;

/// Values per super-block.
const QK_K: usize = 256;
/// Weight rows per tile: one 512-bit vector of i32 sums.
const TILE: usize = 16;
/// Bytes of a GGUF Q4_K block: f16 `d` and `dmin`, twelve bytes of 6-bit
/// scales and mins for the eight sub-blocks of 32, 128 bytes of nibbles.
const Q4K_BYTES: usize = 2 + 2 + 12 + QK_K / 2;
/// Bytes of a GGUF Q5_K block: Q4_K's, with the fifth bits (32 bytes) before
/// the nibbles.
const Q5K_BYTES: usize = Q4K_BYTES + QK_K / 8;
/// Bytes of a GGUF Q6_K block: 128 bytes of low nibbles, 64 of high two-bit
/// fields, sixteen i8 scales (one per 16 values), f16 `d`.
const Q6K_BYTES: usize = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2;

/// An activation row quantized like ggml's `quantize_row_q8_K`.
pub(super) struct Q8KRow {
    /// Per block: the scale.
    d: Vec<f32>,
    /// Per block: the 256 quants, four to a group (one broadcast dword).
    qs: Vec<[[i8; 4]; 64]>,
    /// Per block: the sum of each 32 quants (Q4_K's and Q5_K's sub-blocks),
    /// as f32 (exact).
    bsum32: Vec<[f32; 8]>,
    /// Per block: 32 times the sum of each 16 quants (Q6_K's sub-blocks and
    /// its quants' offset of 32).
    bsum16x32: Vec<[i32; 16]>,
}

fn quantize_q8k(x: &[f32]) -> Q8KRow {
    match Isa::best() {
        // SAFETY (both): `isa` only names instruction sets the CPU has.
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        Isa::Avx512Vnni => unsafe { quantize_avx512(x) },
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        Isa::Avx2 | Isa::AvxVnni => unsafe { quantize_avx2(x) },
        Isa::Portable => quantize_q8k_plain(x),
    }
}

/// [`quantize_q8k_plain`] vectorized by the compiler for AVX-512 (the same
/// integer results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn quantize_avx512(x: &[f32]) -> Q8KRow {
    quantize_q8k_plain(x)
}

/// [`quantize_q8k_plain`] vectorized by the compiler for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn quantize_avx2(x: &[f32]) -> Q8KRow {
    quantize_q8k_plain(x)
}

#[inline(always)]
fn quantize_q8k_plain(x: &[f32]) -> Q8KRow {
    let nb = x.len() / QK_K;
    let mut row = Q8KRow {
        d: Vec::with_capacity(nb),
        qs: Vec::with_capacity(nb),
        bsum32: Vec::with_capacity(nb),
        bsum16x32: Vec::with_capacity(nb),
    };
    for block in x.chunks_exact(QK_K) {
        // The value of largest magnitude, the first one on ties, maps to
        // -127, so the other end may reach 127 only (ggml's choice). The
        // magnitude first, in eight lanes the compiler vectorizes, then the
        // value that has it.
        let mut lanes = [0.0f32; 8];
        for c in block.chunks_exact(8) {
            for (l, v) in lanes.iter_mut().zip(c) {
                if v.abs() > *l {
                    *l = v.abs();
                }
            }
        }
        let amax = lanes.iter().fold(0.0f32, |m, &a| if a > m { a } else { m });
        let max = block
            .iter()
            .copied()
            .find(|v| v.abs() == amax)
            .unwrap_or(0.0);
        let mut qs = [[0i8; 4]; 64];
        if amax == 0.0 {
            row.d.push(0.0);
        } else {
            let iscale = -127.0 / max;
            for (q, v) in qs.as_flattened_mut().iter_mut().zip(block) {
                *q = round_half_even(iscale * v).min(127) as i8;
            }
            row.d.push(1.0 / iscale);
        }
        let flat = qs.as_flattened();
        let sum = |r: Range<usize>| flat[r].iter().map(|&v| i32::from(v)).sum::<i32>();
        row.bsum32
            .push(std::array::from_fn(|j| sum(32 * j..32 * j + 32) as f32));
        row.bsum16x32
            .push(std::array::from_fn(|j| 32 * sum(16 * j..16 * j + 16)));
        row.qs.push(qs);
    }
    row
}

/// The activation quants `4g..4g + 4` of block `b` as one little-endian
/// dword, for a broadcast.
#[inline(always)]
fn dword(x: &Q8KRow, b: usize, g: usize) -> i32 {
    i32::from_le_bytes(x.qs[b][g].map(|v| v as u8))
}

/// 16 rows × 256 columns of Q4_K. Bytes `4r..4r + 4` of `qs[v]` are GGUF
/// bytes `4v..4v + 4` of row `r`'s block, so with `v = 8c + g` the low
/// nibbles are the row's values `64c + 4g..` (sub-block `2c`) and the high
/// ones `64c + 32 + 4g..` (sub-block `2c + 1`). Each 64 bytes split in two
/// halves of eight rows for 256-bit vectors.
#[derive(Clone, Copy, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Q4Tile {
    qs: [[[u8; 32]; 2]; 32],
    /// `sc[j]`: sub-block `j`'s scale for each row.
    sc: [[[u8; 8]; 2]; 8],
    /// `m[j]`: sub-block `j`'s min for each row.
    m: [[[u8; 8]; 2]; 8],
    d: [[f16; 8]; 2],
    dmin: [[f16; 8]; 2],
}

/// [`Q4Tile`] with Q5_K's fifth bits: bytes `4r..4r + 4` of `qh[g]` are
/// GGUF's `qh` bytes `4g..4g + 4` of row `r`, where bit `j` belongs to
/// sub-block `j`: bits `2c` and `2c + 1` complete the nibbles of `qs[8c + g]`.
#[derive(Clone, Copy, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Q5Tile {
    qs: [[[u8; 32]; 2]; 32],
    qh: [[[u8; 32]; 2]; 8],
    sc: [[[u8; 8]; 2]; 8],
    m: [[[u8; 8]; 2]; 8],
    d: [[f16; 8]; 2],
    dmin: [[f16; 8]; 2],
}

/// 16 rows × 256 columns of Q6_K: `ql[v]` holds GGUF's `ql` bytes
/// `4v..4v + 4` of each row and `qh[u]` its `qh` bytes `4u..4u + 4`. With
/// `v = 16h + 8a + l` (`l` < 8), the low nibbles of `ql[v]` are the row's
/// values `128h + 32a + 4l..` and take bits `2a..2a + 2` of `qh[8h + l]` on
/// top, the high nibbles are the values 64 further and take bits
/// `2a + 4..2a + 6`.
#[derive(Clone, Copy, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Q6Tile {
    ql: [[[u8; 32]; 2]; 32],
    qh: [[[u8; 32]; 2]; 16],
    /// `sc[j]`: sub-block `j`'s (16 values) scale for each row.
    sc: [[[i8; 8]; 2]; 16],
    d: [[f32; 8]; 2],
}

enum Tiles {
    Q4K(pages::Zeroed<Q4Tile>),
    Q5K(pages::Zeroed<Q5Tile>),
    Q6K(pages::Zeroed<Q6Tile>),
}

/// A Q4_K, Q5_K or Q6_K weight matrix `(n, k)` in tiles: tile `t`'s
/// super-blocks are `tiles[t * k / 256..]`, rows past `n` zero.
pub(super) struct KMatrix {
    n: usize,
    k: usize,
    tiles: Tiles,
}

impl std::fmt::Debug for KMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KMatrix")
            .field("format", &self.name())
            .field("n", &self.n)
            .field("k", &self.k)
            .finish_non_exhaustive()
    }
}

fn f16_at(b: &[u8], at: usize) -> f16 {
    f16::from_le_bytes([b[at], b[at + 1]])
}

/// Q4_K's and Q5_K's twelve bytes of 6-bit scales and mins as two times
/// eight: bytes 0..4 hold scales 0..4 and bytes 4..8 mins 0..4 in their low
/// six bits; bytes 8..12 hold the low four bits of scale and min `j` (4..8)
/// in their low and high nibble, and the top two bits of both are in the top
/// two bits of bytes `j - 4` (scale) and `j` (min).
fn unpack_scales(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut m) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
        sc[4 + j] = (s[j + 8] & 0x0F) | ((s[j] >> 6) << 4);
        m[4 + j] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
    }
    (sc, m)
}

/// Row `r`'s scale, min scale and 6-bit sub-block scales and mins of a
/// Q4_K or Q5_K block `b` (the same first 16 bytes in both) into a tile.
fn put_header(
    d: &mut [[f16; 8]; 2],
    dmin: &mut [[f16; 8]; 2],
    sc: &mut [[[u8; 8]; 2]; 8],
    m: &mut [[[u8; 8]; 2]; 8],
    r: usize,
    b: &[u8],
) {
    d[r / 8][r % 8] = f16_at(b, 0);
    dmin[r / 8][r % 8] = f16_at(b, 2);
    let (s, mins) = unpack_scales(&b[4..16]);
    for j in 0..8 {
        sc[j][r / 8][r % 8] = s[j];
        m[j][r / 8][r % 8] = mins[j];
    }
}

/// Copies four bytes of each row into the rows' lanes of a 64-byte vector.
fn put4(v: &mut [[u8; 32]; 2], r: usize, src: &[u8]) {
    v[r / 8][4 * (r % 8)..4 * (r % 8) + 4].copy_from_slice(&src[..4]);
}

/// Tiles `(n, k)` GGUF blocks of `block_bytes`; `fill(tile, r, block)`
/// copies row `r`'s block into a tile (rows past `n` stay zero). After
/// each group of tiles, `done` is told the range of `data` it has finished.
fn tile_blocks<T: bytemuck::Zeroable + Send + Sync>(
    data: &[u8],
    n: usize,
    k: usize,
    block_bytes: usize,
    fill: impl Fn(&mut T, usize, &[u8]) + Sync,
    done: &mut dyn FnMut(Range<usize>),
) -> candle_core::Result<pages::Zeroed<T>> {
    use rayon::prelude::*;
    let nb = k / QK_K;
    let tiles = n.div_ceil(TILE);
    let row_bytes = nb * block_bytes;
    let mut out = pages::Zeroed::new(tiles * nb)?;
    let group = pages::group_units(TILE * row_bytes);
    for (g, part) in out.chunks_mut(group * nb).enumerate() {
        let first = g * group;
        // Large matrices load in parallel: this is all the loading work.
        part.par_chunks_mut(nb).enumerate().for_each(|(i, row)| {
            let t = first + i;
            for r in 0..TILE.min(n - t * TILE) {
                let at = (t * TILE + r) * row_bytes;
                for (b, tile) in row.iter_mut().enumerate() {
                    fill(
                        tile,
                        r,
                        &data[at + b * block_bytes..at + (b + 1) * block_bytes],
                    );
                }
            }
        });
        let end = ((first + group) * TILE).min(n);
        done(first * TILE * row_bytes..end * row_bytes);
    }
    Ok(out)
}

impl KMatrix {
    /// Whether this kernel multiplies `t`'s type.
    pub(super) fn handles(t: &QTensor) -> bool {
        matches!(t.dtype(), GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K)
    }

    /// Copies a Q4_K, Q5_K or Q6_K `QTensor` of shape `(n, k)` into tiles.
    pub(super) fn from_qtensor(t: &QTensor) -> candle_core::Result<KMatrix> {
        let (n, k) = t.shape().dims2()?;
        KMatrix::from_bytes(t.dtype(), n, k, &t.data()?, &mut |_| {})
    }

    /// Bytes of a `(n, k)` matrix of `dtype` in the file, for the types
    /// this kernel takes.
    pub(super) fn file_bytes(dtype: GgmlDType, n: usize, k: usize) -> Option<usize> {
        let block = match dtype {
            GgmlDType::Q4K => Q4K_BYTES,
            GgmlDType::Q5K => Q5K_BYTES,
            GgmlDType::Q6K => Q6K_BYTES,
            _ => return None,
        };
        n.checked_mul(k / QK_K)?.checked_mul(block)
    }

    /// Tiles a `(n, k)` Q4_K, Q5_K or Q6_K matrix from its bytes in a GGUF
    /// file (rows of super-blocks); `done` is told each range of `data` it
    /// has finished with.
    pub(super) fn from_bytes(
        dtype: GgmlDType,
        n: usize,
        k: usize,
        data: &[u8],
        done: &mut dyn FnMut(Range<usize>),
    ) -> candle_core::Result<KMatrix> {
        if !k.is_multiple_of(QK_K) || k == 0 {
            candle_core::bail!("{dtype:?} rows of {k} values are not whole blocks");
        }
        let Some(expected) = KMatrix::file_bytes(dtype, n, k) else {
            candle_core::bail!("no K-quant kernel for {dtype:?}");
        };
        if data.len() != expected {
            candle_core::bail!(
                "{dtype:?} data is {} bytes, expected {expected}",
                data.len()
            );
        }
        let tiles = match dtype {
            GgmlDType::Q4K => Tiles::Q4K(tile_blocks::<Q4Tile>(
                data,
                n,
                k,
                Q4K_BYTES,
                |t, r, b| {
                    put_header(&mut t.d, &mut t.dmin, &mut t.sc, &mut t.m, r, b);
                    for (v, q) in t.qs.iter_mut().enumerate() {
                        put4(q, r, &b[16 + 4 * v..]);
                    }
                },
                done,
            )?),
            GgmlDType::Q5K => Tiles::Q5K(tile_blocks::<Q5Tile>(
                data,
                n,
                k,
                Q5K_BYTES,
                |t, r, b| {
                    put_header(&mut t.d, &mut t.dmin, &mut t.sc, &mut t.m, r, b);
                    for (g, q) in t.qh.iter_mut().enumerate() {
                        put4(q, r, &b[16 + 4 * g..]);
                    }
                    for (v, q) in t.qs.iter_mut().enumerate() {
                        put4(q, r, &b[48 + 4 * v..]);
                    }
                },
                done,
            )?),
            _ => Tiles::Q6K(tile_blocks::<Q6Tile>(
                data,
                n,
                k,
                Q6K_BYTES,
                |t, r, b| {
                    for (v, q) in t.ql.iter_mut().enumerate() {
                        put4(q, r, &b[4 * v..]);
                    }
                    for (u, q) in t.qh.iter_mut().enumerate() {
                        put4(q, r, &b[128 + 4 * u..]);
                    }
                    for j in 0..16 {
                        t.sc[j][r / 8][r % 8] = b[192 + j] as i8;
                    }
                    t.d[r / 8][r % 8] = f16_at(b, 208).to_f32();
                },
                done,
            )?),
        };
        Ok(KMatrix { n, k, tiles })
    }

    /// Tile `t` times `G` activation rows on `isa`: one result per row of the
    /// tile.
    fn dot_tile<const G: usize>(&self, isa: Isa, t: usize, xs: [&Q8KRow; G]) -> [[f32; TILE]; G] {
        let nb = self.k / QK_K;
        let span = t * nb..(t + 1) * nb;
        for x in xs {
            assert!(x.d.len() == nb && x.qs.len() == nb);
            assert!(x.bsum32.len() == nb && x.bsum16x32.len() == nb);
        }
        macro_rules! on {
            ($tiles:expr, $f:ident) => {{
                let tiles = &$tiles[span];
                match isa {
                    Isa::Portable => portable::$f(tiles, xs),
                    // SAFETY (all three): `isa` only names instruction sets
                    // the CPU has (`Isa::available`).
                    #[cfg(target_arch = "x86_64")]
                    #[allow(unsafe_code)]
                    Isa::Avx2 => unsafe { avx2::$f(tiles, xs) },
                    #[cfg(target_arch = "x86_64")]
                    #[allow(unsafe_code)]
                    Isa::AvxVnni => unsafe { avxvnni::$f(tiles, xs) },
                    #[cfg(target_arch = "x86_64")]
                    #[allow(unsafe_code)]
                    Isa::Avx512Vnni => unsafe { avx512::$f(tiles, xs) },
                }
            }};
        }
        match &self.tiles {
            Tiles::Q4K(tiles) => on!(tiles, q4k),
            Tiles::Q5K(tiles) => on!(tiles, q5k),
            Tiles::Q6K(tiles) => on!(tiles, q6k),
        }
    }

    fn dot_band_on(&self, isa: Isa, rows: Range<usize>, xs: &[&Q8KRow], out: &mut [f32]) {
        assert!(
            rows.start.is_multiple_of(TILE)
                && rows.end <= self.n
                && out.len() == xs.len() * rows.len()
        );
        let len = rows.len();
        for (t0, o) in (rows.start..rows.end).step_by(TILE).zip(0..) {
            let t = t0 / TILE;
            let cols = TILE.min(rows.end - t0);
            let mut put = |i: usize, tile: &[f32; TILE]| {
                out[i * len + o * TILE..i * len + o * TILE + cols].copy_from_slice(&tile[..cols]);
            };
            if let &[a, b, c, d] = xs {
                for (i, tile) in self.dot_tile(isa, t, [a, b, c, d]).iter().enumerate() {
                    put(i, tile);
                }
            } else {
                for (i, x) in xs.iter().enumerate() {
                    put(i, &self.dot_tile(isa, t, [*x])[0]);
                }
            }
        }
    }
}

impl RowKernel for KMatrix {
    type Act = Q8KRow;

    fn n(&self) -> usize {
        self.n
    }

    fn k(&self) -> usize {
        self.k
    }

    fn name(&self) -> &'static str {
        match self.tiles {
            Tiles::Q4K(_) => "Q4_K",
            Tiles::Q5K(_) => "Q5_K",
            Tiles::Q6K(_) => "Q6_K",
        }
    }

    fn quantize(&self, x: &[f32]) -> Q8KRow {
        quantize_q8k(x)
    }

    fn dot_band(&self, rows: Range<usize>, xs: &[&Q8KRow], out: &mut [f32]) {
        self.dot_band_on(Isa::best(), rows, xs, out);
    }

    fn forward_many(&self, xs: &[Q8KRow], out: &mut [f32]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if super::amx::available() {
            match &self.tiles {
                Tiles::Q4K(tiles) => blocks::q4k(tiles, self.n, self.k, xs, out),
                Tiles::Q6K(tiles) => blocks::q6k(tiles, self.n, self.k, xs, out),
                Tiles::Q5K(_) => return false,
            }
            return true;
        }
        let _ = (xs, out);
        false
    }
}

/// The reference arithmetic in plain Rust, lane by lane, for CPUs without
/// the SIMD paths; the SIMD paths do exactly this on 8 or 16 lanes at once.
mod portable {
    use super::{dword, Q4Tile, Q5Tile, Q6Tile, Q8KRow, TILE};

    /// `Σ_e w[e]·x[e]` over one group of four.
    fn dot4(w: [u8; 4], x: i32) -> i32 {
        let x = x.to_le_bytes();
        (0..4)
            .map(|e| i32::from(w[e]) * i32::from(x[e] as i8))
            .sum()
    }

    /// Row `r`'s four bytes in vector `v`.
    fn four(v: &[[u8; 32]; 2], r: usize) -> [u8; 4] {
        let at = 4 * (r % 8);
        std::array::from_fn(|e| v[r / 8][at + e])
    }

    fn lane<T: Copy>(v: &[[T; 8]; 2], r: usize) -> T {
        v[r / 8][r % 8]
    }

    pub(super) fn q4k<const G: usize>(tiles: &[Q4Tile], xs: [&Q8KRow; G]) -> [[f32; TILE]; G] {
        std::array::from_fn(|i| {
            std::array::from_fn(|r| {
                let x = xs[i];
                let mut acc = 0.0f32;
                for (b, t) in tiles.iter().enumerate() {
                    let (d, dmin) = (lane(&t.d, r).to_f32(), lane(&t.dmin, r).to_f32());
                    let mut isum = 0i32;
                    for c in 0..4 {
                        let (mut i0, mut i1) = (0, 0);
                        for g in 0..8 {
                            let w = four(&t.qs[8 * c + g], r);
                            i0 += dot4(w.map(|q| q & 0x0F), dword(x, b, 16 * c + g));
                            i1 += dot4(w.map(|q| q >> 4), dword(x, b, 16 * c + 8 + g));
                        }
                        let sc = |j: usize| i32::from(lane(&t.sc[j], r));
                        isum += sc(2 * c) * i0 + sc(2 * c + 1) * i1;
                    }
                    let mut fm = 0.0f32;
                    for j in 0..8 {
                        fm = f32::from(lane(&t.m[j], r)).mul_add(x.bsum32[b][j], fm);
                    }
                    let s = d.mul_add(isum as f32, -(dmin * fm));
                    acc = x.d[b].mul_add(s, acc);
                }
                acc
            })
        })
    }

    pub(super) fn q5k<const G: usize>(tiles: &[Q5Tile], xs: [&Q8KRow; G]) -> [[f32; TILE]; G] {
        std::array::from_fn(|i| {
            std::array::from_fn(|r| {
                let x = xs[i];
                let mut acc = 0.0f32;
                for (b, t) in tiles.iter().enumerate() {
                    let (d, dmin) = (lane(&t.d, r).to_f32(), lane(&t.dmin, r).to_f32());
                    let mut s = 0.0f32;
                    for c in 0..4 {
                        let (mut i0, mut i1) = (0, 0);
                        for g in 0..8 {
                            let w = four(&t.qs[8 * c + g], r);
                            let h = four(&t.qh[g], r);
                            let lo = std::array::from_fn(|e| {
                                (w[e] & 0x0F) | (((h[e] >> (2 * c)) & 1) << 4)
                            });
                            let hi = std::array::from_fn(|e| {
                                (w[e] >> 4) | (((h[e] >> (2 * c + 1)) & 1) << 4)
                            });
                            i0 += dot4(lo, dword(x, b, 16 * c + g));
                            i1 += dot4(hi, dword(x, b, 16 * c + 8 + g));
                        }
                        let sc = |j: usize| d * f32::from(lane(&t.sc[j], r));
                        s = sc(2 * c).mul_add(i0 as f32, s);
                        s = sc(2 * c + 1).mul_add(i1 as f32, s);
                    }
                    for j in 0..8 {
                        let dm = dmin * f32::from(lane(&t.m[j], r));
                        s = (-dm).mul_add(x.bsum32[b][j], s);
                    }
                    acc = x.d[b].mul_add(s, acc);
                }
                acc
            })
        })
    }

    pub(super) fn q6k<const G: usize>(tiles: &[Q6Tile], xs: [&Q8KRow; G]) -> [[f32; TILE]; G] {
        std::array::from_fn(|i| {
            std::array::from_fn(|r| {
                let x = xs[i];
                let mut acc = 0.0f32;
                for (b, t) in tiles.iter().enumerate() {
                    let d = lane(&t.d, r);
                    let mut isum = 0i32;
                    for (h, a, q) in super::Q6_ORDER {
                        let (mut i0, mut i1) = (0, 0);
                        for l in 4 * q..4 * q + 4 {
                            let w = four(&t.ql[16 * h + 8 * a + l], r);
                            let hb = four(&t.qh[8 * h + l], r);
                            let lo = std::array::from_fn(|e| {
                                (w[e] & 0x0F) | (((hb[e] >> (2 * a)) & 3) << 4)
                            });
                            let hi = std::array::from_fn(|e| {
                                (w[e] >> 4) | (((hb[e] >> (2 * a + 4)) & 3) << 4)
                            });
                            let g = 32 * h + 8 * a + l;
                            i0 += dot4(lo, dword(x, b, g));
                            i1 += dot4(hi, dword(x, b, g + 16));
                        }
                        let j = 8 * h + 2 * a + q;
                        let sc = |j: usize| i32::from(lane(&t.sc[j], r));
                        isum += sc(j) * (i0 - x.bsum16x32[b][j]);
                        isum += sc(j + 4) * (i1 - x.bsum16x32[b][j + 4]);
                    }
                    acc = x.d[b].mul_add(d * isum as f32, acc);
                }
                acc
            })
        })
    }
}

/// Q6_K's sub-block pairs `(h, a, q)` in the order every path sums them:
/// sub-blocks `8h + 2a + q` and 4 more, which share their `ql` bytes.
const Q6_ORDER: [(usize, usize, usize); 8] = [
    (0, 0, 0),
    (0, 0, 1),
    (0, 1, 0),
    (0, 1, 1),
    (1, 0, 0),
    (1, 0, 1),
    (1, 1, 0),
    (1, 1, 1),
];

/// Tiles ahead of the one in use whose lines the row kernels ask for: the
/// hardware prefetcher stops at each 4 KiB page, and decoding streams the
/// weights (measured: a 1B Q4_K_M decode step 72 → 50 ms; 1 to 4 tiles
/// ahead alike, 8 worse).
#[cfg(target_arch = "x86_64")]
const AHEAD: usize = 2;

/// Loads of exactly-sized arrays, for both SIMD modules.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod load {
    use std::arch::x86_64::*;

    /// The bytes of `v`, which must be exactly `N` of them (checked at
    /// compile time).
    macro_rules! loader {
        ($name:ident, $n:literal, $ty:ty, $load:ident, $features:literal) => {
            #[target_feature(enable = $features)]
            pub(super) fn $name<T: Copy>(v: &T) -> $ty {
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
}

/// Whole tiles in 512-bit vectors.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use std::arch::x86_64::*;

    use super::load::{ld128, ld256, ld512, ld512f};
    use super::{Q4Tile, Q5Tile, Q6Tile, Q8KRow, AHEAD, Q6_ORDER, TILE};
    use crate::matmul::prefetch;

    /// ternlog's table for `(a & c) | b`: a byte's bits from `a` where the
    /// mask `c` is set, or'ed with `b` (zero there).
    const A_AND_C_OR_B: i32 = 0xEC;

    /// The group-of-four dword `g` of an activation block, broadcast.
    #[target_feature(enable = "avx512f")]
    fn bcast(q: &[[i8; 4]; 64], g: usize) -> __m512i {
        _mm512_set1_epi32(i32::from_le_bytes(q[g].map(|v| v as u8)))
    }

    #[target_feature(enable = "avx512f")]
    fn u8s(v: &[[u8; 8]; 2]) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(ld128(v)))
    }

    #[target_feature(enable = "avx512f")]
    fn f16s(v: &[[half::f16; 8]; 2]) -> __m512 {
        _mm512_cvtph_ps(ld256(v))
    }

    #[target_feature(enable = "avx512f")]
    fn store<const G: usize>(acc: [__m512; G]) -> [[f32; TILE]; G] {
        let mut out = [[0.0f32; TILE]; G];
        for (o, a) in out.iter_mut().zip(acc) {
            // SAFETY: `o` is 16 writable f32.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr(), a) };
        }
        out
    }

    /// The part of Q4_K and Q5_K after the sub-block sums: the mins, then
    /// the super-block into `acc`.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    fn finish45<const G: usize>(
        m: &[[[u8; 8]; 2]; 8],
        dmin: __m512,
        xs: [&Q8KRow; G],
        b: usize,
        s: &mut [__m512; G],
        acc: &mut [__m512; G],
    ) {
        for (j, m) in m.iter().enumerate() {
            let dm = _mm512_mul_ps(dmin, u8s(m));
            for r in 0..G {
                s[r] = _mm512_fnmadd_ps(dm, _mm512_set1_ps(xs[r].bsum32[b][j]), s[r]);
            }
        }
        for r in 0..G {
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(xs[r].d[b]), s[r], acc[r]);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn q4k<const G: usize>(tiles: &[Q4Tile], xs: [&Q8KRow; G]) -> [[f32; TILE]; G] {
        let low = _mm512_set1_epi8(0x0F);
        let high = _mm512_set1_epi8(0xF0u8 as i8);
        let mut acc = [_mm512_setzero_ps(); G];
        for (b, t) in tiles.iter().enumerate() {
            if let Some(next) = tiles.get(b + AHEAD) {
                prefetch(next);
            }
            let xq: [&[[i8; 4]; 64]; G] = std::array::from_fn(|r| &xs[r].qs[b]);
            let mut isum = [_mm512_setzero_si512(); G];
            for c in 0..4 {
                let mut i0 = [_mm512_setzero_si512(); G];
                let mut i1 = [_mm512_setzero_si512(); G];
                for g in 0..8 {
                    let q = ld512(&t.qs[8 * c + g]);
                    let lo = _mm512_and_si512(q, low);
                    // The high nibbles left in place are 16 times their
                    // value; vpdpbusd sums them without overflow (no i16
                    // step) and the scale below takes the 16 back, exactly.
                    let hi = _mm512_and_si512(q, high);
                    for r in 0..G {
                        i0[r] = _mm512_dpbusd_epi32(i0[r], lo, bcast(xq[r], 16 * c + g));
                        i1[r] = _mm512_dpbusd_epi32(i1[r], hi, bcast(xq[r], 16 * c + 8 + g));
                    }
                }
                let sc0 = _mm512_cvtepu8_epi32(ld128(&t.sc[2 * c]));
                let sc1 = _mm512_cvtepu8_epi32(ld128(&t.sc[2 * c + 1]));
                for r in 0..G {
                    let v0 = _mm512_mullo_epi32(sc0, i0[r]);
                    // i1 holds 16 times the sums: exact to shift back.
                    let v1 = _mm512_mullo_epi32(sc1, _mm512_srai_epi32(i1[r], 4));
                    isum[r] = _mm512_add_epi32(isum[r], _mm512_add_epi32(v0, v1));
                }
            }
            finish4(t, xs, b, &isum, &mut acc);
        }
        store(acc)
    }

    /// Q4_K's super-block from the scaled integer sums `isum`: the mins
    /// (exact in f32: each `m · bsum` and their sum are below 2^24), then
    /// `d · isum − dmin · mins` into `acc`, in [`super::portable`]'s order.
    #[target_feature(enable = "avx512f")]
    fn finish4<const G: usize>(
        t: &Q4Tile,
        xs: [&Q8KRow; G],
        b: usize,
        isum: &[__m512i; G],
        acc: &mut [__m512; G],
    ) {
        let (d, dmin) = (f16s(&t.d), f16s(&t.dmin));
        let m: [__m512; 8] = std::array::from_fn(|j| u8s(&t.m[j]));
        for r in 0..G {
            let mut fm = _mm512_setzero_ps();
            for (j, m) in m.iter().enumerate() {
                fm = _mm512_fmadd_ps(*m, _mm512_set1_ps(xs[r].bsum32[b][j]), fm);
            }
            let s = _mm512_fmsub_ps(d, _mm512_cvtepi32_ps(isum[r]), _mm512_mul_ps(dmin, fm));
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(xs[r].d[b]), s, acc[r]);
        }
    }

    /// The four 16 × 16 sums of a block: low and high bytes' products for
    /// activation group 0, then for group 1.
    #[repr(C, align(64))]
    struct Sums([[[i32; 16]; 16]; 4]);

    impl Sums {
        /// Group `g`, row `r`: low plus 256 times high.
        #[target_feature(enable = "avx512f")]
        fn isum(&self, g: usize, r: usize) -> __m512i {
            let (lo, hi) = (&self.0[2 * g][r], &self.0[2 * g + 1][r]);
            _mm512_add_epi32(ld512(lo), _mm512_slli_epi32(ld512(hi), 8))
        }
    }

    /// The tile work the K-quant kernels share: per block `b`, the low and
    /// the high bytes' products of two activation groups (`tdpbssd` for
    /// the high bytes when `SIGNED_HI`), into tiles 3 to 6, then
    /// `finish(b, sums)`; the next block's products start before `finish`
    /// runs, so the tile unit works while the vector units finish.
    ///
    /// # Safety
    /// AMX is granted and `blocks::CONFIG` loaded on this thread.
    #[inline(always)]
    unsafe fn amx_blocks<const SIGNED_HI: bool>(
        nb: usize,
        b_tiles: &[[[[u8; 64]; 16]; 2]],
        a: [&[[[i8; 64]; 16]]; 2],
        mut finish: impl FnMut(usize, &Sums),
    ) {
        use crate::amx::tiles as tmm;
        assert!(b_tiles.len() >= 4 * nb && a[0].len() >= 4 * nb && a[1].len() >= 4 * nb);
        /// Starts block `b`'s products.
        #[inline(always)]
        unsafe fn issue<const SIGNED_HI: bool>(
            b_tiles: &[[[[u8; 64]; 16]; 2]],
            a: [&[[[i8; 64]; 16]]; 2],
            b: usize,
        ) {
            // SAFETY: the caller loaded the shapes; each load reads the 16
            // rows of 64 bytes of one entry of `a` or `b_tiles` (asserted).
            unsafe {
                tmm::zero::<3>();
                tmm::zero::<4>();
                tmm::zero::<5>();
                tmm::zero::<6>();
                for h in 0..4 {
                    tmm::load::<1>(b_tiles[4 * b + h][0].as_ptr().cast(), 64);
                    tmm::load::<2>(b_tiles[4 * b + h][1].as_ptr().cast(), 64);
                    tmm::load::<0>(a[0][4 * b + h].as_ptr().cast(), 64);
                    tmm::load::<7>(a[1][4 * b + h].as_ptr().cast(), 64);
                    tmm::dpbsud::<3, 0, 1>();
                    tmm::dpbsud::<5, 7, 1>();
                    if SIGNED_HI {
                        tmm::dpbssd::<4, 0, 2>();
                        tmm::dpbssd::<6, 7, 2>();
                    } else {
                        tmm::dpbsud::<4, 0, 2>();
                        tmm::dpbsud::<6, 7, 2>();
                    }
                }
            }
        }
        let mut sums = Sums([[[0; 16]; 16]; 4]);
        if nb > 0 {
            // SAFETY: the caller's contract; block 0 exists.
            unsafe { issue::<SIGNED_HI>(b_tiles, a, 0) };
        }
        for b in 0..nb {
            // SAFETY: the caller loaded the shapes; each store writes 16
            // rows of 64 bytes inside `sums`.
            unsafe {
                tmm::store::<3>(sums.0[0].as_mut_ptr().cast(), 64);
                tmm::store::<4>(sums.0[1].as_mut_ptr().cast(), 64);
                tmm::store::<5>(sums.0[2].as_mut_ptr().cast(), 64);
                tmm::store::<6>(sums.0[3].as_mut_ptr().cast(), 64);
            }
            if b + 1 < nb {
                // SAFETY: as above.
                unsafe { issue::<SIGNED_HI>(b_tiles, a, b + 1) };
            }
            finish(b, &sums);
        }
    }

    /// [`q4k`] for 32 activation rows (two groups of 16) at once on AMX.
    /// The weights come with their sub-block scales multiplied in (`sc ·
    /// q` < 1024, split into a low byte and the bits above it, as
    /// `super::blocks` unpacks them), so per super-block sixteen `tdpbsud`
    /// give `q4k`'s `isum` for 32 × 16 outputs, exactly; then `finish4`'s
    /// operations. Each A tile feeds two products and each B tile two,
    /// into four independent sums. `a[g]` holds group `g`'s quants as A
    /// tiles (per block, four of 64 columns), `b_tiles` per block four
    /// pairs (low, high) of B tiles, `bsum[g][b]` the groups' sums of 32
    /// quants by sub-block and row, `dx[g][b]` their scales by row.
    ///
    /// # Safety
    /// AMX is granted and `blocks::CONFIG` loaded on this thread.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn q4k_amx(
        tiles: &[Q4Tile],
        b_tiles: &[[[[u8; 64]; 16]; 2]],
        a: [&[[[i8; 64]; 16]]; 2],
        bsum: [&[[[f32; 16]; 8]]; 2],
        dx: [&[[f32; 16]]; 2],
    ) -> [[[f32; TILE]; 16]; 2] {
        let nb = tiles.len();
        for g in 0..2 {
            assert!(bsum[g].len() >= nb && dx[g].len() >= nb);
        }
        let mut acc = [[_mm512_setzero_ps(); 16]; 2];
        // SAFETY: the caller's contract.
        unsafe {
            amx_blocks::<false>(nb, b_tiles, a, |b, sums| {
                let t = &tiles[b];
                // `finish4`, with the sums of 32 quants laid out by row.
                let (d, dmin) = (f16s(&t.d), f16s(&t.dmin));
                let m: [__m512; 8] = std::array::from_fn(|j| u8s(&t.m[j]));
                for g in 0..2 {
                    let bs = &bsum[g][b];
                    for r in 0..16 {
                        let isum = sums.isum(g, r);
                        let mut fm = _mm512_setzero_ps();
                        for (j, m) in m.iter().enumerate() {
                            fm = _mm512_fmadd_ps(*m, _mm512_set1_ps(bs[j][r]), fm);
                        }
                        let s =
                            _mm512_fmsub_ps(d, _mm512_cvtepi32_ps(isum), _mm512_mul_ps(dmin, fm));
                        acc[g][r] = _mm512_fmadd_ps(_mm512_set1_ps(dx[g][b][r]), s, acc[g][r]);
                    }
                }
            });
        }
        [store(acc[0]), store(acc[1])]
    }

    /// [`q6k`] for 32 activation rows (two groups of 16) at once on AMX,
    /// as [`q4k_amx`]: the weights come with their sub-block scales
    /// multiplied in (`scale · q` in i16, split into an unsigned low byte
    /// and a signed high one, `tdpbssd` for the latter), the offset of 32
    /// from the rows' sums of 16 (exact in f32), then `q6k`'s operations.
    /// `bsum[g][b][j]` holds the sums of 16 quants of sub-block `j` by row.
    ///
    /// # Safety
    /// AMX is granted and `blocks::CONFIG` loaded on this thread.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn q6k_amx(
        tiles: &[Q6Tile],
        b_tiles: &[[[[u8; 64]; 16]; 2]],
        a: [&[[[i8; 64]; 16]]; 2],
        bsum: [&[[[f32; 16]; 16]]; 2],
        dx: [&[[f32; 16]]; 2],
    ) -> [[[f32; TILE]; 16]; 2] {
        let nb = tiles.len();
        for g in 0..2 {
            assert!(bsum[g].len() >= nb && dx[g].len() >= nb);
        }
        let mut acc = [[_mm512_setzero_ps(); 16]; 2];
        // SAFETY: the caller's contract.
        unsafe {
            amx_blocks::<true>(nb, b_tiles, a, |b, sums| {
                let t = &tiles[b];
                let d = ld512f(&t.d);
                let sc: [__m512; 16] = std::array::from_fn(|j| {
                    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(ld128(&t.sc[j])))
                });
                for g in 0..2 {
                    let bs = &bsum[g][b];
                    for r in 0..16 {
                        // Σ_j scale_j · (sum of 16), exact: each term below 2^18.
                        let mut off = _mm512_setzero_ps();
                        for (j, sc) in sc.iter().enumerate() {
                            off = _mm512_fmadd_ps(*sc, _mm512_set1_ps(bs[j][r]), off);
                        }
                        let off = _mm512_slli_epi32(_mm512_cvtps_epi32(off), 5);
                        let isum = _mm512_sub_epi32(sums.isum(g, r), off);
                        let s = _mm512_mul_ps(d, _mm512_cvtepi32_ps(isum));
                        acc[g][r] = _mm512_fmadd_ps(_mm512_set1_ps(dx[g][b][r]), s, acc[g][r]);
                    }
                }
            });
        }
        [store(acc[0]), store(acc[1])]
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn q5k<const G: usize>(tiles: &[Q5Tile], xs: [&Q8KRow; G]) -> [[f32; TILE]; G] {
        let low = _mm512_set1_epi8(0x0F);
        let bit4 = _mm512_set1_epi8(0x10);
        let mut acc = [_mm512_setzero_ps(); G];
        for (b, t) in tiles.iter().enumerate() {
            if let Some(next) = tiles.get(b + AHEAD) {
                prefetch(next);
            }
            let xq: [&[[i8; 4]; 64]; G] = std::array::from_fn(|r| &xs[r].qs[b]);
            let d = f16s(&t.d);
            let mut s = [_mm512_setzero_ps(); G];
            for c in 0..4 {
                let shift = _mm_cvtsi32_si128(2 * c as i32);
                let mut i0 = [_mm512_setzero_si512(); G];
                let mut i1 = [_mm512_setzero_si512(); G];
                for g in 0..8 {
                    let q = ld512(&t.qs[8 * c + g]);
                    // Bits 2c and 2c + 1 of each byte, moved to bit 4; the
                    // 16-bit shifts carry nothing into bit 4 that the mask
                    // keeps.
                    let h = _mm512_srl_epi16(ld512(&t.qh[g]), shift);
                    let h0 = _mm512_and_si512(_mm512_slli_epi16(h, 4), bit4);
                    let h1 = _mm512_and_si512(_mm512_slli_epi16(h, 3), bit4);
                    let lo = _mm512_ternarylogic_epi32(q, h0, low, A_AND_C_OR_B);
                    let hi =
                        _mm512_ternarylogic_epi32(_mm512_srli_epi16(q, 4), h1, low, A_AND_C_OR_B);
                    for r in 0..G {
                        i0[r] = _mm512_dpbusd_epi32(i0[r], lo, bcast(xq[r], 16 * c + g));
                        i1[r] = _mm512_dpbusd_epi32(i1[r], hi, bcast(xq[r], 16 * c + 8 + g));
                    }
                }
                let ds0 = _mm512_mul_ps(d, u8s(&t.sc[2 * c]));
                let ds1 = _mm512_mul_ps(d, u8s(&t.sc[2 * c + 1]));
                for r in 0..G {
                    s[r] = _mm512_fmadd_ps(ds0, _mm512_cvtepi32_ps(i0[r]), s[r]);
                    s[r] = _mm512_fmadd_ps(ds1, _mm512_cvtepi32_ps(i1[r]), s[r]);
                }
            }
            finish45(&t.m, f16s(&t.dmin), xs, b, &mut s, &mut acc);
        }
        store(acc)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn q6k<const G: usize>(tiles: &[Q6Tile], xs: [&Q8KRow; G]) -> [[f32; TILE]; G] {
        let low = _mm512_set1_epi8(0x0F);
        let top = _mm512_set1_epi8(0x30);
        let mut acc = [_mm512_setzero_ps(); G];
        for (b, t) in tiles.iter().enumerate() {
            if let Some(next) = tiles.get(b + AHEAD) {
                prefetch(next);
            }
            let xq: [&[[i8; 4]; 64]; G] = std::array::from_fn(|r| &xs[r].qs[b]);
            let mut isum = [_mm512_setzero_si512(); G];
            for (h, a, q) in Q6_ORDER {
                let mut i0 = [_mm512_setzero_si512(); G];
                let mut i1 = [_mm512_setzero_si512(); G];
                for l in 4 * q..4 * q + 4 {
                    let w = ld512(&t.ql[16 * h + 8 * a + l]);
                    let hb = ld512(&t.qh[8 * h + l]);
                    // Fields a and a + 2 moved to bits 4 and 5; the 16-bit
                    // shifts carry nothing into them that `top` keeps.
                    let (f0, f1) = if a == 0 {
                        (_mm512_slli_epi16(hb, 4), hb)
                    } else {
                        (_mm512_slli_epi16(hb, 2), _mm512_srli_epi16(hb, 2))
                    };
                    let lo =
                        _mm512_ternarylogic_epi32(w, _mm512_and_si512(f0, top), low, A_AND_C_OR_B);
                    let hi = _mm512_ternarylogic_epi32(
                        _mm512_srli_epi16(w, 4),
                        _mm512_and_si512(f1, top),
                        low,
                        A_AND_C_OR_B,
                    );
                    let g = 32 * h + 8 * a + l;
                    for r in 0..G {
                        i0[r] = _mm512_dpbusd_epi32(i0[r], lo, bcast(xq[r], g));
                        i1[r] = _mm512_dpbusd_epi32(i1[r], hi, bcast(xq[r], g + 16));
                    }
                }
                let j = 8 * h + 2 * a + q;
                let sc0 = _mm512_cvtepi8_epi32(ld128(&t.sc[j]));
                let sc1 = _mm512_cvtepi8_epi32(ld128(&t.sc[j + 4]));
                for r in 0..G {
                    let off = &xs[r].bsum16x32[b];
                    let v0 = _mm512_sub_epi32(i0[r], _mm512_set1_epi32(off[j]));
                    let v1 = _mm512_sub_epi32(i1[r], _mm512_set1_epi32(off[j + 4]));
                    let v =
                        _mm512_add_epi32(_mm512_mullo_epi32(sc0, v0), _mm512_mullo_epi32(sc1, v1));
                    isum[r] = _mm512_add_epi32(isum[r], v);
                }
            }
            let d = ld512f(&t.d);
            for r in 0..G {
                let s = _mm512_mul_ps(d, _mm512_cvtepi32_ps(isum[r]));
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(xs[r].d[b]), s, acc[r]);
            }
        }
        store(acc)
    }
}

/// Tiles as two halves of eight rows in 256-bit vectors, once per
/// instruction set: `$dp` is `vpdpbusd` (`acc` plus the four products of
/// each dword of `w` and `x`), which plain AVX2 does in three instructions.
#[cfg(target_arch = "x86_64")]
macro_rules! ymm_kernels {
    ($features:literal, |$acc:ident, $w:ident, $x:ident| $dp:expr) => {
        use std::arch::x86_64::*;

        use super::load::{ld128, ld256, ld256f, ld64};
        use super::{Q4Tile, Q5Tile, Q6Tile, Q8KRow, AHEAD, Q6_ORDER, TILE};
        use crate::matmul::prefetch;

        #[target_feature(enable = $features)]
        fn dp($acc: __m256i, $w: __m256i, $x: __m256i) -> __m256i {
            $dp
        }

        #[target_feature(enable = $features)]
        fn bcast(q: &[[i8; 4]; 64], g: usize) -> __m256i {
            _mm256_set1_epi32(i32::from_le_bytes(q[g].map(|v| v as u8)))
        }

        #[target_feature(enable = $features)]
        fn u8s(v: &[u8; 8]) -> __m256 {
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(ld64(v)))
        }

        #[target_feature(enable = $features)]
        fn f16s(v: &[half::f16; 8]) -> __m256 {
            _mm256_cvtph_ps(ld128(v))
        }

        #[target_feature(enable = $features)]
        fn store<const G: usize>(out: &mut [[f32; TILE]; G], hh: usize, acc: [__m256; G]) {
            for (o, a) in out.iter_mut().zip(acc) {
                // SAFETY: lanes 8·hh .. 8·hh + 8 of `o` are 8 writable f32.
                unsafe { _mm256_storeu_ps(o[8 * hh..].as_mut_ptr(), a) };
            }
        }

        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        fn finish45<const G: usize>(
            m: &[[[u8; 8]; 2]; 8],
            dmin: __m256,
            hh: usize,
            xs: [&Q8KRow; G],
            b: usize,
            s: &mut [__m256; G],
            acc: &mut [__m256; G],
        ) {
            for (j, m) in m.iter().enumerate() {
                let dm = _mm256_mul_ps(dmin, u8s(&m[hh]));
                for r in 0..G {
                    s[r] = _mm256_fnmadd_ps(dm, _mm256_set1_ps(xs[r].bsum32[b][j]), s[r]);
                }
            }
            for r in 0..G {
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(xs[r].d[b]), s[r], acc[r]);
            }
        }

        #[target_feature(enable = $features)]
        pub(super) fn q4k<const G: usize>(tiles: &[Q4Tile], xs: [&Q8KRow; G]) -> [[f32; TILE]; G] {
            let low = _mm256_set1_epi8(0x0F);
            let mut out = [[0.0f32; TILE]; G];
            for hh in 0..2 {
                let mut acc = [_mm256_setzero_ps(); G];
                for (b, t) in tiles.iter().enumerate() {
                    if let Some(next) = tiles.get(b + AHEAD) {
                        prefetch(next);
                    }
                    let xq: [&[[i8; 4]; 64]; G] = std::array::from_fn(|r| &xs[r].qs[b]);
                    let mut isum = [_mm256_setzero_si256(); G];
                    for c in 0..4 {
                        let mut i0 = [_mm256_setzero_si256(); G];
                        let mut i1 = [_mm256_setzero_si256(); G];
                        for g in 0..8 {
                            let q = ld256(&t.qs[8 * c + g][hh]);
                            // Nibbles ≤ 15: maddubs' i16 pairs cannot saturate.
                            let lo = _mm256_and_si256(q, low);
                            let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low);
                            for r in 0..G {
                                i0[r] = dp(i0[r], lo, bcast(xq[r], 16 * c + g));
                                i1[r] = dp(i1[r], hi, bcast(xq[r], 16 * c + 8 + g));
                            }
                        }
                        let sc0 = _mm256_cvtepu8_epi32(ld64(&t.sc[2 * c][hh]));
                        let sc1 = _mm256_cvtepu8_epi32(ld64(&t.sc[2 * c + 1][hh]));
                        for r in 0..G {
                            let v = _mm256_add_epi32(
                                _mm256_mullo_epi32(sc0, i0[r]),
                                _mm256_mullo_epi32(sc1, i1[r]),
                            );
                            isum[r] = _mm256_add_epi32(isum[r], v);
                        }
                    }
                    // As the AVX-512 kernel's `finish4`.
                    let (d, dmin) = (f16s(&t.d[hh]), f16s(&t.dmin[hh]));
                    let m: [__m256; 8] = std::array::from_fn(|j| u8s(&t.m[j][hh]));
                    for r in 0..G {
                        let mut fm = _mm256_setzero_ps();
                        for (j, m) in m.iter().enumerate() {
                            fm = _mm256_fmadd_ps(*m, _mm256_set1_ps(xs[r].bsum32[b][j]), fm);
                        }
                        let s = _mm256_fmsub_ps(
                            d,
                            _mm256_cvtepi32_ps(isum[r]),
                            _mm256_mul_ps(dmin, fm),
                        );
                        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(xs[r].d[b]), s, acc[r]);
                    }
                }
                store(&mut out, hh, acc);
            }
            out
        }

        #[target_feature(enable = $features)]
        pub(super) fn q5k<const G: usize>(tiles: &[Q5Tile], xs: [&Q8KRow; G]) -> [[f32; TILE]; G] {
            let low = _mm256_set1_epi8(0x0F);
            let bit4 = _mm256_set1_epi8(0x10);
            let mut out = [[0.0f32; TILE]; G];
            for hh in 0..2 {
                let mut acc = [_mm256_setzero_ps(); G];
                for (b, t) in tiles.iter().enumerate() {
                    if let Some(next) = tiles.get(b + AHEAD) {
                        prefetch(next);
                    }
                    let xq: [&[[i8; 4]; 64]; G] = std::array::from_fn(|r| &xs[r].qs[b]);
                    let d = f16s(&t.d[hh]);
                    let mut s = [_mm256_setzero_ps(); G];
                    for c in 0..4 {
                        let shift = _mm_cvtsi32_si128(2 * c as i32);
                        let mut i0 = [_mm256_setzero_si256(); G];
                        let mut i1 = [_mm256_setzero_si256(); G];
                        for g in 0..8 {
                            let q = ld256(&t.qs[8 * c + g][hh]);
                            // As in the AVX-512 kernel; values ≤ 31.
                            let h = _mm256_srl_epi16(ld256(&t.qh[g][hh]), shift);
                            let h0 = _mm256_and_si256(_mm256_slli_epi16(h, 4), bit4);
                            let h1 = _mm256_and_si256(_mm256_slli_epi16(h, 3), bit4);
                            let lo = _mm256_or_si256(_mm256_and_si256(q, low), h0);
                            let hi =
                                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), low), h1);
                            for r in 0..G {
                                i0[r] = dp(i0[r], lo, bcast(xq[r], 16 * c + g));
                                i1[r] = dp(i1[r], hi, bcast(xq[r], 16 * c + 8 + g));
                            }
                        }
                        let ds0 = _mm256_mul_ps(d, u8s(&t.sc[2 * c][hh]));
                        let ds1 = _mm256_mul_ps(d, u8s(&t.sc[2 * c + 1][hh]));
                        for r in 0..G {
                            s[r] = _mm256_fmadd_ps(ds0, _mm256_cvtepi32_ps(i0[r]), s[r]);
                            s[r] = _mm256_fmadd_ps(ds1, _mm256_cvtepi32_ps(i1[r]), s[r]);
                        }
                    }
                    finish45(&t.m, f16s(&t.dmin[hh]), hh, xs, b, &mut s, &mut acc);
                }
                store(&mut out, hh, acc);
            }
            out
        }

        #[target_feature(enable = $features)]
        pub(super) fn q6k<const G: usize>(tiles: &[Q6Tile], xs: [&Q8KRow; G]) -> [[f32; TILE]; G] {
            let low = _mm256_set1_epi8(0x0F);
            let top = _mm256_set1_epi8(0x30);
            let mut out = [[0.0f32; TILE]; G];
            for hh in 0..2 {
                let mut acc = [_mm256_setzero_ps(); G];
                for (b, t) in tiles.iter().enumerate() {
                    if let Some(next) = tiles.get(b + AHEAD) {
                        prefetch(next);
                    }
                    let xq: [&[[i8; 4]; 64]; G] = std::array::from_fn(|r| &xs[r].qs[b]);
                    let mut isum = [_mm256_setzero_si256(); G];
                    for (h, a, q) in Q6_ORDER {
                        let mut i0 = [_mm256_setzero_si256(); G];
                        let mut i1 = [_mm256_setzero_si256(); G];
                        for l in 4 * q..4 * q + 4 {
                            let w = ld256(&t.ql[16 * h + 8 * a + l][hh]);
                            let hb = ld256(&t.qh[8 * h + l][hh]);
                            // As in the AVX-512 kernel; values ≤ 63.
                            let (f0, f1) = if a == 0 {
                                (_mm256_slli_epi16(hb, 4), hb)
                            } else {
                                (_mm256_slli_epi16(hb, 2), _mm256_srli_epi16(hb, 2))
                            };
                            let lo = _mm256_or_si256(
                                _mm256_and_si256(w, low),
                                _mm256_and_si256(f0, top),
                            );
                            let hi = _mm256_or_si256(
                                _mm256_and_si256(_mm256_srli_epi16(w, 4), low),
                                _mm256_and_si256(f1, top),
                            );
                            let g = 32 * h + 8 * a + l;
                            for r in 0..G {
                                i0[r] = dp(i0[r], lo, bcast(xq[r], g));
                                i1[r] = dp(i1[r], hi, bcast(xq[r], g + 16));
                            }
                        }
                        let j = 8 * h + 2 * a + q;
                        let sc0 = _mm256_cvtepi8_epi32(ld64(&t.sc[j][hh]));
                        let sc1 = _mm256_cvtepi8_epi32(ld64(&t.sc[j + 4][hh]));
                        for r in 0..G {
                            let off = &xs[r].bsum16x32[b];
                            let v0 = _mm256_sub_epi32(i0[r], _mm256_set1_epi32(off[j]));
                            let v1 = _mm256_sub_epi32(i1[r], _mm256_set1_epi32(off[j + 4]));
                            let v = _mm256_add_epi32(
                                _mm256_mullo_epi32(sc0, v0),
                                _mm256_mullo_epi32(sc1, v1),
                            );
                            isum[r] = _mm256_add_epi32(isum[r], v);
                        }
                    }
                    let d = ld256f(&t.d[hh]);
                    for r in 0..G {
                        let s = _mm256_mul_ps(d, _mm256_cvtepi32_ps(isum[r]));
                        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(xs[r].d[b]), s, acc[r]);
                    }
                }
                store(&mut out, hh, acc);
            }
            out
        }
    };
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    ymm_kernels!("avx2,fma,f16c", |acc, w, x| {
        // u8·i8 pairs ≤ 2·63·127: within i16.
        let pairs = _mm256_maddubs_epi16(w, x);
        _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    });
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avxvnni {
    ymm_kernels!(
        "avx2,fma,f16c,avxvnni",
        |acc, w, x| _mm256_dpbusd_avx_epi32(acc, w, x)
    );
}

/// Prompts on AMX: many activation rows times a Q4_K matrix, 16 rows per
/// tile multiplication, with the same bits per row as the bands.
#[cfg(target_arch = "x86_64")]
mod blocks {
    use rayon::prelude::*;

    use std::arch::x86_64::*;

    use super::load::{ld128, ld512};
    use super::{Q4Tile, Q6Tile, Q8KRow, QK_K, TILE};
    use crate::amx::{tiles as tmm, Columns, Config};

    /// Activation rows per tile multiplication (an A tile's rows).
    const ROWS: usize = 16;
    /// Activation rows per pass of the weights, kept in cache meanwhile:
    /// 128 rows of 2048 quants are 256 KiB.
    const PASS: usize = 128;

    /// A in tiles 0 and 7 (16 rows × 64 activation bytes), B in 1 and 2
    /// (16 rows × 64 weight bytes: four of each of 16 weight rows), the
    /// sums in 3 to 6 (16 × 16 i32).
    pub(super) static CONFIG: Config = Config::new(&[(16, 64); 8]);

    /// 64 columns of a weight tile as two B tiles, the low and the high
    /// bytes of `sc · q`: row `kk` holds, for each weight row, its values
    /// `4kk..4kk + 4` of the 64.
    type BPair = [[[u8; 64]; 16]; 2];

    thread_local! {
        /// A task's weight tile unpacked; kept so that tasks allocate nothing.
        static UNPACKED: std::cell::RefCell<Vec<BPair>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Row `r`'s four bytes of a tile vector are 16-bit lanes `2r` and
    /// `2r + 1`: `v`'s 16 scales (unsigned), each in both.
    #[target_feature(enable = "avx512f,avx512bw")]
    fn scale_u8(v: &[[u8; 8]; 2]) -> __m512i {
        let s = _mm512_cvtepu8_epi32(ld128(v));
        _mm512_or_si512(s, _mm512_slli_epi32(s, 16))
    }

    /// [`scale_u8`] for signed scales.
    #[target_feature(enable = "avx512f,avx512bw")]
    fn scale_i8(v: &[[i8; 8]; 2]) -> __m512i {
        let s = _mm512_and_si512(_mm512_cvtepi8_epi32(ld128(v)), _mm512_set1_epi32(0xFFFF));
        _mm512_or_si512(s, _mm512_slli_epi32(s, 16))
    }

    /// The products of `w`'s bytes (below 128) with the scales `s` of
    /// their rows, in 16 bits: even bytes and odd bytes apart, then each
    /// product's low byte to one vector and its high byte (signed) to the
    /// other, at the byte it came from.
    #[target_feature(enable = "avx512f,avx512bw")]
    fn split(w: __m512i, s: __m512i) -> (__m512i, __m512i) {
        let low = _mm512_set1_epi16(0x00FF);
        let even = _mm512_mullo_epi16(_mm512_and_si512(w, low), s);
        let odd = _mm512_mullo_epi16(_mm512_srli_epi16(w, 8), s);
        let lo = _mm512_or_si512(_mm512_and_si512(even, low), _mm512_slli_epi16(odd, 8));
        let hi = _mm512_or_si512(
            _mm512_and_si512(_mm512_srai_epi16(even, 8), low),
            _mm512_andnot_si512(low, odd),
        );
        (lo, hi)
    }

    /// Q4_K nibbles times their sub-block's scale (at most 15 · 63), as
    /// bytes: columns `64c..64c + 32` are the low nibbles of tile vectors
    /// `8c..8c + 8` (sub-block `2c`), the next 32 their high nibbles.
    #[target_feature(enable = "avx512f,avx512bw")]
    fn unpack_q4k(tiles: &[Q4Tile], out: &mut Vec<BPair>) {
        out.clear();
        out.resize(4 * tiles.len(), [[[0; 64]; 16]; 2]);
        let nib = _mm512_set1_epi8(0x0F);
        for (t, o) in tiles.iter().zip(out.chunks_exact_mut(4)) {
            for (c, pair) in o.iter_mut().enumerate() {
                let (s0, s1) = (scale_u8(&t.sc[2 * c]), scale_u8(&t.sc[2 * c + 1]));
                for g in 0..8 {
                    let q = ld512(&t.qs[8 * c + g]);
                    let (l0, h0) = split(_mm512_and_si512(q, nib), s0);
                    let (l1, h1) = split(_mm512_and_si512(_mm512_srli_epi16(q, 4), nib), s1);
                    // SAFETY: each destination is 64 writable bytes.
                    #[allow(unsafe_code)]
                    unsafe {
                        _mm512_storeu_si512(pair[0][g].as_mut_ptr().cast(), l0);
                        _mm512_storeu_si512(pair[1][g].as_mut_ptr().cast(), h0);
                        _mm512_storeu_si512(pair[0][8 + g].as_mut_ptr().cast(), l1);
                        _mm512_storeu_si512(pair[1][8 + g].as_mut_ptr().cast(), h1);
                    }
                }
            }
        }
    }

    /// Q6_K quants (0..63) times their sub-block's scale (i8), as bytes:
    /// the low byte of each product in one B tile, the high byte (signed)
    /// in the other; column group `G` of a block (values `4G..4G + 4`) is
    /// B row `G % 16` of chunk `G / 16`.
    #[target_feature(enable = "avx512f,avx512bw")]
    fn unpack_q6k(tiles: &[Q6Tile], out: &mut Vec<BPair>) {
        out.clear();
        out.resize(4 * tiles.len(), [[[0; 64]; 16]; 2]);
        let (nib, two) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x03));
        for (t, o) in tiles.iter().zip(out.chunks_exact_mut(4)) {
            for group in 0..64 {
                // The tile's layout (see `Q6Tile`): group 32h + 8a + l takes
                // the low nibbles of `ql[16h + 8a + l]`, group + 16 the high.
                let (h, rem) = (group / 32, group % 32);
                let (high, a, l) = (rem >= 16, rem % 16 / 8, rem % 8);
                let w = ld512(&t.ql[16 * h + 8 * a + l]);
                let hb = ld512(&t.qh[8 * h + l]);
                let shift = _mm_cvtsi32_si128(2 * a as i32 + if high { 4 } else { 0 });
                let top = _mm512_slli_epi16(_mm512_and_si512(_mm512_srl_epi16(hb, shift), two), 4);
                let w = if high { _mm512_srli_epi16(w, 4) } else { w };
                let q = _mm512_or_si512(_mm512_and_si512(w, nib), top);
                let (lo, hi) = split(q, scale_i8(&t.sc[group / 4]));
                let pair = &mut o[group / 16];
                // SAFETY: each destination is 64 writable bytes.
                #[allow(unsafe_code)]
                unsafe {
                    _mm512_storeu_si512(pair[0][group % 16].as_mut_ptr().cast(), lo);
                    _mm512_storeu_si512(pair[1][group % 16].as_mut_ptr().cast(), hi);
                }
            }
        }
    }

    /// A kernel for 32 activation rows: weight tiles, their B tiles, two
    /// groups' A tiles, sums by sub-block and row, scales by row.
    type Kernel<T, const J: usize> = unsafe fn(
        &[T],
        &[BPair],
        [&[[[i8; 64]; ROWS]]; 2],
        [&[[[f32; ROWS]; J]]; 2],
        [&[[f32; ROWS]]; 2],
    ) -> [[[f32; TILE]; ROWS]; 2];

    /// `out[i * n + j]` = weight row `j` times `xs[i]`, for a Q4_K matrix
    /// in `tiles` (`k / 256` per tile of 16 rows). The caller has checked
    /// that AMX is available.
    pub(super) fn q4k(tiles: &[Q4Tile], n: usize, k: usize, xs: &[Q8KRow], out: &mut [f32]) {
        let sums = |x: &Q8KRow, b: usize| x.bsum32[b];
        run::<_, 8>(
            tiles,
            n,
            k,
            xs,
            out,
            sums,
            unpack_q4k,
            super::avx512::q4k_amx,
        );
    }

    /// [`q4k`] for Q6_K.
    pub(super) fn q6k(tiles: &[Q6Tile], n: usize, k: usize, xs: &[Q8KRow], out: &mut [f32]) {
        // The sums of 16 from Q8KRow's 32 times them (exact).
        let sums = |x: &Q8KRow, b: usize| x.bsum16x32[b].map(|v| (v / 32) as f32);
        run::<_, 16>(
            tiles,
            n,
            k,
            xs,
            out,
            sums,
            unpack_q6k,
            super::avx512::q6k_amx,
        );
    }

    /// The driver of both: tiles in parallel, each unpacked once per pass
    /// of up to `PASS` rows and multiplied by them 32 at a time.
    #[allow(clippy::too_many_arguments)]
    fn run<T: Sync, const J: usize>(
        tiles: &[T],
        n: usize,
        k: usize,
        xs: &[Q8KRow],
        out: &mut [f32],
        sums: impl Fn(&Q8KRow, usize) -> [f32; J],
        unpack: unsafe fn(&[T], &mut Vec<BPair>),
        kernel: Kernel<T, J>,
    ) {
        let nb = k / QK_K;
        let m = xs.len();
        // Groups of 16 rows, taken two at a time (rows past `m` are zero,
        // their results dropped).
        let groups = m.div_ceil(2 * ROWS) * 2;
        // The rows' quants as A tiles, each whole cache lines (a tile
        // gathered from rows far apart loads several times slower): per
        // group of 16 rows and 64 columns, the 16 rows' 64 quants. Beside
        // them, by group and block, the sub-block sums and scales by row.
        let mut a = vec![[[0i8; 64]; ROWS]; groups * nb * 4];
        let mut bsum = vec![[[0f32; ROWS]; J]; groups * nb];
        let mut dx = vec![[0f32; ROWS]; groups * nb];
        for (i, x) in xs.iter().enumerate() {
            let (g, r) = (i / ROWS, i % ROWS);
            for (b, q) in x.qs.iter().enumerate() {
                for (h, part) in q.as_flattened().chunks_exact(64).enumerate() {
                    a[(g * nb + b) * 4 + h][r].copy_from_slice(part);
                }
                for (to, from) in bsum[g * nb + b].iter_mut().zip(sums(x, b)) {
                    to[r] = from;
                }
                dx[g * nb + b][r] = x.d[b];
            }
        }
        let ntiles = n.div_ceil(TILE);
        assert_eq!(out.len(), m * n);
        let out = Columns::new(out);
        for first in (0..m).step_by(PASS) {
            let rows = PASS.min(m - first);
            (0..ntiles).into_par_iter().for_each(|t| {
                let tile = &tiles[t * nb..(t + 1) * nb];
                let cols = TILE.min(n - t * TILE);
                UNPACKED.with_borrow_mut(|b_tiles| {
                    // SAFETY: AVX-512 is there (AMX is only used with it);
                    // AMX is granted (the caller checked), with the shapes
                    // the kernels want, released before the task ends.
                    #[allow(unsafe_code)]
                    unsafe {
                        unpack(tile, b_tiles);
                        tmm::config(&CONFIG);
                    }
                    for g0 in (0..rows).step_by(2 * ROWS) {
                        let g = (first + g0) / ROWS;
                        let span = |h: usize| (g + h) * nb..(g + h + 1) * nb;
                        let a4 = |h: usize| &a[span(h).start * 4..span(h).end * 4];
                        // SAFETY: as above.
                        #[allow(unsafe_code)]
                        let res = unsafe {
                            kernel(
                                tile,
                                b_tiles,
                                [a4(0), a4(1)],
                                [&bsum[span(0)], &bsum[span(1)]],
                                [&dx[span(0)], &dx[span(1)]],
                            )
                        };
                        for (r, v) in res.as_flattened().iter().enumerate() {
                            let i = first + g0 + r;
                            if i >= m {
                                break;
                            }
                            // SAFETY: this task alone writes columns
                            // `16t..16t + cols` ≤ n of each row.
                            #[allow(unsafe_code)]
                            unsafe {
                                out.put(i * n + t * TILE, &v[..cols]);
                            }
                        }
                    }
                    // SAFETY: AMX is granted.
                    #[allow(unsafe_code)]
                    unsafe {
                        tmm::release();
                    }
                });
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Deterministic values in [-1, 1), with per block of 256 the edge cases
    /// of the K-quants first: all zero (scales 0), ±1 alternating (extreme
    /// quants), tiny values, all positive (min 0), all negative (the largest
    /// mins), one value a hundred times the rest (extreme scale).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut v: Vec<f32> = (0..n).map(|_| rng.f32() * 2.0 - 1.0).collect();
        for (b, block) in v.chunks_exact_mut(QK_K).enumerate() {
            match b {
                0 => block.fill(0.0),
                1 => {
                    for (i, x) in block.iter_mut().enumerate() {
                        *x = if i % 2 == 0 { 1.0 } else { -1.0 };
                    }
                }
                2 => block.iter_mut().for_each(|x| *x *= 1e-6),
                3 => block.iter_mut().for_each(|x| *x = 0.5 + 0.5 * x.abs()),
                4 => block.iter_mut().for_each(|x| *x = -1.0 - x.abs()),
                5 => block[17] = 100.0,
                _ => {}
            }
        }
        v
    }

    /// The plain scalar reference: dequantized weights (candle's
    /// `dequantize`) times the dequantized Q8_K activations, in f64.
    fn reference(w: &QTensor, xs: &[Q8KRow], n: usize, k: usize) -> Vec<f32> {
        let wf = crate::q8::tests::flat(&w.dequantize(&Device::Cpu).unwrap());
        let mut out = Vec::new();
        for x in xs {
            let xd: Vec<f64> = (0..k)
                .map(|i| {
                    let (b, j) = (i / QK_K, i % QK_K);
                    f64::from(x.qs[b][j / 4][j % 4]) * f64::from(x.d[b])
                })
                .collect();
            for r in 0..n {
                let row = &wf[r * k..(r + 1) * k];
                let s: f64 = row.iter().zip(&xd).map(|(&a, &b)| f64::from(a) * b).sum();
                out.push(s as f32);
            }
        }
        out
    }

    fn matmul(mat: &KMatrix, x: &Tensor) -> Vec<f32> {
        crate::matmul::forward(mat, x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn check(dtype: GgmlDType, n: usize, k: usize, m: usize) {
        let w = Tensor::from_vec(values(n * k, 1), (n, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, dtype).unwrap();
        assert!(KMatrix::handles(&q));
        let mat = KMatrix::from_qtensor(&q).unwrap();
        let xv = values(m * k, 2);
        let xs: Vec<Q8KRow> = xv.chunks_exact(k).map(quantize_q8k).collect();
        let want = reference(&q, &xs, n, k);
        let isas = Isa::available();
        // Every path this CPU runs, the portable one included: the
        // reference within rounding, and the same bits as each other.
        let on = |isa: Isa| -> Vec<f32> {
            let mut got = vec![0.0f32; m * n];
            for (i, o) in got.chunks_exact_mut(n).enumerate() {
                mat.dot_band_on(isa, 0..n, &[&xs[i]], o);
            }
            got
        };
        let first = on(isas[0]);
        for (i, (g, w)) in first.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{dtype:?} n={n} k={k} [{i}]: {g} vs {w}"
            );
        }
        for &isa in &isas[1..] {
            let got = on(isa);
            for (i, (a, b)) in got.iter().zip(&first).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{dtype:?} {isa:?} [{i}]: {a} vs {b}"
                );
            }
            // Any slot of a group of four gives the same bits as alone.
            for i in 0..m {
                for slot in 0..4 {
                    let mut four = [&xs[(i + 1) % m], &xs[(i + 2) % m], &xs[(i + 3) % m], &xs[i]];
                    four.swap(slot, 3);
                    let mut out = vec![0.0f32; 4 * n];
                    mat.dot_band_on(isa, 0..n, &four, &mut out);
                    assert_eq!(
                        out[slot * n..(slot + 1) * n],
                        first[i * n..(i + 1) * n],
                        "{dtype:?} {isa:?} row {i} in slot {slot}"
                    );
                }
            }
        }
        // AMX, where this CPU has it: the same bits as the rows alone.
        #[cfg(target_arch = "x86_64")]
        // (Q5_K has no AMX path.)
        if crate::amx::available() && !matches!(mat.tiles, Tiles::Q5K(_)) {
            let mut got = vec![0.0f32; m * n];
            match &mat.tiles {
                Tiles::Q4K(tiles) => blocks::q4k(tiles, n, k, &xs, &mut got),
                Tiles::Q6K(tiles) => blocks::q6k(tiles, n, k, &xs, &mut got),
                Tiles::Q5K(_) => unreachable!("excluded above"),
            }
            assert_eq!(got, first, "{dtype:?} on AMX");
        }
        // Through the driver: a batch, and each row alone.
        let x = Tensor::from_vec(xv, (m, k), &Device::Cpu).unwrap();
        assert_eq!(matmul(&mat, &x), first, "{dtype:?} batch");
        for i in 0..m {
            let one = matmul(&mat, &x.narrow(0, i, 1).unwrap());
            assert_eq!(one, first[i * n..(i + 1) * n], "{dtype:?} row {i} alone");
        }
    }

    /// Shapes with partial tiles (n not a multiple of 16), several bands,
    /// batches that are and are not multiples of four, and one of more
    /// activation rows than the driver takes per pass.
    const SHAPES: [(usize, usize, usize); 5] = [
        (1, 256, 1),
        (5, 512, 3),
        (17, 768, 5),
        (48, 1536, 9),
        (20, 256, 70),
    ];

    #[test]
    fn q4_k_matches_the_scalar_reference() {
        for (n, k, m) in SHAPES {
            check(GgmlDType::Q4K, n, k, m);
        }
    }

    #[test]
    fn q5_k_matches_the_scalar_reference() {
        for (n, k, m) in SHAPES {
            check(GgmlDType::Q5K, n, k, m);
        }
    }

    #[test]
    fn q6_k_matches_the_scalar_reference() {
        for (n, k, m) in SHAPES {
            check(GgmlDType::Q6K, n, k, m);
        }
    }

    #[test]
    fn q8_k_quantizes_as_ggml() {
        let mut x = values(3 * QK_K, 3);
        // The largest magnitude is negative here, and appears twice: the
        // first one sets the scale and becomes -127.
        x[QK_K + 9] = -3.0;
        x[QK_K + 200] = 3.0;
        let q = quantize_q8k(&x);
        assert_eq!(q.d[0], 0.0);
        assert!(q.qs[0].as_flattened().iter().all(|&v| v == 0));
        assert_eq!(q.qs[1][2][1], -127);
        assert_eq!(q.qs[1][50][0], 127);
        assert_eq!(q.d[1], 1.0 / (-127.0 / -3.0));
        for b in 0..3 {
            let flat = q.qs[b].as_flattened();
            let sum = |r: Range<usize>| flat[r].iter().map(|&v| i32::from(v)).sum::<i32>();
            for j in 0..16 {
                assert_eq!(q.bsum16x32[b][j], 32 * sum(16 * j..16 * j + 16));
            }
            for j in 0..8 {
                assert_eq!(q.bsum32[b][j], sum(32 * j..32 * j + 32) as f32);
            }
        }
    }

    #[test]
    fn q8_k_is_the_same_on_every_path() {
        let x = values(8 * QK_K, 4);
        let plain = quantize_q8k_plain(&x);
        let same = |q: Q8KRow, isa: &str| {
            assert_eq!(q.d, plain.d, "{isa}");
            assert_eq!(q.qs, plain.qs, "{isa}");
            assert_eq!(q.bsum32, plain.bsum32, "{isa}");
            assert_eq!(q.bsum16x32, plain.bsum16x32, "{isa}");
        };
        for isa in Isa::available() {
            match isa {
                Isa::Portable => {}
                // SAFETY (both): the CPU has what `isa` names.
                #[cfg(target_arch = "x86_64")]
                #[allow(unsafe_code)]
                Isa::Avx2 | Isa::AvxVnni => same(unsafe { quantize_avx2(&x) }, "AVX2"),
                #[cfg(target_arch = "x86_64")]
                #[allow(unsafe_code)]
                Isa::Avx512Vnni => same(unsafe { quantize_avx512(&x) }, "AVX-512"),
            }
        }
    }

    #[test]
    fn refuses_other_types_and_partial_blocks() {
        let w = Tensor::zeros((4, 256), candle_core::DType::F32, &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        assert!(!KMatrix::handles(&q));
        assert!(KMatrix::from_qtensor(&q).is_err());
    }
}
