//! A TLS session as a state machine over byte buffers (rustls's unbuffered API): the caller feeds
//! ciphertext from its socket, calls `process()`, sends `outgoing()`, and reads plaintext. It never
//! owns a socket, blocks or allocates without bound, so the same code runs in the kernel, on the
//! hosted platform and in tests.
//!
//! Bounds: unprocessed ciphertext at most [`MAX_INCOMING_BYTES`] (`feed` refuses more);
//! decrypted, unread plaintext stops growing at [`MAX_PLAINTEXT_BYTES`] (`process` stops
//! decrypting until `read` drains it). A `write`, or the end of the handshake, still decrypts
//! everything already fed, so a caller that reads before it feeds more (as `TlsStream` does)
//! holds at most the sum of both; one that keeps feeding and writing without reading grows the
//! plaintext by up to [`MAX_INCOMING_BYTES`] per round. `write` accepts plaintext only while
//! `outgoing` holds less than [`MAX_OUTGOING_BYTES`]. Handshake messages are never refused.
use alloc::string::String;
use alloc::vec::Vec;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus};
use rustls::{CipherSuite, ClientConfig, HandshakeKind, NamedGroup, ProtocolVersion, ServerConfig};

use super::TlsError;

/// The largest TLS record on the wire: 5-byte header + 2^14 + 2048 (TLS 1.2 ciphertext limit).
pub const MAX_RECORD_BYTES: usize = 5 + 16 * 1024 + 2048;
/// Unprocessed ciphertext held: 64 KiB plus one record, so a partial record always fits.
pub const MAX_INCOMING_BYTES: usize = 64 * 1024 + MAX_RECORD_BYTES;
/// Decrypted plaintext held before `process` waits for `read`.
pub const MAX_PLAINTEXT_BYTES: usize = 64 * 1024;
/// Encrypted bytes waiting to be sent before `write` accepts no more.
pub const MAX_OUTGOING_BYTES: usize = 256 * 1024;

/// Bytes in `buf[start..end]`. Consuming moves `start`; the live bytes move to the front only
/// when a push needs room at the tail, and the tail can be written in place (a socket read goes
/// straight into the incoming queue), so each byte is copied in once and out once.
#[derive(Default)]
struct ByteQueue {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Length of the last [`Self::tail`], what [`Self::commit`] may take.
    reserved: usize,
}

impl ByteQueue {
    fn len(&self) -> usize {
        self.end - self.start
    }
    fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    /// `n` writable bytes after the live ones (stale contents), made room for by moving the live
    /// bytes to the front or growing; [`Self::commit`] makes a prefix of them live.
    fn tail(&mut self, n: usize) -> &mut [u8] {
        if self.buf.len() - self.end < n {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < n {
                self.buf.resize(self.end + n, 0);
            }
        }
        self.reserved = n;
        &mut self.buf[self.end..self.end + n]
    }
    /// Makes the first `n` bytes of the last [`Self::tail`] live (never more
    /// than it gave out, and only once: stale bytes never become live).
    fn commit(&mut self, n: usize) {
        self.end += n.min(self.reserved);
        self.reserved = 0;
    }
    fn push(&mut self, bytes: &[u8]) {
        self.tail(bytes.len()).copy_from_slice(bytes);
        self.commit(bytes.len());
    }
    fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // A tail given out before this points elsewhere now.
            self.reserved = 0;
        }
    }
    /// Drops every byte and the memory holding them.
    fn release(&mut self) {
        *self = Self::default();
    }
    /// Appends what `fill` writes into a tail of `estimate` bytes, growing it to the size
    /// `fill` asks for (rustls reports the exact size it needs).
    fn append_with<E>(
        &mut self,
        estimate: usize,
        mut fill: impl FnMut(&mut [u8]) -> Result<usize, E>,
        required: impl Fn(&E) -> Option<usize>,
    ) -> Result<(), E> {
        let mut size = estimate;
        loop {
            match fill(self.tail(size)) {
                Ok(written) => {
                    self.commit(written);
                    return Ok(());
                }
                Err(e) => match required(&e) {
                    Some(needed) if needed > size => size = needed,
                    _ => return Err(e),
                },
            }
        }
    }
}

/// The two unbuffered connection types, as the engine drives them.
trait Unbuffered: core::ops::Deref<Target = rustls::unbuffered::UnbufferedConnectionCommon<Self::Data>> {
    type Data;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data>;
}

impl Unbuffered for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, ServerConnectionData> {
        self.process_tls_records(incoming)
    }
}

