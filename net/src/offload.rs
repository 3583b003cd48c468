//! TCP checksum and segmentation offload through `struct virtio_net_hdr`,
//! the header both a virtio-net device and a Linux TAP device opened with
//! `IFF_VNET_HDR` put in front of every frame.
//!
//! With offload on ([`crate::tcp::TcpOffload::Device`]) smoltcp neither
//! computes nor verifies TCP checksums, and may hand the device one TCP
//! segment of up to 64 KiB with a segment size (smoltcp's
//! `segmentation-offload`). The device driver then calls:
//! - [`prepare_tx`] on each outgoing frame: for TCP it writes the
//!   pseudo-header sum into the checksum field and returns a header asking
//!   the other side to finish the checksum (`NEEDS_CSUM`) and, for a large
//!   segment, to cut it into MSS-sized segments (`GSO_TCPV4`/`GSO_TCPV6`);
//! - [`check_rx`] on each incoming frame: a TCP segment whose header says
//!   `NEEDS_CSUM` (it never left the host's memory: Linux treats such
//!   packets as verified too) or `DATA_VALID` is accepted as is, any other
//!   TCP segment has its checksum verified here, and a non-TCP packet with a
//!   partial checksum gets it completed so smoltcp's own check passes.
//!
//! Layout (little-endian, 10 bytes; virtio 1.0 and TAP on x86):
//! `flags u8, gso_type u8, hdr_len u16, gso_size u16, csum_start u16,
//! csum_offset u16`.

use core::num::NonZeroU16;

/// Bytes of `struct virtio_net_hdr` without `num_buffers`.
pub const VIRTIO_NET_HDR_BYTES: usize = 10;

/// `flags`: the checksum from `csum_start` on is partial (pseudo-header only).
pub const FLAG_NEEDS_CSUM: u8 = 1;
/// `flags`: the device already verified the checksum.
pub const FLAG_DATA_VALID: u8 = 2;

/// What the device should do with a frame besides carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gso {
    None,
    TcpV4 { segment_bytes: NonZeroU16 },
    TcpV6 { segment_bytes: NonZeroU16 },
}

/// `struct virtio_net_hdr` (without `num_buffers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VirtioNetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;

impl VirtioNetHdr {
    pub fn to_bytes(self) -> [u8; VIRTIO_NET_HDR_BYTES] {
        let mut out = [0u8; VIRTIO_NET_HDR_BYTES];
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        out
    }

    /// `None` if `bytes` is shorter than the header.
    pub fn from_bytes(bytes: &[u8]) -> Option<VirtioNetHdr> {
        let b = bytes.get(..VIRTIO_NET_HDR_BYTES)?;
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VirtioNetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    pub fn gso(&self) -> Gso {
        match (self.gso_type & 0x7f, NonZeroU16::new(self.gso_size)) {
            (GSO_TCPV4, Some(segment_bytes)) => Gso::TcpV4 { segment_bytes },
            (GSO_TCPV6, Some(segment_bytes)) => Gso::TcpV6 { segment_bytes },
            _ => Gso::None,
        }
    }
}

const ETHERNET_HEADER_BYTES: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTOCOL_TCP: u8 = 6;
const TCP_CHECKSUM_OFFSET: usize = 16;
const TCP_MIN_HEADER_BYTES: usize = 20;

/// Where the transport header of an IP packet in an Ethernet frame is, and
/// what the checksum's pseudo-header adds up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transport {
    ipv6: bool,
    protocol: u8,
    /// Offset of the transport header in the frame.
    start: usize,
    /// Offset one past the transport payload (the IP length, not the frame's:
    /// Ethernet may pad).
    end: usize,
    /// Pseudo-header sum, unfolded.
    pseudo_sum: u64,
}

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

