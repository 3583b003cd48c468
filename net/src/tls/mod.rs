//! TLS termination on rustls 0.23 (unbuffered API, `no_std`) with our own RustCrypto provider.
//!
//! - [`provider`]: the [`CryptoProvider`] (suites, key exchange, ECDSA P-256; why no RSA).
//! - [`cert`]: PEM parsing and [`CertStore`], the SNI certificate resolver, replaceable at run time.
//! - [`session`]: [`ServerSession`], a feed-bytes/get-bytes state machine that never owns a socket.
//! - [`server_config`]: TLS 1.3 + 1.2, ALPN `http/1.1`, stateful session cache and TLS 1.3 tickets.
//!
//! Rekeying: TLS 1.2 renegotiation is refused (rustls never renegotiates: it was the source of
//! the 2009 prefix-injection attack, and RFC 8446 removed it); a client's renegotiation request is
//! answered with a `no_renegotiation` warning. TLS 1.3 KeyUpdate is the supported way to rekey: we
//! answer a peer's KeyUpdate, and can start one with [`ServerSession::update_keys`]. rustls also
//! rekeys by itself before an AEAD's confidentiality limit.
use alloc::sync::Arc;
use alloc::vec;
use core::fmt;
use core::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::UnixTime;
use rustls::server::{ServerConfig, ServerSessionMemoryCache};
use rustls::time_provider::TimeProvider;

pub mod cert;
pub mod provider;
pub mod session;
mod ticket;

pub use cert::{CertStore, certified_key, parse_pem_chain, parse_pem_key};
pub use provider::{RandomError, RandomSource, provider};
pub use rustls;
pub use session::{ClientSession, ServerSession};

/// Resumable sessions kept by the server (TLS 1.2 session ids, TLS 1.3 when tickets are off);
/// about 200 bytes each.
pub const SESSION_CACHE_ENTRIES: usize = 4096;

/// Errors of the TLS layer. rustls's own errors are wrapped, not flattened into strings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TlsError {
    /// PEM syntax or base64 error.
    BadPem,
    /// No `CERTIFICATE` section in the PEM input.
    NoCertificates,
    /// No private key section in the PEM input.
    NoPrivateKey,
    /// The key is not ECDSA P-256 (see [`provider`] for why RSA is refused) or is malformed.
    UnsupportedKey,
    /// The end-entity certificate does not parse.
    BadCertificate,
    /// The private key does not belong to the end-entity certificate.
    KeyMismatch,
    /// An SNI name given to [`CertStore::replace`] is not a DNS name (or an `*.` wildcard of one).
    InvalidServerName,
    /// [`ServerSession::feed`] would hold more unprocessed ciphertext than the bound: call
    /// `process()` and drain `read()` first (backpressure to the socket).
    IncomingBufferFull,
    /// Application data or KeyUpdate before the handshake completed.
    HandshakeNotComplete,
    /// KeyUpdate needs TLS 1.3.
    KeyUpdateUnavailable,
    /// `write()` after `close()`, or on a connection that is closed.
    Closed,
    /// The protocol failed (bad record, alert received, handshake failure...). Sticky: once a
    /// session has failed, every later call returns the same error.
    Rustls(rustls::Error),
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        Self::Rustls(e)
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadPem => f.write_str("malformed PEM"),
            Self::NoCertificates => f.write_str("no certificate in PEM"),
            Self::NoPrivateKey => f.write_str("no private key in PEM"),
            Self::UnsupportedKey => f.write_str("unsupported private key (ECDSA P-256 only)"),
            Self::BadCertificate => f.write_str("malformed certificate"),
            Self::KeyMismatch => f.write_str("private key does not match certificate"),
            Self::InvalidServerName => f.write_str("invalid server name"),
            Self::IncomingBufferFull => f.write_str("TLS incoming buffer full"),
            Self::HandshakeNotComplete => f.write_str("TLS handshake not complete"),
            Self::KeyUpdateUnavailable => f.write_str("KeyUpdate needs TLS 1.3"),
            Self::Closed => f.write_str("TLS session closed"),
            Self::Rustls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl core::error::Error for TlsError {}

/// Wall clock for rustls (certificate validity, ticket age and rotation): a function returning
/// Unix seconds, or `None` before the clock is set (rustls then fails handshakes that need it).
#[derive(Clone, Copy, Debug)]
pub struct UnixTimeSource(pub fn() -> Option<u64>);

impl UnixTimeSource {
    pub fn now_s(&self) -> Option<u64> {
        (self.0)()
    }
}

impl TimeProvider for UnixTimeSource {
    fn current_time(&self) -> Option<UnixTime> {
        self.now_s().map(|s| UnixTime::since_unix_epoch(Duration::from_secs(s)))
    }
}

/// rustls's `no_std` session cache takes its mutex from us.
struct SpinMutex;

impl rustls::lock::MakeMutex for SpinMutex {
    fn make_mutex<T: Send + 'static>(value: T) -> Arc<dyn rustls::lock::Lock<T>> {
        Arc::new(SpinLock(spin::Mutex::new(value)))
    }
}

struct SpinLock<T>(spin::Mutex<T>);

// `Lock<T>` needs Debug, without asking T for it.
impl<T> fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpinLock")
    }
}

impl<T: Send> rustls::lock::Lock<T> for SpinLock<T> {
    fn lock(&self) -> Result<rustls::lock::MutexGuard<'_, T>, rustls::lock::Poisoned> {
        Ok(alloc::boxed::Box::new(self.0.lock()))
    }
}

/// The server configuration: TLS 1.3 and 1.2, no client authentication, certificates from
/// `certs` (by SNI), ALPN `http/1.1`, resumption through a [`SESSION_CACHE_ENTRIES`]-entry
/// session cache (TLS 1.2 session ids) and ChaCha20-Poly1305 tickets (TLS 1.3, and TLS 1.2
/// clients that ask) whose key comes from the provider's random source and rotates every
/// 6 hours of `time`. Early data (0-RTT) stays off: it is replayable.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    certs: Arc<CertStore>,
    time: UnixTimeSource,
) -> Result<Arc<ServerConfig>, TlsError> {
    let random = provider.secure_random;
    let mut config = ServerConfig::builder_with_details(provider, Arc::new(time))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Our order, AES-128-GCM first, not the client's (OpenSSL and most
    // SDKs put AES-256-GCM first): one core decrypts every connection, and
    // 10 AES rounds instead of 14 make TLS bulk cheaper for it.
    config.ignore_client_order = true;
    config.session_storage = ServerSessionMemoryCache::new::<SpinMutex>(SESSION_CACHE_ENTRIES);
    config.ticketer = Arc::new(ticket::Ticketer::new(random, time)?);
    Ok(Arc::new(config))
}
