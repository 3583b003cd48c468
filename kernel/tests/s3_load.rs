//! Load and fault tests of the appliance in QEMU (issue 6): many concurrent
//! TLS connections with no error and no heap leak, slow and hostile clients
//! timed out while others are served, SIGKILL of QEMU during a write load
//! with every acknowledged PUT readable after the reboot, and a full disk.
//!
//! The clients are `kernel/tests/clients/load.py` (Python standard library,
//! run with the clients' virtualenv of [`xtask::clients::ensure`]); each
//! test boots its own VM on free ports with its own state directory under
//! `target/image/s3-load/`. The tests take turns (one VM at a time: the
//! machine has two cores).
//!
//! Short variant (inside `cargo xtask test`, a few minutes under TCG):
//! `cargo +nightly test -p kernel --test s3_load -- --nocapture`.
//! Long variant (`cargo xtask test --long` sets it): `RUSTCORE_LONG_TESTS=1`
//! before the same command: 1,000 connections, 100 slowloris clients, 20
//! kill/boot rounds.
//!
//! Every check is a row of a table printed at the end of its test; a test
//! fails on any failed row that is not in [`KNOWN_SERVER_BUGS`].

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use xtask::bootfs::{Certificates, Credentials};
use xtask::clients::Clients;
use xtask::qemu::{NetConfig, VmConfig};
use xtask::state::State;

/// Checks that fail because of a known server bug: (test, part of the
/// check's name, reason). Their failure is reported as KNOWN and does not
/// fail the test; a pass is reported so the entry can be removed.
const KNOWN_SERVER_BUGS: &[(&str, &str, &str)] = &[];

const MIB: u64 = 1 << 20;
/// The guest's memory, as `cargo xtask run` gives it (the kernel serves
/// about one connection per MiB of heap: half of it at ~512 KiB each).
const MEMORY_MIB: u32 = 1024;
/// The kernel command-line option the hostile test asks for, so that it
/// need not wait 30 s per timeout.
const HOSTILE_READ_TIMEOUT_S: u64 = 5;
/// The server's read timeout when the option above is not honoured
/// (`S3Config::read_timeout`).
const DEFAULT_READ_TIMEOUT_S: u64 = 30;
/// How long the concurrent test's client waits for one connection to open.
/// QEMU's port forward listens with a backlog of 1: under a burst of
/// connects on a loaded host it drops SYNs, and the client's kernel retries
/// them after 1, 2, 4, 8, 16 and 32 s (63 s in all before the last try).
const CONCURRENT_OPEN_TIMEOUT_S: u64 = 150;
/// Handshakes the concurrent test's client runs at once.
const CONCURRENT_HANDSHAKES_AT_ONCE: usize = 4;
/// The concurrent test's server read timeout: longer than the longest
/// open, so the connections that wait, idle, for the last ones to open are
/// not closed under them (`slow_and_hostile_clients` tests the read timeout).
const CONCURRENT_READ_TIMEOUT_S: u64 = CONCURRENT_OPEN_TIMEOUT_S + 30;
/// Fixed seeds of the kill/boot rounds; a failure names its round's seed.
const CRASH_SEEDS: [u64; 20] = [
    0x5eed_0001,
    0x5eed_0002,
    0x5eed_0003,
    0x5eed_0004,
    0x5eed_0005,
    0x5eed_0006,
    0x5eed_0007,
    0x5eed_0008,
    0x5eed_0009,
    0x5eed_000a,
    0x5eed_000b,
    0x5eed_000c,
    0x5eed_000d,
    0x5eed_000e,
    0x5eed_000f,
    0x5eed_0010,
    0x5eed_0011,
    0x5eed_0012,
    0x5eed_0013,
    0x5eed_0014,
];
/// Heap growth over the baseline accepted after the load (the store's
/// index and caches may settle a little differently; one leaked socket per
/// connection would be hundreds of MiB).
const HEAP_TOLERANCE_BYTES: u64 = 2 * MIB;

/// One VM at a time.
static TURN: Mutex<()> = Mutex::new(());

