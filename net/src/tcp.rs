//! The interface and async TCP sockets on smoltcp.
//!
//! [`Stack`] owns smoltcp's `Interface` and `SocketSet` behind an
//! `Rc<RefCell<_>>`: one stack per core, driven by one task ([`drive`]) on
//! that core's single-threaded executor, so nothing here is `Send`. The
//! device is borrowed for each [`Stack::poll`], never owned.
//!
//! Tasks never poll sockets in a loop: a pending read or write registers its
//! waker with smoltcp (`register_recv_waker`/`register_send_waker`), which
//! wakes it when the interface poll changes the socket. In the other
//! direction, an operation that gives smoltcp something to transmit (data, a
//! FIN, a window update) raises [`Stack::poll_needed`] so the driver polls at
//! once instead of at the next timer.
//!
//! Choices and their reasons:
//! - Congestion control is Reno: smoltcp 0.14's Cubic needs `std` (it uses
//!   `f64::powf`), and this crate is `no_std`.
//! - Nagle is off (request/response latency: a small response would wait for
//!   the ACK of the previous segment) and the delayed ACK is 1 ms instead of
//!   smoltcp's 10 ms (see [`StackOptions::ack_delay`] for the measurements).
//! - Receive buffers are at least 64 KiB because smoltcp derives the window
//!   scale from the buffer size: 0xFFFF bytes would mean no scaling and a
//!   64 KiB window per round trip.
//! - A smoltcp socket accepts one connection, so a listener keeps `backlog`
//!   listening sockets on its port and replaces each one that connects.
//! - smoltcp scans every socket per segment (lookup) and per poll (egress,
//!   `poll_at`). `benches/tcp.rs`: a request/response round trip takes 5 us
//!   with no other connection open and 264 us with 1,000 idle ones, mostly
//!   the per-poll scans, which an index in front of the lookup would not fix.
//! - Sockets in TIME-WAIT are reclaimed after 1 s: a server that closes first
//!   would otherwise hold every socket's buffers for smoltcp's 10 s TIME-WAIT.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::future::{Future, poll_fn};
use core::ops::Bound::{Excluded, Unbounded};
use core::pin::{Pin, pin};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use runtime::event::Event;
use runtime::timers::Timers;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::{Duration as SmolDuration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv6Address};

use crate::ethernet::ETHERNET_MTU_BYTES;
use crate::ip::{IpConfig, ipv6_link_local};

/// The smallest receive buffer that still gets a TCP window scale from smoltcp.
pub const MIN_RX_BUFFER_BYTES: usize = 64 * 1024;

/// Ephemeral ports for outgoing connections (RFC 6335).
const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;

/// Sockets kept after reclamation so a new connection reuses their buffers
/// instead of allocating and zeroing `rx + tx` bytes again.
const SOCKET_POOL_LIMIT: usize = 64;

/// How long a dropped stream's socket stays in TIME-WAIT (smoltcp: 10 s):
/// long enough to ACK a retransmitted FIN, short enough that a server
/// closing thousands of connections does not hold their buffers.
const TIME_WAIT_NS: u64 = 1_000_000_000;

/// The shortest sleep of the driver: if smoltcp asks to be polled in the past
/// right after a poll (the device refused a frame), retry after this long
/// rather than spin.
const MIN_POLL_INTERVAL_NS: u64 = 10_000;

/// Tuning of a [`Stack`]. Every TCP socket (listening or connected) holds
/// `rx_buffer_bytes + tx_buffer_bytes` of heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackOptions {
    /// Receive buffer per socket; also the largest receive window. Must be
    /// at least [`MIN_RX_BUFFER_BYTES`] (window scaling).
    pub rx_buffer_bytes: usize,
    pub tx_buffer_bytes: usize,
    /// TCP sockets in all states, listening slots included.
    pub max_connections: usize,
    /// A connection not established within this time is aborted (SYN floods
    /// and unanswered connects).
    pub handshake_timeout: Duration,
    /// A stream whose application made no read or write progress for this
    /// long is aborted (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// After a stream is dropped, how long its graceful close may take before
    /// it is aborted and its socket reclaimed.
    pub close_timeout: Duration,
    /// Keep-alive probe interval; a peer silent for three intervals is dead.
    pub keep_alive_interval: Duration,
    /// Delayed-ACK time (`None`: ACK every segment at once). `benches/tcp.rs`
    /// (perfect link, busy loop): bulk 1148 MB/s with 1 ms against 1555 MB/s
    /// with none; request/response 6.5 us against 7.8 us per round trip.
    /// 1 ms halves the pure ACKs a real peer must process and avoids the
    /// 10 ms request/response stalls of smoltcp's default; `None` is better
    /// for bulk between two of our own stacks.
    pub ack_delay: Option<Duration>,
    /// Frames the NIC accepts back to back (its TX ring), if limited: smoltcp
    /// then paces TCP bursts to it.
    pub max_burst_frames: Option<usize>,
    /// Who computes and checks TCP checksums, and who cuts large segments.
    pub tcp_offload: TcpOffload,
}

