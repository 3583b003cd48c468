//! AES-128-GCM and AES-256-GCM (NIST SP 800-38D, 96-bit nonces) on AES-NI and PCLMULQDQ, in one
//! pass over the record, eight blocks at a time.
//!
//! Why not only RustCrypto's `aes-gcm`: it runs AES-CTR and GHASH as two passes over a record, and
//! its GHASH (`ghash` over `polyval`) copies and byte-reverses every block in scalar code and
//! reduces after every block; on the hosted TLS sink AES-GCM was the largest item of the server's
//! profile. Here each step encrypts eight counter blocks, XORs them into the data and folds the
//! eight ciphertext blocks into GHASH as Karatsuba products against H^8..H^1 that are summed and
//! reduced once. RustCrypto's crate stays the reference (the platforms' tests compare the two on
//! random inputs) and the fallback.
//!
//! The instructions need `#[target_feature]` functions, and calling one from code without those
//! features is `unsafe`, which this crate forbids. So the platform, which knows the CPU, calls
//! [`new_key_ni`], [`seal_ni`] and [`open_ni`] from its own wrappers and hands them to
//! [`install`] once at start-up, as it does for CRC32C (`storage::checksum`). Until then, and on
//! CPUs without the instructions, [`AesGcm`] uses RustCrypto's implementation. The kernel first
//! measures both (`speed::compare_gcm`): under QEMU's TCG, which runs PCLMULQDQ as a slow helper,
//! RustCrypto's portable GHASH is the faster and stays.
//!
//! On CPUs with AVX-512, VAES and VPCLMULQDQ, [`seal_vaes`] and [`open_vaes`] (module `vaes`) do
//! the same sixteen blocks at a time in 512-bit registers, with the code here for what is left
//! over; they take the same [`GcmKey`], which holds H^1..H^16 for them (the AES-NI code uses
//! H^1..H^8). The kernel image is built without AVX and never installs them.
//!
//! GHASH layout (the one of Linux's `ghash-clmulni-intel`): a block is byte-reversed into a 128-bit
//! integer, its first byte most significant, which turns GHASH's reflected bit order into a
//! multiplication of bit-reflected polynomials times x^-127 modulo x^128 + x^127 + x^126 + x^121 + 1.
//! The key powers are kept premultiplied by x^128 (Montgomery form): a carry-less product of a
//! data block and a stored power, reduced by [`reduce`], is then the GHASH product, and products
//! of stored powers are stored powers again.
use alloc::boxed::Box;
use core::arch::x86_64::{
    __m128i, _mm_aesenc_si128, _mm_aesenclast_si128, _mm_aeskeygenassist_si128, _mm_clmulepi64_si128, _mm_insert_epi32,
    _mm_set_epi8, _mm_set_epi64x, _mm_setzero_si128, _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_slli_epi64,
    _mm_slli_si128, _mm_srli_epi64, _mm_srli_si128, _mm_testz_si128, _mm_xor_si128,
};

use aes_gcm::aead::consts::{U12, U16, U32};
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{self, AeadCore, AeadInOut, Key, KeyInit, KeySizeUser, Nonce, Tag, TagPosition};
use spin::Once;
use zeroize::Zeroize;

mod vaes;
pub use vaes::{open_vaes, seal_vaes};

const BLOCK: usize = 16;
/// Blocks per step of the bulk loop: enough independent AES and CLMUL work to keep the pipelines
/// full, few enough that the state stays near the 16 XMM registers.
const WIDE: usize = 8;
/// Key powers kept: H^1..H^16, for the sixteen-block step of [`seal_vaes`] and [`open_vaes`].
const POWERS: usize = 16;
/// SP 800-38D: at most 2^39 - 256 bits of plaintext under one nonce.
const MAX_TEXT_BYTES: u64 = (1 << 36) - 32;

