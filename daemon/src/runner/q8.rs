//! Q8_0 matrix products with llama.cpp's arithmetic: activations quantized
//! to Q8_0 in blocks of 32 (one scale each), integer dot products per
//! block, scaled and summed in f32.
//!
//! candle 0.11 multiplies Q8_0 weights on AVX512-VNNI machines through a
//! repacked kernel that quantizes activations to Q8_K (one scale per 256
//! values). That is faster but coarser than ggml, and it makes the result
//! depend on the CPU: on an AVX2-only machine the same file gave other
//! logits. Greedy decoding then drifts from llama.cpp's after a dozen
//! tokens (tests/tests/reference.rs), so Q8_0 goes through this kernel.

use candle_core::quantized::QTensor;
use candle_core::{DType, Tensor};
use half::f16;
use rayon::prelude::*;

/// Values per block.
const QK: usize = 32;
/// Bytes of one GGUF Q8_0 block: an f16 scale and 32 int8.
const BLOCK_BYTES: usize = 2 + QK;
/// Output rows per parallel task.
const ROWS_PER_TASK: usize = 16;

/// A Q8_0 weight matrix `(n, k)`: row `i` produces output `i`.
#[derive(Debug)]
pub struct Q8Matrix {
    n: usize,
    k: usize,
    /// `n * k / 32` block scales.
    d: Vec<f32>,
    /// `n * k` quants.
    qs: Vec<i8>,
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
    /// Copies a Q8_0 `QTensor` of shape `(n, k)`.
    pub fn from_qtensor(t: &QTensor) -> candle_core::Result<Q8Matrix> {
        let (n, k) = t.shape().dims2()?;
        if k % QK != 0 {
            candle_core::bail!("Q8_0 rows of {k} values are not whole blocks");
        }
        let data = t.data()?;
        let blocks = n * k / QK;
        if data.len() != blocks * BLOCK_BYTES {
            candle_core::bail!(
                "Q8_0 data is {} bytes, expected {}",
                data.len(),
                blocks * BLOCK_BYTES
            );
        }
        let mut d = Vec::with_capacity(blocks);
        let mut qs = Vec::with_capacity(n * k);
        for b in data.chunks_exact(BLOCK_BYTES) {
            d.push(f16::from_le_bytes([b[0], b[1]]).to_f32());
            qs.extend(b[2..].iter().map(|&q| q as i8));
        }
        Ok(Q8Matrix { n, k, d, qs })
    }

    fn dot_row(&self, row: usize, x: &QRow) -> f32 {
        let nb = self.k / QK;
        let wd = &self.d[row * nb..(row + 1) * nb];
        let wq = &self.qs[row * self.k..(row + 1) * self.k];
        let mut acc = 0.0f32;
        for ((wb, xb), (dw, dx)) in wq
            .chunks_exact(QK)
            .zip(x.qs.chunks_exact(QK))
            .zip(wd.iter().zip(&x.d))
        {
            let sumi: i32 = wb
                .iter()
                .zip(xb)
                .map(|(&a, &b)| i32::from(a) * i32::from(b))
                .sum();
            acc += (dw * dx) * sumi as f32;
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
        let mut out = vec![0.0f32; m * self.n];
        for (i, xr) in rows.iter().enumerate() {
            out[i * self.n..(i + 1) * self.n]
                .par_chunks_mut(ROWS_PER_TASK)
                .enumerate()
                .for_each(|(c, chunk)| {
                    for (j, o) in chunk.iter_mut().enumerate() {
                        *o = self.dot_row(c * ROWS_PER_TASK + j, xr);
                    }
                });
        }
        let mut shape = lead.to_vec();
        shape.push(self.n);
        Tensor::from_vec(out, shape, x.device())
    }
}