/// TCP work the device does instead of smoltcp (see [`crate::offload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpOffload {
    /// smoltcp computes and verifies every TCP checksum and sends MSS-sized
    /// segments.
    #[default]
    None,
    /// The device driver fills and checks TCP checksums with
    /// [`crate::offload`]; with `segment_frame_bytes`, smoltcp also sends
    /// TCP segments of up to that many frame bytes (Ethernet header
    /// included) for the device to cut into MSS-sized ones.
    Device { segment_frame_bytes: Option<core::num::NonZeroUsize> },
}

impl TcpOffload {
    /// Checksums and segmentation up to 64 KiB frames: what a Linux TAP
    /// device with `IFF_VNET_HDR` and a virtio-net device with
    /// `HOST_TSO4`/`HOST_TSO6` accept (an IPv4 packet is at most 65,535
    /// bytes).
    pub const FULL: TcpOffload = TcpOffload::Device { segment_frame_bytes: core::num::NonZeroUsize::new(65_535 + 14) };
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            rx_buffer_bytes: 256 * 1024,
            tx_buffer_bytes: 256 * 1024,
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(120)),
            close_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(30),
            ack_delay: Some(Duration::from_millis(1)),
            max_burst_frames: None,
            tcp_offload: TcpOffload::None,
        }
    }
}

/// Errors of the socket API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// The local side closed this direction (write after `shutdown_write`).
    Closed,
    /// The peer reset the connection, or it died (keep-alive or
    /// retransmissions unanswered).
    Reset,
    /// Refused: the peer answered the SYN with a reset.
    ConnectionRefused,
    /// Our handshake or idle timeout aborted the connection.
    TimedOut,
    /// `max_connections` sockets exist already.
    TooManyConnections,
    /// Another listener holds the port, or no ephemeral port is free.
    AddressInUse,
    /// No usable source address or route (e.g. DHCP has not finished).
    Unaddressable,
    /// Bad argument (port 0, backlog 0).
    InvalidInput,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Closed => "connection closed locally",
            Self::Reset => "connection reset",
            Self::ConnectionRefused => "connection refused",
            Self::TimedOut => "connection timed out",
            Self::TooManyConnections => "too many connections",
            Self::AddressInUse => "address in use",
            Self::Unaddressable => "no route or source address",
            Self::InvalidInput => "invalid argument",
        })
    }
}

impl core::error::Error for NetError {}

fn instant(now_ns: u64) -> Instant {
    Instant::from_micros(i64::try_from(now_ns / 1_000).unwrap_or(i64::MAX))
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn smol_duration(d: Duration) -> SmolDuration {
    SmolDuration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Interface::new reads the device's capabilities once; the real device
/// comes later, with each poll, so this stands in for it.
struct CapabilitiesOnly(DeviceCapabilities);

impl phy::Device for CapabilitiesOnly {
    type RxToken<'a> = NeverToken;
    type TxToken<'a> = NeverToken;

    fn receive(&mut self, _: Instant) -> Option<(NeverToken, NeverToken)> {
        None
    }

    fn transmit(&mut self, _: Instant) -> Option<NeverToken> {
        None
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.0.clone()
    }
}

enum NeverToken {}

impl phy::RxToken for NeverToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, _: F) -> R {
        match self {}
    }
}

impl phy::TxToken for NeverToken {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, _: usize, _: F) -> R {
        match self {}
    }
}

/// One listening socket of a listener.
struct ListenSlot {
    handle: SocketHandle,
    /// When the slot entered SYN-RECEIVED (for the handshake timeout).
    syn_since_ns: Option<u64>,
}

struct Listener {
    backlog: usize,
    slots: Vec<ListenSlot>,
    /// Established connections not yet accepted (at most `backlog`).
    ready: VecDeque<SocketHandle>,
    waker: Option<Waker>,
}

/// Bookkeeping of one connection socket (not a listening slot).
struct Conn {
    local_port: u16,
    /// The peer of an accepted connection (key in `Inner::accepted_peers`).
    accepted_from: Option<IpEndpoint>,
    /// When the socket was first seen in TIME-WAIT after the stream's drop.
    time_wait_since_ns: Option<u64>,
    /// Last read or write progress by the application (idle timeout).
    last_activity_ns: u64,
    /// Set while an outgoing connect waits for the handshake.
    connect_deadline_ns: Option<u64>,
    /// `shutdown_write` or drop sent our FIN.
    write_shut: bool,
    /// Our own timeout aborted it: report `TimedOut`, not `Reset`.
    timed_out: bool,
    /// The stream was dropped: reclaim the socket once closed, or abort at
    /// this deadline.
    close_deadline_ns: Option<u64>,
}

struct Inner {
    iface: Interface,
    sockets: SocketSet<'static>,
    options: StackOptions,
    now_ns: u64,
    dhcp: Option<SocketHandle>,
    listeners: BTreeMap<u16, Listener>,
    conns: BTreeMap<SocketHandle, Conn>,
    /// (local port, peer) of accepted connections, to spot duplicate SYNs.
    accepted_peers: BTreeSet<(u16, IpEndpoint)>,
    /// Dropped streams whose sockets are still closing.
    closing: Vec<SocketHandle>,
    tcp_socket_count: usize,
    pool: Vec<tcp::Socket<'static>>,
    next_ephemeral_port: u16,
    /// Earliest idle, handshake or close deadline of `conns` (may be early:
    /// reaching it only triggers a scan).
    next_deadline_ns: Option<u64>,
    poll_needed: bool,
    driver_waker: Option<Waker>,
}

