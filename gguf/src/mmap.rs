//! The mapped GGUF file, the one `mmap` of llmpm: [`MappedGguf`] is a model
//! file mapped read-only with its checked header, and slices each tensor's
//! bytes out of the mapping through the checked tensor table; [`Mapped`] is
//! the mapping alone, which the runner keeps for the tables it reads in
//! place once the header (and its vocabulary) is dropped.

use std::fs::File;
use std::io;
use std::ops::{Deref, Range};
use std::path::Path;
use std::sync::Arc;

use crate::error::GgufError;
use crate::read::{GgufFile, TensorInfo};

/// A file mapped read-only into memory.
#[derive(Debug)]
pub struct Mapped {
    map: memmap2::Mmap,
}

impl Mapped {
    /// Maps `file` for reading.
    #[allow(unsafe_code)]
    fn map(file: &File) -> io::Result<Mapped> {
        // SAFETY: a mapping is undefined behaviour if the file changes under
        // it. Models are blobs of the content-addressed store, written once
        // under a temporary name, verified and renamed into place, never
        // written again; a file truncated by someone else would kill this
        // runner (SIGBUS), which the daemon handles like any runner crash.
        let map = unsafe { memmap2::Mmap::map(file) }?;
        Ok(Mapped { map })
    }

    /// Drops the mapped pages of `range` (clipped to the file) from this
    /// process: once a tensor is copied or repacked its file bytes are not
    /// read again, and keeping them mapped would count them in the runner's
    /// memory beside the copy. A later read faults them in again.
    #[allow(unsafe_code)]
    pub fn release(&self, range: Range<usize>) {
        let end = range.end.min(self.map.len());
        if range.start >= end {
            return;
        }
        // SAFETY: the mapping is read-only and shared; MADV_DONTNEED only
        // unmaps our pages of it, and a later read would fault them in from
        // the file again, so references into the range stay valid.
        let _ = unsafe {
            self.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                range.start,
                end - range.start,
            )
        };
    }
}

impl Deref for Mapped {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map
    }
}

/// A GGUF file mapped read-only, with its header parsed and checked from
/// the mapped bytes: each tensor's data lies, aligned and whole, inside the
/// mapping.
#[derive(Debug)]
pub struct MappedGguf {
    mapped: Arc<Mapped>,
    file: GgufFile,
}

impl MappedGguf {
    /// Maps the GGUF file at `path` and parses its header.
    pub fn open(path: impl AsRef<Path>) -> Result<MappedGguf, GgufError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| GgufError::Open {
            path: path.to_owned(),
            source,
        })?;
        let mapped = Mapped::map(&file).map_err(|source| GgufError::Map {
            path: path.to_owned(),
            source,
        })?;
        let file = GgufFile::from_bytes(&mapped)?;
        Ok(MappedGguf {
            mapped: Arc::new(mapped),
            file,
        })
    }

    /// The parsed header: metadata and tensor table.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// The mapping, to keep beyond this header.
    pub fn mapped(&self) -> &Arc<Mapped> {
        &self.mapped
    }

    /// Where `tensor`'s data lies in the mapping. The parser checked it lies
    /// inside the file; a `TensorInfo` of another file is refused.
    pub fn tensor_range(&self, tensor: &TensorInfo) -> Result<Range<usize>, GgufError> {
        let end = tensor.absolute_offset.checked_add(tensor.size);
        let range = usize::try_from(tensor.absolute_offset)
            .ok()
            .zip(end.and_then(|e| usize::try_from(e).ok()))
            .map(|(start, end)| start..end);
        match range {
            Some(r) if r.end <= self.mapped.len() => Ok(r),
            _ => Err(GgufError::TensorPastEnd {
                tensor: tensor.name.clone(),
                end: end.unwrap_or(u64::MAX),
                file_len: self.mapped.len() as u64,
            }),
        }
    }

    /// The bytes of `tensor`, straight from the mapping.
    pub fn tensor_data(&self, tensor: &TensorInfo) -> Result<&[u8], GgufError> {
        let range = self.tensor_range(tensor)?;
        let len = self.mapped.len() as u64;
        self.mapped
            .get(range)
            .ok_or_else(|| GgufError::TensorPastEnd {
                tensor: tensor.name.clone(),
                end: tensor.absolute_offset.saturating_add(tensor.size),
                file_len: len,
            })
    }

    /// The bytes of the tensor called `name`.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8], GgufError> {
        let tensor = self
            .file
            .tensor(name)
            .ok_or_else(|| GgufError::MissingTensor {
                tensor: name.to_owned(),
            })?;
        self.tensor_data(tensor)
    }

    /// Drops the mapped pages of `within` (a range of `tensor`'s data,
    /// clipped to it) from this process; see [`Mapped::release`].
    pub fn release(&self, tensor: &TensorInfo, within: Range<usize>) {
        if let Ok(range) = self.tensor_range(tensor) {
            let len = range.len();
            let start = range.start + within.start.min(len);
            let end = range.start + within.end.min(len);
            self.mapped.release(start..end);
        }
    }
}

#[cfg(test)]
mod tests;
