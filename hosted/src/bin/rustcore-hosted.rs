//! The network service on Linux: our TCP/IP stack on a TAP device, TLS with
//! the given certificate, the HTTPS health responder on 443, and sinks for
//! throughput benchmarks (they read and discard everything):
//! plain TCP on `--sink-port`, TLS on `--tls-sink-port`.
//!
//! `rustcore-hosted --tap NAME --ip 10.99.0.2/24 --cert CHAIN.pem --key KEY.pem
//!  [--sink-port 5001] [--tls-sink-port 5443]`
//!
//! Prints `rustcore-hosted ready ...` once listening. Runs until killed.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use hosted::Runtime;
use hosted::tap::TapDevice;
use net::ip::{IpConfig, Ipv4Cidr};
use net::tcp::{Stack, StackOptions};
use net::tls::rustls::ServerConfig;
use net::tls::{CertStore, UnixTimeSource};

const HTTPS_PORT: u16 = 443;
const LISTEN_BACKLOG: usize = 64;
/// The sinks serve a few bulk connections at a time. Kept small because the
/// stack scans every listening socket after each segment that changes a
/// socket (`net::tcp`'s listener upkeep: ~20% of a bulk receive with 192
/// listening sockets).
use services::sink::SINK_BACKLOG;

const USAGE: &str = "usage: rustcore-hosted --tap NAME --ip ADDR/PREFIX --cert CHAIN.pem --key KEY.pem \
                     [--sink-port 5001] [--tls-sink-port 5443]";

#[derive(Debug)]
struct Args {
    tap: String,
    ip: Ipv4Cidr,
    cert: String,
    key: String,
    sink_port: u16,
    tls_sink_port: u16,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let (mut tap, mut ip, mut cert, mut key) = (None, None, None, None);
    let (mut sink_port, mut tls_sink_port) = (5001, 5443);
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let port = || value.parse::<u16>().map_err(|_| format!("bad port {value:?}"));
        match flag.as_str() {
            "--tap" => tap = Some(value.clone()),
            "--ip" => ip = Some(value.parse::<Ipv4Cidr>().map_err(|()| format!("bad address {value:?}"))?),
            "--cert" => cert = Some(value.clone()),
            "--key" => key = Some(value.clone()),
            "--sink-port" => sink_port = port()?,
            "--tls-sink-port" => tls_sink_port = port()?,
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    Ok(Args {
        tap: tap.ok_or("--tap is required")?,
        ip: ip.ok_or("--ip is required")?,
        cert: cert.ok_or("--cert is required")?,
        key: key.ok_or("--key is required")?,
        sink_port,
        tls_sink_port,
    })
}

fn random(out: &mut [u8]) -> Result<(), net::tls::provider::RandomError> {
    hosted::rng::fill(out).map_err(|_| net::tls::provider::RandomError)
}

fn unix_seconds() -> Option<u64> {
    Some(hosted::clock::unix_time_ns() / 1_000_000_000)
}

fn tls_config(args: &Args) -> Result<Arc<ServerConfig>, String> {
    let chain = std::fs::read(&args.cert).map_err(|e| format!("{}: {e}", args.cert))?;
    let key = std::fs::read(&args.key).map_err(|e| format!("{}: {e}", args.key))?;
    let provider = Arc::new(net::tls::provider::provider(random));
    let certified = net::tls::cert::certified_key(&provider, &chain, &key).map_err(|e| format!("certificate: {e}"))?;
    let store = Arc::new(CertStore::with_default(certified));
    net::tls::server_config(provider, store, UnixTimeSource(unix_seconds)).map_err(|e| format!("tls: {e}"))
}

/// A locally administered unicast MAC, random per run.
fn random_mac() -> [u8; 6] {
    let mut mac = [0u8; 6];
    hosted::rng::fill(&mut mac).expect("host randomness");
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&args) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("rustcore-hosted: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match tls_config(&args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("rustcore-hosted: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut runtime = Runtime::new();
    let device = match TapDevice::open(&args.tap, runtime.platform_mut()) {
        Ok(device) => device,
        Err(error) => {
            eprintln!("rustcore-hosted: {error}");
            return ExitCode::FAILURE;
        }
    };
    let timers = runtime.timers();
    let spawner = runtime.spawner();
    let mut seed = [0u8; 8];
    hosted::rng::fill(&mut seed).expect("host randomness");
    let ip = IpConfig::Static { address: args.ip, gateway: None };
    let stack = Stack::new(random_mac(), ip, StackOptions::default(), timers.now_ns(), u64::from_le_bytes(seed));
    let listen =
        |port, backlog| stack.listen(port, backlog).unwrap_or_else(|error| panic!("listen on {port}: {error}"));
    let https = listen(HTTPS_PORT, LISTEN_BACKLOG);
    let (sink, secure_sink) = (listen(args.sink_port, SINK_BACKLOG), listen(args.tls_sink_port, SINK_BACKLOG));

    let rx_event = device.rx_event();
    let (driver_stack, driver_timers) = (stack.clone(), timers.clone());
    drop(spawner.spawn(async move {
        let mut device = device;
        net::tcp::drive(driver_stack, &mut device, driver_timers, Some(&rx_event)).await;
    }));
    drop(spawner.spawn(services::health::serve(
        https,
        config.clone(),
        timers.clone(),
        spawner.clone(),
        services::health::Limits::default(),
        Arc::new(services::health::Stats::default()),
    )));
    drop(spawner.spawn(services::sink::plain(sink, spawner.clone())));
    drop(spawner.spawn(services::sink::tls(secure_sink, config, timers, spawner.clone())));

    println!(
        "rustcore-hosted ready: tap={} ip={} https={HTTPS_PORT} sink={} tls-sink={}",
        args.tap, args.ip, args.sink_port, args.tls_sink_port
    );
    let _ = std::io::stdout().flush();
    runtime.block_on(std::future::pending::<()>());
    ExitCode::SUCCESS
}