fn transport(frame: &[u8]) -> Option<Transport> {
    let ip = ETHERNET_HEADER_BYTES;
    match be16(frame, 12)? {
        ETHERTYPE_IPV4 => {
            let header = frame.get(ip..ip + 20)?;
            if header[0] >> 4 != 4 {
                return None;
            }
            // A fragment's transport header is not in this frame (or its
            // checksum covers bytes that are not): leave it to smoltcp.
            let fragment = u16::from_be_bytes([header[6], header[7]]) & 0x3fff;
            if fragment != 0 {
                return None;
            }
            let header_bytes = usize::from(header[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([header[2], header[3]]));
            let (start, end) = (ip + header_bytes, ip + total);
            if header_bytes < 20 || end < start || end > frame.len() {
                return None;
            }
            let protocol = header[9];
            let pseudo_sum = sum_words(&header[12..20]) + u64::from(protocol) + (end - start) as u64;
            Some(Transport { ipv6: false, protocol, start, end, pseudo_sum })
        }
        ETHERTYPE_IPV6 => {
            let header = frame.get(ip..ip + 40)?;
            if header[0] >> 4 != 6 {
                return None;
            }
            let payload = usize::from(u16::from_be_bytes([header[4], header[5]]));
            let (start, end) = (ip + 40, ip + 40 + payload);
            if end > frame.len() {
                return None;
            }
            // Extension headers are left to smoltcp (it emits none for TCP).
            let protocol = header[6];
            let pseudo_sum = sum_words(&header[8..40]) + u64::from(protocol) + payload as u64;
            Some(Transport { ipv6: true, protocol, start, end, pseudo_sum })
        }
        _ => None,
    }
}

/// The Internet checksum's sum of big-endian 16-bit words, unfolded (an odd
/// last byte is padded with zero). 32-bit words added into a `u64` give the
/// same one's-complement sum after folding, twice as fast.
fn sum_words(data: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let value = u64::from_be_bytes(word);
        sum += (value >> 32) + (value & 0xffff_ffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for pair in &mut rest {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = rest.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Readies an outgoing frame that smoltcp built without a TCP checksum and
/// returns the header to send in front of it. `segment_bytes` is smoltcp's
/// `PacketMeta::segmentation_offload_size` (the MSS to cut a large segment
/// into). A frame that is not TCP over IP goes out unchanged with an empty
/// header.
pub fn prepare_tx(frame: &mut [u8], segment_bytes: Option<NonZeroU16>) -> VirtioNetHdr {
    let Some(t) = transport(frame).filter(|t| t.protocol == PROTOCOL_TCP) else {
        return VirtioNetHdr::default();
    };
    let Some(header) = frame.get(t.start..t.end).filter(|h| h.len() >= TCP_MIN_HEADER_BYTES) else {
        return VirtioNetHdr::default();
    };
    let header_bytes = usize::from(header[12] >> 4) * 4;
    let payload = header.len().saturating_sub(header_bytes);
    let checksum_at = t.start + TCP_CHECKSUM_OFFSET;
    frame[checksum_at..checksum_at + 2].copy_from_slice(&fold(t.pseudo_sum).to_be_bytes());
    let (gso_type, gso_size, hdr_len) = match segment_bytes {
        Some(size) if payload > usize::from(size.get()) => {
            let kind = if t.ipv6 { GSO_TCPV6 } else { GSO_TCPV4 };
            (kind, size.get(), (t.start + header_bytes) as u16)
        }
        _ => (GSO_NONE, 0, 0),
    };
    VirtioNetHdr {
        flags: FLAG_NEEDS_CSUM,
        gso_type,
        hdr_len,
        gso_size,
        csum_start: t.start as u16,
        csum_offset: TCP_CHECKSUM_OFFSET as u16,
    }
}

/// What to do with a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxVerdict {
    /// Hand it to the stack.
    Accept,
    /// A TCP segment whose checksum is wrong: drop it, as smoltcp would have.
    BadChecksum,
}

/// Checks (or completes) the checksum of a received frame per its header;
/// see the module documentation.
pub fn check_rx(header: &VirtioNetHdr, frame: &mut [u8]) -> RxVerdict {
    if header.flags & FLAG_NEEDS_CSUM != 0 {
        let is_tcp = transport(frame).is_some_and(|t| t.protocol == PROTOCOL_TCP);
        if !is_tcp {
            complete_checksum(header, frame);
        }
        return RxVerdict::Accept;
    }
    if header.flags & FLAG_DATA_VALID != 0 {
        return RxVerdict::Accept;
    }
    match transport(frame) {
        Some(t) if t.protocol == PROTOCOL_TCP => {
            if fold(t.pseudo_sum + sum_words(&frame[t.start..t.end])) == 0xffff {
                RxVerdict::Accept
            } else {
                RxVerdict::BadChecksum
            }
        }
        _ => RxVerdict::Accept,
    }
}

/// For a stack that checks every checksum itself (no TCP offload) on a
/// device that may still send partial ones: completes a `NEEDS_CSUM`
/// frame's checksum, TCP included.
pub fn complete_partial(header: &VirtioNetHdr, frame: &mut [u8]) {
    if header.flags & FLAG_NEEDS_CSUM != 0 {
        complete_checksum(header, frame);
    }
}

/// Finishes a partial checksum the way the device would have: the sum from
/// `csum_start` to the end of the frame, complemented, at `csum_offset`.
/// Out-of-range offsets leave the frame alone (smoltcp then drops it).
fn complete_checksum(header: &VirtioNetHdr, frame: &mut [u8]) {
    let start = usize::from(header.csum_start);
    let at = start + usize::from(header.csum_offset);
    if at + 2 > frame.len() {
        return;
    }
    let sum = !fold(sum_words(&frame[start..]));
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet,
        Ipv4Repr, Ipv6Address, Ipv6Packet, Ipv6Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
    };

    const SRC4: Ipv4Address = Ipv4Address::new(10, 99, 0, 2);
    const DST4: Ipv4Address = Ipv4Address::new(10, 99, 0, 1);
    const SRC6: Ipv6Address = Ipv6Address::new(0xfe80, 0, 0, 0, 1, 2, 3, 4);
    const DST6: Ipv6Address = Ipv6Address::new(0xfe80, 0, 0, 0, 5, 6, 7, 8);

    fn tcp_repr(payload: &[u8]) -> TcpRepr<'_> {
        TcpRepr {
            src_port: 443,
            dst_port: 40000,
            control: TcpControl::Psh,
            seq_number: TcpSeqNumber(1234),
            ack_number: Some(TcpSeqNumber(99)),
            window_len: 512,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None, None, None],
            timestamp: None,
            payload,
        }
    }

    /// An Ethernet frame carrying `payload` over TCP, with the TCP checksum
    /// computed (`checksum`) or left zero as smoltcp leaves it with offload.
    fn tcp_frame(ipv6: bool, payload: &[u8], checksum: bool) -> Vec<u8> {
        let tcp = tcp_repr(payload);
        let mut caps = ChecksumCapabilities::default();
        if !checksum {
            caps.tcp = smoltcp::phy::Checksum::None;
        }
        let ip_header = if ipv6 { 40 } else { 20 };
        let mut frame = vec![0u8; 14 + ip_header + tcp.buffer_len()];
        let ethertype = if ipv6 { EthernetProtocol::Ipv6 } else { EthernetProtocol::Ipv4 };
        EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
        let (src, dst): (IpAddress, IpAddress) =
            if ipv6 { (SRC6.into(), DST6.into()) } else { (SRC4.into(), DST4.into()) };
        if ipv6 {
            let repr = Ipv6Repr {
                src_addr: SRC6,
                dst_addr: DST6,
                next_header: IpProtocol::Tcp,
                payload_len: tcp.buffer_len(),
                hop_limit: 64,
            };
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut frame[14..]));
        } else {
            let repr = Ipv4Repr {
                src_addr: SRC4,
                dst_addr: DST4,
                next_header: IpProtocol::Tcp,
                payload_len: tcp.buffer_len(),
                hop_limit: 64,
            };
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut frame[14..]), &ChecksumCapabilities::default());
        }
        tcp.emit(&mut TcpPacket::new_unchecked(&mut frame[14 + ip_header..]), &src, &dst, &caps);
        frame
    }

    fn tcp_checksum_ok(frame: &[u8], ipv6: bool) -> bool {
        let ip_header = if ipv6 { 40 } else { 20 };
        let (src, dst): (IpAddress, IpAddress) =
            if ipv6 { (SRC6.into(), DST6.into()) } else { (SRC4.into(), DST4.into()) };
        TcpPacket::new_checked(&frame[14 + ip_header..]).unwrap().verify_checksum(&src, &dst)
    }

    /// What the other side of a `NEEDS_CSUM` frame does.
    fn finish(header: &VirtioNetHdr, frame: &mut [u8]) {
        complete_checksum(header, frame);
    }

    #[test]
    fn header_round_trips_through_bytes() {
        let header =
            VirtioNetHdr { flags: 1, gso_type: 4, hdr_len: 74, gso_size: 1440, csum_start: 54, csum_offset: 16 };
        assert_eq!(VirtioNetHdr::from_bytes(&header.to_bytes()), Some(header));
        assert_eq!(VirtioNetHdr::from_bytes(&[0; 9]), None);
        assert_eq!(header.gso(), Gso::TcpV6 { segment_bytes: NonZeroU16::new(1440).unwrap() });
    }

    #[test]
    fn sum_matches_smoltcp_for_every_length_and_alignment() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 151 + 7) as u8).collect();
        for start in 0..4 {
            for end in start..data.len() {
                let ours = !fold(sum_words(&data[start..end]));
                let mut copy = data[start..end].to_vec();
                copy.resize(copy.len() + copy.len() % 2, 0);
                let reference = reference_checksum(&copy);
                assert_eq!(ours, reference, "{start}..{end}");
            }
        }
    }

    fn reference_checksum(data: &[u8]) -> u16 {
        let mut sum = 0u32;
        for pair in data.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn tx_frame_completed_by_the_device_has_smoltcps_checksum() {
        for ipv6 in [false, true] {
            for len in [0usize, 1, 2, 3, 100, 1399] {
                let payload: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
                let expected = tcp_frame(ipv6, &payload, true);
                let mut frame = tcp_frame(ipv6, &payload, false);
                let header = prepare_tx(&mut frame, NonZeroU16::new(1460));
                assert_eq!(header.flags, FLAG_NEEDS_CSUM);
                assert_eq!(header.gso(), Gso::None, "{len} bytes fit one segment");
                assert_eq!(usize::from(header.csum_start), if ipv6 { 54 } else { 34 });
                finish(&header, &mut frame);
                assert_eq!(frame, expected, "ipv6={ipv6} len={len}");
                assert!(tcp_checksum_ok(&frame, ipv6));
            }
        }
    }

    #[test]
    fn large_tx_segment_asks_for_segmentation() {
        for ipv6 in [false, true] {
            let payload = vec![7u8; 60_000];
            let mut frame = tcp_frame(ipv6, &payload, false);
            let header = prepare_tx(&mut frame, NonZeroU16::new(1460));
            let segment_bytes = NonZeroU16::new(1460).unwrap();
            let expected = if ipv6 { Gso::TcpV6 { segment_bytes } } else { Gso::TcpV4 { segment_bytes } };
            assert_eq!(header.gso(), expected);
            assert_eq!(usize::from(header.hdr_len), 14 + if ipv6 { 40 } else { 20 } + 20);
        }
    }

    #[test]
    fn non_tcp_tx_frames_pass_unchanged() {
        let mut frame = vec![0u8; 60];
        frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // ARP
        let before = frame.clone();
        assert_eq!(prepare_tx(&mut frame, None), VirtioNetHdr::default());
        assert_eq!(frame, before);
        // Garbage and truncated frames: no header, no panic.
        for len in 0..80 {
            let mut junk: Vec<u8> = (0..len).map(|i| (i * 77) as u8).collect();
            let _ = prepare_tx(&mut junk, NonZeroU16::new(1));
            let _ =
                check_rx(&VirtioNetHdr { flags: 1, csum_start: 9, csum_offset: 70, ..Default::default() }, &mut junk);
            let _ = check_rx(&VirtioNetHdr::default(), &mut junk);
        }
    }

    #[test]
    fn rx_verifies_tcp_unless_the_device_vouches_for_it() {
        for ipv6 in [false, true] {
            let mut good = tcp_frame(ipv6, b"hello", true);
            assert_eq!(check_rx(&VirtioNetHdr::default(), &mut good), RxVerdict::Accept);
            let mut bad = good.clone();
            *bad.last_mut().unwrap() ^= 0x40;
            assert_eq!(check_rx(&VirtioNetHdr::default(), &mut bad), RxVerdict::BadChecksum);
            let valid = VirtioNetHdr { flags: FLAG_DATA_VALID, ..Default::default() };
            assert_eq!(check_rx(&valid, &mut bad), RxVerdict::Accept);
            // A partial checksum from the host: accepted as is.
            let mut partial = tcp_frame(ipv6, b"hello", false);
            let header = prepare_tx(&mut partial, None);
            assert_eq!(check_rx(&header, &mut partial), RxVerdict::Accept);
        }
    }

    #[test]
    fn a_partial_tcp_checksum_is_completed_for_a_stack_without_offload() {
        for ipv6 in [false, true] {
            let expected = tcp_frame(ipv6, b"partial", true);
            let mut frame = tcp_frame(ipv6, b"partial", false);
            let header = prepare_tx(&mut frame, None);
            complete_partial(&header, &mut frame);
            assert_eq!(frame, expected);
            complete_partial(&VirtioNetHdr::default(), &mut frame);
            assert_eq!(frame, expected, "a complete frame is left alone");
        }
    }

    #[test]
    fn rx_completes_a_partial_udp_checksum() {
        let payload = b"dhcp or dns";
        let udp = UdpRepr { src_port: 67, dst_port: 68 };
        let udp_len = 8 + payload.len();
        let mut frame = vec![0u8; 14 + 20 + udp_len];
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        Ipv4Repr { src_addr: SRC4, dst_addr: DST4, next_header: IpProtocol::Udp, payload_len: udp_len, hop_limit: 64 }
            .emit(&mut Ipv4Packet::new_unchecked(&mut frame[14..]), &ChecksumCapabilities::default());
        let (src, dst): (IpAddress, IpAddress) = (SRC4.into(), DST4.into());
        udp.emit(
            &mut UdpPacket::new_unchecked(&mut frame[34..]),
            &src,
            &dst,
            payload.len(),
            |buf| buf.copy_from_slice(payload),
            &ChecksumCapabilities::default(),
        );
        let complete = frame.clone();
        // What Linux sends with CHECKSUM_PARTIAL: the folded pseudo-header sum.
        let t = transport(&frame).unwrap();
        frame[40..42].copy_from_slice(&fold(t.pseudo_sum).to_be_bytes());
        let header = VirtioNetHdr { flags: FLAG_NEEDS_CSUM, csum_start: 34, csum_offset: 6, ..Default::default() };
        assert_eq!(check_rx(&header, &mut frame), RxVerdict::Accept);
        assert_eq!(frame, complete);
    }
}
