//! The appliance over the network, from the host, as a user reaches it:
//! QEMU's user network forwards a local port to the guest's 443, and real
//! clients talk to it — curl with the CA from `xtask::bootfs`, OpenSSL's
//! `s_client` forcing TLS 1.3 and TLS 1.2 — while hostile input (garbage
//! bytes, a truncated handshake) must close only that connection.
//!
//! The second test puts the NIC on a TAP device instead (root only), where
//! QEMU offers checksum offload.
//!
//! `cargo +nightly test -p kernel --test https`

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use xtask::qemu::{NetConfig, VmConfig};
use xtask::state::State;

struct Vm {
    child: Child,
    port: u16,
    ca: PathBuf,
    serial: PathBuf,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(log) = std::fs::read_to_string(&self.serial) {
            println!("--- serial log ---\n{log}");
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// The image, a state directory under `target/image/<name>` and a boot
/// archive with its certificates.
fn prepare(name: &str) -> (PathBuf, State, xtask::bootfs::Certificates, PathBuf) {
    xtask::setup::ensure_host_tools().expect("QEMU is needed");
    let elf = xtask::image::build().expect("image builds");
    let state = State::at(&xtask::repo_root().join("target/image").join(name));
    std::fs::create_dir_all(state.logs_dir()).expect("state dir");
    let certificates = xtask::bootfs::ensure_certificates(&state).expect("certificates");
    let credentials = xtask::bootfs::ensure_credentials(&state).expect("credentials");
    let archive = xtask::bootfs::pack(&state, &certificates, &credentials).expect("boot archive");
    (elf, state, certificates, archive)
}

fn boot() -> Vm {
    let (elf, state, certificates, archive) = prepare("https-test");
    let port = free_port();
    let mut config = VmConfig::new(&elf, "log=debug");
    config.memory_mib = 512;
    config.initrd = Some(archive);
    // No data disk: the health responder on the admin port is what answers.
    config.net = Some(NetConfig::User { forwards: vec![(port, 9443)] });
    let serial = state.serial_log();
    let (child, _) = xtask::qemu::run_until_line(&config, &serial, "\"msg\":\"ready\"", Duration::from_secs(120))
        .expect("the VM boots");
    Vm { child, port, ca: certificates.ca, serial }
}

fn curl_health(vm: &Vm) -> Option<String> {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10", "--cacert"])
        .arg(&vm.ca)
        .arg(format!("https://localhost:{}/health", vm.port))
        .output()
        .ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The first successful health response, retrying while DHCP completes.
fn wait_healthy(vm: &Vm) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(body) = curl_health(vm) {
            return body;
        }
        assert!(Instant::now() < deadline, "no health response within 60 s");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn s_client(vm: &Vm, version_flag: &str, ca: &Path) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-brief", "-ign_eof", version_flag, "-connect"])
        .arg(format!("127.0.0.1:{}", vm.port))
        .args(["-servername", "localhost", "-verify_return_error", "-CAfile"])
        .arg(ca)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().expect("stdin").write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let output = child.wait_with_output().expect("openssl finishes");
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Sends `bytes` and expects the server to close the connection.
fn closed_after(vm: &Vm, bytes: &[u8]) -> bool {
    let mut stream = TcpStream::connect(("127.0.0.1", vm.port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let _ = stream.write_all(bytes);
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue, // an alert, then the close
            Err(error) => return error.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[test]
fn https_health_tls_versions_and_hostile_input() {
    let vm = boot();
    let body = wait_healthy(&vm);
    assert!(body.contains("\"status\":\"ok\""), "{body}");

    let tls13 = s_client(&vm, "-tls1_3", &vm.ca);
    assert!(tls13.contains("Protocol version: TLSv1.3"), "{tls13}");
    assert!(tls13.contains("\"status\":\"ok\""), "{tls13}");
    let tls12 = s_client(&vm, "-tls1_2", &vm.ca);
    assert!(tls12.contains("Protocol version: TLSv1.2"), "{tls12}");
    assert!(tls12.contains("\"status\":\"ok\""), "{tls12}");

    // Garbage instead of a ClientHello.
    let garbage: Vec<u8> = (0..2000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
    assert!(closed_after(&vm, &garbage), "garbage must close the connection");
    assert!(curl_health(&vm).is_some(), "the next client is served after garbage");

    // A ClientHello record header promising more than it delivers, then EOF.
    let truncated = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03];
    {
        let mut stream = TcpStream::connect(("127.0.0.1", vm.port)).expect("connect");
        stream.write_all(&truncated).expect("write");
    }
    assert!(curl_health(&vm).is_some(), "the next client is served after a truncated handshake");

    // The server saw both bad handshakes and recorded why (not a vacuous
    // close by QEMU's port forwarder).
    let log = std::fs::read_to_string(&vm.serial).expect("serial log");
    let failures = log.lines().filter(|l| l.contains("\"msg\":\"handshake failed")).count();
    assert!(failures >= 2, "expected two failed handshakes in the log, found {failures}");
    assert!(!log.contains("FATAL"));
}

/// A TAP device in the root namespace, deleted on drop.
struct Tap {
    name: &'static str,
}

impl Tap {
    fn create(name: &'static str, host_address: &str) -> Tap {
        let ip = |args: &[&str]| xtask::ip(args).unwrap_or_else(|error| panic!("{error}"));
        let _ = Command::new("ip").args(["link", "delete", name]).stderr(std::process::Stdio::null()).status();
        ip(&["tuntap", "add", "dev", name, "mode", "tap"]);
        let tap = Tap { name };
        ip(&["addr", "add", host_address, "dev", name]);
        ip(&["link", "set", name, "up"]);
        tap
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "delete", self.name]).status();
    }
}

/// With a TAP backend QEMU's virtio-net offers checksum offload (slirp
/// offers none): the driver negotiates it, TCP checksums become the
/// driver's (`net::offload`), and TLS and a bulk transfer still work both
/// ways. Needs root for the TAP device; skipped otherwise.
#[test]
fn virtio_net_offloads_over_a_tap_device() {
    if !xtask::is_root() || !xtask::on_path("ip") {
        println!("skipped: needs root and ip(8) for a TAP device");
        return;
    }
    let (elf, state, certificates, archive) = prepare("https-tap-test");
    let _tap = Tap::create("rccsum0", "10.97.0.1/24");
    let mut config = VmConfig::new(&elf, "log=info bench=sink ip=10.97.0.2/24");
    config.memory_mib = 512;
    config.initrd = Some(archive);
    config.net = Some(NetConfig::Tap { ifname: "rccsum0".into() });
    let serial = state.serial_log();
    let (child, _) = xtask::qemu::run_until_line(&config, &serial, "\"msg\":\"ready\"", Duration::from_secs(120))
        .expect("the VM boots");
    let vm = Vm { child, port: 9443, ca: certificates.ca.clone(), serial: serial.clone() };
    let log = std::fs::read_to_string(&serial).expect("serial log");
    let nic = log.lines().find(|line| line.contains("virtio-net at")).expect("a virtio-net line");
    assert!(nic.contains("\"checksum_offload\":true"), "offload not negotiated: {nic}");
    assert!(nic.contains("\"segmentation_offload\":true"), "TSO not negotiated: {nic}");
    assert!(nic.contains("\"receive_segments\":true"), "guest TSO not negotiated: {nic}");

    // TLS both ways (the handshake's certificate flight is several segments
    // from the guest), retried while the TAP link comes up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let health = loop {
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "10", "--resolve", "localhost:9443:10.97.0.2"])
            .arg("--cacert")
            .arg(&vm.ca)
            .arg("https://localhost:9443/health")
            .output()
            .expect("curl runs");
        if output.status.success() {
            break String::from_utf8_lossy(&output.stdout).into_owned();
        }
        assert!(Instant::now() < deadline, "no health response over the TAP device within 60 s");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    // 32 MiB into the plain sink: it closes only after reading to EOF, so
    // a clean close means every segment arrived and passed its checksum.
    let mut stream = TcpStream::connect(("10.97.0.2", 5001)).expect("connect to the sink");
    stream.set_write_timeout(Some(Duration::from_secs(60))).expect("timeout");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
    let start = Instant::now();
    for _ in 0..32 {
        stream.write_all(&block).expect("the sink takes every byte");
    }
    stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("the sink closes after EOF");
    assert!(rest.is_empty());
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "32 MiB into the guest through virtio-net with checksum and segmentation offload in {seconds:.2} s ({:.0} MB/s)",
        (32 << 20) as f64 / seconds / 1e6
    );

    // 32 MiB out of the guest's source: smoltcp sends segments of up to
    // 64 KiB that QEMU's TAP backend cuts (TSO); every byte is checked.
    let mut stream = TcpStream::connect(("10.97.0.2", 5002)).expect("connect to the source");
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let total: u64 = 32 << 20;
    let start = Instant::now();
    stream.write_all(&total.to_le_bytes()).expect("ask the source");
    let mut received = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let read = stream.read(&mut buf).expect("the source sends until it closes");
        if read == 0 {
            break;
        }
        for (offset, &byte) in buf[..read].iter().enumerate() {
            let expected = ((received + offset as u64) % 251) as u8;
            assert_eq!(byte, expected, "byte {} from the source", received + offset as u64);
        }
        received += read as u64;
    }
    assert_eq!(received, total, "the source closed early");
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "32 MiB out of the guest through virtio-net with segmentation offload in {seconds:.2} s ({:.0} MB/s)",
        total as f64 / seconds / 1e6
    );
    drop(vm);
}
