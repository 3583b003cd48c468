//! A disk in memory: the fastest device, for benchmarks and the upper
//! layers' tests. Writes are durable at once (it has no power to lose).

use alloc::vec;
use alloc::vec::Vec;
use core::future::{Future, ready};

use spin::Mutex;

use super::{BlockDevice, BlockError, Geometry, IoBuf, IoResult};

pub struct RamDisk {
    geometry: Geometry,
    bytes: Mutex<Vec<u8>>,
}

impl RamDisk {
    pub fn new(block_bytes: u32, capacity_blocks: u64) -> Self {
        let geometry = Geometry { block_bytes, capacity_blocks, queue_depth: 64, supports_discard: true };
        Self { geometry, bytes: Mutex::new(vec![0; geometry.capacity_bytes() as usize]) }
    }
}

impl BlockDevice for RamDisk {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn read(&self, lba: u64, mut buf: IoBuf) -> impl Future<Output = IoResult> {
        let result = self.geometry.check(lba, buf.len()).map(|_| {
            let start = (lba * u64::from(self.geometry.block_bytes)) as usize;
            let len = buf.len();
            buf.as_mut_slice().copy_from_slice(&self.bytes.lock()[start..start + len]);
        });
        ready((result, buf))
    }

    fn write(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        let result = self.geometry.check(lba, buf.len()).map(|_| {
            let start = (lba * u64::from(self.geometry.block_bytes)) as usize;
            self.bytes.lock()[start..start + buf.len()].copy_from_slice(buf.as_slice());
        });
        ready((result, buf))
    }

    fn flush(&self) -> impl Future<Output = Result<(), BlockError>> {
        ready(Ok(()))
    }

    /// Discarded blocks read back as zeros.
    fn discard(&self, lba: u64, blocks: u64) -> impl Future<Output = Result<(), BlockError>> {
        let block_bytes = u64::from(self.geometry.block_bytes);
        let result = match lba.checked_add(blocks) {
            Some(end) if end <= self.geometry.capacity_blocks => {
                self.bytes.lock()[(lba * block_bytes) as usize..(end * block_bytes) as usize].fill(0);
                Ok(())
            }
            _ => Err(BlockError::OutOfRange { lba, blocks, capacity_blocks: self.geometry.capacity_blocks }),
        };
        ready(result)
    }
}
