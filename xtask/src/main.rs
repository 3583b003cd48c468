//! `cargo xtask <command>`: the host front door. See `cargo xtask help`.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xtask::qemu::{self, NetConfig, Serial, VmConfig, VmExit};
use xtask::state::State;
use xtask::{cargo_program, display_command, image, remove_package_env, repo_root, setup};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup                 install the nightly components and QEMU if missing
  build                 build the kernel image
  run [options]         build and boot the image with its disks and network
      --detach            boot in the background, wait for the ready line
      --cmdline \"...\"     kernel command line (default: log=info)
      --port N            host port forwarded to guest 443 (default 8443)
      --admin-port N      host port forwarded to guest 9443 (default 9443)
      --memory MIB        guest memory (default 1024)
  stop                  stop a detached VM
  test [--long]         fmt check, clippy, all tests (with the QEMU smoke test);
                        --long runs the long load and fault tests
                        (RUSTCORE_LONG_TESTS=1, kernel/tests/s3_load.rs)
  crash [--cuts N] [--seed S]
                        crash simulation of the store: N power cuts (default
                        10000) over seeds S, S+1, ... (default 1000); prints
                        the seed of any failure
  admin <command>       the admin API of a running VM (keys, grants, quotas,
                        renames); `cargo xtask admin help` lists the commands
  bench <name>          benchmarks; names: platform, net [hosted|qemu] (hosted: root,
                        netns + TAP), storage,
                        s3 [--quick] [--only hosted,qemu,garage,s3s-fs] (root: Rustcore
                        against Garage and s3s-fs under one S3 load, one table)
";

