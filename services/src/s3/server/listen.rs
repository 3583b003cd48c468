//! Accept loops: S3 over TLS (the product) and over plain TCP (off unless
//! configured), one task per connection, for both platforms.

use alloc::format;
use alloc::rc::Rc;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use net::tcp::{TcpListener, TcpStream};
use net::tls::rustls::ServerConfig;
use net::tls_stream::TlsStream;
use runtime::executor::Spawner;
use runtime::timers::Timers;
use storage::block::BlockDevice;

use super::io::{Connection, ConnectionError};
use super::{Authenticator, S3Service};

/// The longest a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection counters for logs and metrics.
#[derive(Debug, Default)]
pub struct ListenStats {
    pub accepted: AtomicU64,
    /// Connections refused at accept because `max_connections` were open.
    pub rejected: AtomicU64,
    /// Connections being served (handshake included).
    pub active: AtomicU64,
    pub handshakes: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub open: AtomicU64,
}

impl Connection for TlsStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ConnectionError> {
        match TlsStream::read(self, buf).await {
            Ok(n) => Ok(n),
            // A peer that closes TCP without close_notify ends the stream
            // like a clean close would: HTTP framing tells what was complete.
            Err(net::tls_stream::TlsStreamError::UnexpectedEof) => Ok(0),
            Err(_) => Err(ConnectionError::Broken),
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), ConnectionError> {
        TlsStream::write_all(self, data).await.map_err(|_| ConnectionError::Broken)
    }
}

impl Connection for TcpStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ConnectionError> {
        TcpStream::read(self, buf).await.map_err(|_| ConnectionError::Broken)
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), ConnectionError> {
        TcpStream::write_all(self, data).await.map_err(|_| ConnectionError::Broken)
    }
}

/// Counts a connection as active while it lives.
struct Active(Arc<ListenStats>);

impl Active {
    /// `None` (and counted as rejected) when `max` connections are active:
    /// each holds socket buffers and TLS state, and running the heap dry
    /// would stop the whole appliance.
    fn admit(stats: &Arc<ListenStats>, max: usize) -> Option<Self> {
        if stats.active.load(Ordering::Relaxed) >= max as u64 {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        stats.active.fetch_add(1, Ordering::Relaxed);
        Some(Self(stats.clone()))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The next connection that may be served: accept errors are logged and
/// retried, connections over the limit are reset.
async fn admitted(
    listener: &TcpListener,
    timers: &Timers,
    stats: &Arc<ListenStats>,
    max: usize,
) -> (TcpStream, Active) {
    loop {
        let tcp = match listener.accept().await {
            Ok(tcp) => tcp,
            Err(error) => {
                crate::warn!("s3", "accept failed: {}", error);
                timers.sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        match Active::admit(stats, max) {
            Some(active) => return (tcp, active),
            None => tcp.abort(),
        }
    }
}

/// Serves S3 over TLS on `listener` forever.
pub async fn serve_tls<D: BlockDevice + 'static, A: Authenticator + 'static>(
    service: Rc<S3Service<D, A>>,
    listener: TcpListener,
    config: Arc<ServerConfig>,
    timers: Timers,
    spawner: Spawner,
    stats: Arc<ListenStats>,
) {
    loop {
        let (tcp, active) = admitted(&listener, &timers, &stats, service.config.max_connections).await;
        let (service, config, timers, stats) = (service.clone(), config.clone(), timers.clone(), stats.clone());
        drop(spawner.spawn(async move {
            let _active = active;
            let peer = tcp.peer_addr();
            let mut stream = match timers.timeout(HANDSHAKE_TIMEOUT, TlsStream::accept(tcp, config)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                    crate::debug!("tls", "handshake failed: {}", error; peer = &*format!("{peer:?}"));
                    return;
                }
                Err(_) => {
                    stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                    crate::debug!("tls", "handshake timed out"; peer = &*format!("{peer:?}"));
                    return;
                }
            };
            stats.handshakes.fetch_add(1, Ordering::Relaxed);
            stats.open.fetch_add(1, Ordering::Relaxed);
            service.serve_connection(&mut stream, &timers).await;
            let _ = timers.timeout(Duration::from_secs(5), stream.close()).await;
            stats.open.fetch_sub(1, Ordering::Relaxed);
        }));
    }
}

/// Serves S3 over plain TCP (for benchmarks and trusted networks only).
pub async fn serve_plain<D: BlockDevice + 'static, A: Authenticator + 'static>(
    service: Rc<S3Service<D, A>>,
    listener: TcpListener,
    timers: Timers,
    spawner: Spawner,
    stats: Arc<ListenStats>,
) {
    loop {
        let (mut tcp, active) = admitted(&listener, &timers, &stats, service.config.max_connections).await;
        let (service, timers, stats) = (service.clone(), timers.clone(), stats.clone());
        drop(spawner.spawn(async move {
            let _active = active;
            stats.open.fetch_add(1, Ordering::Relaxed);
            service.serve_connection(&mut tcp, &timers).await;
            let _ = timers.timeout(Duration::from_secs(5), tcp.flush()).await;
            tcp.close();
            stats.open.fetch_sub(1, Ordering::Relaxed);
        }));
    }
}

/// Serves the admin API over TLS on `listener` forever.
pub async fn serve_admin_tls<D: BlockDevice + 'static>(
    service: Rc<S3Service<D, crate::s3::auth::KeyAuth<crate::s3::keys::StoreKeys>>>,
    listener: TcpListener,
    config: Arc<ServerConfig>,
    timers: Timers,
    spawner: Spawner,
    random: fn(&mut [u8]),
) {
    loop {
        let Ok(tcp) = listener.accept().await else {
            timers.sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (service, config, timers) = (service.clone(), config.clone(), timers.clone());
        drop(spawner.spawn(async move {
            let Ok(Ok(mut stream)) = timers.timeout(HANDSHAKE_TIMEOUT, TlsStream::accept(tcp, config)).await else {
                return;
            };
            service.serve_admin_connection(&mut stream, &timers, random).await;
            let _ = timers.timeout(Duration::from_secs(5), stream.close()).await;
        }));
    }
}
