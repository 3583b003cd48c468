//! Thin wrappers over single privileged instructions. Each is `unsafe` where
//! the instruction can break memory safety or device state; the callers say
//! why their use is sound.

use core::arch::asm;
use core::arch::x86_64::{__cpuid_count, _rdtsc, CpuidResult};

/// CPUID is unprivileged and has no side effects.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    __cpuid_count(leaf, subleaf)
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter; CR4.TSD is clear.
    unsafe { _rdtsc() }
}

/// # Safety
/// Port I/O reaches devices directly; the caller owns the device behind `port`.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller owns the device (see the function contract).
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) }
}

/// # Safety
/// As [`outb`].
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller owns the device (see the function contract).
    unsafe { asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags)) };
    value
}

/// # Safety
/// As [`outb`].
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller owns the device (see the function contract).
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags)) }
}

/// # Safety
/// As [`outb`].
pub unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: the caller owns the device (see the function contract).
    unsafe { asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack, preserves_flags)) };
    value
}

/// # Safety
/// Reading an MSR that does not exist raises #GP; the caller checked CPUID.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller checked that the MSR exists.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// # Safety
/// Writing an MSR changes CPU behaviour; the caller knows the consequences.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller vouches for the MSR and the value.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    }
}

pub fn read_cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

pub fn read_cr3() -> u64 {
    let value: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// # Safety
/// `pml4_phys` must be a complete page-table tree that maps all code, data and
/// stacks currently in use at the same addresses.
pub unsafe fn write_cr3(pml4_phys: u64) {
    // SAFETY: the caller guarantees the new tables map everything in use.
    unsafe { asm!("mov cr3, {}", in(reg) pml4_phys, options(nostack, preserves_flags)) }
}

pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: reading RFLAGS has no side effects.
    unsafe { asm!("pushfq; pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags & (1 << 9) != 0
}

pub fn disable_interrupts() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

/// # Safety
/// The IDT must be loaded and every vector that can fire must have a handler.
pub unsafe fn enable_interrupts() {
    // SAFETY: the caller guarantees the IDT is ready.
    unsafe { asm!("sti", options(nomem, nostack)) }
}

/// Enables interrupts and halts in one step: `sti` delays interrupt delivery
/// by one instruction, so a wakeup cannot slip in between the check the caller
/// made (with interrupts off) and the `hlt`. Returns with interrupts enabled.
///
/// # Safety
/// As [`enable_interrupts`].
pub unsafe fn enable_interrupts_and_halt() {
    // SAFETY: the caller guarantees the IDT is ready.
    unsafe { asm!("sti; hlt", options(nomem, nostack)) }
}

/// Stops this CPU for good (interrupts off, halt forever).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: halting with interrupts off only stops this CPU.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) }
    }
}

/// Executes RDRAND, retrying as Intel's DRNG guide says; `None` when the
/// hardware keeps failing or returns the all-ones value of some broken parts.
pub fn rdrand64() -> Option<u64> {
    if cpuid(1, 0).ecx & (1 << 30) == 0 {
        return None;
    }
    for _ in 0..10 {
        let value: u64;
        let ok: u8;
        // SAFETY: CPUID said RDRAND exists; it only writes the two outputs.
        unsafe { asm!("rdrand {}; setc {}", out(reg) value, out(reg_byte) ok, options(nomem, nostack)) };
        if ok == 1 && value != u64::MAX {
            return Some(value);
        }
    }
    None
}

/// RDSEED (a conditioned seed straight from the entropy source), if present.
pub fn rdseed64() -> Option<u64> {
    if cpuid(7, 0).ebx & (1 << 18) == 0 {
        return None;
    }
    for _ in 0..1000 {
        let value: u64;
        let ok: u8;
        // SAFETY: CPUID said RDSEED exists; it only writes the two outputs.
        unsafe { asm!("rdseed {}; setc {}", out(reg) value, out(reg_byte) ok, options(nomem, nostack)) };
        if ok == 1 && value != u64::MAX {
            return Some(value);
        }
        core::hint::spin_loop();
    }
    None
}
