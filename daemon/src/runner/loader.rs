//! Reading a model's tensors out of its mapped GGUF for the graph: each
//! one's presence, shape and byte length checked against what the
//! hyperparameters imply before it is used, every refusal naming what is
//! wrong ([`ModelError`]).

use std::sync::Arc;

use candle_core::quantized::{ggml_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use llmpm_gguf::{GgmlType, GgufError, HyperparameterError, MappedGguf, TensorInfo};

use super::weights::{linear, Linear, MappedTable, QuantWeights};

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be opened.
    #[error("cannot open model file `{path}`")]
    Open {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a GGUF file llmpm-gguf accepts.
    #[error("`{path}` is not a readable GGUF file: {message}")]
    Format {
        /// The file.
        path: String,
        /// What the reader said.
        message: String,
    },
    /// `general.architecture` names something we cannot run.
    #[error("{}", super::arch::unsupported_message(.0))]
    Architecture(String),
    /// A metadata key is missing or has the wrong type or value.
    #[error("bad model metadata: `{key}` {why}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("the model has no tensor `{0}`")]
    MissingTensor(String),
    /// A tensor has the wrong shape.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The tensor.
        name: String,
        /// Its shape (candle order: rows first).
        found: Vec<usize>,
        /// What the metadata implies.
        expected: Vec<usize>,
    },
    /// A tensor's data could not be read or converted.
    #[error("cannot load tensor `{name}`: {message}")]
    Tensor {
        /// The tensor.
        name: String,
        /// Why.
        message: String,
    },
    /// The forward pass failed.
    #[error("inference failed: {0}")]
    Compute(String),
}

impl From<candle_core::Error> for ModelError {
    fn from(e: candle_core::Error) -> ModelError {
        ModelError::Compute(e.to_string())
    }
}

impl From<HyperparameterError> for ModelError {
    fn from(e: HyperparameterError) -> ModelError {
        ModelError::Metadata {
            key: e.key,
            why: e.why,
        }
    }
}

/// `bytes` in 8-byte aligned memory (the tail of the last word zero).
fn aligned_copy(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    if let Some(dst) = bytemuck::cast_slice_mut::<u64, u8>(&mut words).get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
    words
}

/// candle's name for a ggml type, where candle has one.
pub(crate) fn candle_dtype(t: GgmlType) -> Option<GgmlDType> {
    Some(match t {
        GgmlType::F32 => GgmlDType::F32,
        GgmlType::F16 => GgmlDType::F16,
        GgmlType::BF16 => GgmlDType::BF16,
        GgmlType::Q4_0 => GgmlDType::Q4_0,
        GgmlType::Q4_1 => GgmlDType::Q4_1,
        GgmlType::Q5_0 => GgmlDType::Q5_0,
        GgmlType::Q5_1 => GgmlDType::Q5_1,
        GgmlType::Q8_0 => GgmlDType::Q8_0,
        GgmlType::Q8_1 => GgmlDType::Q8_1,
        GgmlType::Q2_K => GgmlDType::Q2K,
        GgmlType::Q3_K => GgmlDType::Q3K,
        GgmlType::Q4_K => GgmlDType::Q4K,
        GgmlType::Q5_K => GgmlDType::Q5K,
        GgmlType::Q6_K => GgmlDType::Q6K,
        GgmlType::Q8_K => GgmlDType::Q8K,
        _ => return None,
    })
}

pub(crate) struct Loader<'a> {
    /// The file mapped, with its checked tensor table: every tensor's bytes
    /// are sliced from the mapping.
    pub(crate) gguf: &'a MappedGguf,
    pub(crate) device: &'a Device,
}

