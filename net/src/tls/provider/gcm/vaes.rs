//! The one-pass AES-GCM of the parent module, sixteen blocks a step on AVX-512 with VAES and
//! VPCLMULQDQ: four 512-bit registers of four blocks each, the counters made in-register, GHASH as
//! schoolbook products against H^16..H^1 whose four lanes are XORed together and reduced once a
//! step. The AAD, the last 255 bytes or fewer and the lengths block go through the AES-NI code
//! (compiled here with the wider features, so without SSE/AVX transitions).
use core::arch::x86_64::{
    __m128i, __m512i, _mm_set_epi8, _mm_xor_si128, _mm256_castsi256_si128, _mm256_extracti128_si256, _mm256_xor_si256,
    _mm512_add_epi32, _mm512_aesenc_epi128, _mm512_aesenclast_epi128, _mm512_broadcast_i32x4, _mm512_castsi512_si256,
    _mm512_clmulepi64_epi128, _mm512_extracti64x4_epi64, _mm512_set_epi32, _mm512_setzero_si512, _mm512_shuffle_epi8,
    _mm512_ternarylogic_epi64, _mm512_xor_si512, _mm512_zextsi128_si512,
};

use super::{
    BLOCK, Direction, GcmKey, POWERS, Pass, byte_reverse, check_tag, counter, crypt_rest, finish, start, store,
};

