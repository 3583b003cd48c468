//! `cargo xtask bench s3`: the same S3 load (`tools/s3bench`) against
//! Rustcore `hosted` (our TCP/IP and TLS on a TAP device in a network
//! namespace, a file disk with real flushes), Rustcore in QEMU, Garage
//! (defaults, then with `data_fsync` and `metadata_fsync`) and s3s-fs, one
//! server at a time, in one run that prints one table. Needs root (the
//! namespace and the TAP device).
//!
//! Garage and s3s-fs are installed from crates.io with `cargo install` into
//! `~/.cache/rustcore/peers` on first use (never into the repository); one
//! that cannot be installed gets a row saying why.
//!
//! `hosted` listens on 10.99.0.2 inside the namespace `rc-s3bench`; the
//! client runs in the same namespace and verifies the certificate for
//! `localhost` (the name it was issued for) while connecting to 10.99.0.2,
//! so neither a hosts file nor a bench-only certificate is needed.
//! Everything else listens on 127.0.0.1 and the client runs on the host.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::state::State;
use crate::{bootfs, ip, is_root, on_path, remove_package_env, repo_root, run_checked, target_dir};

const NETNS: &str = "rc-s3bench";
const TAP: &str = "rcs3tap0";
const HOSTED_IP: &str = "10.99.0.2";
const HOSTED_PLAIN_PORT: u16 = 8080;
/// The hosted data file: sparse, on the real disk (not tmpfs), since the
/// store flushes (`fdatasync`) before it acknowledges.
const HOSTED_DATA_BYTES: u64 = 8 << 30;
const QEMU_DISK_BYTES: u64 = 2 << 30;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
const SECRET_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const BUCKET: &str = "bench";
const CLIENTS: [usize; 3] = [1, 8, 64];
const WORKLOADS: [(&str, &str); 5] = [
    ("put-small", "4 KiB PUT"),
    ("get-small", "4 KiB GET"),
    ("put-large", "16 MiB PUT"),
    ("get-large", "16 MiB GET"),
    ("list", "ListObjectsV2 page (1000 of 10k keys)"),
];

/// How much load a server gets.
#[derive(Clone, Debug)]
struct Load {
    repeats: usize,
    seconds: f64,
    list_keys: usize,
    large_clients_max: usize,
}

impl Load {
    fn full(quick: bool) -> Load {
        Load { repeats: if quick { 1 } else { 3 }, seconds: 1.0, list_keys: 10_000, large_clients_max: 64 }
    }

    /// QEMU under TCG is 10–50× slower: 1,000 list keys (one page; writing
    /// 10k takes minutes), no 64-client 16 MiB rows (1 GiB per round), one
    /// repeat.
    fn qemu() -> Load {
        Load { repeats: 1, seconds: 1.0, list_keys: 1_000, large_clients_max: 8 }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--repeats".into(),
            self.repeats.to_string(),
            "--seconds".into(),
            self.seconds.to_string(),
            "--list-keys".into(),
            self.list_keys.to_string(),
            "--large-clients-max".into(),
            self.large_clients_max.to_string(),
            "--wait-ready".into(),
            "30".into(),
        ]
    }
}

/// One row group of the table: a server as measured (or why not).
struct Measured {
    label: String,
    transport: String,
    /// (workload, clients) -> figures.
    results: BTreeMap<(String, usize), Figures>,
    notes: Vec<String>,
    failure: Option<String>,
}

