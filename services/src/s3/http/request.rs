//! The server side of HTTP/1.1 message framing (RFC 9112), as a state machine
//! the connection drives: it appends received bytes to its buffer, calls
//! [`RequestParser::advance`] with the unconsumed part, drops the
//! [`Step::consumed`] prefix and acts on the [`Event`]. Nothing blocks,
//! nothing is read behind the caller's back, and body bytes are handed out as
//! slices of the caller's buffer.
//!
//! The parser keeps no copy of the input, so on [`Event::NeedMore`] the caller
//! must present the unconsumed bytes again, with more appended. A buffer of
//! [`Limits::max_head_bytes`] is enough: a head, a chunk-size line or a
//! trailer section that does not fit is an error anyway.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Bounds on what one request may make us hold or process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus header section, and separately the trailer section.
    pub max_head_bytes: usize,
    /// Header fields in the head, and separately in the trailers.
    pub max_headers: usize,
    /// Payload after removing HTTP chunking. S3's own limits (5 GiB per PUT)
    /// are enforced above, on the decoded aws-chunked length; this one only
    /// bounds the work a single request can cause.
    pub max_body_bytes: u64,
    /// A chunk-size line including chunk extensions.
    pub max_chunk_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            // 5 GiB of object plus room for aws-chunked signatures.
            max_body_bytes: 5 * (1 << 30) + (1 << 28),
            max_chunk_line_bytes: 4096,
        }
    }
}

/// Why a request cannot be served. After an error the parser stays failed:
/// the framing is lost, so the connection must be answered and closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    HeadTooLarge,
    TooManyHeaders,
    /// Bad method token or request-target characters.
    InvalidRequestLine,
    /// A well-formed method this server does not implement.
    UnsupportedMethod,
    /// Not origin-form (`/path?query`).
    InvalidTarget,
    UnsupportedVersion,
    /// Any other syntax error in the head.
    MalformedHead,
    /// A header or trailer value that is not UTF-8.
    InvalidHeaderValue,
    /// HTTP/1.1 requires exactly one `Host`.
    InvalidHost,
    InvalidContentLength,
    ConflictingContentLength,
    /// Both `Content-Length` and `Transfer-Encoding`: a smuggling vector.
    ContentLengthWithTransferEncoding,
    /// `chunked` not last, not exactly once, or used with HTTP/1.0.
    InvalidTransferEncoding,
    /// A transfer coding other than `chunked` (gzip, ...).
    UnsupportedTransferEncoding,
    InvalidChunkSize,
    /// Chunk data not followed by CRLF.
    InvalidChunkFraming,
    ChunkLineTooLong,
    TrailersTooLarge,
    BodyTooLarge,
}

impl HttpError {
    /// The status to answer with (then close the connection).
    pub const fn status(self) -> u16 {
        match self {
            HttpError::HeadTooLarge | HttpError::TooManyHeaders | HttpError::TrailersTooLarge => 431,
            HttpError::UnsupportedMethod | HttpError::UnsupportedTransferEncoding => 501,
            HttpError::UnsupportedVersion => 505,
            HttpError::BodyTooLarge => 413,
            HttpError::InvalidRequestLine
            | HttpError::InvalidTarget
            | HttpError::MalformedHead
            | HttpError::InvalidHeaderValue
            | HttpError::InvalidHost
            | HttpError::InvalidContentLength
            | HttpError::ConflictingContentLength
            | HttpError::ContentLengthWithTransferEncoding
            | HttpError::InvalidTransferEncoding
            | HttpError::InvalidChunkSize
            | HttpError::InvalidChunkFraming
            | HttpError::ChunkLineTooLong => 400,
        }
    }
}

impl core::fmt::Display for HttpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{self:?} ({})", self.status())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Put,
    Post,
    Delete,
    Options,
}

