//! `cargo xtask bench net`: the hosted server (`rustcore-hosted`, our TCP/IP
//! and TLS on a TAP device) against Linux clients, and the Linux ceiling on
//! the same kind of path (Linux TCP over a veth pair), in network namespaces
//! made for the run and deleted after it (also on failure). Needs root.
//!
//! Namespaces: `rc-bench` holds the TAP device `rctap0` (Linux side
//! 10.99.0.1, our stack 10.99.0.2) and one end of the veth pair (10.99.1.1);
//! `rc-bench-peer` holds the other end (10.99.1.2) and a Linux sink. All
//! clients run inside `rc-bench`, so no traffic leaves the namespaces.
//!
//! The clients are `netbench.py` (Python's socket and ssl modules: OpenSSL
//! does the client-side crypto), the same for our server and for Linux.
//!
//! Then the appliance itself: the release image in QEMU with `bench=sink`,
//! its ports forwarded to 127.0.0.1 by QEMU's user network (so the path
//! includes slirp), measured by the same client from the host over loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::state::State;
use crate::{bootfs, ip, is_root, on_path, remove_package_env, repo_root, run_checked, target_dir};

const NETNS: &str = "rc-bench";
const PEER_NETNS: &str = "rc-bench-peer";
const TAP: &str = "rctap0";
const HOSTED_IP: &str = "10.99.0.2";
const LINUX_PEER_IP: &str = "10.99.1.2";
const SINK_PORT: &str = "5001";
const TLS_SINK_PORT: &str = "5443";
const HTTPS_PORT: &str = "443";
const BULK_BYTES: u64 = 1 << 30;
const HANDSHAKE_SECONDS: &str = "5";
const HANDSHAKE_CLIENTS: &str = "4";
/// Upper bound of one client run (a stuck server fails the bench).
const CLIENT_TIMEOUT_S: &str = "90";
const READY_TIMEOUT: Duration = Duration::from_secs(10);

const CLIENT_SCRIPT: &str = include_str!("netbench.py");
/// Smaller than the hosted runs: QEMU here emulates every instruction.
const QEMU_PLAIN_BYTES: u64 = 256 << 20;
const QEMU_TLS_BYTES: u64 = 64 << 20;

/// The namespaces and the servers in them; dropping it kills the servers
/// and deletes the namespaces (with their devices).
struct Testbed {
    children: Vec<Child>,
}

impl Testbed {
    fn setup() -> Result<Testbed> {
        delete_namespaces();
        let testbed = Testbed { children: Vec::new() };
        for ns in [NETNS, PEER_NETNS] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&["-n", NETNS, "tuntap", "add", "dev", TAP, "mode", "tap"])?;
        ip(&["-n", NETNS, "addr", "add", "10.99.0.1/24", "dev", TAP])?;
        ip(&["-n", NETNS, "link", "set", TAP, "up"])?;
        ip(&["-n", NETNS, "link", "add", "rcveth0", "type", "veth", "peer", "name", "rcveth1", "netns", PEER_NETNS])?;
        ip(&["-n", NETNS, "addr", "add", "10.99.1.1/24", "dev", "rcveth0"])?;
        ip(&["-n", NETNS, "link", "set", "rcveth0", "up"])?;
        ip(&["-n", PEER_NETNS, "addr", "add", "10.99.1.2/24", "dev", "rcveth1"])?;
        ip(&["-n", PEER_NETNS, "link", "set", "rcveth1", "up"])?;
        Ok(testbed)
    }

    /// Starts `program args` in `ns` and waits for a stdout line containing
    /// `needle`.
    fn start(&mut self, ns: &str, program: &Path, args: &[&str], needle: &str) -> Result<()> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(program).args(args).stdout(Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("starting {}", program.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        self.children.push(child);
        let (tx, rx) = mpsc::channel();
        let needle = needle.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains(&needle) {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx
            .recv_timeout(READY_TIMEOUT)
            .with_context(|| format!("{} did not print its ready line", program.display()))?;
        println!("bench net: {line}");
        Ok(())
    }

    /// CPU time every thread of the `index`th program started has run, in
    /// ns, from the scheduler's statistics (`ip netns exec` execs the
    /// program, so the child's pid is the program's): what the server
    /// spends per byte, which throughput on two cores shared with the
    /// client does not show.
    fn cpu_ns(&self, index: usize) -> Option<u64> {
        let pid = self.children.get(index)?.id();
        let mut total = 0;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
            let text = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(total)
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        delete_namespaces();
    }
}

fn delete_namespaces() {
    for ns in [NETNS, PEER_NETNS] {
        let _ = Command::new("ip").args(["netns", "delete", ns]).stderr(Stdio::null()).status();
    }
}

/// `timeout TIMEOUT_S`, inside `netns` or (for loopback targets) on the
/// host: the start of every client command.
fn bounded(netns: Option<&str>, timeout_s: &str) -> Command {
    let mut command = match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns, "timeout"]);
            command
        }
        None => Command::new("timeout"),
    };
    command.arg(timeout_s);
    command
}

