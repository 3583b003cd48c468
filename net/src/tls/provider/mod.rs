//! A rustls [`CryptoProvider`] made of RustCrypto crates (no ring, no aws-lc: both need C or
//! assembly toolchains and an OS, and neither builds for our `no_std` kernel target), with our
//! own one-pass AES-GCM ([`gcm`]) where a platform installs it.
//!
//! - TLS 1.3: AES-128-GCM-SHA256, AES-256-GCM-SHA384, CHACHA20-POLY1305-SHA256.
//! - TLS 1.2: ECDHE-ECDSA with the same three AEADs (RFC 5289, RFC 7905). No static RSA, no CBC.
//! - Key exchange: X25519 (preferred), secp256r1.
//! - Signing: ECDSA P-256 with SHA-256 (PKCS#8 or SEC1 keys), RFC 6979 deterministic nonces, so a
//!   weak random source at signing time cannot leak the key.
//! - Verification: ECDSA P-256 with SHA-256 only (our own test client, client certificates later).
//!
//! RSA is not supported, for signing or verification: the only pure-Rust implementation, the
//! `rsa` crate, carries the open advisory RUSTSEC-2023-0071 (Marvin attack: secret-dependent
//! timing in decryption and signing, no fixed release). A TLS server signs with its key on every
//! full handshake, which is exactly the operation the advisory covers; certificates for this
//! service are therefore ECDSA P-256.
//!
//! Randomness is injected as a [`RandomSource`] (the kernel passes its ChaCha20 CSPRNG, the hosted
//! platform getrandom): it feeds rustls's `SecureRandom` (client/server randoms, TLS 1.2 explicit
//! nonces, session ids) and ECDHE key generation through a `rand_core` 0.10 adapter.
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;

use chacha20poly1305::ChaCha20Poly1305;
use rustls::crypto::tls12::PrfUsingHmac;
use rustls::crypto::tls13::HkdfUsingHmac;
use rustls::crypto::{CipherSuiteCommon, CryptoProvider, GetRandomFailed, KeyExchangeAlgorithm, KeyProvider};
use rustls::crypto::{SecureRandom, SupportedKxGroup};
use rustls::pki_types::PrivateKeyDer;
use rustls::{CipherSuite, ConnectionTrafficSecrets, SignatureScheme, SupportedCipherSuite};
use rustls::{Tls12CipherSuite, Tls13CipherSuite};

pub mod aead;
#[cfg(target_arch = "x86_64")]
pub mod gcm;
pub mod hash;
pub mod hmac;
pub mod kx;
pub mod sign;
pub mod speed;
pub mod verify;

#[cfg(not(target_arch = "x86_64"))]
pub use aes_gcm::{Aes128Gcm, Aes256Gcm};
/// The AES-GCM the suites use: our one-pass AES-NI code once the platform has installed it
/// ([`gcm::install`]), RustCrypto's until then and on other architectures.
#[cfg(target_arch = "x86_64")]
pub use gcm::{Aes128Gcm, Aes256Gcm};

/// Fills the buffer with cryptographically secure random bytes, or fails (never returns weak bytes).
pub type RandomSource = fn(&mut [u8]) -> Result<(), RandomError>;

/// The random source could not deliver (not seeded yet, hardware failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomError;

impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("random source failed")
    }
}

impl core::error::Error for RandomError {}

/// `rand_core` 0.10 view of a [`RandomSource`], for RustCrypto key generation.
pub(crate) struct RandomRng(pub(crate) RandomSource);

impl rand_core::TryRng for RandomRng {
    type Error = RandomError;
    fn try_next_u32(&mut self) -> Result<u32, RandomError> {
        let mut b = [0u8; 4];
        (self.0)(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, RandomError> {
        let mut b = [0u8; 8];
        (self.0)(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), RandomError> {
        (self.0)(dst)
    }
}

impl rand_core::TryCryptoRng for RandomRng {}

/// rustls's view of a [`RandomSource`].
#[derive(Debug)]
struct Random(RandomSource);

impl SecureRandom for Random {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        (self.0)(buf).map_err(|_| GetRandomFailed)
    }
}

/// Loads ECDSA P-256 keys; anything else is refused (see the module doc on RSA).
#[derive(Debug)]
struct Keys;

impl KeyProvider for Keys {
    fn load_private_key(
        &self,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Ok(Arc::new(sign::EcdsaP256SigningKey::from_der(&key)?))
    }
}

/// The parts of a provider that hold the random source. rustls wants `&'static` trait objects,
/// and the source is only known at run time, so [`provider`] leaks one of these (a few words):
/// build the provider once per boot and share it through an `Arc`.
struct Parts {
    random: Random,
    x25519: kx::X25519,
    secp256r1: kx::SecP256r1,
}

/// The provider: all six suites (TLS 1.3 first, AES-128-GCM preferred), X25519 then secp256r1.
pub fn provider(random: RandomSource) -> CryptoProvider {
    let parts: &'static Parts = Box::leak(Box::new(Parts {
        random: Random(random),
        x25519: kx::X25519 { random },
        secp256r1: kx::SecP256r1 { random },
    }));
    let kx_groups: [&'static dyn SupportedKxGroup; 2] = [&parts.x25519, &parts.secp256r1];
    CryptoProvider {
        cipher_suites: ALL_CIPHER_SUITES.to_vec(),
        kx_groups: kx_groups.to_vec(),
        signature_verification_algorithms: verify::ALGORITHMS,
        secure_random: &parts.random,
        key_provider: &Keys,
    }
}

