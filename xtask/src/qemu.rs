//! The QEMU command line for a Rustcore VM, and running it: to its exit
//! ([`run_to_exit`], for tests) or until a serial line appears
//! ([`run_until_line`], for boot-time measurement and `run --detach`).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub const QEMU: &str = "qemu-system-x86_64";
/// qboot boots a PVH kernel in ~50-100 ms where SeaBIOS takes 130-180 ms
/// under TCG (and seconds under nested KVM); used when installed.
pub const QBOOT_ROM: &str = "/usr/share/qemu/qboot.rom";
/// Cache mode of the data disks. `writeback` is QEMU's default: the guest's
/// flush commands reach the host file, which is what durability relies on.
pub const DRIVE_CACHE: &str = "writeback";
/// QEMU's exit code when the guest writes 0x10 to isa-debug-exit (2v+1).
pub const EXIT_PASS: i32 = 33;
/// QEMU's exit code when the guest writes 0x11 to isa-debug-exit.
pub const EXIT_FAIL: i32 = 35;
/// Interval at which the serial log and the child are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    fn args(self) -> [&'static str; 4] {
        match self {
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
            // Nested "PVM" KVM aborts on MSR 0x10a unless arch-capabilities
            // is masked; invtsc lets the guest trust the TSC.
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host,-arch-capabilities,+invtsc"],
        }
    }
}

/// `RUSTCORE_ACCEL=kvm|tcg` if set, else KVM only where the host has real
/// KVM (a writable /dev/kvm and a loaded kvm_intel or kvm_amd module; a
/// nested PVM host emulates every instruction and is slower than TCG).
pub fn choose_accel() -> Accel {
    let env = std::env::var("RUSTCORE_ACCEL").ok();
    choose_accel_from(env.as_deref(), real_kvm_available)
}

/// [`choose_accel`] with its inputs given: the override, and the probe that
/// is consulted only without a valid override.
pub fn choose_accel_from(env_override: Option<&str>, kvm_available: impl FnOnce() -> bool) -> Accel {
    match env_override.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        Some("kvm") => return Accel::Kvm,
        Some("tcg") => return Accel::Tcg,
        Some("") | None => {}
        Some(other) => eprintln!("xtask: ignoring RUSTCORE_ACCEL={other:?} (expected kvm or tcg)"),
    }
    if kvm_available() { Accel::Kvm } else { Accel::Tcg }
}

fn real_kvm_available() -> bool {
    let writable = OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
    writable && (Path::new("/sys/module/kvm_intel").exists() || Path::new("/sys/module/kvm_amd").exists())
}

/// The virtio-net NIC's other end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetConfig {
    /// QEMU's user network with TCP forwards from 127.0.0.1 on the host
    /// (no offloads: slirp has no `virtio_net_hdr`).
    User {
        /// (host port, guest port).
        forwards: Vec<(u16, u16)>,
    },
    /// An existing TAP device (created by the caller, who needs root): the
    /// device then offers checksum and segmentation offload.
    Tap { ifname: String },
}

#[derive(Clone, Debug)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub cmdline: String,
    pub initrd: Option<PathBuf>,
    pub memory_mib: u32,
    pub virtio_blk: Option<PathBuf>,
    pub nvme: Option<PathBuf>,
    pub net: Option<NetConfig>,
    pub accel: Accel,
    /// A `-cpu` model instead of the accelerator's default (tests use it to
    /// boot on a CPU that lacks required features).
    pub cpu: Option<String>,
}

/// Where the guest's COM1 goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Serial {
    Stdio,
    File(PathBuf),
}

impl VmConfig {
    /// A VM with no devices beyond the serial port and isa-debug-exit.
    pub fn new(kernel: impl Into<PathBuf>, cmdline: impl Into<String>) -> Self {
        VmConfig {
            kernel: kernel.into(),
            cmdline: cmdline.into(),
            initrd: None,
            memory_mib: 256,
            virtio_blk: None,
            nvme: None,
            net: None,
            accel: choose_accel(),
            cpu: None,
        }
    }

    /// The QEMU invocation (stdio is left to the caller).
    pub fn command(&self, serial: Serial) -> Command {
        let qboot = Path::new(QBOOT_ROM);
        let mut cmd = Command::new(QEMU);
        cmd.args(self.args(&serial, qboot.exists().then_some(qboot)));
        cmd
    }

