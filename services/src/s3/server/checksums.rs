//! The `x-amz-checksum-*` of an upload: announced in a header (checked at
//! the end of the body), in a trailer (`x-amz-trailer`, checked against the
//! value that arrives after the body), or only named
//! (`x-amz-sdk-checksum-algorithm`: computed and stored). The value is kept
//! with the object and returned by GET/HEAD with `x-amz-checksum-mode`.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use security::checksum::{ChecksumAlgorithm, Checksummer};

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
        Ok(Some((String::from(self.algorithm.algorithm_name()), computed)))
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
