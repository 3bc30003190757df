//! The integer matrix kernels' front ([`Q8Matrix`]: weights multiplied
//! against activations quantized to 8 bits), and the Q8_0 and Q4_0 products
//! with llama.cpp's arithmetic: activations quantized to Q8_0 in blocks of 32
//! (one scale each), integer dot products per block against the weights'
//! quants, scaled and summed in f32. The K-quants are in [`super::kquant`].
//!
//! candle 0.11 multiplies Q8_0 weights on AVX512-VNNI machines through a
//! repacked kernel that quantizes activations to Q8_K (one scale per 256
//! values). That is faster but coarser than ggml, and it makes the result
//! depend on the CPU: on an AVX2-only machine the same file gave other
//! logits. Greedy decoding then drifts from llama.cpp's after a dozen
//! tokens (tests/tests/reference.rs), so Q8_0 goes through this kernel.
//! candle's Q4_0 CPU path is several times slower than ggml's (issue 6), so
//! Q4_0 does too; its quants stay packed, two per byte. How the products
//! are driven (bands, four activation rows at a time) is [`super::matmul`]'s.

use std::ops::Range;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;
use half::f16;

use super::kquant::KMatrix;
use super::matmul::{self, round_half_even, Isa, RowKernel};
use super::strips::Strips;

/// Values per block.
pub(super) const QK: usize = 32;
/// Bytes of one GGUF Q8_0 block: an f16 scale and 32 int8.
const Q8_BLOCK_BYTES: usize = 2 + QK;
/// Bytes of one GGUF Q4_0 block: an f16 scale and 32 nibbles.
const Q4_BLOCK_BYTES: usize = 2 + QK / 2;
/// Bytes of one GGUF Q5_0 block: an f16 scale, the 32 fifth bits, 32 nibbles.
pub(super) const Q5_BLOCK_BYTES: usize = 2 + 4 + QK / 2;

/// A GGUF Q5_0 block as the Q8_0 block of the same values. Its quants
/// `q - 16` (q of five bits) fit int8 exactly and the scale is kept, so a
/// Q8_0 kernel sums the same integers and scales them as ggml's
/// `vec_dot_q5_0_q8_0` does: Q5_0 (llama.cpp's type for the rows of
/// Q4_K_M files whose length is not a multiple of 256, most of Gemma 3
/// 270M) runs on the Q8_0 kernels, at 34 bytes a block instead of 22.
pub(super) fn q5_0_as_q8_0(block: &[u8]) -> [u8; Q8_BLOCK_BYTES] {
    let mut out = [0u8; Q8_BLOCK_BYTES];
    out[..2].copy_from_slice(&block[..2]);
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    for (j, &byte) in block[6..6 + QK / 2].iter().enumerate() {
        let lo = (byte & 0x0F) | ((((qh >> j) & 1) as u8) << 4);
        let hi = (byte >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
        out[2 + j] = (lo as i8 - 16) as u8;
        out[2 + j + QK / 2] = (hi as i8 - 16) as u8;
    }
    out
}

/// A weight matrix for the integer kernels, which multiply it against
/// activations quantized to 8 bits: Q8_0 and Q4_0 against Q8_0 blocks
/// (here), Q4_K, Q5_K and Q6_K against Q8_K ones ([`super::kquant`]).
#[derive(Debug)]
pub struct Q8Matrix(Kind);

#[derive(Debug)]
enum Kind {
    Q0(Q0Matrix),
    Strips(Strips),
    K(KMatrix),
}

impl Q8Matrix {
    /// Whether an integer kernel multiplies `t`'s type.
    pub fn handles(t: &QTensor) -> bool {
        Q0Matrix::handles(t) || KMatrix::handles(t)
    }

    /// Copies a `QTensor` of shape `(n, k)` into its kernel's layout.
    pub fn from_qtensor(t: &QTensor) -> candle_core::Result<Q8Matrix> {
        Ok(Q8Matrix(if KMatrix::handles(t) {
            Kind::K(KMatrix::from_qtensor(t)?)
        } else if Strips::handles(t) {
            Kind::Strips(Strips::from_qtensor(t)?)
        } else {
            Kind::Q0(Q0Matrix::from_qtensor(t)?)
        }))
    }

    /// Bytes of a `(n, k)` matrix of `dtype` in a GGUF file, where
    /// [`Q8Matrix::from_bytes`] takes that type on this CPU.
    pub fn file_bytes(dtype: GgmlDType, n: usize, k: usize) -> Option<usize> {
        if Strips::takes(dtype) {
            Strips::file_bytes(dtype, n, k)
        } else {
            KMatrix::file_bytes(dtype, n, k)
        }
    }

    /// Repacks a `(n, k)` matrix of `dtype` from its bytes in a GGUF file
    /// (a type [`Q8Matrix::file_bytes`] takes); `done` is told each range of
    /// `data` it has finished with, so the caller can drop those pages.
    pub fn from_bytes(
        dtype: GgmlDType,
        n: usize,
        k: usize,
        data: &[u8],
        done: &mut dyn FnMut(Range<usize>),
    ) -> candle_core::Result<Q8Matrix> {
        Ok(Q8Matrix(if Strips::takes(dtype) {
            Kind::Strips(Strips::from_bytes(dtype, n, k, data, done)?)
        } else {
            Kind::K(KMatrix::from_bytes(dtype, n, k, data, done)?)
        }))
    }

    /// Whether [`Q8Matrix::rows`] can read rows (the strip layout).
    pub fn has_rows(&self) -> bool {
        matches!(self.0, Kind::Strips(_))
    }

    /// Rows `ids`, dequantized (a tied embedding; strip layout only).
    pub fn rows(&self, ids: &[u32], device: &candle_core::Device) -> candle_core::Result<Tensor> {
        match &self.0 {
            Kind::Strips(m) => m.rows(ids, device),
            _ => candle_core::bail!("this layout does not give rows"),
        }
    }

    /// `x @ selfᵀ` for `x` of shape `(..., k)`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.0 {
            Kind::Q0(m) => matmul::forward(m, x),
            Kind::Strips(m) => m.forward(x),
            Kind::K(m) => matmul::forward(m, x),
        }
    }
}