impl Method {
    fn from_token(token: &str) -> Option<Self> {
        Some(match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// Header fields as received (names keep their case, order and repeats, as
/// SigV4 needs them), with case-insensitive lookup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    /// Every value of `name`, in order.
    pub fn get_all<'h, 'n>(&'h self, name: &'n str) -> impl Iterator<Item = &'h str> + use<'h, 'n> {
        self.0.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether the comma-separated list in any `name` field contains `token`
    /// (case-insensitive), as for `Connection: keep-alive, Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How the request body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No `Content-Length` nor `Transfer-Encoding`: the body is empty. S3
    /// operations that need a body answer `MissingContentLength` (411); the
    /// codec cannot tell, since e.g. `CreateBucket` is a PUT without one.
    None,
    Length(u64),
    Chunked,
}

/// A parsed request line and header section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// The request-target exactly as sent, still percent-encoded.
    pub target: String,
    pub version: Version,
    pub headers: Headers,
    pub body: BodyFraming,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1: send [`super::CONTINUE`] before
    /// reading the body, unless answering with a final status first.
    pub expect_continue: bool,
}

impl RequestHead {
    /// The target up to `?`, percent-encoded.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(path, _)| path)
    }

    /// The target after `?`, percent-encoded; `None` without `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }
}

/// What the parser has to tell the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Present the unconsumed bytes again with more appended.
    NeedMore,
    Head(RequestHead),
    /// Body bytes with HTTP chunking removed: a slice of the input.
    Body(&'a [u8]),
    /// The request is complete; the next bytes belong to the next request.
    /// Trailer fields of a chunked body, if any, come with it.
    BodyEnd {
        trailers: Headers,
    },
}

/// The result of one [`RequestParser::advance`]: drop `consumed` bytes from
/// the front of the buffer, then handle `event`.
#[derive(Debug, PartialEq, Eq)]
pub struct Step<'a> {
    pub consumed: usize,
    pub event: Event<'a>,
}

#[derive(Clone, Debug)]
enum State {
    Head,
    FixedBody { remaining: u64 },
    ChunkSize,
    ChunkData { remaining: u64 },
    ChunkDataEnd,
    Trailers,
    Failed(HttpError),
}

/// One connection's request framing; see the module documentation.
#[derive(Clone, Debug)]
pub struct RequestParser {
    limits: Limits,
    state: State,
    /// Chunked bytes of the current body so far, for `max_body_bytes`.
    body_received: u64,
    /// How far a previous call scanned the re-presented head without finding
    /// its end, so that byte-by-byte arrival stays linear.
    head_scanned: usize,
}

/// Either an event for the caller, or bytes consumed with nothing to report
/// yet (a chunk-size line), after which the parser goes on.
enum Progress<'a> {
    Event(usize, Event<'a>),
    Consumed(usize),
}

impl RequestParser {
    pub fn new(limits: Limits) -> Self {
        Self { limits, state: State::Head, body_received: 0, head_scanned: 0 }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the parser sits between requests: nothing of a next request
    /// was consumed yet, so closing the connection here loses nothing.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head)
    }