/// The platform's safe wrappers around [`new_key_ni`] and [`seal_ni`] and [`open_ni`] (or
/// [`seal_vaes`] and [`open_vaes`]), each calling its function only on a CPU with the features it
/// is compiled for.
#[derive(Clone, Copy)]
pub struct Accelerated {
    pub new_key: fn(AesKey<'_>) -> GcmKey,
    pub seal: SealFn,
    pub open: OpenFn,
}

/// `seal(key, nonce, aad, data) -> tag`, as [`seal_ni`].
pub type SealFn = fn(&GcmKey, &[u8; 12], &[u8], &mut [u8]) -> [u8; BLOCK];
/// `open(key, nonce, aad, data, tag) -> authentic`, as [`open_ni`].
pub type OpenFn = fn(&GcmKey, &[u8; 12], &[u8], &mut [u8], &[u8; BLOCK]) -> bool;

static ACCELERATED: Once<Accelerated> = Once::new();

/// Installs the accelerated implementation; the first call wins. Keys made before it stay on
/// RustCrypto's implementation.
pub fn install(accelerated: Accelerated) {
    ACCELERATED.call_once(|| accelerated);
}

/// An AES key of one of the two sizes the suites use.
#[derive(Clone, Copy)]
pub enum AesKey<'a> {
    Aes128(&'a [u8; 16]),
    Aes256(&'a [u8; 32]),
}

/// An expanded key: AES round keys and GHASH key powers, wiped when dropped (H alone is enough
/// to forge tags).
pub struct GcmKey {
    /// 10 (AES-128) or 14 (AES-256).
    rounds: usize,
    round_keys: [__m128i; 15],
    /// H^1 ..= H^16 in the stored form (see the module comment).
    powers: [__m128i; POWERS],
    /// Each power's halves XORed, for Karatsuba.
    power_halves: [__m128i; POWERS],
}

impl Drop for GcmKey {
    fn drop(&mut self) {
        self.round_keys.zeroize();
        self.powers.zeroize();
        self.power_halves.zeroize();
    }
}

#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn xor(a: __m128i, b: __m128i) -> __m128i {
    _mm_xor_si128(a, b)
}

/// Reads 16 bytes; callers pass exact blocks (from `chunks_exact`) or padded copies.
#[inline]
fn load(bytes: &[u8]) -> __m128i {
    bytemuck::pod_read_unaligned(&bytes[..BLOCK])
}

#[inline]
fn store(v: __m128i, out: &mut [u8]) {
    out[..BLOCK].copy_from_slice(bytemuck::bytes_of(&v));
}

/// Reverses the 16 bytes of a block (GHASH's byte order to the integer order CLMUL works in).
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn byte_reverse(v: __m128i) -> __m128i {
    _mm_shuffle_epi8(v, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
}

/// FIPS 197 key expansion with AESKEYGENASSIST (Intel's AES-NI white paper, §4.1): each round key
/// is the previous one (two back for AES-256) with its words prefix-XORed, plus the assist word.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn prefix_xor(k: __m128i) -> __m128i {
    let k = xor(k, _mm_slli_si128::<4>(k));
    xor(k, _mm_slli_si128::<8>(k))
}

#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn expand_128(key: &[u8]) -> [__m128i; 15] {
    let mut rk = [_mm_setzero_si128(); 15];
    rk[0] = load(key);
    macro_rules! round {
        ($i:literal, $rcon:literal) => {
            let assist = _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>(rk[$i - 1]));
            rk[$i] = xor(prefix_xor(rk[$i - 1]), assist);
        };
    }
    round!(1, 0x01);
    round!(2, 0x02);
    round!(3, 0x04);
    round!(4, 0x08);
    round!(5, 0x10);
    round!(6, 0x20);
    round!(7, 0x40);
    round!(8, 0x80);
    round!(9, 0x1b);
    round!(10, 0x36);
    rk
}

#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn expand_256(key: &[u8]) -> [__m128i; 15] {
    let mut rk = [_mm_setzero_si128(); 15];
    rk[0] = load(&key[..BLOCK]);
    rk[1] = load(&key[BLOCK..]);
    // Even round keys add RotWord(SubWord(w)) ^ rcon of the previous odd key's last word, odd
    // ones SubWord(w) of the previous even key's last word.
    macro_rules! even {
        ($i:literal, $rcon:literal) => {
            let assist = _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>(rk[$i - 1]));
            rk[$i] = xor(prefix_xor(rk[$i - 2]), assist);
        };
    }
    macro_rules! odd {
        ($i:literal) => {
            let assist = _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>(rk[$i - 1]));
            rk[$i] = xor(prefix_xor(rk[$i - 2]), assist);
        };
    }
    even!(2, 0x01);
    odd!(3);
    even!(4, 0x02);
    odd!(5);
    even!(6, 0x04);
    odd!(7);
    even!(8, 0x08);
    odd!(9);
    even!(10, 0x10);
    odd!(11);
    even!(12, 0x20);
    odd!(13);
    even!(14, 0x40);
    rk
}