impl Measured {
    fn failed(label: &str, why: String) -> Measured {
        eprintln!("bench s3: {label}: not measured: {why}");
        Measured {
            label: label.into(),
            transport: "-".into(),
            results: BTreeMap::new(),
            notes: Vec::new(),
            failure: Some(why),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Figures {
    ops_s: f64,
    mb_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    repeats: usize,
}

/// A process that is killed (and reaped) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The namespace with the TAP device; dropping it deletes both.
struct Namespace;

impl Namespace {
    fn create() -> Result<Namespace> {
        delete_namespace();
        let namespace = Namespace;
        ip(&["netns", "add", NETNS])?;
        ip(&["-n", NETNS, "link", "set", "lo", "up"])?;
        ip(&["-n", NETNS, "tuntap", "add", "dev", TAP, "mode", "tap"])?;
        ip(&["-n", NETNS, "addr", "add", "10.99.0.1/24", "dev", TAP])?;
        ip(&["-n", NETNS, "link", "set", TAP, "up"])?;
        Ok(namespace)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        delete_namespace();
    }
}

fn delete_namespace() {
    let _ = Command::new("ip").args(["netns", "delete", NETNS]).stderr(Stdio::null()).status();
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `command` with stdout and stderr piped; returns once a line of
/// either contains `needle`. Later lines are read and dropped (a server
/// that logs every request must not block on a full pipe).
fn start(mut command: Command, needle: &str, what: &str) -> Result<Guard> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = Guard(command.spawn().with_context(|| format!("starting {what}"))?);
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        child.0.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.0.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let (tx, needle) = (tx.clone(), needle.to_owned());
        std::thread::spawn(move || {
            let mut tail = Vec::new();
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if line.contains(&needle) {
                    let _ = tx.send(line);
                } else if tail.len() < 20 {
                    tail.push(line);
                }
            }
            let _ = tx.send(format!("(exited) {}", tail.join(" | ")));
        });
    }
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("(exited)") => {
                if let Some(status) = child.0.try_wait()? {
                    bail!("{what} exited ({status}) before printing {needle:?}: {line}");
                }
            }
            Ok(_) => return Ok(child),
            Err(_) => bail!("{what} did not print {needle:?} within {READY_TIMEOUT:?}"),
        }
    }
}

/// User plus system CPU seconds of a live process.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// Runs the load generator (inside `netns` if given) against one server.
fn measure(
    label: &str,
    client: &Path,
    netns: Option<&str>,
    target: &[String],
    load: &Load,
    server_pid: u32,
) -> Result<Measured> {
    let mut command = match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns]).arg(client);
            command
        }
        None => Command::new(client),
    };
    // The bench key first: a server with its own key passes it in `target`,
    // and later arguments win in s3bench's parser.
    command.args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, "--bucket", BUCKET]);
    command.args(load.args()).args(target);
    command.stdout(Stdio::piped()).stderr(Stdio::inherit());
    eprintln!("bench s3: {label}: running the load ({} repeat(s) of the matrix)", load.repeats);
    let (cpu_before, started) = (cpu_seconds(server_pid), Instant::now());
    let mut child = Guard(command.spawn().context("starting s3bench")?);
    let stdout = child.0.stdout.take().context("no stdout")?;
    let mut measured = Measured {
        label: label.into(),
        transport: String::new(),
        results: BTreeMap::new(),
        notes: Vec::new(),
        failure: None,
    };
    let (mut cell_errors, mut reconnects) = (Vec::new(), 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let fields: BTreeMap<&str, &str> = line.split_whitespace().filter_map(|f| f.split_once('=')).collect();
        if let Some(transport) = line.strip_prefix("transport ") {
            measured.transport = transport.to_string();
        } else if line.starts_with("cell ") {
            eprintln!("bench s3: {label}: {line}");
            reconnects += fields.get("reconnects").and_then(|r| r.parse::<u64>().ok()).unwrap_or(0);
            if fields.get("errors").is_some_and(|e| *e != "0") {
                cell_errors.push(line.clone());
            }
        } else if line.starts_with("result ") {
            let number = |name: &str| fields.get(name).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
            let key = (
                fields.get("workload").copied().unwrap_or_default().to_string(),
                fields.get("clients").and_then(|c| c.parse().ok()).unwrap_or(0),
            );
            let figures = Figures {
                ops_s: number("ops_s"),
                mb_s: number("mb_s"),
                p50_ms: number("p50_ms"),
                p99_ms: number("p99_ms"),
                errors: number("errors") as u64,
                repeats: number("repeats") as usize,
            };
            measured.results.insert(key, figures);
        }
    }
    let status = child.0.wait()?;
    ensure!(status.success(), "s3bench failed ({status})");
    let wall = started.elapsed().as_secs_f64();
    if let (Some(before), Some(after)) = (cpu_before, cpu_seconds(server_pid)) {
        measured.notes.push(format!("server CPU {:.0} s over {wall:.0} s of load", after - before));
    }
    if reconnects > 0 {
        measured.notes.push(format!("{reconnects} request(s) retried once on a new connection after a reset"));
    }
    if let Some(first) = cell_errors.first() {
        measured.notes.push(format!("{} cell(s) with errors, first: {first}", cell_errors.len()));
    }
    Ok(measured)
}

