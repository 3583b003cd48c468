//! A mapped block of device registers with bounds-checked volatile access.

use crate::paging;

#[derive(Clone, Copy, Debug)]
pub struct Mmio {
    base: u64,
    len: u64,
}

impl Mmio {
    /// Maps `len` bytes of device registers at physical `base` (uncached).
    pub fn map(base: u64, len: u64) -> Self {
        Self { base: paging::map_mmio(base, len), len }
    }

    /// A window inside this one.
    pub fn window(&self, offset: u64, len: u64) -> Self {
        assert!(offset + len <= self.len, "MMIO window outside its BAR");
        Self { base: self.base + offset, len }
    }

    fn check(&self, offset: u64, width: u64) -> u64 {
        assert!(offset + width <= self.len && offset.is_multiple_of(width), "MMIO access out of bounds");
        self.base + offset
    }

    pub fn read8(&self, offset: u64) -> u8 {
        let address = self.check(offset, 1);
        // SAFETY: in bounds of a register block mapped by `map`.
        unsafe { (address as *const u8).read_volatile() }
    }

    pub fn read16(&self, offset: u64) -> u16 {
        let address = self.check(offset, 2);
        // SAFETY: as in `read8`, and aligned.
        unsafe { (address as *const u16).read_volatile() }
    }

    pub fn read32(&self, offset: u64) -> u32 {
        let address = self.check(offset, 4);
        // SAFETY: as in `read8`, and aligned.
        unsafe { (address as *const u32).read_volatile() }
    }

    pub fn write8(&self, offset: u64, value: u8) {
        let address = self.check(offset, 1);
        // SAFETY: as in `read8`.
        unsafe { (address as *mut u8).write_volatile(value) }
    }

    pub fn write16(&self, offset: u64, value: u16) {
        let address = self.check(offset, 2);
        // SAFETY: as in `read8`, and aligned.
        unsafe { (address as *mut u16).write_volatile(value) }
    }

    pub fn write32(&self, offset: u64, value: u32) {
        let address = self.check(offset, 4);
        // SAFETY: as in `read8`, and aligned.
        unsafe { (address as *mut u32).write_volatile(value) }
    }

    /// A 64-bit register written as two 32-bit halves, low first (virtio
    /// allows this for its queue addresses).
    pub fn write64_split(&self, offset: u64, value: u64) {
        self.write32(offset, value as u32);
        self.write32(offset + 4, (value >> 32) as u32);
    }
}