/// The serial line that says the service is up.
const READY_NEEDLE: &str = "\"msg\":\"ready\"";
/// Generous: everything in QEMU here runs under TCG.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// Seconds each fuzz target runs in `cargo xtask test`.
const FUZZ_SECONDS: u32 = 15;
const BENCHES: [&str; 4] = ["platform", "net", "storage", "s3"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> Result<ExitCode> {
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return Ok(ExitCode::from(2));
    };
    match command.as_str() {
        "setup" => {
            no_args(rest)?;
            setup_all()?;
            println!("xtask setup: toolchain and QEMU ready");
        }
        "build" => {
            no_args(rest)?;
            let elf = image::build()?;
            println!("{} ({})", elf.display(), size_of(&elf)?);
        }
        "run" => return run(&RunOptions::parse(rest)?),
        "stop" => {
            no_args(rest)?;
            stop(&State::new())?;
        }
        "test" => {
            for arg in rest {
                if arg != "--long" {
                    bail!("unknown option {arg:?} for test\n{USAGE}");
                }
            }
            return test(!rest.is_empty());
        }
        "bench" => return bench(rest),
        "crash" => return crash(rest),
        "admin" => {
            return Ok(if xtask::admin::run(rest)? { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        "help" | "-h" | "--help" => print!("{USAGE}"),
        other => bail!("unknown command {other:?}\n{USAGE}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn no_args(rest: &[String]) -> Result<()> {
    match rest.first() {
        Some(arg) => bail!("unexpected argument {arg:?}\n{USAGE}"),
        None => Ok(()),
    }
}

fn setup_all() -> Result<()> {
    setup::ensure_toolchain()?;
    setup::ensure_host_tools()
}

fn size_of(path: &Path) -> Result<String> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = data.len();
    let mut text = format!("{:.1} MiB file, {bytes} bytes", bytes as f64 / (1024.0 * 1024.0));
    if let Some((file_bytes, memory_bytes)) = elf_load_sizes(&data) {
        text.push_str(&format!(
            "; loaded: {file_bytes} bytes from the file, {memory_bytes} bytes in memory with .bss and stacks"
        ));
    }
    Ok(text)
}

/// Sums `p_filesz` and `p_memsz` of an ELF64's PT_LOAD segments: what the
/// loader copies and what the image occupies (the file also holds symbols
/// and line tables, which are never loaded).
fn elf_load_sizes(elf: &[u8]) -> Option<(u64, u64)> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    if elf.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let table = usize::try_from(u64_at(0x20)?).ok()?;
    let entry_size = usize::from(u16_at(0x36)?);
    let count = usize::from(u16_at(0x38)?);
    let (mut file_bytes, mut memory_bytes) = (0, 0);
    for index in 0..count {
        let header = table + index * entry_size;
        if u32_at(header)? == 1 {
            file_bytes += u64_at(header + 0x20)?;
            memory_bytes += u64_at(header + 0x28)?;
        }
    }
    Some((file_bytes, memory_bytes))
}

#[derive(Debug, PartialEq, Eq)]
struct RunOptions {
    detach: bool,
    cmdline: String,
    port: u16,
    admin_port: u16,
    memory_mib: u32,
}

impl RunOptions {
    fn parse(args: &[String]) -> Result<RunOptions> {
        let mut opts =
            RunOptions { detach: false, cmdline: "log=info".into(), port: 8443, admin_port: 9443, memory_mib: 1024 };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = || -> Result<String> {
                match inline.clone().or_else(|| args.next().cloned()) {
                    Some(v) => Ok(v),
                    None => bail!("{name} needs a value"),
                }
            };
            match name {
                "--detach" => opts.detach = true,
                "--cmdline" => opts.cmdline = value()?,
                "--port" => opts.port = parse_num(name, &value()?)?,
                "--admin-port" => opts.admin_port = parse_num(name, &value()?)?,
                "--memory" => opts.memory_mib = parse_num(name, &value()?)?,
                _ => bail!("unknown option {arg:?} for run\n{USAGE}"),
            }
        }
        Ok(opts)
    }

    fn vm_config(&self, kernel: &Path, state: &State) -> VmConfig {
        VmConfig {
            memory_mib: self.memory_mib,
            virtio_blk: Some(state.virtio_disk()),
            nvme: Some(state.nvme_disk()),
            net: Some(NetConfig::User { forwards: vec![(self.port, 443), (self.admin_port, 9443)] }),
            ..VmConfig::new(kernel, self.cmdline.clone())
        }
    }
}

fn parse_num<T: std::str::FromStr>(name: &str, value: &str) -> Result<T> {
    value.parse().map_err(|_| anyhow::anyhow!("{name}: {value:?} is not a valid number"))
}

fn run(opts: &RunOptions) -> Result<ExitCode> {
    let state = State::new();
    if let Some(pid) = state.running_qemu() {
        bail!("a VM is already running (pid {pid}, {}); stop it with `cargo xtask stop`", state.pid_file().display());
    }
    setup_all()?;
    let elf = image::build()?;
    state.ensure()?;
    let certificates = xtask::bootfs::ensure_certificates(&state)?;
    let credentials = xtask::bootfs::ensure_credentials(&state)?;
    let env = xtask::bootfs::write_env(&state, &credentials, &certificates, opts.port)?;
    let mut cfg = opts.vm_config(&elf, &state);
    cfg.initrd = Some(xtask::bootfs::pack(&state, &certificates, &credentials)?);
    println!(
        "xtask run: {} ({:?}); S3 at https://localhost:{} (CA: {}), admin and health on https://localhost:{}\n\
         xtask run: access key {} (secret in {}); `. {} && aws s3 ls` uses them",
        elf.display(),
        cfg.accel,
        opts.port,
        certificates.ca.display(),
        opts.admin_port,
        credentials.access_key_id,
        credentials.admin_file.display(),
        env.display()
    );
    if opts.detach {
        return run_detached(&cfg, &state);
    }

    let mut cmd = cfg.command(Serial::Stdio);
    let shown = display_command(&cmd);
    let mut child = cmd.spawn().with_context(|| format!("cannot start `{shown}`"))?;
    // QEMU shares our process group, so Ctrl-C reaches it and it exits; we
    // survive the same SIGINT to wait for it and clean up.
    ignore_sigint();
    state.write_pid(child.id())?;
    let status = child.wait();
    state.remove_pid()?;
    let exit = VmExit::from_status(status.context("waiting for QEMU")?);
    println!("xtask run: VM exited: {exit:?}");
    // QEMU exits 0 when Ctrl-C (SIGINT) stops it: that is a clean stop.
    Ok(match exit {
        VmExit::Pass | VmExit::Other(0) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

fn run_detached(cfg: &VmConfig, state: &State) -> Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let serial = state.serial_log();
    let stderr_path = state.logs_dir().join("qemu.stderr");
    let stderr = std::fs::File::create(&stderr_path).with_context(|| format!("creating {}", stderr_path.display()))?;
    let mut cmd = cfg.command(Serial::File(serial.clone()));
    // Its own process group: a later Ctrl-C in this terminal must not reach it.
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr).process_group(0);
    let (child, boot) = qemu::spawn_until_line(cmd, &serial, READY_NEEDLE, BOOT_TIMEOUT)
        .with_context(|| format!("QEMU's stderr is in {}", stderr_path.display()))?;
    state.write_pid(child.id())?;
    println!(
        "xtask run: ready after {} ms (pid {}); serial log: {}; stop with `cargo xtask stop`",
        boot.as_millis(),
        child.id(),
        serial.display()
    );
    Ok(ExitCode::SUCCESS)
}

extern "C" fn on_sigint(_signal: libc::c_int) {}

fn ignore_sigint() {
    // A handler rather than SIG_IGN: an ignored disposition would be
    // inherited by children spawned later, a handler is reset by exec.
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: installs a handler that does nothing, which is
    // async-signal-safe; no other code in this process manages SIGINT.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
}

fn stop(state: &State) -> Result<()> {
    let Some(pid) = state.recorded_pid() else {
        println!("xtask stop: no VM is running");
        return Ok(());
    };
    if !xtask::state::is_live_qemu(pid) {
        state.remove_pid()?;
        println!("xtask stop: no VM is running (removed a stale pid file for {pid})");
        return Ok(());
    }
    send_signal(pid, libc::SIGTERM)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while xtask::state::is_alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if xtask::state::is_alive(pid) {
        send_signal(pid, libc::SIGKILL)?;
        println!("xtask stop: QEMU (pid {pid}) ignored SIGTERM; killed it");
    } else {
        println!("xtask stop: stopped QEMU (pid {pid})");
    }
    state.remove_pid()
}

fn send_signal(pid: u32, signal: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill(2) has no memory-safety preconditions; the pid was
    // checked to be a live QEMU process just before.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(err).with_context(|| format!("signalling pid {pid}"));
        }
    }
    Ok(())
}

/// A cargo invocation for a step of `test` or `bench`, without the package
/// variables `cargo run` gave us.
fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(cargo_program());
    cmd.current_dir(repo_root()).args(args);
    remove_package_env(&mut cmd);
    cmd
}

