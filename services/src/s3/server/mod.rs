//! The S3 server: requests from a [`Connection`] to the store and back.
//!
//! One task per connection runs [`S3Service::serve_connection`]: it reads a
//! request head, authenticates it (an [`Authenticator`]: SigV4 or API keys),
//! routes it to one operation ([`ops`]), streams the body into the store and
//! the object back out, and loops while the client keeps the connection
//! alive. Requests on one connection are answered in order (pipelining is
//! allowed; a response is written before the next head is read).
//!
//! Nothing here panics on input: a bad request gets its S3 XML error, a
//! request that cannot be framed gets a bare status and the connection
//! closes, and the store is never left with half a change (writes commit
//! only after the whole body arrived and verified).

mod checksums;
mod io;
pub mod listen;
pub(crate) mod ops;
mod payload;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use fs::store::Store;
use runtime::timers::Timers;
use storage::block::BlockDevice;

pub use io::{ConnIo, Connection, ConnectionError, ReadError};
pub use payload::BodyDecoder;

use crate::s3::error::S3ErrorCode;
use crate::s3::http::{Limits, RequestHead, RequestParser, Response, ResponseFraming};
use crate::s3::time::format_http_date;

/// Who sent a request, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub access_key: String,
    /// May do anything on any bucket (and the admin API).
    pub admin: bool,
}

/// How the request body must be checked while it streams in.
pub enum BodyCheck {
    /// Nothing beyond the HTTP framing (`UNSIGNED-PAYLOAD`, API keys).
    None,
    /// The SHA-256 the client signed (`x-amz-content-sha256`).
    Sha256([u8; 32]),
    /// An inner framing to remove and verify (aws-chunked).
    Decoder(Box<dyn BodyDecoder>),
}

pub struct Authenticated {
    pub principal: Principal,
    pub body: BodyCheck,
}

/// Decides who a request comes from. Implementations: SigV4 and API keys
/// over the keystore (`security`), and test doubles.
pub trait Authenticator {
    fn authenticate(&self, head: &RequestHead, now_unix_s: u64) -> Result<Authenticated, S3ErrorCode>;
}

#[derive(Clone, Debug)]
pub struct S3Config {
    /// The region clients sign for and GetBucketLocation reports.
    pub region: String,
    /// `Host` suffix for virtual-hosted-style requests (`bucket.localhost`).
    pub domain: String,
    pub http: Limits,
    /// The longest wait for the next bytes from a client (slowloris bound).
    pub read_timeout: Duration,
    /// Largest XML request body (DeleteObjects, CompleteMultipartUpload).
    pub max_xml_bytes: usize,
    /// S3's largest single PUT.
    pub max_object_bytes: u64,
    /// Events kept for the admin API before the oldest is dropped (0: no
    /// events).
    pub event_capacity: usize,
    /// Connections served at once; more are refused at accept. Each costs
    /// its socket buffers and TLS state: the platform sizes this to its
    /// memory.
    pub max_connections: usize,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            region: String::from("us-east-1"),
            domain: String::from("localhost"),
            http: Limits::default(),
            read_timeout: Duration::from_secs(30),
            max_xml_bytes: 2 << 20,
            max_object_bytes: 5 << 30,
            event_capacity: 10_000,
            max_connections: 1000,
        }
    }
}

/// Body byte counters for metrics (requests and errors by status are in
/// [`crate::metrics::RequestMetrics`]).
#[derive(Debug, Default)]
pub struct Stats {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

/// Metrics the platform adds to `/metrics` (heap, TCP sockets, ...).
pub type PlatformMetrics = Box<dyn Fn(&mut crate::metrics::Exposition)>;

pub struct S3Service<D: BlockDevice, A: Authenticator> {
    pub store: Store<D>,
    pub auth: A,
    pub config: S3Config,
    pub stats: Stats,
    pub requests: crate::metrics::RequestMetrics,
    pub listen: alloc::sync::Arc<listen::ListenStats>,
    pub platform_metrics: Option<PlatformMetrics>,
    pub events: Option<crate::events::EventQueue>,
    /// Wall clock, milliseconds since the Unix epoch.
    now_unix_ms: fn() -> u64,
    /// Request IDs: this prefix (random per boot) and a counter.
    request_prefix: u32,
    next_request: AtomicU64,
}

/// What a handler answers; the loop frames and writes it.
pub(crate) struct Reply<'s, D: BlockDevice> {
    pub response: Response,
    pub body: ReplyBody<'s, D>,
}

