//! A split virtqueue (virtio 1.x, section 2.7): descriptor table, driver
//! ("available") ring and device ("used") ring in DMA memory, plus the
//! driver's free list. Single owner: only the driver task touches it.

use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

use crate::drivers::dma::DmaBuffer;
use crate::drivers::mmio::Mmio;

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESCRIPTOR_BYTES: usize = 16;

/// One buffer of a chain: bus address, length, and whether the device
/// writes it (receive buffers) or reads it (transmit buffers).
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub address: u64,
    pub len: u32,
    pub device_writes: bool,
}

pub struct SplitQueue {
    size: u16,
    descriptors: DmaBuffer,
    avail: DmaBuffer,
    used: DmaBuffer,
    /// Next free descriptor for each descriptor (a singly linked free list).
    next_free: Vec<u16>,
    free_head: u16,
    free_count: u16,
    /// Length of the chain starting at each head, to free it on completion.
    chain_len: Vec<u16>,
    avail_index: u16,
    last_used_index: u16,
    notify: Mmio,
    queue_index: u16,
}

impl SplitQueue {
    /// `size` must be a power of two no larger than the device's maximum.
    pub fn new(size: u16, queue_index: u16, notify: Mmio) -> Self {
        assert!(size.is_power_of_two(), "virtqueue size must be a power of two");
        let n = usize::from(size);
        Self {
            size,
            descriptors: DmaBuffer::new(DESCRIPTOR_BYTES * n),
            avail: DmaBuffer::new(6 + 2 * n),
            used: DmaBuffer::new(6 + 8 * n),
            next_free: (1..=size).collect(),
            free_head: 0,
            free_count: size,
            chain_len: alloc::vec![0; n],
            avail_index: 0,
            last_used_index: 0,
            notify,
            queue_index,
        }
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    pub fn free_descriptors(&self) -> u16 {
        self.free_count
    }

    /// Bus addresses of the three areas, for the transport's queue setup.
    pub fn addresses(&self) -> (u64, u64, u64) {
        (self.descriptors.bus_address(), self.avail.bus_address(), self.used.bus_address())
    }

    /// Makes a chain of `segments` available to the device; returns its head
    /// descriptor (the id the device will report), or `None` when the queue
    /// has too few free descriptors. Call `notify` afterwards.
    pub fn push(&mut self, segments: &[Segment]) -> Option<u16> {
        let count = u16::try_from(segments.len()).ok()?;
        if count == 0 || count > self.free_count {
            return None;
        }
        let head = self.free_head;
        let mut index = head;
        for (position, segment) in segments.iter().enumerate() {
            let last = position + 1 == segments.len();
            let next = self.next_free[usize::from(index)];
            let mut flags = if segment.device_writes { DESC_F_WRITE } else { 0 };
            if !last {
                flags |= DESC_F_NEXT;
            }
            let offset = usize::from(index) * DESCRIPTOR_BYTES;
            self.descriptors.write::<u64>(offset, segment.address);
            self.descriptors.write::<u32>(offset + 8, segment.len);
            self.descriptors.write::<u16>(offset + 12, flags);
            self.descriptors.write::<u16>(offset + 14, if last { 0 } else { next });
            if !last {
                index = next;
            } else {
                self.free_head = next;
            }
        }
        self.free_count -= count;
        self.chain_len[usize::from(head)] = count;
        let slot = usize::from(self.avail_index % self.size);
        self.avail.write::<u16>(4 + 2 * slot, head);
        // The descriptors and ring entry must be visible before the index
        // that publishes them.
        fence(Ordering::Release);
        self.avail_index = self.avail_index.wrapping_add(1);
        self.avail.write::<u16>(2, self.avail_index);
        Some(head)
    }

    /// Tells the device there is new work in this queue.
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        self.notify.write16(0, self.queue_index);
    }

    /// The next chain the device finished: (head id, bytes it wrote). Frees
    /// the chain's descriptors.
    pub fn pop_used(&mut self) -> Option<(u16, u32)> {
        let device_index: u16 = self.used.read(2);
        if device_index == self.last_used_index {
            return None;
        }
        // Read the entry only after seeing the index that covers it.
        fence(Ordering::Acquire);
        let slot = usize::from(self.last_used_index % self.size);
        let id: u32 = self.used.read(4 + 8 * slot);
        let len: u32 = self.used.read(4 + 8 * slot + 4);
        self.last_used_index = self.last_used_index.wrapping_add(1);
        let Ok(head) = u16::try_from(id) else {
            crate::fatal(format_args!("virtqueue {}: device returned id {id}", self.queue_index));
        };
        if head >= self.size || self.chain_len[usize::from(head)] == 0 {
            crate::fatal(format_args!("virtqueue {}: device returned unknown id {head}", self.queue_index));
        }
        // Return the chain to the free list.
        let count = self.chain_len[usize::from(head)];
        self.chain_len[usize::from(head)] = 0;
        let mut tail = head;
        for _ in 1..count {
            let offset = usize::from(tail) * DESCRIPTOR_BYTES;
            tail = self.descriptors.read::<u16>(offset + 14);
        }
        self.next_free[usize::from(tail)] = self.free_head;
        self.free_head = head;
        self.free_count += count;
        Some((head, len))
    }
}
