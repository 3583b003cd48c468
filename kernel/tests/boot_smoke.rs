//! Boots the real appliance image under QEMU and checks what the kernel's
//! boot-time self tests report (see `kernel/src/selftest.rs`):
//! the memory map, W^X paging, 100k heap allocations returning to the
//! starting usage, 10 ms sleeps within 3 ms, 1,000 tasks, the TSC against the
//! RTC, the random source, the wall clock, and PCI finding the virtio-net,
//! virtio-blk and NVMe devices attached here, the boot archive arriving
//! byte-exact, the virtio-net driver completing a DHCP exchange, and the
//! virtio-blk and NVMe drivers each writing and reading 64 requests in
//! flight; further pairs of boots check that virtio-blk and NVMe writes
//! survive a VM restart. A second boot overflows the
//! main stack into its guard page and must be reported, not hang; a third
//! boots on a CPU without the required features and must be refused.
//!
//! `cargo +nightly test -p kernel --test boot_smoke`

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use xtask::qemu::{NetConfig, RunOutcome, VmConfig, VmExit};

/// Generous: TCG on a loaded two-core machine; a healthy boot takes ~3 s.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
const MEMORY_MIB: u32 = 512;

/// One VM at a time: the timing checks (10 ms ± 3 ms) should not compete
/// with a second emulator for this machine's two cores.
static ONE_VM: Mutex<()> = Mutex::new(());

/// The smoke boot and each two-boot persistence test write the same blocks
/// of the same disk images: a smoke boot between a write boot and its
/// verify boot would overwrite the pattern. Held for a whole test.
static DISK_IMAGES: Mutex<()> = Mutex::new(());

fn disk_images() -> std::sync::MutexGuard<'static, ()> {
    DISK_IMAGES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            xtask::setup::ensure_host_tools().expect("QEMU is needed for this test");
            xtask::image::build().expect("the kernel image builds")
        })
        .clone()
}

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3))
}

