//! The appliance's services on Linux: our TCP/IP stack on a TAP device, TLS
//! with the given certificate, and either the S3 service (with `--data`: S3
//! over TLS on 443, the admin API on 9443, plain-HTTP S3 on `--plain-port`
//! if given) or the HTTPS health responder on 443; plus sinks for
//! throughput benchmarks (they read and discard everything): plain TCP on
//! `--sink-port`, TLS on `--tls-sink-port`.
//!
//! `rustcore-hosted --tap NAME --ip 10.99.0.2/24 --cert CHAIN.pem --key KEY.pem
//!  [--data FILE --keys DIR [--data-bytes N] [--plain-port N]] [--sink-port 5001] [--tls-sink-port 5443] [--no-offload]`
//!
//! `--keys DIR` holds what the kernel finds in its boot archive under
//! `keys/`: `node.key`, `admin`, `admin-token` (`cargo xtask run` makes them
//! in `.rustcore/keys/`). Prints `rustcore-hosted ready ...` once listening.
//! Runs until killed. Structured log lines (JSON, level from `RUSTCORE_LOG`,
//! default info) go to standard output.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use hosted::Runtime;
use hosted::block::FileDisk;
use hosted::tap::{TapDevice, TapOffload};
use net::ip::{IpConfig, Ipv4Cidr};
use net::tcp::{Stack, StackOptions};
use net::tls::rustls::ServerConfig;
use net::tls::{CertStore, UnixTimeSource};
use security::keystore::NodeKey;
use services::s3::keys::Bootstrap;
use services::s3::server::S3Config;
use services::s3::setup::{self, ServeOptions};

const HTTPS_PORT: u16 = 443;
const LISTEN_BACKLOG: usize = 64;
/// The sinks serve a few bulk connections at a time. Kept small because the
/// stack scans every listening socket after each segment that changes a
/// socket (`net::tcp`'s listener upkeep: ~20% of a bulk receive with 192
/// listening sockets).
use services::sink::SINK_BACKLOG;

const USAGE: &str = "usage: rustcore-hosted --tap NAME --ip ADDR/PREFIX --cert CHAIN.pem --key KEY.pem \
                     [--data FILE --keys DIR [--data-bytes N] [--plain-port N]] [--sink-port 5001] [--tls-sink-port 5443] [--no-offload]";
const ADMIN_PORT: u16 = 9443;
/// Requests the data file may have in flight at once.
const DISK_IO_THREADS: usize = 8;

#[derive(Debug)]
struct Args {
    tap: String,
    ip: Ipv4Cidr,
    cert: String,
    key: String,
    sink_port: u16,
    tls_sink_port: u16,
    data: Option<String>,
    data_bytes: u64,
    keys: Option<String>,
    plain_port: Option<u16>,
    offload: TapOffload,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let (mut tap, mut ip, mut cert, mut key) = (None, None, None, None);
    let (mut sink_port, mut tls_sink_port) = (5001, 5443);
    let (mut data, mut keys, mut plain_port, mut data_bytes) = (None, None, None, 8u64 << 30);
    let mut offload = TapOffload::Tcp;
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        if flag == "--no-offload" {
            offload = TapOffload::None;
            continue;
        }
        let value = iter.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let port = || value.parse::<u16>().map_err(|_| format!("bad port {value:?}"));
        match flag.as_str() {
            "--tap" => tap = Some(value.clone()),
            "--ip" => ip = Some(value.parse::<Ipv4Cidr>().map_err(|()| format!("bad address {value:?}"))?),
            "--cert" => cert = Some(value.clone()),
            "--key" => key = Some(value.clone()),
            "--sink-port" => sink_port = port()?,
            "--tls-sink-port" => tls_sink_port = port()?,
            "--data" => data = Some(value.clone()),
            "--keys" => keys = Some(value.clone()),
            "--plain-port" => plain_port = Some(port()?),
            "--data-bytes" => data_bytes = value.parse().map_err(|_| format!("bad size {value:?}"))?,
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
        data,
        data_bytes,
        keys,
        plain_port,
        offload,
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

/// The process's lines for `/metrics`: TCP sockets of our stack and the
/// resident set size.
fn platform_metrics(stack: Stack) -> services::s3::server::PlatformMetrics {
    Box::new(move |out| {
        out.single(
            "rustcore_tcp_sockets",
            "gauge",
            "TCP sockets (listening and connected).",
            stack.tcp_socket_count() as u64,
        );
        let rss_pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|text| text.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()))
            .unwrap_or(0);
        out.single("rustcore_process_resident_bytes", "gauge", "Resident set size of the process.", rss_pages * 4096);
    })
}