/// `long`: the load and fault tests run their long variant.
fn test(long: bool) -> Result<ExitCode> {
    setup_all()?;
    let root = repo_root();
    let steps: Vec<(String, Command)> = vec![
        ("cargo fmt --all -- --check".into(), cargo(&["fmt", "--all", "--", "--check"])),
        (
            "cargo clippy --workspace --all-targets -- -D warnings".into(),
            cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        ),
        // The bare-metal modules exist only in the image's build.
        ("cargo clippy (kernel, image target)".into(), image::clippy_command(&root)),
    ];
    for (shown, mut cmd) in steps {
        println!("xtask test: {shown}");
        let status = cmd.status().with_context(|| format!("cannot start `{shown}`"))?;
        if !status.success() {
            eprintln!("xtask test: `{shown}` failed ({status})");
            println!("xtask test: 0 passed, 1 failed");
            return Ok(ExitCode::FAILURE);
        }
    }
    println!("xtask test: cargo test --workspace");
    let mut tests = cargo(&["test", "--workspace"]);
    if long {
        tests.env("RUSTCORE_LONG_TESTS", "1");
    }
    let (status, mut counts) = run_counting_tests(tests)?;
    println!("xtask test: fuzz targets, {FUZZ_SECONDS} s each");
    let (fuzz_passed, fuzz_failed) = xtask::fuzz::smoke(FUZZ_SECONDS)?;
    counts.passed += fuzz_passed;
    counts.failed += fuzz_failed;
    // One closing line with the real totals (cargo prints one line per test
    // binary, the last of which is usually an empty doc-test run).
    println!("xtask test: {} passed, {} failed", counts.passed, counts.failed);
    if !status.success() || counts.failed > 0 {
        return Ok(ExitCode::FAILURE);
    }
    if counts.passed == 0 {
        eprintln!("xtask test: no test ran");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct TestCounts {
    passed: u64,
    failed: u64,
}

impl TestCounts {
    /// Adds a libtest summary line (`test result: ok. 3 passed; 0 failed; ...`).
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else { return };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(number)) = (words.next(), words.next()) else { continue };
            let Ok(number) = number.parse::<u64>() else { continue };
            match label {
                "passed" => self.passed += number,
                "failed" => self.failed += number,
                _ => {}
            }
        }
    }
}

/// Runs `cmd` with its stdout passed through line by line and counted.
fn run_counting_tests(mut cmd: Command) -> Result<(std::process::ExitStatus, TestCounts)> {
    use std::io::{BufRead, BufReader, Write};
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().context("cannot start cargo test")?;
    let stdout = child.stdout.take().context("cargo test has no stdout")?;
    let mut counts = TestCounts::default();
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test output")?;
        counts.add_line(&line);
        writeln!(out, "{line}")?;
    }
    drop(out);
    Ok((child.wait()?, counts))
}

