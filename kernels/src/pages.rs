//! The memory the kernels' buffers live in. Large weight buffers: mapped
//! zeroed but untouched, and repacked from the file a group of pages at a
//! time; the key/value caches' buffers ([`Grow`]); and the allocator's
//! thresholds for the activations' buffers ([`keep_freed_memory`]).
//!
//! A repacked model is hundreds of megabytes of fresh anonymous memory; the
//! first touch of each page (a fault, and the kernel zeroing it) is a large
//! part of loading. The buffers are anonymous mappings of their own, whose
//! pages the kernel hands out zeroed on first touch, so each page is touched
//! first by the repacking itself, on whichever thread repacks it. The
//! allocator would not do: for alignments past 16 bytes (the K-quant x16 blocks)
//! it writes the zeros itself, on one thread, before the weights.
//! Transparent huge pages (`MADV_HUGEPAGE`) were tried twice: loading was
//! at best a few percent faster within the noise, a fresh machine stalled
//! on compaction, and decoding was no faster, so buffers are ordinary pages.

/// Source bytes repacked between two releases of the file's pages: the
/// most of a matrix's file pages resident beside its copy while it loads.
const GROUP_BYTES: usize = 16 << 20;

/// How many units of `unit_bytes` source bytes (a strip or an x16 row of blocks)
/// make a group of about [`GROUP_BYTES`]: at least one, and enough for the
/// thread pool to share.
pub(crate) fn group_units(unit_bytes: usize) -> usize {
    (GROUP_BYTES / unit_bytes.max(1)).max(rayon::current_num_threads())
}

/// `len` values of `T`, all zero bits, in pages of their own that are not
/// touched until used.
pub(crate) struct Zeroed<T> {
    ptr: std::ptr::NonNull<T>,
    len: usize,
}

// SAFETY: a `Zeroed` owns its values like a `Vec` does.
unsafe impl<T: Send> Send for Zeroed<T> {}
// SAFETY: as above; shared access only reads.
unsafe impl<T: Sync> Sync for Zeroed<T> {}

const PAGE: usize = 4096;

impl<T: bytemuck::Zeroable> Zeroed<T> {
    /// `len` zero values; an error when the memory cannot be had.
    pub(crate) fn new(len: usize) -> std::io::Result<Zeroed<T>> {
        // Mappings are page-aligned: enough for any `T` used here.
        const { assert!(std::mem::align_of::<T>() <= PAGE) };
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| std::io::Error::other(format!("{len} values do not fit in memory")))?;
        if bytes == 0 {
            return Ok(Zeroed {
                ptr: std::ptr::NonNull::dangling(),
                len,
            });
        }
        // SAFETY: a fresh private anonymous mapping; it aliases nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(p.cast::<T>())
            .ok_or_else(|| std::io::Error::other("the kernel mapped memory at address 0"))?;
        Ok(Zeroed { ptr, len })
    }
}

impl<T> std::ops::Deref for Zeroed<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` values, zero bits (valid for a `Zeroable` `T`) or
        // written since through `deref_mut`, live while `self` does.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for Zeroed<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` is the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::fmt::Debug for Zeroed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Zeroed({} × {})", self.len, std::any::type_name::<T>())
    }
}

impl<T> Drop for Zeroed<T> {
    fn drop(&mut self) {
        let bytes = self.len * std::mem::size_of::<T>();
        if bytes > 0 {
            // SAFETY: the mapping `new` made, of this size, no longer used;
            // `T` needs no drop (`Zeroable` types are plain data).
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), bytes) };
        }
    }
}

/// A vector in a mapping of its own (the key/value caches): room for the
/// whole context is reserved up front but its pages become resident only
/// as tokens are written, and go back to the system when it is dropped.
/// From the heap, a cache's room was carved out of memory the model's load
/// had touched and freed (the allocator keeps it, [`keep_freed_memory`]),
/// so the process's resident memory did not show what the cache held, and a
/// cache a runner dropped stayed in the heap.
pub(crate) struct Grow<T> {
    bytes: Zeroed<u8>,
    len: usize,
    of: std::marker::PhantomData<T>,
}

impl<T: Copy> Grow<T> {
    /// An empty vector with no room.
    pub(crate) fn new() -> Grow<T> {
        Grow {
            bytes: Zeroed {
                // No room yet: aligned for `T`, as its empty slices must be.
                ptr: std::ptr::NonNull::<T>::dangling().cast(),
                len: 0,
            },
            len: 0,
            of: std::marker::PhantomData,
        }
    }