/// Builds a release binary of this workspace.
fn build_workspace_bin(package: &str, bin: &str) -> Result<PathBuf> {
    let mut build = Command::new(crate::cargo_program());
    build.current_dir(repo_root()).args(["build", "--release", "-p", package, "--bin", bin]);
    remove_package_env(&mut build);
    run_checked(&mut build)?;
    Ok(target_dir().join("release").join(bin))
}

/// Where peers are installed: outside the repository, kept across runs.
fn peers_root() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/rustcore/peers"))
}

/// Installs `krate` from crates.io unless its binary is there; returns the
/// binary and what happened, for the notes.
fn ensure_peer(krate: &str, bin: &str, extra: &[&str]) -> Result<(PathBuf, String)> {
    let root = peers_root()?;
    let path = root.join("bin").join(bin);
    // How long the first install took, kept next to the binaries.
    let took_file = root.join(format!("{krate}.install-seconds"));
    if path.is_file() {
        let took = std::fs::read_to_string(&took_file).map(|t| format!(" (first install took {} s)", t.trim()));
        return Ok((path, format!("{krate}: installed in {}{}", root.display(), took.unwrap_or_default())));
    }
    eprintln!("bench s3: installing {krate} from crates.io into {} (first run only; minutes)", root.display());
    let started = Instant::now();
    // The nightly of this repo: some peers need a newer rustc than stable
    // here (s3s-fs 0.17 needs 1.96). Run from the cache directory, outside
    // the repo's toolchain file.
    std::fs::create_dir_all(&root)?;
    let mut install = Command::new("cargo");
    install.current_dir(&root).args(["+nightly", "install", "--locked", "--root"]).arg(&root).arg(krate).args(extra);
    remove_package_env(&mut install);
    install.env_remove("CARGO").env_remove("RUSTUP_TOOLCHAIN").env_remove("CARGO_TARGET_DIR");
    run_checked(&mut install).with_context(|| format!("cargo install {krate}"))?;
    ensure!(path.is_file(), "cargo install {krate} succeeded but {} is missing", path.display());
    let took = format!("{:.0}", started.elapsed().as_secs_f64());
    std::fs::write(&took_file, &took)?;
    Ok((path, format!("{krate}: installed now in {took} s")))
}

/// `garage --version`-style first line of `binary args`.
fn version_of(binary: &Path, args: &[&str]) -> String {
    Command::new(binary)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_default()
}

