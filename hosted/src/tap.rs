//! A Linux TAP device as a smoltcp `phy::Device`, so the hosted platform runs
//! the very stack the kernel runs on virtio-net, with Linux at the other end
//! of the cable.
//!
//! Frames are read and written one syscall each on a non-blocking fd. With
//! [`TapOffload::Tcp`] (the default of `rustcore-hosted`) the fd is opened
//! with `IFF_VNET_HDR` and `TUNSETOFFLOAD(CSUM|TSO4|TSO6)`: every frame
//! carries a `virtio_net_hdr`, TCP checksums are left to the other side when
//! they never leave the host's memory, and TCP segments of up to 64 KiB go
//! both ways in one frame and one syscall (Linux segments ours and
//! coalesces its own; `net::offload`). Without it Linux hands us finished
//! 1514-byte frames with checksums. RX readiness reaches the executor
//! through the platform: the fd is registered with
//! [`HostPlatform::add_readable`], whose `ppoll` raises the RX event, and
//! [`TapDevice::receive`] reads until `EAGAIN`.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use net::ethernet::{Device, ETHERNET_MTU_BYTES};
use net::offload::{self, RxVerdict, VIRTIO_NET_HDR_BYTES, VirtioNetHdr};
use net::tcp::TcpOffload;
use runtime::event::Event;
use smoltcp::phy::{self, DeviceCapabilities, PacketMeta};
use smoltcp::time::Instant;

use crate::platform::HostPlatform;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (the rest
/// of the union is padding).
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// The largest frame Linux hands a TAP reader that accepts TSO: a 64 KiB IP
/// packet, its Ethernet header and the `virtio_net_hdr`, rounded up.
const OFFLOAD_FRAME_BYTES: usize = 65_536 + 64;

/// Whether the TAP device carries `virtio_net_hdr` offloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapOffload {
    /// Plain 1514-byte frames with complete checksums.
    None,
    /// TCP checksum and segmentation offload both ways.
    Tcp,
}

impl TapOffload {
    /// What the stack on this device must be told
    /// ([`net::tcp::StackOptions::tcp_offload`]).
    pub fn stack_offload(self) -> TcpOffload {
        match self {
            TapOffload::None => TcpOffload::None,
            TapOffload::Tcp => TcpOffload::FULL,
        }
    }
}

/// Frame counters of a [`TapDevice`].
#[derive(Debug, Default)]
pub struct TapStats {
    pub rx_frames: AtomicU64,
    pub tx_frames: AtomicU64,
    /// Frames Linux refused (queue full, interface down): TCP retransmits.
    pub tx_dropped: AtomicU64,
}

/// An open TAP interface (`IFF_TAP | IFF_NO_PI`, and `IFF_VNET_HDR` with
/// offload), non-blocking, MTU 1514.
pub struct TapDevice {
    name: String,
    offload: TapOffload,
    fd: Arc<OwnedFd>,
    rx_event: Arc<Event>,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    stats: Arc<TapStats>,
}

impl fmt::Debug for TapDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TapDevice").field("name", &self.name).field("stats", &self.stats).finish_non_exhaustive()
    }
}

fn last_error(what: &str) -> io::Error {
    let error = io::Error::last_os_error();
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

impl TapDevice {
    /// Opens (creating if needed) the TAP interface `name` and registers its
    /// readability on `platform` as the RX event. The
    /// interface must be brought up and addressed on the Linux side
    /// separately (`ip link set NAME up`).
    pub fn open(name: &str, offload: TapOffload, platform: &mut HostPlatform) -> io::Result<TapDevice> {
        let c_name = CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
        if c_name.as_bytes().len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
        }
        // SAFETY: the path is a NUL-terminated literal; `open` has no other
        // preconditions.
        let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(last_error("open /dev/net/tun"));
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut request = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TAP | libc::IFF_NO_PI | if offload == TapOffload::Tcp { libc::IFF_VNET_HDR } else { 0 })
                as libc::c_short,
            _pad: [0; 22],
        };
        for (dst, &src) in request.name.iter_mut().zip(c_name.as_bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: TUNSETIFF reads a `struct ifreq` (40 bytes on Linux, the
        // size and layout of `IfReq`) through the pointer, which is valid
        // for the duration of the call; the fd is open.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut request as *mut IfReq) } < 0 {
            return Err(last_error(&format!("TUNSETIFF {name}")));
        }
        // Set either way: a persistent device keeps the offloads of its last
        // user, and frames coalesced for a reader without headers are lost.
        let flags = match offload {
            TapOffload::None => 0,
            TapOffload::Tcp => libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6,
        };
        // SAFETY: TUNSETOFFLOAD takes the flags by value; the fd is an
        // attached TAP device.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, libc::c_ulong::from(flags)) } < 0 {
            return Err(last_error(&format!("TUNSETOFFLOAD {name}")));
        }
        let frame_bytes = match offload {
            TapOffload::None => ETHERNET_MTU_BYTES,
            TapOffload::Tcp => OFFLOAD_FRAME_BYTES,
        };
        let fd = Arc::new(fd);
        let rx_event = Arc::new(Event::new());
        platform.add_readable(fd.clone(), rx_event.clone());
        Ok(TapDevice {
            name: name.to_owned(),
            offload,
            fd,
            rx_event,
            rx_buf: vec![0; frame_bytes],
            tx_buf: Vec::with_capacity(frame_bytes),
            stats: Arc::new(TapStats::default()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Signalled when frames are waiting: pass it to `net::tcp::drive`.
    pub fn rx_event(&self) -> Arc<Event> {
        self.rx_event.clone()
    }

    /// Counters that outlive moving the device into a driver task.
    pub fn stats(&self) -> Arc<TapStats> {
        self.stats.clone()
    }
}

/// A received frame, borrowed from the device's receive buffer.
pub struct TapRxToken<'a> {
    frame: &'a [u8],
}

/// Permission to write one frame.
pub struct TapTxToken<'a> {
    fd: &'a OwnedFd,
    buf: &'a mut Vec<u8>,
    stats: &'a TapStats,
    offload: TapOffload,
    meta: PacketMeta,
}

