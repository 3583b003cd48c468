//! One connection's bytes: the receive buffer, the request parser and the
//! transport, with every read bounded by a timeout. Handlers pull request
//! bodies through [`ConnIo::read_body`]; nothing is read behind their back.

use alloc::vec::Vec;
use core::time::Duration;

use runtime::timers::Timers;

use crate::s3::http::{CONTINUE, Event, Headers, HttpError, RequestHead, RequestParser};

/// A byte stream the server answers on: TLS, plain TCP, or a test pipe.
/// The executor is single-threaded, so the futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Connection {
    /// Reads at least one byte, or returns 0 at the end of the stream.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ConnectionError>;
    async fn write_all(&mut self, data: &[u8]) -> Result<(), ConnectionError>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionError {
    /// The transport failed (reset, TLS alert, ...): nothing more can be sent.
    Broken,
}

/// Why the connection cannot go on reading requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The peer closed the stream in the middle of a request.
    UnexpectedEof,
    /// Nothing arrived within the read timeout.
    TimedOut,
    Http(HttpError),
    Connection(ConnectionError),
}

impl From<ConnectionError> for ReadError {
    fn from(error: ConnectionError) -> Self {
        Self::Connection(error)
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The largest read from the transport at a time: one TLS record's
/// plaintext. Kept small because every open connection holds it.
const READ_BYTES: usize = 16 * 1024;

pub struct ConnIo<'c, C: Connection> {
    pub conn: &'c mut C,
    parser: RequestParser,
    timers: Timers,
    read_timeout: Duration,
    /// Received bytes; `buf[start..]` is not consumed yet.
    buf: Vec<u8>,
    start: usize,
    /// The current request's body has not reached its end yet.
    in_body: bool,
    /// `Expect: 100-continue` not answered yet.
    continue_pending: bool,
    /// Body bytes of the current request handed out so far.
    pub body_bytes: u64,
    pub trailers: Headers,
}

impl<'c, C: Connection> ConnIo<'c, C> {
    pub fn new(conn: &'c mut C, parser: RequestParser, timers: Timers, read_timeout: Duration) -> Self {
        Self {
            conn,
            parser,
            timers,
            read_timeout,
            buf: Vec::with_capacity(READ_BYTES),
            start: 0,
            in_body: false,
            continue_pending: false,
            body_bytes: 0,
            trailers: Headers::new(),
        }
    }

    /// Writes `data`, giving up after one read timeout without progress
    /// (a client that stops reading must not hold its connection forever).
    pub async fn write_all(&mut self, data: &[u8]) -> Result<(), ConnectionError> {
        match self.timers.timeout(self.read_timeout, self.conn.write_all(data)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectionError::Broken),
        }
    }

    /// Whether the current request's body was read to its end.
    pub fn body_done(&self) -> bool {
        !self.in_body
    }

    /// Whether the client waits for `100 Continue` before it sends a body.
    pub fn continue_pending(&self) -> bool {
        self.continue_pending
    }

    /// Reads more into the buffer, waiting at most `limit_ns` of monotonic
    /// time (and at most the read timeout).
    async fn fill_within(&mut self, limit_ns: Option<u64>) -> Result<usize, ReadError> {
        let wait = match limit_ns {
            Some(deadline) => {
                let left = deadline.saturating_sub(self.timers.now_ns());
                if left == 0 {
                    return Err(ReadError::TimedOut);
                }
                self.read_timeout.min(Duration::from_nanos(left))
            }
            None => self.read_timeout,
        };
        self.fill_for(wait).await
    }

    async fn fill(&mut self) -> Result<usize, ReadError> {
        self.fill_for(self.read_timeout).await
    }

