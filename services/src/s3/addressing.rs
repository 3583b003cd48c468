//! Which bucket and key a request names, for both addressing styles S3
//! clients use: path-style (`Host: endpoint`, `/bucket/key`) and
//! virtual-hosted-style (`Host: bucket.endpoint`, `/key`).

use alloc::string::String;
use alloc::vec::Vec;

use percent_encoding::percent_decode_str;

use crate::s3::error::S3ErrorCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressingStyle {
    Path,
    VirtualHosted,
}

/// The resource a request addresses. No bucket: the service (ListBuckets);
/// no key: the bucket itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Target {
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub style: AddressingStyle,
}

/// Percent-encoding that is malformed or decodes to something other than
/// UTF-8: S3 answers `InvalidURI`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUri;

impl From<InvalidUri> for S3ErrorCode {
    fn from(_: InvalidUri) -> Self {
        S3ErrorCode::InvalidURI
    }
}

/// Resolves the bucket and key from the `Host` header, the service's own
/// domain (e.g. `localhost` or `s3.example.com`) and the still-encoded path.
/// A host that is the domain itself, an IP address or anything else not
/// under the domain means path-style.
pub fn resolve_target(host: Option<&str>, domain: &str, path: &str) -> Result<S3Target, InvalidUri> {
    let bucket_from_host = host.map(strip_port).and_then(|host| {
        let domain = domain.trim_end_matches('.');
        let host = host.trim_end_matches('.');
        let bucket_len = host.len().checked_sub(domain.len() + 1)?;
        let (bucket, rest) = (host.get(..bucket_len)?, host.get(bucket_len..)?);
        let under_domain = !domain.is_empty() && rest.starts_with('.') && rest[1..].eq_ignore_ascii_case(domain);
        (under_domain && !bucket.is_empty()).then(|| bucket.to_ascii_lowercase())
    });
    let path = path.strip_prefix('/').unwrap_or(path);
    if let Some(bucket) = bucket_from_host {
        return Ok(S3Target {
            bucket: Some(bucket),
            key: non_empty(decode(path)?),
            style: AddressingStyle::VirtualHosted,
        });
    }
    let (bucket, key) = match path.split_once('/') {
        Some((bucket, key)) => (decode(bucket)?, decode(key)?),
        None => (decode(path)?, String::new()),
    };
    Ok(S3Target { bucket: non_empty(bucket), key: non_empty(key), style: AddressingStyle::Path })
}

/// `host[:port]` or `[v6]:port` without the port.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':')
        .map_or(host, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host })
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// Percent-decodes a path component. `+` stays `+`: only query strings use
/// it for a space.
pub fn decode(text: &str) -> Result<String, InvalidUri> {
    check_escapes(text)?;
    percent_decode_str(text).decode_utf8().map(|s| String::from(s.as_ref())).map_err(|_| InvalidUri)
}

/// `percent_decode` passes a lone `%` through; S3 refuses it.
fn check_escapes(text: &str) -> Result<(), InvalidUri> {
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices('%') {
        match bytes.get(i + 1..i + 3) {
            Some([a, b]) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {}
            _ => return Err(InvalidUri),
        }
    }
    Ok(())
}

/// Splits a query string into decoded `(name, value)` pairs in order,
/// `+` read as a space as form encoding (and S3) does. A name without `=`
/// has an empty value: `?uploads`, `?versioning`.
pub fn parse_query(query: &str) -> Result<Vec<(String, String)>, InvalidUri> {
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((decode(&name.replace('+', " "))?, decode(&value.replace('+', " "))?));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(bucket: Option<&str>, key: Option<&str>, style: AddressingStyle) -> Result<S3Target, InvalidUri> {
        Ok(S3Target { bucket: bucket.map(String::from), key: key.map(String::from), style })
    }

    #[test]
    fn path_style() {
        use AddressingStyle::Path;
        assert_eq!(resolve_target(Some("localhost:8443"), "localhost", "/"), target(None, None, Path));
        assert_eq!(resolve_target(Some("localhost"), "localhost", "/b"), target(Some("b"), None, Path));
        assert_eq!(resolve_target(Some("localhost"), "localhost", "/b/"), target(Some("b"), None, Path));
        assert_eq!(
            resolve_target(Some("127.0.0.1:9000"), "localhost", "/b/a/b%20c+d"),
            target(Some("b"), Some("a/b c+d"), Path)
        );
        assert_eq!(resolve_target(Some("[::1]:9000"), "localhost", "/b//k"), target(Some("b"), Some("/k"), Path));
        assert_eq!(resolve_target(None, "localhost", "/b/k"), target(Some("b"), Some("k"), Path));
        assert_eq!(resolve_target(Some("other.example"), "localhost", "/b/k"), target(Some("b"), Some("k"), Path));
        assert_eq!(resolve_target(Some("notlocalhost"), "localhost", "/b/k"), target(Some("b"), Some("k"), Path));
    }

    #[test]
    fn virtual_hosted_style() {
        use AddressingStyle::VirtualHosted;
        assert_eq!(
            resolve_target(Some("bucket.localhost:8443"), "localhost", "/a/%C3%A9"),
            target(Some("bucket"), Some("a/é"), VirtualHosted)
        );
        assert_eq!(
            resolve_target(Some("My.Bucket.S3.Example.com"), "s3.example.com", "/"),
            target(Some("my.bucket"), None, VirtualHosted)
        );
        assert_eq!(resolve_target(Some("b.localhost."), "localhost", ""), target(Some("b"), None, VirtualHosted));
        assert_eq!(
            resolve_target(Some(".localhost"), "localhost", "/b"),
            target(Some("b"), None, AddressingStyle::Path)
        );
    }

    #[test]
    fn invalid_encoding() {
        assert_eq!(resolve_target(None, "localhost", "/b/%"), Err(InvalidUri));
        assert_eq!(resolve_target(None, "localhost", "/b/%zz"), Err(InvalidUri));
        assert_eq!(resolve_target(None, "localhost", "/b/%ff"), Err(InvalidUri));
        assert_eq!(S3ErrorCode::from(InvalidUri), S3ErrorCode::InvalidURI);
    }

    #[test]
    fn query() {
        let pairs = parse_query("list-type=2&prefix=a+b%2Fc&uploads&&delimiter=%2F").unwrap();
        let expected = [("list-type", "2"), ("prefix", "a b/c"), ("uploads", ""), ("delimiter", "/")];
        assert_eq!(pairs.len(), expected.len());
        for ((name, value), (n, v)) in pairs.iter().zip(expected) {
            assert_eq!((name.as_str(), value.as_str()), (n, v));
        }
        assert_eq!(parse_query("a=%"), Err(InvalidUri));
        assert!(parse_query("").unwrap().is_empty());
    }
}
