//! COM1 (16550 UART at port 0x3F8): the console, where structured log records
//! go. `RawWriter` takes no lock, for the fatal paths (exceptions, panics),
//! which may interrupt a holder of the console lock.

use core::fmt;

use spin::Mutex;

use crate::arch::cpu;

const COM1: u16 = 0x3F8;

static CONSOLE: Mutex<()> = Mutex::new(());

/// Programs the UART: 115200 baud, 8N1, FIFOs on, interrupts off.
pub fn init() {
    // SAFETY: COM1 is the kernel's console and nothing else drives it.
    unsafe {
        cpu::outb(COM1 + 1, 0x00);
        cpu::outb(COM1 + 3, 0x80);
        cpu::outb(COM1, 0x01);
        cpu::outb(COM1 + 1, 0x00);
        cpu::outb(COM1 + 3, 0x03);
        cpu::outb(COM1 + 2, 0xC7);
        cpu::outb(COM1 + 4, 0x03);
    }
}

fn write_byte(byte: u8) {
    // SAFETY: COM1 is the kernel's console; polling the line status register
    // and writing the data register have no other effects.
    unsafe {
        let mut spins = 0u32;
        // Bounded wait: a missing UART must not hang the kernel.
        while cpu::inb(COM1 + 5) & 0x20 == 0 && spins < 100_000 {
            spins += 1;
            core::hint::spin_loop();
        }
        cpu::outb(COM1, byte);
    }
}

fn write_bytes(s: &str) {
    for byte in s.bytes() {
        if byte == b'\n' {
            write_byte(b'\r');
        }
        write_byte(byte);
    }
}

/// Writes without taking the console lock. Only for fatal paths.
pub fn write_raw(s: &str) {
    write_bytes(s);
}

/// `fmt::Write` over [`write_raw`].
pub struct RawWriter;

impl fmt::Write for RawWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s);
        Ok(())
    }
}

/// The log sink: whole records are written under the console lock so lines
/// from different tasks never interleave.
pub struct SerialSink;

pub static SERIAL_SINK: SerialSink = SerialSink;

impl services::log::Sink for SerialSink {
    fn write_str(&self, s: &str) {
        let _guard = CONSOLE.lock();
        write_bytes(s);
    }
}

/// `print!`-style output for boot banners and self-test lines.
pub fn print(args: fmt::Arguments<'_>) {
    let _guard = CONSOLE.lock();
    let _ = fmt::write(&mut RawWriter, args);
}

#[macro_export]
macro_rules! println {
    () => { $crate::serial::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::serial::print(format_args!("{}\n", format_args!($($arg)*))) };
}
