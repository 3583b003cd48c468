//! glibc's allocator tuned for a server that reuses large buffers.
//!
//! By default glibc serves an allocation above 128 KiB with a fresh `mmap`
//! and unmaps it on free, and trims the heap's top above 128 KiB: the next
//! buffer of that size faults its pages back in, each one zeroed by the
//! kernel. A store commit allocates such buffers all the time (a journal
//! batch carrying small objects, a write-back's merged run): `perf` of 4 KiB
//! PUTs on a RAM disk put a third of the samples in the kernel's
//! `clear_page_erms`. Keeping freed memory in the process avoids that.

/// Serves allocations up to 64 MiB from the heap and keeps up to 256 MiB
/// of freed memory before giving it back. Call once, early in `main`.
pub fn keep_freed_memory() {
    // SAFETY: `mallopt` only sets allocator parameters (it takes no
    // pointers); values out of range are refused with a 0 return.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