/// Options: `--quick` (one repeat), `--only a,b` (labels' first words:
/// hosted, qemu, garage, s3s-fs).
pub fn run(args: &[String]) -> Result<()> {
    let mut quick = false;
    let mut only: Option<Vec<String>> = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => only = Some(iter.next().context("--only needs a list")?.split(',').map(String::from).collect()),
            other => {
                bail!("unknown option {other:?} for bench s3 (options: --quick, --only hosted,qemu,garage,s3s-fs)")
            }
        }
    }
    let wanted = |name: &str| only.as_ref().is_none_or(|only| only.iter().any(|o| o == name));
    ensure!(is_root(), "bench s3 needs root (a network namespace and a TAP device for hosted)");
    for program in ["ip", "openssl"] {
        ensure!(on_path(program), "{program} not found on PATH");
    }
    let started = Instant::now();
    let client = crate::build_host_tool("s3bench")?;
    let state = State::new();
    state.ensure()?;
    let work = state.dir().join("bench-s3");
    std::fs::create_dir_all(&work)?;
    let load = Load::full(quick);
    let mut rows: Vec<Measured> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    if wanted("hosted") {
        rows.extend(
            measure_hosted(&state, &work, &client, &load)
                .unwrap_or_else(|e| vec![Measured::failed("Rustcore hosted", format!("{e:#}"))]),
        );
    }
    if wanted("qemu") {
        rows.push(measure_qemu(&work, &client).unwrap_or_else(|e| Measured::failed("Rustcore QEMU", format!("{e:#}"))));
    }
    if wanted("garage") {
        match ensure_peer("garage", "garage", &[]) {
            Ok((garage, how)) => {
                notes.push(format!("{how}; {}", version_of(&garage, &["--version"])));
                for fsync in [false, true] {
                    let label = if fsync { "Garage fsync HTTP" } else { "Garage HTTP" };
                    rows.push(
                        measure_garage(&garage, &work, &client, &load, fsync)
                            .unwrap_or_else(|e| Measured::failed(label, format!("{e:#}"))),
                    );
                }
            }
            Err(e) => rows.push(Measured::failed("Garage HTTP", format!("{e:#}"))),
        }
    }
    if wanted("s3s-fs") {
        match ensure_peer("s3s-fs", "s3s-fs", &["--features", "binary"]) {
            Ok((s3s, how)) => {
                notes.push(format!("{how}; {}", version_of(&s3s, &["--version"])));
                rows.push(
                    measure_s3s(&s3s, &work, &client, &load)
                        .unwrap_or_else(|e| Measured::failed("s3s-fs HTTP", format!("{e:#}"))),
                );
            }
            Err(e) => rows.push(Measured::failed("s3s-fs HTTP", format!("{e:#}"))),
        }
    }
    // The servers are stopped: drop what they stored (gigabytes), keep logs.
    for data in
        ["hosted-data.img", "garage/data", "garage/meta", "garage-fsync/data", "garage-fsync/meta", "s3s-fs/root"]
    {
        remove_quietly(&work.join(data));
    }
    remove_quietly(&State::at(&work.join("qemu")).dir().join("bench-disk.img"));
    println!();
    print!("{}", table(&rows, &load));
    println!();
    for row in &rows {
        let mut line = format!("- {}: {}", row.label, row.transport);
        for note in &row.notes {
            let _ = write!(line, "; {note}");
        }
        if let Some(failure) = &row.failure {
            let _ = write!(line, "; NOT MEASURED: {failure}");
        }
        println!("{line}");
    }
    for note in notes {
        println!("- {note}");
    }
    println!(
        "- each figure is the median of {} run(s) of {:.1} s per cell (QEMU: {} run, {} list keys, 16 MiB rows up to 8 \
         clients); one keep-alive connection per client; client: tools/s3bench (tokio, hyper, rustls), 1 thread; \
         whole bench {:.0} s",
        load.repeats,
        load.seconds,
        Load::qemu().repeats,
        Load::qemu().list_keys,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn remove_quietly(path: &Path) {
    let _ = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
}

/// The table: one row per workload and client count, one column per server.
fn table(rows: &[Measured], load: &Load) -> String {
    let mut out = String::new();
    let _ = write!(out, "| workload | clients |");
    for row in rows {
        let _ = write!(out, " {} |", row.label);
    }
    let _ = writeln!(out, " hosted HTTP / Garage fsync HTTP (ops/s) |");
    let _ = writeln!(out, "|---|---|{}---|", "---|".repeat(rows.len()));
    for (workload, title) in WORKLOADS {
        for clients in CLIENTS {
            let _ = write!(out, "| {title} | {clients} |");
            for row in rows {
                let cell = match (&row.failure, row.results.get(&(workload.to_string(), clients))) {
                    (Some(_), _) => "not measured".to_string(),
                    (None, Some(f)) => figures_text(f, workload, load.repeats),
                    (None, None) => "-".to_string(),
                };
                let _ = write!(out, " {cell} |");
            }
            let ratio = ratio(rows, "Rustcore hosted HTTP", "Garage fsync HTTP", workload, clients);
            let _ = writeln!(out, " {ratio} |");
        }
    }
    let _ = writeln!(
        out,
        "\nCells: ops/s · MB/s · p50/p99 latency in ms (medians of {} run(s); a cell whose first run took over 8 s \
         ran once); `-`: not run for this server.",
        load.repeats
    );
    out
}

fn figures_text(f: &Figures, workload: &str, repeats: usize) -> String {
    let mut text = if workload.ends_with("large") {
        format!("{:.1}/s · {:.0} MB/s · {:.0}/{:.0} ms", f.ops_s, f.mb_s, f.p50_ms, f.p99_ms)
    } else {
        format!("{:.0}/s · {:.1} MB/s · {:.1}/{:.1} ms", f.ops_s, f.mb_s, f.p50_ms, f.p99_ms)
    };
    if f.repeats < repeats {
        let _ = write!(text, " ({} run)", f.repeats);
    }
    if f.errors > 0 {
        let _ = write!(text, " ({} errors)", f.errors);
    }
    text
}

fn ratio(rows: &[Measured], ours: &str, theirs: &str, workload: &str, clients: usize) -> String {
    let get = |label: &str| {
        rows.iter()
            .find(|r| r.label == label && r.failure.is_none())
            .and_then(|r| r.results.get(&(workload.to_string(), clients)))
            .map(|f| f.ops_s)
    };
    match (get(ours), get(theirs)) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "-".into(),
    }
}

