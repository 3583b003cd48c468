//! PCI enumeration: finds every function, decodes its BARs and walks its
//! capability list (MSI-X, MSI, virtio, PCIe). Generic over how configuration
//! space is reached, so the parsing is tested on the host against a fake
//! config space; the kernel supplies port I/O (mechanism #1).

use alloc::vec::Vec;

/// Bus/device/function address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bdf {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

impl core::fmt::Display for Bdf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Reading and writing 32-bit words of configuration space (`offset` is
/// 4-byte aligned and below 256).
pub trait ConfigAccess {
    fn read32(&self, bdf: Bdf, offset: u8) -> u32;
    fn write32(&self, bdf: Bdf, offset: u8, value: u32);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    Memory { address: u64, size: u64, prefetchable: bool, is_64bit: bool },
    Io { port: u32, size: u32 },
}

/// The MSI-X capability: where the vector table and pending-bit array live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiX {
    pub capability_offset: u8,
    pub table_size: u16,
    pub table_bar: u8,
    pub table_offset: u32,
    pub pba_bar: u8,
    pub pba_offset: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    MsiX(MsiX),
    Msi {
        offset: u8,
    },
    /// virtio-pci structure (common/notify/isr/device config); `cfg_type` per spec.
    Virtio {
        offset: u8,
        cfg_type: u8,
        bar: u8,
        bar_offset: u32,
        length: u32,
    },
    PciExpress {
        offset: u8,
    },
    Other {
        id: u8,
        offset: u8,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub bdf: Bdf,
    pub vendor_id: u16,
    pub device_id: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub bars: [Option<Bar>; 6],
    pub capabilities: Vec<Capability>,
}

/// The kinds of device the appliance drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    VirtioNet,
    VirtioBlock,
    Nvme,
}

impl Function {
    pub fn known(&self) -> Option<Known> {
        match (self.vendor_id, self.device_id) {
            (0x1AF4, 0x1000 | 0x1041) => Some(Known::VirtioNet),
            (0x1AF4, 0x1001 | 0x1042) => Some(Known::VirtioBlock),
            _ if (self.class, self.subclass, self.prog_if) == (0x01, 0x08, 0x02) => Some(Known::Nvme),
            _ => None,
        }
    }

    pub fn msix(&self) -> Option<MsiX> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::MsiX(m) => Some(*m),
            _ => None,
        })
    }
}

const COMMAND: u8 = 0x04;
const STATUS_HAS_CAPABILITIES: u32 = 1 << (16 + 4);
const MAX_CAPABILITIES: usize = 48;

fn read8(access: &impl ConfigAccess, bdf: Bdf, offset: u8) -> u8 {
    (access.read32(bdf, offset & !3) >> ((offset & 3) * 8)) as u8
}

/// Sizes BARs by the write-ones protocol, with decoding switched off while
/// the BAR holds the probe value.
fn decode_bars(access: &impl ConfigAccess, bdf: Bdf) -> [Option<Bar>; 6] {
    let mut bars = [None; 6];
    // Only the low half is the command register; writing zeros to the status
    // half leaves its write-one-to-clear bits alone.
    let command = access.read32(bdf, COMMAND) & 0xFFFF;
    access.write32(bdf, COMMAND, command & !0b11);
    let mut index = 0;
    while index < 6 {
        let offset = 0x10 + 4 * index as u8;
        let original = access.read32(bdf, offset);
        access.write32(bdf, offset, u32::MAX);
        let probe = access.read32(bdf, offset);
        access.write32(bdf, offset, original);
        if original & 1 == 1 {
            let mask = probe & !0b11;
            if mask != 0 {
                bars[index] = Some(Bar::Io { port: original & !0b11, size: (!mask).wrapping_add(1) & 0xFFFF });
            }
            index += 1;
            continue;
        }
        let is_64bit = (original >> 1) & 0b11 == 0b10;
        let prefetchable = original & 0b1000 != 0;
        let (address, size) = if is_64bit && index < 5 {
            let high_offset = offset + 4;
            let original_high = access.read32(bdf, high_offset);
            access.write32(bdf, high_offset, u32::MAX);
            let probe_high = access.read32(bdf, high_offset);
            access.write32(bdf, high_offset, original_high);
            let mask = (u64::from(probe_high) << 32) | u64::from(probe & !0xF);
            let address = (u64::from(original_high) << 32) | u64::from(original & !0xF);
            (address, (!mask).wrapping_add(1))
        } else {
            let mask = probe & !0xF;
            (u64::from(original & !0xF), u64::from((!mask).wrapping_add(1)))
        };
        if probe & !0xF != 0 {
            bars[index] = Some(Bar::Memory { address, size, prefetchable, is_64bit });
        }
        index += if is_64bit { 2 } else { 1 };
    }
    access.write32(bdf, COMMAND, command);
    bars
}

