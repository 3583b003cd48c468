//! Limits S3 puts on names and metadata, checked before any storage work.

use crate::s3::error::S3ErrorCode;
use crate::s3::http::Headers;

/// S3's limit on an object key, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// S3's limit on user-defined metadata: the UTF-8 bytes of every
/// `x-amz-meta-*` name (without the prefix) and value, added up.
pub const MAX_USER_METADATA_BYTES: usize = 2 * 1024;

pub const USER_METADATA_PREFIX: &str = "x-amz-meta-";

/// The rules for general purpose bucket names: 3 to 63 characters of
/// lowercase letters, digits, `.` and `-`; a letter or digit at both ends; no
/// `..`; not shaped like an IPv4 address; none of the prefixes and suffixes
/// S3 reserves for its own endpoints (access points, Object Lambda,
/// directory and table buckets, punycode).
pub fn validate_bucket_name(name: &str) -> Result<(), S3ErrorCode> {
    const RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const RESERVED_SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    let bytes = name.as_bytes();
    let valid = (3..=63).contains(&bytes.len())
        && bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && !is_ipv4_address(name)
        && !RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
        && !RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s));
    if valid { Ok(()) } else { Err(S3ErrorCode::InvalidBucketName) }
}

fn is_ipv4_address(name: &str) -> bool {
    let mut parts = 0;
    for part in name.split('.') {
        parts += 1;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    parts == 4
}

/// Keys are at most 1024 bytes of UTF-8 (Rust strings are UTF-8 already).
/// An empty key is the caller's case: it addresses the bucket, not an object.
pub fn validate_object_key(key: &str) -> Result<(), S3ErrorCode> {
    if key.len() > MAX_KEY_BYTES { Err(S3ErrorCode::KeyTooLongError) } else { Ok(()) }
}

/// Adds up the user metadata of a request and checks it against S3's 2 KiB.
pub fn validate_user_metadata(headers: &Headers) -> Result<(), S3ErrorCode> {
    let total: usize = headers
        .iter()
        .filter_map(|(name, value)| {
            let prefix = name.get(..USER_METADATA_PREFIX.len())?;
            prefix.eq_ignore_ascii_case(USER_METADATA_PREFIX).then(|| name.len() - prefix.len() + value.len())
        })
        .sum();
    if total > MAX_USER_METADATA_BYTES { Err(S3ErrorCode::MetadataTooLarge) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn bucket_names() {
        for good in ["abc", "my-bucket", "my.bucket.name", "a1b", "123", "1.2.3", "1.2.3.4.5", &"a".repeat(63)] {
            assert_eq!(validate_bucket_name(good), Ok(()), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "my_bucket",
            "-bucket",
            "bucket-",
            ".bucket",
            "bucket.",
            "my..bucket",
            "192.168.5.4",
            "xn--bucket",
            "sthree-bucket",
            "amzn-s3-demo-bucket",
            "bucket-s3alias",
            "bucket--ol-s3",
            "bucket.mrap",
            "bucket--x-s3",
            "bucket--table-s3",
            "bück",
            "",
        ] {
            assert_eq!(validate_bucket_name(bad), Err(S3ErrorCode::InvalidBucketName), "{bad}");
        }
    }

    #[test]
    fn object_keys() {
        assert_eq!(validate_object_key(&"k".repeat(1024)), Ok(()));
        assert_eq!(validate_object_key(&"k".repeat(1025)), Err(S3ErrorCode::KeyTooLongError));
        // 512 two-byte characters are 1024 bytes; one more is too long.
        assert_eq!(validate_object_key(&"é".repeat(512)), Ok(()));
        assert_eq!(validate_object_key(&"é".repeat(513)), Err(S3ErrorCode::KeyTooLongError));
    }

    #[test]
    fn user_metadata() {
        let mut headers = Headers::new();
        headers.push("Content-Type", "x".repeat(4000));
        headers.push("X-Amz-Meta-Name", "v".repeat(2044));
        assert_eq!(validate_user_metadata(&headers), Ok(()));
        headers.push("x-amz-meta-b", String::from("1"));
        assert_eq!(validate_user_metadata(&headers), Err(S3ErrorCode::MetadataTooLarge));
    }
}
