//! Response heads and chunked transfer coding, serialized into the caller's
//! buffer. Bodies are never copied here: the caller writes them after the
//! head, framed with [`chunk_head`] and [`CHUNK_END`] when streaming.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::request::HttpError;

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Follows the data of every chunk.
pub const CHUNK_END: &[u8] = b"\r\n";

/// Ends a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How the body that follows the head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    /// `Content-Length: n`; also right for HEAD, which announces the length
    /// of the body a GET would carry and sends none.
    Length(u64),
    /// `Transfer-Encoding: chunked`, for streaming bodies of unknown length.
    Chunked,
    /// No framing header: 1xx, 204 and 304 responses.
    NoBody,
}

/// A status and header fields, in the order added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self { status, headers: Vec::new() }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Adds a field. Names and values can echo client input (user metadata),
    /// so bytes that could end the field or the head are replaced rather
    /// than trusted: no response splitting whatever the caller passes.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        let name = name.chars().map(|c| if is_token_char(c) { c } else { '-' }).collect();
        let value = value.chars().map(|c| if c == '\t' || !c.is_control() { c } else { ' ' }).collect();
        self.headers.push((name, value));
        self
    }

    /// `Connection: close`, when the request asked for it or the server
    /// will not read another request on this connection.
    pub fn close(&mut self) -> &mut Self {
        self.header("Connection", "close")
    }

    /// Appends the status line, the fields and the framing field.
    pub fn encode(&self, framing: ResponseFraming, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", self.status, reason_phrase(self.status)).as_bytes());
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        // RFC 9110 §8.6: 1xx and 204 never carry Content-Length.
        let forbids_length = self.status < 200 || self.status == 204;
        match framing {
            ResponseFraming::Length(_) | ResponseFraming::Chunked if forbids_length => {}
            ResponseFraming::Length(length) => {
                out.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes())
            }
            ResponseFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            ResponseFraming::NoBody => {}
        }
        out.extend_from_slice(b"\r\n");
    }

    pub fn to_bytes(&self, framing: ResponseFraming) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(framing, &mut out);
        out
    }
}

impl HttpError {
    /// The bare answer to a request that could not be framed: no S3 XML,
    /// since there is no S3 request to speak of, and the connection closes.
    /// The caller adds `Date` and encodes it with `ResponseFraming::Length(0)`.
    pub fn to_response(self) -> Response {
        let mut response = Response::new(self.status());
        response.close();
        response
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The reason phrase for the statuses this server sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// The size line that precedes a chunk of `len` bytes: `{len:x}\r\n`.
/// Never frame an empty chunk this way: size 0 ends the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHead {
    bytes: [u8; 18],
    len: u8,
}

impl ChunkHead {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

pub fn chunk_head(len: usize) -> ChunkHead {
    let mut bytes = [0; 18];
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, byte) in bytes[..digits].iter_mut().enumerate() {
        let nibble = (len >> (4 * (digits - 1 - i))) & 0xf;
        *byte = b"0123456789abcdef"[nibble];
    }
    bytes[digits] = b'\r';
    bytes[digits + 1] = b'\n';
    ChunkHead { bytes, len: (digits + 2) as u8 }
}

/// Appends `data` as one chunk; nothing for empty data, which would end the
/// body early.
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(chunk_head(data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(CHUNK_END);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_head_with_length() {
        let mut response = Response::new(200);
        response.header("ETag", "\"abc\"").header("x-amz-request-id", "r1");
        assert_eq!(
            response.to_bytes(ResponseFraming::Length(5)),
            b"HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nx-amz-request-id: r1\r\nContent-Length: 5\r\n\r\n"
        );
    }

    #[test]
    fn encodes_chunked_and_bodyless() {
        let bytes = Response::new(200).to_bytes(ResponseFraming::Chunked);
        assert_eq!(bytes, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let bytes = Response::new(204).to_bytes(ResponseFraming::Length(0));
        assert_eq!(bytes, b"HTTP/1.1 204 No Content\r\n\r\n");
        let bytes = Response::new(304).to_bytes(ResponseFraming::NoBody);
        assert_eq!(bytes, b"HTTP/1.1 304 Not Modified\r\n\r\n");
    }

    #[test]
    fn header_cannot_split_the_response() {
        let mut response = Response::new(200);
        response.header("x-amz-meta-a\r\nInjected", "v\r\nSet-Cookie: x");
        assert_eq!(
            response.to_bytes(ResponseFraming::NoBody),
            b"HTTP/1.1 200 OK\r\nx-amz-meta-a--Injected: v  Set-Cookie: x\r\n\r\n"
        );
    }

    #[test]
    fn chunk_heads() {
        assert_eq!(chunk_head(1).as_bytes(), b"1\r\n");
        assert_eq!(chunk_head(0x10).as_bytes(), b"10\r\n");
        assert_eq!(chunk_head(65536).as_bytes(), b"10000\r\n");
        assert_eq!(chunk_head(usize::MAX).as_bytes(), b"ffffffffffffffff\r\n");
        let mut out = Vec::new();
        encode_chunk(b"", &mut out);
        encode_chunk(b"hello", &mut out);
        out.extend_from_slice(LAST_CHUNK);
        assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
    }

    #[test]
    fn error_response_closes() {
        let bytes = HttpError::HeadTooLarge.to_response().to_bytes(ResponseFraming::Length(0));
        assert_eq!(
            bytes,
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