fn capabilities(access: &impl ConfigAccess, bdf: Bdf) -> Vec<Capability> {
    let mut found = Vec::new();
    if access.read32(bdf, COMMAND) & STATUS_HAS_CAPABILITIES == 0 {
        return found;
    }
    let mut offset = read8(access, bdf, 0x34) & !3;
    // A malformed (looping) list is cut off after MAX_CAPABILITIES entries.
    while offset >= 0x40 && found.len() < MAX_CAPABILITIES {
        let header = access.read32(bdf, offset);
        let id = header as u8;
        let next = ((header >> 8) as u8) & !3;
        let capability = match id {
            0x11 => {
                let control = (header >> 16) as u16;
                let table = access.read32(bdf, offset + 4);
                let pba = access.read32(bdf, offset + 8);
                Capability::MsiX(MsiX {
                    capability_offset: offset,
                    table_size: (control & 0x7FF) + 1,
                    table_bar: (table & 0b111) as u8,
                    table_offset: table & !0b111,
                    pba_bar: (pba & 0b111) as u8,
                    pba_offset: pba & !0b111,
                })
            }
            0x05 => Capability::Msi { offset },
            0x09 => Capability::Virtio {
                offset,
                cfg_type: (header >> 24) as u8,
                bar: read8(access, bdf, offset + 4),
                bar_offset: access.read32(bdf, offset + 8),
                length: access.read32(bdf, offset + 12),
            },
            0x10 => Capability::PciExpress { offset },
            _ => Capability::Other { id, offset },
        };
        found.push(capability);
        offset = next;
    }
    found
}

fn probe_function(access: &impl ConfigAccess, bdf: Bdf) -> Option<Function> {
    let id = access.read32(bdf, 0x00);
    let vendor_id = id as u16;
    if vendor_id == 0xFFFF || vendor_id == 0 {
        return None;
    }
    let class_word = access.read32(bdf, 0x08);
    let header_type = read8(access, bdf, 0x0E) & 0x7F;
    let bars = if header_type == 0 { decode_bars(access, bdf) } else { [None; 6] };
    Some(Function {
        bdf,
        vendor_id,
        device_id: (id >> 16) as u16,
        class: (class_word >> 24) as u8,
        subclass: (class_word >> 16) as u8,
        prog_if: (class_word >> 8) as u8,
        bars,
        capabilities: capabilities(access, bdf),
    })
}

/// Every function on every bus (a brute-force scan: 8,192 slots is cheap and
/// needs no bridge walking).
pub fn enumerate(access: &impl ConfigAccess) -> Vec<Function> {
    let mut functions = Vec::new();
    for bus in 0..=255u8 {
        for device in 0..32u8 {
            let first = Bdf { bus, device, function: 0 };
            let Some(function) = probe_function(access, first) else { continue };
            let multifunction = read8(access, first, 0x0E) & 0x80 != 0;
            functions.push(function);
            if multifunction {
                for number in 1..8u8 {
                    if let Some(f) = probe_function(access, Bdf { bus, device, function: number }) {
                        functions.push(f);
                    }
                }
            }
        }
    }
    functions
}

/// Where unassigned BARs go. On q35 the 32-bit PCI hole ends at the IOAPIC
/// (0xFEC0_0000) and ECAM sits at 0xB000_0000..0xC000_0000; RAM below 4 GiB
/// never reaches 0xC000_0000 (QEMU caps low RAM at 2 or 2.75 GiB).
pub const MMIO_WINDOW: core::ops::Range<u64> = 0xC000_0000..0xFEC0_0000;
/// I/O ports handed to unassigned I/O BARs.
pub const IO_WINDOW: core::ops::Range<u32> = 0xC000..0x1_0000;

const COMMAND_IO: u32 = 1 << 0;
const COMMAND_MEMORY: u32 = 1 << 1;
const COMMAND_BUS_MASTER: u32 = 1 << 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignError {
    /// The window has no room left for a BAR of this size.
    WindowFull { bdf: Bdf, bar: usize, size: u64 },
}