    /// Consumes a prefix of `input` and reports what it contained.
    pub fn advance<'a>(&mut self, input: &'a [u8]) -> Result<Step<'a>, HttpError> {
        let mut consumed = 0;
        loop {
            match self.progress(&input[consumed..]) {
                Ok(Progress::Consumed(n)) => consumed += n,
                Ok(Progress::Event(n, event)) => return Ok(Step { consumed: consumed + n, event }),
                Err(error) => {
                    self.state = State::Failed(error);
                    return Err(error);
                }
            }
        }
    }

    fn progress<'a>(&mut self, input: &'a [u8]) -> Result<Progress<'a>, HttpError> {
        match self.state {
            State::Failed(error) => Err(error),
            State::Head => self.head(input),
            State::FixedBody { remaining: 0 } => {
                self.state = State::Head;
                Ok(Progress::Event(0, Event::BodyEnd { trailers: Headers::new() }))
            }
            State::FixedBody { remaining } | State::ChunkData { remaining } => {
                if input.is_empty() {
                    return Ok(Progress::Event(0, Event::NeedMore));
                }
                let n = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
                let remaining = remaining - n as u64;
                self.state = match self.state {
                    State::FixedBody { .. } => State::FixedBody { remaining },
                    _ if remaining == 0 => State::ChunkDataEnd,
                    _ => State::ChunkData { remaining },
                };
                Ok(Progress::Event(n, Event::Body(&input[..n])))
            }
            State::ChunkSize => self.chunk_size(input),
            State::ChunkDataEnd => match input {
                [b'\r', b'\n', ..] => {
                    self.state = State::ChunkSize;
                    Ok(Progress::Consumed(2))
                }
                [] | [b'\r'] => Ok(Progress::Event(0, Event::NeedMore)),
                _ => Err(HttpError::InvalidChunkFraming),
            },
            State::Trailers => self.trailers(input),
        }
    }

    fn head<'a>(&mut self, input: &'a [u8]) -> Result<Progress<'a>, HttpError> {
        // RFC 9112 §2.2: ignore empty lines before a request-line.
        match input {
            [b'\r', b'\n', ..] => return Ok(Progress::Consumed(2)),
            [b'\n', ..] => return Ok(Progress::Consumed(1)),
            [] | [b'\r'] => return Ok(Progress::Event(0, Event::NeedMore)),
            _ => {}
        }
        let from = self.head_scanned.min(input.len());
        let Some(end) = find_section_end(input, from, self.limits.max_head_bytes) else {
            if input.len() >= self.limits.max_head_bytes {
                return Err(HttpError::HeadTooLarge);
            }
            // The last two bytes may begin the terminator.
            self.head_scanned = input.len().saturating_sub(2);
            return Ok(Progress::Event(0, Event::NeedMore));
        };
        self.head_scanned = 0;
        let head = self.parse_head(&input[..end])?;
        self.body_received = 0;
        self.state = match head.body {
            BodyFraming::None => State::FixedBody { remaining: 0 },
            BodyFraming::Length(length) => State::FixedBody { remaining: length },
            BodyFraming::Chunked => State::ChunkSize,
        };
        Ok(Progress::Event(end, Event::Head(head)))
    }

    fn parse_head(&self, bytes: &[u8]) -> Result<RequestHead, HttpError> {
        let mut fields = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let mut request = httparse::Request::new(&mut fields);
        match request.parse(bytes) {
            Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
            Ok(_) => return Err(HttpError::MalformedHead),
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
            Err(httparse::Error::Version) => return Err(HttpError::UnsupportedVersion),
            Err(httparse::Error::Token) => return Err(HttpError::InvalidRequestLine),
            Err(_) => return Err(HttpError::MalformedHead),
        }
        let method = request.method.ok_or(HttpError::MalformedHead)?;
        let method = Method::from_token(method).ok_or(HttpError::UnsupportedMethod)?;
        let target = request.path.ok_or(HttpError::MalformedHead)?;
        if !target.starts_with('/') {
            return Err(HttpError::InvalidTarget);
        }
        let version = match request.version {
            Some(0) => Version::Http10,
            Some(1) => Version::Http11,
            _ => return Err(HttpError::UnsupportedVersion),
        };
        let headers = owned_headers(request.headers)?;
        if version == Version::Http11 && headers.get_all("host").count() != 1 {
            return Err(HttpError::InvalidHost);
        }
        let body = self.body_framing(version, &headers)?;
        let keep_alive = match version {
            Version::Http11 => !headers.has_token("connection", "close"),
            Version::Http10 => {
                headers.has_token("connection", "keep-alive") && !headers.has_token("connection", "close")
            }
        };
        let expect_continue = version == Version::Http11
            && headers.get("expect").is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
        Ok(RequestHead { method, target: String::from(target), version, headers, body, keep_alive, expect_continue })
    }

    fn body_framing(&self, version: Version, headers: &Headers) -> Result<BodyFraming, HttpError> {
        let mut length = None;
        for value in headers.get_all("content-length").flat_map(|v| v.split(',')) {
            let value = value.trim();
            if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::InvalidContentLength);
            }
            let value: u64 = value.parse().map_err(|_| HttpError::InvalidContentLength)?;
            if length.is_some_and(|previous| previous != value) {
                return Err(HttpError::ConflictingContentLength);
            }
            length = Some(value);
        }
        if headers.contains("transfer-encoding") {
            if length.is_some() {
                return Err(HttpError::ContentLengthWithTransferEncoding);
            }
            if version == Version::Http10 {
                return Err(HttpError::InvalidTransferEncoding);
            }
            let codings: Vec<&str> =
                headers.get_all("transfer-encoding").flat_map(|v| v.split(',')).map(str::trim).collect();
            let is_chunked = |c: &&str| c.eq_ignore_ascii_case("chunked");
            return match codings.as_slice() {
                [only] if is_chunked(only) => Ok(BodyFraming::Chunked),
                [.., last] if is_chunked(last) && codings.iter().filter(|c| is_chunked(c)).count() == 1 => {
                    Err(HttpError::UnsupportedTransferEncoding)
                }
                _ => Err(HttpError::InvalidTransferEncoding),
            };
        }
        match length {
            Some(length) if length > self.limits.max_body_bytes => Err(HttpError::BodyTooLarge),
            Some(length) => Ok(BodyFraming::Length(length)),
            None => Ok(BodyFraming::None),
        }
    }

    fn chunk_size<'a>(&mut self, input: &'a [u8]) -> Result<Progress<'a>, HttpError> {
        let window = &input[..input.len().min(self.limits.max_chunk_line_bytes)];
        let Some(newline) = window.iter().position(|&b| b == b'\n') else {
            if input.len() >= self.limits.max_chunk_line_bytes {
                return Err(HttpError::ChunkLineTooLong);
            }
            return Ok(Progress::Event(0, Event::NeedMore));
        };
        let line = window[..newline].strip_suffix(b"\r").ok_or(HttpError::InvalidChunkSize)?;
        let size = parse_chunk_size(line)?;
        if size == 0 {
            self.state = State::Trailers;
        } else {
            self.body_received = self.body_received.saturating_add(size);
            if self.body_received > self.limits.max_body_bytes {
                return Err(HttpError::BodyTooLarge);
            }
            self.state = State::ChunkData { remaining: size };
        }
        Ok(Progress::Consumed(newline + 1))
    }

    fn trailers<'a>(&mut self, input: &'a [u8]) -> Result<Progress<'a>, HttpError> {
        let end = match input {
            [b'\r', b'\n', ..] => 2,
            [b'\n', ..] => 1,
            [] | [b'\r'] => return Ok(Progress::Event(0, Event::NeedMore)),
            _ => match find_section_end(input, 0, self.limits.max_head_bytes) {
                Some(end) => end,
                None if input.len() >= self.limits.max_head_bytes => return Err(HttpError::TrailersTooLarge),
                None => return Ok(Progress::Event(0, Event::NeedMore)),
            },
        };
        let mut fields = vec![httparse::EMPTY_HEADER; self.limits.max_headers];
        let trailers = match httparse::parse_headers(&input[..end], &mut fields) {
            Ok(httparse::Status::Complete((n, parsed))) if n == end => owned_headers(parsed)?,
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TrailersTooLarge),
            _ => return Err(HttpError::MalformedHead),
        };
        self.state = State::Head;
        Ok(Progress::Event(end, Event::BodyEnd { trailers }))
    }
}

