//! Real S3 clients for the end-to-end tests and benchmarks: the AWS CLI
//! (v1), boto3 and s3cmd from PyPI in a private virtualenv, and rclone,
//! s3fs-fuse and curl from Debian.
//!
//! The virtualenv lives outside the repository, in
//! `$XDG_CACHE_HOME/rustcore/clients-<hash>` (else `~/.cache/...`), where
//! the hash covers the pins and the Python version: changing a pin makes a
//! new one, and a second call finds the first one complete and does nothing.
//! A `.complete` marker is written last, so an interrupted install is redone;
//! a lock file serialises concurrent callers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{on_path, run_checked};

/// What `pip install` gets, exactly. awscli pins botocore and s3transfer;
/// boto3 is the release that matches the same botocore.
pub const PIP_PINS: [&str; 5] =
    ["awscli==1.46.3", "botocore==1.44.3", "boto3==1.44.3", "s3transfer==0.19.3", "s3cmd==2.4.0"];

/// Debian packages for the clients that are not Python: (program, package).
const DEBIAN_CLIENTS: [(&str, &str); 2] = [("rclone", "rclone"), ("curl", "curl")];
/// s3fs needs FUSE; it is installed only where `/dev/fuse` exists.
const S3FS: (&str, &str) = ("s3fs", "s3fs");
const FUSE_DEVICE: &str = "/dev/fuse";

/// Where each client is, and why any is unavailable.
#[derive(Clone, Debug)]
pub struct Clients {
    /// The virtualenv's directory.
    pub venv: PathBuf,
    /// Its interpreter (boto3 scripts run with it).
    pub python: PathBuf,
    pub aws: PathBuf,
    pub s3cmd: PathBuf,
    pub rclone: PathBuf,
    pub curl: PathBuf,
    /// `Err(reason)` where FUSE is not available on this host.
    pub s3fs: Result<PathBuf, String>,
    /// How long [`ensure`] took (near zero once installed).
    pub install_time: Duration,
}

/// Installs whatever is missing and returns the clients' paths.
pub fn ensure() -> Result<Clients> {
    let start = Instant::now();
    let venv = ensure_venv()?;
    let fuse = Path::new(FUSE_DEVICE).exists();
    let mut wanted: Vec<(&str, &str)> = DEBIAN_CLIENTS.to_vec();
    if fuse {
        wanted.push(S3FS);
    }
    ensure_debian(&wanted)?;
    let bin = venv.join("bin");
    let s3fs = if fuse {
        which("s3fs").ok_or_else(|| "s3fs is not on PATH after installing it".to_string())
    } else {
        Err(format!("{FUSE_DEVICE} does not exist on this host (no FUSE)"))
    };
    Ok(Clients {
        python: bin.join("python"),
        aws: bin.join("aws"),
        s3cmd: bin.join("s3cmd"),
        rclone: which("rclone").context("rclone is not on PATH")?,
        curl: which("curl").context("curl is not on PATH")?,
        s3fs,
        venv,
        install_time: start.elapsed(),
    })
}

/// The cache directory for virtualenvs: `$XDG_CACHE_HOME/rustcore`, else
/// `$HOME/.cache/rustcore`, else the system temporary directory's.
pub fn cache_root() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    non_empty("XDG_CACHE_HOME")
        .or_else(|| non_empty("HOME").map(|home| home.join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("rustcore")
}

/// `clients-<16 hex digits>` for these pins and this interpreter.
pub fn venv_name(pins: &[&str], python_version: &str) -> String {
    let mut hash = Fnv1a::new();
    for pin in pins {
        hash.write(pin.as_bytes());
        hash.write(b"\n");
    }
    hash.write(python_version.trim().as_bytes());
    format!("clients-{:016x}", hash.finish())
}

/// 64-bit FNV-1a: stable across Rust releases, unlike `DefaultHasher`.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

fn ensure_venv() -> Result<PathBuf> {
    ensure_debian(&[("python3", "python3")])?;
    let version = Command::new("python3").arg("--version").output().context("cannot run python3 --version")?;
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let root = cache_root();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let venv = root.join(venv_name(&PIP_PINS, &version));
    let marker = venv.join(".complete");
    let _lock = FileLock::acquire(&root.join(format!("{}.lock", venv_name(&PIP_PINS, &version))))?;
    if marker.is_file() {
        return Ok(venv);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("removing the incomplete {}", venv.display()))?;
    }
    eprintln!("xtask: installing {} into {}", PIP_PINS.join(" "), venv.display());
    let start = Instant::now();
    let created =
        Command::new("python3").arg("-m").arg("venv").arg(&venv).output().context("cannot run python3 -m venv")?;
    if !created.status.success() {
        // Debian splits ensurepip into python3-venv.
        ensure_debian_package("python3-venv")?;
        let _ = std::fs::remove_dir_all(&venv);
        run_checked(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run_checked(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "--no-input"])
            .args(PIP_PINS)
            .env("PIP_NO_CACHE_DIR", "1"),
    )
    .context("installing the Python S3 clients")?;
    std::fs::write(&marker, format!("{}\n", PIP_PINS.join("\n")))?;
    eprintln!("xtask: Python S3 clients installed in {:.1} s", start.elapsed().as_secs_f64());
    Ok(venv)
}

/// Installs the Debian packages of the programs in `wanted` that are not on
/// PATH (as root; otherwise fails with the command to run).
fn ensure_debian(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> =
        wanted.iter().filter(|(program, _)| !on_path(program)).map(|(_, package)| *package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    install_debian(&missing)?;
    if let Some((program, _)) = wanted.iter().find(|(program, _)| !on_path(program)) {
        bail!("installed {}, but {program} is still not on PATH", missing.join(" "));
    }
    Ok(())
}

fn ensure_debian_package(package: &str) -> Result<()> {
    install_debian(&[package])
}

fn install_debian(packages: &[&str]) -> Result<()> {
    let shown = packages.join(" ");
    if !crate::is_root() {
        bail!("missing host packages; run as root:\n    sudo apt-get update && sudo apt-get install -y {shown}");
    }
    eprintln!("xtask: installing {shown}");
    let start = Instant::now();
    run_checked(Command::new("apt-get").args(["update", "-q"]))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    eprintln!("xtask: installed {shown} in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

/// The first executable `program` in PATH.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && is_executable(&m)))
}

fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

/// An exclusive `flock(2)` held until dropped.
struct FileLock(std::fs::File);

impl FileLock {
    fn acquire(path: &Path) -> Result<FileLock> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock(2) on a descriptor this function owns; no memory is
        // shared with the kernel.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("locking {}", path.display()));
        }
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as in `acquire`; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venv_name_follows_the_pins() {
        let a = venv_name(&PIP_PINS, "Python 3.11.7\n");
        assert_eq!(a, venv_name(&PIP_PINS, "Python 3.11.7"));
        assert!(a.starts_with("clients-") && a.len() == "clients-".len() + 16);
        assert_ne!(a, venv_name(&PIP_PINS[1..], "Python 3.11.7"));
        assert_ne!(a, venv_name(&PIP_PINS, "Python 3.12.1"));
    }

    #[test]
    fn every_pin_is_exact() {
        for pin in PIP_PINS {
            let (name, version) = pin.split_once("==").expect("name==version");
            assert!(!name.is_empty() && version.split('.').all(|part| part.parse::<u32>().is_ok()), "{pin}");
        }
    }

    #[test]
    fn fnv1a_reference_values() {
        let hash = |bytes: &[u8]| {
            let mut h = Fnv1a::new();
            h.write(bytes);
            h.finish()
        };
        assert_eq!(hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