/// The quants of a weight matrix.
#[derive(Debug)]
enum Quants {
    /// Q8_0: one int8 per value.
    Q8(Vec<i8>),
    /// Q4_0: per block 16 bytes; byte `j` holds value `j` in its low nibble
    /// and value `j + 16` in its high one, each stored plus 8.
    Q4(Vec<u8>),
}

/// One weight row's quants, as [`Quants`] stores them.
enum RowQuants<'a> {
    Q8(&'a [i8]),
    Q4(&'a [u8]),
}

/// A Q8_0 or Q4_0 weight matrix `(n, k)`: row `i` produces output `i`.
#[derive(Debug)]
struct Q0Matrix {
    n: usize,
    k: usize,
    /// `n * k / 32` block scales.
    d: Vec<f32>,
    qs: Quants,
}

/// An activation row quantized like ggml's `quantize_row_q8_0`.
pub(super) struct QRow {
    /// One scale per block.
    pub(super) d: Vec<f32>,
    /// The quants.
    pub(super) qs: Vec<i8>,
    /// Per block, the sum of its quants (for [`super::strips`], which
    /// takes the weights' offset off with it; empty elsewhere).
    pub(super) sums: Vec<i32>,
}

/// Quantizes `x` (whole blocks) for the kernels of `isa`.
pub(super) fn quantize_row(x: &[f32], isa: Isa) -> QRow {
    let nb = x.len() / QK;
    let mut d = Vec::with_capacity(nb);
    let mut qs = Vec::with_capacity(x.len());
    for block in x.chunks_exact(QK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        d.push(f16::from_f32(scale).to_f32());
        // ggml's SIMD paths round half to even.
        qs.extend(block.iter().map(|v| round_half_even(v * id) as i8));
    }
    let sums = if isa.vnni512() {
        qs.chunks_exact(QK)
            .map(|q| q.iter().map(|&v| i32::from(v)).sum())
            .collect()
    } else {
        Vec::new()
    };
    QRow { d, qs, sums }
}

/// The row kernels' paths this CPU can run, for the tests: portable, and
/// AVX2 where there is any SIMD path (every x86 [`Isa`] past portable has
/// AVX2 and FMA).
#[cfg(test)]
fn runnable() -> Vec<Isa> {
    let mut out = vec![Isa::Portable];
    #[cfg(target_arch = "x86_64")]
    if Isa::best() != Isa::Portable {
        out.push(Isa::Avx2);
    }
    out
}

/// ggml's AVX2 block products, in Rust intrinsics: per block of 32, the
/// signed bytes multiplied pairwise (`maddubs` on |w| and x·sign(w)), summed
/// to eight i32 lanes, converted, and accumulated with the two scales.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use std::arch::x86_64::*;

    use super::QK;

    /// Σ over the 32 products of one block of signed bytes, as 8 f32 lanes.
    #[target_feature(enable = "avx2,fma")]
    fn block_sum(w: __m256i, x: __m256i) -> __m256 {
        let aw = _mm256_sign_epi8(w, w);
        let sx = _mm256_sign_epi8(x, w);
        // |w|·(±x) pairs fit i16: at most 2·128·127.
        let pairs = _mm256_maddubs_epi16(aw, sx);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// `N` activation rows against one weight row: each weight block is
    /// loaded (and for Q4_0 unpacked) once for all of them, and each row
    /// gets the bits it would get alone. `w_at(b)` gives block `b` of the
    /// weights as 32 signed bytes.
    #[target_feature(enable = "avx2,fma")]
    fn dot_xn<const N: usize>(
        wd: &[f32],
        xs: [(&[i8], &[f32]); N],
        w_at: impl Fn(usize) -> __m256i,
    ) -> [f32; N] {
        let nb = wd.len();
        for (q, d) in xs {
            assert!(q.len() >= nb * QK && d.len() >= nb);
        }
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..nb {
            let w = w_at(b);
            for (a, (q, d)) in acc.iter_mut().zip(xs) {
                // SAFETY: bytes b·32 .. b·32 + 32 of the row exist (asserted above).
                let x = unsafe { _mm256_loadu_si256(q.as_ptr().add(b * QK).cast()) };
                *a = _mm256_fmadd_ps(_mm256_set1_ps(wd[b] * d[b]), block_sum(w, x), *a);
            }
        }
        acc.map(|a| hsum(a))
    }

    /// A Q8_0 row (`wq`, one scale per block in `wd`) times `N` Q8_0
    /// activation rows.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot_q8<const N: usize>(
        wq: &[i8],
        wd: &[f32],
        xs: [(&[i8], &[f32]); N],
    ) -> [f32; N] {
        assert!(wq.len() >= wd.len() * QK);
        dot_xn(wd, xs, |b| {
            // SAFETY: bytes b·32 .. b·32 + 32 exist (asserted above).
            unsafe { _mm256_loadu_si256(wq.as_ptr().add(b * QK).cast()) }
        })
    }

    /// A Q4_0 row (16 packed bytes per block) times `N` Q8_0 activation rows.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot_q4<const N: usize>(
        wq: &[u8],
        wd: &[f32],
        xs: [(&[i8], &[f32]); N],
    ) -> [f32; N] {
        let half = QK / 2;
        assert!(wq.len() >= wd.len() * half);
        let low = _mm256_set1_epi8(0x0F);
        let eight = _mm256_set1_epi8(8);
        dot_xn(wd, xs, |b| {
            // SAFETY: bytes b·16 .. b·16 + 16 exist (asserted above).
            let packed = unsafe { _mm_loadu_si128(wq.as_ptr().add(b * half).cast()) };
            // Values 0..16 from the low nibbles, 16..32 from the high ones.
            let both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
            _mm256_sub_epi8(_mm256_and_si256(both, low), eight)
        })
    }
}

