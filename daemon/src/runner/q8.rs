//! Q8_0 and Q4_0 matrix products with llama.cpp's arithmetic: activations
//! quantized to Q8_0 in blocks of 32 (one scale each), integer dot products
//! per block against the weights' quants, scaled and summed in f32.
//!
//! candle 0.11 multiplies Q8_0 weights on AVX512-VNNI machines through a
//! repacked kernel that quantizes activations to Q8_K (one scale per 256
//! values). That is faster but coarser than ggml, and it makes the result
//! depend on the CPU: on an AVX2-only machine the same file gave other
//! logits. Greedy decoding then drifts from llama.cpp's after a dozen
//! tokens (tests/tests/reference.rs), so Q8_0 goes through this kernel.
//! candle's Q4_0 CPU path is several times slower than ggml's (issue 6), so
//! Q4_0 does too; its quants stay packed, two per byte.
//!
//! A product of many activation rows (a prompt) walks the weights once:
//! each task takes a band of weight rows and multiplies every activation row
//! by it while the band is in cache, instead of one pass over all weights per
//! activation row.

use candle_core::quantized::QTensor;
use candle_core::{DType, Tensor};
use half::f16;
use rayon::prelude::*;

/// Values per block.
const QK: usize = 32;
/// Bytes of one GGUF Q8_0 block: an f16 scale and 32 int8.
const Q8_BLOCK_BYTES: usize = 2 + QK;
/// Bytes of one GGUF Q4_0 block: an f16 scale and 32 nibbles.
const Q4_BLOCK_BYTES: usize = 2 + QK / 2;
/// Output rows per parallel task.
const ROWS_PER_TASK: usize = 16;

/// The quants of a weight matrix.
#[derive(Debug)]
enum Quants {
    /// Q8_0: one int8 per value.
    Q8(Vec<i8>),
    /// Q4_0: per block 16 bytes; byte `j` holds value `j` in its low nibble
    /// and value `j + 16` in its high one, each stored plus 8.
    Q4(Vec<u8>),
}

/// A Q8_0 or Q4_0 weight matrix `(n, k)`: row `i` produces output `i`.
#[derive(Debug)]
pub struct Q8Matrix {
    n: usize,
    k: usize,
    /// `n * k / 32` block scales.
    d: Vec<f32>,
    qs: Quants,
}

/// An activation row quantized like ggml's `quantize_row_q8_0`.
struct QRow {
    d: Vec<f32>,
    qs: Vec<i8>,
}

fn quantize_row(x: &[f32]) -> QRow {
    let nb = x.len() / QK;
    let mut d = Vec::with_capacity(nb);
    let mut qs = Vec::with_capacity(x.len());
    for block in x.chunks_exact(QK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        d.push(f16::from_f32(scale).to_f32());
        // ggml's SIMD paths round half to even.
        qs.extend(block.iter().map(|v| (v * id).round_ties_even() as i8));
    }
    QRow { d, qs }
}

impl Q8Matrix {
    /// Whether this kernel multiplies `t`'s type.
    pub fn handles(t: &QTensor) -> bool {
        use candle_core::quantized::GgmlDType;
        matches!(t.dtype(), GgmlDType::Q8_0 | GgmlDType::Q4_0)
    }

    /// Copies a Q8_0 or Q4_0 `QTensor` of shape `(n, k)`.
    pub fn from_qtensor(t: &QTensor) -> candle_core::Result<Q8Matrix> {
        use candle_core::quantized::GgmlDType;
        let (n, k) = t.shape().dims2()?;
        let q4 = match t.dtype() {
            GgmlDType::Q8_0 => false,
            GgmlDType::Q4_0 => true,
            other => candle_core::bail!("no integer kernel for {other:?}"),
        };
        if k % QK != 0 {
            candle_core::bail!("{:?} rows of {k} values are not whole blocks", t.dtype());
        }
        let data = t.data()?;
        let blocks = n * k / QK;
        let block_bytes = if q4 { Q4_BLOCK_BYTES } else { Q8_BLOCK_BYTES };
        if data.len() != blocks * block_bytes {
            candle_core::bail!(
                "{:?} data is {} bytes, expected {}",
                t.dtype(),
                data.len(),
                blocks * block_bytes
            );
        }
        let mut d = Vec::with_capacity(blocks);
        let mut packed = Vec::with_capacity(blocks * (block_bytes - 2));
        for b in data.chunks_exact(block_bytes) {
            d.push(f16::from_le_bytes([b[0], b[1]]).to_f32());
            packed.extend_from_slice(&b[2..]);
        }
        let qs = if q4 {
            Quants::Q4(packed)
        } else {
            Quants::Q8(packed.into_iter().map(|q| q as i8).collect())
        };
        Ok(Q8Matrix { n, k, d, qs })
    }

