//! The runner's side of `llmpm-kernels`: candle's tensors and GGUF types
//! turned into the kernels' slices and formats, and their results back
//! into tensors. The model graph ([`super::llama`]) and the loader
//! ([`super::model`]) see tensors only; the kernels see slices only.

use std::ops::Range;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Storage, Tensor};
use llmpm_kernels::{Format, QuantMatrix};

#[cfg(test)]
mod tests;

/// A quantized table of `rows` rows of `hidden` values, in a mapped file.
pub(crate) struct MappedTable {
    pub(crate) map: Arc<llmpm_gguf::Mapped>,
    /// Where the table's bytes lie in `map`, checked against its shape.
    pub(crate) range: std::ops::Range<usize>,
    pub(crate) dtype: candle_core::quantized::GgmlDType,
    pub(crate) rows: usize,
    pub(crate) hidden: usize,
}

impl MappedTable {
    /// Bytes of one row, if `hidden` is whole blocks of `dtype`.
    pub(crate) fn row_bytes(
        dtype: candle_core::quantized::GgmlDType,
        hidden: usize,
    ) -> Option<usize> {
        hidden
            .is_multiple_of(dtype.block_size())
            .then(|| hidden / dtype.block_size() * dtype.type_size())
    }

    /// Rows `ids`, dequantized: `(ids.len(), hidden)` f32.
    pub(crate) fn rows(&self, ids: &[u32], device: &Device) -> candle_core::Result<Tensor> {
        use candle_core::quantized::QStorage;
        let Some(row) = Self::row_bytes(self.dtype, self.hidden) else {
            candle_core::bail!("rows of {} do not hold whole blocks", self.hidden)
        };
        let table = &self.map[self.range.clone()];
        let mut bytes = Vec::with_capacity(ids.len() * row);
        for &id in ids {
            let i = id as usize;
            if i >= self.rows {
                candle_core::bail!("token {id} is past the vocabulary of {}", self.rows)
            }
            bytes.extend_from_slice(&table[i * row..(i + 1) * row]);
        }
        let storage =
            QStorage::from_data(std::borrow::Cow::Owned(bytes), &Device::Cpu, self.dtype)?;
        QTensor::new(storage, (ids.len(), self.hidden))?.dequantize(device)
    }
}

/// A weight matrix, multiplied the way ggml does (see [`super::weights`]).
pub(crate) enum Linear {
    /// The integer formats through our ggml-exact kernels.
    Quant(QuantWeights),
    /// Everything else through candle.
    Candle(QMatMul),
    /// An F16 matrix held in F32 for candle's GEMM (an encoder's; see
    /// `bert::dense`): activations rounded to F16 first, as ggml's F16
    /// product rounds them, then an F32 product.
    Dense(Tensor),
}

impl Linear {
    /// `x @ wᵀ`.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Linear::Quant(m) => m.forward(x),
            Linear::Candle(m) => m.forward(x),
            Linear::Dense(w) => x
                .to_dtype(DType::F16)?
                .to_dtype(DType::F32)?
                .broadcast_matmul(&w.t()?),
        }
    }

    /// Whether [`Linear::rows`] can read rows of the matrix.
    pub(crate) fn has_rows(&self) -> bool {
        matches!(self, Linear::Quant(m) if m.has_rows())
    }

    /// Rows `ids` of the matrix, dequantized.
    pub(crate) fn rows(&self, ids: &[u32], device: &Device) -> candle_core::Result<Tensor> {
        match self {
            Linear::Quant(m) => m.rows(ids, device),
            Linear::Candle(_) | Linear::Dense(_) => {
                candle_core::bail!("this matrix does not give rows")
            }
        }
    }
}

/// A [`Linear`] for `t`. F16 and the quantized types stay as they are, so
/// activations are converted to the weights' dot-product type as in ggml
/// (candle's default would dequantize F16 to F32 and multiply in F32, which
/// is more precise than llama.cpp and so disagrees with it on close logits).
pub(crate) fn linear(t: Arc<QTensor>) -> candle_core::Result<Linear> {
    use candle_core::quantized::GgmlDType;
    Ok(match t.dtype() {
        // Our integer kernels (Q8_0, Q4_0 and the K-quants) are for the CPU;
        // on a GPU candle's own paths run.
        _ if t.device().is_cpu() && QuantWeights::handles(&t) => {
            Linear::Quant(QuantWeights::from_qtensor(&t)?)
        }
        GgmlDType::F32 | GgmlDType::BF16 => Linear::Candle(QMatMul::from_arc(t)?),
        _ => Linear::Candle(QMatMul::QTensor(t)),
    })
}

/// The kernels' format for a GGUF type, if they multiply it.
fn format(dtype: GgmlDType) -> Option<Format> {
    Some(match dtype {
        GgmlDType::Q8_0 => Format::Q8_0,
        GgmlDType::Q4_0 => Format::Q4_0,
        GgmlDType::Q5_0 => Format::Q5_0,
        GgmlDType::Q4K => Format::Q4K,
        GgmlDType::Q5K => Format::Q5K,
        GgmlDType::Q6K => Format::Q6K,
        _ => return None,
    })
}

/// A kernel's refusal as candle's error, its causes included.
fn error(e: llmpm_kernels::Error) -> candle_core::Error {
    candle_core::Error::Msg(crate::errors::chain(&e))
}