impl Unbuffered for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, ClientConnectionData> {
        self.process_tls_records(incoming)
    }
}

fn encode_required(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => Some(*required_size),
        _ => None,
    }
}

fn encrypt_required(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => Some(*required_size),
        _ => None,
    }
}

fn encrypt_error(e: EncryptError) -> TlsError {
    match e {
        // Past the AEAD's record limit without a KeyUpdate (TLS 1.2): the session is over.
        EncryptError::EncryptExhausted => TlsError::Rustls(rustls::Error::EncryptError),
        _ => TlsError::Rustls(rustls::Error::General(alloc::string::String::from("record encryption failed"))),
    }
}

/// Per-record overhead used to size the first encryption attempt (header, tag, TLS 1.2 nonce,
/// TLS 1.3 content type), rounded up.
const RECORD_OVERHEAD_BYTES: usize = 64;
const MAX_FRAGMENT_BYTES: usize = 16 * 1024;

/// A reader's buffer that [`Engine::drive`] decrypts into, saving the copy through `plaintext`.
struct Direct<'o> {
    out: &'o mut [u8],
    filled: usize,
}

/// The part shared by server and client sessions.
struct Engine<C> {
    conn: C,
    incoming: ByteQueue,
    outgoing: ByteQueue,
    plaintext: ByteQueue,
    handshake_done: bool,
    close_requested: bool,
    close_sent: bool,
    key_update_requested: bool,
    peer_closed: bool,
    closed: bool,
    failed: Option<TlsError>,
}

impl<C: Unbuffered> Engine<C> {
    fn new(conn: C) -> Self {
        Self {
            conn,
            incoming: ByteQueue::default(),
            outgoing: ByteQueue::default(),
            plaintext: ByteQueue::default(),
            handshake_done: false,
            close_requested: false,
            close_sent: false,
            key_update_requested: false,
            peer_closed: false,
            closed: false,
            failed: None,
        }
    }

