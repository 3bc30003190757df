//! Q8_0 and Q4_0 weights repacked in strips of 16 rows for AVX-512 VNNI,
//! and their product with Q8_0 activations.
//!
//! One 512-bit register holds four quants of each of the strip's 16 rows,
//! so one `vpdpbusd` multiplies those 64 quants with four activation values
//! broadcast to every lane: the lanes are the 16 outputs, with no sum across
//! lanes at the end and one float scale-and-add per block for 16 outputs
//! instead of per output (the layout of ggml's repacked CPU kernels). A
//! block's integer dot product is exact, and each output accumulates
//! `d_w · d_x · dot` over the blocks in order, as ggml's scalar reference does.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so the weights go in
//! unsigned: Q4_0 nibbles as stored (0..15, value + 8), Q8_0 quants plus 128.
//! The offset comes back off through the activation block's sum: each
//! block's accumulator starts at `-offset · Σx`.

use std::ops::Range;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Tensor};
use half::f16;
use rayon::prelude::*;

use super::matmul::Isa;
use super::pages;
use super::q8::{q5_0_as_q8_0, quantize_row, QRow, Q5_BLOCK_BYTES, QK};

/// Rows per strip: one output per 32-bit lane of a 512-bit register.
const STRIP: usize = 16;
/// Bytes of one GGUF block: an f16 scale, then 32 int8 (Q8_0) or 32 nibbles (Q4_0).
const Q8_BLOCK_BYTES: usize = 2 + QK;
const Q4_BLOCK_BYTES: usize = 2 + QK / 2;
/// About how many bytes of quantized activation rows a tile holds while
/// the strips of a task pass over it: a share of a core's L2.
const TILE_BYTES: usize = 256 << 10;

/// How far ahead of its reads the decoding kernel asks for weight lines.
const PREFETCH_BYTES: usize = 4 << 10;

/// A Q8_0 or Q4_0 matrix `(n, k)` in strips of 16 rows. Per strip and
/// block: the 16 rows' scales (f16, as in the file), then the quants by
/// groups of four values, each group as 16 rows × 4 bytes (Q4_0: 4 packed
/// bytes hold groups `g` and `g + 4`, low and high nibbles).
#[derive(Debug)]
pub struct Strips {
    n: usize,
    k: usize,
    q4: bool,
    d: pages::Zeroed<f16>,
    qs: pages::Zeroed<u8>,
}

impl Strips {
    /// Whether this layout can multiply `t` on this CPU.
    pub fn handles(t: &QTensor) -> bool {
        Isa::best().vnni512() && Strips::takes(t.dtype()) && t.device().is_cpu()
    }

    /// Repacks a Q8_0, Q4_0 or Q5_0 `QTensor` of shape `(n, k)`.
    pub fn from_qtensor(t: &QTensor) -> candle_core::Result<Strips> {
        let (n, k) = t.shape().dims2()?;
        Strips::from_bytes(t.dtype(), n, k, &t.data()?, &mut |_| {})
    }

    /// Whether [`Strips::from_bytes`] takes `dtype` on this CPU.
    pub fn takes(dtype: GgmlDType) -> bool {
        Isa::best().vnni512()
            && matches!(dtype, GgmlDType::Q8_0 | GgmlDType::Q4_0 | GgmlDType::Q5_0)
    }

    /// Bytes of a `(n, k)` matrix of `dtype` in the file.
    pub fn file_bytes(dtype: GgmlDType, n: usize, k: usize) -> Option<usize> {
        let block = match dtype {
            GgmlDType::Q8_0 => Q8_BLOCK_BYTES,
            GgmlDType::Q4_0 => Q4_BLOCK_BYTES,
            GgmlDType::Q5_0 => Q5_BLOCK_BYTES,
            _ => return None,
        };
        n.checked_mul(k / QK)?.checked_mul(block)
    }