/// `Σ_b wd[b]·xd[b]·sumi(b)` over the blocks, in eight running sums so
/// that the float adds do not wait on each other (one chain of dependent
/// adds would cost more than the integer work of a block).
#[inline(always)]
fn blocks_dot(wd: &[f32], xd: &[f32], sumi: impl Fn(usize) -> i32) -> f32 {
    const LANES: usize = 8;
    let mut lanes = [0.0f32; LANES];
    let nb = wd.len().min(xd.len());
    let mut b = 0;
    while b < nb {
        let g = (nb - b).min(LANES);
        let mut si = [0.0f32; LANES];
        let mut sc = [0.0f32; LANES];
        for j in 0..g {
            si[j] = sumi(b + j) as f32;
            sc[j] = wd[b + j] * xd[b + j];
        }
        for j in 0..LANES {
            lanes[j] += sc[j] * si[j];
        }
        b += g;
    }
    lanes.iter().sum()
}

impl Q0Matrix {
    /// Whether this kernel multiplies `t`'s type.
    fn handles(t: &QTensor) -> bool {
        matches!(
            t.dtype(),
            GgmlDType::Q8_0 | GgmlDType::Q4_0 | GgmlDType::Q5_0
        )
    }

    /// Copies a Q8_0, Q4_0 or Q5_0 (as Q8_0) `QTensor` of shape `(n, k)`.
    fn from_qtensor(t: &QTensor) -> candle_core::Result<Q0Matrix> {
        let (n, k) = t.shape().dims2()?;
        let (q4, q5) = match t.dtype() {
            GgmlDType::Q8_0 => (false, false),
            GgmlDType::Q4_0 => (true, false),
            GgmlDType::Q5_0 => (false, true),
            other => candle_core::bail!("no integer kernel for {other:?}"),
        };
        if k % QK != 0 {
            candle_core::bail!("{:?} rows of {k} values are not whole blocks", t.dtype());
        }
        let data = t.data()?;
        let blocks = n * k / QK;
        let block_bytes = match (q4, q5) {
            (true, _) => Q4_BLOCK_BYTES,
            (_, true) => Q5_BLOCK_BYTES,
            _ => Q8_BLOCK_BYTES,
        };
        if data.len() != blocks * block_bytes {
            candle_core::bail!(
                "{:?} data is {} bytes, expected {}",
                t.dtype(),
                data.len(),
                blocks * block_bytes
            );
        }
        let mut d = Vec::with_capacity(blocks);
        let mut packed = Vec::with_capacity(blocks * QK);
        for b in data.chunks_exact(block_bytes) {
            d.push(f16::from_le_bytes([b[0], b[1]]).to_f32());
            if q5 {
                packed.extend_from_slice(&q5_0_as_q8_0(b)[2..]);
            } else {
                packed.extend_from_slice(&b[2..]);
            }
        }
        let qs = if q4 {
            Quants::Q4(packed)
        } else {
            Quants::Q8(packed.into_iter().map(|q| q as i8).collect())
        };
        Ok(Q0Matrix { n, k, d, qs })
    }