pub(crate) enum ReplyBody<'s, D: BlockDevice> {
    Empty,
    Bytes(Vec<u8>),
    /// Bytes of a stored object, streamed chunk by chunk (absent for HEAD).
    Object {
        handle: fs::store::ObjectHandle<'s, D>,
        start: u64,
        end: u64,
        send: bool,
    },
}

impl<'s, D: BlockDevice> Reply<'s, D> {
    pub fn empty(status: u16) -> Self {
        Self { response: Response::new(status), body: ReplyBody::Empty }
    }

    pub fn xml(bytes: Vec<u8>) -> Self {
        let mut response = Response::new(200);
        response.header("Content-Type", "application/xml");
        Self { response, body: ReplyBody::Bytes(bytes) }
    }
}

impl<D: BlockDevice, A: Authenticator> S3Service<D, A> {
    pub fn new(store: Store<D>, auth: A, config: S3Config, now_unix_ms: fn() -> u64, random: u64) -> Self {
        let events = (config.event_capacity > 0)
            .then(|| crate::events::EventQueue::open(&store, config.event_capacity, &config.region));
        Self {
            store,
            auth,
            config,
            stats: Stats::default(),
            requests: crate::metrics::RequestMetrics::default(),
            listen: alloc::sync::Arc::new(listen::ListenStats::default()),
            platform_metrics: None,
            events,
            now_unix_ms,
            request_prefix: random as u32,
            next_request: AtomicU64::new(1),
        }
    }

    pub fn now_ms(&self) -> u64 {
        (self.now_unix_ms)()
    }

    fn request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("{:08X}{:08X}", self.request_prefix, n as u32)
    }

    /// Serves requests on `conn` until the client closes, an error makes
    /// the framing unrecoverable, or the client goes quiet.
    pub async fn serve_connection<C: Connection>(&self, conn: &mut C, timers: &Timers) {
        let parser = RequestParser::new(self.config.http);
        let mut io = ConnIo::new(conn, parser, timers.clone(), self.config.read_timeout);
        loop {
            let head = match io.next_head().await {
                Ok(Some(head)) => head,
                Ok(None) => return,
                Err(error) => {
                    self.answer_unframed(&mut io, error).await;
                    return;
                }
            };
            if !self.serve_request(&mut io, head).await {
                return;
            }
        }
    }

    /// A request that cannot be framed: a bare status, then close.
    async fn answer_unframed<C: Connection>(&self, io: &mut ConnIo<'_, C>, error: ReadError) {
        let status = match error {
            ReadError::Http(error) => error.status(),
            ReadError::TimedOut => 408,
            ReadError::UnexpectedEof | ReadError::Connection(_) => return,
        };
        crate::debug!("s3", "request not framed: {:?}", error);
        let mut response = Response::new(status);
        response.close();
        response.header("Date", &format_http_date(self.now_ms() / 1000));
        let _ = io.write_all(&response.to_bytes(ResponseFraming::Length(0))).await;
    }

    /// One request, answered. `false`: close the connection.
    async fn serve_request<C: Connection>(&self, io: &mut ConnIo<'_, C>, head: RequestHead) -> bool {
        let request_id = self.request_id();
        let started_ms = self.now_ms();
        let is_head = head.method == crate::s3::http::Method::Head;
        let keep_alive = head.keep_alive;
        let mut access = ops::Access::default();
        let outcome = ops::handle(self, io, &head, &request_id, &mut access).await;
        let (mut reply, operation) = match outcome {
            Ok(done) => done,
            Err(ops::Failure::Transport(error)) => {
                // The client vanished or the framing broke mid-body.
                if let ReadError::Http(_) | ReadError::TimedOut = error {
                    self.answer_unframed(io, error).await;
                }
                return false;
            }
            Err(ops::Failure::S3(error, operation)) => {
                let (response, body) = error.to_response(is_head);
                let body = if body.is_empty() { ReplyBody::Empty } else { ReplyBody::Bytes(body) };
                (Reply { response, body }, operation)
            }
        };
        // A body left unread: read a small rest so the connection survives,
        // otherwise answer and close (the client may still be sending).
        let mut close = !keep_alive;
        if !io.body_done() {
            if io.continue_pending() {
                close = true;
            } else {
                match io.discard_body(64 * 1024).await {
                    Ok(true) => {}
                    Ok(false) | Err(_) => close = true,
                }
            }
        }
        let status = reply.response.status();
        if !reply.response.headers().any(|(name, _)| name.eq_ignore_ascii_case("x-amz-request-id")) {
            reply.response.header("x-amz-request-id", &request_id);
        }
        reply.response.header("Date", &format_http_date(self.now_ms() / 1000));
        reply.response.header("Server", "Rustcore");
        if close {
            reply.response.close();
        }
        self.stats.bytes_in.fetch_add(io.body_bytes, Ordering::Relaxed);
        let mut bytes_out = 0;
        let sent = write_reply(io, reply, is_head, &mut bytes_out).await;
        let ms = self.now_ms().saturating_sub(started_ms);
        self.requests.record(operation, status, ms);
        self.stats.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        crate::info!("s3", "request";
            id = &*request_id,
            op = operation,
            key_id = &*access.key_id,
            bucket = &*access.bucket,
            key = &*access.key,
            method = head.method.as_str(),
            status = u64::from(status),
            bytes_in = io.body_bytes,
            bytes_out = bytes_out,
            ms = ms);
        sent.is_ok() && !close
    }
}

