//! The runtime's platform on bare metal: interrupts become task wakeups, and
//! idling is `hlt` with the APIC timer armed for the next timer deadline.

use alloc::sync::Arc;

use runtime::executor::Platform;
use runtime::timers::Timers;

use crate::arch::{cpu, interrupts};
use crate::{apic, time};

pub struct KernelPlatform {
    /// Times the CPU halted, for statistics.
    pub halts: u64,
}

impl KernelPlatform {
    pub fn new() -> Self {
        Self { halts: 0 }
    }
}

impl Default for KernelPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl Platform for KernelPlatform {
    fn poll_events(&mut self) {
        interrupts::deliver_pending();
    }

    fn idle(&mut self, deadline_ns: Option<u64>) {
        // Check for work with interrupts off, then `sti; hlt` as one step, so
        // an interrupt arriving after the check still ends the halt.
        cpu::disable_interrupts();
        if interrupts::has_pending() {
            // SAFETY: the IDT is loaded before the executor runs.
            unsafe { cpu::enable_interrupts() };
            return;
        }
        if let Some(deadline) = deadline_ns {
            let now = time::now_ns();
            if deadline <= now {
                // SAFETY: as above.
                unsafe { cpu::enable_interrupts() };
                return;
            }
            apic::arm_timer(deadline - now, time::tsc_at(deadline));
        }
        self.halts += 1;
        // SAFETY: as above.
        unsafe { cpu::enable_interrupts_and_halt() };
    }
}

/// The timer structure every task shares, on the kernel's TSC clock.
pub fn new_timers() -> Timers {
    Timers::new(Arc::new(time::KernelClock))
}
