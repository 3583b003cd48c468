//! The payload of a PUT or UploadPart as it streams in: HTTP framing is
//! already gone ([`ConnIo::read_body`]); here an inner framing (aws-chunked)
//! is removed and everything the client promised about the bytes is
//! verified: the signed SHA-256, `Content-MD5`, the declared length and the
//! `x-amz-checksum-*` value, from a header or a trailer. A mismatch is an
//! error before anything commits, so the upload is discarded whole.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use sha2::{Digest, Sha256};

use super::BodyCheck;
use super::io::{ConnIo, Connection, ReadError};
use crate::s3::error::S3ErrorCode;

/// An inner body framing, as a feed-bytes state machine (aws-chunked with
/// or without chunk signatures and trailers).
pub trait BodyDecoder {
    /// Decodes a prefix of `input`, appending payload bytes to `out`, and
    /// returns how many input bytes it consumed (0: it needs more input).
    fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, S3ErrorCode>;
    /// The HTTP body ended: the framing must be complete. Returns the
    /// trailer fields it carried (`x-amz-checksum-*`), names lowercase.
    fn finish(&mut self) -> Result<Vec<(String, String)>, S3ErrorCode>;
}

/// Why a payload could not be taken.
#[derive(Debug)]
pub(crate) enum PayloadError {
    S3(S3ErrorCode),
    Transport(ReadError),
}

impl From<S3ErrorCode> for PayloadError {
    fn from(code: S3ErrorCode) -> Self {
        Self::S3(code)
    }
}

/// Verifies a whole-payload property at the end.
pub(crate) trait PayloadCheck {
    fn update(&mut self, data: &[u8]);
    /// Checks the value; `trailers` are those the decoder found.
    fn finish(self: Box<Self>, trailers: &[(String, String)]) -> Result<Option<(String, String)>, S3ErrorCode>;
}

pub(crate) struct PayloadReader<'a, 'c, C: Connection> {
    io: &'a mut ConnIo<'c, C>,
    decoder: Option<Box<dyn BodyDecoder>>,
    /// Raw body bytes not yet consumed by the decoder.
    raw: Vec<u8>,
    raw_start: usize,
    sha256: Option<(Sha256, [u8; 32])>,
    checks: Vec<Box<dyn PayloadCheck>>,
    /// Payload bytes so far, against the length the client declared.
    received: u64,
    declared: Option<u64>,
    max_bytes: u64,
    ended: bool,
}

impl<'a, 'c, C: Connection> PayloadReader<'a, 'c, C> {
    pub fn new(
        io: &'a mut ConnIo<'c, C>,
        check: BodyCheck,
        declared: Option<u64>,
        max_bytes: u64,
        checks: Vec<Box<dyn PayloadCheck>>,
    ) -> Self {
        let (decoder, sha256) = match check {
            BodyCheck::None => (None, None),
            BodyCheck::Sha256(expected) => (None, Some((Sha256::new(), expected))),
            BodyCheck::Decoder(decoder) => (Some(decoder), None),
        };
        Self {
            io,
            decoder,
            raw: Vec::new(),
            raw_start: 0,
            sha256,
            checks,
            received: 0,
            declared,
            max_bytes,
            ended: false,
        }
    }

    /// Appends the next payload bytes to `out` (cleared first); `false` at
    /// the end, after which [`PayloadReader::finish`] verifies.
    pub async fn next(&mut self, out: &mut Vec<u8>) -> Result<bool, PayloadError> {
        out.clear();
        while out.is_empty() {
            if self.ended {
                return Ok(false);
            }
            self.fill(out).await?;
        }
        self.received += out.len() as u64;
        if self.received > self.max_bytes {
            return Err(PayloadError::S3(S3ErrorCode::EntityTooLarge));
        }
        if self.declared.is_some_and(|declared| self.received > declared) {
            return Err(PayloadError::S3(S3ErrorCode::IncompleteBody));
        }
        if let Some((hasher, _)) = &mut self.sha256 {
            hasher.update(&out[..]);
        }
        for check in &mut self.checks {
            check.update(out);
        }
        Ok(true)
    }

    /// Appends some payload bytes to `out` (possibly none, e.g. after only
    /// a chunk header), or marks the end.
    async fn fill(&mut self, out: &mut Vec<u8>) -> Result<(), PayloadError> {
        let Some(decoder) = &mut self.decoder else {
            if !self.io.read_body(out).await.map_err(PayloadError::Transport)? {
                self.ended = true;
            }
            return Ok(());
        };
        if self.raw_start < self.raw.len() {
            let consumed = decoder.decode(&self.raw[self.raw_start..], out)?;
            self.raw_start += consumed;
            if consumed > 0 {
                return Ok(());
            }
        }
        // The decoder needs more: keep the unconsumed rest.
        self.raw.drain(..self.raw_start);
        self.raw_start = 0;
        if self.raw.len() > 64 * 1024 {
            // A framing line longer than any valid one.
            return Err(PayloadError::S3(S3ErrorCode::IncompleteBody));
        }
        if !self.io.read_body(&mut self.raw).await.map_err(PayloadError::Transport)? {
            // Feed what is left until the decoder stops making progress.
            while self.raw_start < self.raw.len() {
                let consumed = decoder.decode(&self.raw[self.raw_start..], out)?;
                if consumed == 0 {
                    break;
                }
                self.raw_start += consumed;
            }
            if self.raw_start < self.raw.len() {
                return Err(PayloadError::S3(S3ErrorCode::IncompleteBody));
            }
            self.ended = true;
        }
        Ok(())
    }

    /// After the end: every promise about the payload checked. Returns the
    /// checksums to store (algorithm as S3 spells it, base64 value).
    pub fn finish(mut self) -> Result<Vec<(String, String)>, S3ErrorCode> {
        if self.declared.is_some_and(|declared| declared != self.received) {
            return Err(S3ErrorCode::IncompleteBody);
        }
        let trailers = match &mut self.decoder {
            Some(decoder) => decoder.finish()?,
            None => Vec::new(),
        };
        if let Some((hasher, expected)) = self.sha256.take()
            && hasher.finalize().as_slice() != expected
        {
            return Err(S3ErrorCode::XAmzContentSHA256Mismatch);
        }
        let mut stored = Vec::new();
        for check in self.checks {
            if let Some(value) = check.finish(&trailers)? {
                stored.push(value);
            }
        }
        Ok(stored)
    }
}
