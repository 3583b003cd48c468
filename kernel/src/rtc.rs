//! Wall-clock time at boot from the CMOS real-time clock (SigV4 and TLS
//! certificate checks need real time; the TSC carries it forward).

use crate::arch::cpu;

fn read_register(register: u8) -> u8 {
    // SAFETY: the CMOS index/data ports are the kernel's; bit 7 of the index
    // keeps NMIs disabled as before.
    unsafe {
        cpu::outb(0x70, 0x80 | register);
        cpu::inb(0x71)
    }
}

fn update_in_progress() -> bool {
    read_register(0x0A) & 0x80 != 0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Raw {
    second: u8,
    minute: u8,
    hour: u8,
    day: u8,
    month: u8,
    year: u8,
    century: u8,
}

fn read_raw() -> Raw {
    let mut spins = 0;
    while update_in_progress() && spins < 1_000_000 {
        spins += 1;
        core::hint::spin_loop();
    }
    Raw {
        second: read_register(0x00),
        minute: read_register(0x02),
        hour: read_register(0x04),
        day: read_register(0x07),
        month: read_register(0x08),
        year: read_register(0x09),
        century: read_register(0x32),
    }
}

/// Seconds of the current RTC time (for calibration cross-checks).
pub fn seconds_register() -> u8 {
    read_register(0x00)
}

/// Reads the RTC until two reads agree and returns Unix seconds, or `None`
/// when the values make no sense (no RTC, or garbage).
pub fn read_unix_seconds() -> Option<u64> {
    let mut previous = read_raw();
    for _ in 0..5 {
        let current = read_raw();
        if current == previous {
            let status_b = read_register(0x0B);
            return crate::time_math::rtc_to_unix(
                [
                    current.second,
                    current.minute,
                    current.hour,
                    current.day,
                    current.month,
                    current.year,
                    current.century,
                ],
                status_b & 0x04 != 0,
                status_b & 0x02 != 0,
            );
        }
        previous = current;
    }
    None
}