/// A network interface with its sockets. Cheap to clone; not `Send`.
#[derive(Clone)]
pub struct Stack {
    inner: Rc<RefCell<Inner>>,
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("Stack")
            .field("ipv4", &inner.iface.ipv4_addr())
            .field("tcp_sockets", &inner.tcp_socket_count)
            .finish_non_exhaustive()
    }
}

impl Stack {
    /// A stack for the interface with address `mac`.
    ///
    /// # Panics
    /// If `mac` is not unicast or `options.rx_buffer_bytes` is below
    /// [`MIN_RX_BUFFER_BYTES`].
    pub fn new(mac: [u8; 6], config: IpConfig, options: StackOptions, now_ns: u64, random_seed: u64) -> Stack {
        assert!(
            options.rx_buffer_bytes >= MIN_RX_BUFFER_BYTES,
            "rx_buffer_bytes below 64 KiB disables TCP window scaling"
        );
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = ETHERNET_MTU_BYTES;
        caps.max_burst_size = options.max_burst_frames;
        if let TcpOffload::Device { segment_frame_bytes } = options.tcp_offload {
            caps.checksum.tcp = phy::Checksum::None;
            caps.segmentation.tcpv4 = segment_frame_bytes;
            caps.segmentation.tcpv6 = segment_frame_bytes;
        }
        let mut iface_config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        iface_config.random_seed = random_seed;
        let mut iface = Interface::new(iface_config, &mut CapabilitiesOnly(caps), instant(now_ns));
        let mut sockets = SocketSet::new(Vec::new());
        iface.update_ip_addrs(|addrs| {
            addrs.push(IpCidr::Ipv6(ipv6_link_local(mac))).expect("room for the link-local address");
        });
        let dhcp = match config {
            IpConfig::Dhcp => Some(sockets.add(dhcpv4::Socket::new())),
            IpConfig::Static { address, gateway } => {
                iface.update_ip_addrs(|addrs| {
                    addrs.push(IpCidr::Ipv4(address)).expect("room for the IPv4 address");
                });
                if let Some(gateway) = gateway {
                    iface.routes_mut().add_default_ipv4_route(gateway).expect("room for the default route");
                }
                None
            }
        };
        let span = u64::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
        let next_ephemeral_port = EPHEMERAL_PORTS.start() + (random_seed % span) as u16;
        Stack {
            inner: Rc::new(RefCell::new(Inner {
                iface,
                sockets,
                options,
                now_ns,
                dhcp,
                listeners: BTreeMap::new(),
                conns: BTreeMap::new(),
                accepted_peers: BTreeSet::new(),
                closing: Vec::new(),
                tcp_socket_count: 0,
                pool: Vec::new(),
                next_ephemeral_port,
                next_deadline_ns: None,
                poll_needed: false,
                driver_waker: None,
            })),
        }
    }

    /// Runs the interface once at `now_ns`: receives and transmits what the
    /// device allows, runs DHCP, refills listener backlogs, enforces
    /// timeouts, reclaims closed sockets and wakes the tasks concerned.
    /// Returns whether any socket may have changed state.
    pub fn poll<D: phy::Device + ?Sized>(&self, device: &mut D, now_ns: u64) -> bool {
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        inner.now_ns = inner.now_ns.max(now_ns);
        inner.poll_needed = false;
        let timestamp = instant(inner.now_ns);
        // Interface::poll, unrolled so listener upkeep runs after each packet
        // that changed a socket: a burst of SYNs then finds fresh listening
        // slots (smoltcp would answer a SYN without a listening socket with
        // RST), and a duplicate SYN is caught before its SYN-ACK goes out.
        inner.iface.poll_maintenance(timestamp);
        let mut changed = false;
        let mut aborted = false;
        loop {
            match inner.iface.poll_ingress_single(timestamp, device, &mut inner.sockets) {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => {
                    changed = true;
                    // Most packets are data for established connections: run
                    // the full upkeep only when a listening slot just got a
                    // SYN (or closed), which is what it must see at once.
                    if inner.listeners_need_upkeep() {
                        aborted |= inner.listener_upkeep();
                    }
                }
            }
        }
        while inner.iface.poll_egress(timestamp, device, &mut inner.sockets) == PollResult::SocketStateChanged {
            changed = true;
        }
        changed |= inner.dhcp_upkeep();
        aborted |= inner.listener_upkeep();
        inner.reclaim_closing();
        if inner.next_deadline_ns.is_some_and(|deadline| deadline <= inner.now_ns) {
            aborted |= inner.timeout_upkeep();
        }
        if aborted {
            // Send the resets now rather than at the next poll.
            inner.iface.poll_egress(timestamp, device, &mut inner.sockets);
        }
        changed || aborted
    }