#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn encrypt_wide<const ROUNDS: usize>(rk: &[__m128i; 15], blocks: &mut [__m128i; WIDE]) {
    for b in blocks.iter_mut() {
        *b = xor(*b, rk[0]);
    }
    for key in &rk[1..ROUNDS] {
        for b in blocks.iter_mut() {
            *b = _mm_aesenc_si128(*b, *key);
        }
    }
    for b in blocks.iter_mut() {
        *b = _mm_aesenclast_si128(*b, rk[ROUNDS]);
    }
}

#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn encrypt_one(rk: &[__m128i; 15], rounds: usize, mut b: __m128i) -> __m128i {
    b = xor(b, rk[0]);
    for key in &rk[1..rounds] {
        b = _mm_aesenc_si128(b, *key);
    }
    _mm_aesenclast_si128(b, rk[rounds])
}

/// An unreduced 256-bit carry-less product, its Karatsuba middle term kept apart.
#[derive(Clone, Copy)]
struct Product {
    lo: __m128i,
    mid: __m128i,
    hi: __m128i,
}

impl Product {
    #[inline]
    #[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
    fn zero() -> Self {
        Self { lo: _mm_setzero_si128(), mid: _mm_setzero_si128(), hi: _mm_setzero_si128() }
    }

    /// Adds x·h; `hk` is h with its halves XORed (in the low half).
    #[inline]
    #[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
    fn add(&mut self, x: __m128i, h: __m128i, hk: __m128i) {
        self.lo = xor(self.lo, _mm_clmulepi64_si128::<0x00>(x, h));
        self.hi = xor(self.hi, _mm_clmulepi64_si128::<0x11>(x, h));
        let xk = xor(x, _mm_shuffle_epi32::<0x4e>(x));
        self.mid = xor(self.mid, _mm_clmulepi64_si128::<0x00>(xk, hk));
    }
}

#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn reduce(p: Product) -> __m128i {
    reduce_parts(p.lo, xor(xor(p.mid, p.lo), p.hi), p.hi)
}

/// Montgomery reduction by x^128 modulo x^128 + x^127 + x^126 + x^121 + 1 of the product
/// hi·x^128 + mid·x^64 + lo, in two shift-and-XOR phases (Gueron and Kounavis, "Intel Carry-Less
/// Multiplication Instruction and its Usage for Computing the GCM Mode", as in Linux's
/// `__clmul_gf128mul_ble`).
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn reduce_parts(lo: __m128i, mid: __m128i, hi: __m128i) -> __m128i {
    let lo = xor(lo, _mm_slli_si128::<8>(mid));
    let hi = xor(hi, _mm_srli_si128::<8>(mid));
    let t = _mm_slli_epi64::<57>(xor(_mm_slli_epi64::<5>(xor(_mm_slli_epi64::<1>(lo), lo)), lo));
    let lo = xor(lo, _mm_slli_si128::<8>(t));
    let hi = xor(hi, _mm_srli_si128::<8>(t));
    let d = _mm_srli_epi64::<1>(xor(_mm_srli_epi64::<1>(xor(_mm_srli_epi64::<5>(lo), lo)), lo));
    xor(d, xor(hi, lo))
}

/// Karatsuba helper for a key power: its two halves XORed.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn halves(h: __m128i) -> __m128i {
    xor(h, _mm_shuffle_epi32::<0x4e>(h))
}