fn long() -> bool {
    std::env::var("RUSTCORE_LONG_TESTS").is_ok_and(|v| v == "1")
}

// ---------------------------------------------------------------- results

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Ok,
    Fail,
    Known,
    Pending,
}

struct Row {
    check: String,
    status: Status,
    detail: String,
}

struct Report {
    test: &'static str,
    rows: Vec<Row>,
    figures: Vec<(String, String)>,
}

impl Report {
    fn new(test: &'static str) -> Report {
        Report { test, rows: Vec::new(), figures: Vec::new() }
    }

    fn add(&mut self, check: &str, ok: bool, detail: String) -> bool {
        let known = KNOWN_SERVER_BUGS.iter().find(|(t, c, _)| *t == self.test && check.contains(c));
        let (status, detail) = match (ok, known) {
            (true, None) => (Status::Ok, detail),
            (true, Some(_)) => (Status::Ok, format!("{detail} (passes: remove it from KNOWN_SERVER_BUGS)")),
            (false, None) => (Status::Fail, detail),
            (false, Some((_, _, reason))) => (Status::Known, format!("{detail} [known: {reason}]")),
        };
        println!("s3_load: {} {check}: {status:?} {detail}", self.test);
        self.rows.push(Row { check: check.to_string(), status, detail });
        ok
    }

    fn pending(&mut self, check: &str, detail: String) {
        println!("s3_load: {} {check}: PENDING {detail}", self.test);
        self.rows.push(Row { check: check.to_string(), status: Status::Pending, detail });
    }

    fn figure(&mut self, name: &str, value: impl ToString) {
        self.figures.push((name.to_string(), value.to_string()));
    }

    /// Adds a client run's result lines and figures.
    fn absorb(&mut self, ran: &ClientRun, prefix: &str) {
        for (name, value) in &ran.figures {
            self.figure(&format!("{prefix}{name}"), value);
        }
        self.absorb_results(ran, prefix);
    }

    /// Adds a client run's result lines only.
    fn absorb_results(&mut self, ran: &ClientRun, prefix: &str) {
        for (check, ok, detail) in &ran.results {
            self.add(&format!("{prefix}{check}"), *ok, detail.clone());
        }
        if !ran.success {
            self.add(&format!("{prefix}client ran"), false, ran.failure.clone());
        }
    }

    /// Prints the table and fails on any failed row.
    fn finish(self, vm: &Vm) {
        let width = self.rows.iter().map(|r| r.check.len()).max().unwrap_or(5).max(5);
        let mut out = format!("\n{} | {:<width$} | result  | detail\n", self.test, "check");
        for row in &self.rows {
            let status = match row.status {
                Status::Ok => "ok",
                Status::Fail => "FAIL",
                Status::Known => "KNOWN",
                Status::Pending => "PENDING",
            };
            let detail = row.detail.replace('\n', " ");
            let _ = writeln!(out, "{} | {:<width$} | {status:<7} | {detail}", self.test, row.check);
        }
        for (name, value) in &self.figures {
            let _ = writeln!(out, "{} figure: {name} = {value}", self.test);
        }
        println!("{out}");
        let failed = self.rows.iter().filter(|r| r.status == Status::Fail).count();
        if failed > 0 {
            println!("--- serial log tail ---\n{}", vm.serial_tail(60));
        }
        assert_eq!(failed, 0, "{failed} {} checks failed:{out}", self.test);
    }
}

// ---------------------------------------------------------------- the VM

/// What every test needs: the image, keys, certificates and clients.
struct Lab {
    elf: PathBuf,
    archive: PathBuf,
    state: State,
    certificates: Certificates,
    credentials: Credentials,
    clients: Clients,
    work: PathBuf,
}