/// The data disk and the keys for the S3 service.
fn s3_options(args: &Args, data: &str, keys: &str) -> Result<(FileDisk, NodeKey, Bootstrap), String> {
    // The disk's I/O on helper threads: the executor's thread keeps serving
    // the network meanwhile, and concurrent commits share flushes.
    let disk = FileDisk::open(std::path::Path::new(data), 512, args.data_bytes)
        .and_then(|disk| disk.with_io_threads(DISK_IO_THREADS))
        .map_err(|e| format!("{data}: {e}"))?;
    let dir = std::path::Path::new(keys);
    let files: Vec<(String, Vec<u8>)> = ["node.key", "admin", "admin-token"]
        .iter()
        .filter_map(|name| std::fs::read(dir.join(name)).ok().map(|bytes| (format!("keys/{name}"), bytes)))
        .collect();
    let (node_key, bootstrap) =
        setup::boot_keys(|name| files.iter().find(|(n, _)| n == name).map(|(_, bytes)| bytes.as_slice()));
    let node_key = node_key.ok_or_else(|| format!("{keys}/node.key must hold 32 bytes"))?;
    Ok((disk, node_key, bootstrap))
}

/// Structured log lines on standard output, as the kernel writes them to
/// its serial console.
struct StdoutSink;

impl services::log::Sink for StdoutSink {
    fn write_str(&self, s: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    }
}

struct ProcessClock(std::time::Instant);

impl services::log::LogClock for ProcessClock {
    fn uptime_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn unix_ns(&self) -> Option<u64> {
        Some(hosted::clock::unix_time_ns())
    }
}

fn main() -> ExitCode {
    static SINK: StdoutSink = StdoutSink;
    static CLOCK: std::sync::OnceLock<ProcessClock> = std::sync::OnceLock::new();
    let clock = CLOCK.get_or_init(|| ProcessClock(std::time::Instant::now()));
    let level =
        std::env::var("RUSTCORE_LOG").ok().and_then(|l| services::log::Level::from_cmdline(&format!("log={l}")));
    services::log::init(&SINK, clock, level.unwrap_or(services::log::Level::Info));
    // The hardware CRC32C for every chunk checksum: VPCLMULQDQ with AVX-512, else SSE4.2
    // (portable otherwise).
    hosted::crc::install_hardware_crc32c();
    // The one-pass AES-NI AES-GCM for TLS records (RustCrypto's otherwise).
    hosted::gcm::install_aes_gcm();
    hosted::md5::install_md5_lanes();
    // Journal batches and write-backs reuse large buffers: keep them.
    hosted::memory::keep_freed_memory();
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
    let device = match TapDevice::open(&args.tap, args.offload, runtime.platform_mut()) {
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
    let options = StackOptions { tcp_offload: args.offload.stack_offload(), ..StackOptions::default() };
    let stack = Stack::new(random_mac(), ip, options, timers.now_ns(), u64::from_le_bytes(seed));
    let listen =
        |port, backlog| stack.listen(port, backlog).unwrap_or_else(|error| panic!("listen on {port}: {error}"));
    let https = listen(HTTPS_PORT, LISTEN_BACKLOG);
    let s3 = match (&args.data, &args.keys) {
        (Some(data), Some(keys)) => match s3_options(&args, data, keys) {
            Ok(disk_and_files) => Some(disk_and_files),
            Err(error) => {
                eprintln!("rustcore-hosted: {error}");
                return ExitCode::FAILURE;
            }
        },
        (None, None) => None,
        _ => {
            eprintln!("rustcore-hosted: --data and --keys go together\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (sink, secure_sink) = (listen(args.sink_port, SINK_BACKLOG), listen(args.tls_sink_port, SINK_BACKLOG));

    let rx_event = device.rx_event();
    let (driver_stack, driver_timers) = (stack.clone(), timers.clone());
    drop(spawner.spawn(async move {
        let mut device = device;
        net::tcp::drive(driver_stack, &mut device, driver_timers, Some(&rx_event)).await;
    }));
    match s3 {
        Some((disk, node_key, bootstrap)) => {
            let options = ServeOptions {
                node_key,
                bootstrap,
                tls: config.clone(),
                s3: https,
                admin: listen(ADMIN_PORT, LISTEN_BACKLOG),
                plain: args.plain_port.map(|port| listen(port, LISTEN_BACKLOG)),
                config: S3Config::default(),
                now_ms: || hosted::clock::unix_time_ns() / 1_000_000,
                random: |out| hosted::rng::fill(out).expect("host randomness"),
                platform_metrics: Some(platform_metrics(stack.clone())),
            };
            drop(spawner.spawn(setup::serve(disk, options, timers.clone(), spawner.clone())));
        }
        None => drop(spawner.spawn(services::health::serve(
            https,
            config.clone(),
            timers.clone(),
            spawner.clone(),
            services::health::Limits::default(),
            Arc::new(services::health::Stats::default()),
        ))),
    }
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
