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
    // SAFETY: installed only after `is_x86_feature_detected!("sse4.2")`, all the function is
    // compiled for.
    unsafe { storage::checksum::x86::crc32c_sse42(seed, data) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hardware_matches_portable() {
        assert!(std::is_x86_feature_detected!("sse4.2"), "the machines this runs on have SSE4.2");
        let data: Vec<u8> = (0..100_007u32).map(|i| (i * 31 + 7 + i / 253) as u8).collect();
        // Around the three-stream rounds (6 KiB) and their tail.
        let lengths = [0, 1, 7, 8, 9, 4096, 6143, 6144, 6145, 6152, 12_287, 12_288, 12_295, 65_536, 100_007];
        for len in lengths {
            for seed in [0, 1, len as u32, 0xFFFF_FFFF, 0x1234_5678] {
                assert_eq!(
                    super::crc32c_sse42(seed, &data[..len]),
                    storage::checksum::crc32c_portable(seed, &data[..len]),
                    "length {len}, seed {seed:#x}"
                );
            }
        }
        // Every offset into a buffer, so the streams' words are never aligned alike.
        for start in 0..16 {
            let piece = &data[start..start + 20_000];
            assert_eq!(super::crc32c_sse42(7, piece), storage::checksum::crc32c_portable(7, piece));
        }
    }
}