    /// Row `row`'s block scales and quants.
    fn row(&self, row: usize) -> (&[f32], RowQuants<'_>) {
        let nb = self.k / QK;
        let wd = &self.d[row * nb..(row + 1) * nb];
        let wq = match &self.qs {
            Quants::Q8(qs) => RowQuants::Q8(&qs[row * self.k..(row + 1) * self.k]),
            Quants::Q4(qs) => {
                let bytes = nb * QK / 2;
                RowQuants::Q4(&qs[row * bytes..(row + 1) * bytes])
            }
        };
        (wd, wq)
    }

    /// Plain Rust the compiler vectorizes for whatever target it builds
    /// for; the other paths inline it with more instructions allowed.
    #[inline(always)]
    fn dot_row_portable(&self, row: usize, x: &QRow) -> f32 {
        let (wd, wq) = self.row(row);
        match wq {
            RowQuants::Q8(wq) => blocks_dot(wd, &x.d, |b| {
                let (wb, xb) = (&wq[b * QK..(b + 1) * QK], &x.qs[b * QK..(b + 1) * QK]);
                wb.iter()
                    .zip(xb)
                    .map(|(&a, &b)| i32::from(a) * i32::from(b))
                    .sum()
            }),
            RowQuants::Q4(wq) => {
                let half = QK / 2;
                blocks_dot(wd, &x.d, |b| {
                    let wb = &wq[b * half..(b + 1) * half];
                    let (lo, hi) = x.qs[b * QK..(b + 1) * QK].split_at(half);
                    wb.iter()
                        .zip(lo.iter().zip(hi))
                        .map(|(&w, (&a, &b))| {
                            let l = i32::from(w & 0x0F) - 8;
                            let h = i32::from(w >> 4) - 8;
                            l * i32::from(a) + h * i32::from(b)
                        })
                        .sum()
                })
            }
        }
    }
}

