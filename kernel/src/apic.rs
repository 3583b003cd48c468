//! The local APIC: interrupt acknowledgement and the one-shot timer that wakes
//! the idle loop. x2APIC (MSRs) and the TSC-deadline timer are used when the
//! CPU has them (real KVM hosts); QEMU's TCG has neither, so the xAPIC (MMIO)
//! with a calibrated count-down timer is the other path.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use crate::arch::cpu;
use crate::arch::interrupts::{VECTOR_SPURIOUS, VECTOR_TIMER};
use crate::paging;

const IA32_APIC_BASE: u32 = 0x1B;
const IA32_TSC_DEADLINE: u32 = 0x6E0;
const X2APIC_MSR_BASE: u32 = 0x800;

const REG_ID: u32 = 0x20;
const REG_EOI: u32 = 0xB0;
const REG_SPURIOUS: u32 = 0xF0;
const REG_LVT_TIMER: u32 = 0x320;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3E0;

const LVT_MASKED: u32 = 1 << 16;
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
const DIVIDE_BY_16: u32 = 0b0011;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    XApic,
    X2Apic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// Count-down timer at `apic_timer_hz`.
    OneShot,
    /// Interrupt when the TSC passes a value.
    TscDeadline,
}

const MODE_NONE: u8 = 0;
const MODE_XAPIC: u8 = 1;
const MODE_X2APIC: u8 = 2;
static MODE: AtomicU8 = AtomicU8::new(MODE_NONE);
static MMIO_BASE: AtomicU64 = AtomicU64::new(0);
static TSC_DEADLINE: AtomicU8 = AtomicU8::new(0);
/// APIC timer ticks per second after the divider (one-shot mode).
static TIMER_HZ: AtomicU64 = AtomicU64::new(0);

fn read(register: u32) -> u32 {
    match MODE.load(Ordering::Relaxed) {
        // SAFETY: x2APIC mode is enabled, so the MSR exists.
        MODE_X2APIC => unsafe { cpu::rdmsr(X2APIC_MSR_BASE + (register >> 4)) as u32 },
        _ => {
            let base = MMIO_BASE.load(Ordering::Relaxed);
            // SAFETY: the APIC page is mapped uncached by `init`; registers
            // are 32-bit aligned within it.
            unsafe { ((base + u64::from(register)) as *const u32).read_volatile() }
        }
    }
}

fn write(register: u32, value: u32) {
    match MODE.load(Ordering::Relaxed) {
        // SAFETY: x2APIC mode is enabled, so the MSR exists.
        MODE_X2APIC => unsafe { cpu::wrmsr(X2APIC_MSR_BASE + (register >> 4), u64::from(value)) },
        _ => {
            let base = MMIO_BASE.load(Ordering::Relaxed);
            // SAFETY: as in `read`.
            unsafe { ((base + u64::from(register)) as *mut u32).write_volatile(value) }
        }
    }
}

/// Enables the local APIC (x2APIC if present) with the timer masked.
pub fn init() -> Mode {
    let features = cpu::cpuid(1, 0);
    let has_x2apic = features.ecx & (1 << 21) != 0;
    let has_tsc_deadline = features.ecx & (1 << 24) != 0;
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU.
    let base_msr = unsafe { cpu::rdmsr(IA32_APIC_BASE) };
    let mode = if has_x2apic {
        // SAFETY: enabling the APIC (bit 11) and x2APIC mode (bit 10), which
        // CPUID says exists.
        unsafe { cpu::wrmsr(IA32_APIC_BASE, base_msr | (1 << 11) | (1 << 10)) };
        MODE.store(MODE_X2APIC, Ordering::Relaxed);
        Mode::X2Apic
    } else {
        let physical = base_msr & 0x000F_FFFF_FFFF_F000;
        // SAFETY: enabling the APIC at its current base (bit 11).
        unsafe { cpu::wrmsr(IA32_APIC_BASE, base_msr | (1 << 11)) };
        MMIO_BASE.store(paging::map_mmio(physical, 4096), Ordering::Relaxed);
        MODE.store(MODE_XAPIC, Ordering::Relaxed);
        Mode::XApic
    };
    TSC_DEADLINE.store(u8::from(has_tsc_deadline), Ordering::Relaxed);
    write(REG_SPURIOUS, 0x100 | u32::from(VECTOR_SPURIOUS));
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(VECTOR_TIMER));
    mode
}

pub fn id() -> u32 {
    match MODE.load(Ordering::Relaxed) {
        MODE_X2APIC => read(REG_ID),
        _ => read(REG_ID) >> 24,
    }
}

pub fn timer_kind() -> TimerKind {
    if TSC_DEADLINE.load(Ordering::Relaxed) == 1 { TimerKind::TscDeadline } else { TimerKind::OneShot }
}

/// Measures the count-down timer's rate against the (calibrated) TSC.
pub fn calibrate(tsc_hz: u64) -> u64 {
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(VECTOR_TIMER));
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    let window_ticks = tsc_hz / 50; // 20 ms
    write(REG_TIMER_INITIAL, u32::MAX);
    let start = cpu::rdtsc();
    while cpu::rdtsc() - start < window_ticks {
        core::hint::spin_loop();
    }
    let remaining = read(REG_TIMER_CURRENT);
    let elapsed_tsc = cpu::rdtsc() - start;
    write(REG_TIMER_INITIAL, 0);
    let counted = u64::from(u32::MAX - remaining);
    let hz = (u128::from(counted) * u128::from(tsc_hz) / u128::from(elapsed_tsc.max(1))) as u64;
    TIMER_HZ.store(hz, Ordering::Relaxed);
    hz
}

pub fn timer_hz() -> u64 {
    TIMER_HZ.load(Ordering::Relaxed)
}

/// Arms the timer to interrupt `delay_ns` from now (or at `deadline_tsc` in
/// TSC-deadline mode). Replaces any earlier arming.
pub fn arm_timer(delay_ns: u64, deadline_tsc: u64) {
    match timer_kind() {
        TimerKind::TscDeadline => {
            write(REG_LVT_TIMER, LVT_TSC_DEADLINE | u32::from(VECTOR_TIMER));
            // SAFETY: CPUID reported the TSC-deadline MSR.
            unsafe { cpu::wrmsr(IA32_TSC_DEADLINE, deadline_tsc.max(1)) };
        }
        TimerKind::OneShot => {
            let ticks = u128::from(delay_ns) * u128::from(timer_hz()) / 1_000_000_000;
            let ticks = ticks.clamp(1, u128::from(u32::MAX)) as u32;
            write(REG_LVT_TIMER, u32::from(VECTOR_TIMER));
            write(REG_TIMER_INITIAL, ticks);
        }
    }
}

pub fn end_of_interrupt() {
    write(REG_EOI, 0);
}
