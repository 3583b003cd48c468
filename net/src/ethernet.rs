//! The frame side of the stack: smoltcp's [`phy::Device`] is the device trait
//! (the kernel's virtio-net driver and the hosted TAP device implement it),
//! plus [`SimLink`], an in-memory Ethernet cable with deterministic faults for
//! tests and benchmarks, and [`MacAddress`] helpers.
//!
//! The stack does not own its device: [`crate::tcp::Stack::poll`] borrows it
//! for one poll, so the driver keeps its own handle for interrupts and stats.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::str::FromStr;

use runtime::event::Event;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket, TcpSeqNumber};

pub use smoltcp::phy::Device;

/// Largest Ethernet frame without FCS: 1500 bytes of payload plus the 14-byte
/// header. Every device in this stack uses it (no jumbo frames).
pub const ETHERNET_MTU_BYTES: usize = 1514;

/// What every Ethernet device of ours tells smoltcp: a 1514-byte frame and,
/// where the NIC's transmit ring is the limit, how many frames fit back to
/// back (smoltcp then paces TCP bursts to it).
pub fn ethernet_capabilities(max_burst_frames: Option<usize>) -> DeviceCapabilities {
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ethernet;
    caps.max_transmission_unit = ETHERNET_MTU_BYTES;
    caps.max_burst_size = max_burst_frames;
    caps
}

/// A 48-bit Ethernet address, parsed from and printed as `52:54:00:12:34:56`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddress(pub [u8; 6]);

/// Why a MAC address string did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAddressError {
    /// Not six `:`- or `-`-separated groups of two hex digits.
    Malformed,
    /// Multicast (group bit set): an interface address must be unicast.
    NotUnicast,
}

impl fmt::Display for MacAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("MAC address must be six hex pairs like 52:54:00:12:34:56"),
            Self::NotUnicast => f.write_str("MAC address is multicast"),
        }
    }
}

impl core::error::Error for MacAddressError {}

impl MacAddress {
    /// True if the group bit is clear (usable as an interface address).
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0
    }

    /// True if the locally-administered bit is set (e.g. QEMU's 52:54:00:...).
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl FromStr for MacAddress {
    type Err = MacAddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 6];
        let mut groups = s.split([':', '-']);
        for byte in &mut bytes {
            let group = groups.next().ok_or(MacAddressError::Malformed)?;
            if group.len() != 2 {
                return Err(MacAddressError::Malformed);
            }
            *byte = u8::from_str_radix(group, 16).map_err(|_| MacAddressError::Malformed)?;
        }
        if groups.next().is_some() {
            return Err(MacAddressError::Malformed);
        }
        let mac = MacAddress(bytes);
        if !mac.is_unicast() {
            return Err(MacAddressError::NotUnicast);
        }
        Ok(mac)
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

/// Fault rates of a [`SimLink`], per thousand frames, applied independently to
/// each frame in each direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkFaults {
    pub drop_per_mille: u16,
    pub duplicate_per_mille: u16,
    /// A reordered frame is delivered before the frame queued just ahead of
    /// it (so it only happens within a burst: an empty queue cannot reorder).
    pub reorder_per_mille: u16,
}

/// Configuration of a [`SimLink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimLinkConfig {
    pub faults: LinkFaults,
    /// Seed of the link's xorshift generator: the same seed and the same
    /// traffic give the same faults.
    pub seed: u64,
    /// Parse every frame to count ARP frames and TCP retransmissions (costs a
    /// map lookup per frame; off for benchmarks).
    pub inspect_frames: bool,
}

impl Default for SimLinkConfig {
    fn default() -> Self {
        Self { faults: LinkFaults::default(), seed: 0x5eed_1e55_c0ff_ee00, inspect_frames: true }
    }
}

/// What a [`SimLink`] did, summed over both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames handed to the link by either port.
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Frames taken off the link by either port.
    pub frames_delivered: u64,
    pub frames_dropped: u64,
    pub frames_duplicated: u64,
    pub frames_reordered: u64,
    /// ARP requests and replies sent.
    pub arp_frames: u64,
    /// TCP segments carrying data (or SYN/FIN) at or below a sequence number
    /// already seen on the same flow, as observed when sent (before faults).
    pub tcp_retransmissions: u64,
}

