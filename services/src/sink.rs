//! Benchmark sinks: accept connections and read and discard everything, in
//! plain TCP or through TLS (answering the client's close_notify); and a
//! plain source that sends as many bytes as a client asks for. The same
//! code runs in `rustcore-hosted` and, with `bench=sink` on the kernel
//! command line, in the appliance, so throughput is measured through exactly
//! the stack that serves users. Never enabled by default.

use alloc::sync::Arc;
use alloc::vec;
use core::time::Duration;

use net::tcp::TcpListener;
use net::tls::rustls::ServerConfig;
use net::tls_stream::TlsStream;
use runtime::executor::Spawner;
use runtime::timers::Timers;

/// Listening sockets per sink port.
pub const SINK_BACKLOG: usize = 8;
pub const PLAIN_SINK_PORT: u16 = 5001;
pub const TLS_SINK_PORT: u16 = 5443;
/// The plain source: sends what a client asks for (see [`source`]).
pub const PLAIN_SOURCE_PORT: u16 = 5002;
/// Most bytes one connection to the source may ask for.
const MAX_SOURCE_BYTES: u64 = 1 << 34;
const READ_BYTES: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads and discards every connection's bytes until the peer closes.
pub async fn plain(listener: TcpListener, spawner: Spawner) {
    loop {
        let Ok(stream) = listener.accept().await else { continue };
        drop(spawner.spawn(async move {
            let mut buf = vec![0u8; READ_BYTES];
            while let Ok(read) = stream.read(&mut buf).await {
                if read == 0 {
                    break;
                }
            }
        }));
    }
}

/// The plain source, the other direction: reads a count (8 bytes, little
/// endian, at most [`MAX_SOURCE_BYTES`]), sends that many bytes of a fixed
/// pattern (byte i is `i % 251`), waits until the peer has them all and
/// closes.
pub async fn source(listener: TcpListener, spawner: Spawner) {
    loop {
        let Ok(stream) = listener.accept().await else { continue };
        drop(spawner.spawn(async move {
            let mut count = [0u8; 8];
            let mut have = 0;
            while have < count.len() {
                match stream.read(&mut count[have..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => have += read,
                }
            }
            let mut left = u64::from_le_bytes(count).min(MAX_SOURCE_BYTES);
            // 251 is prime, so the block (a multiple of it) continues the
            // pattern from one write to the next.
            let block: alloc::vec::Vec<u8> = (0..251 * 256).map(|i: u32| (i % 251) as u8).collect();
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(block.len());
                if stream.write_all(&block[..n]).await.is_err() {
                    return;
                }
                left -= n as u64;
            }
            let _ = stream.flush().await;
            stream.shutdown_write();
        }));
    }
}

/// The TLS sink: handshake, read and discard until close_notify, answer it.
pub async fn tls(listener: TcpListener, config: Arc<ServerConfig>, timers: Timers, spawner: Spawner) {
    loop {
        let Ok(tcp) = listener.accept().await else { continue };
        let (config, timers) = (config.clone(), timers.clone());
        drop(spawner.spawn(async move {
            let mut stream = match timers.timeout(HANDSHAKE_TIMEOUT, TlsStream::accept(tcp, config)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    crate::warn!("sink", "TLS handshake failed: {}", error);
                    return;
                }
                Err(_) => {
                    crate::warn!("sink", "TLS handshake timed out");
                    return;
                }
            };
            let mut buf = vec![0u8; READ_BYTES];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) => {
                        let _ = stream.close().await;
                        return;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        crate::warn!("sink", "TLS connection failed: {}", error);
                        return;
                    }
                }
            }
        }));
    }
}
