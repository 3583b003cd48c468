//! The SSE4.2 `crc32` instruction behind `storage::checksum`'s CRC32C.

/// Installs the hardware CRC32C. The boot trampoline refused to start on a
/// CPU without SSE4.2, so the instruction is always there.
pub fn install() {
    storage::checksum::install_crc32c(crc32c);
}

fn crc32c(seed: u32, data: &[u8]) -> u32 {
    // SAFETY: the image requires SSE4.2 (checked by CPUID before any Rust
    // runs), which is all `crc32c_sse42` needs.
    unsafe { storage::checksum::x86::crc32c_sse42(seed, data) }
}
