//! Block devices.
//!
//! A device is addressed in logical blocks ("sectors", 512 or 4096 bytes).
//! Requests take and give back an owned [`IoBuf`]: the device may still be
//! writing into a buffer by DMA when the future that asked for it is dropped,
//! so the buffer belongs to the request until it completes (the io_uring
//! rule), never to a borrow the caller could end early. Buffers are
//! 4 KiB-aligned whole pages, which O_DIRECT, NVMe PRPs and virtio all accept.
//!
//! Many requests may be in flight at once (up to `Geometry::queue_depth`):
//! the methods take `&self`. Errors are a [`BlockError`], never a panic.
//! Devices take whole blocks only; [`read_bytes`] and [`write_bytes`] are
//! the one place that turns an unaligned byte range into block requests.

mod buffer;
mod bytes;
mod faulty;
mod ram;

use core::future::Future;

pub use buffer::{BufferPool, IoBuf, PAGE_BYTES};
pub use bytes::{read_bytes, write_bytes};
pub use faulty::{CutReport, FaultConfig, SimDisk};
pub use ram::RamDisk;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The device reported a failed transfer at this block.
    Io { lba: u64 },
    /// The request reaches past the end of the device.
    OutOfRange { lba: u64, blocks: u64, capacity_blocks: u64 },
    /// The buffer is not a whole number of blocks.
    Misaligned { len_bytes: usize, block_bytes: u32 },
    /// No completion within the driver's deadline.
    Timeout,
    /// The device went away (hot unplug, fatal controller error, power cut).
    DeviceGone,
}

/// Shape and limits of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Logical block size: 512 or 4096.
    pub block_bytes: u32,
    pub capacity_blocks: u64,
    /// Requests the device takes at once; more wait in the driver.
    pub queue_depth: u16,
    pub supports_discard: bool,
}

impl Geometry {
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_blocks * u64::from(self.block_bytes)
    }

    /// Checks a request of `len_bytes` at `lba`; returns its length in blocks.
    pub fn check(&self, lba: u64, len_bytes: usize) -> Result<u64, BlockError> {
        let block = self.block_bytes as usize;
        if !len_bytes.is_multiple_of(block) {
            return Err(BlockError::Misaligned { len_bytes, block_bytes: self.block_bytes });
        }
        let blocks = (len_bytes / block) as u64;
        match lba.checked_add(blocks) {
            Some(end) if end <= self.capacity_blocks => Ok(blocks),
            _ => Err(BlockError::OutOfRange { lba, blocks, capacity_blocks: self.capacity_blocks }),
        }
    }
}

/// The outcome of a read or write: the buffer comes back either way.
pub type IoResult = (Result<(), BlockError>, IoBuf);

/// An async block device. Writes are volatile until a `flush` that started
/// after them completes: a power cut may keep, lose or tear any unflushed
/// write (the [`SimDisk`] does exactly that in tests).
pub trait BlockDevice {
    fn geometry(&self) -> Geometry;

    /// Reads `buf.len()` bytes from block `lba` into `buf`.
    fn read(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult>;

    /// Writes `buf` at block `lba`.
    fn write(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult>;

    /// Makes every completed write durable.
    fn flush(&self) -> impl Future<Output = Result<(), BlockError>>;

    /// Writes `buf` at block `lba`, then flushes: done when that write and
    /// every write completed before it are durable. A device may do both
    /// without a round trip to its caller in between (a journal commit is
    /// exactly this, and the caller's executor may be busy).
    fn write_durable(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        async move {
            let (result, buf) = self.write(lba, buf).await;
            if result.is_err() {
                return (result, buf);
            }
            (self.flush().await, buf)
        }
    }

    /// Tells the device the blocks are unused (no-op where unsupported).
    fn discard(&self, lba: u64, blocks: u64) -> impl Future<Output = Result<(), BlockError>> {
        let geometry = self.geometry();
        let checked = lba
            .checked_add(blocks)
            .filter(|&end| end <= geometry.capacity_blocks)
            .map(|_| ())
            .ok_or(BlockError::OutOfRange { lba, blocks, capacity_blocks: geometry.capacity_blocks });
        core::future::ready(checked)
    }
}

/// A shared device is a device: the store can own an `Arc` while a test
/// keeps another to cut its power.
impl<T: BlockDevice + ?Sized> BlockDevice for alloc::sync::Arc<T> {
    fn geometry(&self) -> Geometry {
        (**self).geometry()
    }

    fn read(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        (**self).read(lba, buf)
    }

    fn write(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        (**self).write(lba, buf)
    }

    fn flush(&self) -> impl Future<Output = Result<(), BlockError>> {
        (**self).flush()
    }

    fn write_durable(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        (**self).write_durable(lba, buf)
    }

    fn discard(&self, lba: u64, blocks: u64) -> impl Future<Output = Result<(), BlockError>> {
        (**self).discard(lba, blocks)
    }
}