    /// The arguments of [`VmConfig::command`], with the firmware decided by
    /// the caller.
    pub fn args(&self, serial: &Serial, qboot: Option<&Path>) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |parts: &[&str]| args.extend(parts.iter().map(OsString::from));
        push(&["-M", "q35"]);
        if let Some(qboot) = qboot {
            push(&["-bios", &qboot.to_string_lossy()]);
        }
        let mut accel = self.accel.args();
        if let Some(cpu) = &self.cpu {
            accel[3] = cpu;
        }
        push(&accel);
        push(&["-m", &format!("{}M", self.memory_mib), "-smp", "1"]);
        push(&["-nodefaults", "-no-reboot", "-display", "none"]);
        let serial = match serial {
            Serial::Stdio => "stdio".to_string(),
            Serial::File(path) => format!("file:{}", path.display()),
        };
        push(&["-serial", &serial]);
        push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        push(&["-kernel", &self.kernel.to_string_lossy()]);
        push(&["-append", &self.cmdline]);
        if let Some(initrd) = &self.initrd {
            push(&["-initrd", &initrd.to_string_lossy()]);
        }
        if let Some(disk) = &self.virtio_blk {
            push(&["-drive", &drive("blk0", disk)]);
            push(&["-device", "virtio-blk-pci,drive=blk0,disable-legacy=on"]);
        }
        if let Some(disk) = &self.nvme {
            push(&["-drive", &drive("nvme0", disk)]);
            push(&["-device", "nvme,drive=nvme0,serial=rustcore-nvme0"]);
        }
        if let Some(net) = &self.net {
            let netdev = match net {
                NetConfig::User { forwards } => {
                    let mut netdev = String::from("user,id=net0");
                    for (host, guest) in forwards {
                        netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
                    }
                    netdev
                }
                NetConfig::Tap { ifname } => format!("tap,id=net0,ifname={ifname},script=no,downscript=no"),
            };
            push(&["-netdev", &netdev]);
            push(&["-device", "virtio-net-pci,netdev=net0,disable-legacy=on"]);
            // RUSTCORE_PCAP=FILE records every frame the guest sends and
            // receives (QEMU's filter-dump), for debugging the network path.
            if let Some(file) = std::env::var_os("RUSTCORE_PCAP") {
                push(&["-object", &format!("filter-dump,id=dump0,netdev=net0,file={}", file.to_string_lossy())]);
            }
        }
        args
    }
}

/// A raw `-drive` without a built-in interface. QEMU option values escape
/// a comma by doubling it.
fn drive(id: &str, path: &Path) -> String {
    let file = path.to_string_lossy().replace(',', ",,");
    format!("if=none,id={id},file={file},format=raw,cache={DRIVE_CACHE}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmExit {
    /// The guest wrote 0x10 to isa-debug-exit (QEMU exit code 33).
    Pass,
    /// The guest wrote 0x11 to isa-debug-exit (QEMU exit code 35).
    Fail,
    /// Killed after the timeout.
    Timeout,
    /// Any other exit code; a QEMU killed by signal N gives -N.
    Other(i32),
}

impl VmExit {
    pub fn from_status(status: ExitStatus) -> VmExit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(EXIT_PASS), _) => VmExit::Pass,
            (Some(EXIT_FAIL), _) => VmExit::Fail,
            (Some(code), _) => VmExit::Other(code),
            (None, Some(signal)) => VmExit::Other(-signal),
            (None, None) => VmExit::Other(i32::MIN),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub exit: VmExit,
    /// Everything the guest wrote to COM1 (lossy UTF-8).
    pub serial: String,
    /// From spawning QEMU to its exit (or to the kill).
    pub wall: Duration,
}

/// Boots `cfg`, waits for QEMU to exit (SIGKILL after `timeout`, giving
/// [`VmExit::Timeout`]) and returns the whole serial log. QEMU's stderr is
/// inherited, so its own errors show up in test output.
pub fn run_to_exit(cfg: &VmConfig, timeout: Duration) -> Result<RunOutcome> {
    let serial_path = temp_serial_path();
    let _cleanup = RemoveOnDrop(serial_path.clone());
    let mut cmd = cfg.command(Serial::File(serial_path.clone()));
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("cannot start {QEMU}"))?;
    let exit = loop {
        if let Some(status) = child.try_wait()? {
            break VmExit::from_status(status);
        }
        if start.elapsed() >= timeout {
            kill_and_reap(&mut child);
            break VmExit::Timeout;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let wall = start.elapsed();
    let serial = match std::fs::read(&serial_path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).context("reading the serial log"),
    };
    Ok(RunOutcome { exit, serial, wall })
}

