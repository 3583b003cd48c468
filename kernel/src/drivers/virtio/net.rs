//! virtio-net (virtio spec section 5.1): one receive and one transmit queue,
//! each with its own MSI-X vector; every receive buffer posted up front and
//! re-posted as soon as smoltcp has consumed its frame; transmit buffers
//! recycled as the device completes them. Exposed to the stack as a smoltcp
//! `phy::Device`.
//!
//! Checksum offload: when the device offers `CSUM` (a TAP backend does;
//! QEMU's user network does not), the stack leaves TCP checksums to the
//! driver (`net::offload`): outgoing segments carry a `NEEDS_CSUM` header
//! for the device to finish, incoming ones are accepted on the device's
//! word (`DATA_VALID`, or `NEEDS_CSUM` with `GUEST_CSUM`) or verified here.
//! With `HOST_TSO4` and `HOST_TSO6` as well, smoltcp sends TCP segments of
//! up to 64 KiB that the device cuts into MSS-sized ones (`gso_type`,
//! `gso_size` in the header); transmit buffers are then 64 of 66 KiB. With
//! `GUEST_TSO4` and `GUEST_TSO6` the device may pass us TCP segments of up
//! to 64 KiB (QEMU's TAP backend passes what the host's TCP sent, uncut);
//! receive buffers are then 64 of 66 KiB, the size the spec asks for
//! without `MRG_RXBUF`.

use alloc::vec;
use alloc::vec::Vec;

use smoltcp::phy::{self, DeviceCapabilities};
use smoltcp::time::Instant;

use super::queue::{Segment, SplitQueue};
use super::{F_VERSION_1, Transport, VirtioError};
use crate::drivers::dma::DmaBuffer;
use crate::pci::{ConfigAccess, Function};

/// The device finishes checksums of packets we send with `NEEDS_CSUM`.
const F_CSUM: u64 = 1 << 0;
/// We accept packets with partial checksums (`NEEDS_CSUM`).
const F_GUEST_CSUM: u64 = 1 << 1;
const F_MAC: u64 = 1 << 5;
/// The device may hand us TCP segments of up to 64 KiB (its side coalesced
/// them, or they never were cut); both need `GUEST_CSUM`.
const F_GUEST_TSO4: u64 = 1 << 7;
const F_GUEST_TSO6: u64 = 1 << 8;
/// The device cuts TCP segments we send larger than the MSS (TSO), IPv4
/// and IPv6; both need `CSUM`.
const F_HOST_TSO4: u64 = 1 << 11;
const F_HOST_TSO6: u64 = 1 << 12;

/// virtio_net_hdr for VERSION_1 devices (with `num_buffers`).
const HEADER_BYTES: usize = 12;
/// Room for a full Ethernet frame (1514 bytes) after the header.
const BUFFER_BYTES: usize = 2048;
const MAX_FRAME_BYTES: usize = 1514;
/// With TSO, a transmit buffer holds the largest segment smoltcp sends
/// (`TcpOffload::FULL`: 65,549 frame bytes) after the header.
const TSO_BUFFER_BYTES: usize = 66 * 1024;
const TSO_MAX_FRAME_BYTES: usize = match net::tcp::TcpOffload::FULL {
    net::tcp::TcpOffload::Device { segment_frame_bytes: Some(bytes) } => bytes.get(),
    _ => MAX_FRAME_BYTES,
};
const _: () = assert!(HEADER_BYTES + TSO_MAX_FRAME_BYTES <= TSO_BUFFER_BYTES);
/// Buffers per queue when they are TSO-sized (64 of 66 KiB, 4.1 MiB; in
/// flight 4 MiB each way). A receive buffer is then at least the 65,562
/// bytes the spec asks for without `MRG_RXBUF`.
const TSO_SLOTS: u16 = 64;

/// Buffer slots for a queue of `queue_size` and the bytes in each: fewer,
/// TSO-sized ones when frames of up to 64 KiB go through the queue.
fn buffer_layout(queue_size: u16, large_frames: bool) -> (u16, usize) {
    if large_frames { (queue_size.min(TSO_SLOTS), TSO_BUFFER_BYTES) } else { (queue_size, BUFFER_BYTES) }
}
const QUEUE_SIZE: u16 = 256;

const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;

pub struct Counters {
    pub rx_frames: u64,
    pub tx_frames: u64,
    pub tx_dropped_no_buffer: u64,
}

struct Receive {
    queue: SplitQueue,
    buffers: DmaBuffer,
    /// Bytes per buffer slot (header included).
    slot_bytes: usize,
    /// Which buffer slot each descriptor head carries.
    slot_of_head: Vec<u16>,
}

struct Transmit {
    queue: SplitQueue,
    buffers: DmaBuffer,
    /// Bytes per buffer slot (header included).
    slot_bytes: usize,
    /// The largest frame sent (header excluded).
    max_frame_bytes: usize,
    slot_of_head: Vec<u16>,
    free_slots: Vec<u16>,
    scratch: Vec<u8>,
}

