//! `netbulk HOST PORT BYTES CONNS [CAFILE]`: sends BYTES (zeros) to HOST:PORT
//! over CONNS connections at once, 256 KiB per write, TLS if CAFILE is given,
//! and prints the rate in MB/s once the server has closed every connection
//! (so that everything was read, not just sent).
//!
//! The Python client of `cargo xtask bench net` costs its core more per byte
//! than the server it measures: on a two-core machine its own TLS work caps
//! the TLS rows. This one encrypts with ring (assembly AES-GCM) into
//! rustls's buffer and hands the records of a write to the kernel at once.
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

const CHUNK: usize = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);
/// The bench certificate names `localhost`; the chain is verified, and the
/// name is the one the certificate carries (the Python client skips it).
const SERVER_NAME: &str = "localhost";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(rate) => {
            println!("{rate:.1}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("netbulk: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<f64, String> {
    let usage = || "usage: netbulk HOST PORT BYTES CONNS [CAFILE]".to_string();
    let (host, port, bytes, conns, ca) = match args {
        [host, port, bytes, conns] => (host, port, bytes, conns, None),
        [host, port, bytes, conns, ca] => (host, port, bytes, conns, Some(ca)),
        _ => return Err(usage()),
    };
    let port: u16 = port.parse().map_err(|_| usage())?;
    let bytes: u64 = bytes.parse().map_err(|_| usage())?;
    let conns: u64 = conns.parse().map_err(|_| usage())?;
    if conns == 0 {
        return Err(usage());
    }
    let config = ca.map(|path| tls_config(path)).transpose()?;
    let per_conn = bytes / conns;
    let address = format!("{host}:{port}");
    let start = Instant::now();
    let senders: Vec<_> = (0..conns)
        .map(|_| {
            let (address, config) = (address.clone(), config.clone());
            std::thread::spawn(move || send(&address, per_conn, config))
        })
        .collect();
    for sender in senders {
        sender.join().map_err(|_| "a sender panicked".to_string())?.map_err(|error| error.to_string())?;
    }
    Ok((per_conn * conns) as f64 / start.elapsed().as_secs_f64() / 1e6)
}

fn tls_config(path: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    let pem = std::fs::read(path).map_err(|error| format!("{path}: {error}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.map_err(|error| format!("{path}: {error}"))?).map_err(|error| error.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn send(address: &str, bytes: u64, config: Option<Arc<rustls::ClientConfig>>) -> io::Result<()> {
    let mut socket = TcpStream::connect(address)?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    socket.set_write_timeout(Some(TIMEOUT))?;
    let chunk = vec![0u8; CHUNK];
    let mut left = bytes;
    match config {
        None => {
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                socket.write_all(&chunk[..n])?;
                left -= n as u64;
            }
        }
        Some(config) => {
            let name = ServerName::try_from(SERVER_NAME).map_err(io::Error::other)?;
            let mut tls = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
            // A whole write is encrypted at once and its records leave in
            // one vectored write, as the plain client's bytes do.
            tls.set_buffer_limit(Some(2 * CHUNK));
            let mut stream = rustls::Stream::new(&mut tls, &mut socket);
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                stream.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            stream.flush()?;
            tls.send_close_notify();
            while tls.wants_write() {
                tls.write_tls(&mut socket)?;
            }
        }
    }
    // The server closes once it has read everything.
    socket.shutdown(Shutdown::Write)?;
    let mut sink = [0u8; 4096];
    while socket.read(&mut sink)? > 0 {}
    Ok(())
}