impl phy::RxToken for TapRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

impl phy::TxToken for TapTxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let header_bytes = match self.offload {
            TapOffload::None => 0,
            TapOffload::Tcp => VIRTIO_NET_HDR_BYTES,
        };
        self.buf.clear();
        self.buf.resize(header_bytes + len, 0);
        let result = f(&mut self.buf[header_bytes..]);
        if self.offload == TapOffload::Tcp {
            let header = offload::prepare_tx(&mut self.buf[header_bytes..], self.meta.segmentation_offload_size);
            self.buf[..header_bytes].copy_from_slice(&header.to_bytes());
        }
        // SAFETY: the pointer and length describe `self.buf`, initialised and
        // alive for the call; the fd is open.
        let written = unsafe { libc::write(self.fd.as_raw_fd(), self.buf.as_ptr().cast(), self.buf.len()) };
        if written == self.buf.len() as isize {
            self.stats.tx_frames.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.tx_dropped.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn set_meta(&mut self, meta: PacketMeta) {
        self.meta = meta;
    }
}

impl Device for TapDevice {
    type RxToken<'a> = TapRxToken<'a>;
    type TxToken<'a> = TapTxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let fd = self.fd.as_raw_fd();
        let frame = loop {
            // SAFETY: the pointer and length describe `self.rx_buf`, alive
            // and writable for the call; the fd is open.
            let read = unsafe { libc::read(fd, self.rx_buf.as_mut_ptr().cast(), self.rx_buf.len()) };
            let Ok(len) = usize::try_from(read) else {
                // EAGAIN (drained) or an error: either way wait for readiness.
                return None;
            };
            self.stats.rx_frames.fetch_add(1, Ordering::Relaxed);
            match self.offload {
                TapOffload::None => break 0..len,
                TapOffload::Tcp => {
                    let Some(header) = VirtioNetHdr::from_bytes(&self.rx_buf[..len]) else { continue };
                    let frame = VIRTIO_NET_HDR_BYTES..len;
                    match offload::check_rx(&header, &mut self.rx_buf[frame.clone()]) {
                        RxVerdict::Accept => break frame,
                        // Dropped, as smoltcp drops a bad checksum it checks.
                        RxVerdict::BadChecksum => {}
                    }
                }
            }
        };
        let Self { fd, rx_buf, tx_buf, stats, offload, .. } = self;
        Some((
            TapRxToken { frame: &rx_buf[frame] },
            TapTxToken { fd, buf: tx_buf, stats, offload: *offload, meta: PacketMeta::default() },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        Some(TapTxToken {
            fd: &self.fd,
            buf: &mut self.tx_buf,
            stats: &self.stats,
            offload: self.offload,
            meta: PacketMeta::default(),
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        // What smoltcp uses comes from the stack's options
        // (`TapOffload::stack_offload`); this is for other users of the trait.
        net::ethernet::ethernet_capabilities(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_matches_the_kernel_layout() {
        assert_eq!(size_of::<IfReq>(), size_of::<libc::ifreq>());
        assert_eq!(std::mem::offset_of!(IfReq, flags), libc::IFNAMSIZ);
    }

    #[test]
    fn rejects_bad_names_before_any_syscall() {
        let mut platform = HostPlatform::new();
        let too_long = "x".repeat(libc::IFNAMSIZ);
        for name in [too_long.as_str(), "bad\0name"] {
            let error = TapDevice::open(name, TapOffload::Tcp, &mut platform).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
    }
}
