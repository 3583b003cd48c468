//! The PVH start info: what the loader tells us about memory, the command line
//! and the boot modules (our boot archive, QEMU's `-initrd`).
//! Layout: xen/include/public/arch-x86/hvm/start_info.h, version 1.

use core::ops::Range;

use crate::memory::{MemoryKind, MemoryRegion};

const START_INFO_MAGIC: u32 = 0x336e_c578;
pub const MAX_REGIONS: usize = 128;
pub const MAX_MODULES: usize = 8;
const MAX_CMDLINE: usize = 4096;

#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
struct ModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

#[repr(C)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// Everything the kernel keeps from the start info. Copied out before the
/// loader's memory can be reused; slices point into memory the heap never
/// claims (boot modules are reserved, the command line lies below 1 MiB).
pub struct BootInfo {
    regions: [MemoryRegion; MAX_REGIONS],
    region_count: usize,
    modules: [Range<u64>; MAX_MODULES],
    module_count: usize,
    pub cmdline: &'static str,
    pub rsdp: Option<u64>,
}

#[derive(Debug)]
pub enum StartInfoError {
    BadMagic(u32),
    NoMemoryMap { version: u32 },
}

impl BootInfo {
    /// # Safety
    /// `start_info` must be the physical address the PVH loader passed in
    /// `%ebx`, identity-mapped, and its contents left untouched so far.
    pub unsafe fn parse(start_info: u64) -> Result<Self, StartInfoError> {
        // SAFETY: the caller passes the loader's pointer; it is identity
        // mapped and 8-byte aligned per the PVH ABI.
        let info = unsafe { &*(start_info as *const StartInfo) };
        if info.magic != START_INFO_MAGIC {
            return Err(StartInfoError::BadMagic(info.magic));
        }
        if info.version < 1 || info.memmap_paddr == 0 {
            return Err(StartInfoError::NoMemoryMap { version: info.version });
        }
        let mut boot = BootInfo {
            regions: [MemoryRegion { start: 0, len: 0, kind: MemoryKind::Reserved }; MAX_REGIONS],
            region_count: 0,
            modules: [const { 0..0 }; MAX_MODULES],
            module_count: 0,
            cmdline: "",
            rsdp: (info.rsdp_paddr != 0).then_some(info.rsdp_paddr),
        };
        let entries = (info.memmap_entries as usize).min(MAX_REGIONS);
        for index in 0..entries {
            // SAFETY: the loader's memory map has `memmap_entries` entries at
            // `memmap_paddr`; we read no more than that.
            let entry = unsafe { &*((info.memmap_paddr as *const MemmapEntry).add(index)) };
            boot.regions[index] =
                MemoryRegion { start: entry.addr, len: entry.size, kind: MemoryKind::from_e820(entry.kind) };
        }
        boot.region_count = entries;
        crate::memory::sort(&mut boot.regions[..entries]);

        let modules = (info.nr_modules as usize).min(MAX_MODULES);
        for index in 0..modules {
            // SAFETY: as above, `nr_modules` entries at `modlist_paddr`.
            let entry = unsafe { &*((info.modlist_paddr as *const ModlistEntry).add(index)) };
            boot.modules[index] = entry.paddr..entry.paddr.saturating_add(entry.size);
        }
        boot.module_count = modules;

        if info.cmdline_paddr != 0 {
            // SAFETY: a NUL-terminated string the loader placed in memory that
            // stays reserved; we read at most MAX_CMDLINE bytes of it.
            let bytes = unsafe { core::slice::from_raw_parts(info.cmdline_paddr as *const u8, MAX_CMDLINE) };
            let len = bytes.iter().position(|&b| b == 0).unwrap_or(MAX_CMDLINE);
            boot.cmdline = core::str::from_utf8(&bytes[..len]).unwrap_or("");
        }
        Ok(boot)
    }

    pub fn regions(&self) -> &[MemoryRegion] {
        &self.regions[..self.region_count]
    }

    pub fn module_ranges(&self) -> &[Range<u64>] {
        &self.modules[..self.module_count]
    }

    /// The boot archive (the first module), as bytes.
    pub fn boot_archive(&self) -> Option<&'static [u8]> {
        let range = self.module_ranges().first()?;
        // SAFETY: the module lies in RAM that is identity mapped and never
        // given to the heap (it is passed as reserved to `heap_ranges`).
        Some(unsafe { core::slice::from_raw_parts(range.start as *const u8, (range.end - range.start) as usize) })
    }

    /// Value of a `key=value` word on the command line.
    pub fn cmdline_value(&self, key: &str) -> Option<&'static str> {
        cmdline_value(self.cmdline, key)
    }
}

/// Value of a `key=value` word in a kernel command line.
pub fn cmdline_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_ascii_whitespace().find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}
