//! The SSE4.2 `crc32` instruction for `storage::checksum`, when the CPU
//! has it (checked at run time: the host build targets baseline x86-64).

/// Installs the hardware CRC32C if the CPU supports it; returns whether it did.
pub fn install_hardware_crc32c() -> bool {
    if std::is_x86_feature_detected!("sse4.2") {
        storage::checksum::install_crc32c(crc32c_sse42);
        true
    } else {
        false
    }
}

fn crc32c_sse42(seed: u32, data: &[u8]) -> u32 {
    // SAFETY: installed only after `is_x86_feature_detected!("sse4.2")`.
    unsafe { crc32c_sse42_inner(seed, data) }
}

#[target_feature(enable = "sse4.2")]
fn crc32c_sse42_inner(seed: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u64};
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

#[cfg(test)]
mod tests {
    #[test]
    fn hardware_matches_portable() {
        let data: Vec<u8> = (0..10_007u32).map(|i| (i * 31 + 7) as u8).collect();
        if std::is_x86_feature_detected!("sse4.2") {
            for len in [0, 1, 7, 8, 9, 4096, 10_007] {
                let seed = len as u32;
                assert_eq!(
                    super::crc32c_sse42(seed, &data[..len]),
                    storage::checksum::crc32c_portable(seed, &data[..len])
                );
            }
        }
    }
}
