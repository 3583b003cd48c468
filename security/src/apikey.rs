//! Simple API keys, for clients that do not speak SigV4 (scripts, the admin
//! console).
//!
//! Format: `rc_<id>_<secret>`, 63 characters:
//! - `rc_`: a fixed prefix, so a leaked key is recognizable (and secret
//!   scanners can match it);
//! - `<id>`: 16 lowercase hex characters (8 random bytes), the record's key
//!   in the keystore; not secret;
//! - `<secret>`: 43 characters of unpadded base64url (32 random bytes).
//!
//! The server stores only SHA-256 of the 32 secret bytes. A fast hash is
//! enough here, unlike for passwords: the secret is 256 bits of randomness,
//! so there is nothing to guess and nothing to gain from a slow, salted
//! hash. Comparison is in constant time.
//!
//! A key is accepted from `Authorization: Bearer <key>`, an `x-api-key:
//! <key>` header or a `x-api-key=<key>` query parameter (the key's alphabet
//! needs no percent-encoding).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::hex;
use crate::sigv4::parse_query;

pub const PREFIX: &str = "rc_";
/// Hex characters of the key ID.
pub const ID_LEN: usize = 16;
/// Characters of the whole key.
pub const KEY_LEN: usize = PREFIX.len() + ID_LEN + 1 + 43;
/// Random bytes [`ApiKey::generate`] needs: 8 for the ID, 32 for the secret.
pub const RANDOM_BYTES: usize = 40;

/// An API key as the client holds it. `Debug` shows only the ID.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    id: String,
    secret: [u8; 32],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiKeyError {
    /// Not of the form `rc_<16 hex>_<43 base64url>`.
    Malformed,
    /// Keys in more than one place of the request, and not the same.
    Ambiguous,
}

impl ApiKeyError {
    pub const fn s3_code(&self) -> &'static str {
        match self {
            ApiKeyError::Malformed => "InvalidAccessKeyId",
            ApiKeyError::Ambiguous => "InvalidArgument",
        }
    }

    pub const fn http_status(&self) -> u16 {
        match self {
            ApiKeyError::Malformed => 403,
            ApiKeyError::Ambiguous => 400,
        }
    }
}

impl fmt::Display for ApiKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({})", self.s3_code())
    }
}

