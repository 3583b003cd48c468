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

/// Bytes each of the three interleaved streams of [`x86::crc32c_sse42`]
/// covers per round.
const STREAM_BYTES: usize = 2048;

/// `shift(state, n)`: the CRC state after `n` zero bytes, which is how a
/// stream's CRC is moved past the streams that follow it. It is linear in
/// the state, so it is a table per state byte (the XOR of four lookups).
struct Shift {
    tables: [[u32; 256]; 4],
}

impl Shift {
    fn new(bytes: usize) -> Self {
        // The image of each state bit, by feeding zeros (slowly, once).
        let zeros = [0u8; STREAM_BYTES];
        let basis: [u32; 32] = core::array::from_fn(|bit| {
            let mut state = 1u32 << bit;
            let mut left = bytes;
            while left > 0 {
                let take = left.min(zeros.len());
                state = update_portable(state, &zeros[..take]);
                left -= take;
            }
            state
        });
        let mut tables = [[0u32; 256]; 4];
        for (byte, table) in tables.iter_mut().enumerate() {
            for (value, entry) in table.iter_mut().enumerate() {
                *entry = (0..8).filter(|bit| value & (1 << bit) != 0).fold(0, |acc, bit| acc ^ basis[byte * 8 + bit]);
            }
        }
        Self { tables }
    }

    fn apply(&self, state: u32) -> u32 {
        let [b0, b1, b2, b3] = state.to_le_bytes();
        self.tables[0][usize::from(b0)]
            ^ self.tables[1][usize::from(b1)]
            ^ self.tables[2][usize::from(b2)]
            ^ self.tables[3][usize::from(b3)]
    }
}

/// The raw CRC register after `data` from `state` (no inversions).
fn update_portable(state: u32, data: &[u8]) -> u32 {
    !crc32c_portable(!state, data)
}

/// Shifts past one and two streams.
static SHIFTS: Once<[Shift; 2]> = Once::new();

fn shifts() -> &'static [Shift; 2] {
    SHIFTS.call_once(|| [Shift::new(STREAM_BYTES), Shift::new(2 * STREAM_BYTES)])
}

#[cfg(target_arch = "x86_64")]
pub mod x86 {
    //! SSE4.2's `crc32` instruction, three streams at once.

    use core::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u64};

    use super::{STREAM_BYTES, shifts};

    /// CRC32C of `data` continuing from `seed`, as
    /// [`super::crc32c_portable`]. The instruction takes 3 cycles and
    /// issues every cycle, so three independent streams (thirds of each
    /// 6 KiB) run at three times one stream's speed; their CRCs are then
    /// joined by shifting the first two past the ones that follow.
    ///
    /// # Safety
    /// Only on a CPU with SSE4.2.
    #[target_feature(enable = "sse4.2")]
    pub fn crc32c_sse42(seed: u32, data: &[u8]) -> u32 {
        let mut state = u64::from(!seed);
        let mut rounds = data.chunks_exact(3 * STREAM_BYTES);
        if rounds.len() > 0 {
            let [one, two] = shifts();
            for round in &mut rounds {
                let (a, rest) = round.split_at(STREAM_BYTES);
                let (b, c) = rest.split_at(STREAM_BYTES);
                let (mut sa, mut sb, mut sc) = (state, 0u64, 0u64);
                for ((wa, wb), wc) in a.chunks_exact(8).zip(b.chunks_exact(8)).zip(c.chunks_exact(8)) {
                    sa = _mm_crc32_u64(sa, word(wa));
                    sb = _mm_crc32_u64(sb, word(wb));
                    sc = _mm_crc32_u64(sc, word(wc));
                }
                state = u64::from(two.apply(sa as u32) ^ one.apply(sb as u32) ^ sc as u32);
            }
        }
        let mut words = rounds.remainder().chunks_exact(8);
        for w in &mut words {
            state = _mm_crc32_u64(state, word(w));
        }
        let mut state = state as u32;
        for &byte in words.remainder() {
            state = _mm_crc32_u8(state, byte);
        }
        !state
    }

    fn word(bytes: &[u8]) -> u64 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[..8]);
        u64::from_le_bytes(word)
    }
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
