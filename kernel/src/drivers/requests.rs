//! The request table both block drivers share: which command slots are free,
//! in flight, done or abandoned, who waits for them, and who owns each
//! request's buffer.
//!
//! The rule it enforces: a request's `IoBuf` belongs to its slot from
//! submission until the device completes it. If the future that submitted
//! the request is dropped first, the slot becomes `Abandoned` and keeps the
//! buffer, so the device never writes into freed memory; the completion
//! frees both. Pure bookkeeping, no hardware: tested on the host.

use alloc::vec::Vec;
use core::task::{Context, Poll, Waker};

use storage::block::IoBuf;

enum Slot<S> {
    Free,
    InFlight {
        buffer: Option<IoBuf>,
        waker: Option<Waker>,
    },
    Done {
        buffer: Option<IoBuf>,
        status: S,
    },
    /// Its future was dropped: the buffer stays until the device completes.
    Abandoned {
        _kept_until_completion: Option<IoBuf>,
    },
}

/// `S` is the device's completion status (a status byte, an NVMe status word).
pub struct RequestSlots<S> {
    slots: Vec<Slot<S>>,
    /// Tasks waiting for a free slot.
    space_waiters: Vec<Waker>,
    completed: u64,
}

/// What a completion did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The waiting request was woken.
    Delivered,
    /// Nobody waited any more; the slot and its buffer were freed.
    Discarded,
    /// No request was in flight in that slot: the device is broken.
    Unknown,
}

impl<S> RequestSlots<S> {
    pub fn new(count: usize) -> Self {
        Self { slots: (0..count).map(|_| Slot::Free).collect(), space_waiters: Vec::new(), completed: 0 }
    }

    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// A free slot, or registers the task to be woken when one frees up.
    /// `room` says whether the device queue also has room for the request.
    pub fn poll_free(&mut self, cx: &mut Context<'_>, room: bool) -> Poll<usize> {
        match self.slots.iter().position(|s| matches!(s, Slot::Free)) {
            Some(slot) if room => Poll::Ready(slot),
            _ => {
                self.space_waiters.push(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// The request in `slot` was handed to the device with `buffer`.
    pub fn start(&mut self, slot: usize, buffer: Option<IoBuf>) {
        self.slots[slot] = Slot::InFlight { buffer, waker: None };
    }

    /// The device finished the request in `slot`.
    pub fn complete(&mut self, slot: usize, status: S) -> Outcome {
        let Some(state) = self.slots.get_mut(slot) else { return Outcome::Unknown };
        match core::mem::replace(state, Slot::Free) {
            Slot::InFlight { buffer, waker } => {
                self.completed += 1;
                *state = Slot::Done { buffer, status };
                if let Some(waker) = waker {
                    waker.wake();
                }
                Outcome::Delivered
            }
            Slot::Abandoned { .. } => {
                self.completed += 1;
                self.wake_space_waiters();
                Outcome::Discarded
            }
            other => {
                *state = other;
                Outcome::Unknown
            }
        }
    }

    /// The outcome of the request in `slot` once done (freeing the slot),
    /// else registers the task to be woken by `complete`.
    pub fn poll_done(&mut self, slot: usize, cx: &mut Context<'_>) -> Poll<(S, Option<IoBuf>)> {
        match core::mem::replace(&mut self.slots[slot], Slot::Free) {
            Slot::Done { buffer, status } => {
                self.wake_space_waiters();
                Poll::Ready((status, buffer))
            }
            Slot::InFlight { buffer, .. } => {
                self.slots[slot] = Slot::InFlight { buffer, waker: Some(cx.waker().clone()) };
                Poll::Pending
            }
            other => {
                self.slots[slot] = other;
                Poll::Pending
            }
        }
    }

    /// The future waiting on `slot` was dropped.
    pub fn abandon(&mut self, slot: usize) {
        self.slots[slot] = match core::mem::replace(&mut self.slots[slot], Slot::Free) {
            Slot::InFlight { buffer, .. } => Slot::Abandoned { _kept_until_completion: buffer },
            Slot::Done { .. } | Slot::Free | Slot::Abandoned { .. } => Slot::Free,
        };
        self.wake_space_waiters();
    }

    fn wake_space_waiters(&mut self) {
        for waker in self.space_waiters.drain(..) {
            waker.wake();
        }
    }
}

/// Calls `abandon` on drop unless disarmed: hold one across the wait for a
/// request's completion.
pub struct AbandonOnDrop<F: FnMut()> {
    abandon: Option<F>,
}

impl<F: FnMut()> AbandonOnDrop<F> {
    pub fn new(abandon: F) -> Self {
        Self { abandon: Some(abandon) }
    }

    /// The request completed: nothing to abandon.
    pub fn disarm(mut self) {
        self.abandon = None;
    }
}

impl<F: FnMut()> Drop for AbandonOnDrop<F> {
    fn drop(&mut self) {
        if let Some(mut abandon) = self.abandon.take() {
            abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn context() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    #[test]
    fn request_lifecycle() {
        let (wakes, waker) = context();
        let mut cx = Context::from_waker(&waker);
        let mut slots = RequestSlots::<u8>::new(1);
        assert_eq!(slots.poll_free(&mut cx, true), Poll::Ready(0));
        slots.start(0, Some(IoBuf::zeroed(512)));
        assert_eq!(slots.poll_free(&mut cx, true), Poll::Pending, "the only slot is busy");
        assert!(slots.poll_done(0, &mut cx).is_pending());
        assert_eq!(slots.complete(0, 7), Outcome::Delivered);
        let Poll::Ready((status, buffer)) = slots.poll_done(0, &mut cx) else { panic!("done") };
        assert_eq!((status, buffer.map(|b| b.len())), (7, Some(512)));
        assert!(wakes.0.load(Ordering::SeqCst) >= 2, "the request and the space waiter were woken");
        assert_eq!(slots.poll_free(&mut cx, true), Poll::Ready(0));
        assert_eq!(slots.completed(), 1);
    }

    #[test]
    fn abandoned_request_keeps_its_buffer_until_completion() {
        let (_, waker) = context();
        let mut cx = Context::from_waker(&waker);
        let mut slots = RequestSlots::<u8>::new(1);
        slots.start(0, Some(IoBuf::zeroed(4096)));
        slots.abandon(0);
        assert_eq!(slots.poll_free(&mut cx, true), Poll::Pending, "still owned by the device");
        assert_eq!(slots.complete(0, 0), Outcome::Discarded);
        assert_eq!(slots.poll_free(&mut cx, true), Poll::Ready(0));
    }

    #[test]
    fn unknown_completions_are_reported() {
        let mut slots = RequestSlots::<u8>::new(2);
        assert_eq!(slots.complete(1, 0), Outcome::Unknown);
        assert_eq!(slots.complete(9, 0), Outcome::Unknown);
    }

    #[test]
    fn guard_runs_unless_disarmed() {
        let calls = AtomicUsize::new(0);
        drop(AbandonOnDrop::new(|| {
            calls.fetch_add(1, Ordering::SeqCst);
        }));
        AbandonOnDrop::new(|| {
            calls.fetch_add(10, Ordering::SeqCst);
        })
        .disarm();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