    /// Repacks a `(n, k)` Q8_0 or Q4_0 matrix from its bytes in a GGUF
    /// file (rows of blocks, as llama.cpp writes them); `done` is told each
    /// range of `data` it has finished with.
    pub fn from_bytes(
        dtype: GgmlDType,
        n: usize,
        k: usize,
        data: &[u8],
        done: &mut dyn FnMut(Range<usize>),
    ) -> candle_core::Result<Strips> {
        // Q5_0 is stored as Q8_0 (`q5_0_as_q8_0`).
        let (q4, q5) = match dtype {
            GgmlDType::Q8_0 => (false, false),
            GgmlDType::Q4_0 => (true, false),
            GgmlDType::Q5_0 => (false, true),
            other => candle_core::bail!("no strip kernel for {other:?}"),
        };
        if !k.is_multiple_of(QK) || k == 0 {
            candle_core::bail!("{dtype:?} rows of {k} values are not whole blocks");
        }
        let nb = k / QK;
        let block_bytes = match (q4, q5) {
            (true, _) => Q4_BLOCK_BYTES,
            (_, true) => Q5_BLOCK_BYTES,
            _ => Q8_BLOCK_BYTES,
        };
        if Some(data.len()) != Strips::file_bytes(dtype, n, k) {
            candle_core::bail!(
                "{dtype:?} data is {} bytes, expected {n} rows of {nb} blocks of {block_bytes}",
                data.len()
            );
        }
        let strips = n.div_ceil(STRIP);
        let quant_bytes = if q4 { QK / 2 } else { QK };
        // Rows past `n` in the last strip stay zero: scale 0, no output.
        let mut d = pages::Zeroed::new(strips * nb * STRIP)?;
        let mut qs = pages::Zeroed::new(strips * nb * STRIP * quant_bytes)?;
        let row_bytes = nb * block_bytes;
        let group = pages::group_units(STRIP * row_bytes);
        let per_q = nb * STRIP * quant_bytes;
        for (g, (gd, gq)) in d
            .chunks_mut(group * nb * STRIP)
            .zip(qs.chunks_mut(group * per_q))
            .enumerate()
        {
            let first_strip = g * group;
            // Strips in parallel: loading is mostly this copy.
            gd.par_chunks_mut(nb * STRIP)
                .zip(gq.par_chunks_mut(per_q))
                .enumerate()
                .for_each(|(j, (sd, sq))| {
                    let s = first_strip + j;
                    let first = s * STRIP * row_bytes;
                    let last = ((s + 1) * STRIP * row_bytes).min(data.len());
                    let rows = data[first..last].chunks_exact(row_bytes);
                    for (i, src) in rows.enumerate() {
                        for (b, block) in src.chunks_exact(block_bytes).enumerate() {
                            let as_q8;
                            let block = if q5 {
                                as_q8 = q5_0_as_q8_0(block);
                                &as_q8[..]
                            } else {
                                block
                            };
                            sd[b * STRIP + i] = f16::from_le_bytes([block[0], block[1]]);
                            let dst =
                                &mut sq[b * STRIP * quant_bytes..(b + 1) * STRIP * quant_bytes];
                            // Q8_0 quants are signed: plus 128 they are unsigned.
                            let flip = if q4 { 0 } else { 0x8080_8080u32 };
                            for (g, four) in block[2..].chunks_exact(4).enumerate() {
                                let o = g * STRIP * 4 + i * 4;
                                let v =
                                    u32::from_le_bytes([four[0], four[1], four[2], four[3]]) ^ flip;
                                dst[o..o + 4].copy_from_slice(&v.to_le_bytes());
                            }
                        }
                    }
                });
            let end = ((first_strip + group) * STRIP * row_bytes).min(data.len());
            done(first_strip * STRIP * row_bytes..end);
        }
        Ok(Strips { n, k, q4, d, qs })
    }

    fn strips(&self) -> usize {
        self.n.div_ceil(STRIP)
    }

