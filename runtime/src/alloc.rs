//! Statistics of the kernel heap.
//!
//! The kernel's `GlobalAlloc` wrapper (in the `kernel` crate, because it needs
//! `unsafe`) calls the `record_*` methods; the metrics endpoint reads
//! [`HeapStats::snapshot`]. Atomics only, so recording never allocates or
//! locks and is safe from any context.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Live counters of one heap. `const`-constructible so it can be a `static`.
#[derive(Debug, Default)]
pub struct HeapStats {
    bytes_in_use: AtomicUsize,
    peak_bytes: AtomicUsize,
    allocations: AtomicU64,
    frees: AtomicU64,
    failures: AtomicU64,
    heap_size_bytes: AtomicUsize,
}

/// A point-in-time copy of [`HeapStats`]. Fields are read one by one, so
/// they may be off by a concurrent allocation relative to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapSnapshot {
    /// Bytes currently allocated (as requested by callers, not rounded).
    pub bytes_in_use: usize,
    /// Highest `bytes_in_use` seen since boot.
    pub peak_bytes: usize,
    /// Successful allocations since boot.
    pub allocations: u64,
    /// Frees since boot.
    pub frees: u64,
    /// Allocation requests the heap could not satisfy.
    pub failures: u64,
    /// Total heap size in bytes, as set by [`HeapStats::set_heap_size`].
    pub heap_size_bytes: usize,
}

impl HeapStats {
    /// All counters at zero.
    pub const fn new() -> Self {
        Self {
            bytes_in_use: AtomicUsize::new(0),
            peak_bytes: AtomicUsize::new(0),
            allocations: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            heap_size_bytes: AtomicUsize::new(0),
        }
    }

    /// Records the heap's total size in bytes (once, at heap init).
    pub fn set_heap_size(&self, bytes: usize) {
        self.heap_size_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Records a successful allocation of `size_bytes`.
    pub fn record_alloc(&self, size_bytes: usize) {
        let in_use = self.bytes_in_use.fetch_add(size_bytes, Ordering::Relaxed).wrapping_add(size_bytes);
        self.peak_bytes.fetch_max(in_use, Ordering::Relaxed);
        self.allocations.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the free of an allocation of `size_bytes`.
    pub fn record_free(&self, size_bytes: usize) {
        let before = self.bytes_in_use.fetch_sub(size_bytes, Ordering::Relaxed);
        debug_assert!(before >= size_bytes, "heap stats: freed more than allocated");
        self.frees.fetch_add(1, Ordering::Relaxed);
    }

    /// Records an allocation of `size_bytes` that failed (out of memory).
    pub fn record_failure(&self, size_bytes: usize) {
        let _ = size_bytes;
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> HeapSnapshot {
        HeapSnapshot {
            bytes_in_use: self.bytes_in_use.load(Ordering::Relaxed),
            peak_bytes: self.peak_bytes.load(Ordering::Relaxed),
            allocations: self.allocations.load(Ordering::Relaxed),
            frees: self.frees.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            heap_size_bytes: self.heap_size_bytes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static STATS: HeapStats = HeapStats::new();

    #[test]
    fn static_starts_at_zero() {
        assert_eq!(STATS.snapshot(), HeapStats::new().snapshot());
        assert_eq!(STATS.snapshot().bytes_in_use, 0);
    }

    #[test]
    fn tracks_usage_and_peak() {
        let stats = HeapStats::new();
        stats.set_heap_size(1 << 20);
        stats.record_alloc(100);
        stats.record_alloc(50);
        stats.record_free(100);
        stats.record_alloc(20);
        stats.record_failure(1 << 30);
        assert_eq!(
            stats.snapshot(),
            HeapSnapshot {
                bytes_in_use: 70,
                peak_bytes: 150,
                allocations: 3,
                frees: 1,
                failures: 1,
                heap_size_bytes: 1 << 20,
            }
        );
    }

    #[test]
    fn concurrent_recording_balances() {
        let stats = std::sync::Arc::new(HeapStats::new());
        let threads: std::vec::Vec<_> = (0..4)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for size in 1..1000 {
                        stats.record_alloc(size);
                        stats.record_free(size);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let snap = stats.snapshot();
        assert_eq!(snap.bytes_in_use, 0);
        assert_eq!(snap.allocations, 4 * 999);
        assert_eq!(snap.frees, 4 * 999);
        assert!(snap.peak_bytes >= 999 && snap.peak_bytes <= 4 * 999);
    }
}