    fn feed(&mut self, ciphertext: &[u8]) -> Result<(), TlsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.incoming.len() + ciphertext.len() > MAX_INCOMING_BYTES {
            return Err(TlsError::IncomingBufferFull);
        }
        self.incoming.push(ciphertext);
        Ok(())
    }

    fn incoming_capacity(&self) -> usize {
        MAX_INCOMING_BYTES - self.incoming.len()
    }

    /// Runs rustls until it needs more input or has nothing more to do. With `write`, encrypts
    /// that plaintext at the first chance (and ignores the plaintext bound, see the module doc).
    /// Returns how many bytes of `write` were encrypted.
    /// With `direct`, decrypted records go into its buffer while it has room and nothing older
    /// waits in `plaintext`, and the run stops once it is full.
    fn drive(&mut self, mut write: Option<&[u8]>, mut direct: Option<&mut Direct<'_>>) -> Result<usize, TlsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut written = 0;
        loop {
            // Not while handshaking: rustls hands out records a client sent behind its Finished
            // (ReadTraffic) before it reports the handshake complete (WriteTraffic), so stopping
            // here would leave the session handshaking while its incoming buffer fills.
            if write.is_none() && self.handshake_done {
                let direct_full = direct.as_ref().is_some_and(|d| d.filled == d.out.len());
                if direct_full || self.plaintext.len() >= MAX_PLAINTEXT_BYTES {
                    return Ok(written);
                }
            }
            let UnbufferedStatus { mut discard, state } = self.conn.process(self.incoming.as_mut_slice());
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    self.incoming.consume(discard);
                    return Err(self.fail(e.into()));
                }
            };
            let mut stop = false;
            match state {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                let mut payload = record.payload;
                                if let Some(d) = direct.as_deref_mut()
                                    && self.plaintext.len() == 0
                                {
                                    let n = payload.len().min(d.out.len() - d.filled);
                                    d.out[d.filled..d.filled + n].copy_from_slice(&payload[..n]);
                                    d.filled += n;
                                    payload = &payload[n..];
                                }
                                self.plaintext.push(payload);
                            }
                            Err(e) => {
                                self.incoming.consume(discard);
                                return Err(self.fail(e.into()));
                            }
                        }
                    }
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    if let Err(e) = self.outgoing.append_with(MAX_RECORD_BYTES, |b| encode.encode(b), encode_required) {
                        self.incoming.consume(discard);
                        let err = rustls::Error::General(alloc::format!("{e}"));
                        return Err(self.fail(err.into()));
                    }
                }
                // The encoded bytes already sit in `outgoing`; the caller sends them exactly once.
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::WriteTraffic(mut traffic) => {
                    self.handshake_done = true;
                    if let Some(data) = write.take() {
                        let records = data.len().div_ceil(MAX_FRAGMENT_BYTES).max(1);
                        let estimate = data.len() + records * RECORD_OVERHEAD_BYTES;
                        let result =
                            self.outgoing.append_with(estimate, |b| traffic.encrypt(data, b), encrypt_required);
                        if let Err(e) = result {
                            self.incoming.consume(discard);
                            return Err(self.fail(encrypt_error(e)));
                        }
                        written = data.len();
                    } else if self.key_update_requested {
                        self.key_update_requested = false;
                        if let Err(e) = traffic.refresh_traffic_keys() {
                            self.incoming.consume(discard);
                            return Err(self.fail(e.into()));
                        }
                    } else if self.close_requested && !self.close_sent {
                        let result = self.outgoing.append_with(
                            RECORD_OVERHEAD_BYTES,
                            |b| traffic.queue_close_notify(b),
                            encrypt_required,
                        );
                        if let Err(e) = result {
                            self.incoming.consume(discard);
                            return Err(self.fail(encrypt_error(e)));
                        }
                        self.close_sent = true;
                    } else {
                        stop = true;
                    }
                }
                ConnectionState::PeerClosed => self.peer_closed = true,
                ConnectionState::Closed => {
                    self.closed = true;
                    stop = true;
                }
                // BlockedHandshake: needs more bytes. ReadEarlyData cannot happen (0-RTT is off),
                // and states added by later rustls versions are not ours to handle.
                _ => stop = true,
            }
            self.incoming.consume(discard);
            if stop {
                return Ok(written);
            }
        }
    }

    /// Records the error and encodes the fatal alert rustls queued for the peer (so the caller
    /// can still send why). Exactly one more `process` call, and only when an alert is pending:
    /// with nothing pending rustls would deframe the bad bytes again and queue a second alert.
    fn fail(&mut self, error: TlsError) -> TlsError {
        if self.conn.wants_write() {
            let UnbufferedStatus { state, .. } = self.conn.process(self.incoming.as_mut_slice());
            if let Ok(ConnectionState::EncodeTlsData(mut encode)) = state {
                // Best effort: the session is failing anyway.
                let _ = self.outgoing.append_with(MAX_RECORD_BYTES, |b| encode.encode(b), encode_required);
            }
        }
        self.incoming.release();
        self.failed = Some(error.clone());
        error
    }

    fn write(&mut self, plaintext: &[u8]) -> Result<usize, TlsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.close_requested || self.closed {
            return Err(TlsError::Closed);
        }
        if !self.handshake_done {
            return Err(TlsError::HandshakeNotComplete);
        }
        let room = MAX_OUTGOING_BYTES.saturating_sub(self.outgoing.len());
        let take = plaintext.len().min(room);
        if take == 0 {
            return Ok(0);
        }
        self.drive(Some(&plaintext[..take]), None)
    }

    fn read(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.plaintext.len());
        out[..n].copy_from_slice(&self.plaintext.as_slice()[..n]);
        self.plaintext.consume(n);
        n
    }

    fn read_decrypting(&mut self, out: &mut [u8]) -> Result<usize, TlsError> {
        let copied = self.read(out);
        if copied == out.len() {
            return Ok(copied);
        }
        let mut direct = Direct { out: &mut out[copied..], filled: 0 };
        match self.drive(None, Some(&mut direct)) {
            // Authentic data that came before the error is delivered; the error is kept
            // (`failed`) for the next call.
            Err(e) if copied + direct.filled == 0 => Err(e),
            _ => Ok(copied + direct.filled),
        }
    }

    fn update_keys(&mut self) -> Result<(), TlsError> {
        if !self.handshake_done {
            return Err(TlsError::HandshakeNotComplete);
        }
        if self.conn.protocol_version() != Some(ProtocolVersion::TLSv1_3) {
            return Err(TlsError::KeyUpdateUnavailable);
        }
        self.key_update_requested = true;
        Ok(())
    }
}