/// Expands an AES key and derives the GHASH key powers from it.
///
/// # Safety
/// Only on a CPU with AES-NI, PCLMULQDQ, SSSE3 and SSE4.1.
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
pub fn new_key_ni(key: AesKey<'_>) -> GcmKey {
    let (rounds, round_keys) = match key {
        AesKey::Aes128(key) => (10, expand_128(key)),
        AesKey::Aes256(key) => (14, expand_256(key)),
    };
    let mut h = [0u8; BLOCK];
    store(encrypt_one(&round_keys, rounds, _mm_setzero_si128()), &mut h);
    // bytereverse(H)·x modulo the reflected polynomial; the carry out of bit 127 folds back into
    // bits 0, 121, 126 and 127, by a mask rather than a branch on a key bit.
    let a = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    let b = u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    let carry = 0u64.wrapping_sub(a >> 63);
    let high = ((a << 1) | (b >> 63)) ^ (carry & (0xc2 << 56));
    let low = (b << 1) | (a >> 63);
    h.zeroize();
    let h1 = _mm_set_epi64x(high as i64, low as i64);
    let h1_halves = halves(h1);
    let mut powers = [h1; POWERS];
    for i in 1..POWERS {
        let mut p = Product::zero();
        p.add(powers[i - 1], h1, h1_halves);
        powers[i] = reduce(p);
    }
    let mut power_halves = powers;
    for h in power_halves.iter_mut() {
        *h = halves(*h);
    }
    GcmKey { rounds, round_keys, powers, power_halves }
}

/// Which way the data goes: GHASH covers the ciphertext, the input when opening and the output
/// when sealing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Seal,
    Open,
}

/// The counter block for block `n` (big-endian in the last four bytes): 1 masks the tag, the data
/// starts at 2.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn counter(base: __m128i, n: u32) -> __m128i {
    _mm_insert_epi32::<3>(base, n.to_be() as i32)
}

#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn ghash_one(key: &GcmKey, acc: __m128i, x: __m128i) -> __m128i {
    let mut p = Product::zero();
    p.add(xor(acc, x), key.powers[0], key.power_halves[0]);
    reduce(p)
}

/// One record's pass so far: the counter block with a zero counter, the next block's counter and
/// GHASH over what has been hashed.
#[derive(Clone, Copy)]
struct Pass {
    base: __m128i,
    next: u32,
    acc: __m128i,
}

/// Starts a record: hashes the AAD; the data starts at counter 2 (1 masks the tag).
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn start(key: &GcmKey, nonce: &[u8; 12], aad: &[u8]) -> Pass {
    let mut counter_bytes = [0u8; BLOCK];
    counter_bytes[..12].copy_from_slice(nonce);
    let mut acc = _mm_setzero_si128();
    for chunk in aad.chunks(BLOCK) {
        let mut padded = [0u8; BLOCK];
        padded[..chunk.len()].copy_from_slice(chunk);
        acc = ghash_one(key, acc, byte_reverse(load(&padded)));
    }
    Pass { base: load(&counter_bytes), next: 2, acc }
}

/// Encrypts or decrypts `data` in place, eight blocks a step and then one at a time, and hashes
/// the ciphertext. `data` ends the record: a partial last block is padded for GHASH.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn crypt_rest<const ROUNDS: usize>(key: &GcmKey, pass: &mut Pass, data: &mut [u8], direction: Direction) {
    let Pass { base, mut next, mut acc } = *pass;
    let mut wide = data.chunks_exact_mut(WIDE * BLOCK);
    for chunk in &mut wide {
        let mut stream = [_mm_setzero_si128(); WIDE];
        for (i, s) in stream.iter_mut().enumerate() {
            *s = counter(base, next.wrapping_add(i as u32));
        }
        next = next.wrapping_add(WIDE as u32);
        encrypt_wide::<ROUNDS>(&key.round_keys, &mut stream);
        let mut p = Product::zero();
        for (i, (block, s)) in chunk.chunks_exact_mut(BLOCK).zip(stream).enumerate() {
            let input = load(block);
            let output = xor(input, s);
            store(output, block);
            let mut cipher = byte_reverse(if direction == Direction::Open { input } else { output });
            if i == 0 {
                cipher = xor(cipher, acc);
            }
            p.add(cipher, key.powers[WIDE - 1 - i], key.power_halves[WIDE - 1 - i]);
        }
        acc = reduce(p);
    }
    for block in wide.into_remainder().chunks_mut(BLOCK) {
        let len = block.len();
        let mut padded = [0u8; BLOCK];
        padded[..len].copy_from_slice(block);
        let input = load(&padded);
        let mut output = [0u8; BLOCK];
        store(xor(input, encrypt_one(&key.round_keys, ROUNDS, counter(base, next))), &mut output);
        next = next.wrapping_add(1);
        block.copy_from_slice(&output[..len]);
        let cipher = match direction {
            Direction::Open => input,
            Direction::Seal => {
                output[len..].fill(0);
                load(&output)
            }
        };
        acc = ghash_one(key, acc, byte_reverse(cipher));
    }
    *pass = Pass { base, next, acc };
}

