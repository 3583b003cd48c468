//! A SigV4 request signer for the bench client, written from the AWS
//! specification rather than taken from the server's `security` crate, so
//! that a bench run also cross-checks the server's verifier against an
//! independent signer (Garage and s3s-fs verify the same signatures).
//!
//! Every request is signed with `x-amz-content-sha256: UNSIGNED-PAYLOAD`:
//! the client never hashes bodies, which would make it the bottleneck of the
//! 16 MiB rows.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

#[derive(Clone)]
pub struct Signer {
    access_key: String,
    secret: String,
    region: String,
    /// The signing key of the last day signed for (`YYYYMMDD`, key).
    day_key: Option<(String, [u8; 32])>,
}

/// What a signed request adds to its head.
pub struct Signature {
    pub amz_date: String,
    pub authorization: String,
}

impl Signer {
    pub fn new(access_key: &str, secret: &str, region: &str) -> Signer {
        Signer { access_key: access_key.into(), secret: secret.into(), region: region.into(), day_key: None }
    }

    /// Signs `method path?query` with the headers `host`,
    /// `x-amz-content-sha256` (UNSIGNED-PAYLOAD) and `x-amz-date`.
    /// `path` is already URI-encoded (see [`encode`]); `query` is the
    /// canonical query string (see [`canonical_query`]).
    pub fn sign(&mut self, method: &str, path: &str, query: &str, host: &str, unix_s: u64) -> Signature {
        let amz_date = amz_date(unix_s);
        let day = &amz_date[..8];
        let canonical = format!(
            "{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{UNSIGNED_PAYLOAD}\nx-amz-date:{amz_date}\n\n\
             host;x-amz-content-sha256;x-amz-date\n{UNSIGNED_PAYLOAD}"
        );
        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
        let key = match &self.day_key {
            Some((cached, key)) if cached == day => *key,
            _ => {
                let key = signing_key(&self.secret, day, &self.region);
                self.day_key = Some((day.to_string(), key));
                key
            }
        };
        let signature = hex(&hmac(&key, to_sign.as_bytes()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}",
            self.access_key
        );
        Signature { amz_date, authorization }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn signing_key(secret: &str, day: &str, region: &str) -> [u8; 32] {
    let date_key = hmac(format!("AWS4{secret}").as_bytes(), day.as_bytes());
    let region_key = hmac(&date_key, region.as_bytes());
    let service_key = hmac(&region_key, b"s3");
    hmac(&service_key, b"aws4_request")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SigV4's URI encoding: unreserved characters stay, `/` stays when
/// `keep_slash` (paths), everything else is `%XX`.
pub fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(char::from(byte)),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `name=value&...` sorted by name, both encoded: the canonical query
/// string, which is also sent on the wire as is.
pub fn canonical_query(pairs: &[(&str, &str)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs.iter().map(|(n, v)| (encode(n, false), encode(v, false))).collect();
    encoded.sort();
    encoded.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&")
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time in seconds.
pub fn amz_date(unix_s: u64) -> String {
    let (days, secs) = (unix_s / 86_400, unix_s % 86_400);
    // Days to civil date (Howard Hinnant's algorithm), for days >= 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(amz_date(951_782_400 + 3_723), "20000229T010203Z");
    }

    /// The GET Object example of the AWS SigV4 documentation, with the
    /// payload hash replaced by UNSIGNED-PAYLOAD: checked against the
    /// signing key of the documentation's example.
    #[test]
    fn signing_key_matches_the_documentation() {
        let key = signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1");
        assert_eq!(hex(&key), "dbb893acc010964918f1fd433add87c70e8b0db6be30c1fbeafefa5ec6ba8378");
    }

    #[test]
    fn query_is_sorted_and_encoded() {
        assert_eq!(
            canonical_query(&[("prefix", "list/"), ("list-type", "2"), ("continuation-token", "a+b=")]),
            "continuation-token=a%2Bb%3D&list-type=2&prefix=list%2F"
        );
    }
}