/// The end (exclusive) of a header section, the empty line included, if it
/// lies within the first `limit` bytes. `from` skips bytes a previous call
/// already searched; the result does not depend on how input was split.
fn find_section_end(input: &[u8], from: usize, limit: usize) -> Option<usize> {
    let window = &input[..input.len().min(limit)];
    let mut i = from;
    while let Some(offset) = window.get(i..)?.iter().position(|&b| b == b'\n') {
        let newline = i + offset;
        match window.get(newline + 1..) {
            Some([b'\n', ..]) => return Some(newline + 2),
            Some([b'\r', b'\n', ..]) => return Some(newline + 3),
            _ => i = newline + 1,
        }
    }
    None
}

/// `1*HEXDIG [ BWS ";" chunk-ext ]` without the CRLF. Extensions carry
/// nothing we use (aws-chunked puts its signatures in the data), so they are
/// only checked for stray control bytes.
fn parse_chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(HttpError::InvalidChunkSize);
    }
    let mut size: u64 = 0;
    for &digit in &line[..digits] {
        let value = (digit as char).to_digit(16).ok_or(HttpError::InvalidChunkSize)?;
        size = size.checked_mul(16).and_then(|s| s.checked_add(u64::from(value))).ok_or(HttpError::InvalidChunkSize)?;
    }
    let rest = &line[digits..];
    let rest = &rest[rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count()..];
    let extension_ok = rest.first().is_none_or(|&b| b == b';')
        && rest.iter().all(|&b| b == b'\t' || (b' '..0x7f).contains(&b) || b >= 0x80);
    if !extension_ok {
        return Err(HttpError::InvalidChunkSize);
    }
    Ok(size)
}

