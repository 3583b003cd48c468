//! A file (or block device node) as a `storage::block::BlockDevice`, for the
//! hosted platform and the storage benchmarks on a real disk.
//!
//! Opened with O_DIRECT where the filesystem supports it (tmpfs does not,
//! and then the page cache is used: said by `direct_io()`), so benchmarks
//! measure the disk and not memory; `IoBuf`s are page-aligned, which
//! O_DIRECT needs. `flush` is `fdatasync`: the data and the metadata needed
//! to read it back are durable when it returns. The I/O is synchronous
//! (positioned reads and writes); the futures complete when polled.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use storage::block::{BlockDevice, BlockError, Geometry, IoBuf, IoResult};

pub struct FileDisk {
    file: File,
    geometry: Geometry,
    direct_io: bool,
}

impl FileDisk {
    /// Opens (creating and sizing if needed) `path` as a disk of
    /// `capacity_bytes` with `block_bytes` logical blocks.
    pub fn open(path: &Path, block_bytes: u32, capacity_bytes: u64) -> io::Result<Self> {
        let open = |flags: i32| {
            OpenOptions::new().read(true).write(true).create(true).truncate(false).custom_flags(flags).open(path)
        };
        let (file, direct_io) = match open(libc::O_DIRECT) {
            Ok(file) => (file, true),
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => (open(0)?, false),
            Err(error) => return Err(error),
        };
        if file.metadata()?.len() < capacity_bytes {
            file.set_len(capacity_bytes)?;
        }
        let geometry = Geometry {
            block_bytes,
            capacity_blocks: capacity_bytes / u64::from(block_bytes),
            queue_depth: 1,
            supports_discard: false,
        };
        Ok(Self { file, geometry, direct_io })
    }

    /// Whether the page cache is bypassed.
    pub fn direct_io(&self) -> bool {
        self.direct_io
    }

    fn offset(&self, lba: u64) -> u64 {
        lba * u64::from(self.geometry.block_bytes)
    }
}

fn io_error(lba: u64) -> BlockError {
    BlockError::Io { lba }
}

impl BlockDevice for FileDisk {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    async fn read(&self, lba: u64, mut buf: IoBuf) -> IoResult {
        if let Err(error) = self.geometry.check(lba, buf.len()) {
            return (Err(error), buf);
        }
        let result = self.file.read_exact_at(buf.as_mut_slice(), self.offset(lba)).map_err(|_| io_error(lba));
        (result, buf)
    }

    async fn write(&self, lba: u64, buf: IoBuf) -> IoResult {
        if let Err(error) = self.geometry.check(lba, buf.len()) {
            return (Err(error), buf);
        }
        let result = self.file.write_all_at(buf.as_slice(), self.offset(lba)).map_err(|_| io_error(lba));
        (result, buf)
    }

    async fn flush(&self) -> Result<(), BlockError> {
        self.file.sync_data().map_err(|_| io_error(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    fn now<F: Future>(future: F) -> F::Output {
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("FileDisk completes synchronously"),
        }
    }

    #[test]
    fn writes_read_back_and_survive_reopening() {
        // Under target/ (a real filesystem, so O_DIRECT is exercised where
        // supported), not /tmp (often tmpfs).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/hosted-block-test");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("disk-{}.img", std::process::id()));
        let data: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
        {
            let disk = FileDisk::open(&path, 512, 1 << 20).unwrap();
            assert_eq!(disk.geometry().capacity_blocks, 2048);
            now(disk.write(10, IoBuf::from_slice(&data))).0.unwrap();
            now(disk.flush()).unwrap();
            let (result, _) = now(disk.read(2048, IoBuf::zeroed(512)));
            assert!(matches!(result, Err(BlockError::OutOfRange { .. })));
            let (result, _) = now(disk.write(0, IoBuf::zeroed(100)));
            assert!(matches!(result, Err(BlockError::Misaligned { .. })));
        }
        let disk = FileDisk::open(&path, 512, 1 << 20).unwrap();
        let (result, buf) = now(disk.read(10, IoBuf::zeroed(8192)));
        result.unwrap();
        assert_eq!(buf.as_slice(), &data[..]);
        std::fs::remove_file(&path).unwrap();
    }
}