fn boot(cmdline: &str, with_devices: bool) -> RunOutcome {
    let _turn = ONE_VM.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut cmdline = cmdline.to_string();
    let dir = xtask::repo_root().join("target/image/boot_smoke");
    std::fs::create_dir_all(&dir).expect("create the test directory");
    let mut initrd = None;
    if with_devices {
        // A boot archive with a known size and hash, which the kernel checks.
        let archive: Vec<u8> = (0..100_003u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let path = dir.join("archive.bin");
        std::fs::write(&path, &archive).expect("write the boot archive");
        cmdline.push_str(&format!(" selftest.archive={}:{:016x}", archive.len(), fnv64(&archive)));
        initrd = Some(path);
    }
    let mut config = VmConfig::new(image(), cmdline.clone());
    config.memory_mib = MEMORY_MIB;
    config.initrd = initrd;
    if with_devices {
        let blk = dir.join("virtio-blk.img");
        let nvme = dir.join("nvme.img");
        xtask::qemu::ensure_disk(&blk, 64 << 20).expect("virtio-blk disk");
        xtask::qemu::ensure_disk(&nvme, 64 << 20).expect("nvme disk");
        config.virtio_blk = Some(blk);
        config.nvme = Some(nvme);
        config.net = Some(NetConfig::User { forwards: Vec::new() });
    }
    let outcome = xtask::qemu::run_to_exit(&config, BOOT_TIMEOUT).expect("QEMU runs");
    println!("--- serial log ({cmdline}, {:?}, {:?}) ---\n{}", outcome.exit, outcome.wall, outcome.serial);
    outcome
}

/// The `key=value` field of the self-test line for `check`.
fn field(serial: &str, check: &str, key: &str) -> Option<u64> {
    let line = serial.lines().find(|l| l.starts_with("selftest PASS ") && l.contains(&format!(" {check} ")))?;
    let value = line.split_whitespace().find_map(|word| word.strip_prefix(&format!("{key}=")))?;
    value.parse().ok()
}

#[test]
fn smoke_selftests_pass() {
    let _disks = disk_images();
    let outcome = boot("selftest=smoke log=info", true);
    assert_eq!(outcome.exit, VmExit::Pass, "the self tests must pass");
    for check in [
        "memmap",
        "paging-wx",
        "heap",
        "sleep-10ms",
        "tasks-1000",
        "tsc-vs-rtc",
        "random",
        "wall-clock",
        "pci-devices",
        "virtio-blk-io",
        "nvme-io",
    ] {
        assert!(
            outcome.serial.lines().any(|l| l.starts_with(&format!("selftest PASS {check} "))),
            "check {check} did not pass"
        );
    }
    assert!(
        outcome.serial.lines().any(|l| l == "selftest: 13 passed, 0 failed\r" || l == "selftest: 13 passed, 0 failed")
    );
    assert!(!outcome.serial.contains("FATAL"));

    // The kernel's view of RAM matches what QEMU was given (minus the
    // legacy holes below 1 MiB and firmware reservations).
    let ram = field(&outcome.serial, "memmap", "ram_bytes").expect("memmap reports ram_bytes");
    let given = u64::from(MEMORY_MIB) << 20;
    assert!(ram <= given && ram + (4 << 20) >= given, "ram_bytes={ram} given={given}");

    // The heap workout ends where it started.
    let before = field(&outcome.serial, "heap", "bytes_before").unwrap();
    let after = field(&outcome.serial, "heap", "bytes_after").unwrap();
    assert_eq!(before, after);

    // The kernel measured both AES-GCMs and chose one (under TCG RustCrypto's: QEMU emulates
    // PCLMULQDQ slowly; on hardware and KVM the one-pass code).
    let gcm = outcome.serial.lines().find(|l| l.contains("\"msg\":\"AES-GCM\"")).expect("the AES-GCM choice is logged");
    assert!(gcm.contains("\"one_pass_mb_s\":") && gcm.contains("\"rustcrypto_mb_s\":"), "{gcm}");
    assert!(!gcm.contains("_mb_s\":0,") && !gcm.contains("_mb_s\":0}"), "a rate of 0: {gcm}");

    // And both MD5s (four messages in SSE2 lanes, one at a time), for the ETags of small PUTs.
    let md5 = outcome.serial.lines().find(|l| l.contains("\"msg\":\"MD5\"")).expect("the MD5 choice is logged");
    assert!(md5.contains("\"lanes_mb_s\":") && md5.contains("\"one_at_a_time_mb_s\":"), "{md5}");
    assert!(!md5.contains("_mb_s\":0,") && !md5.contains("_mb_s\":0}"), "a rate of 0: {md5}");

    // Every structured log line is one JSON object.
    for line in outcome.serial.lines().filter(|l| l.starts_with('{')) {
        let line = line.trim_end_matches('\r');
        assert!(line.ends_with('}') && line.contains("\"level\":") && line.contains("\"up_ns\":"), "{line}");
    }
}

#[test]
fn virtio_blk_writes_survive_a_vm_restart() {
    // Boot one writes 4 MiB (64 requests of 64 KiB in flight) and flushes;
    // QEMU exits; boot two, a new QEMU process on the same disk image, reads
    // it back. The seed differs per run so stale data cannot pass.
    let _disks = disk_images();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let write = boot(&format!("selftest=blk-write selftest.seed={seed}"), true);
    assert_eq!(write.exit, VmExit::Pass);
    assert!(write.serial.contains(&format!("selftest PASS blk-write seed={seed}")));
    let verify = boot(&format!("selftest=blk-verify selftest.seed={seed}"), true);
    assert_eq!(verify.exit, VmExit::Pass);
    assert!(verify.serial.contains(&format!("selftest PASS blk-verify seed={seed}")));
}

#[test]
fn nvme_writes_survive_a_vm_restart() {
    // As for virtio-blk: boot one writes 4 MiB with 64 commands in flight
    // and flushes; a new QEMU process on the same image reads it back.
    let _disks = disk_images();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let write = boot(&format!("selftest=nvme-write selftest.seed={seed}"), true);
    assert_eq!(write.exit, VmExit::Pass);
    assert!(write.serial.contains(&format!("selftest PASS nvme-write seed={seed}")));
    let verify = boot(&format!("selftest=nvme-verify selftest.seed={seed}"), true);
    assert_eq!(verify.exit, VmExit::Pass);
    assert!(verify.serial.contains(&format!("selftest PASS nvme-verify seed={seed}")));
}

/// Boot one formats the disk as a store (fs::store on the real driver) and
/// writes objects of 0 B .. 3 MiB, two versions of a versioned object and a
/// two-part multipart object; boot two, a new QEMU process, opens the store
/// (superblock, checkpoint, journal replay), reads everything back verified
/// chunk by chunk and runs the consistency check.
fn store_survives_a_vm_restart(disk: &str) {
    let _disks = disk_images();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let write = boot(&format!("selftest=store-write selftest.disk={disk} selftest.seed={seed}"), true);
    assert_eq!(write.exit, VmExit::Pass);
    assert!(write.serial.contains(&format!("selftest PASS store-{disk}-write seed={seed} objects=8 ")));
    let verify = boot(&format!("selftest=store-verify selftest.disk={disk} selftest.seed={seed}"), true);
    assert_eq!(verify.exit, VmExit::Pass);
    assert!(verify.serial.contains(&format!("selftest PASS store-{disk}-verify seed={seed} objects=8 ")));
    // The second boot really replayed the journal written by the first.
    let opened = verify.serial.lines().find(|l| l.starts_with("store opened ")).expect("the open report");
    assert!(!opened.contains("replayed_records=0 "), "{opened}");
    // Its small objects were only in the journal (never written back) and
    // came back from there: the verify read them intact.
    assert!(!opened.contains("chunks_restored_from_the_journal=0"), "{opened}");
}

#[test]
fn store_on_virtio_blk_survives_a_vm_restart() {
    store_survives_a_vm_restart("blk");
}

#[test]
fn store_on_nvme_survives_a_vm_restart() {
    store_survives_a_vm_restart("nvme");
}

#[test]
fn guard_page_fault_is_reported_not_hung() {
    let outcome = boot("selftest=guard-fault", false);
    assert_eq!(outcome.exit, VmExit::Fail, "a stack overflow must stop the VM with failure");
    let report = outcome
        .serial
        .lines()
        .find(|l| l.starts_with("FATAL exception"))
        .expect("the fault is reported on the serial console");
    assert!(report.contains("vector=14"), "{report}");
    assert!(report.contains("guard=main-stack"), "{report}");
    assert!(report.contains("rip=0x") && report.contains("cr2=0x") && report.contains("error=0x"), "{report}");
    assert!(!outcome.serial.contains("recursion returned"));
}

#[test]
fn cpu_without_required_features_is_refused() {
    // qemu64 lacks SSE4.2, AES-NI and friends: the trampoline must stop before
    // any compiled code could execute an instruction the CPU does not have.
    let _turn = ONE_VM.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut config = VmConfig::new(image(), "selftest=smoke");
    config.memory_mib = MEMORY_MIB;
    config.cpu = Some("qemu64".to_string());
    if config.accel != xtask::qemu::Accel::Tcg {
        return; // under KVM the host CPU model decides; nothing to prove here
    }
    let outcome = xtask::qemu::run_to_exit(&config, BOOT_TIMEOUT).expect("QEMU runs");
    println!("--- serial log (qemu64) ---\n{}", outcome.serial);
    assert_eq!(outcome.exit, VmExit::Fail);
    assert!(outcome.serial.contains("boot refused: this CPU lacks a feature"), "{}", outcome.serial);
    assert!(!outcome.serial.contains("selftest"));
}

#[test]
fn boot_time_s3_scenario_passes() {
    // The seed's bootfs harness: the archive carries an S3 scenario and an
    // admin token; the kernel runs the scenario against its own S3 service
    // on virtio-blk and reports through its exit code.
    let _disks = disk_images();
    let _turn = ONE_VM.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = xtask::repo_root().join("target/image/boot_smoke/scenario");
    let staging = dir.join("staging");
    std::fs::create_dir_all(staging.join("keys")).expect("staging directory");
    let scenario = xtask::repo_root().join("services/scenarios/basic.s3");
    std::fs::copy(&scenario, staging.join("scenario.s3")).expect("copy the scenario");
    std::fs::write(
        staging.join("keys/admin-token"),
        "rc_00112233445566ff_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
    )
    .expect("token");
    let archive = dir.join("bootfs.tar");
    let status = std::process::Command::new("tar")
        .args(["--format=ustar", "--owner=0", "--group=0", "-cf"])
        .arg(&archive)
        .arg("-C")
        .arg(&staging)
        .arg(".")
        .status()
        .expect("tar runs");
    assert!(status.success());
    let blk = dir.join("virtio-blk.img");
    let _ = std::fs::remove_file(&blk);
    xtask::qemu::ensure_disk(&blk, 256 << 20).expect("disk");
    let mut config = VmConfig::new(image(), "selftest=scenario log=warn");
    config.memory_mib = MEMORY_MIB;
    config.initrd = Some(archive);
    config.virtio_blk = Some(blk);
    let outcome = xtask::qemu::run_to_exit(&config, BOOT_TIMEOUT).expect("QEMU runs");
    println!("--- serial log (scenario) ---\n{}", outcome.serial);
    assert_eq!(outcome.exit, VmExit::Pass, "the scenario must pass");
    let line = outcome.serial.lines().find(|l| l.starts_with("selftest PASS scenario ")).expect("a PASS line");
    let steps: usize = line.split_whitespace().find_map(|w| w.strip_prefix("steps=")).unwrap().parse().unwrap();
    assert!(steps >= 30, "{line}");
}