/// Small deterministic generator (xorshift64*): good enough to pick faults,
/// and needs no crate.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    pub fn new(seed: u64) -> Self {
        // Zero is xorshift's fixed point.
        Self { state: if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed } }
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u16) -> bool {
        per_mille > 0 && self.next_u64() % 1000 < u64::from(per_mille)
    }
}

/// (src address, dst address, src port, dst port) of one TCP direction.
type FlowKey = ([u8; 4], [u8; 4], u16, u16);

struct LinkState {
    config: SimLinkConfig,
    rng: XorShift64,
    /// Frames in flight towards port 0 and port 1.
    queues: [VecDeque<Vec<u8>>; 2],
    /// Signalled when a frame is queued towards that port (its "RX interrupt").
    rx_events: [Arc<Event>; 2],
    stats: LinkStats,
    /// Highest sequence number end sent per flow, for counting retransmissions.
    flow_seq_end: BTreeMap<FlowKey, TcpSeqNumber>,
    /// Emptied frame buffers, reused so the link does not allocate per frame.
    spare: Vec<Vec<u8>>,
}

impl LinkState {
    fn transmit(&mut self, to_port: usize, frame: Vec<u8>) {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += frame.len() as u64;
        if self.config.inspect_frames {
            self.observe_tcp(&frame);
        }
        let faults = self.config.faults;
        if self.rng.chance(faults.drop_per_mille) {
            self.stats.frames_dropped += 1;
            self.spare.push(frame);
            return;
        }
        if self.rng.chance(faults.duplicate_per_mille) {
            self.stats.frames_duplicated += 1;
            self.queues[to_port].push_back(frame.clone());
        }
        let queue = &mut self.queues[to_port];
        queue.push_back(frame);
        if queue.len() >= 2 && self.rng.chance(faults.reorder_per_mille) {
            self.stats.frames_reordered += 1;
            let last = queue.len() - 1;
            queue.swap(last - 1, last);
        }
        self.rx_events[to_port].signal();
    }

    fn observe_tcp(&mut self, frame: &[u8]) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else { return };
        if eth.ethertype() == EthernetProtocol::Arp {
            self.stats.arp_frames += 1;
        }
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return;
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return };
        if ip.next_header() != IpProtocol::Tcp || ip.more_frags() || ip.frag_offset() != 0 {
            return;
        }
        let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else { return };
        let seq_len = tcp.payload().len() + usize::from(tcp.syn()) + usize::from(tcp.fin());
        if seq_len == 0 {
            return; // pure ACKs are not retransmitted
        }
        let key = (ip.src_addr().octets(), ip.dst_addr().octets(), tcp.src_port(), tcp.dst_port());
        let end = tcp.seq_number() + seq_len;
        match self.flow_seq_end.get_mut(&key) {
            Some(seen) => {
                if tcp.seq_number() < *seen {
                    self.stats.tcp_retransmissions += 1;
                }
                if end > *seen {
                    *seen = end;
                }
            }
            None => {
                self.flow_seq_end.insert(key, end);
            }
        }
    }
}

/// An in-memory Ethernet cable between two [`SimPort`]s, with deterministic
/// drop/duplicate/reorder faults. Single-threaded (`Rc` inside), like the
/// executor that runs both stacks. Clones are handles on the same link.
#[derive(Clone)]
pub struct SimLink {
    state: Rc<RefCell<LinkState>>,
}

impl fmt::Debug for SimLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLink").field("stats", &self.stats()).finish()
    }
}

impl SimLink {
    /// A link and its two ends. Port 0 transmits towards port 1 and back.
    pub fn pair(config: SimLinkConfig) -> (SimPort, SimPort) {
        let state = Rc::new(RefCell::new(LinkState {
            config,
            rng: XorShift64::new(config.seed),
            queues: [VecDeque::new(), VecDeque::new()],
            rx_events: [Arc::new(Event::new()), Arc::new(Event::new())],
            stats: LinkStats::default(),
            flow_seq_end: BTreeMap::new(),
            spare: Vec::new(),
        }));
        (SimPort { state: state.clone(), port: 0 }, SimPort { state, port: 1 })
    }