/// Blocks in one 512-bit register.
const LANES: usize = 4;
/// Registers of blocks per step: with the 15 round keys and the products they fit AVX-512's 32.
const REGISTERS: usize = 4;
/// Blocks per step, one key power each.
const STEP: usize = LANES * REGISTERS;
const _: () = assert!(STEP == POWERS);

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn load4(bytes: &[u8]) -> __m512i {
    bytemuck::pod_read_unaligned(&bytes[..LANES * BLOCK])
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn store4(v: __m512i, out: &mut [u8]) {
    out[..LANES * BLOCK].copy_from_slice(bytemuck::bytes_of(&v));
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn xor(a: __m512i, b: __m512i) -> __m512i {
    _mm512_xor_si512(a, b)
}

#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn xor3(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
    // 0x96 is the truth table of a ^ b ^ c: one instruction instead of two.
    _mm512_ternarylogic_epi64::<0x96>(a, b, c)
}

/// XORs the four 128-bit lanes together: the sum of the four blocks' products.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn fold(v: __m512i) -> __m128i {
    let v = _mm256_xor_si256(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
    _mm_xor_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
}

/// Encrypts or decrypts `data`, a whole number of steps, in place and hashes its ciphertext.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn crypt_wide<const ROUNDS: usize>(key: &GcmKey, pass: &mut Pass, data: &mut [u8], direction: Direction) {
    let mut round_keys = [_mm512_setzero_si512(); 15];
    for (wide, key) in round_keys.iter_mut().zip(&key.round_keys) {
        *wide = _mm512_broadcast_i32x4(*key);
    }
    // Lane l of register r holds block 4r + l of the step, which GHASH multiplies by H^(16 - 4r - l)
    // (powers[i] is H^(i + 1)).
    let mut powers = [_mm512_setzero_si512(); REGISTERS];
    for (r, wide) in powers.iter_mut().enumerate() {
        let top = POWERS - 1 - LANES * r;
        *wide = bytemuck::cast([key.powers[top], key.powers[top - 1], key.powers[top - 2], key.powers[top - 3]]);
    }
    let reverse = _mm512_broadcast_i32x4(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    // The counter blocks are kept byte-reversed: the big-endian 32-bit counter is then each lane's
    // low dword, and a 32-bit add wraps it as inc32 does.
    let first = _mm512_broadcast_i32x4(byte_reverse(counter(pass.base, pass.next)));
    let mut counters = _mm512_add_epi32(first, _mm512_set_epi32(0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0));
    let four = _mm512_set_epi32(0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4);
    let mut acc = pass.acc;
    for chunk in data.chunks_exact_mut(STEP * BLOCK) {
        let mut stream = [_mm512_setzero_si512(); REGISTERS];
        for s in stream.iter_mut() {
            *s = xor(_mm512_shuffle_epi8(counters, reverse), round_keys[0]);
            counters = _mm512_add_epi32(counters, four);
        }
        for round_key in &round_keys[1..ROUNDS] {
            for s in stream.iter_mut() {
                *s = _mm512_aesenc_epi128(*s, *round_key);
            }
        }
        for s in stream.iter_mut() {
            *s = _mm512_aesenclast_epi128(*s, round_keys[ROUNDS]);
        }
        let (mut lo, mut mid, mut hi) = (_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512());
        for (r, (part, s)) in chunk.chunks_exact_mut(LANES * BLOCK).zip(stream).enumerate() {
            let input = load4(part);
            let output = xor(input, s);
            store4(output, part);
            let mut cipher = _mm512_shuffle_epi8(if direction == Direction::Open { input } else { output }, reverse);
            if r == 0 {
                cipher = xor(cipher, _mm512_zextsi128_si512(acc));
            }
            // Schoolbook rather than Karatsuba: the XOR3 makes the middle term as cheap, and it
            // needs no halves-XORed powers.
            let h = powers[r];
            lo = xor(lo, _mm512_clmulepi64_epi128::<0x00>(cipher, h));
            hi = xor(hi, _mm512_clmulepi64_epi128::<0x11>(cipher, h));
            mid = xor3(mid, _mm512_clmulepi64_epi128::<0x01>(cipher, h), _mm512_clmulepi64_epi128::<0x10>(cipher, h));
        }
        acc = super::reduce_parts(fold(lo), fold(mid), fold(hi));
    }
    pass.acc = acc;
    pass.next = pass.next.wrapping_add((data.len() / BLOCK) as u32);
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn crypt<const ROUNDS: usize>(
    key: &GcmKey,
    nonce: &[u8; 12],
    aad: &[u8],
    data: &mut [u8],
    direction: Direction,
) -> __m128i {
    let data_bytes = data.len();
    let mut pass = start(key, nonce, aad);
    let (wide, rest) = data.split_at_mut(data_bytes - data_bytes % (STEP * BLOCK));
    crypt_wide::<ROUNDS>(key, &mut pass, wide, direction);
    crypt_rest::<ROUNDS>(key, &mut pass, rest, direction);
    finish::<ROUNDS>(key, &pass, aad.len(), data_bytes)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3,sse4.1")]
fn crypt_any(key: &GcmKey, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], direction: Direction) -> __m128i {
    if key.rounds == 10 {
        crypt::<10>(key, nonce, aad, data, direction)
    } else {
        crypt::<14>(key, nonce, aad, data, direction)
    }
}

/// [`seal_ni`](super::seal_ni), sixteen blocks at a time; the key comes from
/// [`new_key_ni`](super::new_key_ni).
///
/// # Safety
/// Only on a CPU with AVX-512F, AVX-512BW, AVX-512VL, VAES, VPCLMULQDQ, AES-NI, PCLMULQDQ, SSSE3
/// and SSE4.1.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3,sse4.1")]
pub fn seal_vaes(key: &GcmKey, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; BLOCK] {
    let mut tag = [0u8; BLOCK];
    store(crypt_any(key, nonce, aad, data, Direction::Seal), &mut tag);
    tag
}

/// [`open_ni`](super::open_ni), sixteen blocks at a time: on a wrong tag `data` is zeroed and the
/// result is false.
///
/// # Safety
/// As [`seal_vaes`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,sse2,ssse3,sse4.1")]
pub fn open_vaes(key: &GcmKey, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; BLOCK]) -> bool {
    check_tag(crypt_any(key, nonce, aad, data, Direction::Open), tag, data)
}
