//! Building the bootable kernel image (a PVH ELF that QEMU loads with
//! `-kernel`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::{cargo_program, remove_package_env, repo_root, run_checked, setup};

/// The custom target spec, relative to the repo root.
pub const TARGET_SPEC: &str = "kernel/x86_64-rustcore.json";
/// Where image builds go, relative to the repo root (apart from other
/// builds, so that a build from inside `cargo test` never waits on the
/// outer build's lock and never sees the host's flags).
pub const TARGET_DIR: &str = "target/image";

/// Variables that describe the calling build (a `cargo test` run) or would
/// redirect or re-flag the image build.
const REMOVED_ENV: [&str; 6] = [
    "CARGO_TARGET_DIR",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_PRIMARY_PACKAGE",
];

/// Builds the release kernel image incrementally and returns the ELF path.
pub fn build() -> Result<PathBuf> {
    setup::ensure_toolchain()?;
    let root = repo_root();
    run_checked(&mut build_command(&root)).context("building the kernel image")?;
    let elf = image_path(&root);
    anyhow::ensure!(elf.is_file(), "the build succeeded but {} is missing", elf.display());
    Ok(elf)
}

/// The ELF that [`build`] produces under `root`.
pub fn image_path(root: &Path) -> PathBuf {
    root.join(TARGET_DIR).join("x86_64-rustcore").join("release").join("rustcore")
}

/// The cargo invocation of [`build`], with a cleaned environment.
pub fn build_command(root: &Path) -> Command {
    kernel_cargo(root, "build")
}

/// Clippy over the kernel as the image compiles it: the bare-metal modules
/// do not exist in the host build that `cargo clippy --workspace` checks.
pub fn clippy_command(root: &Path) -> Command {
    let mut cmd = kernel_cargo(root, "clippy");
    cmd.args(["--", "-D", "warnings"]);
    cmd
}

/// `cargo <subcommand>` for the kernel image, with a cleaned environment.
fn kernel_cargo(root: &Path, subcommand: &str) -> Command {
    let mut cmd = Command::new(cargo_program());
    cmd.current_dir(root)
        .args([subcommand, "--release", "-p", "kernel", "--bin", "rustcore"])
        .args(["--target", TARGET_SPEC])
        .args([
            "-Zbuild-std=core,alloc,compiler_builtins",
            "-Zbuild-std-features=compiler-builtins-mem",
            "-Zjson-target-spec",
        ])
        .arg("--target-dir")
        .arg(root.join(TARGET_DIR));
    for name in REMOVED_ENV {
        cmd.env_remove(name);
    }
    remove_package_env(&mut cmd);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn build_command_arguments() {
        let root = Path::new("/repo");
        let cmd = build_command(root);
        let args: Vec<&OsStr> = cmd.get_args().collect();
        assert_eq!(
            args,
            [
                "build",
                "--release",
                "-p",
                "kernel",
                "--bin",
                "rustcore",
                "--target",
                "kernel/x86_64-rustcore.json",
                "-Zbuild-std=core,alloc,compiler_builtins",
                "-Zbuild-std-features=compiler-builtins-mem",
                "-Zjson-target-spec",
                "--target-dir",
                "/repo/target/image",
            ]
        );
        assert_eq!(cmd.get_current_dir(), Some(root));
        assert_eq!(image_path(root), Path::new("/repo/target/image/x86_64-rustcore/release/rustcore"));
    }

    #[test]
    fn build_command_cleans_the_environment() {
        let cmd = build_command(Path::new("/repo"));
        let removed: Vec<String> = cmd
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        for name in REMOVED_ENV {
            assert!(removed.iter().any(|r| r == name), "{name} not removed");
        }
        // `cargo test` sets these for the test process; they must not leak.
        for (name, _) in std::env::vars() {
            if name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_MANIFEST_") {
                assert!(removed.contains(&name), "{name} not removed");
            }
        }
        assert!(removed.iter().any(|r| r == "CARGO_MANIFEST_DIR"));
        assert!(cmd.get_envs().all(|(_, value)| value.is_none()));
    }
}
