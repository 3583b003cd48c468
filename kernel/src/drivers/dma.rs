//! Memory shared with devices. Physical memory is identity-mapped
//! (`paging.rs`), so a heap allocation's address is its bus address, and a
//! page-aligned allocation is physically contiguous. Without an IOMMU no
//! bounce buffers are needed.

use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use core::ptr::NonNull;

/// A zeroed, page-aligned buffer a device may access by DMA. Owns its memory
/// and frees it on drop; the owner must make sure the device no longer uses
/// it by then (drivers reset the device before dropping its queues).
pub struct DmaBuffer {
    pointer: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the buffer is plain memory owned by this value; moving it between
// tasks is no different from moving a Box<[u8]>.
unsafe impl Send for DmaBuffer {}

impl DmaBuffer {
    pub fn new(len: usize) -> Self {
        let layout = match Layout::from_size_align(len.max(1).next_multiple_of(4096), 4096) {
            Ok(layout) => layout,
            Err(_) => crate::fatal(format_args!("DMA buffer of {len} bytes: bad layout")),
        };
        // SAFETY: the layout has a non-zero size.
        let pointer = unsafe { alloc_zeroed(layout) };
        let Some(pointer) = NonNull::new(pointer) else {
            crate::fatal(format_args!("out of memory for a {len}-byte DMA buffer"));
        };
        Self { pointer, layout }
    }

    /// The device-visible address.
    pub fn bus_address(&self) -> u64 {
        self.pointer.as_ptr() as u64
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }

    pub fn is_empty(&self) -> bool {
        self.layout.size() == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `layout.size()` initialised (zeroed) bytes owned by self.
        unsafe { core::slice::from_raw_parts(self.pointer.as_ptr(), self.layout.size()) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes this the only access from
        // the CPU side.
        unsafe { core::slice::from_raw_parts_mut(self.pointer.as_ptr(), self.layout.size()) }
    }

    /// Reads a `T` the device may have written, at byte `offset`.
    pub fn read<T: Copy>(&self, offset: usize) -> T {
        assert!(offset + size_of::<T>() <= self.len() && offset.is_multiple_of(align_of::<T>()));
        // SAFETY: in bounds and aligned (checked above); volatile because the
        // device writes this memory behind the compiler's back.
        unsafe { (self.pointer.as_ptr().add(offset) as *const T).read_volatile() }
    }

    /// Writes a `T` the device will read, at byte `offset`.
    pub fn write<T: Copy>(&mut self, offset: usize, value: T) {
        assert!(offset + size_of::<T>() <= self.len() && offset.is_multiple_of(align_of::<T>()));
        // SAFETY: in bounds and aligned (checked above); volatile so the
        // store is not elided or reordered past the fences the driver uses.
        unsafe { (self.pointer.as_ptr().add(offset) as *mut T).write_volatile(value) }
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.pointer.as_ptr(), self.layout) }
    }
}