fn lab(name: &str, disk_bytes: u64) -> Lab {
    xtask::setup::ensure_host_tools().expect("QEMU is needed");
    let clients = xtask::clients::ensure().expect("the client virtualenv installs");
    let elf = xtask::image::build().expect("image builds");
    let root = xtask::repo_root().join("target/image/s3-load").join(name);
    let state = State::at(&root);
    std::fs::create_dir_all(state.logs_dir()).expect("state dir");
    // A log left by an earlier run would count as this run's first boot.
    let _ = std::fs::remove_file(state.serial_log());
    let disk = state.virtio_disk();
    let _ = std::fs::remove_file(&disk);
    xtask::qemu::ensure_disk(&disk, disk_bytes).expect("data disk");
    let certificates = xtask::bootfs::ensure_certificates(&state).expect("certificates");
    let credentials = xtask::bootfs::ensure_credentials(&state).expect("credentials");
    let archive = xtask::bootfs::pack(&state, &certificates, &credentials).expect("boot archive");
    let work = root.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    Lab { elf, archive, state, certificates, credentials, clients, work }
}

struct Vm {
    config: VmConfig,
    serial: PathBuf,
    /// Every earlier boot's serial log, for the final FATAL check.
    earlier_serial: String,
    port: u16,
    admin_port: u16,
    child: Option<Child>,
}

impl Vm {
    fn new(lab: &Lab, cmdline: &str) -> Vm {
        let port = free_port();
        let admin_port = free_port();
        let mut config = VmConfig::new(&lab.elf, cmdline);
        config.memory_mib = MEMORY_MIB;
        config.initrd = Some(lab.archive.clone());
        config.virtio_blk = Some(lab.state.virtio_disk());
        config.net = Some(NetConfig::User { forwards: vec![(port, 443), (admin_port, 9443)] });
        Vm { config, serial: lab.state.serial_log(), earlier_serial: String::new(), port, admin_port, child: None }
    }

    fn boot(&mut self) -> Duration {
        self.try_boot().unwrap_or_else(|e| panic!("the appliance boots and serves S3: {e}"))
    }

    fn try_boot(&mut self) -> Result<Duration, String> {
        if let Ok(log) = std::fs::read_to_string(&self.serial) {
            self.earlier_serial.push_str(&log);
        }
        let (child, took) = xtask::qemu::run_until_line(
            &self.config,
            &self.serial,
            "\"msg\":\"s3 listening\"",
            Duration::from_secs(180),
        )
        .map_err(|e| format!("{e:#}"))?;
        self.child = Some(child);
        Ok(took)
    }

    /// SIGKILL: the guest gets no chance to flush anything.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    fn serial_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// No `FATAL` or panic in any boot's serial log so far.
    fn check_alive(&self, report: &mut Report, when: &str) {
        let log = format!("{}{}", self.earlier_serial, self.log());
        let fatal = log.lines().find(|l| l.contains("FATAL") || l.contains("panicked"));
        let running = self.child.as_ref().is_some_and(|c| xtask::state::is_alive(c.id()));
        report.add(
            &format!("appliance alive {when} (no FATAL or panic in the serial log)"),
            fatal.is_none() && running,
            match fatal {
                Some(line) => line.chars().take(300).collect(),
                None if !running => String::from("QEMU exited"),
                None => String::from("running"),
            },
        );
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

// ---------------------------------------------------------------- the clients

struct ClientRun {
    success: bool,
    failure: String,
    results: Vec<(String, bool, String)>,
    figures: Vec<(String, String)>,
}

impl ClientRun {
    fn figure(&self, name: &str) -> Option<&str> {
        self.figures.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

fn load_command(lab: &Lab, vm: &Vm, command: &str, extra: &[String]) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/load.py");
    let ca = std::fs::canonicalize(&lab.certificates.ca).expect("CA path");
    let mut cmd = Command::new(&lab.clients.python);
    cmd.arg(script)
        .arg(command)
        .arg("127.0.0.1")
        .arg(vm.port.to_string())
        .arg(ca)
        .arg(&lab.credentials.admin_token)
        .args(extra)
        .stdin(Stdio::null());
    cmd
}

/// Runs load.py `command` to completion (killed after `timeout`) and
/// parses its `RESULT` and `FIGURE` lines.
fn run_client(lab: &Lab, vm: &Vm, command: &str, extra: &[String], timeout: Duration) -> ClientRun {
    let out_path = lab.work.join(format!("{command}.stdout"));
    let err_path = lab.work.join(format!("{command}.stderr"));
    let mut cmd = load_command(lab, vm, command, extra);
    cmd.stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    let shown = xtask::display_command(&cmd);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let status = xtask::wait_with_timeout(&mut child, timeout).expect("wait");
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let mut results = Vec::new();
    let mut figures = Vec::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["RESULT", check, status, detail] => results.push((check.to_string(), *status == "ok", detail.to_string())),
            ["FIGURE", name, value] => figures.push((name.to_string(), value.to_string())),
            _ => {}
        }
    }
    let tail: String = stderr.trim().chars().rev().take(800).collect::<Vec<_>>().into_iter().rev().collect();
    let failure = match status {
        Some(s) if s.success() => String::new(),
        Some(s) => format!("{command}: {s}: {tail}"),
        None => format!("{command}: timed out after {timeout:?}: {tail}"),
    };
    ClientRun { success: status.is_some_and(|s| s.success()), failure, results, figures }
}

// ---------------------------------------------------------------- heap

/// `rustcore_heap_bytes_in_use` from the admin API's Prometheus text
/// (`GET /metrics` on 9443), if the kernel exposes it.
fn heap_from_metrics(lab: &Lab, vm: &Vm) -> Option<u64> {
    let ca = std::fs::canonicalize(&lab.certificates.ca).ok()?;
    let out = Command::new(&lab.clients.curl)
        .args(["--silent", "--max-time", "30", "--cacert"])
        .arg(ca)
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", lab.credentials.admin_token))
        .arg(format!("https://localhost:{}/metrics", vm.admin_port))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    };
    // Small objects' bytes wait in memory for their write-back, a bounded
    // cache the store reports: not held by connections, so not counted.
    let unwritten = gauge("rustcore_unwritten_chunk_bytes").unwrap_or(0);
    gauge("rustcore_heap_bytes_in_use").map(|heap| heap.saturating_sub(unwritten))
}