/// Runs the client script, inside `netns` or (for loopback targets) on the
/// host, bounded by `timeout_s`; returns its last line.
fn run_client(netns: Option<&str>, timeout_s: &str, script: &Path, args: &[&str]) -> Result<String> {
    let mut command = bounded(netns, timeout_s);
    command.arg("python3").arg(script);
    run_command(command, args)
}

/// Runs a native client program as [`run_client`] runs the script.
fn run_program(netns: Option<&str>, timeout_s: &str, program: &Path, args: &[&str]) -> Result<String> {
    let mut command = bounded(netns, timeout_s);
    command.arg(program);
    run_command(command, args)
}

fn run_command(mut command: Command, args: &[&str]) -> Result<String> {
    let output = command.args(args).output().context("running the bench client")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("client {args:?} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(stdout.lines().last().unwrap_or_default().trim().to_owned())
}

/// Runs the client script inside the bench namespace; returns its last line.
fn client(script: &Path, args: &[&str]) -> Result<String> {
    run_client(Some(NETNS), CLIENT_TIMEOUT_S, script, args)
}

/// A figure the client printed.
fn parse_figure(line: &str, args: &[&str]) -> Result<f64> {
    line.parse().with_context(|| format!("client {args:?} printed {line:?}"))
}

fn measure(script: &Path, args: &[&str]) -> Result<f64> {
    parse_figure(&client(script, args)?, args)
}

fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 { format!("{:.0}%", part / whole * 100.0) } else { "n/a".into() }
}

/// Which half of the benchmark to run (`cargo xtask bench net [hosted|qemu]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Both,
    Hosted,
    Qemu,
}

impl Part {
    pub fn parse(args: &[String]) -> Result<Part> {
        match args {
            [] => Ok(Part::Both),
            [part] if part == "hosted" => Ok(Part::Hosted),
            [part] if part == "qemu" => Ok(Part::Qemu),
            _ => bail!("bench net takes nothing, `hosted` or `qemu`, not {args:?}"),
        }
    }
}

/// Runs the chosen parts and prints the table.
pub fn run(part: Part) -> Result<()> {
    ensure!(is_root() || part == Part::Qemu, "bench net needs root (network namespaces and a TAP device)");
    for program in ["ip", "python3", "timeout"] {
        ensure!(on_path(program), "{program} not found on PATH");
    }
    let state = State::new();
    state.ensure()?;
    let certificates = bootfs::ensure_certificates(&state)?;
    let script = state.dir().join("netbench.py");
    std::fs::write(&script, CLIENT_SCRIPT).with_context(|| format!("writing {}", script.display()))?;
    let (script, ca) = (script.as_path(), certificates.ca.to_str().context("CA path is not UTF-8")?);

    let hosted = match part {
        Part::Both | Part::Hosted => Some(measure_hosted(&certificates, script, ca)?),
        Part::Qemu => None,
    };
    let qemu = match part {
        Part::Both | Part::Qemu => Some(measure_qemu(&state, &certificates, script, ca)?),
        Part::Hosted => None,
    };

    println!();
    println!("| workload | result | target |");
    println!("|---|---|---|");
    if let Some(hosted) = &hosted {
        hosted.print();
    }
    if let Some(qemu) = &qemu {
        qemu.print();
    }
    println!();
    if let Some(hosted) = &hosted {
        println!(
            "Clients: Python socket/ssl (OpenSSL) in netns {NETNS}, 256 KiB per send; TLS rows batch the records of \
             a send into one syscall (as asyncio does) unless marked; rows marked native: tools/netbulk (a thread \
             per connection, rustls on ring, 256 KiB per write, a write's records in one vectored write); medians \
             of {BULK_ROUNDS} interleaved rounds; TLS 1.3 as negotiated: {}",
            hosted.health
        );
    }
    if qemu.is_some() {
        println!("QEMU rows: the release image with bench=sink, clients on the host over 127.0.0.1 port forwards.");
    }
    Ok(())
}