/// Writes the head and body, counting body bytes in `sent` (also when it
/// fails part way); an error means the connection cannot carry another
/// response.
async fn write_reply<C: Connection, D: BlockDevice>(
    conn: &mut ConnIo<'_, C>,
    reply: Reply<'_, D>,
    is_head: bool,
    sent: &mut u64,
) -> Result<(), ConnectionError> {
    let Reply { response, body } = reply;
    let status = response.status();
    let no_body = status == 204 || status == 304 || status < 200;
    match body {
        ReplyBody::Empty => {
            let framing = if no_body { ResponseFraming::NoBody } else { ResponseFraming::Length(0) };
            conn.write_all(&response.to_bytes(framing)).await
        }
        ReplyBody::Bytes(bytes) => {
            let framing = if no_body { ResponseFraming::NoBody } else { ResponseFraming::Length(bytes.len() as u64) };
            let mut out = response.to_bytes(framing);
            if !is_head && !no_body {
                out.extend_from_slice(&bytes);
            }
            conn.write_all(&out).await?;
            *sent = if is_head { 0 } else { bytes.len() as u64 };
            Ok(())
        }
        ReplyBody::Object { handle, start, end, send } => {
            conn.write_all(&response.to_bytes(ResponseFraming::Length(end - start))).await?;
            if !send || is_head {
                return Ok(());
            }
            let mut reader = match handle.read(start..end) {
                Ok(reader) => reader,
                Err(error) => {
                    crate::error!("s3", "object read failed before the body: {:?}", error);
                    return Err(ConnectionError::Broken);
                }
            };
            // Each chunk is sent while the next one is read: disk and network
            // overlap instead of taking turns.
            let mut next = reader.next().await;
            while let Some(piece) = next {
                match piece {
                    Ok(bytes) => {
                        let (written, following) =
                            runtime::join::join(conn.write_all(bytes.as_slice()), reader.next()).await;
                        written?;
                        *sent += bytes.as_slice().len() as u64;
                        next = following;
                    }
                    Err(error) => {
                        // The head promised more bytes: closing mid-body is
                        // the only honest signal left. Corrupt bytes are never sent.
                        crate::error!("s3", "object read failed mid-body: {:?}", error; sent = *sent);
                        return Err(ConnectionError::Broken);
                    }
                }
            }
            Ok(())
        }
    }
}