/// `hosted` in the namespace: one server, measured over TLS (443) and over
/// plain HTTP (`--plain-port`), each with its own bucket-free store state.
fn measure_hosted(state: &State, work: &Path, client: &Path, load: &Load) -> Result<Vec<Measured>> {
    let server = build_workspace_bin("hosted", "rustcore-hosted")?;
    // S3BENCH_SERVER=PATH measures another build of the server (an A/B in one session).
    let server = std::env::var_os("S3BENCH_SERVER").map(PathBuf::from).unwrap_or(server);
    let certificates = bootfs::ensure_certificates(state)?;
    let credentials = bootfs::ensure_credentials(state)?;
    // The admin key made by `ensure_credentials` is the only key the store
    // has at first: the bench uses it (the peers get the fixed bench key).
    let keys_dir = credentials.admin_file.parent().context("keys directory")?.to_path_buf();
    let data = work.join("hosted-data.img");
    let _ = std::fs::remove_file(&data);
    let _namespace = Namespace::create()?;
    let mut command = Command::new("ip");
    command.args(["netns", "exec", NETNS]).arg(&server);
    command.args(["--tap", TAP, "--ip", "10.99.0.2/24", "--cert"]).arg(&certificates.server_chain);
    command.arg("--key").arg(&certificates.server_key).arg("--data").arg(&data);
    command.args(["--data-bytes", &HOSTED_DATA_BYTES.to_string(), "--keys"]).arg(&keys_dir);
    command.args(["--plain-port", &HOSTED_PLAIN_PORT.to_string()]);
    // Its JSON log (one access-log line per request at the default level,
    // as the appliance writes to its serial console) says when the store
    // is open; `start` keeps draining it.
    let hosted = start(command, "\"msg\":\"s3 listening\"", "rustcore-hosted")?;
    let credentials_args = |mut target: Vec<String>| {
        // The hosted store knows the admin key, not the peers' bench key:
        // later arguments win in s3bench's parser.
        target.extend([
            "--access-key".into(),
            credentials.access_key_id.clone(),
            "--secret-key".into(),
            credentials.secret_access_key.clone(),
            "--create-bucket".into(),
        ]);
        target
    };
    let ca = certificates.ca.to_string_lossy().into_owned();
    let tls_target = credentials_args(vec![
        "--connect".into(),
        format!("{HOSTED_IP}:443"),
        "--tls-name".into(),
        "localhost".into(),
        "--ca".into(),
        ca,
    ]);
    let plain_target = credentials_args(vec![
        "--connect".into(),
        format!("{HOSTED_IP}:{HOSTED_PLAIN_PORT}"),
        "--host".into(),
        "localhost".into(),
    ]);
    let pid = hosted.0.id();
    let mut tls = measure("Rustcore hosted TLS", client, Some(NETNS), &tls_target, load, pid)?;
    tls.notes.push("FileDisk on 8 I/O helper threads (up to 8 requests in flight, O_DIRECT + fdatasync)".into());
    let plain = measure("Rustcore hosted HTTP", client, Some(NETNS), &plain_target, load, pid)?;
    Ok(vec![tls, plain])
}