/// `heap_bytes_in_use` of the first heartbeat (logged every 60 s) that
/// appears in the serial log after `from_byte`.
fn next_heartbeat(vm: &Vm, from_byte: u64, timeout: Duration) -> Option<(u64, u64)> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let mut file = std::fs::File::open(&vm.serial).ok()?;
        file.seek(SeekFrom::Start(from_byte)).ok()?;
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        for (offset, line) in line_offsets(&text) {
            if line.contains("\"msg\":\"heartbeat\"") && line.ends_with('}') {
                let value = json_number(line, "heap_bytes_in_use")?;
                return Some((value, from_byte + (offset + line.len()) as u64));
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}

fn line_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut at = 0;
    text.split_inclusive('\n').map(move |line| {
        let start = at;
        at += line.len();
        (start, line.trim_end())
    })
}

fn json_number(line: &str, field: &str) -> Option<u64> {
    let needle = format!("\"{field}\":");
    let rest = &line[line.find(&needle)? + needle.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// How the heap is read: the admin API when it has the metric, else the
/// 60 s heartbeat (long variant only: too slow for the short one).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum HeapSource {
    Metrics,
    Heartbeat,
    None,
}

/// The heap once it has settled: from /metrics, polled until it is within
/// the tolerance of `target` or stops falling (TIME-WAIT and closing
/// sockets are released over about 20 s); from the heartbeat, the first
/// one at least 25 s after the load ended.
/// Acknowledges every queued object event: the queue is bounded (10,000
/// events) but holds a PUT's event until a consumer takes it, which a heap
/// comparison must not mistake for a leak.
fn ack_events(lab: &Lab, vm: &Vm) {
    if let Ok(ca) = std::fs::canonicalize(&lab.certificates.ca) {
        let _ = Command::new(&lab.clients.curl)
            .args(["--silent", "--max-time", "60", "-X", "POST", "--cacert"])
            .arg(ca)
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", lab.credentials.admin_token))
            .arg(format!("https://localhost:{}/v1/events/ack?upto={}", vm.admin_port, u64::MAX - 1))
            .output();
    }
}

fn settled_heap(lab: &Lab, vm: &Vm, source: HeapSource, target: Option<u64>) -> Option<u64> {
    ack_events(lab, vm);
    match source {
        HeapSource::Metrics => {
            let start = Instant::now();
            let mut last = heap_from_metrics(lab, vm)?;
            let mut stable_since = Instant::now();
            // Without a target (the baseline): at least TIME-WAIT (10 s)
            // plus the close timeout (10 s), then no fall for 12 s.
            let minimum = if target.is_some() { Duration::from_secs(2) } else { Duration::from_secs(22) };
            while start.elapsed() < Duration::from_secs(60) {
                if start.elapsed() > minimum
                    && (target.is_some_and(|t| last <= t + HEAP_TOLERANCE_BYTES)
                        || stable_since.elapsed() > Duration::from_secs(12))
                {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
                let now = heap_from_metrics(lab, vm)?;
                if now + 64 * 1024 < last {
                    stable_since = Instant::now();
                }
                last = now;
            }
            Some(last)
        }
        HeapSource::Heartbeat => {
            let ended = Instant::now();
            let mut from = std::fs::metadata(&vm.serial).map(|m| m.len()).unwrap_or(0);
            loop {
                let (value, next) = next_heartbeat(vm, from, Duration::from_secs(75))?;
                if ended.elapsed() >= Duration::from_secs(25) {
                    return Some(value);
                }
                from = next;
            }
        }
        HeapSource::None => None,
    }
}

// ---------------------------------------------------------------- tests

/// Many TLS connections open at the same time, each doing small PUTs and
/// GETs; no error, and the heap back to its baseline afterwards. Short:
/// two rounds of 200. Long: a round of 200 with its heap check, then 1,000.
#[test]
fn concurrent_connections() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let rounds: &[usize] = if long() { &[200, 1000] } else { &[200, 200] };
    let mut report = Report::new("concurrent");
    let lab = lab("concurrent", xtask::state::DISK_SIZE_BYTES);
    let mut vm = Vm::new(&lab, &format!("log=info s3.read_timeout_s={CONCURRENT_READ_TIMEOUT_S}"));
    let booted = vm.boot();
    report.figure("boot_to_listening_s", format!("{:.1}", booted.as_secs_f64()));
    let source = if heap_from_metrics(&lab, &vm).is_some() {
        HeapSource::Metrics
    } else if long() {
        HeapSource::Heartbeat
    } else {
        HeapSource::None
    };
    report.figure("heap_source", format!("{source:?}"));
    let args = |n: usize| -> Vec<String> {
        // One seed: every round overwrites the same keys, so the index does
        // not grow between the heap readings.
        vec![
            "--connections".into(),
            n.to_string(),
            "--seed".into(),
            "1".into(),
            "--requests".into(),
            "2".into(),
            "--open-timeout".into(),
            CONCURRENT_OPEN_TIMEOUT_S.to_string(),
            // Few connects at once, or QEMU's accept queue (above) drops
            // most of a burst; the guest does one handshake at a time anyway.
            "--handshake-parallel".into(),
            CONCURRENT_HANDSHAKES_AT_ONCE.to_string(),
        ]
    };
    let timeout = Duration::from_secs(if long() { 900 } else { 300 });
    // Warm-up at the largest round's size: the keys created and the socket
    // set, task slab and session cache grown to their high-water marks, so
    // that what the heap gains after a round of the same size is a leak.
    let warm = run_client(&lab, &vm, "concurrent", &args(*rounds.iter().max().unwrap_or(&200)), timeout);
    report.absorb(&warm, "warm-up: ");
    let baseline = settled_heap(&lab, &vm, source, None);
    if let Some(bytes) = baseline {
        report.figure("heap_baseline_bytes", bytes);
    }
    let alive = |vm: &Vm| vm.child.as_ref().is_some_and(|c| xtask::state::is_alive(c.id()));
    for (round, &connections) in rounds.iter().enumerate() {
        let round = round + 1;
        let ran = run_client(&lab, &vm, "concurrent", &args(connections), timeout);
        report.absorb(&ran, &format!("round {round}: "));
        vm.check_alive(&mut report, &format!("after {connections} connections"));
        // Short: the heap is checked after the last round only.
        if !long() && round < rounds.len() {
            continue;
        }
        let check = format!(
            "heap back to baseline after {connections} connections closed (within {} MiB)",
            HEAP_TOLERANCE_BYTES / MIB
        );
        let after = if alive(&vm) { settled_heap(&lab, &vm, source, baseline) } else { None };
        match (source, baseline, after) {
            (HeapSource::None, ..) => report.pending(
                &check,
                "no `rustcore_heap_bytes_in_use` in GET /metrics on the admin port yet; the short variant \
                 does not wait for the 60 s heartbeat"
                    .into(),
            ),
            (_, Some(before), Some(after)) => {
                report.figure(&format!("round {round}: heap_after_bytes"), after);
                report.add(
                    &check,
                    after <= before + HEAP_TOLERANCE_BYTES,
                    format!(
                        "baseline {:.1} MiB, after {:.1} MiB ({:+.2} MiB), source {source:?}",
                        before as f64 / MIB as f64,
                        after as f64 / MIB as f64,
                        (after as f64 - before as f64) / MIB as f64
                    ),
                );
            }
            (_, before, after) => {
                report.add(&check, false, format!("heap not readable: before {before:?}, after {after:?}"));
            }
        }
    }
    report.finish(&vm);
}

/// Slowloris, a body that never finishes, a stalled TLS handshake and a
/// client that stops reading a large GET, all at once, while a normal
/// client keeps doing PUTs and GETs.
#[test]
fn slow_and_hostile_clients() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut report = Report::new("hostile");
    let lab = lab("hostile", xtask::state::DISK_SIZE_BYTES);
    let mut vm = Vm::new(&lab, &format!("log=info s3.read_timeout_s={HOSTILE_READ_TIMEOUT_S}"));
    vm.boot();
    // The kernel says which read timeout it serves with on the
    // `s3 listening` line; without that, it is the 30 s default.
    let listening = vm.log().lines().find(|l| l.contains("\"msg\":\"s3 listening\"")).unwrap_or_default().to_string();
    let read_timeout_s = match json_number(&listening, "read_timeout_s") {
        Some(s) => s,
        None => {
            report.pending(
                "s3.read_timeout_s on the kernel command line",
                format!(
                    "the `s3 listening` line does not report read_timeout_s: assuming the default \
                     {DEFAULT_READ_TIMEOUT_S} s (each timeout check waits that long)"
                ),
            );
            DEFAULT_READ_TIMEOUT_S
        }
    };
    report.figure("read_timeout_s", read_timeout_s);
    let slowloris = if long() { 100 } else { 10 };
    let mut args: Vec<String> = vec![
        "--read-timeout".into(),
        read_timeout_s.to_string(),
        "--slack".into(),
        "15".into(),
        "--drip".into(),
        "2".into(),
        "--slowloris".into(),
        slowloris.to_string(),
        "--serial".into(),
        vm.serial.to_string_lossy().into_owned(),
    ];
    if long() {
        args.push("--long".into());
    }
    let start = Instant::now();
    let ran = run_client(&lab, &vm, "hostile", &args, Duration::from_secs(600));
    report.figure("seconds", format!("{:.0}", start.elapsed().as_secs_f64()));
    report.absorb(&ran, "");
    vm.check_alive(&mut report, "after the hostile clients");
    report.finish(&vm);
}

