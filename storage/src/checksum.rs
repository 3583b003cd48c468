//! CRC32C (Castagnoli), the checksum of every chunk and on-disk record.
//!
//! The portable path is the `crc` crate's slice-by-16 table. A platform with
//! the SSE4.2 `crc32` instruction installs a faster function once at boot
//! with [`install_crc32c`]: calling that instruction needs `unsafe` (a
//! target-feature function), and `unsafe` lives only in the kernel, which
//! has verified the CPU feature before any Rust runs.

use crc::{CRC_32_ISCSI, Crc, Table};
use spin::Once;

/// `crc32c(seed, data)`: continues a CRC from `seed` (0 for a fresh one),
/// with the usual pre/post inversion already applied to `seed` and result.
pub type Crc32cFn = fn(u32, &[u8]) -> u32;

static ACCELERATED: Once<Crc32cFn> = Once::new();
static PORTABLE: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);

/// Installs a faster implementation. The first call wins; it must compute
/// exactly what [`crc32c_portable`] does (the kernel's self test checks).
pub fn install_crc32c(function: Crc32cFn) {
    ACCELERATED.call_once(|| function);
}

/// Whether an accelerated implementation is installed.
pub fn crc32c_accelerated() -> bool {
    ACCELERATED.get().is_some()
}

/// The table-driven implementation, continuing from `seed`.
pub fn crc32c_portable(seed: u32, data: &[u8]) -> u32 {
    // Resuming means starting from the previous value with its final xor
    // undone; the `crc` crate reflects a custom initial value itself, so it
    // gets the unreflected form.
    let mut digest = PORTABLE.digest_with_initial((!seed).reverse_bits());
    digest.update(data);
    digest.finalize()
}

/// CRC32C of `data` continuing from `seed` (0 to start).
pub fn crc32c_append(seed: u32, data: &[u8]) -> u32 {
    match ACCELERATED.get() {
        Some(function) => function(seed, data),
        None => crc32c_portable(seed, data),
    }
}

/// CRC32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
    }

    #[test]
    fn appending_equals_one_pass() {
        let data: alloc::vec::Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = crc32c(&data);
        for split in [0, 1, 7, 4096, 9_999, 10_000] {
            let (a, b) = data.split_at(split);
            assert_eq!(crc32c_append(crc32c(a), b), whole, "split at {split}");
        }
    }
}
