//! TLS over our TCP: drives a [`ServerSession`] (the feed-bytes/get-events
//! state machine) with a [`TcpStream`], as async reads and writes. The only
//! place where the two halves of the stack meet.

use alloc::sync::Arc;
use core::fmt;

use rustls::ServerConfig;

use crate::tcp::{NetError, TcpStream};
use crate::tls::TlsError;
use crate::tls::session::ServerSession;

/// Most ciphertext read from TCP per call.
const READ_CHUNK_BYTES: usize = 64 * 1024 + 512;

#[derive(Debug)]
pub enum TlsStreamError {
    Net(NetError),
    Tls(TlsError),
    /// The peer closed TCP without close_notify (or in the handshake).
    UnexpectedEof,
}

impl From<NetError> for TlsStreamError {
    fn from(error: NetError) -> Self {
        Self::Net(error)
    }
}

impl From<TlsError> for TlsStreamError {
    fn from(error: TlsError) -> Self {
        Self::Tls(error)
    }
}

impl fmt::Display for TlsStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Net(error) => write!(f, "tcp: {error}"),
            Self::Tls(error) => write!(f, "tls: {error:?}"),
            Self::UnexpectedEof => f.write_str("peer closed the connection without close_notify"),
        }
    }
}

pub struct TlsStream {
    tcp: TcpStream,
    session: ServerSession,
}

impl TlsStream {
    /// Runs the server handshake on `tcp`. On a TLS error the alert rustls
    /// queued is sent before the error is returned.
    pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> Result<Self, TlsStreamError> {
        let session = ServerSession::new(config)?;
        let mut stream = Self { tcp, session };
        while stream.session.is_handshaking() {
            stream.send_pending().await?;
            if !stream.session.is_handshaking() {
                break;
            }
            if stream.receive().await? == 0 {
                return Err(TlsStreamError::UnexpectedEof);
            }
        }
        stream.send_pending().await?;
        Ok(stream)
    }

    pub fn session(&self) -> &ServerSession {
        &self.session
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    async fn send_pending(&mut self) -> Result<(), TlsStreamError> {
        let Self { tcp, session, .. } = self;
        let pending = session.outgoing();
        if !pending.is_empty() {
            let len = pending.len();
            tcp.write_all(pending).await?;
            session.consume_outgoing(len);
        }
        Ok(())
    }

    /// Reads ciphertext from TCP and runs the state machine; 0 at TCP EOF.
    async fn receive(&mut self) -> Result<usize, TlsStreamError> {
        let read = self.receive_unprocessed().await?;
        if read > 0 {
            self.process_fed().await?;
        }
        Ok(read)
    }

    /// Reads ciphertext from TCP straight into the session's incoming
    /// buffer; 0 at TCP EOF.
    async fn receive_unprocessed(&mut self) -> Result<usize, TlsStreamError> {
        let Self { tcp, session } = self;
        let room = session.incoming_capacity().min(READ_CHUNK_BYTES);
        if room == 0 {
            // Whole records never fill the buffer, but a handshake message
            // sent in tiny records does: rustls keeps them all until the
            // message is complete. That peer loses its connection.
            return Err(TlsError::IncomingBufferFull.into());
        }
        let read = tcp.read(session.incoming_buffer(room)).await?;
        session.commit_incoming(read);
        Ok(read)
    }

    /// Runs the state machine over what was fed; on an error, sends the
    /// alert it queued before returning it.
    async fn process_fed(&mut self) -> Result<(), TlsStreamError> {
        if let Err(error) = self.session.process() {
            return Err(self.failed(error).await);
        }
        Ok(())
    }

    /// A session error, after sending (best effort) the fatal alert the
    /// session queued for the peer.
    async fn failed(&mut self, error: TlsError) -> TlsStreamError {
        let _ = self.send_pending().await;
        error.into()
    }

    /// Decrypted application data; 0 once the peer sent close_notify.
    pub async fn read(&mut self, out: &mut [u8]) -> Result<usize, TlsStreamError> {
        loop {
            // Decrypts whatever whole records were received, straight into
            // `out` (a peer that has sent everything must not wait on TCP).
            let copied = match self.session.read_decrypting(out) {
                Ok(copied) => copied,
                Err(error) => return Err(self.failed(error).await),
            };
            if copied > 0 || out.is_empty() {
                return Ok(copied);
            }
            if self.session.peer_closed() {
                return Ok(0);
            }
            self.send_pending().await?;
            if self.receive_unprocessed().await? == 0 {
                return Err(TlsStreamError::UnexpectedEof);
            }
        }
    }

    pub async fn write_all(&mut self, mut data: &[u8]) -> Result<(), TlsStreamError> {
        while !data.is_empty() {
            let taken = match self.session.write(data) {
                Ok(taken) => taken,
                // The session may have failed in an earlier read that still
                // returned data: its alert goes out now.
                Err(error) => return Err(self.failed(error).await),
            };
            data = &data[taken..];
            self.send_pending().await?;
        }
        Ok(())
    }

    /// Sends close_notify, waits until everything sent is acknowledged, and
    /// closes TCP.
    pub async fn close(mut self) -> Result<(), TlsStreamError> {
        self.session.close();
        self.session.process()?;
        self.send_pending().await?;
        self.tcp.flush().await?;
        self.tcp.shutdown_write();
        Ok(())
    }
}
