//! The one timer queue: sleeps, timeouts and intervals.
//!
//! Deadlines are absolute monotonic nanoseconds from the runtime's
//! [`Clock`]. Pending timers sit in a `BTreeMap` keyed by `(deadline_ns,
//! seq)`, so equal deadlines fire in registration order, the earliest
//! deadline is found in O(log n) for [`Platform::idle`], and a cancelled
//! [`Sleep`] removes its own entry on drop (nothing leaks).
//!
//! [`Platform::idle`]: crate::executor::Platform::idle

use crate::clock::Clock;
use alloc_crate::boxed::Box;
use alloc_crate::collections::BTreeMap;
use alloc_crate::sync::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

type TimerKey = (u64, u64);

#[derive(Default)]
struct TimerQueue {
    wakers: BTreeMap<TimerKey, Waker>,
    next_seq: u64,
}

/// Handle to the timer queue and its clock. Cheap to clone; all clones share
/// one queue.
#[derive(Clone)]
pub struct Timers {
    queue: Arc<spin::Mutex<TimerQueue>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Timers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers").field("now_ns", &self.now_ns()).field("pending", &self.pending()).finish()
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Timers {
    /// An empty timer queue driven by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { queue: Arc::new(spin::Mutex::new(TimerQueue::default())), clock }
    }

    /// The clock's current time, in nanoseconds since boot.
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// A future that completes `d` from now.
    pub fn sleep(&self, d: Duration) -> Sleep {
        self.sleep_until(self.now_ns().saturating_add(duration_ns(d)))
    }

    /// A future that completes once the clock reaches `deadline_ns`.
    pub fn sleep_until(&self, deadline_ns: u64) -> Sleep {
        Sleep { timers: self.clone(), deadline_ns, key: None }
    }

    /// Runs `future` for at most `d`: `Err(Elapsed)` if the time runs out
    /// first (the future is then dropped with the `Timeout`).
    pub fn timeout<F: Future>(&self, d: Duration, future: F) -> Timeout<F> {
        Timeout { future: Box::pin(future), sleep: self.sleep(d) }
    }

    /// Ticks every `period`, the first tick one period from now.
    ///
    /// # Panics
    /// If `period` is zero.
    pub fn interval(&self, period: Duration) -> Interval {
        let period_ns = duration_ns(period);
        assert!(period_ns > 0, "interval period must be non-zero");
        Interval { timers: self.clone(), period_ns, next_deadline_ns: self.now_ns().saturating_add(period_ns) }
    }

    /// The earliest pending deadline, for the platform's idle sleep.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        self.queue.lock().wakers.first_key_value().map(|(&(deadline, _), _)| deadline)
    }

    /// Wakes every timer whose deadline is at or before now and removes it
    /// from the queue. Returns how many fired. Wakers run outside the lock.
    pub fn fire_expired(&self) -> usize {
        let now = self.now_ns();
        let mut fired = 0;
        loop {
            let waker = {
                let mut queue = self.queue.lock();
                match queue.wakers.first_entry() {
                    Some(entry) if entry.key().0 <= now => entry.remove(),
                    _ => break,
                }
            };
            waker.wake();
            fired += 1;
        }
        fired
    }

    /// Number of registered (pending) timers.
    pub fn pending(&self) -> usize {
        self.queue.lock().wakers.len()
    }
}

/// Future returned by [`Timers::sleep`] and [`Timers::sleep_until`].
/// Registers in the queue on first poll; dropping it cancels the timer.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    timers: Timers,
    deadline_ns: u64,
    key: Option<TimerKey>,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline_ns", &self.deadline_ns)
            .field("registered", &self.key.is_some())
            .finish()
    }
}

impl Sleep {
    /// The absolute deadline, in nanoseconds since boot.
    pub fn deadline_ns(&self) -> u64 {
        self.deadline_ns
    }

