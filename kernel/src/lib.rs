//! Rustcore's bare-metal platform: the only crate that touches hardware.
//!
//! On the `x86_64-rustcore` target this is the kernel: PVH boot, CPU setup,
//! memory, interrupts, time, randomness and PCI, then the services on the
//! runtime's executor. On the host only the hardware-independent parts build
//! (`memory`, `time_math`, `pci`, `heap`, `drivers::requests`), so they are
//! unit-tested there.
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

pub mod heap;
pub mod memory;
pub mod pci;
pub mod time_math;

#[cfg(target_os = "none")]
pub mod apic;
#[cfg(target_os = "none")]
pub mod arch;
pub mod drivers;
#[cfg(target_os = "none")]
pub mod exit;
#[cfg(target_os = "none")]
pub mod network;
#[cfg(target_os = "none")]
pub mod paging;
#[cfg(target_os = "none")]
pub mod platform;
#[cfg(target_os = "none")]
pub mod pvh;
#[cfg(target_os = "none")]
pub mod rng;
#[cfg(target_os = "none")]
pub mod rtc;
#[cfg(target_os = "none")]
pub mod s3_service;
#[cfg(target_os = "none")]
pub mod selftest;
#[cfg(target_os = "none")]
pub mod serial;
#[cfg(target_os = "none")]
pub mod time;

#[cfg(target_os = "none")]
mod kernel_main;
#[cfg(target_os = "none")]
pub use kernel_main::start;

#[cfg(target_os = "none")]
#[global_allocator]
pub static HEAP: heap::KernelHeap = heap::KernelHeap::new();

/// Reports an unrecoverable condition and stops the machine with a failure
/// exit. Used where continuing would corrupt state (boot invariants).
#[cfg(target_os = "none")]
pub fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    use core::fmt::Write;
    let _ = writeln!(serial::RawWriter, "FATAL {args}");
    exit::exit_qemu(exit::ExitCode::Failure)
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    arch::cpu::disable_interrupts();
    let _ = writeln!(serial::RawWriter, "FATAL panic: {info}");
    exit::exit_qemu(exit::ExitCode::Failure)
}
