//! The kernel's own page tables, replacing the trampoline's 4 GiB RWX map.
//!
//! Physical memory stays identity-mapped (virtual = physical: simple DMA
//! addressing), but with permissions: kernel text is read+execute, rodata
//! read-only, data/bss/stacks/heap read+write and never executable (W^X), page
//! 0 is unmapped so null dereferences fault, and every stack has an unmapped
//! guard page below it. RAM outside the kernel image uses 2 MiB pages; device
//! memory is mapped on demand, uncached, with `map_mmio`.

use core::ops::Range;
use core::sync::atomic::{AtomicUsize, Ordering};

use spin::Mutex;

use crate::arch::boot::stacks;
use crate::arch::cpu;
use crate::memory::{MemoryKind, MemoryRegion};
use crate::sym_addr;

pub const PAGE: u64 = 4096;
const HUGE: u64 = 2 * 1024 * 1024;

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
const WRITE_THROUGH: u64 = 1 << 3;
const CACHE_DISABLE: u64 = 1 << 4;
const HUGE_PAGE: u64 = 1 << 7;
const GLOBAL: u64 = 1 << 8;
pub const NO_EXECUTE: u64 = 1 << 63;
const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Page-table pages come from this pool in .bss, so paging needs no heap.
/// 256 pages map well over 100 GiB of RAM with 2 MiB pages plus MMIO.
const POOL_PAGES: usize = 256;

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut POOL: [Table; POOL_PAGES] = [const { Table([0; 512]) }; POOL_PAGES];
static POOL_USED: AtomicUsize = AtomicUsize::new(0);

/// Permissions of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadExecute,
    ReadOnly,
    ReadWrite,
    /// Device registers: read+write, uncached, never executable.
    Device,
}

impl Access {
    fn flags(self) -> u64 {
        match self {
            Access::ReadExecute => PRESENT | GLOBAL,
            Access::ReadOnly => PRESENT | GLOBAL | NO_EXECUTE,
            Access::ReadWrite => PRESENT | GLOBAL | WRITABLE | NO_EXECUTE,
            Access::Device => PRESENT | WRITABLE | NO_EXECUTE | CACHE_DISABLE | WRITE_THROUGH,
        }
    }
}

struct PageTables {
    pml4: u64,
}

static TABLES: Mutex<Option<PageTables>> = Mutex::new(None);

fn alloc_table() -> u64 {
    let index = POOL_USED.fetch_add(1, Ordering::Relaxed);
    if index >= POOL_PAGES {
        crate::fatal(format_args!("page-table pool exhausted ({POOL_PAGES} pages)"));
    }
    // SAFETY: each index is handed out once (atomic counter), so this table
    // is not aliased; .bss was zeroed by the trampoline.
    unsafe { (&raw mut POOL[index]) as u64 }
}

fn entry(table: u64, index: usize) -> *mut u64 {
    (table as *mut u64).wrapping_add(index)
}

impl PageTables {
    /// The table one level down from `table[index]`, created if missing.
    fn next_level(table: u64, index: usize) -> u64 {
        let slot = entry(table, index);
        // SAFETY: `table` is a page-table page from our pool (or the PML4),
        // identity-mapped; we hold the TABLES lock or run before it exists.
        unsafe {
            let value = slot.read_volatile();
            if value & PRESENT != 0 {
                if value & HUGE_PAGE != 0 {
                    crate::fatal(format_args!("paging: 4 KiB mapping requested inside a 2 MiB page"));
                }
                return value & ADDRESS_MASK;
            }
            let next = alloc_table();
            slot.write_volatile(next | PRESENT | WRITABLE);
            next
        }
    }

    fn map_4k(&mut self, address: u64, flags: u64) {
        let pdpt = Self::next_level(self.pml4, index(address, 39));
        let pd = Self::next_level(pdpt, index(address, 30));
        let pt = Self::next_level(pd, index(address, 21));
        // SAFETY: `pt` is one of our page-table pages; see `next_level`.
        unsafe { entry(pt, index(address, 12)).write_volatile((address & ADDRESS_MASK) | flags) };
    }

    fn map_2m(&mut self, address: u64, flags: u64) {
        let pdpt = Self::next_level(self.pml4, index(address, 39));
        let pd = Self::next_level(pdpt, index(address, 30));
        let slot = entry(pd, index(address, 21));
        // SAFETY: `pd` is one of our page-table pages; see `next_level`.
        unsafe {
            if slot.read_volatile() & PRESENT == 0 {
                slot.write_volatile((address & ADDRESS_MASK) | flags | HUGE_PAGE);
            }
        }
    }