/// Starts `cfg` in the background with COM1 written to `serial_file` and
/// waits until a line of it contains `needle` (e.g. `"msg":"ready"`).
/// Returns the running child and the time from spawn to that line. On
/// timeout, or if QEMU exits first, kills it and fails with the log's tail.
pub fn run_until_line(
    cfg: &VmConfig,
    serial_file: &Path,
    needle: &str,
    timeout: Duration,
) -> Result<(Child, Duration)> {
    let mut cmd = cfg.command(Serial::File(serial_file.to_path_buf()));
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    spawn_until_line(cmd, serial_file, needle, timeout)
}

/// [`run_until_line`] for a prepared command (its serial must go to
/// `serial_file`).
pub fn spawn_until_line(
    mut cmd: Command,
    serial_file: &Path,
    needle: &str,
    timeout: Duration,
) -> Result<(Child, Duration)> {
    // A stale log would satisfy the search before QEMU truncates it.
    match std::fs::remove_file(serial_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", serial_file.display())),
    }
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("cannot start {QEMU}"))?;
    let mut log = LogFollower::new(serial_file);
    loop {
        if log.poll_for(needle)? {
            return Ok((child, start.elapsed()));
        }
        if let Some(status) = child.try_wait()? {
            log.poll_for(needle)?;
            bail!(
                "QEMU exited ({:?}) before a serial line contained {needle:?}; serial log tail:\n{}",
                VmExit::from_status(status),
                log.tail()
            );
        }
        if start.elapsed() >= timeout {
            kill_and_reap(&mut child);
            bail!("no serial line contained {needle:?} within {timeout:?}; serial log tail:\n{}", log.tail());
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Reads a growing log file incrementally and finds a needle in its
/// complete lines.
struct LogFollower<'p> {
    path: &'p Path,
    file: Option<File>,
    /// Bytes of the file turned into `text` so far.
    consumed_bytes: u64,
    text: String,
    /// Bytes of `text` already searched (complete lines only).
    searched: usize,
}

impl<'p> LogFollower<'p> {
    fn new(path: &'p Path) -> Self {
        LogFollower { path, file: None, consumed_bytes: 0, text: String::new(), searched: 0 }
    }

    fn poll_for(&mut self, needle: &str) -> Result<bool> {
        if self.file.is_none() {
            match File::open(self.path) {
                Ok(file) => self.file = Some(file),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e).with_context(|| format!("opening {}", self.path.display())),
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(false);
        };
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(self.consumed_bytes))?;
        file.read_to_end(&mut bytes)?;
        // Keep a partial UTF-8 sequence at the end for the next poll.
        let complete = match std::str::from_utf8(&bytes) {
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            _ => bytes.len(),
        };
        self.consumed_bytes += complete as u64;
        self.text.push_str(&String::from_utf8_lossy(&bytes[..complete]));
        let Some(last_newline) = self.text.rfind('\n') else {
            return Ok(false);
        };
        if last_newline < self.searched {
            return Ok(false);
        }
        let found = self.text[self.searched..last_newline].lines().any(|line| line.contains(needle));
        self.searched = last_newline + 1;
        Ok(found)
    }

    fn tail(&self) -> &str {
        const TAIL_BYTES: usize = 4000;
        let mut start = self.text.len().saturating_sub(TAIL_BYTES);
        while !self.text.is_char_boundary(start) {
            start += 1;
        }
        &self.text[start..]
    }
}

/// Creates a sparse raw disk of `size_bytes` at `path` if nothing is there.
/// An existing file is left as it is: it holds data.
pub fn ensure_disk(path: &Path, size_bytes: u64) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.set_len(size_bytes).with_context(|| format!("sizing {}", path.display()))?;
    Ok(())
}

fn kill_and_reap(child: &mut Child) {
    // Errors mean it already exited; either way it is reaped below.
    let _ = child.kill();
    let _ = child.wait();
}