/// xorshift64*, for the kill moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A write load, QEMU killed with SIGKILL at a random moment, a boot on
/// the same disk, every acknowledged PUT read back; 3 rounds (20 long).
#[test]
fn crash_durability() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let rounds = if long() { 20 } else { 3 };
    let mut report = Report::new("crash");
    let lab = lab("crash", 4 << 30);
    let mut vm = Vm::new(&lab, "log=info");
    vm.boot();
    let log = lab.work.join("puts.log");
    let observed = lab.work.join("observed.json");
    for (round, &seed) in CRASH_SEEDS.iter().take(rounds).enumerate() {
        let mut rng = Rng(seed);
        // The kill lands 0.2 to 4 s after the round's first acknowledged PUT.
        let delay = Duration::from_millis(200 + rng.next() % 3800);
        let acked_before = count_acks(&log);
        let mut writer = load_command(
            &lab,
            &vm,
            "write",
            &[
                "--seed".into(),
                seed.to_string(),
                "--round".into(),
                round.to_string(),
                "--log".into(),
                log.to_string_lossy().into_owned(),
            ],
        )
        .stdout(std::fs::File::create(lab.work.join("write.stdout")).expect("stdout"))
        .stderr(std::fs::File::create(lab.work.join("write.stderr")).expect("stderr"))
        .spawn()
        .expect("the writer starts");
        let start = Instant::now();
        while count_acks(&log) == acked_before && start.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let first_ack = start.elapsed();
        std::thread::sleep(delay);
        vm.kill();
        let _ = writer.kill();
        let _ = writer.wait();
        let acked = count_acks(&log) - acked_before;
        if !report.add(
            &format!("round {round} (seed {seed:#x}): write load acknowledged PUTs before the kill"),
            acked > 0,
            format!(
                "{acked} acknowledged; first after {:.1} s, kill {} ms later",
                first_ack.as_secs_f64(),
                delay.as_millis()
            ),
        ) {
            break;
        }
        let booted = match vm.try_boot() {
            Ok(took) => took,
            Err(error) => {
                report.add(&format!("round {round} (seed {seed:#x}): boot after the kill"), false, error);
                println!("s3_load: crash round {round} failed: seed {seed:#x}");
                break;
            }
        };
        let ran = run_client(
            &lab,
            &vm,
            "verify",
            &[
                "--log".into(),
                log.to_string_lossy().into_owned(),
                "--observed".into(),
                observed.to_string_lossy().into_owned(),
            ],
            Duration::from_secs(900),
        );
        report.figure(&format!("round {round} seed"), format!("{seed:#x}"));
        report.figure(&format!("round {round} reboot_to_listening_s"), format!("{:.1}", booted.as_secs_f64()));
        if let Some(v) = ran.figure(&format!("round {round}")) {
            report.figure(&format!("round {round} in the log"), v);
        }
        if let Some(v) = ran.figure("keys_with_acked_put") {
            report.figure(&format!("round {round} keys with an acknowledged PUT verified (all rounds)"), v);
        }
        let ok_before = report.rows.iter().filter(|r| r.status == Status::Fail).count();
        report.absorb_results(&ran, &format!("round {round} (seed {seed:#x}): "));
        if report.rows.iter().filter(|r| r.status == Status::Fail).count() > ok_before {
            println!("s3_load: crash round {round} failed: seed {seed:#x}");
            break;
        }
    }
    vm.check_alive(&mut report, &format!("after {rounds} kill/boot rounds"));
    report.finish(&vm);
}