fn owned_headers(fields: &[httparse::Header<'_>]) -> Result<Headers, HttpError> {
    let mut headers = Headers(Vec::with_capacity(fields.len()));
    for field in fields {
        let value = core::str::from_utf8(field.value).map_err(|_| HttpError::InvalidHeaderValue)?;
        headers.push(field.name, value.trim_matches([' ', '\t']));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// What a connection would see: events with body bytes owned and merged,
    /// and the error that ended the stream, if any.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Head(RequestHead),
        Body(Vec<u8>),
        End(Headers),
    }

    /// Feeds `input` in pieces of the given sizes (the rest at the end),
    /// keeping unconsumed bytes as a connection must.
    fn feed(limits: Limits, input: &[u8], sizes: impl IntoIterator<Item = usize>) -> (Vec<Seen>, Option<HttpError>) {
        let mut parser = RequestParser::new(limits);
        let mut buffer = Vec::new();
        let mut seen = Vec::new();
        let mut offset = 0;
        let mut sizes = sizes.into_iter();
        while offset < input.len() {
            let size = sizes.next().unwrap_or(input.len()).clamp(1, input.len() - offset);
            buffer.extend_from_slice(&input[offset..offset + size]);
            offset += size;
            loop {
                let step = match parser.advance(&buffer) {
                    Ok(step) => step,
                    Err(error) => return (seen, Some(error)),
                };
                let event = match step.event {
                    Event::NeedMore => None,
                    Event::Head(head) => Some(Seen::Head(head)),
                    Event::Body(data) => {
                        assert!(!data.is_empty());
                        if let Some(Seen::Body(body)) = seen.last_mut() {
                            body.extend_from_slice(data);
                            None
                        } else {
                            Some(Seen::Body(data.to_vec()))
                        }
                    }
                    Event::BodyEnd { trailers } => Some(Seen::End(trailers)),
                };
                let need_more = event.is_none() && step.consumed == 0;
                buffer.drain(..step.consumed);
                match event {
                    Some(event) => seen.push(event),
                    None if need_more => break,
                    None => {}
                }
            }
        }
        (seen, None)
    }

    fn all_at_once(input: &[u8]) -> (Vec<Seen>, Option<HttpError>) {
        feed(Limits::default(), input, [])
    }

    fn head(input: &[u8]) -> RequestHead {
        match all_at_once(input).0.into_iter().next() {
            Some(Seen::Head(head)) => head,
            other => panic!("{other:?}"),
        }
    }

    fn error(input: &[u8]) -> HttpError {
        all_at_once(input).1.unwrap()
    }

    /// A deterministic generator, so a failing split can be reproduced.
    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn assert_split_invariant(input: &[u8]) {
        let whole = all_at_once(input);
        assert_eq!(feed(Limits::default(), input, core::iter::repeat(1)), whole, "byte by byte");
        let mut random = XorShift(0x9e37_79b9_7f4a_7c15 ^ input.len() as u64);
        for _ in 0..50 {
            let sizes: Vec<usize> = (0..input.len()).map(|_| 1 + random.below(16)).collect();
            assert_eq!(feed(Limits::default(), input, sizes.clone()), whole, "sizes {sizes:?}");
        }
    }

    const PIPELINE: &[u8] = b"\r\nPUT /bucket/key?partNumber=1&uploadId=x HTTP/1.1\r\nHost: localhost\r\n\
        Content-Length: 5\r\nExpect: 100-continue\r\nX-Amz-Meta-A: 1\r\nx-amz-meta-a:  2 \r\n\r\nhello\
        POST /b?delete HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
        4;ext=\"v\"\r\nwiki\r\n5\r\npedia\r\n0\r\nx-amz-checksum-crc32: AAAAAA==\r\n\r\n\
        GET / HTTP/1.0\r\n\r\n";

    #[test]
    fn parses_pipelined_requests() {
        let (seen, error) = all_at_once(PIPELINE);
        assert_eq!(error, None);
        let [
            Seen::Head(put),
            Seen::Body(put_body),
            Seen::End(no_trailers),
            Seen::Head(post),
            Seen::Body(post_body),
            Seen::End(trailers),
            Seen::Head(get),
            Seen::End(_),
        ] = seen.as_slice()
        else {
            panic!("{seen:?}")
        };
        assert_eq!(put.method, Method::Put);
        assert_eq!(put.path(), "/bucket/key");
        assert_eq!(put.query(), Some("partNumber=1&uploadId=x"));
        assert_eq!(put.body, BodyFraming::Length(5));
        assert!(put.expect_continue && put.keep_alive);
        assert_eq!(put.headers.get("HOST"), Some("localhost"));
        assert_eq!(put.headers.get_all("x-amz-meta-a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(put_body, b"hello");
        assert!(no_trailers.is_empty());
        assert_eq!((post.method, post.body), (Method::Post, BodyFraming::Chunked));
        assert_eq!(post.query(), Some("delete"));
        assert_eq!(post_body, b"wikipedia");
        assert_eq!(trailers.get("X-Amz-Checksum-Crc32"), Some("AAAAAA=="));
        assert_eq!((get.method, get.version, get.keep_alive), (Method::Get, Version::Http10, false));
        assert_eq!(get.query(), None);
    }

    #[test]
    fn pipeline_is_split_invariant() {
        assert_split_invariant(PIPELINE);
    }

    #[test]
    fn errors_are_split_invariant() {
        for input in [
            &b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcdeX"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nbad trailer\r\n\r\n",
        ] {
            assert_split_invariant(input);
            assert!(all_at_once(input).1.is_some());
        }
    }

    #[test]
    fn body_slices_borrow_the_input() {
        let input = b"PUT /b/k HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcdef";
        let mut parser = RequestParser::new(Limits::default());
        let step = parser.advance(input).unwrap();
        assert!(matches!(step.event, Event::Head(_)));
        let rest = &input[step.consumed..];
        let step = parser.advance(rest).unwrap();
        let Event::Body(data) = step.event else { panic!() };
        assert_eq!(data.as_ptr(), rest.as_ptr());
        assert_eq!((data, step.consumed), (&b"abc"[..], 3));
        assert_eq!(
            parser.advance(&rest[3..]).unwrap(),
            Step { consumed: 0, event: Event::BodyEnd { trailers: Headers::new() } }
        );
        assert!(parser.is_idle());
        assert_eq!(parser.advance(&rest[3..]).unwrap(), Step { consumed: 0, event: Event::NeedMore });
    }

    #[test]
    fn keep_alive_rules() {
        assert!(head(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").keep_alive);
        assert!(!head(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, Close\r\n\r\n").keep_alive);
        assert!(!head(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!head(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expect_continue);
    }

    #[test]
    fn framing_rules() {
        assert_eq!(head(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 7, 7\r\n\r\n").body, BodyFraming::Length(7));
        assert_eq!(head(b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n").body, BodyFraming::Chunked);
        assert_eq!(head(b"DELETE / HTTP/1.1\r\nHost: h\r\n\r\n").body, BodyFraming::None);
        let cases: [(&[u8], HttpError); 12] = [
            (
                b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                HttpError::ConflictingContentLength,
            ),
            (b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\n", HttpError::ConflictingContentLength),
            (b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", HttpError::InvalidContentLength),
            (b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", HttpError::InvalidContentLength),
            (
                b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
                HttpError::InvalidContentLength,
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                HttpError::ContentLengthWithTransferEncoding,
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                HttpError::UnsupportedTransferEncoding,
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                HttpError::InvalidTransferEncoding,
            ),
            (
                b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                HttpError::InvalidTransferEncoding,
            ),
            (b"PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HttpError::InvalidTransferEncoding),
            (b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5368709121000\r\n\r\n", HttpError::BodyTooLarge),
            (b"PUT / HTTP/1.1\r\nContent-Length: 1\r\n\r\n", HttpError::InvalidHost),
        ];
        for (input, expected) in cases {
            assert_eq!(error(input), expected, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn request_line_errors() {
        let cases: [(&[u8], HttpError); 8] = [
            (b"PATCH / HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::UnsupportedMethod),
            (b"get / HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::UnsupportedMethod),
            (b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::InvalidRequestLine),
            (b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::InvalidTarget),
            (b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", HttpError::InvalidTarget),
            (b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", HttpError::UnsupportedVersion),
            (b"GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n", HttpError::MalformedHead),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: \xff\r\n\r\n", HttpError::InvalidHeaderValue),
        ];
        for (input, expected) in cases {
            assert_eq!(error(input), expected, "{}", String::from_utf8_lossy(input));
        }
        let statuses: Vec<u16> = cases.iter().map(|(_, e)| e.status()).collect();
        assert_eq!(statuses, [501, 501, 400, 400, 400, 505, 400, 400]);
    }

    #[test]
    fn head_limits() {
        let mut big = b"GET / HTTP/1.1\r\nHost: h\r\nX: ".to_vec();
        big.resize(16 * 1024, b'a');
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(error(&big), HttpError::HeadTooLarge);
        assert_eq!(feed(Limits::default(), &big, core::iter::repeat(1)).1, Some(HttpError::HeadTooLarge));
        assert_eq!(HttpError::HeadTooLarge.status(), 431);
        let mut many = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..100 {
            many.extend_from_slice(alloc::format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(error(&many), HttpError::TooManyHeaders);
        // Exactly at the limits is fine.
        let limits = Limits { max_head_bytes: 64, max_headers: 2, ..Limits::default() };
        let input = b"GET /0123456789 HTTP/1.1\r\nHost: h\r\nX-Long-Name: 012345678901\r\n\r\n";
        assert_eq!(input.len(), 64);
        assert_eq!(feed(limits, input, []).1, None);
    }

    #[test]
    fn chunked_errors() {
        let prefix = b"PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
        let cases: [(&[u8], HttpError); 7] = [
            (b"g\r\n", HttpError::InvalidChunkSize),
            (b"\r\n", HttpError::InvalidChunkSize),
            (b"1 x\r\n", HttpError::InvalidChunkSize),
            (b"1\n", HttpError::InvalidChunkSize),
            (b"10000000000000000\r\n", HttpError::InvalidChunkSize),
            (b"1;ext\x01\r\n", HttpError::InvalidChunkSize),
            (b"1\r\nab", HttpError::InvalidChunkFraming),
        ];
        for (body, expected) in cases {
            let input = [&prefix[..], body].concat();
            assert_eq!(error(&input), expected, "{}", String::from_utf8_lossy(body));
        }
        let long_extension = [&prefix[..], b"1;", &vec![b'x'; 5000], b"\r\n"].concat();
        assert_eq!(error(&long_extension), HttpError::ChunkLineTooLong);
        let limits = Limits { max_body_bytes: 10, ..Limits::default() };
        let too_much = [&prefix[..], b"6\r\nabcdef\r\n5\r\nabcde\r\n0\r\n\r\n"].concat();
        assert_eq!(feed(limits, &too_much, []).1, Some(HttpError::BodyTooLarge));
        let just_right = [&prefix[..], b"6\r\nabcdef\r\n4\r\nabcd\r\n0\r\n\r\n"].concat();
        assert_eq!(feed(limits, &just_right, []).1, None);
    }

    #[test]
    fn failed_parser_stays_failed() {
        let mut parser = RequestParser::new(Limits::default());
        assert_eq!(parser.advance(b"BREW / HTTP/1.1\r\n\r\n"), Err(HttpError::UnsupportedMethod));
        assert_eq!(parser.advance(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), Err(HttpError::UnsupportedMethod));
    }
}