/// Every suite we implement, in preference order.
pub static ALL_CIPHER_SUITES: &[SupportedCipherSuite] = &[
    SupportedCipherSuite::Tls13(&TLS13_AES_128_GCM_SHA256),
    SupportedCipherSuite::Tls13(&TLS13_AES_256_GCM_SHA384),
    SupportedCipherSuite::Tls13(&TLS13_CHACHA20_POLY1305_SHA256),
    SupportedCipherSuite::Tls12(&TLS12_ECDHE_ECDSA_AES_128_GCM_SHA256),
    SupportedCipherSuite::Tls12(&TLS12_ECDHE_ECDSA_AES_256_GCM_SHA384),
    SupportedCipherSuite::Tls12(&TLS12_ECDHE_ECDSA_CHACHA20_POLY1305_SHA256),
];

/// AES-GCM confidentiality limit in records: 2^24.5 full-size records (RFC 8446 §5.5), rounded
/// down; rustls sends a KeyUpdate (1.3) or closes (1.2) before reaching it.
const AES_GCM_LIMIT: u64 = 1 << 24;
/// ChaCha20-Poly1305 has no practical limit below 2^64 records (RFC 8446 §5.5).
const CHACHA_LIMIT: u64 = u64::MAX;

pub static TLS13_AES_128_GCM_SHA256: Tls13CipherSuite = Tls13CipherSuite {
    common: CipherSuiteCommon {
        suite: CipherSuite::TLS13_AES_128_GCM_SHA256,
        hash_provider: &hash::SHA256,
        confidentiality_limit: AES_GCM_LIMIT,
    },
    hkdf_provider: &HkdfUsingHmac(&hmac::HMAC_SHA256),
    aead_alg: &aead::Tls13Aead::<Aes128Gcm>::new(16, |key, iv| ConnectionTrafficSecrets::Aes128Gcm { key, iv }),
    quic: None,
};

pub static TLS13_AES_256_GCM_SHA384: Tls13CipherSuite = Tls13CipherSuite {
    common: CipherSuiteCommon {
        suite: CipherSuite::TLS13_AES_256_GCM_SHA384,
        hash_provider: &hash::SHA384,
        confidentiality_limit: AES_GCM_LIMIT,
    },
    hkdf_provider: &HkdfUsingHmac(&hmac::HMAC_SHA384),
    aead_alg: &aead::Tls13Aead::<Aes256Gcm>::new(32, |key, iv| ConnectionTrafficSecrets::Aes256Gcm { key, iv }),
    quic: None,
};

pub static TLS13_CHACHA20_POLY1305_SHA256: Tls13CipherSuite = Tls13CipherSuite {
    common: CipherSuiteCommon {
        suite: CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        hash_provider: &hash::SHA256,
        confidentiality_limit: CHACHA_LIMIT,
    },
    hkdf_provider: &HkdfUsingHmac(&hmac::HMAC_SHA256),
    aead_alg: &aead::Tls13Aead::<ChaCha20Poly1305>::new(32, |key, iv| ConnectionTrafficSecrets::Chacha20Poly1305 {
        key,
        iv,
    }),
    quic: None,
};

/// TLS 1.2 suites are ECDHE-ECDSA only: our certificates carry P-256 keys.
static TLS12_ECDSA_SCHEMES: &[SignatureScheme] = &[SignatureScheme::ECDSA_NISTP256_SHA256];

pub static TLS12_ECDHE_ECDSA_AES_128_GCM_SHA256: Tls12CipherSuite = Tls12CipherSuite {
    common: CipherSuiteCommon {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        hash_provider: &hash::SHA256,
        confidentiality_limit: AES_GCM_LIMIT,
    },
    kx: KeyExchangeAlgorithm::ECDHE,
    sign: TLS12_ECDSA_SCHEMES,
    aead_alg: &aead::Tls12Gcm::<Aes128Gcm>::new(16, |key, iv| ConnectionTrafficSecrets::Aes128Gcm { key, iv }),
    prf_provider: &PrfUsingHmac(&hmac::HMAC_SHA256),
};

pub static TLS12_ECDHE_ECDSA_AES_256_GCM_SHA384: Tls12CipherSuite = Tls12CipherSuite {
    common: CipherSuiteCommon {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        hash_provider: &hash::SHA384,
        confidentiality_limit: AES_GCM_LIMIT,
    },
    kx: KeyExchangeAlgorithm::ECDHE,
    sign: TLS12_ECDSA_SCHEMES,
    aead_alg: &aead::Tls12Gcm::<Aes256Gcm>::new(32, |key, iv| ConnectionTrafficSecrets::Aes256Gcm { key, iv }),
    prf_provider: &PrfUsingHmac(&hmac::HMAC_SHA384),
};

pub static TLS12_ECDHE_ECDSA_CHACHA20_POLY1305_SHA256: Tls12CipherSuite = Tls12CipherSuite {
    common: CipherSuiteCommon {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        hash_provider: &hash::SHA256,
        confidentiality_limit: CHACHA_LIMIT,
    },
    kx: KeyExchangeAlgorithm::ECDHE,
    sign: TLS12_ECDSA_SCHEMES,
    aead_alg: &aead::Tls12ChaCha,
    prf_provider: &PrfUsingHmac(&hmac::HMAC_SHA256),
};
