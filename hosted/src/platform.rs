//! The parking platform: `idle` parks the thread until the next timer
//! deadline, a wake from another thread (through the executor's notifier) or
//! an event raised by another thread.

use crate::clock::HostClock;
use runtime::clock::Clock;
use runtime::event::Event;
use runtime::executor::{Notifier, Platform};
use std::sync::Arc;
use std::thread::{self, Thread};
use std::time::Duration;

/// Host implementation of [`Platform`]. Created on, and driving, the thread
/// that runs `block_on`.
#[derive(Debug)]
pub struct HostPlatform {
    thread: Thread,
    clock: HostClock,
    events: Vec<Arc<Event>>,
}

impl Default for HostPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl HostPlatform {
    /// A platform that parks the current thread.
    pub fn new() -> Self {
        Self { thread: thread::current(), clock: HostClock::new(), events: Vec::new() }
    }

    /// Unparks this platform's thread; pass it to
    /// `Executor::with_notifier` so cross-thread wakes end `idle`.
    pub fn notifier(&self) -> Notifier {
        let thread = self.thread.clone();
        Arc::new(move || thread.unpark())
    }

    /// Registers `event` for delivery by `poll_events` and returns a handle
    /// another thread uses to raise it, like an interrupt line.
    pub fn add_event(&mut self, event: Arc<Event>) -> Interrupt {
        self.events.push(event.clone());
        Interrupt { event, thread: self.thread.clone() }
    }
}

impl Platform for HostPlatform {
    fn poll_events(&mut self) {
        for event in &self.events {
            event.deliver();
        }
    }

    fn idle(&mut self, deadline_ns: Option<u64>) {
        // A signal raised without an unpark must not be slept through.
        if self.events.iter().any(|event| event.is_pending()) {
            return;
        }
        match deadline_ns {
            None => thread::park(),
            Some(deadline_ns) => {
                let now_ns = self.clock.now_ns();
                if deadline_ns > now_ns {
                    thread::park_timeout(Duration::from_nanos(deadline_ns - now_ns));
                }
            }
        }
    }
}

/// Raises a registered [`Event`] from any thread: signals it and unparks the
/// platform's thread, as an interrupt would end a `hlt`.
#[derive(Clone, Debug)]
pub struct Interrupt {
    event: Arc<Event>,
    thread: Thread,
}

impl Interrupt {
    /// Signals the event and wakes the platform.
    pub fn raise(&self) {
        self.event.signal();
        self.thread.unpark();
    }

    /// The event this line raises.
    pub fn event(&self) -> &Arc<Event> {
        &self.event
    }
}