fn temp_serial_path() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("rustcore-serial-{}-{n}.log", std::process::id()))
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_config() -> VmConfig {
        VmConfig {
            kernel: PathBuf::from("/img/rustcore"),
            cmdline: "log=info selftest=smoke".into(),
            initrd: Some(PathBuf::from("/img/bootfs")),
            memory_mib: 512,
            virtio_blk: Some(PathBuf::from("/state/disk-virtio.img")),
            nvme: Some(PathBuf::from("/state/disk,nvme.img")),
            net: Some(NetConfig::User { forwards: vec![(8443, 443), (9443, 9443)] }),
            accel: Accel::Tcg,
            cpu: None,
        }
    }

    fn joined(args: &[OsString]) -> Vec<String> {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn full_command_line() {
        let args = full_config().args(&Serial::File(PathBuf::from("/logs/serial.log")), Some(Path::new(QBOOT_ROM)));
        let expected = [
            "-M",
            "q35",
            "-bios",
            "/usr/share/qemu/qboot.rom",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "512M",
            "-smp",
            "1",
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-serial",
            "file:/logs/serial.log",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel",
            "/img/rustcore",
            "-append",
            "log=info selftest=smoke",
            "-initrd",
            "/img/bootfs",
            "-drive",
            "if=none,id=blk0,file=/state/disk-virtio.img,format=raw,cache=writeback",
            "-device",
            "virtio-blk-pci,drive=blk0,disable-legacy=on",
            "-drive",
            "if=none,id=nvme0,file=/state/disk,,nvme.img,format=raw,cache=writeback",
            "-device",
            "nvme,drive=nvme0,serial=rustcore-nvme0",
            "-netdev",
            "user,id=net0,hostfwd=tcp:127.0.0.1:8443-:443,hostfwd=tcp:127.0.0.1:9443-:9443",
            "-device",
            "virtio-net-pci,netdev=net0,disable-legacy=on",
        ];
        assert_eq!(joined(&args), expected);
    }

    #[test]
    fn minimal_command_line_with_kvm_and_stdio() {
        let cfg = VmConfig { accel: Accel::Kvm, memory_mib: 128, ..VmConfig::new("/k", "") };
        let args = cfg.args(&Serial::Stdio, None);
        let expected = [
            "-M",
            "q35",
            "-accel",
            "kvm",
            "-cpu",
            "host,-arch-capabilities,+invtsc",
            "-m",
            "128M",
            "-smp",
            "1",
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel",
            "/k",
            "-append",
            "",
        ];
        assert_eq!(joined(&args), expected);
    }

    #[test]
    fn net_without_forwards() {
        let cfg = VmConfig { net: Some(NetConfig::User { forwards: vec![] }), ..VmConfig::new("/k", "") };
        let args = joined(&cfg.args(&Serial::Stdio, None));
        let at = args.iter().position(|a| a == "-netdev").unwrap();
        assert_eq!(args[at + 1], "user,id=net0");
    }

    #[test]
    fn command_uses_qboot_when_installed() {
        let cmd = full_config().command(Serial::Stdio);
        assert_eq!(cmd.get_program(), QEMU);
        let has_bios = cmd.get_args().any(|a| a == "-bios");
        assert_eq!(has_bios, Path::new(QBOOT_ROM).exists());
    }

    #[test]
    fn accel_override() {
        let probe_never = || panic!("the probe must not run under an override");
        assert_eq!(choose_accel_from(Some("kvm"), probe_never), Accel::Kvm);
        assert_eq!(choose_accel_from(Some("TCG"), probe_never), Accel::Tcg);
        assert_eq!(choose_accel_from(None, || true), Accel::Kvm);
        assert_eq!(choose_accel_from(None, || false), Accel::Tcg);
        assert_eq!(choose_accel_from(Some(""), || false), Accel::Tcg);
        assert_eq!(choose_accel_from(Some("hvf"), || true), Accel::Kvm);
    }

    #[test]
    fn exit_codes() {
        use std::os::unix::process::ExitStatusExt;
        let from_code = |code: i32| VmExit::from_status(ExitStatus::from_raw(code << 8));
        assert_eq!(from_code(33), VmExit::Pass);
        assert_eq!(from_code(35), VmExit::Fail);
        assert_eq!(from_code(1), VmExit::Other(1));
        assert_eq!(VmExit::from_status(ExitStatus::from_raw(9)), VmExit::Other(-9));
    }

    #[test]
    fn sparse_disk() {
        let dir = std::env::temp_dir().join(format!("xtask-disk-{}", std::process::id()));
        let path = dir.join("sub").join("disk.img");
        ensure_disk(&path, 1 << 30).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 1 << 30);
        {
            use std::os::unix::fs::MetadataExt;
            assert!(meta.blocks() * 512 < 1 << 20, "not sparse");
        }
        // An existing disk is kept as it is.
        ensure_disk(&path, 4096).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 30);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_follower_sees_only_complete_lines() {
        let path = std::env::temp_dir().join(format!("xtask-follow-{}.log", std::process::id()));
        let _cleanup = RemoveOnDrop(path.clone());
        let mut log = LogFollower::new(&path);
        assert!(!log.poll_for("ready").unwrap());
        std::fs::write(&path, "boot\n{\"msg\":\"rea").unwrap();
        assert!(!log.poll_for("\"msg\":\"ready\"").unwrap());
        std::fs::write(&path, "boot\n{\"msg\":\"ready\"}").unwrap();
        assert!(!log.poll_for("\"msg\":\"ready\"").unwrap());
        std::fs::write(&path, "boot\n{\"msg\":\"ready\"}\n").unwrap();
        assert!(log.poll_for("\"msg\":\"ready\"").unwrap());
        assert!(log.tail().ends_with("ready\"}\n"));
    }

    /// A minimal PVH ELF64: 32-bit code at 1 MiB that prints `message` on
    /// COM1 and writes `exit_value` to isa-debug-exit. Lets the tests boot
    /// a real guest without the kernel image.
    fn tiny_pvh_elf(message: &[u8], exit_value: u8) -> Vec<u8> {
        const LOAD_ADDR: u32 = 0x10_0000;
        const EHDR: usize = 64;
        const PHDR: usize = 56;
        let note_off = EHDR + 2 * PHDR;
        let note_len = 12 + 4 + 8;
        let code_off = note_off + note_len;
        let code_len = 32;
        let msg_off = code_off + code_len;
        let total = msg_off + message.len();
        let entry = LOAD_ADDR + code_off as u32;
        let msg_addr = LOAD_ADDR + msg_off as u32;

        let mut code = vec![0xfc]; // cld
        code.extend([0x66, 0xba, 0xf8, 0x03]); // mov dx, 0x3f8
        code.push(0xbe); // mov esi, msg
        code.extend(msg_addr.to_le_bytes());
        code.push(0xb9); // mov ecx, len
        code.extend((message.len() as u32).to_le_bytes());
        code.extend([0xac, 0xee, 0xe2, 0xfc]); // 1: lodsb; out dx, al; loop 1b
        code.extend([0x66, 0xba, 0xf4, 0x00]); // mov dx, 0xf4
        code.extend([0xb0, exit_value, 0xee]); // mov al, v; out dx, al
        code.extend([0xf4, 0xeb, 0xfd]); // 2: hlt; jmp 2b
        assert!(code.len() <= code_len);
        code.resize(code_len, 0x90);

        let mut elf = Vec::with_capacity(total);
        elf.extend(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"); // ELF64, LE
        elf.extend(2u16.to_le_bytes()); // ET_EXEC
        elf.extend(62u16.to_le_bytes()); // EM_X86_64
        elf.extend(1u32.to_le_bytes());
        elf.extend(u64::from(entry).to_le_bytes());
        elf.extend((EHDR as u64).to_le_bytes()); // phoff
        elf.extend(0u64.to_le_bytes()); // shoff
        elf.extend(0u32.to_le_bytes()); // flags
        elf.extend([EHDR as u16, PHDR as u16, 2, 64, 0, 0].iter().flat_map(|v| v.to_le_bytes()));
        let phdr = |elf: &mut Vec<u8>, kind: u32, flags: u32, off: usize, addr: u32, len: usize, align: u64| {
            elf.extend(kind.to_le_bytes());
            elf.extend(flags.to_le_bytes());
            elf.extend((off as u64).to_le_bytes());
            elf.extend(u64::from(addr).to_le_bytes()); // vaddr
            elf.extend(u64::from(addr).to_le_bytes()); // paddr
            elf.extend((len as u64).to_le_bytes()); // filesz
            elf.extend((len as u64).to_le_bytes()); // memsz
            elf.extend(align.to_le_bytes());
        };
        phdr(&mut elf, 1, 5, 0, LOAD_ADDR, total, 0x1000); // PT_LOAD, R+X
        phdr(&mut elf, 4, 4, note_off, LOAD_ADDR + note_off as u32, note_len, 4); // PT_NOTE
        // XEN_ELFNOTE_PHYS32_ENTRY (18), name "Xen", 8-byte payload.
        elf.extend(4u32.to_le_bytes());
        elf.extend(8u32.to_le_bytes());
        elf.extend(18u32.to_le_bytes());
        elf.extend(b"Xen\0");
        elf.extend(u64::from(entry).to_le_bytes());
        elf.extend(code);
        elf.extend(message);
        assert_eq!(elf.len(), total);
        elf
    }

    fn tiny_vm(name: &str, message: &[u8], exit_value: u8) -> (VmConfig, RemoveOnDrop) {
        let path = std::env::temp_dir().join(format!("xtask-{name}-{}.elf", std::process::id()));
        std::fs::write(&path, tiny_pvh_elf(message, exit_value)).unwrap();
        let cfg = VmConfig { memory_mib: 64, accel: Accel::Tcg, ..VmConfig::new(&path, "log=info") };
        (cfg, RemoveOnDrop(path))
    }

    struct KillOnDrop(Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            kill_and_reap(&mut self.0);
        }
    }

    fn have_qemu() -> bool {
        let found = crate::on_path(QEMU);
        if !found {
            eprintln!("skipped: {QEMU} not installed");
        }
        found
    }

    #[test]
    fn boots_tiny_guest_to_pass_and_fail() {
        if !have_qemu() {
            return;
        }
        let (cfg, _elf) = tiny_vm("pass", b"hello\n{\"msg\":\"ready\"}\n", 0x10);
        let outcome = run_to_exit(&cfg, Duration::from_secs(30)).unwrap();
        assert_eq!(outcome.exit, VmExit::Pass, "serial: {}", outcome.serial);
        assert_eq!(outcome.serial, "hello\n{\"msg\":\"ready\"}\n");

        let (cfg, _elf) = tiny_vm("fail", b"bad\n", 0x11);
        let outcome = run_to_exit(&cfg, Duration::from_secs(30)).unwrap();
        assert_eq!(outcome.exit, VmExit::Fail);
        assert_eq!(outcome.serial, "bad\n");
    }

    #[test]
    fn times_out_and_waits_for_lines() {
        if !have_qemu() {
            return;
        }
        // Send the exit write to port 0x80 (POST codes, ignored) instead of
        // isa-debug-exit: the guest prints its line, then halts forever.
        let mut elf = tiny_pvh_elf(b"{\"msg\":\"ready\"}\n", 0x10);
        let port_at = elf.windows(4).position(|w| w == [0x66, 0xba, 0xf4, 0x00]).unwrap();
        elf[port_at + 2] = 0x80;
        let path = std::env::temp_dir().join(format!("xtask-hang-{}.elf", std::process::id()));
        std::fs::write(&path, elf).unwrap();
        let _elf = RemoveOnDrop(path.clone());
        let cfg = VmConfig { memory_mib: 64, accel: Accel::Tcg, ..VmConfig::new(&path, "") };

        let outcome = run_to_exit(&cfg, Duration::from_millis(1500)).unwrap();
        assert_eq!(outcome.exit, VmExit::Timeout);
        assert_eq!(outcome.serial, "{\"msg\":\"ready\"}\n");

        let serial = std::env::temp_dir().join(format!("xtask-hang-{}.log", std::process::id()));
        let _log = RemoveOnDrop(serial.clone());
        let (child, to_ready) = run_until_line(&cfg, &serial, "\"msg\":\"ready\"", Duration::from_secs(30)).unwrap();
        let mut child = KillOnDrop(child);
        assert!(to_ready < Duration::from_secs(30));
        assert!(child.0.try_wait().unwrap().is_none(), "still running");
        drop(child);

        let err = run_until_line(&cfg, &serial, "never printed", Duration::from_millis(1500)).unwrap_err().to_string();
        assert!(err.contains("within"), "{err}");
        assert!(err.contains("ready"), "tail missing: {err}");
    }
}