impl RowKernel for Q0Matrix {
    type Act = QRow;

    fn n(&self) -> usize {
        self.n
    }

    fn k(&self) -> usize {
        self.k
    }

    fn name(&self) -> &'static str {
        match self.qs {
            Quants::Q8(_) => "Q8_0",
            Quants::Q4(_) => "Q4_0",
        }
    }

    fn quantize(&self, x: &[f32]) -> QRow {
        quantize_row(x, Isa::best())
    }

    fn dot_band(&self, rows: Range<usize>, xs: &[&QRow], out: &mut [f32]) {
        let len = rows.len();
        if let &[a, b, c, d] = xs {
            for (j, r) in rows.enumerate() {
                for (i, v) in self.dot_row4(r, [a, b, c, d]).into_iter().enumerate() {
                    out[i * len + j] = v;
                }
            }
        } else {
            for (i, x) in xs.iter().enumerate() {
                for (j, r) in rows.clone().enumerate() {
                    out[i * len + j] = self.dot_row(r, x);
                }
            }
        }
    }
}

impl Q0Matrix {
    /// Row `row` of the weights times `x`, on the best path this CPU has.
    fn dot_row(&self, row: usize, x: &QRow) -> f32 {
        let [v] = self.dot_rows(Isa::best(), row, [x]);
        v
    }

    /// Row `row` of the weights times four activation rows.
    fn dot_row4(&self, row: usize, xs: [&QRow; 4]) -> [f32; 4] {
        self.dot_rows(Isa::best(), row, xs)
    }
}

impl Q0Matrix {
    /// Row `row` of the weights times `N` activation rows (quantized for
    /// `isa`) on `isa`'s path, which the CPU must have.
    fn dot_rows<const N: usize>(&self, isa: Isa, row: usize, xs: [&QRow; N]) -> [f32; N] {
        #[cfg(target_arch = "x86_64")]
        {
            let (wd, wq) = self.row(row);
            match isa {
                // SAFETY: every x86 `Isa` past portable was detected with
                // AVX2 and FMA, all that the `avx2` functions need.
                #[allow(unsafe_code)]
                Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni => {
                    let xs = xs.map(|x| (x.qs.as_slice(), x.d.as_slice()));
                    return unsafe {
                        match wq {
                            RowQuants::Q8(wq) => avx2::dot_q8(wq, wd, xs),
                            RowQuants::Q4(wq) => avx2::dot_q4(wq, wd, xs),
                        }
                    };
                }
                Isa::Portable => {}
            }
        }
        let _ = isa;
        xs.map(|x| self.dot_row_portable(row, x))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// A tensor's values, flattened.
    pub(crate) fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Deterministic values in [-1, 1), with the edge cases each format has:
    /// an all-zero block (scale 0), a block at the extremes, tiny values.
    pub(crate) fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut v: Vec<f32> = (0..n).map(|_| rng.f32() * 2.0 - 1.0).collect();
        if n >= 3 * QK {
            v[..QK].fill(0.0);
            for (i, x) in v[QK..2 * QK].iter_mut().enumerate() {
                *x = if i % 2 == 0 { 1.0 } else { -1.0 };
            }
            for x in &mut v[2 * QK..3 * QK] {
                *x *= 1e-6;
            }
        }
        v
    }

