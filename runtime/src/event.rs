//! Interrupt-to-task bridge.
//!
//! An interrupt handler calls [`Event::signal`], which only sets an atomic
//! flag. The platform's event loop, in thread context, later calls
//! [`Event::deliver`], which clears the flag and wakes the waiting task.
//!
//! Interrupt handlers never call a waker: waking a task takes the executor's
//! ready-queue lock, and on a single core the interrupted code may be holding
//! that very lock (it was in the middle of queueing or dequeueing a task).
//! The handler would spin forever on a lock whose owner cannot run until the
//! handler returns. The same goes for the waker slot's own lock and for the
//! heap allocator. So the interrupt side touches atomics only, and every lock
//! here is taken from thread context only.
//!
//! Signals coalesce: several signals before a delivery count as one, and one
//! delivered signal completes one [`Event::wait`]. A signal is never lost: if
//! no task is waiting when it is delivered, the next `wait` completes at once.
//! One task waits on an event at a time (one driver task per interrupt
//! vector); a second concurrent waiter replaces the first one's waker.

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

/// One interrupt source (or any edge-triggered signal). `const`-constructible
/// so the kernel can keep a `static` array of them indexed by vector.
#[derive(Debug)]
pub struct Event {
    /// Set by `signal` (interrupt context), cleared by `deliver` or `wait`.
    signalled: AtomicBool,
    /// Set by `deliver`, consumed by `wait`.
    delivered: AtomicBool,
    /// The waiting task's waker. Locked from thread context only.
    waker: spin::Mutex<Option<Waker>>,
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl Event {
    /// A quiet event with no waiter.
    pub const fn new() -> Self {
        Self { signalled: AtomicBool::new(false), delivered: AtomicBool::new(false), waker: spin::Mutex::new(None) }
    }

    /// Marks the event as signalled. Safe from interrupt context: one atomic
    /// store, no lock, no allocation, no waker call.
    pub fn signal(&self) {
        self.signalled.store(true, Ordering::Release);
    }

    /// True if a signal arrived that has not been delivered (or consumed)
    /// yet. Platforms check this before sleeping.
    pub fn is_pending(&self) -> bool {
        self.signalled.load(Ordering::Acquire)
    }

    /// Thread context only. If a signal is pending, clears it and wakes the
    /// waiting task (if any). Returns whether a signal was pending.
    pub fn deliver(&self) -> bool {
        if !self.signalled.swap(false, Ordering::AcqRel) {
            return false;
        }
        self.delivered.store(true, Ordering::Release);
        let waker = self.waker.lock().take();
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// A future that completes once a signal has been delivered (or is
    /// pending already), consuming that signal.
    pub fn wait(&self) -> EventWait<'_> {
        EventWait { event: self, registered: false }
    }

    /// Consumes a delivered or pending signal, if any.
    fn take_signal(&self) -> bool {
        self.delivered.swap(false, Ordering::AcqRel) || self.signalled.swap(false, Ordering::AcqRel)
    }
}

/// Future returned by [`Event::wait`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct EventWait<'a> {
    event: &'a Event,
    registered: bool,
}

impl Future for EventWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let event = self.event;
        if event.take_signal() {
            self.registered = false;
            return Poll::Ready(());
        }
        {
            let mut slot = event.waker.lock();
            match slot.as_ref() {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        self.registered = true;
        // A delivery between the first check and the registration took no
        // waker (or the old one): check again so it is not missed.
        if event.take_signal() {
            self.unregister(cx.waker());
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl EventWait<'_> {
    fn unregister(&mut self, waker: &Waker) {
        let mut slot = self.event.waker.lock();
        if slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = None;
        }
        self.registered = false;
    }
}

impl Drop for EventWait<'_> {
    fn drop(&mut self) {
        if !self.registered {
            return;
        }
        // Clear our waker so a cancelled wait does not keep the task alive.
        // Without the waker at hand we clear whatever is registered: with
        // one waiter per event that is ours.
        *self.event.waker.lock() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Executor;
    use alloc_crate::rc::Rc;
    use core::cell::Cell;

    static VECTORS: [Event; 2] = [Event::new(), Event::new()];

    #[test]
    fn signal_then_deliver_wakes_waiter() {
        let exec = Executor::new();
        let done = Rc::new(Cell::new(0));
        let d = done.clone();
        exec.spawn(async move {
            VECTORS[0].wait().await;
            d.set(1);
            VECTORS[0].wait().await;
            d.set(2);
        });
        exec.run_ready();
        assert_eq!(done.get(), 0);
        assert!(!VECTORS[0].deliver(), "nothing pending yet");
        VECTORS[0].signal();
        VECTORS[0].signal(); // coalesces with the first
        assert!(VECTORS[0].is_pending());
        assert!(exec.run_ready() == 0, "a signal alone wakes nobody");
        assert!(VECTORS[0].deliver());
        assert!(!VECTORS[0].is_pending());
        assert_eq!(exec.run_ready(), 1);
        assert_eq!(done.get(), 1);
        VECTORS[0].signal();
        assert!(VECTORS[0].deliver());
        exec.run_ready();
        assert_eq!(done.get(), 2);
        assert_eq!(exec.task_count(), 0);
        assert!(!VECTORS[1].is_pending());
    }

    #[test]
    fn pending_signal_completes_wait_immediately() {
        let event = Event::new();
        event.signal();
        let exec = Executor::new();
        let handle = exec.spawn(async move { event.wait().await });
        assert_eq!(exec.run_ready(), 1);
        assert!(handle.is_finished());
    }

    #[test]
    fn delivered_signal_without_waiter_is_kept() {
        let event = Rc::new(Event::new());
        event.signal();
        assert!(event.deliver());
        let exec = Executor::new();
        let e = event.clone();
        let handle = exec.spawn(async move { e.wait().await });
        exec.run_ready();
        assert!(handle.is_finished());
    }

    #[test]
    fn dropped_wait_clears_waker() {
        let event = Event::new();
        let mut wait = alloc_crate::boxed::Box::pin(event.wait());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        assert!(event.waker.lock().is_some());
        drop(wait);
        assert!(event.waker.lock().is_none());
    }
}