    pub fn stats(&self) -> LinkStats {
        self.state.borrow().stats
    }

    /// Changes the fault rates from now on (e.g. a clean handshake, then loss).
    pub fn set_faults(&self, faults: LinkFaults) {
        self.state.borrow_mut().config.faults = faults;
    }
}

/// One end of a [`SimLink`]: a `phy::Device` with MTU 1514 on Ethernet.
pub struct SimPort {
    state: Rc<RefCell<LinkState>>,
    port: usize,
}

impl fmt::Debug for SimPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimPort").field("port", &self.port).finish_non_exhaustive()
    }
}

impl SimPort {
    /// Counters of the whole link (both directions).
    pub fn stats(&self) -> LinkStats {
        self.state.borrow().stats
    }

    /// Frames waiting to be received by this port.
    pub fn rx_pending_frames(&self) -> usize {
        self.state.borrow().queues[self.port].len()
    }

    /// Signalled whenever a frame is queued towards this port: pass it to
    /// [`crate::tcp::drive`] as the device event, as a NIC's RX interrupt would be.
    pub fn rx_event(&self) -> Arc<Event> {
        self.state.borrow().rx_events[self.port].clone()
    }

    /// A handle on the whole link (stats, faults) that outlives moving the
    /// port into a driver task.
    pub fn link(&self) -> SimLink {
        SimLink { state: self.state.clone() }
    }
}

/// A received frame, owned until smoltcp consumes it.
pub struct SimRxToken {
    frame: Vec<u8>,
    state: Rc<RefCell<LinkState>>,
}

/// Permission to send one frame to the other port.
pub struct SimTxToken {
    state: Rc<RefCell<LinkState>>,
    to_port: usize,
}

impl phy::RxToken for SimRxToken {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let result = f(&self.frame);
        let mut frame = self.frame;
        frame.clear();
        self.state.borrow_mut().spare.push(frame);
        result
    }
}

impl phy::TxToken for SimTxToken {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut frame = self.state.borrow_mut().spare.pop().unwrap_or_default();
        frame.clear();
        frame.resize(len, 0);
        let result = f(&mut frame);
        self.state.borrow_mut().transmit(self.to_port, frame);
        result
    }
}

impl phy::Device for SimPort {
    type RxToken<'a> = SimRxToken;
    type TxToken<'a> = SimTxToken;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = {
            let mut state = self.state.borrow_mut();
            let frame = state.queues[self.port].pop_front()?;
            state.stats.frames_delivered += 1;
            frame
        };
        Some((
            SimRxToken { frame, state: self.state.clone() },
            SimTxToken { state: self.state.clone(), to_port: 1 - self.port },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        Some(SimTxToken { state: self.state.clone(), to_port: 1 - self.port })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        ethernet_capabilities(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn mac_round_trip() {
        let mac: MacAddress = "52:54:00:12:34:5f".parse().unwrap();
        assert_eq!(mac.0, [0x52, 0x54, 0x00, 0x12, 0x34, 0x5f]);
        assert!(mac.is_local());
        assert_eq!(mac.to_string(), "52:54:00:12:34:5f");
        assert_eq!("52-54-00-12-34-5F".parse::<MacAddress>(), Ok(mac));
    }

    #[test]
    fn mac_rejects_bad_input() {
        for bad in ["", "52:54:00:12:34", "52:54:00:12:34:56:78", "52:54:00:12:34:5", "zz:54:00:12:34:56"] {
            assert_eq!(bad.parse::<MacAddress>(), Err(MacAddressError::Malformed), "{bad}");
        }
        assert_eq!("01:00:5e:00:00:01".parse::<MacAddress>(), Err(MacAddressError::NotUnicast));
    }

    #[test]
    fn xorshift_is_deterministic_and_rates_are_close() {
        let mut a = XorShift64::new(7);
        let mut b = XorShift64::new(7);
        let hits = (0..100_000).filter(|_| a.chance(50)).count();
        let hits_b = (0..100_000).filter(|_| b.chance(50)).count();
        assert_eq!(hits, hits_b);
        assert!((4_500..5_500).contains(&hits), "{hits}");
    }
}
