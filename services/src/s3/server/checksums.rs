//! The `x-amz-checksum-*` of an upload: announced in a header (checked at
//! the end of the body), in a trailer (`x-amz-trailer`, checked against the
//! value that arrives after the body), or only named
//! (`x-amz-sdk-checksum-algorithm`: computed and stored). The value is kept
//! with the object and returned by GET/HEAD with `x-amz-checksum-mode`.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use self::security::checksum::{ChecksumAlgorithm, Checksummer};

use super::payload::PayloadCheck;
use crate::s3::error::S3ErrorCode;
use crate::s3::http::Headers;

enum Expected {
    /// The header's value.
    Value(String),
    /// The trailer of this (lowercase) name.
    Trailer(String),
    /// Nothing to compare: compute and store.
    Compute,
}

struct ChecksumCheck {
    algorithm: ChecksumAlgorithm,
    summer: Checksummer,
    expected: Expected,
}

impl PayloadCheck for ChecksumCheck {
    fn update(&mut self, data: &[u8]) {
        self.summer.update(data);
    }

    fn finish(self: Box<Self>, trailers: &[(String, String)]) -> Result<Option<(String, String)>, S3ErrorCode> {
        let computed = self.summer.finish();
        let expected = match self.expected {
            Expected::Value(value) => Some(value),
            Expected::Trailer(name) => Some(
                trailers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                    .map(|(_, v)| String::from(v.trim()))
                    .ok_or(S3ErrorCode::InvalidRequest)?,
            ),
            Expected::Compute => None,
        };
        if expected.is_some_and(|value| value.trim() != computed) {
            return Err(S3ErrorCode::BadDigest);
        }
        Ok(Some((String::from(self.algorithm.name()), computed)))
    }
}

/// The checks an upload's headers ask for (at most one algorithm, as S3).
pub(crate) fn checks_for(headers: &Headers) -> Result<Vec<Box<dyn PayloadCheck>>, S3ErrorCode> {
    let mut checks: Vec<Box<dyn PayloadCheck>> = Vec::new();
    for (name, value) in headers.iter() {
        if let Some(algorithm) = ChecksumAlgorithm::from_header_name(name) {
            checks.push(Box::new(ChecksumCheck {
                algorithm,
                summer: Checksummer::new(algorithm),
                expected: Expected::Value(String::from(value.trim())),
            }));
        }
    }
    if checks.is_empty()
        && let Some(trailer) = headers.get("x-amz-trailer")
    {
        let name = trailer.trim().to_ascii_lowercase();
        let algorithm = ChecksumAlgorithm::from_header_name(&name).ok_or(S3ErrorCode::InvalidRequest)?;
        checks.push(Box::new(ChecksumCheck {
            algorithm,
            summer: Checksummer::new(algorithm),
            expected: Expected::Trailer(name),
        }));
    }
    if checks.is_empty()
        && let Some(name) = headers.get("x-amz-sdk-checksum-algorithm").or(headers.get("x-amz-checksum-algorithm"))
    {
        let algorithm = ChecksumAlgorithm::from_algorithm_name(name.trim()).ok_or(S3ErrorCode::InvalidRequest)?;
        checks.push(Box::new(ChecksumCheck {
            algorithm,
            summer: Checksummer::new(algorithm),
            expected: Expected::Compute,
        }));
    }
    if checks.len() > 1 {
        return Err(S3ErrorCode::InvalidRequest);
    }
    Ok(checks)
}

/// Stand-in until the `security` crate lands (same API).
mod security {
    pub mod checksum {
        use alloc::string::String;
        use base64::Engine;
        use sha2::Digest;

        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ChecksumAlgorithm {
            Crc32,
            Crc32c,
            Crc64Nvme,
            Sha1,
            Sha256,
        }

        impl ChecksumAlgorithm {
            pub fn from_header_name(name: &str) -> Option<Self> {
                let lower = name.to_ascii_lowercase();
                Self::from_algorithm_name(lower.strip_prefix("x-amz-checksum-")?)
            }

            pub fn from_algorithm_name(name: &str) -> Option<Self> {
                match name.to_ascii_uppercase().as_str() {
                    "CRC32" => Some(Self::Crc32),
                    "CRC32C" => Some(Self::Crc32c),
                    "CRC64NVME" => Some(Self::Crc64Nvme),
                    "SHA1" => Some(Self::Sha1),
                    "SHA256" => Some(Self::Sha256),
                    _ => None,
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    Self::Crc32 => "CRC32",
                    Self::Crc32c => "CRC32C",
                    Self::Crc64Nvme => "CRC64NVME",
                    Self::Sha1 => "SHA1",
                    Self::Sha256 => "SHA256",
                }
            }
        }

        static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
        static CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_NVME);

        pub enum Checksummer {
            Crc32(crc::Digest<'static, u32>),
            Crc32c(u32),
            Crc64(crc::Digest<'static, u64>),
            Sha1(sha1::Sha1),
            Sha256(sha2::Sha256),
        }

        impl Checksummer {
            pub fn new(algorithm: ChecksumAlgorithm) -> Self {
                match algorithm {
                    ChecksumAlgorithm::Crc32 => Self::Crc32(CRC32.digest()),
                    ChecksumAlgorithm::Crc32c => Self::Crc32c(0),
                    ChecksumAlgorithm::Crc64Nvme => Self::Crc64(CRC64.digest()),
                    ChecksumAlgorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
                    ChecksumAlgorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
                }
            }

            pub fn update(&mut self, data: &[u8]) {
                match self {
                    Self::Crc32(d) => d.update(data),
                    Self::Crc32c(c) => *c = storage::checksum::crc32c_append(*c, data),
                    Self::Crc64(d) => d.update(data),
                    Self::Sha1(d) => d.update(data),
                    Self::Sha256(d) => d.update(data),
                }
            }

            pub fn finish(self) -> String {
                let engine = base64::engine::general_purpose::STANDARD;
                match self {
                    Self::Crc32(d) => engine.encode(d.finalize().to_be_bytes()),
                    Self::Crc32c(c) => engine.encode(c.to_be_bytes()),
                    Self::Crc64(d) => engine.encode(d.finalize().to_be_bytes()),
                    Self::Sha1(d) => engine.encode(d.finalize()),
                    Self::Sha256(d) => engine.encode(d.finalize()),
                }
            }
        }
    }
}
