//! The SSE4.2 `crc32` instruction behind `storage::checksum`'s CRC32C.

/// Installs the hardware CRC32C. The boot trampoline refused to start on a
/// CPU without SSE4.2, so the instruction is always there.
pub fn install() {
    storage::checksum::install_crc32c(crc32c);
}

fn crc32c(seed: u32, data: &[u8]) -> u32 {
    // SAFETY: the image requires SSE4.2 (checked by CPUID before any Rust
    // runs), which is all `crc32c_sse42` needs.
    unsafe { crc32c_sse42(seed, data) }
}

#[target_feature(enable = "sse4.2")]
fn crc32c_sse42(seed: u32, data: &[u8]) -> u32 {
    use core::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u64};
    let mut crc = u64::from(!seed);
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        crc = _mm_crc32_u64(crc, u64::from_le_bytes(bytes));
    }
    let mut crc = crc as u32;
    for &byte in words.remainder() {
        crc = _mm_crc32_u8(crc, byte);
    }
    !crc
}
