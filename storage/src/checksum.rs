//! CRC32C (Castagnoli), the checksum of every chunk and on-disk record.
//!
//! The portable path is the `crc` crate's slice-by-16 table. A platform with
//! the SSE4.2 `crc32` instruction (or, `hosted` on AVX-512, VPCLMULQDQ
//! folding) installs a faster function once at boot with
//! [`install_crc32c`]: calling that instruction needs `unsafe` (a
//! target-feature function), and `unsafe` lives only in the kernel, which
//! has verified the CPU feature before any Rust runs, and `hosted`, which
//! checks it at run time.

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
    //! SSE4.2's `crc32` instruction, three streams at once; and folding with
    //! carry-less multiplies on 512-bit vectors (VPCLMULQDQ, AVX-512).
    //!
    //! Folding: a CRC is the message polynomial times x^32 mod P, and XOR
    //! and reduction mod P commute, so a 128-bit block B followed by D more
    //! bits can be replaced by B·x^D mod P (at most 96 bits: two 64×32-bit
    //! carry-less products) added to the block D bits on. Sixteen 128-bit
    //! lanes (four 512-bit registers, 256 bytes) move 2048 bits per step
    //! with independent multiplies; at the end the registers fold into one,
    //! its lanes into one 128-bit block, and that block (its CRC from zero
    //! is the whole prefix's) goes through the `crc32` instruction with the
    //! tail.

    use core::arch::x86_64::{
        __m128i, __m512i, _mm_clmulepi64_si128, _mm_crc32_u8, _mm_crc32_u64, _mm_ternarylogic_epi64, _mm_xor_si128,
        _mm256_castsi256_si128, _mm256_extracti128_si256, _mm256_xor_si256, _mm512_castsi512_si256,
        _mm512_clmulepi64_epi128, _mm512_extracti32x4_epi32, _mm512_extracti64x4_epi64, _mm512_ternarylogic_epi64,
        _mm512_xor_si512,
    };

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

    /// The reflected Castagnoli polynomial without its x^32 term.
    const POLY: u32 = 0x82F6_3B78;

    /// x^n mod P as a CRC register holds a remainder: bit 31 is x^0, bit 0
    /// is x^31.
    pub(super) const fn x_pow_mod(n: u32) -> u32 {
        let mut value = 1u32 << 31;
        let mut i = 0;
        while i < n {
            // Times x moves every coefficient one bit down; the x^32 that
            // falls out is P minus its x^32.
            value = (value >> 1) ^ if value & 1 != 0 { POLY } else { 0 };
            i += 1;
        }
        value
    }

    /// The qwords that move a 128-bit lane `bits` further on, as `[low,
    /// high]` for the lane's `[low, high]` qwords.
    ///
    /// Loaded little-endian, a lane's low qword holds its first 64 message
    /// bits H and its high qword the other 64, L: the lane is H·x^64 + L,
    /// so moving it multiplies H by x^(bits+64) and L by x^bits. A
    /// carry-less product of two reflected qwords is x·A·B read as a
    /// reflected 128-bit lane (bit 127 stays clear), hence one power less
    /// here; the remainder sits in the qword's upper half so that its x^0
    /// is the qword's x^0 (bit 63).
    pub(super) const fn fold_by(bits: u32) -> [u64; 2] {
        [(x_pow_mod(bits + 63) as u64) << 32, (x_pow_mod(bits - 1) as u64) << 32]
    }

    /// One step of the main loop: four registers, 256 bytes.
    const STEP: usize = 256;

    // In `const` items, so that they are worked out when compiling, not
    // each call.
    const BY_STEP: [u64; 2] = fold_by(STEP as u32 * 8);
    const BY_192: [u64; 2] = fold_by(192 * 8);
    const BY_128: [u64; 2] = fold_by(128 * 8);
    const BY_64: [u64; 2] = fold_by(64 * 8);
    const BY_16: [u64; 2] = fold_by(16 * 8);
    /// Lanes 0-2 of a register move past the lanes after them; lane 3
    /// stays.
    const BY_LANE: [u64; 8] = {
        let ([a, b], [c, d], [e, f]) = (fold_by(48 * 8), fold_by(32 * 8), BY_16);
        [a, b, c, d, e, f, 0, 0]
    };

    /// CRC32C of `data` continuing from `seed`, as
    /// [`super::crc32c_portable`], by folding (module documentation).
    /// Inputs under 256 bytes go to [`crc32c_sse42`].
    ///
    /// Each register's chain is a multiply (several cycles of latency)
    /// and a three-way XOR per step; four registers keep the multiplier
    /// busy while one waits.
    ///
    /// # Safety
    /// Only on a CPU with AVX-512F, AVX-512VL, VPCLMULQDQ, PCLMULQDQ and
    /// SSE4.2.
    #[target_feature(enable = "avx512f,avx512vl,vpclmulqdq,pclmulqdq,sse4.2")]
    pub fn crc32c_vpclmul(seed: u32, data: &[u8]) -> u32 {
        if data.len() < STEP {
            return crc32c_sse42(seed, data);
        }
        let (first, rest) = data.split_at(STEP);
        // The register starting the CRC from !seed, as XORing it into the
        // first four bytes does.
        let mut start = [0u32; 16];
        start[0] = !seed;
        let start: __m512i = bytemuck::cast(start);
        let mut x = [
            _mm512_xor_si512(load64(&first[..64]), start),
            load64(&first[64..]),
            load64(&first[128..]),
            load64(&first[192..]),
        ];
        let by_step = broadcast(BY_STEP);
        let mut steps = rest.chunks_exact(STEP);
        for step in &mut steps {
            for (x, block) in x.iter_mut().zip(step.chunks_exact(64)) {
                *x = fold_into(*x, by_step, load64(block));
            }
        }
        let by_64 = broadcast(BY_64);
        let mut x =
            fold_into(x[0], broadcast(BY_192), fold_into(x[1], broadcast(BY_128), fold_into(x[2], by_64, x[3])));
        let mut blocks = steps.remainder().chunks_exact(64);
        for block in &mut blocks {
            x = fold_into(x, by_64, load64(block));
        }
        let by_lane: __m512i = bytemuck::cast(BY_LANE);
        let moved = _mm512_xor_si512(
            _mm512_clmulepi64_epi128::<0x00>(x, by_lane),
            _mm512_clmulepi64_epi128::<0x11>(x, by_lane),
        );
        let mut lane = _mm_xor_si128(xor_lanes(moved), _mm512_extracti32x4_epi32::<3>(x));
        let by_16: __m128i = bytemuck::cast(BY_16);
        let mut pieces = blocks.remainder().chunks_exact(16);
        for piece in &mut pieces {
            lane = _mm_ternarylogic_epi64::<0x96>(
                _mm_clmulepi64_si128::<0x00>(lane, by_16),
                _mm_clmulepi64_si128::<0x11>(lane, by_16),
                bytemuck::pod_read_unaligned(piece),
            );
        }
        // Everything before the last few bytes is now this lane (mod P), so
        // its CRC from zero is the CRC so far.
        let [low, high]: [u64; 2] = bytemuck::cast(lane);
        let state = _mm_crc32_u64(_mm_crc32_u64(0, low), high) as u32;
        crc32c_sse42(!state, pieces.remainder())
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,vpclmulqdq,pclmulqdq,sse4.2")]
    fn load64(bytes: &[u8]) -> __m512i {
        bytemuck::pod_read_unaligned(&bytes[..64])
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,vpclmulqdq,pclmulqdq,sse4.2")]
    fn broadcast([low, high]: [u64; 2]) -> __m512i {
        bytemuck::cast([low, high, low, high, low, high, low, high])
    }

    /// `x` moved on by `by` (from [`fold_by`]), XORed into `onto`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,vpclmulqdq,pclmulqdq,sse4.2")]
    fn fold_into(x: __m512i, by: __m512i, onto: __m512i) -> __m512i {
        // 0x96 is the truth table of a ^ b ^ c: one instruction for two XORs.
        _mm512_ternarylogic_epi64::<0x96>(
            _mm512_clmulepi64_epi128::<0x00>(x, by),
            _mm512_clmulepi64_epi128::<0x11>(x, by),
            onto,
        )
    }

    /// The XOR of the four 128-bit lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vl,vpclmulqdq,pclmulqdq,sse4.2")]
    fn xor_lanes(v: __m512i) -> __m128i {
        let v = _mm256_xor_si256(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
        _mm_xor_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
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

    /// x^n mod P found another way: a register holding x^r (r < 8) holds
    /// x^(r + 8k) mod P after k zero bytes of the table-driven code.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn powers_of_x_match_the_table_driven_crc() {
        let zeros = [0u8; 320];
        for n in 0..2560u32 {
            let expected = update_portable(1 << (31 - n % 8), &zeros[..n as usize / 8]);
            assert_eq!(x86::x_pow_mod(n), expected, "x^{n} mod P");
        }
    }

    /// Each distance the folding moves a lane by, done with a software
    /// carry-less multiply: the moved lane must have the CRC of the lane
    /// followed by that many zero bytes (both are then the same polynomial
    /// mod P), which checks the constants' powers, bit order and place.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fold_constants_move_a_lane_past_zeros() {
        let clmul =
            |a: u64, b: u64| (0..64).filter(|i| b >> i & 1 == 1).fold(0u128, |acc, i| acc ^ (u128::from(a) << i));
        let zeros = [0u8; 256];
        for bytes in [16, 32, 48, 64, 128, 192, 256] {
            let [low_by, high_by] = x86::fold_by(bytes as u32 * 8);
            for lane in 0..20u64 {
                let lane = u128::from(lane.wrapping_mul(0x9E37_79B9_7F4A_7C15)) << 64
                    | u128::from(lane.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0x5555);
                let moved = clmul(lane as u64, low_by) ^ clmul((lane >> 64) as u64, high_by);
                let followed = [&lane.to_le_bytes()[..], &zeros[..bytes]].concat();
                assert_eq!(
                    update_portable(0, &moved.to_le_bytes()),
                    update_portable(0, &followed),
                    "{bytes} bytes, lane {lane:#x}"
                );
            }
        }
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
