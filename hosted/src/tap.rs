//! A Linux TAP device as a smoltcp `phy::Device`, so the hosted platform runs
//! the very stack the kernel runs on virtio-net, with Linux at the other end
//! of the cable.
//!
//! Frames are read and written one syscall each on a non-blocking fd (no
//! `IFF_VNET_HDR`, so no offloads: Linux hands us finished 1514-byte frames
//! with checksums). RX readiness reaches the executor as an interrupt: a
//! reader thread `poll(2)`s the fd and raises a [`Interrupt`]; it then waits
//! until [`TapDevice::receive`] has drained the fd (`EAGAIN`) before polling
//! again, so it neither busy-loops on a readable fd nor misses a frame that
//! arrives after the drain.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use net::ethernet::{Device, ETHERNET_MTU_BYTES};
use runtime::event::Event;
use smoltcp::phy::{self, DeviceCapabilities};
use smoltcp::time::Instant;

use crate::platform::{HostPlatform, Interrupt};

/// How often the reader thread looks at the stop flag while the link is quiet.
const READER_POLL_TIMEOUT_MS: libc::c_int = 200;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (the rest
/// of the union is padding).
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// What the reader thread and the device share.
#[derive(Debug)]
struct Shared {
    fd: OwnedFd,
    state: Mutex<ReaderState>,
    drained: Condvar,
}

#[derive(Debug)]
struct ReaderState {
    /// `receive` saw `EAGAIN` since the last interrupt: poll the fd again.
    armed: bool,
    stop: bool,
}

/// Frame counters of a [`TapDevice`].
#[derive(Debug, Default)]
pub struct TapStats {
    pub rx_frames: AtomicU64,
    pub tx_frames: AtomicU64,
    /// Frames Linux refused (queue full, interface down): TCP retransmits.
    pub tx_dropped: AtomicU64,
}

/// An open TAP interface (`IFF_TAP | IFF_NO_PI`), non-blocking, MTU 1514.
pub struct TapDevice {
    name: String,
    shared: Arc<Shared>,
    rx_event: Arc<Event>,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    stats: Arc<TapStats>,
    reader: Option<JoinHandle<()>>,
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
    /// Opens (creating if needed) the TAP interface `name` and starts its
    /// reader thread, whose RX interrupt is registered on `platform`. The
    /// interface must be brought up and addressed on the Linux side
    /// separately (`ip link set NAME up`).
    pub fn open(name: &str, platform: &mut HostPlatform) -> io::Result<TapDevice> {
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
            flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
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
        let shared = Arc::new(Shared {
            fd,
            state: Mutex::new(ReaderState { armed: true, stop: false }),
            drained: Condvar::new(),
        });
        let rx_event = Arc::new(Event::new());
        let interrupt = platform.add_event(rx_event.clone());
        let thread_shared = shared.clone();
        let reader = std::thread::Builder::new()
            .name(format!("tap-rx-{name}"))
            .spawn(move || reader_loop(&thread_shared, &interrupt))?;
        Ok(TapDevice {
            name: name.to_owned(),
            shared,
            rx_event,
            rx_buf: vec![0; ETHERNET_MTU_BYTES],
            tx_buf: Vec::with_capacity(ETHERNET_MTU_BYTES),
            stats: Arc::new(TapStats::default()),
            reader: Some(reader),
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

    /// Lets the reader thread poll the fd again.
    fn rearm(&self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.armed {
            state.armed = true;
            self.shared.drained.notify_one();
        }
    }
}

impl Drop for TapDevice {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            state.stop = true;
            self.shared.drained.notify_one();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Waits for the fd to become readable, raises the interrupt, then waits
/// until the device drained the fd before polling again.
fn reader_loop(shared: &Shared, interrupt: &Interrupt) {
    loop {
        {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while !state.armed && !state.stop {
                state = shared.drained.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if state.stop {
                return;
            }
        }
        let mut pollfd = libc::pollfd { fd: shared.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid `pollfd` for the duration of the call; the fd
        // stays open while `shared` lives.
        let ready = unsafe { libc::poll(&mut pollfd, 1, READER_POLL_TIMEOUT_MS) };
        if ready < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The fd is broken: nothing more will arrive.
            return;
        }
        if ready == 0 {
            continue;
        }
        if pollfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            std::thread::sleep(Duration::from_millis(READER_POLL_TIMEOUT_MS as u64));
        }
        // Disarm before raising: a `receive` that hits EAGAIN from here on
        // re-arms, so no frame is left behind.
        shared.state.lock().unwrap_or_else(|e| e.into_inner()).armed = false;
        interrupt.raise();
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
        self.buf.clear();
        self.buf.resize(len, 0);
        let result = f(self.buf);
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
}

impl Device for TapDevice {
    type RxToken<'a> = TapRxToken<'a>;
    type TxToken<'a> = TapTxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let fd = self.shared.fd.as_raw_fd();
        // SAFETY: the pointer and length describe `self.rx_buf`, alive and
        // writable for the call; the fd is open.
        let read = unsafe { libc::read(fd, self.rx_buf.as_mut_ptr().cast(), self.rx_buf.len()) };
        let Ok(len) = usize::try_from(read) else {
            // EAGAIN (drained) or an error: either way wait for readiness.
            self.rearm();
            return None;
        };
        self.stats.rx_frames.fetch_add(1, Ordering::Relaxed);
        let Self { shared, rx_buf, tx_buf, stats, .. } = self;
        Some((TapRxToken { frame: &rx_buf[..len] }, TapTxToken { fd: &shared.fd, buf: tx_buf, stats }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        Some(TapTxToken { fd: &self.shared.fd, buf: &mut self.tx_buf, stats: &self.stats })
    }

    fn capabilities(&self) -> DeviceCapabilities {
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
            let error = TapDevice::open(name, &mut platform).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
    }
}