    /// When [`Stack::poll`] should run next, in clock nanoseconds (`None`:
    /// only when a frame arrives or a socket operation asks for it).
    pub fn poll_at_ns(&self, now_ns: u64) -> Option<u64> {
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        if inner.poll_needed {
            return Some(now_ns);
        }
        let smol = inner
            .iface
            .poll_delay(instant(now_ns), &inner.sockets)
            .map(|delay| now_ns.saturating_add(delay.total_micros().saturating_mul(1_000)));
        match (smol, inner.next_deadline_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Completes once a socket operation has queued something to transmit
    /// since the last [`Stack::poll`].
    pub fn poll_needed(&self) -> PollNeeded {
        PollNeeded { stack: self.clone() }
    }

    /// The IPv4 address, once configured (statically or by DHCP).
    pub fn ipv4_address(&self) -> Option<Ipv4Address> {
        self.inner.borrow().iface.ipv4_addr()
    }

    /// The EUI-64 link-local IPv6 address (always present).
    pub fn ipv6_link_local(&self) -> Option<Ipv6Address> {
        self.inner.borrow().iface.ip_addrs().iter().find_map(|cidr| match cidr {
            IpCidr::Ipv6(v6) if v6.address().is_unicast_link_local() => Some(v6.address()),
            _ => None,
        })
    }

    /// TCP sockets in the set (listening slots, connections, closing ones).
    pub fn tcp_socket_count(&self) -> usize {
        self.inner.borrow().tcp_socket_count
    }

    /// Runs `f` on smoltcp's interface and socket set, e.g. to add a UDP or
    /// DNS socket. Sockets this stack created must be left alone.
    pub fn with_smoltcp<R>(&self, f: impl FnOnce(&mut Interface, &mut SocketSet<'static>) -> R) -> R {
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        let result = f(&mut inner.iface, &mut inner.sockets);
        inner.request_poll();
        result
    }

    /// Listens on `port` (all addresses) with `backlog` listening sockets,
    /// which is also the most established connections waiting for `accept`.
    pub fn listen(&self, port: u16, backlog: usize) -> Result<TcpListener, NetError> {
        if port == 0 || backlog == 0 {
            return Err(NetError::InvalidInput);
        }
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        if inner.listeners.contains_key(&port) {
            return Err(NetError::AddressInUse);
        }
        if inner.tcp_socket_count + backlog > inner.options.max_connections {
            return Err(NetError::TooManyConnections);
        }
        let mut listener =
            Listener { backlog, slots: Vec::with_capacity(backlog), ready: VecDeque::new(), waker: None };
        for _ in 0..backlog {
            let handle = inner.new_listen_socket(port)?;
            listener.slots.push(ListenSlot { handle, syn_since_ns: None });
        }
        inner.listeners.insert(port, listener);
        Ok(TcpListener { stack: self.clone(), port })
    }

    /// Connects to `remote` from an ephemeral port; completes once
    /// established.
    pub async fn connect(&self, remote: IpEndpoint) -> Result<TcpStream, NetError> {
        let handle = self.inner.borrow_mut().start_connect(remote)?;
        let stream = TcpStream { stack: self.clone(), handle };
        poll_fn(|cx| {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            let socket = inner.sockets.get_mut::<tcp::Socket>(handle);
            match socket.state() {
                tcp::State::SynSent | tcp::State::SynReceived => {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
                tcp::State::Closed => {
                    let conn = &inner.conns[&handle];
                    Poll::Ready(Err(if conn.timed_out { NetError::TimedOut } else { NetError::ConnectionRefused }))
                }
                _ => {
                    let now_ns = inner.now_ns;
                    let conn = inner.conns.get_mut(&handle).expect("connection bookkeeping");
                    conn.connect_deadline_ns = None;
                    conn.last_activity_ns = now_ns;
                    inner.note_idle_deadline(now_ns);
                    Poll::Ready(Ok(()))
                }
            }
        })
        .await?;
        Ok(stream)
    }
}

impl Inner {
    fn request_poll(&mut self) {
        self.poll_needed = true;
        if let Some(waker) = self.driver_waker.take() {
            waker.wake();
        }
    }

    fn note_deadline(&mut self, deadline_ns: u64) {
        self.next_deadline_ns = Some(self.next_deadline_ns.map_or(deadline_ns, |d| d.min(deadline_ns)));
    }

    fn note_idle_deadline(&mut self, from_ns: u64) {
        if let Some(idle) = self.options.idle_timeout {
            self.note_deadline(from_ns.saturating_add(duration_ns(idle)));
        }
    }

    /// A configured TCP socket, from the pool when possible.
    fn new_tcp_socket(&mut self) -> Result<tcp::Socket<'static>, NetError> {
        if self.tcp_socket_count >= self.options.max_connections {
            return Err(NetError::TooManyConnections);
        }
        let mut socket = self.pool.pop().unwrap_or_else(|| {
            tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; self.options.rx_buffer_bytes]),
                tcp::SocketBuffer::new(vec![0; self.options.tx_buffer_bytes]),
            )
        });
        let keep_alive = smol_duration(self.options.keep_alive_interval);
        socket.set_nagle_enabled(false);
        socket.set_ack_delay(self.options.ack_delay.map(smol_duration));
        socket.set_keep_alive(Some(keep_alive));
        socket.set_timeout(Some(keep_alive * 3));
        self.tcp_socket_count += 1;
        Ok(socket)
    }

    fn new_listen_socket(&mut self, port: u16) -> Result<SocketHandle, NetError> {
        let mut socket = self.new_tcp_socket()?;
        if socket.listen(port).is_err() {
            self.tcp_socket_count -= 1;
            return Err(NetError::InvalidInput);
        }
        Ok(self.sockets.add(socket))
    }

