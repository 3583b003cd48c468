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

/// Runs the client script, inside `netns` or (for loopback targets) on the
/// host, bounded by `timeout_s`; returns its last line.
fn run_client(netns: Option<&str>, timeout_s: &str, script: &Path, args: &[&str]) -> Result<String> {
    let mut command = match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns, "timeout"]);
            command
        }
        None => Command::new("timeout"),
    };
    let output =
        command.args([timeout_s, "python3"]).arg(script).args(args).output().context("running the bench client")?;
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

/// Builds the hosted server, sets up the namespaces and prints the table.
pub fn run() -> Result<()> {
    ensure!(is_root(), "bench net needs root (network namespaces and a TAP device)");
    for program in ["ip", "python3", "timeout"] {
        ensure!(on_path(program), "{program} not found on PATH");
    }
    let mut build = Command::new(crate::cargo_program());
    build.current_dir(repo_root()).args(["build", "--release", "-p", "hosted", "--bin", "rustcore-hosted"]);
    remove_package_env(&mut build);
    run_checked(&mut build)?;
    let server = target_dir().join("release/rustcore-hosted");

    let state = State::new();
    state.ensure()?;
    let certificates = bootfs::ensure_certificates(&state)?;
    let script = state.dir().join("netbench.py");
    std::fs::write(&script, CLIENT_SCRIPT).with_context(|| format!("writing {}", script.display()))?;
    let (script, ca) = (script.as_path(), certificates.ca.to_str().context("CA path is not UTF-8")?);

    let mut testbed = Testbed::setup()?;
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
    let bulk = |ip: &str, port: &str, conns: &str, tls: bool| {
        let mut args = vec!["bulk", ip, port, &bytes, conns];
        if tls {
            args.push(ca);
        }
        measure(script, &args)
    };
    let plain = [bulk(HOSTED_IP, SINK_PORT, "1", false)?, bulk(HOSTED_IP, SINK_PORT, "8", false)?];
    let tls = [bulk(HOSTED_IP, TLS_SINK_PORT, "1", true)?, bulk(HOSTED_IP, TLS_SINK_PORT, "8", true)?];
    let linux = [bulk(LINUX_PEER_IP, SINK_PORT, "1", false)?, bulk(LINUX_PEER_IP, SINK_PORT, "8", false)?];
    let handshakes = measure(script, &["handshakes", HOSTED_IP, HTTPS_PORT, HANDSHAKE_SECONDS, HANDSHAKE_CLIENTS, ca])?;
    drop(testbed);
    let qemu = measure_qemu(&state, &certificates, script, ca)?;

    let gib = BULK_BYTES >> 30;
    println!();
    println!("| workload | result | target |");
    println!("|---|---|---|");
    for (i, conns) in ["1 conn", "8 conns"].iter().enumerate() {
        println!("| hosted plain TCP bulk, {gib} GiB, {conns} | {:.0} MB/s | |", plain[i]);
    }
    for (i, conns) in ["1 conn", "8 conns"].iter().enumerate() {
        println!("| hosted TLS bulk, {gib} GiB, {conns} | {:.0} MB/s | |", tls[i]);
    }
    println!(
        "| hosted TLS handshake + GET /health, {HANDSHAKE_CLIENTS} clients, {HANDSHAKE_SECONDS} s | {handshakes:.0} /s | |"
    );
    for (i, conns) in ["1 conn", "8 conns"].iter().enumerate() {
        println!("| Linux TCP over veth (ceiling), {gib} GiB, {conns} | {:.0} MB/s | |", linux[i]);
    }
    for (i, conns) in ["1 conn", "8 conns"].iter().enumerate() {
        println!("| TLS bulk / plain TCP, {conns} | {} | >= 70% |", percent(tls[i], plain[i]));
    }
    for (i, conns) in ["1 conn", "8 conns"].iter().enumerate() {
        println!("| hosted plain TCP / Linux ceiling, {conns} | {} | >= 50% |", percent(plain[i], linux[i]));
    }
    let (plain_mib, tls_mib) = (QEMU_PLAIN_BYTES >> 20, QEMU_TLS_BYTES >> 20);
    let accel = format!("{:?}", qemu.accel);
    for (i, conns) in ["1 conn", "8 conns"].iter().enumerate() {
        println!("| QEMU ({accel}) plain TCP bulk via slirp, {plain_mib} MiB, {conns} | {:.0} MB/s | |", qemu.plain[i]);
    }
    for (i, conns) in ["1 conn", "8 conns"].iter().enumerate() {
        println!("| QEMU ({accel}) TLS bulk via slirp, {tls_mib} MiB, {conns} | {:.0} MB/s | |", qemu.tls[i]);
    }
    println!(
        "| QEMU ({accel}) TLS handshake + GET /health, {HANDSHAKE_CLIENTS} clients, {HANDSHAKE_SECONDS} s | {:.0} /s | |",
        qemu.handshakes
    );
    for (i, conns) in ["1 conn", "8 conns"].iter().enumerate() {
        println!("| QEMU TLS bulk / plain TCP, {conns} | {} | >= 70% |", percent(qemu.tls[i], qemu.plain[i]));
    }
    println!();
    println!("Clients: Python socket/ssl (OpenSSL) in netns {NETNS}; TLS 1.3 as negotiated: {health}");
    println!("QEMU rows: the release image with bench=sink, clients on the host over 127.0.0.1 port forwards.");
    Ok(())
}

struct QemuFigures {
    accel: crate::qemu::Accel,
    plain: [f64; 2],
    tls: [f64; 2],
    handshakes: f64,
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
        let bulk = |port: &str, bytes: &str, conns: &str, tls: bool| {
            let mut args = vec!["bulk", "127.0.0.1", port, bytes, conns];
            if tls {
                args.push(ca);
            }
            host_client(script, &args)
        };
        Ok(QemuFigures {
            accel: config.accel,
            plain: [bulk(&plain, &plain_bytes, "1", false)?, bulk(&plain, &plain_bytes, "8", false)?],
            tls: [bulk(&tls, &tls_bytes, "1", true)?, bulk(&tls, &tls_bytes, "8", true)?],
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