/// Gives every memory and I/O BAR that firmware left at 0 an address (naturally
/// aligned, from the windows above), then enables decoding and bus mastering.
/// Firmware-assigned BARs are kept. Large BARs first, so alignment wastes
/// the least space.
pub fn assign_bars(access: &impl ConfigAccess, functions: &mut [Function]) -> Result<(), AssignError> {
    let mut wanted: Vec<(u64, usize, usize)> = Vec::new(); // (size, function, bar)
    for (function_index, function) in functions.iter().enumerate() {
        for (bar_index, bar) in function.bars.iter().enumerate() {
            match bar {
                Some(Bar::Memory { address: 0, size, .. }) => wanted.push((*size, function_index, bar_index)),
                Some(Bar::Io { port: 0, size }) => wanted.push((u64::from(*size), function_index, bar_index)),
                _ => {}
            }
        }
    }
    wanted.sort_unstable_by_key(|w| core::cmp::Reverse(w.0));
    let mut next_memory = MMIO_WINDOW.start;
    let mut next_io = IO_WINDOW.start;
    for (size, function_index, bar_index) in wanted {
        let function = &mut functions[function_index];
        let bdf = function.bdf;
        let offset = 0x10 + 4 * bar_index as u8;
        let full = AssignError::WindowFull { bdf, bar: bar_index, size };
        match &mut function.bars[bar_index] {
            Some(Bar::Memory { address, is_64bit, .. }) => {
                let start = next_memory.next_multiple_of(size.max(16));
                if start + size > MMIO_WINDOW.end {
                    return Err(full);
                }
                next_memory = start + size;
                *address = start;
                access.write32(bdf, offset, start as u32);
                if *is_64bit {
                    access.write32(bdf, offset + 4, (start >> 32) as u32);
                }
            }
            Some(Bar::Io { port, .. }) => {
                let start = next_io.next_multiple_of(size.max(4) as u32);
                if u64::from(start) + size > u64::from(IO_WINDOW.end) {
                    return Err(full);
                }
                next_io = start + size as u32;
                *port = start;
                access.write32(bdf, offset, start);
            }
            None => {}
        }
    }
    for function in functions.iter() {
        let has_memory = function.bars.iter().any(|b| matches!(b, Some(Bar::Memory { .. })));
        let has_io = function.bars.iter().any(|b| matches!(b, Some(Bar::Io { .. })));
        if !has_memory && !has_io {
            continue;
        }
        let command = access.read32(function.bdf, COMMAND) & 0xFFFF;
        let mut enable = COMMAND_BUS_MASTER;
        if has_memory {
            enable |= COMMAND_MEMORY;
        }
        if has_io {
            enable |= COMMAND_IO;
        }
        access.write32(function.bdf, COMMAND, command | enable);
    }
    Ok(())
}

/// The MSI-X message (address, data) that delivers `vector` to the local
/// APIC `apic_id`: fixed delivery, edge triggered, physical destination.
pub fn msix_message(apic_id: u32, vector: u8) -> (u64, u32) {
    (0xFEE0_0000 | (u64::from(apic_id & 0xFF) << 12), u32::from(vector))
}

/// Sets the MSI-X enable bit and clears the function mask.
pub fn enable_msix(access: &impl ConfigAccess, bdf: Bdf, msix: &MsiX) {
    let header = access.read32(bdf, msix.capability_offset);
    let control = ((header >> 16) as u16 | (1 << 15)) & !(1 << 14);
    access.write32(bdf, msix.capability_offset, (header & 0xFFFF) | (u32::from(control) << 16));
}

/// The mapped address of a memory BAR, if it is one.
pub fn memory_bar(function: &Function, index: u8) -> Option<(u64, u64)> {
    match function.bars.get(usize::from(index))? {
        Some(Bar::Memory { address, size, .. }) if *address != 0 => Some((*address, *size)),
        _ => None,
    }
}

