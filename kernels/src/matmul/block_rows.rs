//! The Q8_0, Q4_0 and MXFP4 products on the block-row layout, with llama.cpp's
//! arithmetic: activations quantized to Q8_0 in blocks of 32 (one scale
//! each), integer dot products per block against the weights' quants,
//! scaled and summed in f32. The layout of CPUs without AVX-512 VNNI (which
//! take the strips instead).

use std::ops::Range;

use super::driver::RowKernel;
use crate::formats::q8_0::{self, Q8_0Row};
use crate::isa::{portable, Isa};
use crate::layout::block_rows::{BlockRows, RowQuants};

#[cfg(test)]
mod tests;

impl RowKernel for BlockRows {
    type Act = Q8_0Row;

    fn n(&self) -> usize {
        self.n
    }

    fn k(&self) -> usize {
        self.k
    }

    fn quantize(&self, x: &[f32]) -> Q8_0Row {
        q8_0::quantize(x, Isa::best().vnni512())
    }

    fn dot_band(&self, rows: Range<usize>, xs: &[&Q8_0Row], out: &mut [f32]) {
        let len = rows.len();
        let isa = Isa::best();
        if let &[a, b, c, d] = xs {
            for (j, r) in rows.enumerate() {
                for (i, v) in dot_rows(self, isa, r, [a, b, c, d]).into_iter().enumerate() {
                    out[i * len + j] = v;
                }
            }
        } else {
            for (i, x) in xs.iter().enumerate() {
                for (j, r) in rows.clone().enumerate() {
                    let [v] = dot_rows(self, isa, r, [x]);
                    out[i * len + j] = v;
                }
            }
        }
    }
}

/// Row `row` of the weights times `N` activation rows (quantized for
/// `isa`) on `isa`'s path, which the CPU must have.
fn dot_rows<const N: usize>(w: &BlockRows, isa: Isa, row: usize, xs: [&Q8_0Row; N]) -> [f32; N] {
    let (wd, wq) = w.row(row);
    #[cfg(target_arch = "x86_64")]
    match isa {
        Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni => {
            let xs = xs.map(|x| (x.qs.as_slice(), x.d.as_slice()));
            // SAFETY: every x86 `Isa` past portable was detected with
            // AVX2 and FMA, all that the `avx2` functions need.
            return unsafe {
                match wq {
                    RowQuants::Q8(wq) => crate::isa::avx2::dot_q8(wq, wd, xs),
                    RowQuants::Q4(wq) => crate::isa::avx2::dot_q4(wq, wd, xs),
                    RowQuants::Fp4(wq) => crate::isa::avx2::dot_fp4(wq, wd, xs),
                }
            };
        }
        Isa::Portable => {}
    }
    let _ = isa;
    xs.map(|x| match wq {
        RowQuants::Q8(wq) => portable::q8_0_dot(wq, wd, x),
        RowQuants::Q4(wq) => portable::q4_0_dot(wq, wd, x),
        RowQuants::Fp4(wq) => portable::mxfp4_dot(wq, wd, x),
    })
}