macro_rules! session_api {
    ($($before_process:ident)?) => {
        /// Appends ciphertext received from the peer. Refuses (and keeps nothing of) input that
        /// would exceed [`MAX_INCOMING_BYTES`]; see [`Self::incoming_capacity`].
        pub fn feed(&mut self, ciphertext: &[u8]) -> Result<(), TlsError> {
            self.engine.feed(ciphertext)
        }

        /// How many more ciphertext bytes `feed` accepts now: read at most this from the socket.
        pub fn incoming_capacity(&self) -> usize {
            self.engine.incoming_capacity()
        }

        /// Runs the handshake and decrypts as far as the fed bytes allow, queueing any bytes to
        /// send in `outgoing()` (a close_notify requested by `close()`, a KeyUpdate requested by
        /// `update_keys()`, answers to the peer's KeyUpdate). After an error, `outgoing()` may
        /// hold a fatal alert worth sending before closing the socket.
        pub fn process(&mut self) -> Result<(), TlsError> {
            $(self.$before_process();)?
            self.engine.drive(None, None).map(|_| ())
        }

        /// Room for up to `max` bytes of ciphertext (never more than `incoming_capacity()`),
        /// to receive into in place; [`Self::commit_incoming`] then takes the bytes received,
        /// as `feed` would without copying them.
        pub fn incoming_buffer(&mut self, max: usize) -> &mut [u8] {
            let n = max.min(self.engine.incoming_capacity());
            self.engine.incoming.tail(n)
        }

        /// Takes the first `n` bytes of the last `incoming_buffer` as received ciphertext (at
        /// most what it gave out, which was within `incoming_capacity()`).
        pub fn commit_incoming(&mut self, n: usize) {
            self.engine.incoming.commit(n)
        }

        /// `read`, and when that leaves room in `out`, `process` with the records decrypted
        /// straight into `out` (one copy fewer than `process` then `read`). Errors as `process`.
        pub fn read_decrypting(&mut self, out: &mut [u8]) -> Result<usize, TlsError> {
            $(self.$before_process();)?
            self.engine.read_decrypting(out)
        }

        /// Ciphertext to send to the peer.
        pub fn outgoing(&self) -> &[u8] {
            self.engine.outgoing.as_slice()
        }

        /// Marks the first `n` bytes of `outgoing()` as sent.
        pub fn consume_outgoing(&mut self, n: usize) {
            self.engine.outgoing.consume(n)
        }

        /// Copies decrypted application data into `out`; returns the number of bytes copied.
        pub fn read(&mut self, out: &mut [u8]) -> usize {
            self.engine.read(out)
        }

        /// Decrypted bytes waiting for `read`.
        pub fn readable(&self) -> usize {
            self.engine.plaintext.len()
        }

        /// Encrypts application data into `outgoing()`; returns how many bytes were taken (fewer
        /// than given, possibly 0, while `outgoing()` holds [`MAX_OUTGOING_BYTES`] or more).
        /// Errors: [`TlsError::HandshakeNotComplete`] before the handshake is done (nothing is
        /// queued: HTTP answers only after a request, so there is nothing to hold back),
        /// [`TlsError::Closed`] after `close()`.
        pub fn write(&mut self, plaintext: &[u8]) -> Result<usize, TlsError> {
            self.engine.write(plaintext)
        }

        /// Queues a close_notify, emitted by the next `process()`; `write` is refused afterwards.
        pub fn close(&mut self) {
            self.engine.close_requested = true;
        }

        /// Requests a TLS 1.3 KeyUpdate (our sending keys change, and we ask the peer to change
        /// theirs), emitted by the next `process()`.
        pub fn update_keys(&mut self) -> Result<(), TlsError> {
            self.engine.update_keys()
        }

        pub fn is_handshaking(&self) -> bool {
            !self.engine.handshake_done
        }

        /// The peer sent close_notify: all its data has been received.
        pub fn peer_closed(&self) -> bool {
            self.engine.peer_closed
        }

        /// Both sides sent close_notify (or the session failed): drop it once `outgoing()` is sent.
        pub fn is_closed(&self) -> bool {
            self.engine.closed || self.engine.failed.is_some()
        }

        pub fn protocol_version(&self) -> Option<ProtocolVersion> {
            self.engine.conn.protocol_version()
        }

        pub fn cipher_suite(&self) -> Option<CipherSuite> {
            self.engine.conn.negotiated_cipher_suite().map(|s| s.suite())
        }

        /// The IANA name, e.g. `TLS13_AES_128_GCM_SHA256`.
        pub fn cipher_suite_name(&self) -> Option<&'static str> {
            self.cipher_suite().and_then(|s| s.as_str())
        }

        /// The (EC)DHE group of the handshake (for resumed TLS 1.2 sessions: none).
        pub fn key_exchange_group(&self) -> Option<NamedGroup> {
            self.engine.conn.negotiated_key_exchange_group().map(|g| g.name())
        }

        pub fn alpn_protocol(&self) -> Option<&[u8]> {
            self.engine.conn.alpn_protocol()
        }

        pub fn handshake_kind(&self) -> Option<HandshakeKind> {
            self.engine.conn.handshake_kind()
        }

        pub fn handshake_was_resumed(&self) -> bool {
            self.handshake_kind() == Some(HandshakeKind::Resumed)
        }
    };
}

