//! Large weight buffers, backed by transparent huge pages where Linux offers
//! them.
//!
//! A repacked model is hundreds of megabytes of anonymous memory. In 4 KiB
//! pages, filling it is a page fault (and a zeroed page) per 4 KiB, which
//! was about a third of a model's load time, and every decode step then
//! walks the page tables of all of it. With `MADV_HUGEPAGE` the kernel
//! backs it with 2 MiB pages where it can; where it cannot (THP off, other
//! systems), the buffer is an ordinary one.

/// A vector of `len` copies of `zero`, asking for huge pages before any of
/// it is touched. It is filled from the thread pool: the first touch of
/// each page (the kernel zeroing it) is most of the cost.
pub(super) fn zeroed<T: Clone + Send + Sync>(len: usize, zero: T) -> Vec<T> {
    use rayon::prelude::*;
    let mut v = Vec::with_capacity(len);
    advise_huge(v.spare_capacity_mut());
    // Writes into the capacity reserved above, without reallocating.
    v.par_extend(rayon::iter::repeat_n(zero, len));
    v
}

/// Source bytes repacked between two releases of the file's pages: the
/// most of a matrix's file pages resident beside its copy while it loads.
const GROUP_BYTES: usize = 16 << 20;

/// How many units of `unit_bytes` source bytes (a strip or a tile of rows)
/// make a group of about [`GROUP_BYTES`]: at least one, and enough for the
/// thread pool to share.
pub(super) fn group_units(unit_bytes: usize) -> usize {
    (GROUP_BYTES / unit_bytes.max(1)).max(rayon::current_num_threads())
}

/// Below this a buffer is left to the allocator as it is.
const HUGE: usize = 4 << 20;

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge<T>(spare: &mut [std::mem::MaybeUninit<T>]) {
    let bytes = std::mem::size_of_val(spare);
    if bytes < HUGE {
        return;
    }
    // madvise wants page-aligned ranges: the whole 2 MiB pages inside.
    const PAGE: usize = 2 << 20;
    let start = spare.as_mut_ptr() as usize;
    let first = start.next_multiple_of(PAGE);
    let end = (start + bytes) / PAGE * PAGE;
    if end > first {
        // SAFETY: [first, end) lies inside the vector's own allocation,
        // which nothing else uses yet; MADV_HUGEPAGE changes how its pages
        // are backed, never their contents. A failure (THP compiled out)
        // leaves ordinary pages, so the result is ignored.
        let _ =
            unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge<T>(_: &mut [std::mem::MaybeUninit<T>]) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_holds_what_it_was_asked_for() {
        for len in [0, 1, 1000, (HUGE / 2) + 7, 3 * HUGE + 1] {
            let v = zeroed(len, 7u16);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 7));
        }
    }
}