/// Hashes the lengths block and returns the tag, E(J0) xor GHASH(aad, ciphertext).
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn finish<const ROUNDS: usize>(key: &GcmKey, pass: &Pass, aad_bytes: usize, data_bytes: usize) -> __m128i {
    // The lengths block, be64(AAD bits) || be64(text bits), is already in integer order.
    let lengths = _mm_set_epi64x((aad_bytes as u64 * 8) as i64, (data_bytes as u64 * 8) as i64);
    let acc = ghash_one(key, pass.acc, lengths);
    xor(byte_reverse(acc), encrypt_one(&key.round_keys, ROUNDS, counter(pass.base, 1)))
}

/// Encrypts or decrypts `data` in place and returns the tag.
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn crypt<const ROUNDS: usize>(
    key: &GcmKey,
    nonce: &[u8; 12],
    aad: &[u8],
    data: &mut [u8],
    direction: Direction,
) -> __m128i {
    let mut pass = start(key, nonce, aad);
    crypt_rest::<ROUNDS>(key, &mut pass, data, direction);
    finish::<ROUNDS>(key, &pass, aad.len(), data.len())
}

#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn crypt_any(key: &GcmKey, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], direction: Direction) -> __m128i {
    if key.rounds == 10 {
        crypt::<10>(key, nonce, aad, data, direction)
    } else {
        crypt::<14>(key, nonce, aad, data, direction)
    }
}

/// Encrypts `data` in place and returns the tag. The caller keeps `data` and `aad` within SP
/// 800-38D's limit ([`AesGcm`] refuses longer ones), so the 32-bit block counter cannot wrap.
///
/// # Safety
/// Only on a CPU with AES-NI, PCLMULQDQ, SSSE3 and SSE4.1.
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
pub fn seal_ni(key: &GcmKey, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; BLOCK] {
    let mut tag = [0u8; BLOCK];
    store(crypt_any(key, nonce, aad, data, Direction::Seal), &mut tag);
    tag
}

/// Decrypts `data` in place and checks `tag`. On a mismatch `data` is zeroed (one pass decrypted it
/// before the tag could be checked: none of it may be released) and the result is false.
///
/// # Safety
/// Only on a CPU with AES-NI, PCLMULQDQ, SSSE3 and SSE4.1.
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
pub fn open_ni(key: &GcmKey, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; BLOCK]) -> bool {
    check_tag(crypt_any(key, nonce, aad, data, Direction::Open), tag, data)
}

/// Compares the computed tag with the received one; on a mismatch zeroes the decrypted `data`.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1,aes,pclmulqdq")]
fn check_tag(expected: __m128i, tag: &[u8; BLOCK], data: &mut [u8]) -> bool {
    let diff = xor(expected, load(tag));
    // PTEST: a comparison whose time does not depend on where the tags differ.
    if _mm_testz_si128(diff, diff) == 1 {
        true
    } else {
        data.fill(0);
        false
    }
}

/// An AES key size: its key length, how a key of it reaches the AES-NI code, and RustCrypto's
/// implementation of it.
pub trait KeySize: Send + Sync + 'static {
    type Bytes: aead::array::ArraySize;
    type Portable: AeadInOut + AeadCore<NonceSize = U12, TagSize = U16> + KeyInit + Send + Sync + 'static;
    fn key(bytes: &aead::array::Array<u8, Self::Bytes>) -> AesKey<'_>;
}

pub enum Aes128 {}
pub enum Aes256 {}

impl KeySize for Aes128 {
    type Bytes = U16;
    type Portable = aes_gcm::Aes128Gcm;
    fn key(bytes: &aead::array::Array<u8, U16>) -> AesKey<'_> {
        AesKey::Aes128(bytes.as_ref())
    }
}

impl KeySize for Aes256 {
    type Bytes = U32;
    type Portable = aes_gcm::Aes256Gcm;
    fn key(bytes: &aead::array::Array<u8, U32>) -> AesKey<'_> {
        AesKey::Aes256(bytes.as_ref())
    }
}

