//! The daemon's own tokenizers, one per weights blob, for counting a
//! prompt's tokens where the runner would otherwise be asked (fitting a
//! chat to the context): built from the GGUF's vocabulary on first use and
//! kept for the few models most recently used.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use llmpm_gguf::GgufFile;
use tokio::sync::OnceCell;

use crate::tokenizer::Tokenizer;

/// Tokenizers kept. Each is tens of megabytes (Qwen2's 151k tokens and
/// their merges) and takes tens of milliseconds to build; a daemon serves
/// a few models at a time, as its runners do.
const CACHED: usize = 4;

/// A tokenizer being built or built; `None` when the vocabulary is one
/// that only the runner's fallback codec reads.
type Cell = Arc<OnceCell<Option<Arc<Tokenizer>>>>;

/// Each blob's tokenizer and when it was last asked for; the clock.
type Entries = (Vec<(PathBuf, Cell, u64)>, u64);

/// Tokenizers by weights blob. Cheap to clone; clones share the cache.
#[derive(Clone, Default)]
pub(super) struct Tokenizers {
    /// Each blob's tokenizer and when it was last asked for, the least
    /// recently used going first when the cache is full.
    inner: Arc<Mutex<Entries>>,
}

impl std::fmt::Debug for Tokenizers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizers").finish_non_exhaustive()
    }
}

impl Tokenizers {
    /// The tokenizer of the weights at `blob`, built on first use (once,
    /// however many requests ask at the same time); `None` when the file
    /// has none the daemon can read, which is remembered too.
    pub(super) async fn get(&self, blob: &Path) -> Option<Arc<Tokenizer>> {
        let cell = {
            let (entries, clock) = &mut *self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            *clock += 1;
            match entries.iter_mut().find(|(b, _, _)| b == blob) {
                Some((_, cell, used)) => {
                    *used = *clock;
                    cell.clone()
                }
                None => {
                    if entries.len() >= CACHED {
                        let oldest = entries
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, (_, _, used))| *used)
                            .map(|(i, _)| i);
                        if let Some(i) = oldest {
                            entries.swap_remove(i);
                        }
                    }
                    let cell = Cell::default();
                    entries.push((blob.to_owned(), cell.clone(), *clock));
                    cell
                }
            }
        };
        cell.get_or_init(|| {
            let blob = blob.to_owned();
            async move {
                tokio::task::spawn_blocking(move || build(&blob))
                    .await
                    .ok()
                    .flatten()
            }
        })
        .await
        .clone()
    }

    /// How many tokenizers are kept (for the tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .len()
    }
}

/// The tokenizer of the GGUF at `blob`, or `None` (logged) when it has
/// none the daemon reads: the runner counts then.
fn build(blob: &Path) -> Option<Arc<Tokenizer>> {
    let file = match GgufFile::open(blob) {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(blob = %blob.display(), error = %e, "no GGUF to build a tokenizer from; the runner counts tokens");
            return None;
        }
    };
    match Tokenizer::from_gguf(&file) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            tracing::warn!(blob = %blob.display(), error = %e, "the daemon cannot build this model's tokenizer; the runner counts tokens");
            None
        }
    }
}
