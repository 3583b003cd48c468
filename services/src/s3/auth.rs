//! The authenticator of the S3 server: SigV4 (header and presigned) and
//! API keys (`Authorization: Bearer`, `x-api-key`, `?x-api-key=`) over a
//! [`KeySource`], with aws-chunked bodies decoded and verified by
//! `security::chunked`.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use security::chunked::{ChunkedDecoder, ChunkedError, Event, Framing, Limits};
use security::sigv4::{self, PayloadMode, Secret, SecretLookup, SigV4Error};

use crate::s3::error::S3ErrorCode;
use crate::s3::http::RequestHead;
use crate::s3::server::{Authenticated, Authenticator, BodyCheck, BodyDecoder, Principal};

/// Where keys come from (the keystore).
pub trait KeySource {
    /// The SigV4 secret of an active key, and whether it is an admin key.
    fn sigv4_secret(&self, access_key_id: &str) -> Option<(Secret, bool)>;
    /// The principal of a presented API key, if it is valid and active.
    fn api_key(&self, presented: &str) -> Option<Principal>;
}

pub struct KeyAuth<K: KeySource> {
    pub keys: K,
}

struct Lookup<'k, K: KeySource>(&'k K);

impl<K: KeySource> SecretLookup for Lookup<'_, K> {
    fn secret_for(&self, access_key_id: &str) -> Option<Secret> {
        self.0.sigv4_secret(access_key_id).map(|(secret, _)| secret)
    }
}

/// The one table of S3 codes, looked up by the code string a lower layer
/// names (`security` does not depend on the S3 layer).
fn code_named(name: &str) -> S3ErrorCode {
    S3ErrorCode::ALL.iter().copied().find(|code| code.as_str() == name).unwrap_or(S3ErrorCode::InvalidRequest)
}

impl From<SigV4Error> for S3ErrorCode {
    fn from(error: SigV4Error) -> Self {
        code_named(error.s3_code())
    }
}

impl From<ChunkedError> for S3ErrorCode {
    fn from(error: ChunkedError) -> Self {
        code_named(error.s3_code())
    }
}

/// An API key from `Authorization: Bearer`, `x-api-key` or `?x-api-key=`.
fn presented_api_key(head: &RequestHead) -> Option<&str> {
    if let Some(value) = head.headers.get("authorization")
        && let Some(key) = value.strip_prefix("Bearer ")
    {
        return Some(key.trim());
    }
    if let Some(key) = head.headers.get("x-api-key") {
        return Some(key.trim());
    }
    head.query()?.split('&').find_map(|pair| pair.strip_prefix("x-api-key="))
}

impl<K: KeySource> Authenticator for KeyAuth<K> {
    fn authenticate(&self, head: &RequestHead, now_unix_s: u64) -> Result<Authenticated, S3ErrorCode> {
        if let Some(key) = presented_api_key(head) {
            let principal = self.keys.api_key(key).ok_or(S3ErrorCode::AccessDenied)?;
            return Ok(Authenticated { principal, body: BodyCheck::None });
        }
        let headers: Vec<(&str, &str)> = head.headers.iter().collect();
        let request = sigv4::Request {
            method: head.method.as_str(),
            path: head.path(),
            query: head.query().unwrap_or(""),
            headers: &headers,
        };
        let verified = sigv4::verify(&request, now_unix_s, &Lookup(&self.keys))?;
        let admin = self.keys.sigv4_secret(&verified.access_key_id).is_some_and(|(_, admin)| admin);
        let body = match verified.payload {
            PayloadMode::UnsignedPayload => BodyCheck::None,
            PayloadMode::Sha256(hash) => BodyCheck::Sha256(hash),
            _ => {
                let framing = Framing::for_request(&verified).ok_or(S3ErrorCode::InvalidRequest)?;
                let decoded = head
                    .headers
                    .get("x-amz-decoded-content-length")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or(S3ErrorCode::MissingContentLength)?;
                BodyCheck::Decoder(Box::new(AwsChunked(ChunkedDecoder::new(framing, decoded, Limits::default()))))
            }
        };
        Ok(Authenticated { principal: Principal { access_key: verified.access_key_id, admin }, body })
    }
}

/// The aws-chunked decoder as the server's [`BodyDecoder`].
struct AwsChunked(ChunkedDecoder);

/// Decoded bytes handed to the store per call, at most (roughly).
const DECODE_BATCH_BYTES: usize = 256 * 1024;

impl BodyDecoder for AwsChunked {
    fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, S3ErrorCode> {
        let mut consumed = 0;
        while consumed < input.len() && out.len() < DECODE_BATCH_BYTES {
            let step = self.0.advance(&input[consumed..])?;
            consumed += step.consumed;
            match step.event {
                Event::Data(data) => out.extend_from_slice(data),
                Event::NeedMore | Event::End => break,
            }
        }
        Ok(consumed)
    }

    fn finish(&mut self) -> Result<Vec<(String, String)>, S3ErrorCode> {
        self.0.finish()?;
        Ok(self.0.trailers().iter().map(|(n, v)| (n.to_ascii_lowercase(), v.clone())).collect())
    }
}

/// A fixed set of SigV4 keys, e.g. the first admin key from the boot
/// archive before the keystore holds any.
pub struct StaticKeys {
    keys: Vec<(String, Secret, bool)>,
}

impl StaticKeys {
    pub fn new() -> Self {
        Self { keys: Vec::new() }
    }

    pub fn add(&mut self, access_key_id: &str, secret: &[u8], admin: bool) {
        self.keys.push((String::from(access_key_id), Secret::new(secret), admin));
    }

    /// Parses `access_key_id\nsecret\n` (the boot archive's `keys/admin`).
    pub fn parse_admin_file(text: &[u8]) -> Option<(String, String)> {
        let text = core::str::from_utf8(text).ok()?;
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let (id, secret) = (lines.next()?, lines.next()?);
        Some((String::from(id), String::from(secret)))
    }
}

impl Default for StaticKeys {
    fn default() -> Self {
        Self::new()
    }
}

impl KeySource for StaticKeys {
    fn sigv4_secret(&self, access_key_id: &str) -> Option<(Secret, bool)> {
        self.keys.iter().find(|(id, _, _)| id == access_key_id).map(|(_, secret, admin)| (secret.clone(), *admin))
    }

    fn api_key(&self, _presented: &str) -> Option<Principal> {
        None
    }
}
