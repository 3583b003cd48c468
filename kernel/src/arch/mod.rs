//! x86_64 specifics: the boot trampoline, CPU instructions, segmentation and
//! interrupt entry.

pub mod boot;
pub mod cpu;
pub mod crc;
pub mod gcm;
pub mod gdt;
pub mod interrupts;
pub mod md5;
