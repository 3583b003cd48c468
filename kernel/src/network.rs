//! Brings up the network service: our TCP/IP stack on the virtio-net
//! device, TLS with the certificate from the boot archive (and, with
//! `bench=sink`, the benchmark sinks). The S3 service (`crate::s3_service`)
//! listens on 443 and the admin API on 9443; without a data disk only a
//! health responder answers on 9443.

use alloc::sync::Arc;

use net::tcp::{Stack, StackOptions};
use net::tls::rustls;
use net::tls::{CertStore, TlsError, UnixTimeSource};
use runtime::executor::Spawner;
use runtime::timers::Timers;
use services::info;

use crate::arch::interrupts;
use crate::drivers::virtio::net::VirtioNet;
use crate::pvh::BootInfo;
use crate::{rng, time};

pub const HTTPS_PORT: u16 = 443;
pub const ADMIN_PORT: u16 = 9443;
pub const LISTEN_BACKLOG: usize = 64;
/// The admin API sees a few connections at a time.
pub const ADMIN_BACKLOG: usize = 8;

/// What the S3 service needs from a running network.
pub struct Running {
    pub stack: Stack,
    pub tls: Arc<rustls::ServerConfig>,
}

impl Running {
    /// The health responder alone on the admin port, for an appliance
    /// that has no data disk to serve.
    pub fn serve_health_only(&self, spawner: &Spawner, timers: &Timers) {
        let Ok(listener) = self.stack.listen(ADMIN_PORT, LISTEN_BACKLOG) else {
            return;
        };
        let stats = Arc::new(services::health::Stats::default());
        let limits = services::health::Limits::default();
        drop(spawner.spawn(services::health::serve(
            listener,
            self.tls.clone(),
            timers.clone(),
            spawner.clone(),
            limits,
            stats,
        )));
        info!("net", "https health listening"; port = u32::from(ADMIN_PORT));
    }
}

#[derive(Debug)]
pub enum StartError {
    NoBootArchive,
    MissingFile(&'static str),
    Tls(TlsError),
    Listen(net::tcp::NetError),
}

fn random(out: &mut [u8]) -> Result<(), net::tls::provider::RandomError> {
    rng::fill(out);
    Ok(())
}

fn unix_seconds() -> Option<u64> {
    time::unix_ns().map(|ns| ns / 1_000_000_000)
}

pub fn start(boot: &BootInfo, device: VirtioNet, spawner: &Spawner, timers: &Timers) -> Result<Running, StartError> {
    let archive = services::bootfs::Archive::new(boot.boot_archive().ok_or(StartError::NoBootArchive)?);
    let chain = archive.get("tls/server.pem").ok_or(StartError::MissingFile("tls/server.pem"))?;
    let key = archive.get("tls/server.key").ok_or(StartError::MissingFile("tls/server.key"))?;
    let provider = Arc::new(net::tls::provider::provider(random));
    let certified = net::tls::cert::certified_key(&provider, chain, key).map_err(StartError::Tls)?;
    let store = Arc::new(CertStore::with_default(certified));
    let config = net::tls::server_config(provider, store, UnixTimeSource(unix_seconds)).map_err(StartError::Tls)?;

    let ip = net::ip::IpConfig::from_cmdline(boot.cmdline).unwrap_or(net::ip::IpConfig::Dhcp);
    // Socket buffers are allocated whole when a socket is made, listening
    // slots included: 128 KiB each way keeps 1,000 connections within
    // 256 MiB while still filling a TCG guest's path (the host default of
    // 256 KiB each way would need 512 MiB for the sockets alone).
    // Room for the S3 service's connection limit (1,000) plus every
    // listening slot.
    let options = StackOptions {
        rx_buffer_bytes: 128 * 1024,
        tx_buffer_bytes: 128 * 1024,
        max_connections: 1200,
        tcp_offload: device.tcp_offload(),
        ..StackOptions::default()
    };
    let stack = Stack::new(device.mac(), ip, options, time::now_ns(), rng::next_u64());
    let rx_event = &interrupts::EVENTS[usize::from(device.rx_vector)];
    let driver_stack = stack.clone();
    let driver_timers = timers.clone();
    drop(spawner.spawn(async move {
        let mut device = device;
        net::tcp::drive(driver_stack, &mut device, driver_timers, Some(rx_event)).await;
    }));
    if boot.cmdline_value("bench") == Some("sink") {
        // Tells a slow AEAD from a slow path when the TLS sink is slow (see `speed`).
        let speeds = net::tls::provider::speed::measure_aead_speeds(&time::now_ns);
        info!("net", "AEAD seal speeds measured (MB/s)"; aes_128_gcm = speeds.aes_128_gcm,
            aes_256_gcm = speeds.aes_256_gcm, chacha20_poly1305 = speeds.chacha20_poly1305,
            memcpy = speeds.memcpy);
        use services::sink::{PLAIN_SINK_PORT, PLAIN_SOURCE_PORT, SINK_BACKLOG, TLS_SINK_PORT};
        let plain = stack.listen(PLAIN_SINK_PORT, SINK_BACKLOG).map_err(StartError::Listen)?;
        let secure = stack.listen(TLS_SINK_PORT, SINK_BACKLOG).map_err(StartError::Listen)?;
        let source = stack.listen(PLAIN_SOURCE_PORT, SINK_BACKLOG).map_err(StartError::Listen)?;
        drop(spawner.spawn(services::sink::plain(plain, spawner.clone())));
        drop(spawner.spawn(services::sink::source(source, spawner.clone())));
        drop(spawner.spawn(services::sink::tls(secure, config.clone(), timers.clone(), spawner.clone())));
        info!("net", "benchmark sinks listening"; plain_port = u32::from(PLAIN_SINK_PORT), tls_port = u32::from(TLS_SINK_PORT));
    }
    Ok(Running { stack, tls: config })
}