    fn deregister(&mut self) {
        if let Some(key) = self.key.take() {
            self.timers.queue.lock().wakers.remove(&key);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.timers.now_ns() >= self.deadline_ns {
            self.deregister();
            return Poll::Ready(());
        }
        let mut queue = self.timers.queue.lock();
        if let Some(key) = self.key
            && let Some(waker) = queue.wakers.get_mut(&key)
        {
            if !waker.will_wake(cx.waker()) {
                *waker = cx.waker().clone();
            }
            return Poll::Pending;
        }
        // First poll (or the entry fired early, which a monotonic clock
        // rules out): register.
        let key = (self.deadline_ns, queue.next_seq);
        queue.next_seq += 1;
        queue.wakers.insert(key, cx.waker().clone());
        drop(queue);
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.deregister();
    }
}

/// The error of a [`Timeout`] whose time ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl core::error::Error for Elapsed {}

/// Future returned by [`Timers::timeout`]. The inner future is boxed so that
/// this crate needs no unsafe pin projection; one allocation per timeout is
/// small next to the I/O it guards.
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F: Future> {
    future: Pin<Box<F>>,
    sleep: Sleep,
}

impl<F: Future> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout").field("sleep", &self.sleep).finish_non_exhaustive()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(output) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(&mut self.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Periodic ticks from [`Timers::interval`]. A tick that is late by several
/// periods skips to the next future period instead of bursting.
#[derive(Debug)]
pub struct Interval {
    timers: Timers,
    period_ns: u64,
    next_deadline_ns: u64,
}

impl Interval {
    /// Waits for the next tick and returns its deadline (ns since boot).
    pub async fn tick(&mut self) -> u64 {
        let deadline = self.next_deadline_ns;
        self.timers.sleep_until(deadline).await;
        let now = self.timers.now_ns();
        let missed = (now - deadline) / self.period_ns;
        self.next_deadline_ns = deadline.saturating_add((missed + 1).saturating_mul(self.period_ns));
        deadline
    }

    /// The period in nanoseconds.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;
    use crate::executor::Executor;
    use alloc_crate::rc::Rc;
    use alloc_crate::vec::Vec;
    use core::cell::RefCell;

    fn setup() -> (Arc<FakeClock>, Timers, Executor) {
        let clock = Arc::new(FakeClock::new(1_000));
        let timers = Timers::new(clock.clone());
        (clock, timers, Executor::new())
    }

    #[test]
    fn sleeps_fire_in_deadline_order_and_equal_deadlines_in_fifo() {
        let (clock, timers, exec) = setup();
        let order = Rc::new(RefCell::new(Vec::new()));
        for (name, delay_ns) in [("c", 300), ("a", 100), ("b1", 200), ("b2", 200)] {
            let (t, o) = (timers.clone(), order.clone());
            drop(exec.spawn(async move {
                t.sleep(Duration::from_nanos(delay_ns)).await;
                o.borrow_mut().push(name);
            }));
        }
        exec.run_ready();
        assert_eq!(timers.pending(), 4);
        assert_eq!(timers.next_deadline_ns(), Some(1_100));
        assert_eq!(timers.fire_expired(), 0);
        clock.set(1_100);
        assert_eq!(timers.fire_expired(), 1);
        exec.run_ready();
        assert_eq!(*order.borrow(), ["a"]);
        assert_eq!(timers.next_deadline_ns(), Some(1_200));
        clock.set(5_000);
        assert_eq!(timers.fire_expired(), 3);
        exec.run_ready();
        assert_eq!(*order.borrow(), ["a", "b1", "b2", "c"]);
        assert_eq!(timers.pending(), 0);
        assert_eq!(timers.next_deadline_ns(), None);
    }

    #[test]
    fn dropped_sleep_cancels_its_timer() {
        let (clock, timers, _exec) = setup();
        let mut cx = Context::from_waker(Waker::noop());
        let mut sleeps: Vec<Sleep> = (0..100).map(|i| timers.sleep_until(2_000 + i)).collect();
        for sleep in &mut sleeps {
            assert!(Pin::new(sleep).poll(&mut cx).is_pending());
        }
        // Polling again with the same waker does not register twice.
        assert!(Pin::new(&mut sleeps[0]).poll(&mut cx).is_pending());
        assert_eq!(timers.pending(), 100);
        sleeps.truncate(10);
        assert_eq!(timers.pending(), 10);
        clock.set(10_000);
        assert_eq!(timers.fire_expired(), 10);
        for sleep in &mut sleeps {
            assert!(Pin::new(sleep).poll(&mut cx).is_ready());
        }
        drop(sleeps);
        assert_eq!(timers.pending(), 0);
    }