    fn remove_tcp_socket(&mut self, handle: SocketHandle) {
        let socket = self.sockets.remove(handle);
        self.tcp_socket_count -= 1;
        if let smoltcp::socket::Socket::Tcp(mut socket) = socket
            && self.pool.len() < SOCKET_POOL_LIMIT
        {
            socket.abort();
            self.pool.push(socket);
        }
    }

    fn start_connect(&mut self, remote: IpEndpoint) -> Result<SocketHandle, NetError> {
        if remote.port == 0 || remote.addr.is_unspecified() {
            return Err(NetError::InvalidInput);
        }
        let local_port = self.pick_ephemeral_port()?;
        let mut socket = self.new_tcp_socket()?;
        if let Err(error) = socket.connect(self.iface.context(), remote, local_port) {
            self.tcp_socket_count -= 1;
            return Err(match error {
                tcp::ConnectError::Unaddressable => NetError::Unaddressable,
                tcp::ConnectError::InvalidState => NetError::InvalidInput,
            });
        }
        // smoltcp only checks the route when it sends the SYN: fail now
        // rather than wait for the handshake timeout.
        if self.iface.get_source_address(&remote.addr).is_none() {
            self.tcp_socket_count -= 1;
            return Err(NetError::Unaddressable);
        }
        let handle = self.sockets.add(socket);
        let deadline = self.now_ns.saturating_add(duration_ns(self.options.handshake_timeout));
        self.conns.insert(
            handle,
            Conn {
                local_port,
                accepted_from: None,
                time_wait_since_ns: None,
                last_activity_ns: self.now_ns,
                connect_deadline_ns: Some(deadline),
                write_shut: false,
                timed_out: false,
                close_deadline_ns: None,
            },
        );
        self.note_deadline(deadline);
        self.request_poll();
        Ok(handle)
    }

    fn pick_ephemeral_port(&mut self) -> Result<u16, NetError> {
        let span = usize::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
        for _ in 0..span {
            let port = self.next_ephemeral_port;
            self.next_ephemeral_port = if port == *EPHEMERAL_PORTS.end() { *EPHEMERAL_PORTS.start() } else { port + 1 };
            // Linear, but only per connect, and connects are rare on a server.
            let taken = self.listeners.contains_key(&port) || self.conns.values().any(|c| c.local_port == port);
            if !taken {
                return Ok(port);
            }
        }
        Err(NetError::AddressInUse)
    }

