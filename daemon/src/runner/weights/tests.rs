#![allow(clippy::unwrap_used)]

use super::*;

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| rng.f32() * 2.0 - 1.0).collect()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

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
        let Some(len) = QuantWeights::file_bytes(dtype, n, k) else {
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
        let ours = QuantWeights::from_bytes(dtype, n, k, &data, &mut |r| seen.push(r)).unwrap();
        let mut at = 0;
        for r in &seen {
            assert_eq!(r.start, at, "{dtype:?}: ranges {seen:?}");
            at = r.end;
        }
        assert_eq!(at, len, "{dtype:?}: ranges {seen:?}");
        let theirs = QuantWeights::from_qtensor(&q).unwrap();
        assert_eq!(
            flat(&ours.forward(&x).unwrap()),
            flat(&theirs.forward(&x).unwrap()),
            "{dtype:?}"
        );
        // A wrong length is an error, not a panic.
        assert!(QuantWeights::from_bytes(dtype, n, k, &data[1..], &mut |_| {}).is_err());
    }
}

#[test]
fn refuses_other_types_and_partial_blocks() {
    let w = Tensor::zeros((4, 64), DType::F32, &Device::Cpu).unwrap();
    let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
    assert!(!QuantWeights::handles(&q));
    assert!(QuantWeights::from_qtensor(&q).is_err());
    // Q4_K needs 256-value blocks: 64 are refused.
    if let Ok(q) = QTensor::quantize(&w, GgmlDType::Q4K) {
        assert!(QuantWeights::from_qtensor(&q).is_err());
    }
}

/// Leading dimensions stay; an input of another width is an error.
#[test]
fn forward_keeps_the_leading_shape() {
    let (n, k) = (20, 64);
    let w = Tensor::from_vec(values(n * k, 1), (n, k), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
    let mat = QuantWeights::from_qtensor(&q).unwrap();
    let x = Tensor::from_vec(values(6 * k, 2), (2, 3, k), &Device::Cpu).unwrap();
    let y = mat.forward(&x).unwrap();
    assert_eq!(y.dims(), [2, 3, n]);
    let rows = mat.forward(&x.reshape((6, k)).unwrap()).unwrap();
    assert_eq!(flat(&y), flat(&rows));
    let wide = Tensor::zeros((3, 2 * k), DType::F32, &Device::Cpu).unwrap();
    assert!(mat.forward(&wide).is_err());
}

/// The tensor front gives the kernel's values, and checks shapes (two
/// tensors of one length but different shapes are refused).
#[test]
fn geglu_on_tensors_checks_shapes() {
    let dev = Device::Cpu;
    let n = 17 * 300;
    let gate = Tensor::from_vec(values(n, 3), (n / 17, 17), &dev).unwrap();
    let up = Tensor::from_vec(values(n, 4), (n / 17, 17), &dev).unwrap();
    let ours = flat(&geglu(&gate, &up).unwrap());
    let mut want = vec![0f32; n];
    llmpm_kernels::glu::geglu(&flat(&gate), &flat(&up), &mut want).unwrap();
    assert_eq!(ours, want);
    let other = Tensor::zeros((17, n / 17), DType::F32, &dev).unwrap();
    assert!(geglu(&gate, &other).is_err());
}
