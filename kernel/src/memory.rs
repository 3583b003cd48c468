//! The physical memory map and the decisions made from it (what is sane, what
//! the heap may claim). Pure logic: tested on the host.

use core::ops::Range;

/// What a range of physical memory is, as the PVH/E820 map types say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    Ram,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Unusable,
    Other(u32),
}

impl MemoryKind {
    pub fn from_e820(kind: u32) -> Self {
        match kind {
            1 => Self::Ram,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            other => Self::Other(other),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    pub start: u64,
    pub len: u64,
    pub kind: MemoryKind,
}

impl MemoryRegion {
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemmapError {
    Empty,
    NoRam,
    Unsorted { index: usize },
    Overlap { index: usize },
    Wraps { index: usize },
    KernelOutsideRam,
    TooLittleRam { ram_bytes: u64 },
}

/// Facts about a sane map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemmapSummary {
    pub regions: usize,
    pub ram_bytes: u64,
    pub highest_ram_end: u64,
}

/// Less than this and the appliance cannot do anything useful.
pub const MIN_RAM_BYTES: u64 = 64 * 1024 * 1024;

/// Checks that the map is sorted, has no overlaps or wrapping entries, holds
/// enough RAM, and that the kernel image lies inside RAM.
pub fn check_sane(regions: &[MemoryRegion], kernel: Range<u64>) -> Result<MemmapSummary, MemmapError> {
    if regions.is_empty() {
        return Err(MemmapError::Empty);
    }
    let mut ram_bytes = 0u64;
    let mut highest_ram_end = 0u64;
    for (index, region) in regions.iter().enumerate() {
        if region.start.checked_add(region.len).is_none() {
            return Err(MemmapError::Wraps { index });
        }
        if index > 0 {
            let previous = &regions[index - 1];
            if region.start < previous.start {
                return Err(MemmapError::Unsorted { index });
            }
            if region.start < previous.end() {
                return Err(MemmapError::Overlap { index });
            }
        }
        if region.kind == MemoryKind::Ram {
            ram_bytes += region.len;
            highest_ram_end = highest_ram_end.max(region.end());
        }
    }
    if ram_bytes == 0 {
        return Err(MemmapError::NoRam);
    }
    let kernel_in_ram =
        regions.iter().any(|r| r.kind == MemoryKind::Ram && r.start <= kernel.start && kernel.end <= r.end());
    if !kernel_in_ram {
        return Err(MemmapError::KernelOutsideRam);
    }
    if ram_bytes < MIN_RAM_BYTES {
        return Err(MemmapError::TooLittleRam { ram_bytes });
    }
    Ok(MemmapSummary { regions: regions.len(), ram_bytes, highest_ram_end })
}

/// Sorts a firmware map by start address (the PVH map is usually sorted
/// already; E820 maps are not promised to be).
pub fn sort(regions: &mut [MemoryRegion]) {
    regions.sort_unstable_by_key(|r| r.start);
}

/// RAM the heap may claim: every RAM range above `floor` (the end of the
/// kernel image), minus the `reserved` ranges (boot modules, firmware tables),
/// each piece page-aligned and at least `min_len` long. Calls `claim` per piece.
pub fn heap_ranges(
    regions: &[MemoryRegion],
    floor: u64,
    reserved: &[Range<u64>],
    min_len: u64,
    mut claim: impl FnMut(Range<u64>),
) {
    const PAGE: u64 = 4096;
    for region in regions.iter().filter(|r| r.kind == MemoryKind::Ram) {
        let start = region.start.max(floor).next_multiple_of(PAGE);
        let end = region.end() & !(PAGE - 1);
        // Split [start, end) around every reserved range it overlaps.
        let mut pieces: [Option<Range<u64>>; 16] = Default::default();
        pieces[0] = (start < end).then_some(start..end);
        for hole in reserved {
            let hole_start = hole.start & !(PAGE - 1);
            let hole_end = hole.end.next_multiple_of(PAGE);
            let mut next: [Option<Range<u64>>; 16] = Default::default();
            let mut count = 0;
            for piece in pieces.iter().flatten() {
                let mut push = |r: Range<u64>| {
                    if r.start < r.end && count < next.len() {
                        next[count] = Some(r);
                        count += 1;
                    }
                };
                if hole_end <= piece.start || hole_start >= piece.end {
                    push(piece.clone());
                } else {
                    push(piece.start..hole_start.max(piece.start));
                    push(hole_end.min(piece.end)..piece.end);
                }
            }
            pieces = next;
        }
        for piece in pieces.iter().flatten() {
            if piece.end - piece.start >= min_len {
                claim(piece.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn ram(start: u64, len: u64) -> MemoryRegion {
        MemoryRegion { start, len, kind: MemoryKind::Ram }
    }

    fn qemu_like() -> Vec<MemoryRegion> {
        std::vec![
            ram(0, 0x9fc00),
            MemoryRegion { start: 0x9fc00, len: 0x400, kind: MemoryKind::Reserved },
            MemoryRegion { start: 0xf0000, len: 0x10000, kind: MemoryKind::Reserved },
            ram(0x100000, 0x3ff00000 - 0x100000),
            MemoryRegion { start: 0xfeffc000, len: 0x4000, kind: MemoryKind::Reserved },
        ]
    }

    #[test]
    fn accepts_a_qemu_map() {
        let summary = check_sane(&qemu_like(), 0x100000..0x400000).unwrap();
        assert_eq!(summary.regions, 5);
        assert_eq!(summary.ram_bytes, 0x9fc00 + 0x3ff00000 - 0x100000);
    }

    #[test]
    fn rejects_bad_maps() {
        assert_eq!(check_sane(&[], 0..1), Err(MemmapError::Empty));
        let mut overlapping = qemu_like();
        overlapping[1].start = 0x9f000;
        assert_eq!(check_sane(&overlapping, 0x100000..0x400000), Err(MemmapError::Overlap { index: 1 }));
        let mut unsorted = qemu_like();
        unsorted.swap(0, 3);
        assert!(matches!(check_sane(&unsorted, 0x100000..0x400000), Err(MemmapError::Unsorted { .. })));
        assert_eq!(check_sane(&qemu_like(), 0x3ff00000..0x40000000), Err(MemmapError::KernelOutsideRam));
        assert!(matches!(
            check_sane(&[ram(0x100000, 0x100000)], 0x100000..0x180000),
            Err(MemmapError::TooLittleRam { .. })
        ));
        assert_eq!(check_sane(&[ram(u64::MAX - 5, 10)], 0..1), Err(MemmapError::Wraps { index: 0 }));
    }

    #[test]
    fn heap_skips_kernel_and_reserved_ranges() {
        let mut claimed = Vec::new();
        let initrd = 0x3f000000..0x3f012345;
        heap_ranges(&qemu_like(), 0x400000, &[initrd], 1 << 20, |r| claimed.push(r));
        assert_eq!(claimed, std::vec![0x400000..0x3f000000, 0x3f013000..0x3ff00000]);
        claimed.clear();
        let middle = 0x1000000..0x1001000;
        heap_ranges(&qemu_like(), 0x400000, &[middle], 4096, |r| claimed.push(r));
        assert_eq!(claimed, std::vec![0x400000..0x1000000, 0x1001000..0x3ff00000]);
    }

    #[test]
    fn sorting_fixes_order() {
        let mut map = qemu_like();
        map.reverse();
        sort(&mut map);
        assert!(check_sane(&map, 0x100000..0x400000).is_ok());
    }
}
