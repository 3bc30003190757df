//! The scalar reference that every kernel path is tested against, shared
//! by the tests of each format and layout: deterministic weights and
//! activations with each format's edge cases, candle's quantizer and
//! dequantizer (an implementation independent of ours) for the weights,
//! and the plain product in f64 of the dequantized weights with the
//! dequantized activations. A path passes when it is within f32 rounding
//! of it; the paths are compared with each other bit for bit by their tests.

#![allow(clippy::unwrap_used)]

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{Device, Tensor};

use crate::formats::q8_0::{self, Q8_0Row, QK};
use crate::formats::q8_k::{Q8KRow, QK_K};
use crate::Format;

/// Deterministic values in [-1, 1).
pub(crate) fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| rng.f32() * 2.0 - 1.0).collect()
}

/// [`uniform`], with the edge cases the blocks of 32 have: an all-zero
/// block (scale 0), a block at the extremes, tiny values.
pub(crate) fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut v = uniform(n, seed);
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

/// [`uniform`], with per block of 256 the edge cases of the K-quants
/// first: all zero (scales 0), ±1 alternating (extreme quants), tiny
/// values, all positive (min 0), all negative (the largest mins), one value
/// a hundred times the rest (extreme scale).
pub(crate) fn k_values(n: usize, seed: u64) -> Vec<f32> {
    let mut v = uniform(n, seed);
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

fn ggml(format: Format) -> GgmlDType {
    match format {
        Format::Q8_0 => GgmlDType::Q8_0,
        Format::Q4_0 => GgmlDType::Q4_0,
        Format::Q5_0 => GgmlDType::Q5_0,
        Format::Q4K => GgmlDType::Q4K,
        Format::Q5K => GgmlDType::Q5K,
        Format::Q6K => GgmlDType::Q6K,
        // candle has no MXFP4: `quantize` and `dequantize` use ours.
        Format::Mxfp4 => GgmlDType::F32,
    }
}

/// `v`, `(n, k)`, quantized to `format` by candle: the bytes a GGUF file
/// holds.
pub(crate) fn quantize(format: Format, v: &[f32], n: usize, k: usize) -> Vec<u8> {
    if format == Format::Mxfp4 {
        return crate::formats::mxfp4::quantize(&v[..n * k]);
    }
    let w = Tensor::from_vec(v.to_vec(), (n, k), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&w, ggml(format)).unwrap();
    q.data().unwrap().into_owned()
}

/// A GGUF `(n, k)` matrix of `format` dequantized by candle.
pub(crate) fn dequantize(format: Format, data: &[u8], n: usize, k: usize) -> Vec<f32> {
    if format == Format::Mxfp4 {
        let mut out = vec![0f32; n * k];
        crate::formats::mxfp4::dequantize(data, &mut out);
        return out;
    }
    let storage =
        QStorage::from_data(std::borrow::Cow::Borrowed(data), &Device::Cpu, ggml(format)).unwrap();
    let q = QTensor::new(storage, (n, k)).unwrap();
    let t = q.dequantize(&Device::Cpu).unwrap();
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The plain scalar reference: the dequantized weights `w` (`n` rows)
/// times each dequantized activation row of `xs`, summed in f64.
fn reference(w: &[f32], xs: &[Vec<f64>], n: usize, k: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for xd in xs {
        for r in 0..n {
            let row = &w[r * k..(r + 1) * k];
            let s: f64 = row.iter().zip(xd).map(|(&a, &b)| f64::from(a) * b).sum();
            out.push(s as f32);
        }
    }
    out
}

/// The values a Q8_0 activation row stands for.
fn q8_0_values(q: &Q8_0Row) -> Vec<f64> {
    q.qs.iter()
        .enumerate()
        .map(|(i, &v)| f64::from(v) * f64::from(q.d[i / QK]))
        .collect()
}

/// The reference for Q8_0, Q4_0 and Q5_0 weights (`data`, `(n, k)`) times
/// activation rows `x` quantized to Q8_0 as the kernels quantize them.
pub(crate) fn q8_0_reference(
    format: Format,
    data: &[u8],
    x: &[f32],
    n: usize,
    k: usize,
) -> Vec<f32> {
    let w = dequantize(format, data, n, k);
    let xs: Vec<Vec<f64>> = x
        .chunks_exact(k)
        .map(|r| q8_0_values(&q8_0::quantize(r, false)))
        .collect();
    reference(&w, &xs, n, k)
}

/// The reference for K-quant weights (`data`, `(n, k)`) times Q8_K
/// activation rows `xs`.
pub(crate) fn q8_k_reference(
    format: Format,
    data: &[u8],
    xs: &[Q8KRow],
    n: usize,
    k: usize,
) -> Vec<f32> {
    let w = dequantize(format, data, n, k);
    let xs: Vec<Vec<f64>> = xs
        .iter()
        .map(|x| {
            (0..k)
                .map(|i| {
                    let (b, j) = (i / QK_K, i % QK_K);
                    f64::from(x.qs[b][j / 4][j % 4]) * f64::from(x.d[b])
                })
                .collect()
        })
        .collect();
    reference(&w, &xs, n, k)
}

/// `got` within f32 rounding of the reference `want`; `what` names the case.
pub(crate) fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what} [{i}]: {g} vs {w}"
        );
    }
}