struct HostedFigures {
    plain: [f64; 2],
    tls: [f64; 2],
    tls_per_record: [f64; 2],
    /// The same rows with `tools/netbulk` (native threads, rustls on ring).
    native_plain: [f64; 2],
    native_tls: [f64; 2],
    /// The server's CPU time per byte received in the native rows.
    server_ns_per_byte_plain: [f64; 2],
    server_ns_per_byte_tls: [f64; 2],
    /// The native client's CPU time per byte sent (its threads on the
    /// other core): near 1 / its rate, the client sets the pace, not us.
    client_ns_per_byte_plain: [f64; 2],
    client_ns_per_byte_tls: [f64; 2],
    linux: [f64; 2],
    handshakes: f64,
    health: String,
}

/// Builds the hosted server, sets up the namespaces and measures it and the Linux ceiling.
fn measure_hosted(certificates: &bootfs::Certificates, script: &Path, ca: &str) -> Result<HostedFigures> {
    let mut build = Command::new(crate::cargo_program());
    build.current_dir(repo_root()).args(["build", "--release", "-p", "hosted", "--bin", "rustcore-hosted"]);
    remove_package_env(&mut build);
    run_checked(&mut build)?;
    // NETBENCH_SERVER=PATH measures another build of the server (an A/B in one session).
    let server = std::env::var_os("NETBENCH_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("release/rustcore-hosted"));
    let native = crate::build_host_tool("netbulk")?;

    let mut testbed = Testbed::setup()?;
    // The first program started: its CPU time is measured.
    const SERVER: usize = 0;
    let chain = certificates.server_chain.to_str().context("certificate path is not UTF-8")?;
    let key = certificates.server_key.to_str().context("key path is not UTF-8")?;
    testbed.start(
        NETNS,
        &server,
        &["--tap", TAP, "--ip", "10.99.0.2/24", "--cert", chain, "--key", key, "--sink-port", SINK_PORT],
        "ready",
    )?;
    let python = PathBuf::from("python3");
    testbed.start(
        PEER_NETNS,
        &python,
        &[script.to_str().unwrap_or_default(), "sink", LINUX_PEER_IP, SINK_PORT],
        "ready",
    )?;

    // The automated check that the hosted server answers HTTPS.
    let health = client(script, &["health", HOSTED_IP, HTTPS_PORT, ca])?;
    println!("bench net: GET https://{HOSTED_IP}/health -> {health}");

    let bytes = BULK_BYTES.to_string();
    // Rounds of every bulk row, interleaved so that a noisy minute of the
    // shared machine hits all rows alike; each row reports its median.
    let mut rounds = Vec::new();
    for _ in 0..BULK_ROUNDS {
        let mut round = Vec::new();
        for (ip, port, client) in [
            (HOSTED_IP, SINK_PORT, Client::Plain),
            (HOSTED_IP, TLS_SINK_PORT, Client::TlsBatched),
            (HOSTED_IP, TLS_SINK_PORT, Client::TlsPerRecord),
            (LINUX_PEER_IP, SINK_PORT, Client::Plain),
        ] {
            for conns in ["1", "8"] {
                round.push(measure(script, &client.bulk_args(ip, port, &bytes, conns, ca))?);
            }
        }
        for tls in [false, true] {
            for conns in ["1", "8"] {
                let port = if tls { TLS_SINK_PORT } else { SINK_PORT };
                let mut args = vec![HOSTED_IP, port, bytes.as_str(), conns];
                if tls {
                    args.push(ca);
                }
                let before = testbed.cpu_ns(SERVER);
                let client_before = children_cpu_ns();
                let line = run_program(Some(NETNS), CLIENT_TIMEOUT_S, &native, &args)?;
                let client_after = children_cpu_ns();
                let after = testbed.cpu_ns(SERVER);
                round.push(parse_figure(&line, &args)?);
                // The client splits the bytes over its connections.
                round.push(match (before, after) {
                    (Some(before), Some(after)) => after.saturating_sub(before) as f64 / BULK_BYTES as f64,
                    _ => f64::NAN,
                });
                round.push(client_after.saturating_sub(client_before) as f64 / BULK_BYTES as f64);
            }
        }
        rounds.push(round);
    }
    let median = |row: usize| crate::median(&mut rounds.iter().map(|round| round[row]).collect::<Vec<f64>>());
    // After the 8 script rows, each native run left three figures (rate,
    // server and client ns per byte): plain over 1 and 8 conns, then TLS.
    const SCRIPT_ROWS: usize = 8;
    const NATIVE_FIGURES: usize = 3;
    let native = |tls: bool, figure: usize| {
        [0, 1].map(|conns| median(SCRIPT_ROWS + NATIVE_FIGURES * (2 * usize::from(tls) + conns) + figure))
    };
    let handshakes = measure(script, &["handshakes", HOSTED_IP, HTTPS_PORT, HANDSHAKE_SECONDS, HANDSHAKE_CLIENTS, ca])?;
    drop(testbed);
    Ok(HostedFigures {
        plain: [median(0), median(1)],
        tls: [median(2), median(3)],
        tls_per_record: [median(4), median(5)],
        linux: [median(6), median(7)],
        native_plain: native(false, 0),
        native_tls: native(true, 0),
        server_ns_per_byte_plain: native(false, 1),
        server_ns_per_byte_tls: native(true, 1),
        client_ns_per_byte_plain: native(false, 2),
        client_ns_per_byte_tls: native(true, 2),
        handshakes,
        health,
    })
}

/// CPU time (user and system) of every child reaped so far, in ns: taken
/// around a client's run, what that client used.
fn children_cpu_ns() -> u64 {
    // SAFETY: `rusage` is plain integers, for which all zeroes is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only into the struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0;
    }
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

/// Rounds of the hosted bulk rows (medians are reported).
const BULK_ROUNDS: usize = 3;

/// How `netbench.py bulk` sends.
#[derive(Debug, Clone, Copy)]
enum Client {
    Plain,
    /// TLS records encrypted into a memory BIO, several per `sendall` (as
    /// asyncio does): the client's syscalls match the plain client's.
    TlsBatched,
    /// Python's `ssl.SSLSocket`: one write per 16 KiB record.
    TlsPerRecord,
}

impl Client {
    fn bulk_args<'a>(self, ip: &'a str, port: &'a str, bytes: &'a str, conns: &'a str, ca: &'a str) -> Vec<&'a str> {
        let mut args = vec!["bulk", ip, port, bytes, conns];
        match self {
            Client::Plain => {}
            Client::TlsBatched => args.extend([ca, "batched"]),
            Client::TlsPerRecord => args.push(ca),
        }
        args
    }
}

