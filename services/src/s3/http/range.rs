//! The `Range` request header, as S3 serves it: one byte range or none.
//!
//! S3 answers a single satisfiable range with 206, a range that starts at or
//! beyond the end of the object with 416 `InvalidRange`, and treats anything
//! it does not support as if there were no `Range` at all: several ranges
//! (`bytes=0-1,5-6` returns the whole object with 200), another unit, or a
//! syntactically invalid value (RFC 9110 §14.2 lets a server ignore those).

use alloc::format;
use alloc::string::String;

use crate::s3::error::S3ErrorCode;

/// A satisfiable range of an object: `start..=end`, within its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end_inclusive: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end_inclusive - self.start + 1
    }

    /// Always false: a satisfiable range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// `Content-Range` of the 206 response: `bytes 0-499/1234`.
    pub fn content_range(&self, object_len: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end_inclusive, object_len)
    }
}

/// The range cannot be satisfied: 416 `InvalidRange`, with
/// [`unsatisfied_content_range`] as `Content-Range`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeNotSatisfiable;

impl From<RangeNotSatisfiable> for S3ErrorCode {
    fn from(_: RangeNotSatisfiable) -> Self {
        S3ErrorCode::InvalidRange
    }
}

/// `Content-Range` of the 416 response: `bytes */1234`.
pub fn unsatisfied_content_range(object_len: u64) -> String {
    format!("bytes */{object_len}")
}

/// Resolves a `Range` value against an object of `object_len` bytes:
/// `Ok(Some)` for a 206, `Ok(None)` to serve the whole object, `Err` for 416.
pub fn resolve_range(value: &str, object_len: u64) -> Result<Option<ByteRange>, RangeNotSatisfiable> {
    let value = value.trim();
    let Some((unit, spec)) = value.split_once('=') else { return Ok(None) };
    if !unit.eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else { return Ok(None) };
    if first.is_empty() {
        // bytes=-n: the last n bytes.
        let Some(suffix) = number(last) else { return Ok(None) };
        if suffix == 0 {
            return Err(RangeNotSatisfiable);
        }
        if object_len == 0 {
            // Nothing to cut from, but nothing out of range either.
            return Ok(None);
        }
        return Ok(Some(ByteRange { start: object_len.saturating_sub(suffix), end_inclusive: object_len - 1 }));
    }
    let Some(start) = number(first) else { return Ok(None) };
    let last = match (last.is_empty(), number(last)) {
        (true, _) => None,
        (false, Some(last)) if last >= start => Some(last),
        (false, _) => return Ok(None),
    };
    if start >= object_len {
        return Err(RangeNotSatisfiable);
    }
    let end_inclusive = last.map_or(object_len - 1, |last| last.min(object_len - 1));
    Ok(Some(ByteRange { start, end_inclusive }))
}

/// Decimal digits only; values beyond u64 saturate, which for a first
/// position means "beyond the object" and for a last one "to the end".
fn number(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.bytes().fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, end_inclusive: u64) -> Result<Option<ByteRange>, RangeNotSatisfiable> {
        Ok(Some(ByteRange { start, end_inclusive }))
    }

    #[test]
    fn single_ranges() {
        assert_eq!(resolve_range("bytes=0-499", 2000), range(0, 499));
        assert_eq!(resolve_range("bytes=500-", 2000), range(500, 1999));
        assert_eq!(resolve_range("bytes=-500", 2000), range(1500, 1999));
        assert_eq!(resolve_range("bytes=0-", 2000), range(0, 1999));
        assert_eq!(resolve_range("bytes=1990-5000", 2000), range(1990, 1999));
        assert_eq!(resolve_range("bytes=-5000", 2000), range(0, 1999));
        assert_eq!(resolve_range("Bytes=1-1", 2), range(1, 1));
        assert_eq!(resolve_range(" bytes=0-99999999999999999999999", 10), range(0, 9));
        let r = ByteRange { start: 4, end_inclusive: 8 };
        assert_eq!((r.len(), r.content_range(11).as_str()), (5, "bytes 4-8/11"));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(resolve_range("bytes=2000-", 2000), Err(RangeNotSatisfiable));
        assert_eq!(resolve_range("bytes=2000-2001", 2000), Err(RangeNotSatisfiable));
        assert_eq!(resolve_range("bytes=0-0", 0), Err(RangeNotSatisfiable));
        assert_eq!(resolve_range("bytes=-0", 10), Err(RangeNotSatisfiable));
        assert_eq!(resolve_range("bytes=99999999999999999999999-", 10), Err(RangeNotSatisfiable));
        assert_eq!(unsatisfied_content_range(10), "bytes */10");
        assert_eq!(S3ErrorCode::from(RangeNotSatisfiable), S3ErrorCode::InvalidRange);
    }

    #[test]
    fn ignored() {
        for value in [
            "bytes=0-1,5-6",
            "bytes=5-3",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes 0-1",
            "bytes=1",
            "bytes=--1",
            "bytes=+1-2",
            "",
        ] {
            assert_eq!(resolve_range(value, 10), Ok(None), "{value:?}");
        }
        assert_eq!(resolve_range("bytes=-5", 0), Ok(None));
    }
}