    /// The plain scalar reference: dequantized weights times the dequantized
    /// Q8_0 activations, summed in f64.
    pub(crate) fn reference(w: &QTensor, x: &[f32], n: usize, k: usize) -> Vec<f32> {
        let wf = flat(&w.dequantize(&Device::Cpu).unwrap());
        let mut out = Vec::new();
        for xr in x.chunks_exact(k) {
            let q = quantize_row(xr, Isa::Portable);
            let xd: Vec<f64> =
                q.qs.iter()
                    .enumerate()
                    .map(|(i, &v)| f64::from(v) * f64::from(q.d[i / QK]))
                    .collect();
            for r in 0..n {
                let row = &wf[r * k..(r + 1) * k];
                let s: f64 = row.iter().zip(&xd).map(|(&a, &b)| f64::from(a) * b).sum();
                out.push(s as f32);
            }
        }
        out
    }

    fn check(dtype: GgmlDType, n: usize, k: usize, m: usize) {
        let wv = values(n * k, 1);
        let w = Tensor::from_vec(wv, (n, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, dtype).unwrap();
        assert!(Q8Matrix::handles(&q));
        let mat = Q8Matrix::from_qtensor(&q).unwrap();
        // The row kernels, whichever layout the front chose for this CPU.
        let q0 = Q0Matrix::from_qtensor(&q).unwrap();
        let xv = values(m * k, 2);
        let x = Tensor::from_vec(xv.clone(), (m, k), &Device::Cpu).unwrap();
        let got = flat(&mat.forward(&x).unwrap());
        let want = reference(&q, &xv, n, k);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{dtype:?} n={n} k={k} m={m} [{i}]: {g} vs {w}"
            );
        }
        // Every path this CPU runs agrees with the reference (the portable
        // one is the fallback of CPUs without AVX2), and gives a row the same
        // bits alone and among four.
        for isa in runnable() {
            let xq: Vec<QRow> = xv.chunks_exact(k).map(|r| quantize_row(r, isa)).collect();
            for (i, xr) in xq.iter().enumerate() {
                for r in 0..n {
                    let [a] = q0.dot_rows(isa, r, [xr]);
                    let w = want[i * n + r];
                    assert!(
                        (a - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{dtype:?} {isa:?} n={n} k={k} [{i},{r}]: {a} vs {w}"
                    );
                }
            }
            for x4 in xq.chunks_exact(4) {
                for r in 0..n {
                    let four = q0.dot_rows(isa, r, [&x4[0], &x4[1], &x4[2], &x4[3]]);
                    let one = [&x4[0], &x4[1], &x4[2], &x4[3]].map(|x| q0.dot_rows(isa, r, [x])[0]);
                    assert_eq!(four, one, "{dtype:?} {isa:?} row {r}");
                }
            }
        }
        // One row at a time gives the same numbers as the batched product.
        for i in 0..m {
            let xi = x.narrow(0, i, 1).unwrap();
            let one = flat(&mat.forward(&xi).unwrap());
            assert_eq!(one, got[i * n..(i + 1) * n], "{dtype:?} row {i}");
        }
    }

    /// `(n, k, m)`: k = 96 and 160 are odd numbers of blocks (the AVX-512
    /// path's last block goes alone).
    const SHAPES: [(usize, usize, usize); 5] = [
        (1, 32, 1),
        (17, 96, 1),
        (33, 128, 5),
        (16, 256, 16),
        (5, 160, 4),
    ];

    #[test]
    fn q8_0_matches_the_scalar_reference() {
        for (n, k, m) in SHAPES {
            check(GgmlDType::Q8_0, n, k, m);
        }
    }

    #[test]
    fn q4_0_matches_the_scalar_reference() {
        for (n, k, m) in SHAPES {
            check(GgmlDType::Q4_0, n, k, m);
        }
    }

    #[test]
    fn q5_0_matches_the_scalar_reference() {
        for (n, k, m) in SHAPES {
            check(GgmlDType::Q5_0, n, k, m);
        }
    }

