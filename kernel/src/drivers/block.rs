//! What the kernel's block drivers share beyond `storage::block::BlockDevice`:
//! an interrupt vector and the task that reaps completions when it fires.
//! The S3 service and the self tests take any such device.

use storage::block::BlockDevice;

use crate::drivers::nvme::Nvme;
use crate::drivers::virtio::blk::VirtioBlk;

/// A block driver whose completions arrive on one interrupt vector.
pub trait InterruptBlockDevice: BlockDevice {
    fn vector(&self) -> u8;
    /// The task that reaps completions when `event` fires.
    fn reaper(&self, event: &'static runtime::event::Event) -> impl core::future::Future<Output = ()> + 'static;
    fn completed_requests(&self) -> u64;
}

impl InterruptBlockDevice for VirtioBlk {
    fn vector(&self) -> u8 {
        self.vector
    }

    fn reaper(&self, event: &'static runtime::event::Event) -> impl core::future::Future<Output = ()> + 'static {
        self.completions(event)
    }

    fn completed_requests(&self) -> u64 {
        VirtioBlk::completed_requests(self)
    }
}

impl InterruptBlockDevice for Nvme {
    fn vector(&self) -> u8 {
        self.vector
    }

    fn reaper(&self, event: &'static runtime::event::Event) -> impl core::future::Future<Output = ()> + 'static {
        self.completions(event)
    }

    fn completed_requests(&self) -> u64 {
        Nvme::completed_requests(self)
    }
}