    /// Values it has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.len() / std::mem::size_of::<T>().max(1)
    }

    /// Room for `cap` values in all (kept as it is if it has that much).
    pub(crate) fn reserve_total(&mut self, cap: usize) -> Result<(), String> {
        // Mappings are page-aligned: enough for any `T` used here.
        const { assert!(std::mem::align_of::<T>() <= PAGE) };
        if cap <= self.capacity() {
            return Ok(());
        }
        let bytes = cap
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| format!("room for {cap} values does not fit in memory"))?;
        let mut room =
            Zeroed::<u8>::new(bytes).map_err(|e| format!("cannot reserve {bytes} bytes: {e}"))?;
        let used = self.len * std::mem::size_of::<T>();
        room[..used].copy_from_slice(&self.bytes[..used]);
        self.bytes = room;
        Ok(())
    }

    /// Room for `n` values in all, at least doubling it when it grows.
    fn room_for(&mut self, n: usize) -> Result<(), String> {
        match n > self.capacity() {
            true => self.reserve_total(n.max(2 * self.capacity())),
            false => Ok(()),
        }
    }

    /// Forgets every value (keeps the room and its pages).
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Keeps the first `n` values.
    pub(crate) fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// `n` values, new ones `value`, with room made if need be.
    pub(crate) fn resize(&mut self, n: usize, value: T) -> Result<(), String> {
        self.room_for(n)?;
        let base = self.bytes.ptr.as_ptr().cast::<T>();
        for i in self.len..n {
            // SAFETY: value `i` lies within the room (n <= capacity), in a
            // page-aligned mapping, so aligned for `T`.
            unsafe { base.add(i).write(value) };
        }
        self.len = n;
        Ok(())
    }

    /// `values` added at the end, with room made if need be.
    pub(crate) fn extend_from_slice(&mut self, values: &[T]) -> Result<(), String> {
        let old = self.len;
        let n = old + values.len();
        self.room_for(n)?;
        // SAFETY: values old..n lie within the room (n <= capacity), and
        // `values` cannot overlap it (`&mut self` is its only access).
        unsafe {
            let base = self.bytes.ptr.as_ptr().cast::<T>();
            std::ptr::copy_nonoverlapping(values.as_ptr(), base.add(old), values.len());
        }
        self.len = n;
        Ok(())
    }

    /// Drops the first `n` values, moving the rest to the front.
    pub(crate) fn drain_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.copy_within(n.., 0);
        self.len -= n;
    }
}

impl<T> std::ops::Deref for Grow<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the first `len` values of the mapping (page-aligned, room
        // for `capacity` of them) were each written as a `T`.
        unsafe { std::slice::from_raw_parts(self.bytes.ptr.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T> std::ops::DerefMut for Grow<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` is the only access.
        unsafe { std::slice::from_raw_parts_mut(self.bytes.ptr.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T> std::fmt::Debug for Grow<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cap = self.bytes.len() / std::mem::size_of::<T>().max(1);
        write!(
            f,
            "Grow({} of {cap} × {})",
            self.len,
            std::any::type_name::<T>()
        )
    }
}

/// Keeps the memory a forward pass frees for the next one. A prompt's
/// activations are buffers of megabytes; glibc maps each afresh and unmaps
/// it when freed, so every pass paid a page fault and a page clear per 4 KiB
/// (a tenth of a prompt's time). The peak is the same either way. The
/// runner calls it once, as it starts.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; called before the
    // runner's threads allocate much, and safe at any time in any case.
    unsafe {
        // The largest threshold glibc takes (32 MiB on 64-bit): smaller
        // blocks come from the heap, whose top is trimmed only past 1 GiB.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_holds_what_it_was_asked_for() -> std::io::Result<()> {
        for len in [0, 1, 1000, 3 << 20] {
            let mut v: Zeroed<u16> = Zeroed::new(len)?;
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x == 0));
            v.iter_mut().for_each(|x| *x = 7);
            assert!(v.iter().all(|&x| x == 7));
        }
        assert!(Zeroed::<u64>::new(usize::MAX / 4).is_err());
        Ok(())
    }

    #[test]
    fn groups_are_whole_units() {
        assert!(group_units(1 << 30) >= 1);
        assert_eq!(group_units(1 << 20), 16.max(rayon::current_num_threads()));
        assert!(group_units(0) >= 1);
    }

    #[test]
    fn grow_keeps_what_was_written_through_every_change() -> Result<(), String> {
        let mut v: Grow<u32> = Grow::new();
        assert_eq!((v.len(), v.capacity()), (0, 0));
        v.reserve_total(1000)?;
        assert_eq!(v.capacity(), 1000);
        v.resize(10, 7)?;
        v.extend_from_slice(&[1, 2, 3])?;
        assert_eq!(&v[8..], &[7, 7, 1, 2, 3]);
        v.truncate(9);
        v.resize(11, 5)?;
        assert_eq!(&v[7..], &[7, 7, 5, 5]);
        v.drain_front(8);
        assert_eq!(&v[..], &[7, 5, 5]);
        // Past the room: it grows, keeping what it held.
        v.extend_from_slice(&vec![9; 2000])?;
        assert_eq!(v.len(), 2003);
        assert!(v.capacity() >= 2003);
        assert_eq!(&v[..4], &[7, 5, 5, 9]);
        v.clear();
        assert!(v.is_empty());
        assert!(Grow::<u64>::new().reserve_total(usize::MAX / 4).is_err());
        Ok(())
    }
}
