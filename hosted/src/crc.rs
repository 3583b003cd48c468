//! The hardware CRC32C for `storage::checksum`: VPCLMULQDQ folding where the CPU has AVX-512,
//! else SSE4.2's `crc32` instruction (checked at run time: the host build targets baseline x86-64).

use storage::checksum::{Crc32cFn, x86};

/// A hardware CRC32C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardwareCrc32c {
    /// Folding 256 bytes a step on 512-bit vectors (`x86::crc32c_vpclmul`).
    Vpclmul,
    /// Three streams of the `crc32` instruction (`x86::crc32c_sse42`).
    Sse42,
}

impl HardwareCrc32c {
    /// Fastest first.
    pub const ALL: [Self; 2] = [Self::Vpclmul, Self::Sse42];

    /// For logs and bench rows.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vpclmul => "VPCLMULQDQ (AVX-512)",
            Self::Sse42 => "SSE4.2",
        }
    }

    /// The function, if this CPU runs it (checked here, so that no safe caller can get a function
    /// its CPU lacks the instructions for).
    pub fn function(self) -> Option<Crc32cFn> {
        match self {
            Self::Vpclmul if vpclmul_detected() => Some(crc32c_vpclmul),
            Self::Sse42 if std::is_x86_feature_detected!("sse4.2") => Some(crc32c_sse42),
            Self::Vpclmul | Self::Sse42 => None,
        }
    }
}

/// Every feature `x86::crc32c_vpclmul` is compiled for.
fn vpclmul_detected() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("vpclmulqdq")
        && std::is_x86_feature_detected!("pclmulqdq")
        && std::is_x86_feature_detected!("sse4.2")
}

/// Installs the fastest hardware CRC32C this CPU runs; returns which (`None`: the portable one
/// stays).
pub fn install_hardware_crc32c() -> Option<HardwareCrc32c> {
    let (which, function) = HardwareCrc32c::ALL.into_iter().find_map(|which| Some((which, which.function()?)))?;
    storage::checksum::install_crc32c(function);
    Some(which)
}

fn crc32c_vpclmul(seed: u32, data: &[u8]) -> u32 {
    // SAFETY: only `HardwareCrc32c::function` hands this out, after `vpclmul_detected()`: every
    // feature the function is compiled for (and those they imply, which every CPU with AVX-512F
    // has).
    unsafe { x86::crc32c_vpclmul(seed, data) }
}

fn crc32c_sse42(seed: u32, data: &[u8]) -> u32 {
    // SAFETY: only `HardwareCrc32c::function` hands this out, after
    // `is_x86_feature_detected!("sse4.2")`, all the function is compiled for.
    unsafe { x86::crc32c_sse42(seed, data) }
}

#[cfg(test)]
mod tests {
    use super::HardwareCrc32c;
    use storage::checksum::{Crc32cFn, crc32c_portable};

    fn function(which: HardwareCrc32c) -> Crc32cFn {
        which.function().unwrap_or_else(|| panic!("the machines this runs on have {}", which.name()))
    }

    /// Deterministic bytes that do not repeat with any short period.
    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                // xorshift64*
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    const SEEDS: [u32; 6] = [0, 1, 0xFFFF_FFFF, 0x1234_5678, 0x8000_0000, 0xE306_9283];

    /// `crc32c` of `piece` from `seed` is the portable one's; `place` says where `piece` starts.
    fn assert_agrees(crc32c: Crc32cFn, seed: u32, piece: &[u8], place: &str) {
        let len = piece.len();
        assert_eq!(crc32c(seed, piece), crc32c_portable(seed, piece), "length {len}, seed {seed:#x}, {place}");
    }