    async fn fill_for(&mut self, wait: Duration) -> Result<usize, ReadError> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start >= READ_BYTES {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_BYTES, 0);
        let read = self.timers.timeout(wait, self.conn.read(&mut self.buf[old..])).await;
        let read = match read {
            Ok(Ok(n)) => n,
            Ok(Err(error)) => {
                self.buf.truncate(old);
                return Err(error.into());
            }
            Err(_) => {
                self.buf.truncate(old);
                return Err(ReadError::TimedOut);
            }
        };
        self.buf.truncate(old + read);
        Ok(read)
    }

    /// The next request head; `Ok(None)` when the peer closed cleanly
    /// between requests (or went quiet there past the timeout).
    pub async fn next_head(&mut self) -> Result<Option<RequestHead>, ReadError> {
        debug_assert!(!self.in_body, "the previous body must be finished first");
        // A whole head must arrive within one read timeout of its first
        // byte: a client trickling a byte now and then (slowloris) is cut
        // off even though each single read is quick enough.
        let mut head_deadline: Option<u64> =
            (self.start < self.buf.len()).then(|| self.timers.now_ns() + duration_ns(self.read_timeout));
        loop {
            let step = self.parser.advance(&self.buf[self.start..]).map_err(ReadError::Http)?;
            self.start += step.consumed;
            match step.event {
                Event::Head(head) => {
                    self.in_body = true;
                    self.continue_pending = head.expect_continue;
                    self.body_bytes = 0;
                    self.trailers = Headers::new();
                    return Ok(Some(head));
                }
                Event::NeedMore => {
                    let idle = self.start == self.buf.len();
                    if !idle && head_deadline.is_none() {
                        head_deadline = Some(self.timers.now_ns() + duration_ns(self.read_timeout));
                    }
                    match self.fill_within(head_deadline).await {
                        Ok(0) if idle => return Ok(None),
                        Ok(0) => return Err(ReadError::UnexpectedEof),
                        Ok(_) => {}
                        Err(ReadError::TimedOut) if idle => return Ok(None),
                        Err(error) => return Err(error),
                    }
                }
                // The parser gives body events only after a head.
                Event::Body(_) | Event::BodyEnd { .. } => return Err(ReadError::Http(HttpError::MalformedHead)),
            }
        }
    }

    /// Appends the next body bytes to `out`; `false` once the body ended
    /// (its trailers are then in [`ConnIo::trailers`]).
    pub async fn read_body(&mut self, out: &mut Vec<u8>) -> Result<bool, ReadError> {
        if !self.in_body {
            return Ok(false);
        }
        if self.continue_pending {
            self.continue_pending = false;
            self.write_all(CONTINUE).await?;
        }
        loop {
            let step = self.parser.advance(&self.buf[self.start..]).map_err(ReadError::Http)?;
            let consumed = step.consumed;
            match step.event {
                Event::Body(data) => {
                    out.extend_from_slice(data);
                    self.body_bytes += data.len() as u64;
                    self.start += consumed;
                    return Ok(true);
                }
                Event::BodyEnd { trailers } => {
                    self.start += consumed;
                    self.in_body = false;
                    self.trailers = trailers;
                    return Ok(false);
                }
                Event::NeedMore => {
                    self.start += consumed;
                    if self.fill().await? == 0 {
                        return Err(ReadError::UnexpectedEof);
                    }
                }
                Event::Head(_) => return Err(ReadError::Http(HttpError::MalformedHead)),
            }
        }
    }

    /// Reads the whole body into memory, for XML bodies: more than
    /// `max_bytes` is an error (`Ok(None)`), the rest of it unread.
    pub async fn read_small_body(&mut self, max_bytes: usize) -> Result<Option<Vec<u8>>, ReadError> {
        let mut body = Vec::new();
        while self.read_body(&mut body).await? {
            if body.len() > max_bytes {
                return Ok(None);
            }
        }
        Ok(Some(body))
    }

    /// Reads and drops what is left of the body, up to `max_bytes`; `false`
    /// if more remains (the connection must then close).
    pub async fn discard_body(&mut self, max_bytes: u64) -> Result<bool, ReadError> {
        let mut scratch = Vec::new();
        let mut discarded = 0u64;
        while self.read_body(&mut scratch).await? {
            discarded += scratch.len() as u64;
            scratch.clear();
            if discarded > max_bytes {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