impl ApiKey {
    /// A new key from the caller's random bytes (the crate has no RNG).
    pub fn generate(random: &[u8; RANDOM_BYTES]) -> Self {
        let (id, secret) = random.split_at(8);
        let mut secret_bytes = [0u8; 32];
        secret_bytes.copy_from_slice(secret);
        Self { id: hex::encode(id), secret: secret_bytes }
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self, ApiKeyError> {
        let rest = text.strip_prefix(PREFIX).ok_or(ApiKeyError::Malformed)?;
        if text.len() != KEY_LEN || !rest.is_char_boundary(ID_LEN) {
            return Err(ApiKeyError::Malformed);
        }
        let (id, rest) = rest.split_at(ID_LEN);
        let secret = rest.strip_prefix('_').ok_or(ApiKeyError::Malformed)?;
        if !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ApiKeyError::Malformed);
        }
        let mut secret_bytes = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(secret, &mut secret_bytes) {
            Ok(32) => {}
            _ => return Err(ApiKeyError::Malformed),
        }
        // Only the canonical encoding (no stray low bits in the last char).
        if URL_SAFE_NO_PAD.encode(secret_bytes) != secret {
            return Err(ApiKeyError::Malformed);
        }
        Ok(Self { id: String::from(id), secret: secret_bytes })
    }

    /// The key ID: the keystore record's `access_key_id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The full key, to show the user once.
    pub fn to_text(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, URL_SAFE_NO_PAD.encode(self.secret))
    }

    /// What the server stores.
    pub fn secret_sha256(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
    }

    /// Whether the key's secret hashes to `stored`, in constant time.
    pub fn verify(&self, stored: &[u8; 32]) -> bool {
        self.secret_sha256().ct_eq(stored).into()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The API key of a request, if it carries one. An `Authorization` header
/// of another scheme (SigV4) is not an API key and is left alone.
pub fn from_request(headers: &[(&str, &str)], query: &str) -> Result<Option<ApiKey>, ApiKeyError> {
    let mut candidates: Vec<String> = Vec::new();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("authorization") {
            if let Some((scheme, token)) = value.trim().split_once(' ')
                && scheme.eq_ignore_ascii_case("bearer")
            {
                candidates.push(String::from(token.trim()));
            }
        } else if name.eq_ignore_ascii_case("x-api-key") {
            candidates.push(String::from(value.trim()));
        }
    }
    // The query is decoded only if it names the parameter, so a malformed
    // query elsewhere stays the S3 layer's business.
    if query.split('&').any(|pair| pair.starts_with("x-api-key=")) {
        for (name, value) in parse_query(query).map_err(|_| ApiKeyError::Malformed)? {
            if name == b"x-api-key" {
                candidates.push(String::from_utf8(value).map_err(|_| ApiKeyError::Malformed)?);
            }
        }
    }
    match candidates.split_first() {
        None => Ok(None),
        Some((first, rest)) if rest.iter().all(|other| other == first) => ApiKey::parse(first).map(Some),
        Some(_) => Err(ApiKeyError::Ambiguous),
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use proptest::prelude::*;

    use super::*;

    fn random(seed: u8) -> [u8; RANDOM_BYTES] {
        core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add((i as u8).wrapping_mul(7)))
    }

    #[test]
    fn generate_parse_verify() {
        let key = ApiKey::generate(&random(1));
        let text = key.to_text();
        assert_eq!(text.len(), KEY_LEN);
        assert!(text.starts_with("rc_"));
        assert_eq!(&text[3..19], key.id());
        let parsed = ApiKey::parse(&text).unwrap();
        assert_eq!(parsed, key);
        let stored = key.secret_sha256();
        assert!(parsed.verify(&stored));
        assert!(!ApiKey::generate(&random(2)).verify(&stored));
        assert!(!format!("{key:?}").contains(&text[20..]), "Debug hides the secret");
    }

    #[test]
    fn malformed_keys() {
        let text = ApiKey::generate(&random(3)).to_text();
        let cases = vec![
            String::new(),
            text.replacen("rc_", "rk_", 1),
            format!("{text}A"),
            String::from(&text[..KEY_LEN - 1]),
            text.replacen('_', "-", 2),
            format!("rc_{}{}", "G".repeat(16), &text[19..]),
            format!("rc_{}{}", "A".repeat(16), &text[19..]),
            format!("{}é{}", &text[..10], &text[12..]),
            format!("{}*", &text[..KEY_LEN - 1]),
        ];
        for case in cases {
            assert_eq!(ApiKey::parse(&case), Err(ApiKeyError::Malformed), "{case}");
        }
    }

    #[test]
    fn request_sources() {
        let key = ApiKey::generate(&random(4));
        let text = key.to_text();
        let bearer = format!("Bearer {text}");
        let query = format!("list-type=2&x-api-key={text}");
        assert_eq!(from_request(&[("Authorization", &bearer)], ""), Ok(Some(key.clone())));
        assert_eq!(from_request(&[("X-Api-Key", &text)], ""), Ok(Some(key.clone())));
        assert_eq!(from_request(&[], &query), Ok(Some(key.clone())));
        assert_eq!(from_request(&[("x-api-key", &text)], &query), Ok(Some(key.clone())));
        assert_eq!(from_request(&[("host", "h")], "list-type=2"), Ok(None));
        let sigv4 =
            "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
        assert_eq!(from_request(&[("authorization", sigv4)], ""), Ok(None));
        let other = ApiKey::generate(&random(5)).to_text();
        assert_eq!(from_request(&[("x-api-key", &other)], &query), Err(ApiKeyError::Ambiguous));
        assert_eq!(from_request(&[("authorization", "Bearer nope")], ""), Err(ApiKeyError::Malformed));
        assert_eq!(from_request(&[], "x-api-key=%zz"), Err(ApiKeyError::Malformed));
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,80}", query in "[a-z%=&_\\-]{0,40}") {
            let _ = ApiKey::parse(&text);
            let _ = from_request(&[("authorization", &text), ("x-api-key", &text)], &query);
        }
    }
}