    /// Strip `s`'s scales and quants.
    fn strip(&self, s: usize) -> (&[f16], &[u8]) {
        let nb = self.k / QK;
        let per = nb * STRIP * if self.q4 { QK / 2 } else { QK };
        (
            &self.d[s * nb * STRIP..(s + 1) * nb * STRIP],
            &self.qs[s * per..(s + 1) * per],
        )
    }

    /// Strip `s` times `N` activation rows: 16 outputs per row.
    fn dot<const N: usize>(&self, s: usize, xs: [&QRow; N]) -> [[f32; STRIP]; N] {
        let (wd, wq) = self.strip(s);
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: a `Strips` exists only where `Isa::best` found AVX-512
            // F, BW, VL and VNNI (`handles`), all that `avx512` needs.
            #[allow(unsafe_code)]
            unsafe {
                if self.q4 {
                    avx512::strip_dot::<N, true>(wq, wd, xs)
                } else {
                    avx512::strip_dot::<N, false>(wq, wd, xs)
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (wd, wq, xs);
            unreachable!("strips are built on x86_64 only")
        }
    }

    /// Rows `ids` of the matrix, dequantized, `(ids.len(), k)`: a tied
    /// token embedding read from the output matrix's strips instead of a
    /// second copy of the table.
    pub fn rows(&self, ids: &[u32], device: &candle_core::Device) -> candle_core::Result<Tensor> {
        let nb = self.k / QK;
        let mut out = Vec::with_capacity(ids.len() * self.k);
        for &id in ids {
            let r = id as usize;
            if r >= self.n {
                candle_core::bail!("token id {r} is outside the {} rows", self.n);
            }
            let (wd, wq) = self.strip(r / STRIP);
            let i = r % STRIP;
            let qb = STRIP * if self.q4 { QK / 2 } else { QK };
            for b in 0..nb {
                let d = wd[b * STRIP + i].to_f32();
                let block = &wq[b * qb..(b + 1) * qb];
                let mut v = [0.0f32; QK];
                for g in 0..qb / (STRIP * 4) {
                    for t in 0..4 {
                        let q = block[g * STRIP * 4 + i * 4 + t];
                        if self.q4 {
                            v[g * 4 + t] = d * f32::from(i8::try_from(q & 0x0F).unwrap_or(0) - 8);
                            v[QK / 2 + g * 4 + t] =
                                d * f32::from(i8::try_from(q >> 4).unwrap_or(0) - 8);
                        } else {
                            v[g * 4 + t] = d * f32::from((q ^ 0x80) as i8);
                        }
                    }
                }
                out.extend_from_slice(&v);
            }
        }
        Tensor::from_vec(out, (ids.len(), self.k), device)
    }

    /// `x @ selfᵀ` for `x` of shape `(..., k)`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let Some((&k, lead)) = dims.split_last() else {
            candle_core::bail!("matmul of a scalar");
        };
        if k != self.k {
            candle_core::bail!("matmul: input has {k} columns, weight {}", self.k);
        }
        let m: usize = lead.iter().product();
        let xs: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let rows: Vec<QRow> = xs
            .chunks_exact(k)
            .map(|r| quantize_row(r, Isa::best()))
            .collect();
        let (n, strips) = (self.n, self.strips());
        let mut shape = lead.to_vec();
        shape.push(n);
        #[cfg(target_arch = "x86_64")]
        if m >= super::matmul::AMX_MIN_ROWS && super::amx::available() {
            let mut out = vec![0.0f32; m * n];
            tiles::forward(self, &rows, &mut out);
            return Tensor::from_vec(out, shape, x.device());
        }
        // Per strip, its 16 outputs for every activation row: (strips·16, m).
        let mut t = vec![0.0f32; strips * STRIP * m];
        let tile = (TILE_BYTES / (k + k / QK * 8).max(1)).clamp(4, m.max(4)) / 4 * 4;
        t.par_chunks_mut(STRIP * m)
            .enumerate()
            .for_each(|(s, outs)| {
                for start in (0..m).step_by(tile) {
                    let end = (start + tile).min(m);
                    let tile_rows = &rows[start..end];
                    let mut x4 = tile_rows.chunks_exact(4);
                    let mut i = start;
                    let mut put = |v: &[f32; STRIP], i: usize| {
                        for (lane, &o) in v.iter().enumerate() {
                            outs[lane * m + i] = o;
                        }
                    };
                    for x in &mut x4 {
                        let r = self.dot(s, [&x[0], &x[1], &x[2], &x[3]]);
                        for v in &r {
                            put(v, i);
                            i += 1;
                        }
                    }
                    for x in x4.remainder() {
                        let [v] = self.dot(s, [x]);
                        put(&v, i);
                        i += 1;
                    }
                }
            });
        let mut out = vec![0.0f32; m * n];
        for (r, col) in t.chunks_exact(m).take(n).enumerate() {
            for (i, v) in col.iter().enumerate() {
                out[i * n + r] = *v;
            }
        }
        Tensor::from_vec(out, shape, x.device())
    }
}

