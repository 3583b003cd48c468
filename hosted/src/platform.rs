//! The sleeping platform: `idle` waits in `ppoll(2)` until the next timer
//! deadline, a wake from another thread (an `eventfd`), or a registered file
//! descriptor becoming readable, the host's interrupt lines.
//!
//! A readable descriptor (the TAP device) is watched by the executor's own
//! thread: no reader thread and no thread switch per burst of frames (with
//! one, `perf` put 40% of a bulk receive in futex wakes and context
//! switches). `poll_events` also looks at the descriptors without waiting,
//! so frames are noticed while tasks keep the executor busy.
//!
//! Cross-thread wakes write the eventfd only while the thread sleeps or is
//! about to (`sleeping`); `notified` closes the window between the
//! executor's last look at its queue and the `ppoll` (both flags `SeqCst`:
//! either the waker sees `sleeping` or `idle` sees `notified`).

use crate::clock::HostClock;
use runtime::clock::Clock;
use runtime::event::Event;
use runtime::executor::{Notifier, Platform};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What wakes the platform's thread from other threads.
#[derive(Debug)]
struct Waker {
    eventfd: OwnedFd,
    sleeping: AtomicBool,
    notified: AtomicBool,
}

impl Waker {
    fn new() -> io::Result<Waker> {
        // SAFETY: `eventfd` has no memory preconditions.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let eventfd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Waker { eventfd, sleeping: AtomicBool::new(false), notified: AtomicBool::new(false) })
    }

