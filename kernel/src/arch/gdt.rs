//! The long-mode GDT and the TSS whose interrupt stack table gives the fatal
//! exceptions (#DF, #PF, NMI, #MC) stacks of their own: a stack overflow into a
//! guard page must still be reported, which needs a stack that works.

use core::arch::asm;
use core::mem::size_of;

use super::boot::stacks;

pub const KERNEL_CODE: u16 = 0x08;
pub const KERNEL_DATA: u16 = 0x10;
const TSS_SELECTOR: u16 = 0x18;

/// IST slots (1-based, as the IDT encodes them).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_PAGE_FAULT: u8 = 2;
pub const IST_NMI: u8 = 3;
pub const IST_MACHINE_CHECK: u8 = 4;

#[repr(C, packed(4))]
struct TaskStateSegment {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

static mut TSS: TaskStateSegment = TaskStateSegment {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    iomap_base: size_of::<TaskStateSegment>() as u16,
};

static mut GDT: [u64; 5] = [
    0,
    0x00AF_9A00_0000_FFFF, // 0x08: 64-bit code, ring 0
    0x00CF_9200_0000_FFFF, // 0x10: data, ring 0
    0,                     // 0x18: TSS low (filled in at init)
    0,                     // 0x20: TSS high
];

#[repr(C, packed(2))]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// Loads our GDT and TSS. Called once, early, with interrupts off.
pub fn init() {
    let [_main, df, pf, nmi, mc] = stacks();
    // SAFETY: single-threaded early boot with interrupts off: nothing else
    // touches TSS/GDT, and the descriptors built here are valid for the CPU
    // (a 64-bit available TSS of the right size, the flat code/data segments
    // the trampoline already uses).
    unsafe {
        let tss = &raw mut TSS;
        (*tss).ist[usize::from(IST_DOUBLE_FAULT - 1)] = df.top;
        (*tss).ist[usize::from(IST_PAGE_FAULT - 1)] = pf.top;
        (*tss).ist[usize::from(IST_NMI - 1)] = nmi.top;
        (*tss).ist[usize::from(IST_MACHINE_CHECK - 1)] = mc.top;

        let base = tss as u64;
        let limit = (size_of::<TaskStateSegment>() - 1) as u64;
        let low = (limit & 0xFFFF)
            | ((base & 0xFF_FFFF) << 16)
            | (0x89 << 40) // present, 64-bit TSS (available)
            | (((limit >> 16) & 0xF) << 48)
            | (((base >> 24) & 0xFF) << 56);
        let gdt = &raw mut GDT;
        (*gdt)[3] = low;
        (*gdt)[4] = base >> 32;

        let pointer = DescriptorPointer { limit: (size_of::<[u64; 5]>() - 1) as u16, base: gdt as u64 };
        asm!(
            "lgdt [{ptr}]",
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            "ltr {tss:x}",
            ptr = in(reg) &raw const pointer,
            code = in(reg) u64::from(KERNEL_CODE),
            data = in(reg) u64::from(KERNEL_DATA),
            tss = in(reg) u64::from(TSS_SELECTOR),
            tmp = lateout(reg) _,
        );
    }
}
