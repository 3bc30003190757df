#![allow(clippy::unwrap_used)]

use super::*;
use crate::formats::q8_0::QK;
use crate::testing;
use crate::{Format, QuantMatrix};

/// The row kernels' paths this CPU can run, for the tests: portable, and
/// AVX2 where there is any SIMD path (every x86 [`Isa`] past portable has
/// AVX2 and FMA).
fn runnable() -> Vec<Isa> {
    let mut out = vec![Isa::Portable];
    #[cfg(target_arch = "x86_64")]
    if Isa::best() != Isa::Portable {
        out.push(Isa::Avx2);
    }
    out
}

fn check(format: Format, n: usize, k: usize, m: usize) {
    let data = testing::quantize(format, &testing::values(n * k, 1), n, k);
    let mat = QuantMatrix::from_bytes(format, n, k, &data, &mut |_| {}).unwrap();
    // The row kernels, whichever layout the front chose for this CPU.
    let rows = BlockRows::from_bytes(format, n, k, &data).unwrap();
    let xv = testing::values(m * k, 2);
    let mut got = vec![0.0f32; m * n];
    mat.forward(&xv, &mut got).unwrap();
    let want = testing::q8_0_reference(format, &data, &xv, n, k);
    testing::assert_close(&got, &want, &format!("{format} n={n} k={k} m={m}"));
    // Every path this CPU runs agrees with the reference (the portable
    // one is the fallback of CPUs without AVX2), and gives a row the same
    // bits alone and among four.
    for isa in runnable() {
        let xq: Vec<Q8_0Row> = xv
            .chunks_exact(k)
            .map(|r| q8_0::quantize(r, isa.vnni512()))
            .collect();
        for (i, xr) in xq.iter().enumerate() {
            let alone: Vec<f32> = (0..n).map(|r| dot_rows(&rows, isa, r, [xr])[0]).collect();
            testing::assert_close(
                &alone,
                &want[i * n..(i + 1) * n],
                &format!("{format} {isa:?} n={n} k={k} row {i}"),
            );
        }
        for x4 in xq.chunks_exact(4) {
            for r in 0..n {
                let four = dot_rows(&rows, isa, r, [&x4[0], &x4[1], &x4[2], &x4[3]]);
                let one = [&x4[0], &x4[1], &x4[2], &x4[3]].map(|x| dot_rows(&rows, isa, r, [x])[0]);
                assert_eq!(four, one, "{format} {isa:?} row {r}");
            }
        }
    }
    // One row at a time gives the same numbers as the batched product.
    for i in 0..m {
        let mut one = vec![0.0f32; n];
        mat.forward(&xv[i * k..(i + 1) * k], &mut one).unwrap();
        assert_eq!(one, got[i * n..(i + 1) * n], "{format} row {i}");
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
        check(Format::Q8_0, n, k, m);
    }
}

#[test]
fn q4_0_matches_the_scalar_reference() {
    for (n, k, m) in SHAPES {
        check(Format::Q4_0, n, k, m);
    }
}

#[test]
fn q5_0_matches_the_scalar_reference() {
    for (n, k, m) in SHAPES {
        check(Format::Q5_0, n, k, m);
    }
}

/// MXFP4 (the scalar reference dequantizes with ggml's table and sums in
/// f64) on the portable and AVX2 paths.
#[test]
fn mxfp4_matches_the_scalar_reference() {
    for (n, k, m) in SHAPES {
        check(Format::Mxfp4, n, k, m);
    }
    // A wrong length or partial blocks are errors.
    let data = vec![0u8; Format::Mxfp4.block_bytes() * 4];
    assert!(BlockRows::from_bytes(Format::Mxfp4, 4, QK, &data).is_ok());
    assert!(BlockRows::from_bytes(Format::Mxfp4, 2, QK, &data).is_err());
    assert!(BlockRows::from_bytes(Format::Mxfp4, 4, QK + 1, &data).is_err());
}

/// The row layout refuses what it cannot hold.
#[test]
fn refuses_other_formats_and_partial_blocks() {
    let data = vec![0u8; Format::Q8_0.block_bytes() * 4];
    assert!(BlockRows::from_bytes(Format::Q8_0, 4, QK, &data).is_ok());
    assert!(BlockRows::from_bytes(Format::Q8_0, 2, QK, &data).is_err());
    assert!(BlockRows::from_bytes(Format::Q8_0, 4, QK + 1, &data).is_err());
    assert!(BlockRows::from_bytes(Format::Q8_0, 4, 0, &[]).is_err());
    assert!(BlockRows::from_bytes(Format::Q4K, 4, QK, &data).is_err());
}