    fn wake(&self) {
        self.notified.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            let one = 1u64.to_ne_bytes();
            // SAFETY: eight readable bytes, as an eventfd write requires; the
            // fd lives as long as `self`. A full counter (EAGAIN) still
            // leaves the fd readable, which is all a wake needs.
            let _ = unsafe { libc::write(self.eventfd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        }
    }

    /// Resets the eventfd's counter after a wake.
    fn drain(&self) {
        let mut count = [0u8; 8];
        // SAFETY: eight writable bytes; the fd is non-blocking and open.
        let _ = unsafe { libc::read(self.eventfd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
    }
}

/// A descriptor whose readability raises an event.
#[derive(Debug)]
struct Readable {
    fd: Arc<OwnedFd>,
    event: Arc<Event>,
}

/// Host implementation of [`Platform`]. Created on, and driving, the thread
/// that runs `block_on`.
#[derive(Debug)]
pub struct HostPlatform {
    waker: Arc<Waker>,
    clock: HostClock,
    events: Vec<Arc<Event>>,
    readables: Vec<Readable>,
    pollfds: Vec<libc::pollfd>,
}

impl Default for HostPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl HostPlatform {
    /// A platform for the current thread.
    ///
    /// # Panics
    /// If the process is out of file descriptors (no eventfd).
    pub fn new() -> Self {
        let waker = Arc::new(Waker::new().expect("an eventfd for the platform"));
        Self { waker, clock: HostClock::new(), events: Vec::new(), readables: Vec::new(), pollfds: Vec::new() }
    }

    /// Wakes this platform's thread; pass it to `Executor::with_notifier`
    /// so cross-thread wakes end `idle`.
    pub fn notifier(&self) -> Notifier {
        let waker = self.waker.clone();
        Arc::new(move || waker.wake())
    }

    /// Registers `event` for delivery by `poll_events` and returns a handle
    /// another thread uses to raise it, like an interrupt line.
    pub fn add_event(&mut self, event: Arc<Event>) -> Interrupt {
        self.events.push(event.clone());
        Interrupt { event, waker: self.waker.clone() }
    }

    /// Signals `event` whenever `fd` is readable (level-triggered: the
    /// event's task must read until `EAGAIN`, or it is woken again at once).
    /// The platform keeps `fd` open while registered.
    pub fn add_readable(&mut self, fd: Arc<OwnedFd>, event: Arc<Event>) {
        self.events.push(event.clone());
        self.readables.push(Readable { fd, event });
    }

    /// `ppoll`s the wake eventfd and every readable descriptor whose event
    /// is not already pending, up to `timeout` (`None`: forever); signals
    /// the events of the readable ones. True if the eventfd was readable.
    fn wait(&mut self, timeout: Option<&libc::timespec>, with_waker: bool) -> bool {
        self.pollfds.clear();
        if with_waker {
            self.pollfds.push(libc::pollfd { fd: self.waker.eventfd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        let first_readable = self.pollfds.len();
        for readable in &self.readables {
            // A pending event polls nothing: its fd is known to have data.
            let fd = if readable.event.is_pending() { -1 } else { readable.fd.as_raw_fd() };
            self.pollfds.push(libc::pollfd { fd, events: libc::POLLIN, revents: 0 });
        }
        if self.pollfds.is_empty() {
            return false;
        }
        let timeout_ptr = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `pollfds` is a valid array of its length for the call; the
        // timeout is null or points to a live timespec; a null sigmask keeps
        // the thread's mask.
        let ready = unsafe {
            libc::ppoll(self.pollfds.as_mut_ptr(), self.pollfds.len() as libc::nfds_t, timeout_ptr, std::ptr::null())
        };
        if ready <= 0 {
            return false;
        }
        for (pollfd, readable) in self.pollfds[first_readable..].iter().zip(&self.readables) {
            // POLLERR/POLLHUP too: the task's read reports the error.
            if pollfd.fd >= 0 && pollfd.revents != 0 {
                readable.event.signal();
            }
        }
        with_waker && self.pollfds[0].revents != 0
    }

    /// Polls the descriptors without sleeping for up to [`BUSY_POLL_NS`] (or
    /// until `deadline_ns`), yielding the CPU between looks: during a bulk
    /// transfer the next frames arrive within microseconds, and catching
    /// them awake saves the sender's kernel a wake-up of this thread per
    /// frame (a cross-CPU interrupt, costly in a VM). True if the eventfd
    /// was readable.
    fn busy_poll(&mut self, deadline_ns: Option<u64>) -> bool {
        let until = self.clock.now_ns() + BUSY_POLL_NS;
        let until = deadline_ns.map_or(until, |deadline| deadline.min(until));
        loop {
            if self.wait(Some(&NO_WAIT), true) {
                return true;
            }
            if self.any_event_pending() || self.clock.now_ns() >= until {
                return false;
            }
            // Not a bare spin: on a machine with one CPU, the thread whose
            // completion we wait for (a disk helper) needs to run.
            std::thread::yield_now();
        }
    }

    /// A raised event not yet delivered: work for the executor.
    fn any_event_pending(&self) -> bool {
        self.events.iter().any(|event| event.is_pending())
    }
}

const NO_WAIT: libc::timespec = libc::timespec { tv_sec: 0, tv_nsec: 0 };
/// How long `idle` polls without sleeping before it sleeps in `ppoll`.
const BUSY_POLL_NS: u64 = 50_000;

impl Platform for HostPlatform {
    fn poll_events(&mut self) {
        // A syscall per executor turn, so only for a line not already raised.
        if self.readables.iter().any(|readable| !readable.event.is_pending()) {
            let _ = self.wait(Some(&NO_WAIT), false);
        }
        for event in &self.events {
            event.deliver();
        }
    }

    fn idle(&mut self, deadline_ns: Option<u64>) {
        // A signal raised before this point must not be slept through.
        if self.any_event_pending() {
            return;
        }
        self.waker.sleeping.store(true, Ordering::SeqCst);
        let mut woken = false;
        if !self.waker.notified.swap(false, Ordering::SeqCst) {
            // Only a device (a readable descriptor) is worth spinning for.
            if !self.readables.is_empty() {
                woken = self.busy_poll(deadline_ns);
            }
            // The time left is taken after the spin, which used some of it.
            let timeout = deadline_ns.map(|deadline_ns| {
                let ns = deadline_ns.saturating_sub(self.clock.now_ns());
                libc::timespec { tv_sec: (ns / 1_000_000_000) as libc::time_t, tv_nsec: (ns % 1_000_000_000) as _ }
            });
            let time_left = timeout.is_none_or(|t| t.tv_sec != 0 || t.tv_nsec != 0);
            if !woken && time_left && !self.any_event_pending() {
                woken = self.wait(timeout.as_ref(), true);
            }
        }
        self.waker.sleeping.store(false, Ordering::SeqCst);
        self.waker.notified.store(false, Ordering::SeqCst);
        if woken {
            self.waker.drain();
        }
    }
}

/// Raises a registered [`Event`] from any thread: signals it and wakes the
/// platform's thread, as an interrupt would end a `hlt`.
#[derive(Clone, Debug)]
pub struct Interrupt {
    event: Arc<Event>,
    waker: Arc<Waker>,
}

impl Interrupt {
    /// Signals the event and wakes the platform.
    pub fn raise(&self) {
        self.event.signal();
        self.waker.wake();
    }

    /// The event this line raises.
    pub fn event(&self) -> &Arc<Event> {
        &self.event
    }
}