fn crash(args: &[String]) -> Result<ExitCode> {
    let mut cuts = String::from("10000");
    let mut seed = String::from("1000");
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next().with_context(|| format!("{arg} needs a value"))?;
        if value.parse::<u64>().is_err() {
            bail!("{arg} takes a number, not {value:?}");
        }
        match arg.as_str() {
            "--cuts" => cuts = value.clone(),
            "--seed" => seed = value.clone(),
            other => bail!("unknown option {other:?} for crash\n{USAGE}"),
        }
    }
    let mut command = cargo(&["test", "--release", "-p", "fs", "--test", "crash", "--", "--ignored", "--nocapture"]);
    command.env("CRASH_CUTS", &cuts).env("CRASH_SEED", &seed);
    let status = command.status().context("running the crash campaign")?;
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn bench(args: &[String]) -> Result<ExitCode> {
    match args {
        [name] if name == "platform" => {
            bench_platform()?;
            Ok(ExitCode::SUCCESS)
        }
        [name, part @ ..] if name == "net" => {
            xtask::netbench::run(xtask::netbench::Part::parse(part)?)?;
            Ok(ExitCode::SUCCESS)
        }
        [name, options @ ..] if name == "s3" => {
            xtask::s3bench::run(options)?;
            Ok(ExitCode::SUCCESS)
        }
        [name] if name == "storage" => {
            xtask::run_checked(&mut cargo(&["run", "--release", "-p", "hosted", "--bin", "bench-storage"]))?;
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!("usage: cargo xtask bench <name>; available: {}", BENCHES.join(", "));
            Ok(ExitCode::from(2))
        }
    }
}

fn bench_platform() -> Result<()> {
    xtask::run_checked(&mut cargo(&["bench", "-p", "kernel", "--bench", "heap"]))?;
    xtask::run_checked(&mut cargo(&["run", "--release", "-p", "hosted", "--bin", "bench-runtime"]))?;

    setup::ensure_host_tools()?;
    let elf = image::build()?;
    let state = State::new();
    std::fs::create_dir_all(state.logs_dir())?;
    // Disks of its own, and no port forwards, so that a running VM is
    // undisturbed.
    let virtio = state.dir().join("bench-virtio.img");
    let nvme = state.dir().join("bench-nvme.img");
    qemu::ensure_disk(&virtio, xtask::state::DISK_SIZE_BYTES)?;
    qemu::ensure_disk(&nvme, xtask::state::DISK_SIZE_BYTES)?;
    let cfg = VmConfig {
        memory_mib: 512,
        virtio_blk: Some(virtio),
        nvme: Some(nvme),
        net: Some(NetConfig::User { forwards: vec![] }),
        ..VmConfig::new(&elf, "log=info")
    };
    let serial = state.logs_dir().join("bench-serial.log");
    let mut times_ms = Vec::new();
    for _ in 0..5 {
        let (mut child, boot) = qemu::run_until_line(&cfg, &serial, READY_NEEDLE, BOOT_TIMEOUT)?;
        let _ = child.kill();
        let _ = child.wait();
        times_ms.push(boot.as_secs_f64() * 1000.0);
    }
    println!();
    println!("Boot time, QEMU launch to ready line ({:?}):", cfg.accel);
    println!();
    println!("| run | ms |");
    println!("|---|---|");
    for (i, ms) in times_ms.iter().enumerate() {
        println!("| {} | {ms:.1} |", i + 1);
    }
    println!("| median | {:.1} |", xtask::median(&mut times_ms));
    println!();
    println!("Image: {} ({})", elf.display(), size_of(&elf)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_options() {
        let defaults = RunOptions::parse(&[]).unwrap();
        assert_eq!(
            defaults,
            RunOptions { detach: false, cmdline: "log=info".into(), port: 8443, admin_port: 9443, memory_mib: 1024 }
        );
        let opts = RunOptions::parse(&strings(&[
            "--detach",
            "--cmdline",
            "log=debug selftest=smoke",
            "--port=10443",
            "--admin-port",
            "10444",
            "--memory",
            "1024",
        ]))
        .unwrap();
        assert!(opts.detach);
        assert_eq!(opts.cmdline, "log=debug selftest=smoke");
        assert_eq!((opts.port, opts.admin_port, opts.memory_mib), (10443, 10444, 1024));
        assert!(RunOptions::parse(&strings(&["--port", "70000"])).is_err());
        assert!(RunOptions::parse(&strings(&["--port"])).is_err());
        assert!(RunOptions::parse(&strings(&["--bogus"])).is_err());
    }

    #[test]
    fn run_vm_config() {
        let state = State::at(Path::new("/repo"));
        let opts = RunOptions::parse(&strings(&["--port", "1443"])).unwrap();
        let cfg = opts.vm_config(Path::new("/k"), &state);
        assert_eq!(cfg.virtio_blk.as_deref(), Some(state.virtio_disk().as_path()));
        assert_eq!(cfg.nvme.as_deref(), Some(state.nvme_disk().as_path()));
        assert_eq!(cfg.net, Some(NetConfig::User { forwards: vec![(1443, 443), (9443, 9443)] }));
        assert_eq!(cfg.cmdline, "log=info");
    }

    #[test]
    fn counts_libtest_summaries() {
        let mut counts = TestCounts::default();
        counts
            .add_line("test result: ok. 13 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s");
        counts.add_line("test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out");
        counts.add_line("test foo ... ok");
        counts.add_line("running 3 tests");
        assert_eq!(counts, TestCounts { passed: 15, failed: 1 });
    }
}