    fn dot_row(&self, row: usize, x: &QRow) -> f32 {
        let nb = self.k / QK;
        let wd = &self.d[row * nb..(row + 1) * nb];
        let scales = wd.iter().zip(&x.d);
        let mut acc = 0.0f32;
        match &self.qs {
            Quants::Q8(qs) => {
                let wq = &qs[row * self.k..(row + 1) * self.k];
                for ((wb, xb), (dw, dx)) in
                    wq.chunks_exact(QK).zip(x.qs.chunks_exact(QK)).zip(scales)
                {
                    let sumi: i32 = wb
                        .iter()
                        .zip(xb)
                        .map(|(&a, &b)| i32::from(a) * i32::from(b))
                        .sum();
                    acc += (dw * dx) * sumi as f32;
                }
            }
            Quants::Q4(qs) => {
                let half = QK / 2;
                let wq = &qs[row * nb * half..(row + 1) * nb * half];
                for ((wb, xb), (dw, dx)) in
                    wq.chunks_exact(half).zip(x.qs.chunks_exact(QK)).zip(scales)
                {
                    let (lo, hi) = xb.split_at(half);
                    let sumi: i32 = wb
                        .iter()
                        .zip(lo.iter().zip(hi))
                        .map(|(&w, (&a, &b))| {
                            let l = i32::from(w & 0x0F) - 8;
                            let h = i32::from(w >> 4) - 8;
                            l * i32::from(a) + h * i32::from(b)
                        })
                        .sum();
                    acc += (dw * dx) * sumi as f32;
                }
            }
        }
        acc
    }

    /// `x @ selfᵀ` for `x` of shape `(..., k)`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let Some((&k, lead)) = dims.split_last() else {
            candle_core::bail!("Q8_0 matmul of a scalar");
        };
        if k != self.k {
            candle_core::bail!("Q8_0 matmul: input has {k} columns, weight {}", self.k);
        }
        let m: usize = lead.iter().product();
        let xs: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let rows: Vec<QRow> = xs.chunks_exact(k).map(quantize_row).collect();
        let n = self.n;
        let mut out = vec![0.0f32; m * n];
        if m == 1 {
            out.par_chunks_mut(ROWS_PER_TASK)
                .enumerate()
                .for_each(|(c, chunk)| {
                    for (j, o) in chunk.iter_mut().enumerate() {
                        *o = self.dot_row(c * ROWS_PER_TASK + j, &rows[0]);
                    }
                });
        } else {
            // Weight-row bands in parallel, every activation row per band:
            // the band is read from memory once (see the module docs). The
            // result comes out transposed, (n, m), and is turned round after.
            let mut t = vec![0.0f32; n * m];
            t.par_chunks_mut(ROWS_PER_TASK * m)
                .enumerate()
                .for_each(|(c, band)| {
                    for (j, outs) in band.chunks_exact_mut(m).enumerate() {
                        let r = c * ROWS_PER_TASK + j;
                        for (o, xr) in outs.iter_mut().zip(&rows) {
                            *o = self.dot_row(r, xr);
                        }
                    }
                });
            for (r, col) in t.chunks_exact(m).enumerate() {
                for (i, v) in col.iter().enumerate() {
                    out[i * n + r] = *v;
                }
            }
        }
        let mut shape = lead.to_vec();
        shape.push(self.n);
        Tensor::from_vec(out, shape, x.device())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;
    use candle_core::Device;

    /// Deterministic values in [-1, 1), with the edge cases each format has:
    /// an all-zero block (scale 0), a block at the extremes, tiny values.
    fn values(n: usize, seed: u64) -> Vec<f32> {
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
    fn reference(w: &QTensor, x: &[f32], n: usize, k: usize) -> Vec<f32> {
        let wf: Vec<f32> = w
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut out = Vec::new();
        for xr in x.chunks_exact(k) {
            let q = quantize_row(xr);
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
        let xv = values(m * k, 2);
        let x = Tensor::from_vec(xv.clone(), (m, k), &Device::Cpu).unwrap();
        let got: Vec<f32> = mat
            .forward(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = reference(&q, &xv, n, k);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{dtype:?} n={n} k={k} m={m} [{i}]: {g} vs {w}"
            );
        }
        // One row at a time gives the same numbers as the batched product.
        for i in 0..m {
            let xi = x.narrow(0, i, 1).unwrap();
            let one: Vec<f32> = mat
                .forward(&xi)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(one, got[i * n..(i + 1) * n], "{dtype:?} row {i}");
        }
    }

    #[test]
    fn q8_0_matches_the_scalar_reference() {
        for (n, k, m) in [(1, 32, 1), (17, 96, 1), (33, 128, 5), (16, 256, 16)] {
            check(GgmlDType::Q8_0, n, k, m);
        }
    }

    #[test]
    fn q4_0_matches_the_scalar_reference() {
        for (n, k, m) in [(1, 32, 1), (17, 96, 1), (33, 128, 5), (16, 256, 16)] {
            check(GgmlDType::Q4_0, n, k, m);
        }
    }

    #[test]
    fn refuses_other_types_and_partial_blocks() {
        let w = Tensor::zeros((4, 64), DType::F32, &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4K);
        // Q4_K needs 256-value blocks; either way it is not ours.
        if let Ok(q) = q {
            assert!(!Q8Matrix::handles(&q));
            assert!(Q8Matrix::from_qtensor(&q).is_err());
        }
    }
}
