//! Benchmark sinks: accept connections and read and discard everything, in
//! plain TCP or through TLS (answering the client's close_notify). The same
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