/// The release image in QEMU with its own state (keys, certificates, a
/// fresh data disk), S3 on a forwarded 127.0.0.1 port (the path includes
/// QEMU's user network). Smaller load: TCG emulates every instruction.
fn measure_qemu(work: &Path, client: &Path) -> Result<Measured> {
    use crate::qemu::{NetConfig, VmConfig, ensure_disk, run_until_line};
    let elf = crate::image::build()?;
    let state = State::at(&work.join("qemu"));
    state.ensure()?;
    let disk = state.dir().join("bench-disk.img");
    let _ = std::fs::remove_file(&disk);
    ensure_disk(&disk, QEMU_DISK_BYTES)?;
    let certificates = bootfs::ensure_certificates(&state)?;
    let credentials = bootfs::ensure_credentials(&state)?;
    let port = free_port()?;
    let mut config = VmConfig::new(&elf, "log=info");
    config.memory_mib = 1024;
    config.initrd = Some(bootfs::pack(&state, &certificates, &credentials)?);
    config.virtio_blk = Some(disk);
    config.net = Some(NetConfig::User { forwards: vec![(port, 443), (free_port()?, 9443)] });
    let accel = config.accel;
    let serial = state.logs_dir().join("bench-s3-serial.log");
    eprintln!("bench s3: booting the image in QEMU ({accel:?})");
    let (child, _) = run_until_line(&config, &serial, "\"msg\":\"s3 listening\"", Duration::from_secs(180))?;
    let qemu = Guard(child);
    let target = vec![
        "--connect".into(),
        format!("127.0.0.1:{port}"),
        "--tls-name".into(),
        "localhost".into(),
        "--ca".into(),
        certificates.ca.to_string_lossy().into_owned(),
        "--access-key".into(),
        credentials.access_key_id.clone(),
        "--secret-key".into(),
        credentials.secret_access_key.clone(),
        "--create-bucket".into(),
    ];
    let mut measured = measure("Rustcore QEMU TLS", client, None, &target, &Load::qemu(), qemu.0.id())?;
    measured.notes.push(format!("{accel:?}, 1 vCPU, virtio-blk on a sparse file, via QEMU user-network port forward"));
    Ok(measured)
}

/// Waits until `port` on 127.0.0.1 accepts connections (or `server` exits).
fn wait_for_port(server: &mut Guard, port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = server.0.try_wait()? {
            bail!("{what} exited ({status}) before listening on {port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} did not listen on 127.0.0.1:{port} within {READY_TIMEOUT:?}")
}

/// Starts a peer with its output in `log` (not piped: nothing can block).
fn spawn_logged(mut command: Command, log: &Path, what: &str) -> Result<Guard> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    command.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
    Ok(Guard(command.spawn().with_context(|| format!("starting {what}"))?))
}