    #[test]
    fn hardware_matches_portable() {
        let crc32c_sse42 = function(HardwareCrc32c::Sse42);
        let data: Vec<u8> = (0..100_007u32).map(|i| (i * 31 + 7 + i / 253) as u8).collect();
        // Around the three-stream rounds (6 KiB) and their tail.
        let lengths = [0, 1, 7, 8, 9, 4096, 6143, 6144, 6145, 6152, 12_287, 12_288, 12_295, 65_536, 100_007];
        for len in lengths {
            for seed in [0, 1, len as u32, 0xFFFF_FFFF, 0x1234_5678] {
                assert_agrees(crc32c_sse42, seed, &data[..len], "start 0");
            }
        }
        // Every offset into a buffer, so the streams' words are never aligned alike.
        for start in 0..16 {
            let piece = &data[start..start + 20_000];
            assert_eq!(crc32c_sse42(7, piece), crc32c_portable(7, piece));
        }
    }

    #[test]
    fn vpclmul_matches_portable_at_every_short_length() {
        let crc32c_vpclmul = function(HardwareCrc32c::Vpclmul);
        let data = data(2048, 1);
        // Every path's boundary: under one step (256 bytes), the 64-byte and 16-byte blocks after
        // the steps, and the bytes after those.
        for len in 0..=data.len() {
            for seed in SEEDS {
                assert_agrees(crc32c_vpclmul, seed, &data[..len], "start 0");
            }
        }
    }

    #[test]
    fn vpclmul_matches_portable_around_step_boundaries() {
        let crc32c_vpclmul = function(HardwareCrc32c::Vpclmul);
        let data = data(100_000 + 64, 2);
        let mut lengths = vec![100_000, 65_536, 4096 * 5 + 17];
        for base in (256..=100_000).step_by(256) {
            lengths.extend([base - 17, base - 16, base - 1, base, base + 1, base + 16, base + 64, base + 255]);
        }
        for (i, len) in lengths.into_iter().filter(|&len| len <= 100_000).enumerate() {
            let seed = SEEDS[i % SEEDS.len()] ^ len as u32;
            // Every start offset within a cache line, for a few lengths each.
            for start in [0, 1, 3, 8, 15, 31, 33, 63].into_iter().skip(i % 4).step_by(4) {
                assert_agrees(crc32c_vpclmul, seed, &data[start..start + len], &format!("start {start}"));
            }
        }
    }

    #[test]
    fn vpclmul_matches_portable_at_every_offset() {
        let crc32c_vpclmul = function(HardwareCrc32c::Vpclmul);
        let data = data(20_000 + 64, 3);
        for start in 0..64 {
            for len in [255, 256, 300, 1000, 4097, 20_000] {
                for seed in SEEDS {
                    assert_agrees(crc32c_vpclmul, seed, &data[start..start + len], &format!("start {start}"));
                }
            }
        }
    }

    #[test]
    fn vpclmul_matches_portable_on_random_data() {
        let crc32c_vpclmul = function(HardwareCrc32c::Vpclmul);
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("host randomness");
        let mut state = u64::from_le_bytes(random);
        for _ in 0..200 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let len = (state >> 40) as usize % 20_000;
            let seed = (state >> 8) as u32;
            let data = data(len + 64, state);
            let start = (state >> 33) as usize % 64;
            let place = format!("start {start}, generator {state:#x}");
            assert_agrees(crc32c_vpclmul, seed, &data[start..start + len], &place);
        }
    }

    #[test]
    fn vpclmul_continues_a_crc_split_anywhere() {
        let crc32c_vpclmul = function(HardwareCrc32c::Vpclmul);
        let data = data(5000, 4);
        let whole = crc32c_portable(0, &data);
        for split in [0, 1, 255, 256, 257, 1000, 4096, 4999, 5000] {
            let (a, b) = data.split_at(split);
            assert_eq!(crc32c_vpclmul(crc32c_vpclmul(0, a), b), whole, "split at {split}");
        }
    }

    #[test]
    fn the_fastest_is_installed() {
        assert_eq!(super::install_hardware_crc32c(), Some(HardwareCrc32c::Vpclmul));
        assert_eq!(storage::checksum::crc32c(b"123456789"), 0xE306_9283);
    }
}
