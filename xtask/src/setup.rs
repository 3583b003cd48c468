//! The toolchain pieces and host programs (QEMU, openssl, tar, curl) the project needs. These machines set
//! `RUSTUP_AUTO_INSTALL=0`, so nothing installs itself: install explicitly,
//! and only what is missing.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{on_path, run_checked};

/// Components of the nightly toolchain (`rustup component add`).
pub const COMPONENTS: [&str; 3] = ["rust-src", "clippy", "rustfmt"];
/// The target whose `core`/`alloc` sources `-Zbuild-std` builds against.
pub const TARGET: &str = "x86_64-unknown-none";

/// Adds the nightly components and target that `rustup +nightly component
/// list --installed` does not list.
pub fn ensure_toolchain() -> Result<()> {
    let output = Command::new("rustup")
        .args(["+nightly", "component", "list", "--installed"])
        .output()
        .context("cannot run rustup (is it installed and on PATH?)")?;
    if !output.status.success() {
        bail!(
            "`rustup +nightly component list --installed` failed: {}\n\
             install the toolchain with: rustup toolchain install nightly",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let installed = String::from_utf8_lossy(&output.stdout);
    let (components, target_missing) = missing(&installed);
    if !components.is_empty() {
        eprintln!("xtask: installing nightly components {}", components.join(" "));
        run_checked(Command::new("rustup").args(["component", "add", "--toolchain", "nightly"]).args(&components))?;
    }
    if target_missing {
        eprintln!("xtask: installing nightly target {TARGET}");
        run_checked(Command::new("rustup").args(["target", "add", "--toolchain", "nightly", TARGET]))?;
    }
    Ok(())
}

/// From the output of `rustup component list --installed`: the components
/// of [`COMPONENTS`] that are missing, and whether [`TARGET`] is missing.
/// rustup lists host-specific components with the host triple appended
/// (`clippy-x86_64-unknown-linux-gnu`) and targets as `rust-std-<triple>`.
pub fn missing(installed: &str) -> (Vec<&'static str>, bool) {
    let lines: Vec<&str> = installed.lines().map(str::trim).collect();
    let has = |name: &str| {
        lines.iter().any(|line| *line == name || line.strip_prefix(name).is_some_and(|rest| rest.starts_with('-')))
    };
    let components = COMPONENTS.into_iter().filter(|c| !has(c)).collect();
    let target_missing = !lines.contains(&format!("rust-std-{TARGET}").as_str());
    (components, target_missing)
}

/// Host programs the appliance's tooling and tests run, with the Debian
/// package that provides each: QEMU, and `openssl`/`tar` (the boot archive
/// with its certificates), `curl` (the HTTPS test), `ip` (network namespaces
/// and TAP devices for the hosted client suite and the benchmarks).
const HOST_TOOLS: [(&str, &str); 5] = [
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("openssl", "openssl"),
    ("tar", "tar"),
    ("curl", "curl"),
    ("ip", "iproute2"),
];

/// Makes sure every program in `HOST_TOOLS` is on PATH: installs the missing
/// Debian packages when running as root, otherwise says what to run.
pub fn ensure_host_tools() -> Result<()> {
    let missing: Vec<&str> =
        HOST_TOOLS.iter().filter(|(program, _)| !on_path(program)).map(|(_, package)| *package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages = missing.join(" ");
    if !crate::is_root() {
        bail!("missing host packages; run as root:\n    sudo apt-get update && sudo apt-get install -y {packages}");
    }
    eprintln!("xtask: installing {packages}");
    run_checked(Command::new("apt-get").arg("update"))?;
    run_checked(Command::new("apt-get").args(["install", "-y"]).args(&missing))?;
    if let Some((program, _)) = HOST_TOOLS.iter().find(|(program, _)| !on_path(program)) {
        bail!("installed {packages}, but {program} is still not on PATH");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing() {
        let installed = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                         rust-src\nrust-std-x86_64-unknown-linux-gnu\nrust-std-x86_64-unknown-none\n\
                         rustc-x86_64-unknown-linux-gnu\nrustfmt-x86_64-unknown-linux-gnu\n";
        assert_eq!(missing(installed), (vec![], false));
    }

    #[test]
    fn everything_missing() {
        let installed = "cargo-x86_64-unknown-linux-gnu\nrust-std-x86_64-unknown-linux-gnu\n\
                         rustc-x86_64-unknown-linux-gnu\n";
        assert_eq!(missing(installed), (vec!["rust-src", "clippy", "rustfmt"], true));
    }

    #[test]
    fn unsuffixed_component_names() {
        assert_eq!(missing("rust-src\nclippy\nrustfmt\n"), (vec![], true));
    }
}
