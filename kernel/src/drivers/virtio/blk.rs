//! virtio-blk (virtio spec section 5.2): one request queue on one MSI-X
//! vector, many requests in flight. Each request is a three-descriptor
//! chain: header (type, sector), the caller's `IoBuf`, and a status byte.
//!
//! Requests own their buffer until the device completes them, so dropping
//! a request's future never leaves the device writing into freed memory
//! (`drivers::requests`).
//! `completions` (spawned by the caller) waits on the queue's interrupt and
//! wakes the finished requests.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::{Future, poll_fn};

use storage::block::{BlockDevice, BlockError, Geometry, IoBuf, IoResult};

use super::queue::{Segment, SplitQueue};
use super::{F_VERSION_1, Transport, VirtioError};
use crate::drivers::dma::DmaBuffer;
use crate::drivers::requests::{AbandonOnDrop, Outcome, RequestSlots};
use crate::pci::{ConfigAccess, Function};

const F_BLK_SIZE: u64 = 1 << 6;
const F_FLUSH: u64 = 1 << 9;

const TYPE_IN: u32 = 0;
const TYPE_OUT: u32 = 1;
const TYPE_FLUSH: u32 = 4;

const STATUS_OK: u8 = 0;
/// Written into the status byte before submission: a value the device never
/// writes, so a completion without a status is visible.
const STATUS_PENDING: u8 = 0xFF;

const QUEUE_SIZE: u16 = 256;
const SLOT_BYTES: usize = 32;
/// virtio-blk addresses the disk in 512-byte sectors whatever its block size.
const SECTOR_BYTES: u64 = 512;

struct Inner {
    queue: SplitQueue,
    /// Request headers and status bytes, one 32-byte record per slot.
    headers: DmaBuffer,
    requests: RequestSlots<u8>,
    slot_of_head: Vec<u16>,
}

pub struct VirtioBlk {
    _transport: Transport,
    inner: Rc<RefCell<Inner>>,
    geometry: Geometry,
    flush_supported: bool,
    pub vector: u8,
}

impl VirtioBlk {
    pub fn init(
        access: &impl ConfigAccess,
        function: &Function,
        apic_id: u32,
        vector: u8,
    ) -> Result<Self, VirtioError> {
        let (transport, features) = Transport::init(access, function, F_VERSION_1 | F_BLK_SIZE | F_FLUSH)?;
        let config = &transport.device_config;
        let capacity_sectors = u64::from(config.read32(0)) | (u64::from(config.read32(4)) << 32);
        let block_bytes = if features & F_BLK_SIZE != 0 { config.read32(20).clamp(512, 4096) } else { 512 };
        let queue = transport.setup_queue(0, QUEUE_SIZE, 0, apic_id, vector)?;
        // Three descriptors per request.
        let slots = usize::from(queue.size() / 3);
        let inner = Inner {
            headers: DmaBuffer::new(slots * SLOT_BYTES),
            slot_of_head: vec![0; usize::from(queue.size())],
            queue,
            requests: RequestSlots::new(slots),
        };
        transport.driver_ok();
        let geometry = Geometry {
            block_bytes,
            capacity_blocks: capacity_sectors * SECTOR_BYTES / u64::from(block_bytes),
            queue_depth: slots as u16,
            supports_discard: false,
        };
        Ok(Self {
            _transport: transport,
            inner: Rc::new(RefCell::new(inner)),
            geometry,
            flush_supported: features & F_FLUSH != 0,
            vector,
        })
    }

    /// Reaps completions whenever the queue's interrupt fires. Spawn it once.
    pub fn completions(&self, event: &'static runtime::event::Event) -> impl Future<Output = ()> + 'static {
        let inner = self.inner.clone();
        async move {
            loop {
                event.wait().await;
                reap(&inner);
            }
        }
    }

    pub fn completed_requests(&self) -> u64 {
        self.inner.borrow().requests.completed()
    }

    async fn submit(&self, kind: u32, lba: u64, buffer: Option<IoBuf>) -> (Result<(), BlockError>, Option<IoBuf>) {
        let sector = lba * u64::from(self.geometry.block_bytes) / SECTOR_BYTES;
        let mut buffer = buffer;
        // Wait for a free slot and descriptors.
        let slot = poll_fn(|cx| {
            let inner = &mut *self.inner.borrow_mut();
            let room = inner.queue.free_descriptors() >= 3;
            inner.requests.poll_free(cx, room)
        })
        .await;
        {
            let mut inner = self.inner.borrow_mut();
            let record = slot * SLOT_BYTES;
            inner.headers.write::<u32>(record, kind);
            inner.headers.write::<u32>(record + 4, 0);
            inner.headers.write::<u64>(record + 8, sector);
            inner.headers.write::<u8>(record + 16, STATUS_PENDING);
            let base = inner.headers.bus_address();
            let mut segments = [Segment { address: base + record as u64, len: 16, device_writes: false }; 3];
            let mut count = 1;
            if let Some(data) = buffer.as_mut() {
                segments[1] = Segment {
                    address: data.as_mut_slice().as_mut_ptr() as u64,
                    len: data.len() as u32,
                    device_writes: kind == TYPE_IN,
                };
                count = 2;
            }
            segments[count] = Segment { address: base + record as u64 + 16, len: 1, device_writes: true };
            count += 1;
            let Some(head) = inner.queue.push(&segments[..count]) else {
                return (Err(BlockError::DeviceGone), buffer);
            };
            inner.slot_of_head[usize::from(head)] = slot as u16;
            inner.requests.start(slot, buffer.take());
            inner.queue.notify();
        }
        let guard = AbandonOnDrop::new(|| self.inner.borrow_mut().requests.abandon(slot));
        let (status, buffer) = poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            reap_locked(&mut inner);
            inner.requests.poll_done(slot, cx)
        })
        .await;
        guard.disarm();
        let result = if status == STATUS_OK { Ok(()) } else { Err(BlockError::Io { lba }) };
        (result, buffer)
    }
}

fn reap(inner: &RefCell<Inner>) {
    reap_locked(&mut inner.borrow_mut());
}

/// Hands every completed request to its waiter (or frees it if abandoned).
fn reap_locked(inner: &mut Inner) {
    while let Some((head, _)) = inner.queue.pop_used() {
        let slot = usize::from(inner.slot_of_head[usize::from(head)]);
        let status = inner.headers.read::<u8>(slot * SLOT_BYTES + 16);
        if inner.requests.complete(slot, status) == Outcome::Unknown {
            crate::fatal(format_args!("virtio-blk: completion for idle request slot {slot}"));
        }
    }
}

impl BlockDevice for VirtioBlk {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    async fn read(&self, lba: u64, buf: IoBuf) -> IoResult {
        if let Err(error) = self.geometry.check(lba, buf.len()) {
            return (Err(error), buf);
        }
        let (result, buffer) = self.submit(TYPE_IN, lba, Some(buf)).await;
        (result, buffer.unwrap_or_else(|| IoBuf::zeroed(0)))
    }

    async fn write(&self, lba: u64, buf: IoBuf) -> IoResult {
        if let Err(error) = self.geometry.check(lba, buf.len()) {
            return (Err(error), buf);
        }
        let (result, buffer) = self.submit(TYPE_OUT, lba, Some(buf)).await;
        (result, buffer.unwrap_or_else(|| IoBuf::zeroed(0)))
    }

    async fn flush(&self) -> Result<(), BlockError> {
        if !self.flush_supported {
            // Without VIRTIO_BLK_F_FLUSH the device promises write-through.
            return Ok(());
        }
        self.submit(TYPE_FLUSH, 0, None).await.0
    }
}
