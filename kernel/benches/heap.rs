//! Heap allocator throughput on the host: the kernel's own heap type
//! (`kernel::heap::KernelHeap`, talc behind a spin lock, with statistics)
//! against the system allocator (glibc malloc) and the two other no_std
//! candidates we considered, linked_list_allocator and rlsf (TLSF).
//!
//! Workload: the boot self test's mix (70% 1-256 B, 25% 257 B-4 KiB, 5% up
//! to 68 KiB), 1,024 live blocks replaced at random, 1,000,000 allocations;
//! each allocation's first byte is written. Prints allocs+frees per second,
//! median of 5 runs. `cargo bench -p kernel --bench heap` (or `cargo xtask bench platform`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;
use std::time::Instant;

use kernel::heap::{KernelHeap, SizeMix};

const ALLOCATIONS: usize = 1_000_000;
const LIVE: usize = 1024;
const ARENA_BYTES: usize = 256 << 20;
const RUNS: usize = 5;

trait Allocator {
    fn alloc(&mut self, layout: Layout) -> *mut u8;
    fn free(&mut self, pointer: *mut u8, layout: Layout);
}

struct Outcome {
    ops_per_second: f64,
    /// Highest end address minus lowest start address ever handed out,
    /// divided by the peak of live bytes: 1.0 is a perfectly compact heap.
    footprint_ratio: f64,
}

fn workload(allocator: &mut dyn Allocator) -> Outcome {
    let mut slots: Vec<Option<(*mut u8, Layout)>> = vec![None; LIVE];
    let mut sizes = SizeMix::new(0x9E37_79B9_7F4A_7C15);
    let mut operations = 0u64;
    let (mut lowest, mut highest) = (usize::MAX, 0usize);
    let (mut live_bytes, mut peak_live) = (0usize, 0usize);
    let start = Instant::now();
    for _ in 0..ALLOCATIONS {
        let layout = Layout::from_size_align(sizes.size(), 8).expect("valid layout");
        let slot = sizes.next_u64() as usize % LIVE;
        if let Some((pointer, old)) = slots[slot].take() {
            allocator.free(pointer, old);
            live_bytes -= old.size();
            operations += 1;
        }
        let pointer = allocator.alloc(layout);
        assert!(!pointer.is_null(), "allocation failed");
        lowest = lowest.min(pointer as usize);
        highest = highest.max(pointer as usize + layout.size());
        live_bytes += layout.size();
        peak_live = peak_live.max(live_bytes);
        // SAFETY: freshly allocated, at least one byte.
        unsafe { pointer.write(1) };
        slots[slot] = Some((pointer, layout));
        operations += 1;
    }
    for (pointer, layout) in slots.into_iter().flatten() {
        allocator.free(pointer, layout);
        operations += 1;
    }
    let ops_per_second = operations as f64 / start.elapsed().as_secs_f64();
    Outcome { ops_per_second, footprint_ratio: (highest - lowest) as f64 / peak_live as f64 }
}

struct Kernel(KernelHeap, #[allow(dead_code)] Vec<u8>);

impl Kernel {
    fn new() -> Self {
        let mut arena = vec![0u8; ARENA_BYTES];
        let heap = KernelHeap::new();
        // SAFETY: the arena lives as long as the heap (same struct, never moved out).
        assert!(unsafe { heap.claim(arena.as_mut_ptr(), arena.len()) });
        Kernel(heap, arena)
    }
}

impl Allocator for Kernel {
    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        // SAFETY: non-zero-size layout.
        unsafe { self.0.alloc(layout) }
    }
    fn free(&mut self, pointer: *mut u8, layout: Layout) {
        // SAFETY: allocated by this heap with this layout.
        unsafe { self.0.dealloc(pointer, layout) }
    }
}

struct SystemMalloc;

impl Allocator for SystemMalloc {
    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        // SAFETY: non-zero-size layout.
        unsafe { System.alloc(layout) }
    }
    fn free(&mut self, pointer: *mut u8, layout: Layout) {
        // SAFETY: allocated by System with this layout.
        unsafe { System.dealloc(pointer, layout) }
    }
}

struct LinkedList(linked_list_allocator::Heap, #[allow(dead_code)] Vec<u8>);

impl LinkedList {
    fn new() -> Self {
        let mut arena = vec![0u8; ARENA_BYTES];
        let mut heap = linked_list_allocator::Heap::empty();
        // SAFETY: the arena outlives the heap (same struct).
        unsafe { heap.init(arena.as_mut_ptr(), arena.len()) };
        LinkedList(heap, arena)
    }
}

impl Allocator for LinkedList {
    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        self.0.allocate_first_fit(layout).map_or(std::ptr::null_mut(), NonNull::as_ptr)
    }
    fn free(&mut self, pointer: *mut u8, layout: Layout) {
        // SAFETY: allocated by this heap with this layout.
        unsafe { self.0.deallocate(NonNull::new(pointer).expect("non-null"), layout) }
    }
}

type Tlsf = rlsf::Tlsf<'static, u32, u32, 28, 8>;

struct Rlsf(Tlsf);

impl Rlsf {
    fn new() -> Self {
        let arena: &'static mut [std::mem::MaybeUninit<u8>] =
            Box::leak(vec![std::mem::MaybeUninit::new(0u8); ARENA_BYTES].into_boxed_slice());
        let mut tlsf = Tlsf::new();
        tlsf.insert_free_block(arena);
        Rlsf(tlsf)
    }
}

impl Allocator for Rlsf {
    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        self.0.allocate(layout).map_or(std::ptr::null_mut(), NonNull::as_ptr)
    }
    fn free(&mut self, pointer: *mut u8, layout: Layout) {
        // SAFETY: allocated by this TLSF with this alignment.
        unsafe { self.0.deallocate(NonNull::new(pointer).expect("non-null"), layout.align()) }
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let mut rows: Vec<(&str, f64, f64)> = Vec::new();
    type Make = fn() -> Box<dyn Allocator>;
    let candidates: [(&str, Make); 4] = [
        ("kernel heap (talc 5 + stats)", || Box::new(Kernel::new())),
        ("system (glibc malloc)", || Box::new(SystemMalloc)),
        ("linked_list_allocator 0.10", || Box::new(LinkedList::new())),
        ("rlsf 0.2 (TLSF)", || Box::new(Rlsf::new())),
    ];
    for (name, make) in candidates {
        let outcomes: Vec<Outcome> = (0..RUNS).map(|_| workload(make().as_mut())).collect();
        let ops = median(outcomes.iter().map(|o| o.ops_per_second).collect());
        rows.push((name, ops, outcomes[0].footprint_ratio));
    }
    let system = rows[1].1;
    println!("| allocator | allocs+frees per second (median of {RUNS}) | vs system | address span / peak live bytes |");
    println!("|---|---:|---:|---:|");
    for (name, ops, footprint) in rows {
        println!("| {name} | {:.1} M/s | {:.2}x | {footprint:.2} |", ops / 1e6, ops / system);
    }
}