    fn map_range(&mut self, range: Range<u64>, access: Access) {
        let flags = access.flags();
        let mut address = range.start & !(PAGE - 1);
        while address < range.end {
            if address.is_multiple_of(HUGE) && range.end - address >= HUGE && access != Access::Device {
                self.map_2m(address, flags);
                address += HUGE;
            } else {
                self.map_4k(address, flags);
                address += PAGE;
            }
        }
    }

    /// Entry and level size mapping `address`, if any.
    fn translate(&self, address: u64) -> Option<(u64, u64)> {
        let mut table = self.pml4;
        for shift in [39, 30, 21, 12] {
            // SAFETY: walking our own tables, read-only.
            let value = unsafe { entry(table, index(address, shift)).read_volatile() };
            if value & PRESENT == 0 {
                return None;
            }
            if shift == 12 || (shift < 39 && value & HUGE_PAGE != 0) {
                return Some((value, 1 << shift));
            }
            table = value & ADDRESS_MASK;
        }
        None
    }
}

fn index(address: u64, shift: u32) -> usize {
    ((address >> shift) & 0x1FF) as usize
}

/// Builds the kernel's tables from the memory map and switches to them.
pub fn init(regions: &[MemoryRegion]) {
    let mut tables = PageTables { pml4: alloc_table() };
    let kernel_end = sym_addr!(__kernel_end);
    let fine_end = kernel_end.next_multiple_of(HUGE);

    // RAM and firmware tables beyond the kernel image: 2 MiB pages where aligned.
    for region in regions {
        let mappable = matches!(region.kind, MemoryKind::Ram | MemoryKind::AcpiReclaimable | MemoryKind::AcpiNvs);
        if !mappable || region.end() <= fine_end {
            continue;
        }
        let start = region.start.max(fine_end) & !(PAGE - 1);
        tables.map_range(start..region.end().next_multiple_of(PAGE), Access::ReadWrite);
    }

    // The low 2 MiB-aligned window holding the kernel, page by page. Page 0
    // stays unmapped; firmware data below 1 MiB (start info, memory map, ACPI
    // on some machines) is readable and writable but not executable.
    tables.map_range(PAGE..sym_addr!(__kernel_start), Access::ReadWrite);
    tables.map_range(sym_addr!(__kernel_start)..sym_addr!(__text_start), Access::ReadOnly);
    tables.map_range(sym_addr!(__text_start)..sym_addr!(__text_end), Access::ReadExecute);
    tables.map_range(sym_addr!(__rodata_start)..sym_addr!(__rodata_end), Access::ReadOnly);
    tables.map_range(sym_addr!(__data_start)..sym_addr!(__data_end), Access::ReadWrite);
    let guards: [u64; 5] = stacks().map(|s| s.guard);
    let mut page = sym_addr!(__stacks_start);
    while page < sym_addr!(__stacks_end) {
        if !guards.contains(&page) {
            tables.map_4k(page, Access::ReadWrite.flags());
        }
        page += PAGE;
    }
    tables.map_range(kernel_end..fine_end, Access::ReadWrite);

    // SAFETY: the new tables map the kernel's code, data, stacks and all RAM
    // at the same addresses as the trampoline's tables did.
    unsafe { cpu::write_cr3(tables.pml4) };
    *TABLES.lock() = Some(tables);
}

/// Maps device registers (identity, uncached, not executable) and returns the
/// address to use. Mapping a range twice is harmless.
pub fn map_mmio(physical: u64, len: u64) -> u64 {
    let mut guard = TABLES.lock();
    let Some(tables) = guard.as_mut() else {
        crate::fatal(format_args!("map_mmio before paging::init"));
    };
    let mut address = physical & !(PAGE - 1);
    while address < physical + len {
        if tables.translate(address).is_none() {
            tables.map_4k(address, Access::Device.flags());
            // SAFETY: invalidating one TLB entry has no other effect.
            unsafe { core::arch::asm!("invlpg [{}]", in(reg) address, options(nostack, preserves_flags)) };
        }
        address += PAGE;
    }
    physical
}

/// How `address` is mapped: `None` if not at all, else whether it is
/// writable and executable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub writable: bool,
    pub executable: bool,
    pub page_bytes: u64,
}

pub fn mapping_of(address: u64) -> Option<Mapping> {
    let guard = TABLES.lock();
    let (value, page_bytes) = guard.as_ref()?.translate(address)?;
    Some(Mapping { writable: value & WRITABLE != 0, executable: value & NO_EXECUTE == 0, page_bytes })
}

/// Page-table pages used so far (of the fixed pool).
pub fn tables_used() -> usize {
    POOL_USED.load(Ordering::Relaxed).min(POOL_PAGES)
}
