#![allow(clippy::unwrap_used)]

use super::*;
use crate::isa::Isa;
use crate::testing;
use crate::{Format, QuantMatrix};

/// The strips against a plain f64 reference, for each format, shapes
/// with a partial last strip, and each row alone against the batch
/// (strip kernels in groups of four, or AMX tiles). Only where the CPU
/// has AVX-512 VNNI (elsewhere the front builds no `Strips`, and the row
/// kernels of the block-row layout run instead, tested there).
#[test]
fn strips_match_the_scalar_reference() {
    if !Isa::best().vnni512() {
        return;
    }
    for format in [Format::Q8_0, Format::Q4_0, Format::Q5_0, Format::Mxfp4] {
        // m from `AMX_MIN_ROWS` up: the AMX path, where the CPU has it.
        for (n, k, m) in [
            (1, 32, 1),
            (17, 96, 3),
            (40, 256, 9),
            (16, 64, 4),
            (40, 256, 20),
            (17, 96, 33),
        ] {
            let data = testing::quantize(format, &testing::values(n * k, 1), n, k);
            assert!(QuantMatrix::file_bytes(format, n, k).is_some());
            let st = Strips::from_bytes(format, n, k, &data, &mut |_| {}).unwrap();
            let xv = testing::values(m * k, 2);
            let mut got = vec![0.0f32; m * n];
            forward(&st, &xv, &mut got);
            let want = testing::q8_0_reference(format, &data, &xv, n, k);
            testing::assert_close(&got, &want, &format!("{format} n={n} k={k} m={m}"));
            // Rows read back as the format's own dequantization gives them.
            let ids: Vec<u32> = (0..n as u32).collect();
            let mut rows = vec![0.0f32; n * k];
            st.rows(&ids, &mut rows).unwrap();
            let table = testing::dequantize(format, &data, n, k);
            assert_eq!(rows, table, "{format} rows");
            assert!(st.rows(&[n as u32], &mut vec![0.0f32; k]).is_err());
            for i in 0..m {
                let mut one = vec![0.0f32; n];
                forward(&st, &xv[i * k..(i + 1) * k], &mut one);
                assert_eq!(one, got[i * n..(i + 1) * n], "{format} row {i}");
            }
        }
    }
}

/// An MXFP4 matrix with a block scale that no f16 holds (E8M0 150, 2^22
/// halved) is not put in strips, and the front's product on its block
/// rows still matches the reference; moved back into range, the same
/// matrix goes into strips.
#[test]
fn mxfp4_scales_past_f16_keep_block_rows() {
    let (n, k) = (17, 64);
    let mut data = testing::quantize(Format::Mxfp4, &testing::values(n * k, 3), n, k);
    assert!(crate::layout::strips::fp4_scales_fit(&data));
    data[crate::formats::mxfp4::MXFP4_BYTES * 5] = 150;
    assert!(!crate::layout::strips::fp4_scales_fit(&data));
    assert!(Strips::from_bytes(Format::Mxfp4, n, k, &data, &mut |_| {}).is_err());
    let m = QuantMatrix::from_bytes(Format::Mxfp4, n, k, &data, &mut |_| {}).unwrap();
    assert!(!m.has_rows(), "block rows, not strips");
    let x = testing::values(k, 4);
    let mut got = vec![0.0f32; n];
    m.forward(&x, &mut got).unwrap();
    let want = testing::q8_0_reference(Format::Mxfp4, &data, &x, n, k);
    testing::assert_close(&got, &want, "mxfp4 with a big scale");
    data[crate::formats::mxfp4::MXFP4_BYTES * 5] = 127;
    let m = QuantMatrix::from_bytes(Format::Mxfp4, n, k, &data, &mut |_| {}).unwrap();
    assert_eq!(m.has_rows(), Isa::best().vnni512());
}