    /// Applies DHCP leases to the interface. Returns whether one changed.
    fn dhcp_upkeep(&mut self) -> bool {
        let Some(handle) = self.dhcp else { return false };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
            None => return false,
            Some(dhcpv4::Event::Configured(config)) => Some((config.address, config.router)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        self.iface.update_ip_addrs(|addrs| {
            addrs.retain(|cidr| !matches!(cidr, IpCidr::Ipv4(_)));
            if let Some((address, _)) = event {
                addrs.push(IpCidr::Ipv4(address)).expect("room for the IPv4 address");
            }
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some((_, Some(router))) = event {
            self.iface.routes_mut().add_default_ipv4_route(router).expect("room for the default route");
        }
        log::info!("net: DHCP {:?}", event);
        true
    }

    /// Moves established connections of listening slots to the ready queues,
    /// refills the backlogs, aborts slow handshakes. Returns whether a socket
    /// was aborted.
    /// Whether a listening slot left LISTEN without upkeep having seen it
    /// yet (a new SYN, or a socket closed under it). Reads socket states
    /// only: cheap enough to ask after every received packet.
    fn listeners_need_upkeep(&self) -> bool {
        self.listeners.values().any(|listener| {
            listener.slots.iter().any(|slot| {
                slot.syn_since_ns.is_none()
                    && self.sockets.get::<tcp::Socket>(slot.handle).state() != tcp::State::Listen
            })
        })
    }

    fn listener_upkeep(&mut self) -> bool {
        let now_ns = self.now_ns;
        let handshake_ns = duration_ns(self.options.handshake_timeout);
        let mut aborted = false;
        let mut after: Option<u16> = None;
        loop {
            let next = match after {
                None => self.listeners.keys().next(),
                Some(last) => self.listeners.range((Excluded(last), Unbounded)).map(|(port, _)| port).next(),
            };
            let Some(&port) = next else { break };
            after = Some(port);
            let mut listener = self.listeners.remove(&port).expect("listed port");
            let mut index = 0;
            while index < listener.slots.len() {
                let state = self.sockets.get::<tcp::Socket>(listener.slots[index].handle).state();
                let duplicate = state == tcp::State::SynReceived
                    && listener.slots[index].syn_since_ns.is_none()
                    && self.is_duplicate_syn(port, &listener, index);
                let slot = &mut listener.slots[index];
                let socket = self.sockets.get_mut::<tcp::Socket>(slot.handle);
                match state {
                    tcp::State::Listen => {
                        slot.syn_since_ns = None;
                        index += 1;
                    }
                    tcp::State::SynReceived if duplicate => {
                        // A SYN retransmitted or duplicated by the network
                        // reached this slot before the socket that already
                        // owns the peer (smoltcp tries sockets in set order).
                        // Listen again silently: our SYN-ACK has not left yet
                        // (egress runs after ingress), and an RST would carry
                        // the peer's live tuple.
                        socket.abort();
                        if socket.listen(port).is_err() {
                            log::warn!("net: cannot re-listen on port {port}");
                        }
                        index += 1;
                    }
                    tcp::State::SynReceived => {
                        let since = *slot.syn_since_ns.get_or_insert(now_ns);
                        if now_ns.saturating_sub(since) >= handshake_ns {
                            socket.abort();
                            aborted = true;
                            // Reuse the slot at once: the peer gets the reset.
                            slot.syn_since_ns = None;
                        }
                        index += 1;
                    }
                    // Aborted above: listen again once the reset went out.
                    tcp::State::Closed if socket.local_endpoint().is_some() => index += 1,
                    tcp::State::Closed => {
                        if socket.listen(port).is_err() {
                            log::warn!("net: cannot re-listen on port {port}");
                        }
                        slot.syn_since_ns = None;
                        index += 1;
                    }
                    _ => {
                        let slot = listener.slots.swap_remove(index);
                        let peer = socket.remote_endpoint();
                        if let Some(peer) = peer {
                            self.accepted_peers.insert((port, peer));
                        }
                        self.conns.insert(
                            slot.handle,
                            Conn {
                                local_port: port,
                                accepted_from: peer,
                                time_wait_since_ns: None,
                                last_activity_ns: now_ns,
                                connect_deadline_ns: None,
                                write_shut: false,
                                timed_out: false,
                                close_deadline_ns: None,
                            },
                        );
                        self.note_idle_deadline(now_ns);
                        listener.ready.push_back(slot.handle);
                        if let Some(waker) = listener.waker.take() {
                            waker.wake();
                        }
                    }
                }
            }
            self.refill(port, &mut listener);
            self.listeners.insert(port, listener);
        }
        aborted
    }

    /// Whether the peer of slot `index` (just in SYN-RECEIVED) already has an
    /// accepted connection or an older half-open slot on this port.
    fn is_duplicate_syn(&self, port: u16, listener: &Listener, index: usize) -> bool {
        let Some(peer) = self.sockets.get::<tcp::Socket>(listener.slots[index].handle).remote_endpoint() else {
            return false;
        };
        self.accepted_peers.contains(&(port, peer))
            || listener.slots.iter().enumerate().any(|(other, slot)| {
                other != index && slot.syn_since_ns.is_some() && {
                    let socket = self.sockets.get::<tcp::Socket>(slot.handle);
                    socket.state() == tcp::State::SynReceived && socket.remote_endpoint() == Some(peer)
                }
            })
    }

    /// Drops a connection's bookkeeping and its socket.
    fn forget_conn(&mut self, handle: SocketHandle) {
        if let Some(conn) = self.conns.remove(&handle)
            && let Some(peer) = conn.accepted_from
        {
            self.accepted_peers.remove(&(conn.local_port, peer));
        }
        self.remove_tcp_socket(handle);
    }

    /// Tops up a listener's listening slots, within its backlog (ready
    /// connections count against it) and `max_connections`.
    fn refill(&mut self, port: u16, listener: &mut Listener) {
        // `backlog` sockets in LISTEN (half-open ones do not count, so a
        // burst of SYNs is limited by `max_connections` and the handshake
        // timeout), unless `backlog` connections already wait for accept.
        let listening = |listener: &Listener, sockets: &SocketSet<'static>| {
            listener.slots.iter().filter(|slot| sockets.get::<tcp::Socket>(slot.handle).is_listening()).count()
        };
        let mut free = listening(listener, &self.sockets);
        while free < listener.backlog && listener.ready.len() < listener.backlog {
            match self.new_listen_socket(port) {
                Ok(handle) => {
                    listener.slots.push(ListenSlot { handle, syn_since_ns: None });
                    free += 1;
                }
                Err(_) => break,
            }
        }
    }

    /// Reclaims the sockets of dropped streams once their close completed.
    fn reclaim_closing(&mut self) {
        let mut index = 0;
        while index < self.closing.len() {
            let handle = self.closing[index];
            let socket = self.sockets.get::<tcp::Socket>(handle);
            let closed = match socket.state() {
                // With a local endpoint, it still has its RST to send.
                tcp::State::Closed => socket.local_endpoint().is_none(),
                // Kept briefly: the ACK of the peer's FIN may still be
                // delayed, and a retransmitted FIN deserves an ACK, not RST.
                tcp::State::TimeWait => {
                    let now_ns = self.now_ns;
                    let conn = self.conns.get_mut(&handle).expect("closing connection");
                    let since = *conn.time_wait_since_ns.get_or_insert(now_ns);
                    if since == now_ns {
                        self.note_deadline(now_ns + TIME_WAIT_NS);
                    }
                    now_ns >= since + TIME_WAIT_NS
                }
                _ => false,
            };
            if closed {
                self.closing.swap_remove(index);
                self.forget_conn(handle);
            } else {
                index += 1;
            }
        }
    }

    /// Aborts connections past their handshake, idle or close deadline, and
    /// finds the next deadline. Returns whether any was aborted.
    fn timeout_upkeep(&mut self) -> bool {
        let now_ns = self.now_ns;
        let idle_ns = self.options.idle_timeout.map(duration_ns);
        let mut next: Option<u64> = None;
        let mut expired = Vec::new();
        for (&handle, conn) in &self.conns {
            let deadline = if let Some(deadline) = conn.close_deadline_ns {
                Some(deadline)
            } else if let Some(deadline) = conn.connect_deadline_ns {
                Some(deadline)
            } else if conn.timed_out {
                None
            } else {
                idle_ns.map(|idle| conn.last_activity_ns.saturating_add(idle))
            };
            match deadline {
                Some(deadline) if deadline <= now_ns => expired.push(handle),
                Some(deadline) => next = Some(next.map_or(deadline, |n| n.min(deadline))),
                None => {}
            }
        }
        self.next_deadline_ns = next;
        for &handle in &expired {
            let conn = self.conns.get_mut(&handle).expect("expired connection");
            if conn.close_deadline_ns.is_some() && conn.timed_out {
                // Aborted a second ago and its RST still not sent (the device
                // refuses frames): forget it anyway.
                self.closing.retain(|&h| h != handle);
                self.forget_conn(handle);
                continue;
            }
            conn.timed_out = true;
            conn.connect_deadline_ns = None;
            if conn.close_deadline_ns.is_some() {
                let deadline = now_ns.saturating_add(1_000_000_000);
                conn.close_deadline_ns = Some(deadline);
                self.note_deadline(deadline);
            }
            self.sockets.get_mut::<tcp::Socket>(handle).abort();
        }
        !expired.is_empty()
    }

    /// The error (or end of stream) for an operation on a socket that can no
    /// longer carry it.
    fn closed_outcome(&self, handle: SocketHandle, reading: bool) -> Result<usize, NetError> {
        let conn = &self.conns[&handle];
        match self.sockets.get::<tcp::Socket>(handle).state() {
            tcp::State::Closed if conn.timed_out => Err(NetError::TimedOut),
            // A reset after our FIN is indistinguishable here from a
            // completed close (smoltcp keeps that bit private): end of stream.
            tcp::State::Closed if conn.write_shut && reading => Ok(0),
            tcp::State::Closed => Err(NetError::Reset),
            _ if reading => Ok(0),
            _ => Err(NetError::Closed),
        }
    }
}

/// Future of [`Stack::poll_needed`].
#[must_use = "futures do nothing unless awaited"]
pub struct PollNeeded {
    stack: Stack,
}

impl fmt::Debug for PollNeeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollNeeded").finish_non_exhaustive()
    }
}