pub type Aes128Gcm = AesGcm<Aes128>;
pub type Aes256Gcm = AesGcm<Aes256>;

/// AES-GCM with a 96-bit nonce and a 128-bit tag: the installed AES-NI code, or RustCrypto's.
pub struct AesGcm<K: KeySize> {
    imp: Implementation<K>,
}

enum Implementation<K: KeySize> {
    Accelerated(&'static Accelerated, Box<GcmKey>),
    Portable(K::Portable),
}

impl<K: KeySize> AesGcm<K> {
    /// A key on the given implementation rather than the installed one (a platform measures
    /// it against RustCrypto's before installing it).
    pub fn with_implementation(accelerated: &'static Accelerated, key: &Key<Self>) -> Self {
        let key = Box::new((accelerated.new_key)(K::key(key)));
        Self { imp: Implementation::Accelerated(accelerated, key) }
    }

    /// Whether this key runs on the AES-NI code.
    pub fn is_accelerated(&self) -> bool {
        matches!(self.imp, Implementation::Accelerated(..))
    }
}

impl<K: KeySize> KeySizeUser for AesGcm<K> {
    type KeySize = K::Bytes;
}

impl<K: KeySize> KeyInit for AesGcm<K> {
    fn new(key: &Key<Self>) -> Self {
        match ACCELERATED.get() {
            Some(accelerated) => Self::with_implementation(accelerated, key),
            None => Self {
                imp: Implementation::Portable(
                    K::Portable::new_from_slice(key).expect("both key types take the key size they declare"),
                ),
            },
        }
    }
}

impl<K: KeySize> AeadCore for AesGcm<K> {
    type NonceSize = U12;
    type TagSize = U16;
    const TAG_POSITION: TagPosition = TagPosition::Postfix;
}

/// SP 800-38D's limits, which keep the 32-bit block counter from wrapping (the AES-NI code relies
/// on its caller for them).
fn within_limits(text_bytes: usize, aad_bytes: usize) -> aead::Result<()> {
    if text_bytes as u64 > MAX_TEXT_BYTES || aad_bytes as u64 > MAX_TEXT_BYTES { Err(aead::Error) } else { Ok(()) }
}

impl<K: KeySize> AeadInOut for AesGcm<K> {
    fn encrypt_inout_detached(
        &self,
        nonce: &Nonce<Self>,
        associated_data: &[u8],
        buffer: InOutBuf<'_, '_, u8>,
    ) -> aead::Result<Tag<Self>> {
        match &self.imp {
            Implementation::Portable(portable) => {
                let nonce = Nonce::<K::Portable>::try_from(&nonce[..]).map_err(|_| aead::Error)?;
                let tag = portable.encrypt_inout_detached(&nonce, associated_data, buffer)?;
                Tag::<Self>::try_from(&tag[..]).map_err(|_| aead::Error)
            }
            Implementation::Accelerated(accelerated, key) => {
                within_limits(buffer.len(), associated_data.len())?;
                let tag = (accelerated.seal)(key, &(*nonce).into(), associated_data, buffer.into_out_with_copied_in());
                Ok(tag.into())
            }
        }
    }

    fn decrypt_inout_detached(
        &self,
        nonce: &Nonce<Self>,
        associated_data: &[u8],
        buffer: InOutBuf<'_, '_, u8>,
        tag: &Tag<Self>,
    ) -> aead::Result<()> {
        match &self.imp {
            Implementation::Portable(portable) => {
                let nonce = Nonce::<K::Portable>::try_from(&nonce[..]).map_err(|_| aead::Error)?;
                let tag = Tag::<K::Portable>::try_from(&tag[..]).map_err(|_| aead::Error)?;
                portable.decrypt_inout_detached(&nonce, associated_data, buffer, &tag)
            }
            Implementation::Accelerated(accelerated, key) => {
                within_limits(buffer.len(), associated_data.len())?;
                let data = buffer.into_out_with_copied_in();
                if (accelerated.open)(key, &(*nonce).into(), associated_data, data, &(*tag).into()) {
                    Ok(())
                } else {
                    Err(aead::Error)
                }
            }
        }
    }
}
