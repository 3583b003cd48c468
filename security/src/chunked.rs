//! The aws-chunked body decoder: the framing S3 clients put inside the HTTP
//! body (after any HTTP/1.1 `Transfer-Encoding: chunked` is removed) when
//! `x-amz-content-sha256` is one of the `STREAMING-*` modes.
//!
//! Wire format (see the crate README for the exact grammar):
//!
//! ```text
//! signed:            <hex size>;chunk-signature=<64 hex>\r\n<data>\r\n ... 0;chunk-signature=<64 hex>\r\n\r\n
//! signed + trailer:  ... 0;chunk-signature=<64 hex>\r\n<name>:<value>\r\n... x-amz-trailer-signature:<64 hex>\r\n\r\n
//! unsigned trailer:  <hex size>\r\n<data>\r\n ... 0\r\n<name>:<value>\r\n...\r\n
//! ```
//!
//! Like the HTTP parser in `services::s3::http::request`, the decoder is a
//! state machine the caller drives: it presents its unconsumed bytes to
//! [`ChunkedDecoder::advance`], drops the [`Step::consumed`] prefix and acts
//! on the [`Event`]. The decoder keeps no copy of the input, so on
//! [`Event::NeedMore`] the caller presents the same bytes again with more
//! appended; a buffer of [`Limits::max_line_bytes`] is enough.
//!
//! **Data is released before it is verified.** A chunk's signature covers
//! the whole chunk (64 KiB to several MiB), and holding it back would mean
//! buffering it. So [`Event::Data`] hands out bytes as they arrive and a bad
//! signature surfaces as [`ChunkedError::SignatureMismatch`] at the chunk's
//! end. The caller must therefore treat everything it received as
//! provisional until [`Event::End`]: on any error (or a body that stops
//! before `End`, see [`ChunkedDecoder::finish`]) it discards the upload and
//! commits nothing.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::hex;
use crate::sigv4::{EMPTY_SHA256_HEX, PayloadMode, Verified, hmac_sha256};

/// What chunk signatures are computed from: the request's verified
/// signing key, timestamp and scope, and its signature as the seed.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkSigning {
    pub signing_key: [u8; 32],
    /// `YYYYMMDDTHHMMSSZ` of the request.
    pub timestamp: String,
    /// `date/region/s3/aws4_request` of the request.
    pub scope: String,
    /// The request's own signature: the "previous signature" of chunk one.
    pub seed_signature: [u8; 32],
}

impl ChunkSigning {
    pub fn from_verified(verified: &Verified) -> Self {
        Self {
            signing_key: verified.signing_key,
            timestamp: verified.timestamp.clone(),
            scope: verified.scope.clone(),
            seed_signature: verified.signature,
        }
    }

    /// The signature of a chunk whose data hashes to `data_sha256`, chained
    /// from `previous`.
    pub fn chunk_signature(&self, previous: &[u8; 32], data_sha256: &[u8; 32]) -> [u8; 32] {
        let string_to_sign = alloc::format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256_HEX}\n{}",
            self.timestamp,
            self.scope,
            hex::encode(previous),
            hex::encode(data_sha256)
        );
        hmac_sha256(&self.signing_key, &[string_to_sign.as_bytes()])
    }

    /// The signature of the trailer section, chained from the final
    /// (empty) chunk's signature. `canonical_trailers` is every trailer but
    /// the signature as `name:value\n`.
    pub fn trailer_signature(&self, previous: &[u8; 32], canonical_trailers: &[u8]) -> [u8; 32] {
        let string_to_sign = alloc::format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.timestamp,
            self.scope,
            hex::encode(previous),
            hex::encode(&Sha256::digest(canonical_trailers))
        );
        hmac_sha256(&self.signing_key, &[string_to_sign.as_bytes()])
    }
}

impl fmt::Debug for ChunkSigning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkSigning")
            .field("timestamp", &self.timestamp)
            .field("scope", &self.scope)
            .field("seed_signature", &hex::encode(&self.seed_signature))
            .finish_non_exhaustive()
    }
}

/// Which aws-chunked variant the body uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: signed chunks, no trailers.
    Signed(ChunkSigning),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: signed chunks, then
    /// trailers closed by `x-amz-trailer-signature`.
    SignedWithTrailer(ChunkSigning),
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: bare chunks, unsigned trailers.
    UnsignedWithTrailer,
}