/// Runs a `garage` CLI command against the node of `config`; its stdout.
fn garage_cli(garage: &Path, config: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new(garage).arg("-c").arg(config).args(args).output().context("running garage")?;
    ensure!(
        output.status.success(),
        "garage {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Garage on 127.0.0.1, single node (replication factor 1, lmdb), fresh
/// directories on the real disk; plain HTTP (Garage has no TLS of its own:
/// its documentation puts a reverse proxy in front).
fn measure_garage(garage: &Path, work: &Path, client: &Path, load: &Load, fsync: bool) -> Result<Measured> {
    let label = if fsync { "Garage fsync HTTP" } else { "Garage HTTP" };
    let dir = work.join(if fsync { "garage-fsync" } else { "garage" });
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (s3_port, rpc_port, admin_port) = (free_port()?, free_port()?, free_port()?);
    let fsync_lines = if fsync { "metadata_fsync = true\ndata_fsync = true\n" } else { "" };
    let config = dir.join("garage.toml");
    std::fs::write(
        &config,
        format!(
            "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"lmdb\"\nreplication_factor = 1\n{fsync_lines}\
             rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\nrpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_secret = \"{secret}\"\n\n[s3_api]\ns3_region = \"us-east-1\"\napi_bind_addr = \"127.0.0.1:{s3_port}\"\n\
             root_domain = \".s3.garage.localhost\"\n\n[admin]\napi_bind_addr = \"127.0.0.1:{admin_port}\"\n",
            meta = dir.join("meta").display(),
            data = dir.join("data").display(),
            secret = SECRET_KEY,
        ),
    )?;
    let mut command = Command::new(garage);
    command.arg("-c").arg(&config).arg("server");
    let mut server = spawn_logged(command, &dir.join("garage.log"), "garage server")?;
    wait_for_port(&mut server, rpc_port, "garage server")?;
    let node = garage_cli(garage, &config, &["node", "id", "-q"])?;
    let node = node.trim().split('@').next().unwrap_or_default().to_string();
    garage_cli(garage, &config, &["layout", "assign", "-z", "dc1", "-c", "10G", &node])?;
    garage_cli(garage, &config, &["layout", "apply", "--version", "1"])?;
    garage_cli(garage, &config, &["key", "import", "--yes", "-n", "bench", ACCESS_KEY, SECRET_KEY])?;
    garage_cli(garage, &config, &["bucket", "create", BUCKET])?;
    garage_cli(garage, &config, &["bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "bench"])?;
    wait_for_port(&mut server, s3_port, "garage S3 API")?;
    let target = vec!["--connect".into(), format!("127.0.0.1:{s3_port}")];
    let mut measured = measure(label, client, None, &target, load, server.0.id())?;
    measured.notes.push(if fsync {
        "metadata_fsync = true, data_fsync = true".into()
    } else {
        "defaults (metadata_fsync and data_fsync off)".into()
    });
    Ok(measured)
}

/// s3s-fs on 127.0.0.1 with its defaults, a fresh root directory on the
/// real disk; plain HTTP (its binary has no TLS option).
fn measure_s3s(s3s: &Path, work: &Path, client: &Path, load: &Load) -> Result<Measured> {
    let dir = work.join("s3s-fs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("root"))?;
    let port = free_port()?;
    let mut command = Command::new(s3s);
    command.args([
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--access-key",
        ACCESS_KEY,
        "--secret-key",
        SECRET_KEY,
    ]);
    command.arg(dir.join("root"));
    let mut server = spawn_logged(command, &dir.join("s3s-fs.log"), "s3s-fs")?;
    wait_for_port(&mut server, port, "s3s-fs")?;
    let target = vec!["--connect".into(), format!("127.0.0.1:{port}"), "--create-bucket".into()];
    measure("s3s-fs HTTP", client, None, &target, load, server.0.id())
}
