//! `.rustcore/` at the repo root (ignored by git): what `cargo xtask run`
//! keeps across runs and restarts.
//!
//! ```text
//! .rustcore/disk-virtio.img   1 GiB sparse raw disk (virtio-blk)
//! .rustcore/disk-nvme.img     1 GiB sparse raw disk (NVMe)
//! .rustcore/logs/serial.log   COM1 of a detached VM
//! .rustcore/qemu.pid          the running VM, if any
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::qemu::ensure_disk;

/// Size of each data disk.
pub const DISK_SIZE_BYTES: u64 = 1 << 30;

#[derive(Clone, Debug)]
pub struct State {
    dir: PathBuf,
}

impl State {
    /// `.rustcore/` of this repository.
    pub fn new() -> State {
        State::at(&crate::repo_root())
    }

    /// `.rustcore/` under `repo_root`.
    pub fn at(repo_root: &Path) -> State {
        State { dir: repo_root.join(".rustcore") }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn virtio_disk(&self) -> PathBuf {
        self.dir.join("disk-virtio.img")
    }

    pub fn nvme_disk(&self) -> PathBuf {
        self.dir.join("disk-nvme.img")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    pub fn serial_log(&self) -> PathBuf {
        self.logs_dir().join("serial.log")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }

    /// Creates the directories and the disks that are missing.
    pub fn ensure(&self) -> Result<()> {
        std::fs::create_dir_all(self.logs_dir()).with_context(|| format!("creating {}", self.logs_dir().display()))?;
        ensure_disk(&self.virtio_disk(), DISK_SIZE_BYTES)?;
        ensure_disk(&self.nvme_disk(), DISK_SIZE_BYTES)?;
        Ok(())
    }

    /// The pid in the pid file, if the file exists and holds one.
    pub fn recorded_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file()).ok()?.trim().parse().ok()
    }

    /// The recorded pid if it names a live QEMU process (not a reused pid).
    pub fn running_qemu(&self) -> Option<u32> {
        self.recorded_pid().filter(|&pid| is_live_qemu(pid))
    }

    pub fn write_pid(&self, pid: u32) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.pid_file(), format!("{pid}\n"))
            .with_context(|| format!("writing {}", self.pid_file().display()))
    }

    pub fn remove_pid(&self) -> Result<()> {
        match std::fs::remove_file(self.pid_file()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", self.pid_file().display())),
        }
    }
}

impl Default for State {
    fn default() -> State {
        State::new()
    }
}

/// Whether `pid` is a running (not zombie) process whose name starts with
/// `qemu`.
pub fn is_live_qemu(pid: u32) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let is_qemu = std::fs::read_to_string(proc_dir.join("comm")).is_ok_and(|comm| comm.starts_with("qemu"));
    is_qemu && is_alive(pid)
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself
    // contain parentheses: look after the last one.
    stat.rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let state = State::at(Path::new("/repo"));
        assert_eq!(state.dir(), Path::new("/repo/.rustcore"));
        assert_eq!(state.virtio_disk(), Path::new("/repo/.rustcore/disk-virtio.img"));
        assert_eq!(state.nvme_disk(), Path::new("/repo/.rustcore/disk-nvme.img"));
        assert_eq!(state.serial_log(), Path::new("/repo/.rustcore/logs/serial.log"));
        assert_eq!(state.pid_file(), Path::new("/repo/.rustcore/qemu.pid"));
        assert_eq!(State::new().dir(), crate::repo_root().join(".rustcore"));
    }

    #[test]
    fn ensure_and_pid_file() {
        let root = std::env::temp_dir().join(format!("xtask-state-{}", std::process::id()));
        let state = State::at(&root);
        state.ensure().unwrap();
        assert_eq!(std::fs::metadata(state.virtio_disk()).unwrap().len(), DISK_SIZE_BYTES);
        assert_eq!(std::fs::metadata(state.nvme_disk()).unwrap().len(), DISK_SIZE_BYTES);
        assert!(state.logs_dir().is_dir());

        assert_eq!(state.recorded_pid(), None);
        // Our own pid is alive but is not QEMU.
        state.write_pid(std::process::id()).unwrap();
        assert_eq!(state.recorded_pid(), Some(std::process::id()));
        assert!(is_alive(std::process::id()));
        assert_eq!(state.running_qemu(), None);
        state.remove_pid().unwrap();
        state.remove_pid().unwrap();
        assert_eq!(state.recorded_pid(), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
