//! The kernel heap: talc (a dlmalloc-style allocator with binning, kept by
//! Hermit among others) behind a spin lock, with every allocation and free
//! counted in `runtime::alloc::HeapStats`. The same type is benchmarked on
//! the host (`benches/heap.rs`), so the numbers are the kernel's own code.
//!
//! Interrupt handlers never allocate (they only signal events), so a spin
//! lock cannot deadlock against an interrupted holder.

use core::alloc::{GlobalAlloc, Layout};

use runtime::alloc::{HeapSnapshot, HeapStats};
use talc::TalcLock;
use talc::source::Manual;

/// A raw spin lock for talc (via `lock_api`).
pub struct RawSpin(core::sync::atomic::AtomicBool);

// SAFETY: a textbook test-and-test-and-set lock: `lock` returns only after
// swapping false -> true with Acquire ordering, `unlock` stores false with
// Release, so at most one holder exists at a time.
unsafe impl lock_api::RawMutex for RawSpin {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawSpin(core::sync::atomic::AtomicBool::new(false));
    type GuardMarker = lock_api::GuardSend;

    fn lock(&self) {
        use core::sync::atomic::Ordering;
        while self.0.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            while self.0.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
    }

    fn try_lock(&self) -> bool {
        use core::sync::atomic::Ordering;
        self.0.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    unsafe fn unlock(&self) {
        self.0.store(false, core::sync::atomic::Ordering::Release);
    }
}

pub struct KernelHeap {
    talc: TalcLock<RawSpin, Manual>,
    stats: HeapStats,
}

impl KernelHeap {
    pub const fn new() -> Self {
        Self { talc: TalcLock::new(Manual), stats: HeapStats::new() }
    }

    /// Gives `[base, base + len)` to the heap.
    ///
    /// # Safety
    /// The memory must be unused, writable, and never used for anything else
    /// for as long as the heap lives.
    pub unsafe fn claim(&self, base: *mut u8, len: usize) -> bool {
        // SAFETY: forwarded from the caller's contract; `Manual` permits
        // manual heap management.
        let claimed = unsafe { self.talc.lock().claim(base, len) }.is_some();
        if claimed {
            let size = self.stats.snapshot().heap_size_bytes;
            self.stats.set_heap_size(size + len);
        }
        claimed
    }

    pub fn stats(&self) -> HeapSnapshot {
        self.stats.snapshot()
    }

    /// Counts an allocation's outcome and passes the pointer through.
    fn count_allocation(&self, pointer: *mut u8, size_bytes: usize) -> *mut u8 {
        if pointer.is_null() {
            self.stats.record_failure(size_bytes);
        } else {
            self.stats.record_alloc(size_bytes);
        }
        pointer
    }
}

impl Default for KernelHeap {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to talc's GlobalAlloc implementation, which
// upholds the GlobalAlloc contract; the statistics are plain counters.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let pointer = unsafe { self.talc.alloc(layout) };
        self.count_allocation(pointer, layout.size())
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { self.talc.dealloc(pointer, layout) };
        self.stats.record_free(layout.size());
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let pointer = unsafe { self.talc.alloc_zeroed(layout) };
        self.count_allocation(pointer, layout.size())
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let new_pointer = unsafe { self.talc.realloc(pointer, layout, new_size) };
        if new_pointer.is_null() {
            self.stats.record_failure(new_size);
        } else {
            self.stats.record_free(layout.size());
            self.stats.record_alloc(new_size);
        }
        new_pointer
    }
}

/// The allocation sizes of the heap workouts (the boot self test and the
/// host benchmark): 70% 1-256 B, 25% 257 B-4 KiB, 5% up to 68 KiB, from a
/// seeded xorshift64* so every run asks for the same sequence.
pub struct SizeMix(u64);

impl SizeMix {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn size(&mut self) -> usize {
        let r = self.next_u64();
        match r % 100 {
            0..70 => 1 + (r >> 8) as usize % 256,
            70..95 => 257 + (r >> 8) as usize % 4096,
            _ => 4353 + (r >> 8) as usize % 65536,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;

    #[test]
    fn counts_come_back_to_zero() {
        let heap = KernelHeap::new();
        let mut arena = vec![0u8; 1 << 20];
        // SAFETY: the arena outlives every allocation below.
        assert!(unsafe { heap.claim(arena.as_mut_ptr(), arena.len()) });
        let mut pointers = std::vec::Vec::new();
        for size in [1usize, 8, 24, 100, 4096, 65536] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: non-zero size layout.
            let p = unsafe { heap.alloc(layout) };
            assert!(!p.is_null());
            pointers.push((p, layout));
        }
        assert_eq!(heap.stats().bytes_in_use, 1 + 8 + 24 + 100 + 4096 + 65536);
        for (p, layout) in pointers {
            // SAFETY: allocated above with this layout.
            unsafe { heap.dealloc(p, layout) };
        }
        let stats = heap.stats();
        assert_eq!(stats.bytes_in_use, 0);
        assert_eq!(stats.allocations, stats.frees);
        // Exhaustion is an error, not a crash, and is counted.
        let huge = Layout::from_size_align(2 << 20, 8).unwrap();
        // SAFETY: non-zero size layout.
        assert!(unsafe { heap.alloc(huge) }.is_null());
        assert_eq!(heap.stats().failures, 1);
        drop(arena);
    }
}