/// A server-side TLS session (see the module doc for the call sequence and bounds).
pub struct ServerSession {
    engine: Engine<UnbufferedServerConnection>,
    /// rustls 0.23's unbuffered server does not expose the SNI it parsed, so we read it from the
    /// ClientHello record ourselves ([`client_hello_sni`]), before rustls consumes it.
    sni: Option<String>,
    sni_checked: bool,
}

impl ServerSession {
    pub fn new(config: alloc::sync::Arc<ServerConfig>) -> Result<Self, TlsError> {
        Ok(Self { engine: Engine::new(UnbufferedServerConnection::new(config)?), sni: None, sni_checked: false })
    }

    session_api!(before_process);

    fn before_process(&mut self) {
        if !self.sni_checked {
            match client_hello_sni(self.engine.incoming.as_slice()) {
                SniScan::NeedMore => {}
                SniScan::Found(name) => (self.sni, self.sni_checked) = (name, true),
            }
        }
    }

    /// The SNI name the client asked for (lowercase), once the handshake is complete. `None`
    /// without SNI, or in the rare case of a ClientHello split over several records.
    pub fn server_name(&self) -> Option<&str> {
        if self.engine.handshake_done { self.sni.as_deref() } else { None }
    }
}

enum SniScan {
    /// The first record is not complete yet.
    NeedMore,
    /// Scanned: the name if there is a well-formed one, `None` otherwise.
    Found(Option<String>),
}

/// Reads the server_name extension (RFC 6066 §3) from a ClientHello that starts `bytes` and fits
/// in its first record. Every length is checked against its container; rustls validates the
/// same message independently and `server_name()` only reports it after rustls accepted it.
fn client_hello_sni(bytes: &[u8]) -> SniScan {
    const RECORD_HEADER: usize = 5;
    if bytes.len() < RECORD_HEADER {
        return SniScan::NeedMore;
    }
    let record_len = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
    if bytes[0] != 0x16 {
        return SniScan::Found(None);
    }
    if bytes.len() < RECORD_HEADER + record_len {
        return SniScan::NeedMore;
    }
    SniScan::Found(parse_sni(&bytes[RECORD_HEADER..RECORD_HEADER + record_len]))
}

/// A cursor that never reads past its slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3).map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
    fn vec8(&mut self) -> Option<Reader<'a>> {
        let n = self.u8()?;
        self.take(n).map(Reader)
    }
    fn vec16(&mut self) -> Option<Reader<'a>> {
        let n = self.u16()?;
        self.take(n).map(Reader)
    }
}

fn parse_sni(handshake: &[u8]) -> Option<String> {
    const CLIENT_HELLO: usize = 1;
    const SERVER_NAME_EXTENSION: usize = 0;
    const HOST_NAME: usize = 0;
    let mut r = Reader(handshake);
    if r.u8()? != CLIENT_HELLO {
        return None;
    }
    let len = r.u24()?;
    let mut hello = Reader(r.take(len)?);
    hello.take(2 + 32)?; // legacy_version, random
    hello.vec8()?; // legacy_session_id
    hello.vec16()?; // cipher_suites
    hello.vec8()?; // legacy_compression_methods
    let mut extensions = hello.vec16()?;
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let mut body = extensions.vec16()?;
        if kind == SERVER_NAME_EXTENSION {
            let mut names = body.vec16()?;
            if names.u8()? != HOST_NAME {
                return None;
            }
            let name = names.vec16()?.0;
            let name = core::str::from_utf8(name).ok()?;
            return name.is_ascii().then(|| name.to_ascii_lowercase());
        }
    }
    None
}

/// A client-side TLS session with the same interface: our host tests' peer, and outbound
/// connections later (replication, remote backends).
pub struct ClientSession {
    engine: Engine<UnbufferedClientConnection>,
}

impl ClientSession {
    pub fn new(config: alloc::sync::Arc<ClientConfig>, server_name: ServerName<'static>) -> Result<Self, TlsError> {
        Ok(Self { engine: Engine::new(UnbufferedClientConnection::new(config, server_name)?) })
    }

    session_api!();

    /// The server's certificate chain, once received.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.engine.conn.peer_certificates()
    }
}