/// A quantized weight matrix on the kernels ([`QuantMatrix`]): Q8_0, Q4_0,
/// Q5_0, the K-quants and MXFP4, with llama.cpp's arithmetic.
#[derive(Debug)]
pub(crate) struct QuantWeights(QuantMatrix);

impl QuantWeights {
    /// Whether the kernels multiply `t`'s type.
    pub(crate) fn handles(t: &QTensor) -> bool {
        format(t.dtype()).is_some()
    }

    /// Copies a `QTensor` of shape `(n, k)` into its kernel's layout.
    pub(crate) fn from_qtensor(t: &QTensor) -> candle_core::Result<QuantWeights> {
        let (n, k) = t.shape().dims2()?;
        QuantWeights::from_bytes(t.dtype(), n, k, &t.data()?, &mut |_| {})
    }

    /// Bytes of a `(n, k)` matrix of `dtype` in a GGUF file, where the
    /// kernels repack that type straight from the file on this CPU
    /// ([`QuantMatrix::file_bytes`]).
    pub(crate) fn file_bytes(dtype: GgmlDType, n: usize, k: usize) -> Option<usize> {
        QuantMatrix::file_bytes(format(dtype)?, n, k)
    }

    /// Repacks a `(n, k)` matrix of `dtype` from its bytes in a GGUF file;
    /// `done` is told each range of `data` it has finished with, so the
    /// caller can drop those pages.
    pub(crate) fn from_bytes(
        dtype: GgmlDType,
        n: usize,
        k: usize,
        data: &[u8],
        done: &mut dyn FnMut(Range<usize>),
    ) -> candle_core::Result<QuantWeights> {
        let Some(format) = format(dtype) else {
            candle_core::bail!("no integer kernel for {dtype:?}");
        };
        QuantMatrix::from_bytes(format, n, k, data, done)
            .map(QuantWeights)
            .map_err(error)
    }

    /// An MXFP4 `(n, k)` matrix from its bytes in a GGUF file (candle has
    /// no such type; the kernels multiply it on the CPU).
    pub(crate) fn mxfp4(n: usize, k: usize, data: &[u8]) -> candle_core::Result<QuantWeights> {
        QuantMatrix::from_bytes(Format::Mxfp4, n, k, data, &mut |_| {})
            .map(QuantWeights)
            .map_err(error)
    }

    /// Whether [`QuantWeights::rows`] can read rows (the strip layout).
    pub(crate) fn has_rows(&self) -> bool {
        self.0.has_rows()
    }

    /// Rows `ids`, dequantized, `(ids.len(), k)` (a tied embedding).
    pub(crate) fn rows(&self, ids: &[u32], device: &Device) -> candle_core::Result<Tensor> {
        let k = self.0.k();
        let mut out = vec![0f32; ids.len() * k];
        self.0.rows(ids, &mut out).map_err(error)?;
        Tensor::from_vec(out, (ids.len(), k), device)
    }

    /// `x @ selfᵀ` for rows of `k` values in a slice, without tensors.
    pub(crate) fn forward_slice(&self, x: &[f32]) -> candle_core::Result<Vec<f32>> {
        let rows = x.len() / self.0.k().max(1);
        let mut out = vec![0f32; rows * self.0.n()];
        self.0.forward(x, &mut out).map_err(error)?;
        Ok(out)
    }

    /// `x @ selfᵀ` for `x` of shape `(..., k)`.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let m = &self.0;
        let dims = x.dims().to_vec();
        let Some((&k, lead)) = dims.split_last() else {
            candle_core::bail!("{} matmul of a scalar", m.format());
        };
        if k != m.k() {
            candle_core::bail!(
                "{} matmul: input has {k} columns, weight {}",
                m.format(),
                m.k()
            );
        }
        let xs: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let rows: usize = lead.iter().product();
        let mut out = vec![0f32; rows * m.n()];
        m.forward(&xs, &mut out).map_err(error)?;
        let mut shape = lead.to_vec();
        shape.push(m.n());
        Tensor::from_vec(out, shape, x.device())
    }
}

/// `gelu(gate) * up`, elementwise, for two tensors of one shape. On the
/// CPU with f32 values it is ggml's table ([`llmpm_kernels::glu`]);
/// elsewhere candle's own GELU.
pub(crate) fn geglu(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    if gate.shape() != up.shape() {
        candle_core::bail!(
            "gate {:?} and up {:?} differ in shape",
            gate.shape(),
            up.shape()
        );
    }
    if !matches!(gate.device(), Device::Cpu) || gate.dtype() != DType::F32 {
        return gate.gelu()? * up;
    }
    let (gate, up) = (gate.contiguous()?, up.contiguous()?);
    let (gs, gl) = gate.storage_and_layout();
    let (us, ul) = up.storage_and_layout();
    let (Storage::Cpu(gs), Storage::Cpu(us)) = (&*gs, &*us) else {
        candle_core::bail!("geglu: tensors not on the CPU");
    };
    let (Some((g0, g1)), Some((u0, u1))) = (gl.contiguous_offsets(), ul.contiguous_offsets())
    else {
        candle_core::bail!("geglu: tensors not contiguous");
    };
    let xs = &gs.as_slice::<f32>()?[g0..g1];
    let gs = &us.as_slice::<f32>()?[u0..u1];
    let mut out = vec![0f32; xs.len()];
    llmpm_kernels::glu::geglu(xs, gs, &mut out).map_err(error)?;
    Tensor::from_vec(out, gate.shape(), gate.device())
}
