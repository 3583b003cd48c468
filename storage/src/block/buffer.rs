//! Owned, page-aligned I/O buffers.

use alloc::vec::Vec;
use bytemuck::{Pod, Zeroable};

pub const PAGE_BYTES: usize = 4096;

#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(4096))]
struct Page([u8; PAGE_BYTES]);

/// A buffer of whole 4 KiB pages, page-aligned, with a byte length that may
/// be any multiple of 512 up to its capacity (so 512-byte-block devices can
/// transfer single blocks).
pub struct IoBuf {
    pages: Vec<Page>,
    len_bytes: usize,
}

impl IoBuf {
    /// A zeroed buffer of `len_bytes` (rounded up to whole pages of capacity).
    pub fn zeroed(len_bytes: usize) -> Self {
        let pages = alloc::vec![Page::zeroed(); len_bytes.div_ceil(PAGE_BYTES)];
        Self { pages, len_bytes }
    }

    /// A buffer holding a copy of `data`.
    pub fn from_slice(data: &[u8]) -> Self {
        let mut buf = Self::zeroed(data.len());
        buf.as_mut_slice().copy_from_slice(data);
        buf
    }

    pub fn len(&self) -> usize {
        self.len_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.len_bytes == 0
    }

    pub fn capacity(&self) -> usize {
        self.pages.len() * PAGE_BYTES
    }

    /// Changes the length within the capacity (no reallocation).
    pub fn set_len(&mut self, len_bytes: usize) {
        assert!(len_bytes <= self.capacity(), "IoBuf::set_len beyond capacity");
        self.len_bytes = len_bytes;
    }

    pub fn as_slice(&self) -> &[u8] {
        &bytemuck::cast_slice::<Page, u8>(&self.pages)[..self.len_bytes]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<Page, u8>(&mut self.pages)[..self.len_bytes]
    }
}

impl core::fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IoBuf").field("len_bytes", &self.len_bytes).field("capacity", &self.capacity()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_sized() {
        let mut buf = IoBuf::zeroed(5000);
        assert_eq!(buf.len(), 5000);
        assert_eq!(buf.capacity(), 8192);
        assert_eq!(buf.as_slice().as_ptr() as usize % PAGE_BYTES, 0);
        buf.as_mut_slice()[4999] = 7;
        buf.set_len(512);
        assert_eq!(buf.as_slice().len(), 512);
        assert_eq!(IoBuf::from_slice(b"abc").as_slice(), b"abc");
    }
}