/// Who checks the TCP checksums of received frames, per the negotiated
/// features.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checksums {
    /// No offload: smoltcp computes and checks them all.
    Stack,
    /// `GUEST_CSUM` without `CSUM`: the device may send partial checksums,
    /// which the driver completes for smoltcp to check.
    StackAfterCompleting,
    /// `CSUM`: TCP checksums are the driver's (see the module).
    Driver,
}

pub struct VirtioNet {
    transport: Transport,
    mac: [u8; 6],
    checksums: Checksums,
    /// `HOST_TSO4` and `HOST_TSO6` negotiated (with `CSUM`).
    segmentation: bool,
    /// `GUEST_TSO4` and `GUEST_TSO6` negotiated: frames of up to 64 KiB in.
    pub receive_segments: bool,
    receive: Receive,
    transmit: Transmit,
    pub counters: Counters,
    pub rx_vector: u8,
    pub tx_vector: u8,
}

impl Receive {
    fn post(&mut self, slot: u16) {
        let segment = Segment {
            address: self.buffers.bus_address() + (usize::from(slot) * self.slot_bytes) as u64,
            len: self.slot_bytes as u32,
            device_writes: true,
        };
        match self.queue.push(&[segment]) {
            Some(head) => self.slot_of_head[usize::from(head)] = slot,
            None => crate::fatal(format_args!("virtio-net: receive queue overfull")),
        }
    }

    /// Gives the buffer of descriptor `head` back to the device.
    fn repost(&mut self, head: u16) {
        self.post(self.slot_of_head[usize::from(head)]);
        self.queue.notify();
    }
}

impl Receive {
    /// Checks (or completes) the checksum of the frame in `head`'s buffer
    /// per its header; false for a TCP segment to drop.
    fn checksum_ok(&mut self, head: u16, len: usize) -> bool {
        let (header, frame) = self.header_and_frame(head, len);
        net::offload::check_rx(&header, frame) == net::offload::RxVerdict::Accept
    }

    fn complete_partial(&mut self, head: u16, len: usize) {
        let (header, frame) = self.header_and_frame(head, len);
        net::offload::complete_partial(&header, frame);
    }

    /// The header and frame the device reported in `head`'s buffer (a short
    /// or oversized length clamped, as in `RxToken::consume`).
    fn header_and_frame(&mut self, head: u16, len: usize) -> (net::offload::VirtioNetHdr, &mut [u8]) {
        let slot = self.slot_of_head[usize::from(head)];
        let start = usize::from(slot) * self.slot_bytes;
        let len = len.clamp(HEADER_BYTES, self.slot_bytes);
        let buffer = &mut self.buffers.as_mut_slice()[start..start + len];
        let (header, frame) = buffer.split_at_mut(HEADER_BYTES);
        (net::offload::VirtioNetHdr::from_bytes(header).unwrap_or_default(), frame)
    }
}

impl Transmit {
    fn reclaim(&mut self) {
        while let Some((head, _)) = self.queue.pop_used() {
            self.free_slots.push(self.slot_of_head[usize::from(head)]);
        }
    }
}

impl VirtioNet {
    pub fn init(
        access: &impl ConfigAccess,
        function: &Function,
        apic_id: u32,
        rx_vector: u8,
        tx_vector: u8,
    ) -> Result<Self, VirtioError> {
        let wanted =
            F_VERSION_1 | F_MAC | F_CSUM | F_GUEST_CSUM | F_HOST_TSO4 | F_HOST_TSO6 | F_GUEST_TSO4 | F_GUEST_TSO6;
        let (transport, features) = Transport::init(access, function, wanted)?;
        let tso = F_CSUM | F_HOST_TSO4 | F_HOST_TSO6;
        let segmentation = features & tso == tso;
        let guest_tso = F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6;
        let receive_segments = features & guest_tso == guest_tso;
        let checksums = if features & F_CSUM != 0 {
            Checksums::Driver
        } else if features & F_GUEST_CSUM != 0 {
            Checksums::StackAfterCompleting
        } else {
            Checksums::Stack
        };
        let mut mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        if features & F_MAC != 0 {
            for (index, byte) in mac.iter_mut().enumerate() {
                *byte = transport.device_config.read8(index as u64);
            }
        }
        let rx_queue = transport.setup_queue(RX_QUEUE, QUEUE_SIZE, 0, apic_id, rx_vector)?;
        let tx_queue = transport.setup_queue(TX_QUEUE, QUEUE_SIZE, 1, apic_id, tx_vector)?;
        let (rx_slots, rx_slot_bytes) = buffer_layout(rx_queue.size(), receive_segments);
        let (tx_slots, tx_slot_bytes) = buffer_layout(tx_queue.size(), segmentation);
        let mut receive = Receive {
            slot_of_head: vec![0; usize::from(rx_queue.size())],
            queue: rx_queue,
            buffers: DmaBuffer::new(usize::from(rx_slots) * rx_slot_bytes),
            slot_bytes: rx_slot_bytes,
        };
        let transmit = Transmit {
            slot_of_head: vec![0; usize::from(tx_queue.size())],
            queue: tx_queue,
            buffers: DmaBuffer::new(usize::from(tx_slots) * tx_slot_bytes),
            slot_bytes: tx_slot_bytes,
            max_frame_bytes: if segmentation { TSO_MAX_FRAME_BYTES } else { MAX_FRAME_BYTES },
            free_slots: (0..tx_slots).rev().collect(),
            scratch: vec![0; tx_slot_bytes],
        };
        for slot in 0..rx_slots {
            receive.post(slot);
        }
        transport.driver_ok();
        receive.queue.notify();
        Ok(Self {
            transport,
            mac,
            checksums,
            segmentation,
            receive_segments,
            receive,
            transmit,
            counters: Counters { rx_frames: 0, tx_frames: 0, tx_dropped_no_buffer: 0 },
            rx_vector,
            tx_vector,
        })
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// What the stack on this device must be told.
    pub fn tcp_offload(&self) -> net::tcp::TcpOffload {
        match (self.checksums, self.segmentation) {
            (Checksums::Driver, true) => net::tcp::TcpOffload::FULL,
            (Checksums::Driver, false) => net::tcp::TcpOffload::Device { segment_frame_bytes: None },
            _ => net::tcp::TcpOffload::None,
        }
    }

    /// Keeps the transport alive as long as the driver (its mappings).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }
}

pub struct RxToken<'a> {
    receive: &'a mut Receive,
    head: u16,
    len: usize,
}