    /// Every five-bit quant and both halves of a block come out as ggml's
    /// dequantization has them.
    #[test]
    fn q5_0_blocks_read_as_ggml_reads_them() {
        // Values -16..=15 times a power of two are exact Q5_0 quants.
        let v: Vec<f32> = (0..2 * QK).map(|i| ((i * 7) % 32) as f32 - 16.0).collect();
        let w = Tensor::from_vec(v, (1, 2 * QK), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q5_0).unwrap();
        let table = flat(&q.dequantize(&Device::Cpu).unwrap());
        let data = q.data().unwrap();
        for (b, block) in data.chunks_exact(Q5_BLOCK_BYTES).enumerate() {
            let q8 = q5_0_as_q8_0(block);
            let d = f16::from_le_bytes([q8[0], q8[1]]).to_f32();
            for j in 0..QK {
                assert_eq!(
                    d * f32::from(q8[2 + j] as i8),
                    table[b * QK + j],
                    "[{b}, {j}]"
                );
            }
        }
    }

    /// The quantizer rounds half to even, as ggml does, at every half step
    /// of its range.
    #[test]
    fn quantizer_rounds_half_to_even() {
        // amax 127 makes the scale 1: the quants are the values rounded.
        let mut x: Vec<f32> = (-254..=254).map(|i| i as f32 / 2.0).collect();
        x.retain(|v| v.abs() <= 127.0);
        x.resize(x.len().div_ceil(QK) * QK, 127.0);
        for block in x.chunks_exact_mut(QK) {
            block[0] = 127.0;
        }
        let q = quantize_row(&x, Isa::Portable);
        for (v, &got) in x.iter().zip(&q.qs) {
            assert_eq!(got, v.round_ties_even() as i8, "{v}");
        }
    }

    #[test]
    fn refuses_other_types_and_partial_blocks() {
        let w = Tensor::zeros((4, 64), DType::F32, &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        assert!(!Q8Matrix::handles(&q));
        assert!(Q8Matrix::from_qtensor(&q).is_err());
        // Q4_K needs 256-value blocks: 64 are refused.
        if let Ok(q) = QTensor::quantize(&w, GgmlDType::Q4K) {
            assert!(Q8Matrix::from_qtensor(&q).is_err());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod from_bytes_tests {
    use super::tests::{flat, values};
    use super::*;
    use candle_core::Device;

    /// Repacking from a file's bytes gives the matrix the `QTensor` path
    /// gives, and reports every byte it read as finished, in order, once.
    #[test]
    fn from_bytes_matches_from_qtensor_and_reports_every_byte() {
        let (n, k, m) = (48, 512, 3);
        let w = Tensor::from_vec(values(n * k, 11), (n, k), &Device::Cpu).unwrap();
        let x = Tensor::from_vec(values(m * k, 12), (m, k), &Device::Cpu).unwrap();
        for dtype in [
            GgmlDType::Q8_0,
            GgmlDType::Q4_0,
            GgmlDType::Q5_0,
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ] {
            let Some(len) = Q8Matrix::file_bytes(dtype, n, k) else {
                // Q8_0/Q4_0/Q5_0 from bytes only where the strip kernel runs.
                assert!(matches!(
                    dtype,
                    GgmlDType::Q8_0 | GgmlDType::Q4_0 | GgmlDType::Q5_0
                ));
                continue;
            };
            let q = QTensor::quantize(&w, dtype).unwrap();
            let data = q.data().unwrap();
            assert_eq!(data.len(), len, "{dtype:?}");
            let mut seen = Vec::new();
            let ours = Q8Matrix::from_bytes(dtype, n, k, &data, &mut |r| seen.push(r)).unwrap();
            let mut at = 0;
            for r in &seen {
                assert_eq!(r.start, at, "{dtype:?}: ranges {seen:?}");
                at = r.end;
            }
            assert_eq!(at, len, "{dtype:?}: ranges {seen:?}");
            let theirs = Q8Matrix::from_qtensor(&q).unwrap();
            assert_eq!(
                flat(&ours.forward(&x).unwrap()),
                flat(&theirs.forward(&x).unwrap()),
                "{dtype:?}"
            );
            // A wrong length is an error, not a panic.
            assert!(Q8Matrix::from_bytes(dtype, n, k, &data[1..], &mut |_| {}).is_err());
        }
    }
}
