//! Large weight buffers: allocated untouched and filled from the thread
//! pool, and repacked from the file a group of pages at a time.
//!
//! A repacked model is hundreds of megabytes of fresh anonymous memory; the
//! first touch of each page (a fault, and the kernel zeroing it) is a large
//! part of loading, so it is shared between the threads like the repacking.
//! Transparent huge pages (`MADV_HUGEPAGE`) were tried: on this project's
//! machines they made loading slower (the kernel zeroing 2 MiB pages) and
//! decoding no faster within the noise, so buffers are ordinary memory.

/// Source bytes repacked between two releases of the file's pages: the
/// most of a matrix's file pages resident beside its copy while it loads.
const GROUP_BYTES: usize = 16 << 20;

/// How many units of `unit_bytes` source bytes (a strip or a tile of rows)
/// make a group of about [`GROUP_BYTES`]: at least one, and enough for the
/// thread pool to share.
pub(super) fn group_units(unit_bytes: usize) -> usize {
    (GROUP_BYTES / unit_bytes.max(1)).max(rayon::current_num_threads())
}

/// A vector of `len` copies of `zero`, filled from the thread pool.
pub(super) fn zeroed<T: Clone + Send + Sync>(len: usize, zero: T) -> Vec<T> {
    use rayon::prelude::*;
    let mut v = Vec::with_capacity(len);
    // Writes into the capacity reserved above, without reallocating.
    v.par_extend(rayon::iter::repeat_n(zero, len));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_holds_what_it_was_asked_for() {
        for len in [0, 1, 1000, 3 << 20] {
            let v = zeroed(len, 7u16);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 7));
        }
    }

    #[test]
    fn groups_are_whole_units() {
        assert!(group_units(1 << 30) >= 1);
        assert_eq!(group_units(1 << 20), 16.max(rayon::current_num_threads()));
        assert!(group_units(0) >= 1);
    }
}