pub struct TxToken<'a> {
    transmit: &'a mut Transmit,
    sent: &'a mut u64,
    dropped: &'a mut u64,
    checksum_offload: bool,
    /// The MSS to cut this frame into, when smoltcp sends a large segment.
    segment_bytes: Option<core::num::NonZeroU16>,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let slot = self.receive.slot_of_head[usize::from(self.head)];
        let start = usize::from(slot) * self.receive.slot_bytes;
        // The device reports header + frame; a short or oversized report is
        // clamped rather than trusted.
        let len = self.len.clamp(HEADER_BYTES, self.receive.slot_bytes);
        let result = f(&self.receive.buffers.as_slice()[start + HEADER_BYTES..start + len]);
        self.receive.repost(self.head);
        result
    }
}

impl phy::TxToken for TxToken<'_> {
    fn set_meta(&mut self, meta: phy::PacketMeta) {
        self.segment_bytes = meta.segmentation_offload_size;
    }

    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let slot_bytes = self.transmit.slot_bytes;
        let len = len.min(self.transmit.max_frame_bytes);
        self.transmit.reclaim();
        let Some(slot) = self.transmit.free_slots.pop() else {
            // No buffer: the frame is dropped (TCP retransmits it).
            *self.dropped += 1;
            return f(&mut self.transmit.scratch[..len]);
        };
        let start = usize::from(slot) * slot_bytes;
        let buffer = &mut self.transmit.buffers.as_mut_slice()[start..start + HEADER_BYTES + len];
        buffer[..HEADER_BYTES].fill(0);
        let result = f(&mut buffer[HEADER_BYTES..]);
        if self.checksum_offload {
            let (header, frame) = buffer.split_at_mut(HEADER_BYTES);
            let offload = net::offload::prepare_tx(frame, self.segment_bytes);
            header[..net::offload::VIRTIO_NET_HDR_BYTES].copy_from_slice(&offload.to_bytes());
        }
        let segment = Segment {
            address: self.transmit.buffers.bus_address() + start as u64,
            len: (HEADER_BYTES + len) as u32,
            device_writes: false,
        };
        match self.transmit.queue.push(&[segment]) {
            Some(head) => {
                self.transmit.slot_of_head[usize::from(head)] = slot;
                self.transmit.queue.notify();
                *self.sent += 1;
            }
            None => {
                self.transmit.free_slots.push(slot);
                *self.dropped += 1;
            }
        }
        result
    }
}

impl phy::Device for VirtioNet {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (head, len) = loop {
            let (head, len) = self.receive.queue.pop_used()?;
            self.counters.rx_frames += 1;
            match self.checksums {
                Checksums::Stack => break (head, len),
                Checksums::StackAfterCompleting => {
                    self.receive.complete_partial(head, len as usize);
                    break (head, len);
                }
                Checksums::Driver if self.receive.checksum_ok(head, len as usize) => break (head, len),
                Checksums::Driver => {}
            }
            // A bad checksum: dropped, as smoltcp drops one it checks.
            self.receive.repost(head);
        };
        Some((
            RxToken { receive: &mut self.receive, head, len: len as usize },
            TxToken {
                transmit: &mut self.transmit,
                sent: &mut self.counters.tx_frames,
                dropped: &mut self.counters.tx_dropped_no_buffer,
                checksum_offload: self.checksums == Checksums::Driver,
                segment_bytes: None,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        self.transmit.reclaim();
        if self.transmit.free_slots.is_empty() {
            return None;
        }
        Some(TxToken {
            transmit: &mut self.transmit,
            sent: &mut self.counters.tx_frames,
            dropped: &mut self.counters.tx_dropped_no_buffer,
            checksum_offload: self.checksums == Checksums::Driver,
            segment_bytes: None,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        net::ethernet::ethernet_capabilities(Some(usize::from(self.transmit.queue.size())))
    }
}
