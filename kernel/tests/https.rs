//! The appliance over the network, from the host, as a user reaches it:
//! QEMU's user network forwards a local port to the guest's 443, and real
//! clients talk to it — curl with the CA from `xtask::bootfs`, OpenSSL's
//! `s_client` forcing TLS 1.3 and TLS 1.2 — while hostile input (garbage
//! bytes, a truncated handshake) must close only that connection.
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

fn boot() -> Vm {
    xtask::setup::ensure_host_tools().expect("QEMU is needed");
    let elf = xtask::image::build().expect("image builds");
    let root = xtask::repo_root().join("target/image/https-test");
    let state = State::at(&root);
    std::fs::create_dir_all(state.logs_dir()).expect("state dir");
    let certificates = xtask::bootfs::ensure_certificates(&state).expect("certificates");
    let credentials = xtask::bootfs::ensure_credentials(&state).expect("credentials");
    let archive = xtask::bootfs::pack(&state, &certificates, &credentials).expect("boot archive");
    let port = free_port();
    let mut config = VmConfig::new(&elf, "log=debug");
    config.memory_mib = 512;
    config.initrd = Some(archive);
    // No data disk: the health responder on the admin port is what answers.
    config.net = Some(NetConfig { forwards: vec![(port, 9443)] });
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