/// Q8_0 and Q4_0 prompts on AMX: per block of 32 columns, one `tdpbsud`
/// gives 16 activation rows × 16 weight rows of the exact sums that
/// `vpdpbusd` gives the strip kernel, and the same float operations follow,
/// so a row has the same bits either way.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod tiles {
    use std::arch::x86_64::*;

    use half::f16;
    use rayon::prelude::*;

    use super::{QRow, Strips, QK, STRIP};
    use crate::amx::{tiles as tmm, Columns, Config};

    /// Activation rows per A tile.
    const ROWS: usize = 16;
    /// Activation rows per pass of the weights, kept in cache meanwhile.
    const PASS: usize = 128;

    /// A in tiles 0 and 7 (16 rows × 32 activation bytes), B in 1 (8 rows
    /// × 64 weight bytes: four of each of the strip's 16 rows), the sums in
    /// 3 and 5 (16 × 16 i32).
    static CONFIG: Config = Config::new(&[
        (16, 32),
        (8, 64),
        (0, 0),
        (16, 64),
        (0, 0),
        (16, 64),
        (0, 0),
        (16, 32),
    ]);

    /// A block of a strip as a B tile: row `g` holds the four values
    /// `4g..4g + 4` of each of the 16 rows (unsigned, as the strips hold them).
    type BTile = [[u8; 64]; 8];

    thread_local! {
        /// A task's Q4_0 strip unpacked; kept so that tasks allocate nothing.
        static UNPACKED: std::cell::RefCell<Vec<BTile>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// The nibbles of a Q4_0 strip as bytes: the strip's vector `g` holds
    /// groups `g` (low nibbles) and `g + 4` (high).
    #[target_feature(enable = "avx512f,avx512bw")]
    fn unpack_q4(wq: &[u8], out: &mut Vec<BTile>) {
        let nb = wq.len() / (STRIP * QK / 2);
        out.clear();
        out.resize(nb, [[0; 64]; 8]);
        let low = _mm512_set1_epi8(0x0F);
        for (block, o) in wq.chunks_exact(STRIP * QK / 2).zip(out.iter_mut()) {
            for g in 0..4 {
                // SAFETY: 64 readable bytes inside `block`, 64 writable in `o`.
                unsafe {
                    let p = _mm512_loadu_si512(block[64 * g..].as_ptr().cast());
                    _mm512_storeu_si512(o[g].as_mut_ptr().cast(), _mm512_and_si512(p, low));
                    let hi = _mm512_and_si512(_mm512_srli_epi16(p, 4), low);
                    _mm512_storeu_si512(o[g + 4].as_mut_ptr().cast(), hi);
                }
            }
        }
    }

    /// One strip (B tiles `bq`, scales `wd`) times two groups of 16 rows.
    ///
    /// # Safety
    /// AMX is granted and `CONFIG` loaded on this thread.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn pair(
        bq: &[BTile],
        wd: &[f16],
        a: [&[[[i8; 32]; ROWS]]; 2],
        sums: [&[[i32; ROWS]]; 2],
        dx: [&[[f32; ROWS]]; 2],
        offset: i32,
    ) -> [[[f32; STRIP]; ROWS]; 2] {
        #[repr(C, align(64))]
        struct Sums([[i32; 16]; 16]);
        /// Starts block `b`'s products into tiles 3 and 5.
        #[inline(always)]
        unsafe fn issue(bq: &[BTile], a: [&[[[i8; 32]; ROWS]]; 2], b: usize) {
            // SAFETY: the caller loaded the shapes; each load reads one
            // entry of `bq` or `a`, 512 bytes.
            unsafe {
                tmm::zero::<3>();
                tmm::zero::<5>();
                tmm::load::<1>(bq[b].as_ptr().cast(), 64);
                tmm::load::<0>(a[0][b].as_ptr().cast(), 32);
                tmm::load::<7>(a[1][b].as_ptr().cast(), 32);
                tmm::dpbsud::<3, 0, 1>();
                tmm::dpbsud::<5, 7, 1>();
            }
        }
        let nb = bq.len();
        assert!(wd.len() >= nb * STRIP);
        for g in 0..2 {
            assert!(a[g].len() >= nb && sums[g].len() >= nb && dx[g].len() >= nb);
        }
        let mut c = [Sums([[0; 16]; 16]), Sums([[0; 16]; 16])];
        let mut acc = [[_mm512_setzero_ps(); ROWS]; 2];
        if nb > 0 {
            // SAFETY: the caller loaded the shapes.
            unsafe { issue(bq, a, 0) };
        }
        for b in 0..nb {
            // This block's sums are stored, then the next block's products
            // start and run while the vector units finish this block.
            // SAFETY: as above; each store writes 16 rows of 64 bytes.
            unsafe {
                let [c0, c1] = &mut c;
                tmm::store::<3>(c0.0.as_mut_ptr().cast(), 64);
                tmm::store::<5>(c1.0.as_mut_ptr().cast(), 64);
                if b + 1 < nb {
                    issue(bq, a, b + 1);
                }
            }
            // SAFETY: scales b·16 .. b·16 + 16 exist (asserted above).
            let ws =
                unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(wd[b * STRIP..].as_ptr().cast())) };
            for g in 0..2 {
                for r in 0..ROWS {
                    // SAFETY: a row of 16 i32.
                    let v = unsafe { _mm512_load_si512(c[g].0[r].as_ptr().cast()) };
                    // As the strip kernel: the offset's sum, the products,
                    // then scale · sum into the accumulator.
                    let s = _mm512_add_epi32(_mm512_set1_epi32(offset * sums[g][b][r]), v);
                    let scale = _mm512_mul_ps(ws, _mm512_set1_ps(dx[g][b][r]));
                    acc[g][r] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(s), acc[g][r]);
                }
            }
        }
        acc.map(|a| {
            a.map(|v| {
                let mut o = [0.0f32; STRIP];
                // SAFETY: `o` has room for 16 floats.
                unsafe { _mm512_storeu_ps(o.as_mut_ptr(), v) };
                o
            })
        })
    }

    /// `out[i * n + j]` = row `j` of `st` times `xs[i]`. The caller has
    /// checked that AMX is available.
    pub(super) fn forward(st: &Strips, xs: &[QRow], out: &mut [f32]) {
        let (n, k) = (st.n, st.k);
        let nb = k / QK;
        let m = xs.len();
        let groups = m.div_ceil(2 * ROWS) * 2;
        // The rows' quants as A tiles (whole cache lines), their blocks'
        // sums and scales, by group of 16 rows and block.
        let mut a = vec![[[0i8; 32]; ROWS]; groups * nb];
        let mut sums = vec![[0i32; ROWS]; groups * nb];
        let mut dx = vec![[0f32; ROWS]; groups * nb];
        for (i, x) in xs.iter().enumerate() {
            let (g, r) = (i / ROWS, i % ROWS);
            for (b, q) in x.qs.chunks_exact(QK).enumerate() {
                a[g * nb + b][r].copy_from_slice(q);
                sums[g * nb + b][r] = x.sums[b];
                dx[g * nb + b][r] = x.d[b];
            }
        }
        let offset: i32 = if st.q4 { -8 } else { -128 };
        assert_eq!(out.len(), m * n);
        let out = Columns::new(out);
        for first in (0..m).step_by(PASS) {
            let rows = PASS.min(m - first);
            (0..st.strips()).into_par_iter().for_each(|s| {
                let (wd, wq) = st.strip(s);
                let cols = STRIP.min(n - s * STRIP);
                UNPACKED.with_borrow_mut(|unpacked| {
                    let bq: &[BTile] = if st.q4 {
                        // SAFETY: AMX runs only with AVX-512 (BW included).
                        unsafe { unpack_q4(wq, unpacked) };
                        unpacked
                    } else {
                        // Q8_0 strips are B tiles as they are.
                        let (tiles, rest) = wq.as_chunks::<64>();
                        debug_assert!(rest.is_empty());
                        let (tiles, _) = tiles.as_chunks::<8>();
                        tiles
                    };
                    // SAFETY: AMX is granted (the caller checked), with the
                    // shapes `pair` wants, released before the task ends.
                    unsafe { tmm::config(&CONFIG) };
                    for g0 in (0..rows).step_by(2 * ROWS) {
                        let g = (first + g0) / ROWS;
                        let span = |h: usize| (g + h) * nb..(g + h + 1) * nb;
                        // SAFETY: as above.
                        let res = unsafe {
                            pair(
                                bq,
                                wd,
                                [&a[span(0)], &a[span(1)]],
                                [&sums[span(0)], &sums[span(1)]],
                                [&dx[span(0)], &dx[span(1)]],
                                offset,
                            )
                        };
                        for (r, v) in res.as_flattened().iter().enumerate() {
                            let i = first + g0 + r;
                            if i >= m {
                                break;
                            }
                            // SAFETY: this task alone writes the strip's
                            // columns `16s..16s + cols` ≤ n of each row.
                            unsafe { out.put(i * n + s * STRIP, &v[..cols]) };
                        }
                    }
                    // SAFETY: AMX is granted.
                    unsafe { tmm::release() };
                });
            });
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{QRow, QK, STRIP};

    /// One strip (`wq`, scales `wd`) times `N` activation rows.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) fn strip_dot<const N: usize, const Q4: bool>(
        wq: &[u8],
        wd: &[f16],
        xs: [&QRow; N],
    ) -> [[f32; STRIP]; N] {
        let nb = wd.len() / STRIP;
        let block = STRIP * if Q4 { QK / 2 } else { QK };
        assert!(wq.len() >= nb * block);
        for x in xs {
            assert!(x.qs.len() >= nb * QK && x.d.len() >= nb && x.sums.len() >= nb);
        }
        let offset: i32 = if Q4 { -8 } else { -128 };
        let low = _mm512_set1_epi8(0x0F);
        let mut acc = [_mm512_setzero_ps(); N];
        // Blocks ahead whose lines are asked for: the hardware prefetcher
        // stops at each 4 KiB page, and decoding streams the weights.
        let ahead = super::PREFETCH_BYTES / block;
        for b in 0..nb {
            if b + ahead < nb {
                let next = b + ahead;
                crate::matmul::prefetch(&wq[next * block..(next + 1) * block]);
                crate::matmul::prefetch(&wd[next * STRIP..(next + 1) * STRIP]);
            }
            // SAFETY: scales b·16 .. b·16 + 16 and quant bytes b·block ..
            // (b + 1)·block exist (asserted above).
            let ws =
                unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(wd.as_ptr().add(b * STRIP).cast())) };
            let mut w = [_mm512_setzero_si512(); 8];
            let base = unsafe { wq.as_ptr().add(b * block) };
            if Q4 {
                for g in 0..4 {
                    // SAFETY: within this block's bytes (asserted above).
                    let p = unsafe { _mm512_loadu_si512(base.add(g * 64).cast()) };
                    w[g] = _mm512_and_si512(p, low);
                    w[g + 4] = _mm512_and_si512(_mm512_srli_epi16(p, 4), low);
                }
            } else {
                for (g, wg) in w.iter_mut().enumerate() {
                    // SAFETY: within this block's bytes (asserted above).
                    *wg = unsafe { _mm512_loadu_si512(base.add(g * 64).cast()) };
                }
            }
            for (a, x) in acc.iter_mut().zip(xs) {
                // SAFETY: bytes b·32 .. b·32 + 32 of the row exist (asserted above).
                let xp = unsafe { x.qs.as_ptr().add(b * QK) }.cast::<i32>();
                let group = |g: usize| {
                    // SAFETY: group g < 8 lies in the block; unaligned read.
                    _mm512_set1_epi32(unsafe { xp.add(g).read_unaligned() })
                };
                // Two chains, so the multiply-adds do not all wait on one.
                let mut s0 = _mm512_set1_epi32(offset * x.sums[b]);
                let mut s1 = _mm512_setzero_si512();
                for g in (0..8).step_by(2) {
                    s0 = _mm512_dpbusd_epi32(s0, w[g], group(g));
                    s1 = _mm512_dpbusd_epi32(s1, w[g + 1], group(g + 1));
                }
                let s = _mm512_add_epi32(s0, s1);
                let scale = _mm512_mul_ps(ws, _mm512_set1_ps(x.d[b]));
                *a = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(s), *a);
            }
        }
        acc.map(|a| {
            let mut o = [0.0f32; STRIP];
            // SAFETY: `o` has room for 16 floats.
            unsafe { _mm512_storeu_ps(o.as_mut_ptr(), a) };
            o
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The strips against a plain f64 reference, for both formats, shapes
    /// with a partial last strip, and each row alone against the batch
    /// (row kernels in groups of four, or AMX tiles). Only
    /// where the CPU has AVX-512 VNNI (elsewhere no `Strips` is built, and
    /// the row kernels of `q8` run instead, tested there).
    #[test]
    fn strips_match_the_scalar_reference() {
        if !Isa::best().vnni512() {
            return;
        }
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q5_0] {
            // m from `AMX_MIN_ROWS` up: the AMX path, where the CPU has it.
            for (n, k, m) in [
                (1, 32, 1),
                (17, 96, 3),
                (40, 256, 9),
                (16, 64, 4),
                (40, 256, 20),
                (17, 96, 33),
            ] {
                let wv = crate::q8::tests::values(n * k, 1);
                let w = Tensor::from_vec(wv, (n, k), &Device::Cpu).unwrap();
                let q = QTensor::quantize(&w, dtype).unwrap();
                assert!(Strips::handles(&q));
                let st = Strips::from_qtensor(&q).unwrap();
                let xv = crate::q8::tests::values(m * k, 2);
                let x = Tensor::from_vec(xv.clone(), (m, k), &Device::Cpu).unwrap();
                let got = crate::q8::tests::flat(&st.forward(&x).unwrap());
                let want = crate::q8::tests::reference(&q, &xv, n, k);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{dtype:?} n={n} k={k} m={m} [{i}]: {g} vs {w}"
                    );
                }
                // Rows read back as the table's own dequantization gives them.
                let ids: Vec<u32> = (0..n as u32).collect();
                let rows = crate::q8::tests::flat(&st.rows(&ids, &Device::Cpu).unwrap());
                let table = crate::q8::tests::flat(&q.dequantize(&Device::Cpu).unwrap());
                assert_eq!(rows, table, "{dtype:?} rows");
                assert!(st.rows(&[n as u32], &Device::Cpu).is_err());
                for i in 0..m {
                    let one =
                        crate::q8::tests::flat(&st.forward(&x.narrow(0, i, 1).unwrap()).unwrap());
                    assert_eq!(one, got[i * n..(i + 1) * n], "{dtype:?} row {i}");
                }
            }
        }
    }
}
