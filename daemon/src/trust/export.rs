//! A model's files on disk, in the layout its signature names: `manifest.json` and `<media type>/sha256-<hex>` per blob.
//!
//! This is what `model-signing sign key DIR` and `model-signing verify key DIR`
//! hash, so a bundle either tool makes over the directory checks against the
//! model in the other. The files are copies (never hard links: editing one
//! must not corrupt the store).

use std::fs;
use std::path::{Path, PathBuf};

use llmpm_spec::signature as sig;
use llmpm_spec::Reference;

use crate::store::{Store, StoreError};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The path is relative.
    #[error("export path `{}` must be absolute", .0.display())]
    Relative(PathBuf),
    /// The directory exists and has files in it.
    #[error("export directory `{}` is not empty; name a new or empty directory", .0.display())]
    NotEmpty(PathBuf),
    /// The model has a layer that cannot be a file.
    #[error(transparent)]
    Layout(#[from] sig::FileNameError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing failed.
    #[error("cannot {op} `{}`", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.to_owned();
    move |source| ExportError::Io { op, path, source }
}

/// Writes `name`'s files under `dir` (created if missing, else it must be
/// empty); returns the file names, `/`-separated, sorted.
pub fn export(store: &Store, name: &Reference, dir: &Path) -> Result<Vec<String>, ExportError> {
    if !dir.is_absolute() {
        return Err(ExportError::Relative(dir.to_owned()));
    }
    if dir.exists() {
        let mut rd = fs::read_dir(dir).map_err(io("read directory", dir))?;
        if rd.next().is_some() {
            return Err(ExportError::NotEmpty(dir.to_owned()));
        }
    }
    let entry = store.get(name)?;
    let files = sig::model_files(&entry.digest, &entry.manifest)?;
    let raw = store.read_blob(
        &entry.digest,
        llmpm_spec::manifest::MAX_MANIFEST_BYTES as u64,
    )?;
    fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    let mut written = Vec::new();
    for (file, digest) in &files {
        let dest = file.split('/').fold(dir.to_owned(), |p, part| p.join(part));
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io("create directory", parent))?;
        }
        if file == sig::MANIFEST_FILE {
            fs::write(&dest, &raw).map_err(io("write", &dest))?;
        } else {
            fs::copy(store.blob_path(digest), &dest).map_err(io("copy to", &dest))?;
        }
        written.push(file.clone());
    }
    tracing::info!(model = %name, dir = %dir.display(), files = written.len(), "exported");
    Ok(written)
}