impl Future for PollNeeded {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.stack.inner.borrow_mut();
        if inner.poll_needed {
            return Poll::Ready(());
        }
        match &inner.driver_waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => inner.driver_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Drives `stack` over `device` forever: polls, then sleeps until a frame
/// arrives (`device_event`, the NIC's RX interrupt; without one, frames are
/// only picked up at smoltcp's timers), a socket operation needs a poll, or
/// smoltcp's next timer.
pub async fn drive<D: phy::Device + ?Sized>(
    stack: Stack,
    device: &mut D,
    timers: Timers,
    device_event: Option<&Event>,
) {
    loop {
        let now_ns = timers.now_ns();
        stack.poll(device, now_ns);
        let deadline_ns = stack.poll_at_ns(now_ns).map(|at| at.max(now_ns + MIN_POLL_INTERVAL_NS));
        let mut event = device_event.map(Event::wait);
        let mut needed = stack.poll_needed();
        let mut sleep = pin!(deadline_ns.map(|at| timers.sleep_until(at)));
        poll_fn(|cx| {
            if let Some(event) = event.as_mut()
                && Pin::new(event).poll(cx).is_ready()
            {
                return Poll::Ready(());
            }
            if Pin::new(&mut needed).poll(cx).is_ready() {
                return Poll::Ready(());
            }
            match sleep.as_mut().as_pin_mut() {
                Some(sleep) => sleep.poll(cx),
                None => Poll::Pending,
            }
        })
        .await;
    }
}

/// Accepts connections on one port. Dropping it closes the port and resets
/// connections not yet accepted.
pub struct TcpListener {
    stack: Stack,
    port: u16,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener").field("port", &self.port).finish()
    }
}

impl TcpListener {
    pub fn local_port(&self) -> u16 {
        self.port
    }

    /// The next established connection.
    pub async fn accept(&self) -> Result<TcpStream, NetError> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Result<TcpStream, NetError>> {
        let mut guard = self.stack.inner.borrow_mut();
        let inner = &mut *guard;
        let mut listener = inner.listeners.remove(&self.port).expect("listener outlives its entry");
        let result = match listener.ready.pop_front() {
            Some(handle) => {
                // A ready slot freed: listen with one more socket.
                inner.refill(self.port, &mut listener);
                Poll::Ready(Ok(TcpStream { stack: self.stack.clone(), handle }))
            }
            None => {
                listener.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        };
        inner.listeners.insert(self.port, listener);
        result
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let mut guard = self.stack.inner.borrow_mut();
        let inner = &mut *guard;
        let Some(listener) = inner.listeners.remove(&self.port) else { return };
        for slot in listener.slots {
            inner.remove_tcp_socket(slot.handle);
        }
        for handle in listener.ready {
            inner.sockets.get_mut::<tcp::Socket>(handle).abort();
            inner.conns.get_mut(&handle).expect("ready connection").close_deadline_ns = Some(inner.now_ns);
            inner.closing.push(handle);
        }
        inner.request_poll();
    }
}

/// An established TCP connection. Dropping it closes it gracefully (FIN after
/// the queued data); the stack reclaims the socket once closed, or aborts it
/// after [`StackOptions::close_timeout`].
pub struct TcpStream {
    stack: Stack,
    handle: SocketHandle,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream").field("peer", &self.peer_addr()).field("local_port", &self.local_port()).finish()
    }
}