/// One table row per connection count: `label, 1 conn` and `label, 8 conns`,
/// each figure as `show` writes it.
fn conn_rows(label: &str, figures: [f64; 2], show: impl Fn(f64) -> String) {
    for (conns, figure) in ["1 conn", "8 conns"].iter().zip(figures) {
        println!("| {label}, {conns} | {} | |", show(figure));
    }
}

/// Throughput rows, in MB/s.
fn rate_rows(label: &str, rates: [f64; 2]) {
    conn_rows(label, rates, |rate| format!("{rate:.0} MB/s"));
}

/// `part` as a share of `whole`, a row per connection count.
fn share_rows(label: &str, part: [f64; 2], whole: [f64; 2], target: &str) {
    for ((conns, part), whole) in ["1 conn", "8 conns"].iter().zip(part).zip(whole) {
        println!("| {label}, {conns} | {} | {target} |", percent(part, whole));
    }
}

impl HostedFigures {
    fn print(&self) {
        let gib = BULK_BYTES >> 30;
        rate_rows(&format!("hosted plain TCP bulk, {gib} GiB"), self.plain);
        rate_rows(&format!("hosted TLS bulk, {gib} GiB"), self.tls);
        rate_rows(&format!("hosted TLS bulk, client writing each record on its own, {gib} GiB"), self.tls_per_record);
        println!(
            "| hosted TLS handshake + GET /health, {HANDSHAKE_CLIENTS} clients, {HANDSHAKE_SECONDS} s | {:.0} /s | |",
            self.handshakes
        );
        rate_rows(&format!("Linux TCP over veth (ceiling), {gib} GiB"), self.linux);
        rate_rows(&format!("hosted plain TCP bulk, native client, {gib} GiB"), self.native_plain);
        rate_rows(&format!("hosted TLS bulk, native client, {gib} GiB"), self.native_tls);
        share_rows("TLS bulk / plain TCP", self.tls, self.plain, ">= 70%");
        share_rows("TLS bulk / plain TCP, native client", self.native_tls, self.native_plain, ">= 70%");
        for (label, figures) in [("plain TCP", self.server_ns_per_byte_plain), ("TLS", self.server_ns_per_byte_tls)] {
            let label = format!("hosted server CPU per byte received, {label}, native client");
            conn_rows(&label, figures, |ns| format!("{ns:.3} ns"));
        }
        for (label, figures, rates) in [
            ("plain TCP", self.client_ns_per_byte_plain, self.native_plain),
            ("TLS", self.client_ns_per_byte_tls, self.native_tls),
        ] {
            conn_rows(&format!("native client CPU per byte sent, {label}"), figures, |ns| format!("{ns:.3} ns"));
            // CPU time over wall time: 100% is a core kept busy throughout.
            let busy = [0, 1].map(|i| figures[i] * rates[i] * 1e6 / 1e9);
            conn_rows(&format!("native client CPU over wall time, {label}"), busy, |share| {
                format!("{:.0}%", share * 100.0)
            });
        }
        share_rows(
            "hosted server CPU per byte, plain TCP / TLS, native client",
            self.server_ns_per_byte_plain,
            self.server_ns_per_byte_tls,
            "",
        );
        share_rows("hosted plain TCP / Linux ceiling", self.plain, self.linux, ">= 50%");
    }
}