/// Vendor/device pair as `vvvv:dddd`.
pub fn id_string(function: &Function) -> alloc::string::String {
    alloc::format!("{:04x}:{:04x}", function.vendor_id, function.device_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// A fake configuration space with BAR sizing behaviour.
    #[derive(Default)]
    struct FakeSpace {
        words: RefCell<BTreeMap<(Bdf, u8), u32>>,
        bar_masks: BTreeMap<(Bdf, u8), u32>,
    }

    impl ConfigAccess for FakeSpace {
        fn read32(&self, bdf: Bdf, offset: u8) -> u32 {
            self.words.borrow().get(&(bdf, offset)).copied().unwrap_or(if offset == 0 { 0xFFFF_FFFF } else { 0 })
        }
        fn write32(&self, bdf: Bdf, offset: u8, value: u32) {
            let value = match self.bar_masks.get(&(bdf, offset)) {
                Some(mask) if value == u32::MAX => *mask,
                _ if offset == COMMAND => (self.read32(bdf, offset) & 0xFFFF_0000) | (value & 0xFFFF),
                _ => value,
            };
            self.words.borrow_mut().insert((bdf, offset), value);
        }
    }

    fn nvme_like() -> (FakeSpace, Bdf) {
        let bdf = Bdf { bus: 0, device: 3, function: 0 };
        let mut space = FakeSpace::default();
        let set = |offset: u8, value: u32| {
            space.words.borrow_mut().insert((bdf, offset), value);
        };
        set(0x00, 0x0010_1B36);
        set(0x04, STATUS_HAS_CAPABILITIES | 0b110);
        set(0x08, 0x0108_0200);
        set(0x10, 0xFEB0_0004); // 64-bit memory BAR, 16 KiB
        set(0x14, 0x0000_0000);
        set(0x34, 0x40);
        set(0x40, 0x0000_5011 | (63 << 16)); // MSI-X, next 0x50, 64 vectors
        set(0x44, 0x0000_2000); // table in BAR0 at 0x2000
        set(0x48, 0x0000_3000); // PBA in BAR0 at 0x3000
        set(0x50, 0x0000_0010); // PCIe, end of list
        space.bar_masks.insert((bdf, 0x10), 0xFFFF_C004);
        space.bar_masks.insert((bdf, 0x14), 0xFFFF_FFFF);
        (space, bdf)
    }

    #[test]
    fn finds_nvme_with_msix_and_bar() {
        let (space, bdf) = nvme_like();
        let functions = enumerate(&space);
        assert_eq!(functions.len(), 1);
        let nvme = &functions[0];
        assert_eq!(nvme.bdf, bdf);
        assert_eq!(nvme.known(), Some(Known::Nvme));
        let msix = nvme.msix().unwrap();
        assert_eq!((msix.table_size, msix.table_bar, msix.table_offset), (64, 0, 0x2000));
        assert_eq!((msix.pba_bar, msix.pba_offset), (0, 0x3000));
        assert_eq!(
            nvme.bars[0],
            Some(Bar::Memory { address: 0xFEB0_0000, size: 0x4000, prefetchable: false, is_64bit: true })
        );
        assert_eq!(nvme.bars[1], None);
        // BAR probing restored the original values and the command register.
        assert_eq!(space.read32(bdf, 0x10), 0xFEB0_0004);
        assert_eq!(space.read32(bdf, 0x04) & 0b11, 0b10);
    }

    #[test]
    fn looping_capability_list_terminates() {
        let (space, bdf) = nvme_like();
        space.words.borrow_mut().insert((bdf, 0x50), 0x0000_4010); // 0x50 -> 0x40 -> 0x50 ...
        let functions = enumerate(&space);
        assert_eq!(functions[0].capabilities.len(), MAX_CAPABILITIES);
    }

    #[test]
    fn assigns_unassigned_bars_aligned_and_enables_decoding() {
        let (space, bdf) = nvme_like();
        space.words.borrow_mut().insert((bdf, 0x10), 0x0000_0004); // unassigned 64-bit BAR
        let mut functions = enumerate(&space);
        assert_eq!(
            functions[0].bars[0],
            Some(Bar::Memory { address: 0, size: 0x4000, prefetchable: false, is_64bit: true })
        );
        assign_bars(&space, &mut functions).unwrap();
        let Some(Bar::Memory { address, .. }) = functions[0].bars[0] else { panic!("memory BAR expected") };
        assert_eq!(address % 0x4000, 0);
        assert!(MMIO_WINDOW.contains(&address));
        assert_eq!(u64::from(space.read32(bdf, 0x10) & !0xF), address);
        assert_eq!(space.read32(bdf, 0x04) & 0b110, 0b110, "memory decode and bus master on");
        assert_eq!(memory_bar(&functions[0], 0), Some((address, 0x4000)));
    }

    #[test]
    fn msix_enable_sets_enable_and_clears_mask() {
        let (space, bdf) = nvme_like();
        let functions = enumerate(&space);
        let msix = functions[0].msix().unwrap();
        space.words.borrow_mut().insert((bdf, 0x40), 0x4000_5011 | (63 << 16));
        enable_msix(&space, bdf, &msix);
        let control = space.read32(bdf, 0x40) >> 16;
        assert_eq!(control & (1 << 15), 1 << 15);
        assert_eq!(control & (1 << 14), 0);
        assert_eq!(control & 0x7FF, 63);
        assert_eq!(msix_message(2, 0x31), (0xFEE0_2000, 0x31));
    }

    #[test]
    fn virtio_ids() {
        let mut f = Function {
            bdf: Bdf { bus: 0, device: 1, function: 0 },
            vendor_id: 0x1AF4,
            device_id: 0x1041,
            class: 2,
            subclass: 0,
            prog_if: 0,
            bars: [None; 6],
            capabilities: Vec::new(),
        };
        assert_eq!(f.known(), Some(Known::VirtioNet));
        f.device_id = 0x1042;
        assert_eq!(f.known(), Some(Known::VirtioBlock));
        f.device_id = 0x1050;
        assert_eq!(f.known(), None);
    }
}
