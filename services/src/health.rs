//! A minimal HTTPS responder, so the network and TLS stack can be tested
//! end to end before the S3 layer exists: `GET /health` (any path, in fact)
//! answers `200` with a small JSON body, then closes. It reads only the
//! request head, at most `MAX_HEAD_BYTES`, within the timeouts; anything
//! else closes the connection. The S3 HTTP server replaces it.

use alloc::format;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use net::tcp::{TcpListener, TcpStream};
use net::tls::rustls::{self, ServerConfig};
use net::tls_stream::TlsStream;
use runtime::executor::Spawner;
use runtime::timers::Timers;

const MAX_HEAD_BYTES: usize = 8 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub handshake_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { handshake_timeout: Duration::from_secs(10), request_timeout: Duration::from_secs(30) }
    }
}

/// Counters for the log and, later, the metrics endpoint.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub handshakes: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub responses: AtomicU64,
}

/// Accepts connections forever, one task each.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    timers: Timers,
    spawner: Spawner,
    limits: Limits,
    stats: Arc<Stats>,
) {
    loop {
        match listener.accept().await {
            Ok(tcp) => {
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let task = handle(tcp, config.clone(), timers.clone(), limits, stats.clone());
                drop(spawner.spawn(task));
            }
            Err(error) => {
                crate::warn!("https", "accept failed: {}", error);
                timers.sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn handle(tcp: TcpStream, config: Arc<ServerConfig>, timers: Timers, limits: Limits, stats: Arc<Stats>) {
    let peer = tcp.peer_addr();
    let mut stream = match timers.timeout(limits.handshake_timeout, TlsStream::accept(tcp, config)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
            crate::debug!("https", "handshake failed: {}", error; peer = &*format!("{peer:?}"));
            return;
        }
        Err(_) => {
            stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
            crate::debug!("https", "handshake timed out"; peer = &*format!("{peer:?}"));
            return;
        }
    };
    stats.handshakes.fetch_add(1, Ordering::Relaxed);
    let mut head = [0u8; MAX_HEAD_BYTES];
    let read = timers.timeout(limits.request_timeout, read_head(&mut stream, &mut head)).await;
    let Ok(Some(len)) = read else { return };
    let request_line = head[..len].split(|&b| b == b'\n').next().unwrap_or(&[]);
    let (status, body) = if request_line.starts_with(b"GET ") {
        let session = stream.session();
        let body = format!(
            "{{\"status\":\"ok\",\"service\":\"rustcore\",\"tls\":\"{:?}\",\"cipher\":\"{}\",\"resumed\":{}}}\n",
            session.protocol_version().unwrap_or(rustls::ProtocolVersion::Unknown(0)),
            session.cipher_suite_name().unwrap_or("unknown"),
            session.handshake_was_resumed()
        );
        ("200 OK", body)
    } else {
        ("405 Method Not Allowed", alloc::string::String::from("{\"status\":\"method not allowed\"}\n"))
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(response.as_bytes()).await.is_ok() {
        stats.responses.fetch_add(1, Ordering::Relaxed);
        let _ = timers.timeout(limits.request_timeout, stream.close()).await;
    }
}

/// Reads until the blank line that ends the request head; `None` if the
/// peer closed, failed, or sent more than the buffer holds.
async fn read_head(stream: &mut TlsStream, head: &mut [u8]) -> Option<usize> {
    let mut len = 0;
    while len < head.len() {
        let read = stream.read(&mut head[len..]).await.ok()?;
        if read == 0 {
            return None;
        }
        // Only the new bytes (and the three before them) can complete the
        // blank line: do not rescan the whole head after every read.
        let scan_from = len.saturating_sub(3);
        len += read;
        if head[scan_from..len].windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(len);
        }
    }
    None
}