fn count_acks(log: &Path) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.starts_with("K ")).count()
}

/// A 64 MiB data disk filled with 1 MiB objects until the server refuses;
/// everything before intact, deletes free space that PUTs use again, and
/// all of it survives a kill and reboot.
#[test]
fn disk_full() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut report = Report::new("disk-full");
    let disk_bytes = 64 * MIB;
    let lab = lab("disk-full", disk_bytes);
    let mut vm = Vm::new(&lab, "log=info");
    vm.boot();
    report.figure("disk_mib", disk_bytes / MIB);
    let state = lab.work.join("fill.json");
    let state_arg =
        vec!["--object-bytes".into(), MIB.to_string(), "--state".into(), state.to_string_lossy().into_owned()];
    let start = Instant::now();
    let ran = run_client(&lab, &vm, "fill", &state_arg, Duration::from_secs(900));
    report.figure("fill_and_refill_seconds", format!("{:.0}", start.elapsed().as_secs_f64()));
    report.absorb(&ran, "");
    vm.check_alive(&mut report, "after filling the disk");
    vm.kill();
    vm.boot();
    let ran = run_client(&lab, &vm, "fill-verify", &state_arg, Duration::from_secs(600));
    report.absorb(&ran, "");
    vm.check_alive(&mut report, "after the reboot");
    report.finish(&vm);
}