impl Loader<'_> {
    pub(crate) fn info(&self, name: &str) -> Result<&TensorInfo, ModelError> {
        self.gguf
            .file()
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor(name.into()))
    }

    /// The shape of `name` in candle's order (rows first).
    pub(crate) fn dims(&self, name: &str) -> Result<Vec<usize>, ModelError> {
        let info = self.info(name)?;
        // The reader checked the element count fits an i64.
        Ok(info
            .dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect())
    }

    pub(crate) fn check(&self, name: &str, expected: &[usize]) -> Result<(), ModelError> {
        let found = self.dims(name)?;
        if found != expected {
            return Err(ModelError::Shape {
                name: name.into(),
                found,
                expected: expected.to_vec(),
            });
        }
        Ok(())
    }

    /// The candle type of `info`, or why it cannot be loaded.
    pub(crate) fn dtype(info: &TensorInfo) -> Result<GgmlDType, ModelError> {
        candle_dtype(info.ggml_type).ok_or_else(|| ModelError::Tensor {
            name: info.name.clone(),
            message: format!("ggml type {} is not supported", info.ggml_type),
        })
    }

    /// The `len` bytes of `info`'s data in the mapped file.
    pub(crate) fn data(&self, info: &TensorInfo, len: usize) -> Result<&[u8], ModelError> {
        let err = |message: String| ModelError::Tensor {
            name: info.name.clone(),
            message,
        };
        let bytes = self
            .gguf
            .tensor_data(info)
            .map_err(|e: GgufError| err(e.to_string()))?;
        if bytes.len() != len {
            return Err(err(format!(
                "its data is {} bytes, expected {len}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// The tensor `name` of shape `expected`, copied out of the mapped file
    /// (whose pages are then dropped: the copy is what is read from now on).
    pub(crate) fn qtensor(
        &mut self,
        name: &str,
        expected: &[usize],
    ) -> Result<QTensor, ModelError> {
        self.check(name, expected)?;
        let info = self.info(name)?;
        let err = |e: candle_core::Error| ModelError::Tensor {
            name: name.into(),
            message: e.to_string(),
        };
        let dtype = Self::dtype(info)?;
        let len = usize::try_from(info.size).unwrap_or(usize::MAX);
        let bytes = self.data(info, len)?;
        // candle views the bytes as its blocks (f32 and f16 fields): data at
        // an offset the file's alignment leaves odd is copied aligned first.
        let copy: Vec<u64>;
        let bytes = if bytes.as_ptr().align_offset(8) == 0 {
            bytes
        } else {
            copy = aligned_copy(bytes);
            bytemuck::cast_slice(&copy).get(..len).unwrap_or(bytes)
        };
        let q = ggml_file::qtensor_from_ggml(dtype, bytes, expected.to_vec(), self.device)
            .map_err(err)?;
        self.gguf.release(info, 0..len);
        Ok(q)
    }

    /// The weight matrix `name` of shape `expected` (rows, columns), in the
    /// layout its kernel wants: the types our kernels take repacked straight
    /// from the mapped file (no intermediate copy, and each group of file
    /// pages dropped once repacked), the rest through candle.
    pub(crate) fn matrix(&mut self, name: &str, expected: &[usize]) -> Result<Linear, ModelError> {
        self.check(name, expected)?;
        let err = |e: candle_core::Error| ModelError::Tensor {
            name: name.into(),
            message: e.to_string(),
        };
        let info = self.info(name)?;
        if let (GgmlType::MXFP4, &[n, k]) = (info.ggml_type, expected) {
            return self
                .cut_mxfp4(name, &[n], k)?
                .pop()
                .ok_or_else(|| ModelError::MissingTensor(name.into()));
        }
        if let (Some(dtype), [n, k]) = (candle_dtype(info.ggml_type), expected) {
            let len = QuantWeights::file_bytes(dtype, *n, *k);
            if let (true, Some(len)) = (self.device.is_cpu(), len) {
                let data = self.data(info, len)?;
                let gguf = self.gguf;
                let m = QuantWeights::from_bytes(dtype, *n, *k, data, &mut |done| {
                    gguf.release(info, done)
                })
                .map_err(err)?;
                return Ok(Linear::Quant(m));
            }
        }
        let q = self.qtensor(name, expected)?;
        linear(Arc::new(q)).map_err(err)
    }

    /// The fused matrix `name` of shape `(Σ parts, k)` cut into matrices of
    /// `parts[i]` consecutive rows each (Phi-3's `attn_qkv` and gate/up
    /// `ffn_up`). Each output is the dot product of one row with the input,
    /// so the parts compute exactly what the fused product's slices would.
    pub(crate) fn split_matrix(
        &mut self,
        name: &str,
        parts: &[usize],
        k: usize,
    ) -> Result<Vec<Linear>, ModelError> {
        let n: usize = parts.iter().sum();
        self.check(name, &[n, k])?;
        self.cut(name, parts, k)
    }

    /// The experts of the 3-D tensor `name`, `(n_expert, rows, k)` (ggml's
    /// `ffn_*_exps`: one matrix after another), each its own matrix.
    pub(crate) fn experts(
        &mut self,
        name: &str,
        n_expert: usize,
        rows: usize,
        k: usize,
    ) -> Result<Vec<Linear>, ModelError> {
        self.check(name, &[n_expert, rows, k])?;
        self.cut(name, &vec![rows; n_expert], k)
    }

    /// The checked MXFP4 tensor `name` cut as [`Loader::cut`] does: on the
    /// kernels on the CPU, dequantized to F16 for candle elsewhere.
    fn cut_mxfp4(
        &mut self,
        name: &str,
        parts: &[usize],
        k: usize,
    ) -> Result<Vec<Linear>, ModelError> {
        use llmpm_gguf::mxfp4::{dequantize_mxfp4, MXFP4_BYTES, QK};
        let n: usize = parts.iter().sum();
        let info = self.info(name)?;
        let err = |message: String| ModelError::Tensor {
            name: name.into(),
            message,
        };
        if !k.is_multiple_of(QK) {
            return Err(err(format!(
                "rows of {k} values are not whole MXFP4 blocks"
            )));
        }
        let row = k / QK * MXFP4_BYTES;
        let len = n
            .checked_mul(row)
            .ok_or_else(|| err("its size overflows".into()))?;
        let data = self.data(info, len)?;
        let mut out = Vec::with_capacity(parts.len());
        let mut start = 0;
        for &rows in parts {
            let bytes = &data[start * row..(start + rows) * row];
            let m = if self.device.is_cpu() {
                QuantWeights::mxfp4(rows, k, bytes).map(Linear::Quant)
            } else {
                let mut values = vec![0f32; rows * k];
                dequantize_mxfp4(bytes, &mut values);
                Tensor::from_vec(values, (rows, k), self.device)
                    .and_then(|t| QTensor::quantize(&t, GgmlDType::F16))
                    .and_then(|q| linear(Arc::new(q)))
            };
            out.push(m.map_err(|e| err(e.to_string()))?);
            start += rows;
        }
        self.gguf.release(info, 0..len);
        Ok(out)
    }

    /// The checked tensor `name`, `Σ parts` rows of `k` values, cut into
    /// matrices of `parts[i]` consecutive rows.
    fn cut(&mut self, name: &str, parts: &[usize], k: usize) -> Result<Vec<Linear>, ModelError> {
        let n: usize = parts.iter().sum();
        let info = self.info(name)?;
        let err = |message: String| ModelError::Tensor {
            name: name.into(),
            message,
        };
        if info.ggml_type == GgmlType::MXFP4 {
            return self.cut_mxfp4(name, parts, k);
        }
        let dtype = Self::dtype(info)?;
        if !k.is_multiple_of(dtype.block_size()) {
            return Err(err(format!(
                "rows of {k} values are not whole {dtype:?} blocks"
            )));
        }
        let row = k / dtype.block_size() * dtype.type_size();
        let len = n
            .checked_mul(row)
            .ok_or_else(|| err("its size overflows".into()))?;
        let data = self.data(info, len)?;
        let gguf = self.gguf;
        let mut out = Vec::with_capacity(parts.len());
        let mut start = 0;
        for &rows in parts {
            let bytes = &data[start * row..(start + rows) * row];
            let quant = QuantWeights::file_bytes(dtype, rows, k).filter(|_| self.device.is_cpu());
            let m = if quant.is_some() {
                let base = start * row;
                QuantWeights::from_bytes(dtype, rows, k, bytes, &mut |done| {
                    gguf.release(info, base + done.start..base + done.end)
                })
                .map(Linear::Quant)
            } else {
                let copy = aligned_copy(bytes);
                let aligned = bytemuck::cast_slice(&copy)
                    .get(..bytes.len())
                    .unwrap_or(bytes);
                ggml_file::qtensor_from_ggml(dtype, aligned, vec![rows, k], self.device)
                    .and_then(|q| linear(Arc::new(q)))
            };
            out.push(m.map_err(|e| err(e.to_string()))?);
            start += rows;
        }
        self.gguf.release(info, 0..len);
        Ok(out)
    }

    /// The table `name` of shape `expected` (rows, values) read in place
    /// from the mapped file, on the CPU; `None` where it cannot be (another
    /// device, rows that are not whole blocks).
    pub(crate) fn mapped_table(
        &self,
        name: &str,
        expected: &[usize],
    ) -> Result<Option<MappedTable>, ModelError> {
        self.check(name, expected)?;
        let info = self.info(name)?;
        let (Some(dtype), &[rows, hidden]) = (candle_dtype(info.ggml_type), expected) else {
            return Ok(None);
        };
        let Some(row) = MappedTable::row_bytes(dtype, hidden) else {
            return Ok(None);
        };
        let Some(len) = rows.checked_mul(row) else {
            return Ok(None);
        };
        if !self.device.is_cpu() {
            return Ok(None);
        }
        self.data(info, len)?;
        let range = self
            .gguf
            .tensor_range(info)
            .map_err(|e| ModelError::Tensor {
                name: name.into(),
                message: e.to_string(),
            })?;
        Ok(Some(MappedTable {
            map: self.gguf.mapped().clone(),
            range,
            dtype,
            rows,
            hidden,
        }))
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.gguf.file().tensor(name).is_some()
    }

    /// `f32` of `name` when `want`; a missing tensor is an error only then.
    pub(crate) fn f32_if(
        &mut self,
        want: bool,
        name: &str,
        expected: &[usize],
    ) -> Result<Option<Tensor>, ModelError> {
        want.then(|| self.f32(name, expected)).transpose()
    }

    pub(crate) fn f32(&mut self, name: &str, expected: &[usize]) -> Result<Tensor, ModelError> {
        let q = self.qtensor(name, expected)?;
        q.dequantize(self.device)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| ModelError::Tensor {
                name: name.into(),
                message: e.to_string(),
            })
    }
}