impl Framing {
    /// The framing of a verified request's body, `None` if it is not
    /// aws-chunked.
    pub fn for_request(verified: &Verified) -> Option<Self> {
        match verified.payload {
            PayloadMode::StreamingSigned => Some(Framing::Signed(ChunkSigning::from_verified(verified))),
            PayloadMode::StreamingSignedTrailer => {
                Some(Framing::SignedWithTrailer(ChunkSigning::from_verified(verified)))
            }
            PayloadMode::StreamingUnsignedTrailer => Some(Framing::UnsignedWithTrailer),
            PayloadMode::UnsignedPayload | PayloadMode::Sha256(_) => None,
        }
    }

    fn signing(&self) -> Option<&ChunkSigning> {
        match self {
            Framing::Signed(signing) | Framing::SignedWithTrailer(signing) => Some(signing),
            Framing::UnsignedWithTrailer => None,
        }
    }

    const fn has_trailers(&self) -> bool {
        !matches!(self, Framing::Signed(_))
    }
}

/// Bounds on what one body may make us hold or process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A chunk header line or one trailer line, without its CRLF.
    pub max_line_bytes: usize,
    /// One chunk's data (SDKs use 64 KiB to 8 MiB).
    pub max_chunk_bytes: u64,
    /// Trailer fields, not counting the trailer signature.
    pub max_trailers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_line_bytes: 4096, max_chunk_bytes: 16 << 20, max_trailers: 8 }
    }
}

/// Why a body is refused. After an error the decoder stays failed, and the
/// caller must discard everything it was handed (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk header or trailer line longer than [`Limits::max_line_bytes`].
    LineTooLong,
    /// A chunk header that is not `<hex size>` (unsigned) or
    /// `<hex size>;chunk-signature=<64 hex>` (signed).
    InvalidChunkHeader,
    /// A chunk larger than [`Limits::max_chunk_bytes`].
    ChunkTooLarge,
    /// Chunk data not followed by CRLF.
    InvalidFraming,
    /// A chunk signature that does not match its data.
    SignatureMismatch,
    /// A trailer line that is not `name:value`, or a trailer signature
    /// where none belongs.
    InvalidTrailer,
    TooManyTrailers,
    /// Signed trailers without `x-amz-trailer-signature`.
    MissingTrailerSignature,
    TrailerSignatureMismatch,
    /// More or fewer data bytes than `x-amz-decoded-content-length`.
    LengthMismatch,
    /// Bytes after the end of the aws-chunked body.
    TrailingData,
    /// The body ended before the final chunk and trailers.
    Truncated,
}

impl ChunkedError {
    /// The S3 error code to answer with.
    pub const fn s3_code(&self) -> &'static str {
        match self {
            ChunkedError::SignatureMismatch | ChunkedError::TrailerSignatureMismatch => "SignatureDoesNotMatch",
            ChunkedError::LengthMismatch | ChunkedError::Truncated => "IncompleteBody",
            ChunkedError::ChunkTooLarge | ChunkedError::LineTooLong => "EntityTooLarge",
            ChunkedError::InvalidChunkHeader
            | ChunkedError::InvalidFraming
            | ChunkedError::InvalidTrailer
            | ChunkedError::TooManyTrailers
            | ChunkedError::MissingTrailerSignature
            | ChunkedError::TrailingData => "InvalidRequest",
        }
    }

    /// The HTTP status that goes with [`ChunkedError::s3_code`].
    pub const fn http_status(&self) -> u16 {
        match self {
            ChunkedError::SignatureMismatch | ChunkedError::TrailerSignatureMismatch => 403,
            _ => 400,
        }
    }
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({})", self.s3_code())
    }
}

/// The outcome of one [`ChunkedDecoder::advance`].
#[derive(Debug, PartialEq, Eq)]
pub struct Step<'a> {
    /// How many input bytes to drop before the next call.
    pub consumed: usize,
    pub event: Event<'a>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Present the unconsumed input again with more bytes appended.
    NeedMore,
    /// Decoded payload bytes (a slice of the input), not yet verified.
    Data(&'a [u8]),
    /// The body is complete, every signature verified and the length
    /// checked; the trailers are in [`ChunkedDecoder::trailers`].
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    ChunkHeader,
    Data { remaining: u64 },
    DataEnd,
    Trailers,
    Done,
    Failed(ChunkedError),
}

