//! The fuzz targets (`fuzz/`, cargo fuzz with libFuzzer) run briefly as a
//! step of `cargo xtask test`: each target gets a few seconds from an empty
//! corpus, so a parser change that panics on easy input fails CI. Longer
//! runs: `cd fuzz && cargo fuzz run TARGET`.

use std::process::Command;

use anyhow::{Context, Result};

use crate::{cargo_program, remove_package_env, repo_root, run_checked};

/// The `[[bin]]` names of fuzz/Cargo.toml.
pub fn targets() -> Result<Vec<String>> {
    let manifest = std::fs::read_to_string(repo_root().join("fuzz/Cargo.toml")).context("reading fuzz/Cargo.toml")?;
    Ok(manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("name = \""))
        .filter_map(|rest| rest.strip_suffix('"'))
        .filter(|name| *name != "rustcore-fuzz")
        .map(String::from)
        .collect())
}

fn cargo_fuzz(args: &[&str]) -> Command {
    let mut cmd = Command::new(cargo_program());
    cmd.current_dir(repo_root().join("fuzz")).arg("fuzz").args(args);
    remove_package_env(&mut cmd);
    cmd
}

/// Installs cargo-fuzz when it is missing (a host tool, from crates.io).
pub fn ensure_cargo_fuzz() -> Result<()> {
    let present = Command::new(cargo_program()).args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if !present {
        println!("xtask: installing cargo-fuzz (once)");
        run_checked(Command::new(cargo_program()).args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// Builds every target, then runs each for `seconds`: (passed, failed).
pub fn smoke(seconds: u32) -> Result<(u64, u64)> {
    ensure_cargo_fuzz()?;
    run_checked(&mut cargo_fuzz(&["build", "-O"])).context("building the fuzz targets")?;
    let (mut passed, mut failed) = (0, 0);
    for target in targets()? {
        let time = format!("-max_total_time={seconds}");
        let status = cargo_fuzz(&["run", "-O", &target, "--", &time, "-rss_limit_mb=2048"])
            .status()
            .with_context(|| format!("running fuzz target {target}"))?;
        if status.success() {
            println!("xtask test: fuzz {target} ({seconds} s): ok");
            passed += 1;
        } else {
            println!("xtask test: fuzz {target}: FAILED ({status}); the crash input is under fuzz/artifacts/{target}/");
            failed += 1;
        }
    }
    Ok((passed, failed))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_target_is_listed() {
        let targets = super::targets().unwrap();
        for name in ["http_request", "s3_xml", "sigv4", "aws_chunked", "s3_server", "bootfs", "tls_server"] {
            assert!(targets.iter().any(|t| t == name), "{name} in {targets:?}");
        }
    }
}
