//! Host tooling for Rustcore S3, usable as a library (the kernel's QEMU smoke
//! test calls [`image::build`] and [`qemu`]) and as the `cargo xtask` binary.
//!
//! - [`setup`]: the nightly components and QEMU this project needs.
//! - [`image`]: build the bootable kernel ELF.
//! - [`qemu`]: the QEMU command line, and running a VM to its exit or to a
//!   serial line.
//! - [`clients`]: real S3 clients (AWS CLI, boto3, s3cmd, rclone, s3fs,
//!   curl) for the end-to-end tests, installed on first use.
//! - [`state`]: `.rustcore/` at the repo root (disks, logs, pid file).
//! - [`netbench`]: `bench net`, the hosted network stack against Linux in
//!   network namespaces.
//! - [`s3bench`]: `bench s3`, Rustcore against Garage and s3s-fs under the
//!   same S3 load (`tools/s3bench`).

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod admin;
pub mod bootfs;
pub mod clients;
pub mod fuzz;
pub mod image;
pub mod netbench;
pub mod qemu;
pub mod s3bench;
pub mod setup;
pub mod state;

/// The workspace root: the parent of this crate's manifest directory.
pub fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}

/// The cargo to run children with: `$CARGO` (set by cargo for the processes
/// it runs), else `cargo` from PATH.
pub fn cargo_program() -> PathBuf {
    std::env::var_os("CARGO").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("cargo"))
}

/// Whether a variable that cargo sets for the process it runs (a test, a
/// `cargo run` binary) describes that package and must not leak into a
/// nested cargo invocation.
pub fn is_package_env_var(name: &str) -> bool {
    name == "CARGO_PRIMARY_PACKAGE" || name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_MANIFEST_")
}

/// Removes the package-describing variables cargo set for us from `cmd`.
pub fn remove_package_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_package_env_var) {
            cmd.env_remove(&name);
        }
    }
}

/// Runs `cmd` to completion with inherited stdio; fails unless it exits 0.
pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let shown = display_command(cmd);
    let status = cmd.status().with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Builds the host tool `tools/NAME` (its own workspace, lock file and
/// target directory, `tools/NAME/target`, so that its dependencies never
/// unify into the workspace's) and returns its binary, also named NAME.
pub fn build_host_tool(name: &str) -> Result<PathBuf> {
    let dir = repo_root().join("tools").join(name);
    let mut build = Command::new(cargo_program());
    build.current_dir(&dir).args(["build", "--release", "--locked"]);
    remove_package_env(&mut build);
    build.env_remove("CARGO_TARGET_DIR");
    run_checked(&mut build)?;
    Ok(dir.join("target/release").join(name))
}

/// `program arg1 arg2`, for messages.
pub fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(OsStr::to_string_lossy).collect::<Vec<_>>().join(" ")
}

/// Whether this process runs as root (effective uid 0): network namespaces,
/// TAP devices and apt-get need it.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status.lines().find_map(|line| line.strip_prefix("Uid:")).and_then(|uids| uids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// `ip ARGS` (iproute2), its output discarded; fails unless it exits 0.
pub fn ip(args: &[&str]) -> Result<()> {
    run_checked(Command::new("ip").args(args).stdout(Stdio::null()))
}

/// Cargo's target directory for host builds.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from)
}

/// Waits for `child` to exit; after `timeout` kills it and returns `None`.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `program` is an executable file in a directory of PATH.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program)).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn repo_root_holds_the_workspace() {
        let root = repo_root();
        assert!(root.join("xtask").join("Cargo.toml").is_file());
        assert!(root.join("Cargo.toml").is_file());
    }

    #[test]
    fn package_env_vars() {
        assert!(is_package_env_var("CARGO_PKG_NAME"));
        assert!(is_package_env_var("CARGO_MANIFEST_DIR"));
        assert!(is_package_env_var("CARGO_MANIFEST_PATH"));
        assert!(is_package_env_var("CARGO_PRIMARY_PACKAGE"));
        assert!(!is_package_env_var("CARGO"));
        assert!(!is_package_env_var("CARGO_HOME"));
    }

    #[test]
    fn path_lookup() {
        assert!(on_path("sh"));
        assert!(!on_path("surely-no-such-program-rustcore"));
    }
}
