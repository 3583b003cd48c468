//! Differential: every hardware CRC32C this CPU runs (`hosted::crc::HardwareCrc32c`: SSE4.2, and
//! VPCLMULQDQ folding on AVX-512 CPUs) against the portable table, from any seed, over any bytes at
//! any alignment, in one call and split in two.
#![no_main]

use hosted::crc::HardwareCrc32c;
use libfuzzer_sys::fuzz_target;
use storage::checksum::{Crc32cFn, crc32c_portable};

fuzz_target!(|data: &[u8]| {
    static FUNCTIONS: std::sync::OnceLock<Vec<(&'static str, Crc32cFn)>> = std::sync::OnceLock::new();
    let functions = FUNCTIONS.get_or_init(|| {
        let all: Vec<_> =
            HardwareCrc32c::ALL.into_iter().filter_map(|which| Some((which.name(), which.function()?))).collect();
        assert!(!all.is_empty(), "this machine has SSE4.2");
        all
    });
    // Four bytes of seed, two of where to split, one of where the message starts in its buffer;
    // the rest is the message.
    let Some((head, message)) = data.split_first_chunk::<7>() else { return };
    let seed = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let split = usize::from(u16::from_le_bytes([head[4], head[5]])) % (message.len() + 1);
    let offset = usize::from(head[6] % 64);
    let mut buffer = vec![0u8; offset + message.len()];
    buffer[offset..].copy_from_slice(message);
    let message = &buffer[offset..];
    let expected = crc32c_portable(seed, message);
    let (a, b) = message.split_at(split);
    for &(name, function) in functions {
        assert_eq!(function(seed, message), expected, "{name}, {} bytes", message.len());
        assert_eq!(function(function(seed, a), b), expected, "{name}, split at {split}");
    }
});