impl QemuFigures {
    fn print(&self) {
        let (plain_mib, tls_mib) = (QEMU_PLAIN_BYTES >> 20, QEMU_TLS_BYTES >> 20);
        let accel = format!("{:?}", self.accel);
        rate_rows(&format!("QEMU ({accel}) plain TCP bulk via slirp, {plain_mib} MiB"), self.plain);
        rate_rows(&format!("QEMU ({accel}) TLS bulk via slirp, {tls_mib} MiB"), self.tls);
        println!(
            "| QEMU ({accel}) TLS handshake + GET /health, {HANDSHAKE_CLIENTS} clients, {HANDSHAKE_SECONDS} s | {:.0} /s | |",
            self.handshakes
        );
        println!("| QEMU ({accel}) {} | |", self.aead);
        share_rows("QEMU TLS bulk / plain TCP", self.tls, self.plain, ">= 70%");
    }
}

struct QemuFigures {
    accel: crate::qemu::Accel,
    plain: [f64; 2],
    tls: [f64; 2],
    handshakes: f64,
    /// The kernel's boot-time AEAD measurement, as "AEAD seal ... | value" table cells.
    aead: String,
}

/// Runs the client script on the host (loopback targets only).
fn host_client(script: &Path, args: &[&str]) -> Result<f64> {
    parse_figure(&run_client(None, CLIENT_TIMEOUT_S, script, args)?, args)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The appliance in QEMU, through its forwarded ports.
fn measure_qemu(state: &State, certificates: &bootfs::Certificates, script: &Path, ca: &str) -> Result<QemuFigures> {
    use crate::qemu::{NetConfig, VmConfig, run_until_line};
    let elf = crate::image::build()?;
    let (https, plain, tls) = (free_port()?, free_port()?, free_port()?);
    let mut config = VmConfig::new(&elf, "log=info bench=sink");
    config.memory_mib = 1024;
    let credentials = bootfs::ensure_credentials(state)?;
    config.initrd = Some(bootfs::pack(state, certificates, &credentials)?);
    // Without a data disk the kernel serves its health endpoint on the admin
    // port (9443), as with one.
    config.net = Some(NetConfig::User { forwards: vec![(https, 9443), (plain, 5001), (tls, 5443)] });
    let serial = state.logs_dir().join("bench-net-serial.log");
    let (mut child, _) = run_until_line(&config, &serial, "benchmark sinks listening", Duration::from_secs(120))?;
    let result = (|| {
        let (https, plain, tls) = (https.to_string(), plain.to_string(), tls.to_string());
        // DHCP completes shortly after boot: retry the health check briefly.
        let mut healthy = false;
        for _ in 0..40 {
            if run_client(None, "10", script, &["health", "127.0.0.1", &https, ca]).is_ok() {
                healthy = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        ensure!(healthy, "the appliance never answered GET /health on 127.0.0.1:{https}");
        let (plain_bytes, tls_bytes) = (QEMU_PLAIN_BYTES.to_string(), QEMU_TLS_BYTES.to_string());
        let bulk = |port: &str, bytes: &str, conns: &str, client: Client| {
            host_client(script, &client.bulk_args("127.0.0.1", port, bytes, conns, ca))
        };
        Ok(QemuFigures {
            aead: aead_speeds(&std::fs::read_to_string(&serial).unwrap_or_default()),
            accel: config.accel,
            plain: [bulk(&plain, &plain_bytes, "1", Client::Plain)?, bulk(&plain, &plain_bytes, "8", Client::Plain)?],
            tls: [bulk(&tls, &tls_bytes, "1", Client::TlsBatched)?, bulk(&tls, &tls_bytes, "8", Client::TlsBatched)?],
            handshakes: host_client(
                script,
                &["handshakes", "127.0.0.1", &https, HANDSHAKE_SECONDS, HANDSHAKE_CLIENTS, ca],
            )?,
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The kernel's boot-time AEAD measurement from its serial log, as two table cells.
fn aead_speeds(serial: &str) -> String {
    let Some(line) = serial.lines().find(|line| line.contains("AEAD seal speeds measured")) else {
        return "AEAD seal speeds in the guest | not logged".into();
    };
    let field = |name: &str| {
        let key = format!("\"{name}\":");
        line.split_once(&key)
            .map(|(_, rest)| rest.split([',', '}']).next().unwrap_or_default().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "AEAD seal speeds in the guest, AES-128-GCM / AES-256-GCM / ChaCha20-Poly1305 (memcpy) | {} / {} / {} ({}) MB/s",
        field("aes_128_gcm"),
        field("aes_256_gcm"),
        field("chacha20_poly1305"),
        field("memcpy"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn aead_speeds_come_from_the_kernel_log_line() {
        let log = "{\"msg\":\"boot\"}\n{\"msg\":\"AEAD seal speeds measured (MB/s)\",\"aes_128_gcm\":33,\"aes_256_gcm\":10,\"chacha20_poly1305\":16,\"memcpy\":900}\n";
        assert_eq!(
            super::aead_speeds(log),
            "AEAD seal speeds in the guest, AES-128-GCM / AES-256-GCM / ChaCha20-Poly1305 (memcpy) | 33 / 10 / 16 (900) MB/s"
        );
        assert!(super::aead_speeds("").ends_with("not logged"));
    }
}