/// The aws-chunked decoder of one request body.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    framing: Framing,
    limits: Limits,
    declared_length: u64,
    decoded_length: u64,
    state: State,
    /// The signature the current chunk chains from.
    previous_signature: [u8; 32],
    /// The signature the current chunk's header announced.
    chunk_signature: [u8; 32],
    chunk_hash: Sha256,
    /// `name:value\n` of every trailer so far, as the trailer signature hashes them.
    canonical_trailers: Vec<u8>,
    trailers: Vec<(String, String)>,
    trailer_signature: Option<[u8; 32]>,
}

const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";

impl ChunkedDecoder {
    /// A decoder for a body that must decode to exactly `decoded_length`
    /// bytes (`x-amz-decoded-content-length`).
    pub fn new(framing: Framing, decoded_length: u64, limits: Limits) -> Self {
        let seed = framing.signing().map_or([0; 32], |signing| signing.seed_signature);
        Self {
            framing,
            limits,
            declared_length: decoded_length,
            decoded_length: 0,
            state: State::ChunkHeader,
            previous_signature: seed,
            chunk_signature: [0; 32],
            chunk_hash: Sha256::new(),
            canonical_trailers: Vec::new(),
            trailers: Vec::new(),
            trailer_signature: None,
        }
    }

    /// The trailers (`name`, `value`) in arrival order, without the trailer
    /// signature. Complete and verified only once [`Event::End`] was seen.
    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }

    /// The value of trailer `name` (case-insensitive).
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Data bytes handed out so far.
    pub fn decoded_length(&self) -> u64 {
        self.decoded_length
    }

    /// To call when the HTTP body has ended: `Ok` only if the aws-chunked
    /// body ended too.
    pub fn finish(&self) -> Result<(), ChunkedError> {
        match self.state {
            State::Done => Ok(()),
            State::Failed(error) => Err(error),
            _ => Err(ChunkedError::Truncated),
        }
    }

    /// Decodes from the start of `input`, the caller's unconsumed bytes.
    pub fn advance<'a>(&mut self, input: &'a [u8]) -> Result<Step<'a>, ChunkedError> {
        let result = self.step(input);
        if let Err(error) = result {
            self.state = State::Failed(error);
        }
        result
    }

    fn step<'a>(&mut self, input: &'a [u8]) -> Result<Step<'a>, ChunkedError> {
        const NEED_MORE: Step<'static> = Step { consumed: 0, event: Event::NeedMore };
        match self.state {
            State::Failed(error) => Err(error),
            State::Done if input.is_empty() => Ok(Step { consumed: 0, event: Event::End }),
            State::Done => Err(ChunkedError::TrailingData),
            State::ChunkHeader => {
                let Some((line, consumed)) = self.line(input)? else { return Ok(NEED_MORE) };
                self.chunk_header(line)?;
                self.step_after(consumed, input)
            }
            State::Data { remaining } => {
                if input.is_empty() {
                    return Ok(NEED_MORE);
                }
                let take = usize::try_from(remaining).unwrap_or(usize::MAX).min(input.len());
                let data = &input[..take];
                self.chunk_hash.update(data);
                let remaining = remaining - take as u64;
                self.state = if remaining == 0 { State::DataEnd } else { State::Data { remaining } };
                Ok(Step { consumed: take, event: Event::Data(data) })
            }
            State::DataEnd => {
                if input.len() < 2 {
                    return if b"\r\n".starts_with(input) { Ok(NEED_MORE) } else { Err(ChunkedError::InvalidFraming) };
                }
                if &input[..2] != b"\r\n" {
                    return Err(ChunkedError::InvalidFraming);
                }
                self.verify_chunk()?;
                self.state = State::ChunkHeader;
                self.step_after(2, input)
            }
            State::Trailers => {
                let Some((line, consumed)) = self.line(input)? else { return Ok(NEED_MORE) };
                if line.is_empty() {
                    self.end_of_trailers()?;
                } else {
                    self.trailer_line(line)?;
                }
                self.step_after(consumed, input)
            }
        }
    }

    /// Continues after `consumed` bytes of framing, so one step goes on to
    /// the next data or the end (the recursion is bounded: every line it
    /// crosses is a chunk header followed by data, or one of at most
    /// `max_trailers + 2` trailer lines).
    fn step_after<'a>(&mut self, consumed: usize, input: &'a [u8]) -> Result<Step<'a>, ChunkedError> {
        match self.state {
            State::Done => Ok(Step { consumed, event: Event::End }),
            _ => {
                let rest = &input[consumed..];
                let step = self.step(rest)?;
                Ok(Step { consumed: consumed + step.consumed, event: step.event })
            }
        }
    }

    /// The next CRLF-terminated line and the bytes it takes, `None` if the
    /// CRLF has not arrived yet.
    fn line<'a>(&self, input: &'a [u8]) -> Result<Option<(&'a [u8], usize)>, ChunkedError> {
        let window = &input[..input.len().min(self.limits.max_line_bytes + 2)];
        match window.windows(2).position(|pair| pair == b"\r\n") {
            Some(end) => Ok(Some((&input[..end], end + 2))),
            None if input.len() >= self.limits.max_line_bytes + 2 => Err(ChunkedError::LineTooLong),
            None => Ok(None),
        }
    }

    fn chunk_header(&mut self, line: &[u8]) -> Result<(), ChunkedError> {
        let (size, extension) = match line.iter().position(|&b| b == b';') {
            Some(at) => (&line[..at], Some(&line[at + 1..])),
            None => (line, None),
        };
        match (self.framing.signing(), extension) {
            (Some(_), Some(extension)) => {
                let signature = extension.strip_prefix(b"chunk-signature=").ok_or(ChunkedError::InvalidChunkHeader)?;
                self.chunk_signature = hex::decode32(signature).ok_or(ChunkedError::InvalidChunkHeader)?;
            }
            (None, None) => {}
            _ => return Err(ChunkedError::InvalidChunkHeader),
        }
        if size.is_empty() || size.len() > 16 {
            return Err(ChunkedError::InvalidChunkHeader);
        }
        let size = size
            .iter()
            .try_fold(0u64, |n, &b| hex::nibble(b).map(|d| (n << 4) | u64::from(d)))
            .ok_or(ChunkedError::InvalidChunkHeader)?;
        if size > self.limits.max_chunk_bytes {
            return Err(ChunkedError::ChunkTooLarge);
        }
        if self.declared_length - self.decoded_length < size {
            return Err(ChunkedError::LengthMismatch);
        }
        self.decoded_length += size;
        self.chunk_hash = Sha256::new();
        if size > 0 {
            self.state = State::Data { remaining: size };
            return Ok(());
        }
        // The final chunk: its (empty) data is complete already.
        if self.decoded_length != self.declared_length {
            return Err(ChunkedError::LengthMismatch);
        }
        self.verify_chunk()?;
        self.state = State::Trailers;
        Ok(())
    }

    fn verify_chunk(&mut self) -> Result<(), ChunkedError> {
        let hash: [u8; 32] = core::mem::take(&mut self.chunk_hash).finalize().into();
        if let Some(signing) = self.framing.signing() {
            let expected = signing.chunk_signature(&self.previous_signature, &hash);
            if !bool::from(expected.ct_eq(&self.chunk_signature)) {
                return Err(ChunkedError::SignatureMismatch);
            }
            self.previous_signature = expected;
        }
        Ok(())
    }

    fn trailer_line(&mut self, line: &[u8]) -> Result<(), ChunkedError> {
        if !self.framing.has_trailers() || self.trailer_signature.is_some() {
            // Signed-only bodies end with an empty line; nothing may follow
            // the trailer signature but the empty line.
            return Err(ChunkedError::InvalidTrailer);
        }
        let line = core::str::from_utf8(line).map_err(|_| ChunkedError::InvalidTrailer)?;
        let (name, value) = line.split_once(':').ok_or(ChunkedError::InvalidTrailer)?;
        let value = value.trim_matches([' ', '\t']);
        let valid_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic());
        if !valid_name || value.bytes().any(|b| b.is_ascii_control()) {
            return Err(ChunkedError::InvalidTrailer);
        }
        if name.eq_ignore_ascii_case(TRAILER_SIGNATURE) {
            if self.framing.signing().is_none() {
                return Err(ChunkedError::InvalidTrailer);
            }
            self.trailer_signature = Some(hex::decode32(value.as_bytes()).ok_or(ChunkedError::InvalidTrailer)?);
            return Ok(());
        }
        if self.trailers.len() == self.limits.max_trailers {
            return Err(ChunkedError::TooManyTrailers);
        }
        self.canonical_trailers.extend_from_slice(name.as_bytes());
        self.canonical_trailers.push(b':');
        self.canonical_trailers.extend_from_slice(value.as_bytes());
        self.canonical_trailers.push(b'\n');
        self.trailers.push((String::from(name), String::from(value)));
        Ok(())
    }

    fn end_of_trailers(&mut self) -> Result<(), ChunkedError> {
        if let Framing::SignedWithTrailer(signing) = &self.framing {
            let given = self.trailer_signature.ok_or(ChunkedError::MissingTrailerSignature)?;
            let expected = signing.trailer_signature(&self.previous_signature, &self.canonical_trailers);
            if !bool::from(expected.ct_eq(&given)) {
                return Err(ChunkedError::TrailerSignatureMismatch);
            }
        }
        self.state = State::Done;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::vec;

    use proptest::prelude::*;

    use super::*;
    use crate::sigv4::signing_key;

    fn doc_signing(seed: &str) -> ChunkSigning {
        ChunkSigning {
            signing_key: signing_key(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3"),
            timestamp: String::from("20130524T000000Z"),
            scope: String::from("20130524/us-east-1/s3/aws4_request"),
            seed_signature: hex::decode32(seed.as_bytes()).unwrap(),
        }
    }

    /// The body of the S3 documentation's chunked examples: 65536 and 1024
    /// bytes of `a`, then the final chunk, then `trailers` (with CRLFs).
    fn doc_body(signatures: [&str; 3], trailers: &str) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(format!("10000;chunk-signature={}\r\n", signatures[0]).as_bytes());
        body.extend_from_slice(&[b'a'; 65_536]);
        body.extend_from_slice(format!("\r\n400;chunk-signature={}\r\n", signatures[1]).as_bytes());
        body.extend_from_slice(&[b'a'; 1024]);
        body.extend_from_slice(format!("\r\n0;chunk-signature={}\r\n", signatures[2]).as_bytes());
        body.extend_from_slice(trailers.as_bytes());
        body.extend_from_slice(b"\r\n");
        body
    }

    const DOC_SIGNATURES: [&str; 3] = [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ];
    const DOC_SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    const DOC_TRAILER_SIGNATURES: [&str; 3] = [
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
    ];
    const DOC_TRAILER_SEED: &str = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";
    const DOC_TRAILERS: &str = "x-amz-checksum-crc32c:sOO8/Q==\r\n\
        x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n";

    /// What a caller saw: the data, the trailers and how it ended.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        data: Vec<u8>,
        trailers: Vec<(String, String)>,
        result: Result<(), ChunkedError>,
    }

    /// Drives `decoder` like a connection would: `body` arrives in pieces
    /// of `piece` bytes into a buffer; consumed bytes are dropped.
    fn decode(mut decoder: ChunkedDecoder, body: &[u8], piece: usize) -> Outcome {
        let mut buffer = Vec::new();
        let mut fed = 0;
        let mut data = Vec::new();
        let result = loop {
            let step = match decoder.advance(&buffer) {
                Ok(step) => step,
                Err(error) => break Err(error),
            };
            let (consumed, need_more, end) = match step.event {
                Event::Data(bytes) => {
                    data.extend_from_slice(bytes);
                    (step.consumed, false, false)
                }
                Event::NeedMore => (step.consumed, true, false),
                Event::End => (step.consumed, false, true),
            };
            buffer.drain(..consumed);
            if end && !buffer.is_empty() {
                continue;
            }
            if (need_more || (end && buffer.is_empty())) && fed < body.len() {
                let next = (fed + piece).min(body.len());
                buffer.extend_from_slice(&body[fed..next]);
                fed = next;
            } else if need_more || end {
                break decoder.finish();
            }
        };
        Outcome { data, trailers: decoder.trailers().to_vec(), result }
    }

    fn decoder(framing: Framing, length: u64) -> ChunkedDecoder {
        ChunkedDecoder::new(framing, length, Limits::default())
    }

    #[test]
    fn s3_documentation_example() {
        let body = doc_body(DOC_SIGNATURES, "");
        assert_eq!(body.len(), 66_824, "the documented Content-Length");
        let outcome = decode(decoder(Framing::Signed(doc_signing(DOC_SEED)), 66_560), &body, body.len());
        assert_eq!(outcome.result, Ok(()));
        assert_eq!(outcome.data, vec![b'a'; 66_560]);
        assert!(outcome.trailers.is_empty());
    }

    #[test]
    fn s3_documentation_trailer_example() {
        let body = doc_body(DOC_TRAILER_SIGNATURES, DOC_TRAILERS);
        let framing = Framing::SignedWithTrailer(doc_signing(DOC_TRAILER_SEED));
        let outcome = decode(decoder(framing, 66_560), &body, body.len());
        assert_eq!(outcome.result, Ok(()));
        assert_eq!(outcome.data, vec![b'a'; 66_560]);
        assert_eq!(outcome.trailers, vec![(String::from("x-amz-checksum-crc32c"), String::from("sOO8/Q=="))]);
        // The CRC32C of the data is what the trailer says.
        let crc = crate::checksum::Checksummer::digest(crate::checksum::ChecksumAlgorithm::Crc32c, &outcome.data);
        assert_eq!(crc, "sOO8/Q==");
    }

    #[test]
    fn split_invariance() {
        let cases = [
            (Framing::Signed(doc_signing(DOC_SEED)), doc_body(DOC_SIGNATURES, "")),
            (Framing::SignedWithTrailer(doc_signing(DOC_TRAILER_SEED)), doc_body(DOC_TRAILER_SIGNATURES, DOC_TRAILERS)),
        ];
        for (framing, body) in cases {
            let whole = decode(decoder(framing.clone(), 66_560), &body, body.len());
            assert_eq!(whole.result, Ok(()));
            for piece in [1, 2, 3, 7, 85, 86, 4096, 65_537] {
                assert_eq!(decode(decoder(framing.clone(), 66_560), &body, piece), whole, "pieces of {piece}");
            }
        }
    }

    #[test]
    fn tampering_is_detected() {
        let framing = || Framing::Signed(doc_signing(DOC_SEED));
        let body = doc_body(DOC_SIGNATURES, "");
        // A data byte: the data is handed out, then the chunk fails.
        let mut tampered = body.clone();
        tampered[100] = b'b';
        let outcome = decode(decoder(framing(), 66_560), &tampered, 1000);
        assert_eq!(outcome.result, Err(ChunkedError::SignatureMismatch));
        assert_eq!(outcome.data.len(), 65_536);
        // A signature digit of each chunk.
        for at in [30, 65_536 + 85 + 2 + 30, body.len() - 10] {
            let mut tampered = body.clone();
            tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
            assert_eq!(
                decode(decoder(framing(), 66_560), &tampered, 4096).result,
                Err(ChunkedError::SignatureMismatch)
            );
        }
        // Another seed (another request's signature).
        let other = Framing::Signed(doc_signing(DOC_TRAILER_SEED));
        assert_eq!(decode(decoder(other, 66_560), &body, body.len()).result, Err(ChunkedError::SignatureMismatch));
        // Chunks swapped or dropped break the chain.
        let mut reordered = Vec::new();
        reordered.extend_from_slice(format!("400;chunk-signature={}\r\n", DOC_SIGNATURES[1]).as_bytes());
        reordered.extend_from_slice(&[b'a'; 1024]);
        reordered.extend_from_slice(b"\r\n");
        assert_eq!(decode(decoder(framing(), 1024), &reordered, 100).result, Err(ChunkedError::SignatureMismatch));
        // The trailer value and the trailer signature.
        let trailer_framing = || Framing::SignedWithTrailer(doc_signing(DOC_TRAILER_SEED));
        let body = doc_body(DOC_TRAILER_SIGNATURES, &DOC_TRAILERS.replace("sOO8", "sOO9"));
        assert_eq!(
            decode(decoder(trailer_framing(), 66_560), &body, 512).result,
            Err(ChunkedError::TrailerSignatureMismatch)
        );
        let body = doc_body(DOC_TRAILER_SIGNATURES, &DOC_TRAILERS.replace("d81f", "d81e"));
        assert_eq!(
            decode(decoder(trailer_framing(), 66_560), &body, 512).result,
            Err(ChunkedError::TrailerSignatureMismatch)
        );
        let body = doc_body(DOC_TRAILER_SIGNATURES, "x-amz-checksum-crc32c:sOO8/Q==\r\n");
        assert_eq!(
            decode(decoder(trailer_framing(), 66_560), &body, 512).result,
            Err(ChunkedError::MissingTrailerSignature)
        );
        let body = doc_body(DOC_TRAILER_SIGNATURES, &format!("{DOC_TRAILERS}x-late:1\r\n"));
        assert_eq!(decode(decoder(trailer_framing(), 66_560), &body, 512).result, Err(ChunkedError::InvalidTrailer));
    }

    #[test]
    fn truncation_and_length() {
        let framing = || Framing::Signed(doc_signing(DOC_SEED));
        let body = doc_body(DOC_SIGNATURES, "");
        for cut in [0, 1, 50, 87, 65_000, 66_700, body.len() - 2, body.len() - 1] {
            let outcome = decode(decoder(framing(), 66_560), &body[..cut], 4096);
            assert_eq!(outcome.result, Err(ChunkedError::Truncated), "cut at {cut}");
        }
        assert_eq!(decode(decoder(framing(), 66_559), &body, 4096).result, Err(ChunkedError::LengthMismatch));
        assert_eq!(decode(decoder(framing(), 66_561), &body, 4096).result, Err(ChunkedError::LengthMismatch));
        let mut trailing = body.clone();
        trailing.extend_from_slice(b"x");
        assert_eq!(decode(decoder(framing(), 66_560), &trailing, 4096).result, Err(ChunkedError::TrailingData));
        // A failed decoder stays failed.
        let mut failed = decoder(framing(), 66_560);
        assert_eq!(failed.advance(b"zz;chunk-signature=\r\n"), Err(ChunkedError::InvalidChunkHeader));
        assert_eq!(failed.advance(&body), Err(ChunkedError::InvalidChunkHeader));
        assert_eq!(failed.finish(), Err(ChunkedError::InvalidChunkHeader));
    }

    #[test]
    fn malformed_framing() {
        let unsigned = |body: &[u8], length| decode(decoder(Framing::UnsignedWithTrailer, length), body, 3).result;
        assert_eq!(unsigned(b"3\r\nabc\r\n0\r\n\r\n", 3), Ok(()));
        assert_eq!(unsigned(b"3\r\nabcX\n0\r\n\r\n", 3), Err(ChunkedError::InvalidFraming));
        assert_eq!(unsigned(b"3;chunk-signature=00\r\nabc\r\n", 3), Err(ChunkedError::InvalidChunkHeader));
        assert_eq!(unsigned(b"\r\n", 0), Err(ChunkedError::InvalidChunkHeader));
        assert_eq!(unsigned(b"-1\r\n", 0), Err(ChunkedError::InvalidChunkHeader));
        assert_eq!(unsigned(b"10000000000000000\r\n", 0), Err(ChunkedError::InvalidChunkHeader));
        assert_eq!(unsigned(b"1000001\r\n", 1 << 30), Err(ChunkedError::ChunkTooLarge));
        assert_eq!(unsigned(b"0\r\nno-colon\r\n\r\n", 0), Err(ChunkedError::InvalidTrailer));
        assert_eq!(unsigned(b"0\r\n:empty-name\r\n\r\n", 0), Err(ChunkedError::InvalidTrailer));
        let signature = format!("0\r\nx-amz-trailer-signature:{}\r\n\r\n", "0".repeat(64));
        assert_eq!(unsigned(signature.as_bytes(), 0), Err(ChunkedError::InvalidTrailer));
        let long = vec![b'1'; 5000];
        assert_eq!(unsigned(&long, 0), Err(ChunkedError::LineTooLong));
        let mut many = Vec::from(&b"0\r\n"[..]);
        for i in 0..9 {
            many.extend_from_slice(format!("x-amz-t{i}:v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(unsigned(&many, 0), Err(ChunkedError::TooManyTrailers));
        let signed = |body: &[u8]| decode(decoder(Framing::Signed(doc_signing(DOC_SEED)), 3), body, 5).result;
        assert_eq!(signed(b"3\r\nabc\r\n"), Err(ChunkedError::InvalidChunkHeader));
        assert_eq!(signed(b"3;chunk-signature=abc\r\nabc\r\n"), Err(ChunkedError::InvalidChunkHeader));
        assert_eq!(signed(b"3;chunk-sig=abc\r\nabc\r\n"), Err(ChunkedError::InvalidChunkHeader));
        for error in [ChunkedError::SignatureMismatch, ChunkedError::Truncated, ChunkedError::LineTooLong] {
            assert!(!error.s3_code().is_empty() && error.http_status() >= 400);
        }
    }

    /// Encodes `payload` in `chunk`-byte chunks the way an SDK does.
    fn encode(framing: &Framing, payload: &[u8], chunk: usize, trailers: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut previous = framing.signing().map(|s| s.seed_signature);
        let chunks = payload.chunks(chunk.max(1)).chain(core::iter::once(&[][..]));
        for data in chunks {
            body.extend_from_slice(format!("{:x}", data.len()).as_bytes());
            if let (Some(signing), Some(prev)) = (framing.signing(), previous.as_mut()) {
                let signature = signing.chunk_signature(prev, &Sha256::digest(data).into());
                body.extend_from_slice(format!(";chunk-signature={}", hex::encode(&signature)).as_bytes());
                *prev = signature;
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(data);
            if !data.is_empty() {
                body.extend_from_slice(b"\r\n");
            }
        }
        let mut canonical = Vec::new();
        for (name, value) in trailers {
            body.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
            canonical.extend_from_slice(format!("{name}:{value}\n").as_bytes());
        }
        if let (Framing::SignedWithTrailer(signing), Some(prev)) = (framing, previous) {
            let signature = signing.trailer_signature(&prev, &canonical);
            body.extend_from_slice(format!("x-amz-trailer-signature:{}\r\n", hex::encode(&signature)).as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every variant decodes to exactly the payload, whatever the chunk
        /// and piece sizes: no framing, signature or trailer byte leaks in.
        #[test]
        fn round_trip(
            payload in proptest::collection::vec(any::<u8>(), 0..20_000),
            chunk in 1usize..6000,
            piece in 1usize..3000,
            variant in 0usize..3,
        ) {
            let framing = match variant {
                0 => Framing::Signed(doc_signing(DOC_SEED)),
                1 => Framing::SignedWithTrailer(doc_signing(DOC_TRAILER_SEED)),
                _ => Framing::UnsignedWithTrailer,
            };
            let trailers: &[(&str, &str)] = if variant == 0 { &[] } else { &[("x-amz-checksum-crc32", "AAAAAA==")] };
            let body = encode(&framing, &payload, chunk, trailers);
            let outcome = decode(decoder(framing, payload.len() as u64), &body, piece);
            prop_assert_eq!(outcome.result, Ok(()));
            prop_assert_eq!(outcome.data, payload);
            let expected: Vec<(String, String)> =
                trailers.iter().map(|(n, v)| (String::from(*n), String::from(*v))).collect();
            prop_assert_eq!(outcome.trailers, expected);
        }

        /// Garbage never panics and never decodes.
        #[test]
        fn garbage(body in proptest::collection::vec(any::<u8>(), 0..400), piece in 1usize..50, variant in 0usize..3) {
            let framing = match variant {
                0 => Framing::Signed(doc_signing(DOC_SEED)),
                1 => Framing::SignedWithTrailer(doc_signing(DOC_TRAILER_SEED)),
                _ => Framing::UnsignedWithTrailer,
            };
            let outcome = decode(decoder(framing, 1000), &body, piece);
            prop_assert!(outcome.result.is_err());
        }
    }
}