impl TcpStream {
    pub fn peer_addr(&self) -> Option<IpEndpoint> {
        self.stack.inner.borrow().sockets.get::<tcp::Socket>(self.handle).remote_endpoint()
    }

    pub fn local_port(&self) -> u16 {
        self.stack.inner.borrow().conns[&self.handle].local_port
    }

    /// The local address the peer connected to.
    pub fn local_addr(&self) -> Option<IpAddress> {
        self.stack.inner.borrow().sockets.get::<tcp::Socket>(self.handle).local_endpoint().map(|e| e.addr)
    }

    /// Reads into `buf`; `Ok(0)` once the peer closed its side (or `buf` is
    /// empty).
    pub async fn read(&self, buf: &mut [u8]) -> Result<usize, NetError> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    pub fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, NetError>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut guard = self.stack.inner.borrow_mut();
        let inner = &mut *guard;
        let socket = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        if socket.can_recv() {
            let read = socket.recv_slice(buf).unwrap_or(0);
            if read > 0 {
                let now_ns = inner.now_ns;
                inner.conns.get_mut(&self.handle).expect("stream bookkeeping").last_activity_ns = now_ns;
                // The window opened: smoltcp may want to send an update.
                inner.request_poll();
                return Poll::Ready(Ok(read));
            }
        }
        if !socket.may_recv() && !matches!(socket.state(), tcp::State::SynReceived | tcp::State::SynSent) {
            return Poll::Ready(inner.closed_outcome(self.handle, true));
        }
        socket.register_recv_waker(cx.waker());
        Poll::Pending
    }

    /// Writes some of `buf` into the send buffer, waiting for room.
    pub async fn write(&self, buf: &[u8]) -> Result<usize, NetError> {
        poll_fn(|cx| self.poll_write(cx, buf)).await
    }

    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, NetError>> {
        let mut guard = self.stack.inner.borrow_mut();
        let inner = &mut *guard;
        if inner.conns[&self.handle].write_shut {
            return Poll::Ready(Err(NetError::Closed));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let socket = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        if !socket.may_send() {
            return Poll::Ready(inner.closed_outcome(self.handle, false));
        }
        let written = socket.send_slice(buf).unwrap_or(0);
        if written == 0 {
            socket.register_send_waker(cx.waker());
            return Poll::Pending;
        }
        let now_ns = inner.now_ns;
        inner.conns.get_mut(&self.handle).expect("stream bookkeeping").last_activity_ns = now_ns;
        inner.request_poll();
        Poll::Ready(Ok(written))
    }

    pub async fn write_all(&self, mut buf: &[u8]) -> Result<(), NetError> {
        while !buf.is_empty() {
            let written = self.write(buf).await?;
            buf = &buf[written..];
        }
        Ok(())
    }

    /// Waits until the peer has acknowledged everything written so far.
    pub async fn flush(&self) -> Result<(), NetError> {
        poll_fn(|cx| {
            let mut guard = self.stack.inner.borrow_mut();
            let inner = &mut *guard;
            let socket = inner.sockets.get_mut::<tcp::Socket>(self.handle);
            if socket.send_queue() == 0 {
                return Poll::Ready(Ok(()));
            }
            if socket.state() == tcp::State::Closed {
                return Poll::Ready(inner.closed_outcome(self.handle, false).map(|_| ()));
            }
            socket.register_send_waker(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Sends FIN after the queued data; reads still work until the peer
    /// closes.
    pub fn shutdown_write(&self) {
        let mut guard = self.stack.inner.borrow_mut();
        let inner = &mut *guard;
        inner.sockets.get_mut::<tcp::Socket>(self.handle).close();
        inner.conns.get_mut(&self.handle).expect("stream bookkeeping").write_shut = true;
        inner.request_poll();
    }

    /// Closes gracefully, like dropping the stream.
    pub fn close(self) {
        drop(self);
    }

    /// Resets the connection at once (RST), discarding queued data.
    pub fn abort(self) {
        self.stack.inner.borrow_mut().sockets.get_mut::<tcp::Socket>(self.handle).abort();
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let mut guard = self.stack.inner.borrow_mut();
        let inner = &mut *guard;
        let socket = inner.sockets.get_mut::<tcp::Socket>(self.handle);
        socket.close();
        // Reclaimed by the next poll once closed: after the FIN or RST went out.
        let deadline = inner.now_ns.saturating_add(duration_ns(inner.options.close_timeout));
        let conn = inner.conns.get_mut(&self.handle).expect("stream bookkeeping");
        conn.write_shut = true;
        conn.close_deadline_ns = Some(deadline);
        inner.closing.push(self.handle);
        inner.note_deadline(deadline);
        inner.request_poll();
    }
}