    #[test]
    fn sleep_in_the_past_is_ready_without_registering() {
        let (_clock, timers, _exec) = setup();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut timers.sleep_until(10)).poll(&mut cx).is_ready());
        assert!(Pin::new(&mut timers.sleep(Duration::ZERO)).poll(&mut cx).is_ready());
        assert_eq!(timers.pending(), 0);
    }

    #[test]
    fn timeout_both_ways() {
        let (clock, timers, exec) = setup();
        let t = timers.clone();
        let fast = exec.spawn(async move {
            let t2 = t.clone();
            t.timeout(Duration::from_nanos(500), async move {
                t2.sleep(Duration::from_nanos(100)).await;
                "done"
            })
            .await
        });
        let t = timers.clone();
        let slow = exec.spawn(async move { t.timeout(Duration::from_nanos(200), core::future::pending::<()>()).await });
        exec.run_ready();
        // fast: its inner sleep and its deadline; slow: its deadline.
        assert_eq!(timers.pending(), 3);
        clock.advance(100);
        timers.fire_expired();
        exec.run_ready();
        assert!(fast.is_finished());
        clock.advance(100);
        timers.fire_expired();
        exec.run_ready();
        assert!(slow.is_finished());
        assert_eq!(timers.pending(), 0, "finished timeouts leave no timers");
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(Pin::new(&mut { fast }).poll(&mut cx), Poll::Ready(Ok("done")));
        assert_eq!(Pin::new(&mut { slow }).poll(&mut cx), Poll::Ready(Err(Elapsed)));
        assert_eq!(alloc_crate::format!("{Elapsed}"), "deadline elapsed");
    }

    #[test]
    fn interval_ticks_and_skips_missed_periods() {
        let (clock, timers, exec) = setup();
        let ticks = Rc::new(RefCell::new(Vec::new()));
        let (t, k) = (timers.clone(), ticks.clone());
        drop(exec.spawn(async move {
            let mut interval = t.interval(Duration::from_nanos(100));
            loop {
                let deadline = interval.tick().await;
                k.borrow_mut().push(deadline);
            }
        }));
        exec.run_ready();
        assert_eq!(timers.next_deadline_ns(), Some(1_100));
        clock.set(1_100);
        timers.fire_expired();
        exec.run_ready();
        assert_eq!(timers.next_deadline_ns(), Some(1_200));
        // Late by 3.5 periods: one tick, then the next future period.
        clock.set(1_550);
        timers.fire_expired();
        exec.run_ready();
        assert_eq!(*ticks.borrow(), [1_100, 1_200]);
        assert_eq!(timers.next_deadline_ns(), Some(1_600));
        clock.set(1_600);
        timers.fire_expired();
        exec.run_ready();
        assert_eq!(*ticks.borrow(), [1_100, 1_200, 1_600]);
    }

    #[test]
    fn rewaking_with_new_waker_updates_registration() {
        let (clock, timers, _exec) = setup();
        let woken = Arc::new(core::sync::atomic::AtomicBool::new(false));
        struct Flag(Arc<core::sync::atomic::AtomicBool>);
        impl alloc_crate::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, core::sync::atomic::Ordering::SeqCst);
            }
        }
        let flag_waker = Waker::from(Arc::new(Flag(woken.clone())));
        let mut sleep = timers.sleep(Duration::from_nanos(10));
        assert!(Pin::new(&mut sleep).poll(&mut Context::from_waker(Waker::noop())).is_pending());
        assert!(Pin::new(&mut sleep).poll(&mut Context::from_waker(&flag_waker)).is_pending());
        assert_eq!(timers.pending(), 1);
        clock.advance(10);
        assert_eq!(timers.fire_expired(), 1);
        assert!(woken.load(core::sync::atomic::Ordering::SeqCst));
    }
}
