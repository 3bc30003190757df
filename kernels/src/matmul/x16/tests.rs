#![allow(clippy::unwrap_used)]

use super::*;
use crate::formats::q8_0::QK;
use crate::matmul::driver;
use crate::testing;
use crate::Format;

fn check(format: Format, n: usize, k: usize, m: usize) {
    let data = testing::quantize(format, &testing::k_values(n * k, 1), n, k);
    let mat = X16Matrix::from_bytes(format, n, k, &data, &mut |_| {}).unwrap();
    let xv = testing::k_values(m * k, 2);
    let xs: Vec<Q8KRow> = xv.chunks_exact(k).map(quantize_q8k).collect();
    let want = testing::q8_k_reference(format, &data, &xs, n, k);
    let isas = Isa::available();
    // Every path this CPU runs, the portable one included: the
    // reference within rounding, and the same bits as each other.
    let on = |isa: Isa| -> Vec<f32> {
        let mut got = vec![0.0f32; m * n];
        for (i, o) in got.chunks_exact_mut(n).enumerate() {
            dot_band_on(&mat, isa, 0..n, &[&xs[i]], o);
        }
        got
    };
    let first = on(isas[0]);
    testing::assert_close(&first, &want, &format!("{format} n={n} k={k}"));
    for &isa in &isas[1..] {
        let got = on(isa);
        for (i, (a, b)) in got.iter().zip(&first).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{format} {isa:?} [{i}]: {a} vs {b}"
            );
        }
        // Any slot of a group of four gives the same bits as alone.
        for i in 0..m {
            for slot in 0..4 {
                let mut four = [&xs[(i + 1) % m], &xs[(i + 2) % m], &xs[(i + 3) % m], &xs[i]];
                four.swap(slot, 3);
                let mut out = vec![0.0f32; 4 * n];
                dot_band_on(&mat, isa, 0..n, &four, &mut out);
                assert_eq!(
                    out[slot * n..(slot + 1) * n],
                    first[i * n..(i + 1) * n],
                    "{format} {isa:?} row {i} in slot {slot}"
                );
            }
        }
    }
    // AMX, where this CPU has it: the same bits as the rows alone.
    #[cfg(target_arch = "x86_64")]
    // (Q5_K has no AMX path.)
    if crate::isa::amx::available() && !matches!(mat.blocks, X16Blocks::Q5K(_)) {
        use crate::isa::amx::x16 as amx;
        let mut got = vec![0.0f32; m * n];
        match &mat.blocks {
            X16Blocks::Q4K(blocks) => amx::q4k(blocks, n, k, &xs, &mut got),
            X16Blocks::Q6K(blocks) => amx::q6k(blocks, n, k, &xs, &mut got),
            X16Blocks::Q5K(_) => unreachable!("excluded above"),
        }
        assert_eq!(got, first, "{format} on AMX");
    }
    // Through the driver: a batch, and each row alone.
    let mut batch = vec![0.0f32; m * n];
    driver::forward(&mat, &xv, &mut batch);
    assert_eq!(batch, first, "{format} batch");
    for i in 0..m {
        let mut one = vec![0.0f32; n];
        driver::forward(&mat, &xv[i * k..(i + 1) * k], &mut one);
        assert_eq!(one, first[i * n..(i + 1) * n], "{format} row {i} alone");
    }
}

/// Shapes with partial x16 blocks (n not a multiple of 16), several bands,
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
        check(Format::Q4K, n, k, m);
    }
}

#[test]
fn q5_k_matches_the_scalar_reference() {
    for (n, k, m) in SHAPES {
        check(Format::Q5K, n, k, m);
    }
}

#[test]
fn q6_k_matches_the_scalar_reference() {
    for (n, k, m) in SHAPES {
        check(Format::Q6K, n, k, m);
    }
}

#[test]
fn q8_k_is_the_same_on_every_path() {
    let x = testing::k_values(8 * QK_K, 4);
    let plain = q8_k::quantize(&x);
    let same = |q: Q8KRow, isa: &str| {
        assert_eq!(q.d, plain.d, "{isa}");
        assert_eq!(q.qs, plain.qs, "{isa}");
        assert_eq!(q.bsum32, plain.bsum32, "{isa}");
        assert_eq!(q.bsum16x32, plain.bsum16x32, "{isa}");
    };
    for isa in Isa::available() {
        match isa {
            Isa::Portable => {}
            // SAFETY: the CPU has what `isa` names.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::AvxVnni => same(unsafe { crate::isa::avx2::quantize_q8k(&x) }, "AVX2"),
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => same(unsafe { crate::isa::avx512::quantize_q8k(&x) }, "AVX-512"),
        }
    }
    // And the dispatching quantizer the kernels use.
    same(quantize_q8k(&x), "best");
}

#[test]
fn refuses_other_formats_and_partial_blocks() {
    let q8 = vec![0u8; Format::Q8_0.block_bytes() * 4 * QK_K / QK];
    assert!(X16Matrix::from_bytes(Format::Q8_0, 4, QK_K, &q8, &mut |_| {}).is_err());
    // Q4_K needs 256-value blocks: 64 are refused.
    let q4k = vec![0u8; Format::Q4K.block_bytes() * 4];
    assert!(X16Matrix::from_bytes(Format::Q4K, 4, 64, &q4k, &mut |_| {}).is_err());
    assert!(X16Matrix::from_bytes(Format::Q4K, 4, QK_K, &q4k, &mut |_| {}).is_ok());
    assert!(X16Matrix::from_bytes(Format::Q4K, 4, QK_K, &q4k[1..], &mut |_| {}).is_err());
}
