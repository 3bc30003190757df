#![allow(clippy::unwrap_used)]

use super::*;
use crate::formats::q8_k;
use crate::testing;

/// Repacking from a file's bytes reports every byte it read as finished,
/// in order, once, gives the scalar reference's products whichever layout
/// this CPU takes, and refuses a wrong length instead of panicking.
#[test]
fn from_bytes_reports_every_byte_and_matches_the_reference() {
    let (n, k, m) = (48, 512, 3);
    for format in Format::ALL {
        let (w, x) = match format {
            Format::Q4K | Format::Q5K | Format::Q6K => {
                (testing::k_values(n * k, 11), testing::k_values(m * k, 12))
            }
            _ => (testing::values(n * k, 11), testing::values(m * k, 12)),
        };
        let data = testing::quantize(format, &w, n, k);
        let len = format.matrix_bytes(n, k).unwrap();
        assert_eq!(data.len(), len, "{format}");
        if let Some(file) = QuantMatrix::file_bytes(format, n, k) {
            assert_eq!(file, len, "{format}");
        } else {
            // Q8_0/Q4_0/Q5_0/MXFP4 from the file only where the strip
            // kernel runs.
            assert!(matches!(
                format,
                Format::Q8_0 | Format::Q4_0 | Format::Q5_0 | Format::Mxfp4
            ));
        }
        let mut seen = Vec::new();
        let mat = QuantMatrix::from_bytes(format, n, k, &data, &mut |r| seen.push(r)).unwrap();
        let mut at = 0;
        for r in &seen {
            assert_eq!(r.start, at, "{format}: ranges {seen:?}");
            at = r.end;
        }
        assert_eq!(at, len, "{format}: ranges {seen:?}");
        assert_eq!((mat.format(), mat.n(), mat.k()), (format, n, k));
        let mut got = vec![0.0f32; m * n];
        mat.forward(&x, &mut got).unwrap();
        let want = match format {
            Format::Q4K | Format::Q5K | Format::Q6K => {
                let xs: Vec<_> = x.chunks_exact(k).map(q8_k::quantize).collect();
                testing::q8_k_reference(format, &data, &xs, n, k)
            }
            _ => testing::q8_0_reference(format, &data, &x, n, k),
        };
        testing::assert_close(&got, &want, &format!("{format}"));
        // A wrong length is an error, not a panic.
        assert!(QuantMatrix::from_bytes(format, n, k, &data[1..], &mut |_| {}).is_err());
    }
}

/// Activations and outputs of the wrong length, and rows from a layout
/// without them, are errors.
#[test]
fn refuses_what_does_not_fit() {
    let (n, k) = (16, 256);
    let data = testing::quantize(Format::Q4K, &testing::k_values(n * k, 1), n, k);
    let mat = QuantMatrix::from_bytes(Format::Q4K, n, k, &data, &mut |_| {}).unwrap();
    assert!(mat.forward(&vec![0.0; k + 1], &mut vec![0.0; n]).is_err());
    assert!(mat.forward(&vec![0.0; 2 * k], &mut vec![0.0; n]).is_err());
    assert!(mat.forward(&[], &mut []).is_ok());
    assert!(!mat.has_rows());
    assert!(mat.rows(&[0], &mut vec![0.0; k]).is_err());
    // Q4_K needs 256-value blocks: 64 are refused.
    assert!(QuantMatrix::from_bytes(Format::Q4K, 4, 64, &data[..576], &mut |_| {}).is_err());
}
