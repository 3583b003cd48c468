//! The S3 additional checksums (`x-amz-checksum-*`): CRC32, CRC32C,
//! CRC64NVME, SHA-1 and SHA-256, computed while a body streams and printed
//! the way S3 prints them: base64 of the big-endian value (CRCs) or of the
//! digest (SHAs).
//!
//! The aws-chunked decoder's callers check a trailer with these; the S3
//! layer checks `x-amz-checksum-*` headers and answers them on GET/HEAD.

use alloc::string::String;
use alloc::vec::Vec;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crc::{CRC_32_ISO_HDLC, CRC_64_NVME, Crc};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

static CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);
static CRC64_NVME: Crc<u64> = Crc::<u64>::new(&CRC_64_NVME);

/// One of the checksum algorithms S3 clients may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// From a header or trailer name such as `x-amz-checksum-crc32`
    /// (case-insensitive).
    pub fn from_header_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|algorithm| algorithm.header_name().eq_ignore_ascii_case(name))
    }

    /// From the name in `x-amz-sdk-checksum-algorithm` /
    /// `x-amz-checksum-algorithm` (`CRC32`, `CRC32C`, `CRC64NVME`, `SHA1`,
    /// `SHA256`; case-insensitive).
    pub fn from_algorithm_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|algorithm| algorithm.algorithm_name().eq_ignore_ascii_case(name))
    }

    pub const fn header_name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The name as S3 spells it in headers and XML (`ChecksumCRC32` uses
    /// the same suffix).
    pub const fn algorithm_name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    /// Length of the raw checksum in bytes.
    pub const fn len_bytes(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }
}

/// A checksum being computed over a stream.
#[derive(Clone)]
pub struct Checksummer {
    state: State,
}

#[derive(Clone)]
enum State {
    Crc32(crc::Digest<'static, u32>),
    /// The running CRC32C, continued with `storage::checksum::crc32c_append`
    /// (hardware-accelerated where the platform installed it).
    Crc32c(u32),
    Crc64Nvme(crc::Digest<'static, u64>),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Checksummer {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        let state = match algorithm {
            ChecksumAlgorithm::Crc32 => State::Crc32(CRC32.digest()),
            ChecksumAlgorithm::Crc32c => State::Crc32c(0),
            ChecksumAlgorithm::Crc64Nvme => State::Crc64Nvme(CRC64_NVME.digest()),
            ChecksumAlgorithm::Sha1 => State::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => State::Sha256(Sha256::new()),
        };
        Self { state }
    }

    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self.state {
            State::Crc32(_) => ChecksumAlgorithm::Crc32,
            State::Crc32c(_) => ChecksumAlgorithm::Crc32c,
            State::Crc64Nvme(_) => ChecksumAlgorithm::Crc64Nvme,
            State::Sha1(_) => ChecksumAlgorithm::Sha1,
            State::Sha256(_) => ChecksumAlgorithm::Sha256,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Crc32(digest) => digest.update(data),
            State::Crc32c(crc) => *crc = storage::checksum::crc32c_append(*crc, data),
            State::Crc64Nvme(digest) => digest.update(data),
            State::Sha1(hash) => hash.update(data),
            State::Sha256(hash) => hash.update(data),
        }
    }

    /// The raw checksum: big-endian CRC, or the digest.
    pub fn finish_bytes(self) -> Vec<u8> {
        match self.state {
            State::Crc32(digest) => digest.finalize().to_be_bytes().to_vec(),
            State::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            State::Crc64Nvme(digest) => digest.finalize().to_be_bytes().to_vec(),
            State::Sha1(hash) => hash.finalize().to_vec(),
            State::Sha256(hash) => hash.finalize().to_vec(),
        }
    }

    /// The checksum as S3 prints it (base64).
    pub fn finish(self) -> String {
        STANDARD.encode(self.finish_bytes())
    }

    /// Whether the checksum equals `expected_base64` (as a client sent it),
    /// compared in constant time. Malformed base64 is simply unequal.
    pub fn matches(self, expected_base64: &str) -> bool {
        let algorithm = self.algorithm();
        match STANDARD.decode(expected_base64) {
            Ok(expected) if expected.len() == algorithm.len_bytes() => self.finish_bytes().ct_eq(&expected).into(),
            _ => false,
        }
    }

    /// The checksum of `data` in one go.
    pub fn digest(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut checksummer = Self::new(algorithm);
        checksummer.update(data);
        checksummer.finish()
    }
}

impl core::fmt::Debug for Checksummer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Checksummer").field("algorithm", &self.algorithm()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChecksumAlgorithm::*;

    #[test]
    fn known_answers() {
        let cases = [
            (Crc32, &b"123456789"[..], "y/Q5Jg=="),
            (Crc32, b"Hello world", "i9aeUg=="),
            (Crc32, b"", "AAAAAA=="),
            (Crc32c, b"123456789", "4waSgw=="),
            (Crc32c, b"", "AAAAAA=="),
            // CRC-64/NVME check value 0xAE8B14860A799888.
            (Crc64Nvme, b"123456789", "rosUhgp5mIg="),
            (Crc64Nvme, b"", "AAAAAAAAAAA="),
            (Sha1, b"123456789", "98O8HYCOBHMq32eZZczDTKeuNEE="),
            (Sha1, b"Hello world", "e1AsOh9IyGCa4hLN+2Od7jlnP14="),
            (Sha256, b"Hello world", "ZOyIygCyaOW6GjVnihtTFtIS9PNmskdyMlNKiuyjfzw="),
            (Sha256, b"", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        ];
        for (algorithm, data, expected) in cases {
            assert_eq!(Checksummer::digest(algorithm, data), expected, "{algorithm:?} {data:?}");
            // Streaming in pieces gives the same value.
            let mut streaming = Checksummer::new(algorithm);
            for piece in data.chunks(2) {
                streaming.update(piece);
            }
            assert!(streaming.matches(expected));
        }
        assert_eq!(CRC64_NVME.checksum(b"123456789"), 0xAE8B_1486_0A79_9888);
    }

    #[test]
    fn names() {
        for algorithm in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::from_header_name(algorithm.header_name()), Some(algorithm));
            assert_eq!(ChecksumAlgorithm::from_algorithm_name(algorithm.algorithm_name()), Some(algorithm));
            assert_eq!(Checksummer::new(algorithm).finish_bytes().len(), algorithm.len_bytes());
        }
        assert_eq!(ChecksumAlgorithm::from_header_name("X-Amz-Checksum-CRC32C"), Some(Crc32c));
        assert_eq!(ChecksumAlgorithm::from_algorithm_name("crc64nvme"), Some(Crc64Nvme));
        assert_eq!(ChecksumAlgorithm::from_header_name("x-amz-checksum-md5"), None);
        assert_eq!(ChecksumAlgorithm::from_algorithm_name("CRC32 "), None);
    }

    #[test]
    fn mismatches() {
        let checksummer = || {
            let mut c = Checksummer::new(Crc32);
            c.update(b"123456789");
            c
        };
        assert!(!checksummer().matches("y/Q5Jw=="));
        assert!(!checksummer().matches("y/Q5Jg"));
        assert!(!checksummer().matches("not base64!"));
        assert!(!checksummer().matches("AAAAAAAAAAA="));
    }
}
