//! A single-threaded cooperative executor.
//!
//! Tasks are `!Send` futures owned by one [`Executor`] and polled on the
//! thread that owns it. Wakers, however, follow the std contract (`Send +
//! Sync`) and may be called from any thread: a wake pushes the task's id on a
//! shared ready queue behind a spin lock and calls the optional notifier, so a
//! hosted platform can unpark its sleeping thread. Interrupt handlers never
//! wake tasks directly (see [`crate::event`]).
//!
//! Tasks live in a slab indexed by the low 32 bits of their id; the high 32
//! bits are the slot's generation, so a stale wake for a finished task whose
//! slot was reused is ignored. A task is queued at most once until it is
//! polled (its `scheduled` flag).

use crate::timers::Timers;
use alloc_crate::boxed::Box;
use alloc_crate::collections::VecDeque;
use alloc_crate::rc::Rc;
use alloc_crate::sync::Arc;
use alloc_crate::task::Wake;
use alloc_crate::vec::Vec;
use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::Future;
use core::pin::{Pin, pin};
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

/// What the executor needs from the machine it runs on.
pub trait Platform {
    /// Turns pending hardware events into wakes, e.g. by calling
    /// [`crate::event::Event::deliver`] on each of the platform's events.
    fn poll_events(&mut self);

    /// Sleeps until an event arrives or the monotonic clock reaches
    /// `deadline_ns` (`None`: no timer pending). Returning early is allowed;
    /// sleeping through an event signalled after `poll_events` is not (the
    /// kernel checks its events with interrupts disabled, then `sti; hlt`).
    /// The kernel arms the APIC timer and halts; the host parks its thread.
    fn idle(&mut self, deadline_ns: Option<u64>);
}

/// Called on every wake that queues a task, from whichever thread woke it.
pub type Notifier = Arc<dyn Fn() + Send + Sync>;

type TaskId = u64;
type BoxedTask = Pin<Box<dyn Future<Output = ()>>>;

/// State shared between the executor and every waker.
struct Shared {
    ready: spin::Mutex<VecDeque<TaskId>>,
    notify: Option<Notifier>,
}

/// What a task's waker points at.
struct TaskHeader {
    id: TaskId,
    /// True while the task sits in the ready queue.
    scheduled: AtomicBool,
    shared: Arc<Shared>,
}

impl Wake for TaskHeader {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.shared.ready.lock().push_back(self.id);
            if let Some(notify) = &self.shared.notify {
                notify();
            }
        }
    }
}

struct Task {
    future: BoxedTask,
    header: Arc<TaskHeader>,
    waker: Waker,
}

enum SlotState {
    Free,
    /// Taken out of the slab while being polled.
    Running,
    Idle(Task),
}

struct Slot {
    generation: u32,
    state: SlotState,
}

#[derive(Default)]
struct Slab {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

fn task_id(index: u32, generation: u32) -> TaskId {
    (u64::from(generation) << 32) | u64::from(index)
}

struct Inner {
    shared: Arc<Shared>,
    tasks: RefCell<Slab>,
    live_tasks: Cell<usize>,
    /// Ids taken from the shared queue for the current `run_ready` round;
    /// keeps its capacity so steady-state rounds do not allocate.
    round: RefCell<VecDeque<TaskId>>,
}

impl Inner {
    fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        let join = Rc::new(RefCell::new(JoinState { output: None, finished: false, waiter: None }));
        let task_join = join.clone();
        let future: BoxedTask = Box::pin(async move {
            let output = future.await;
            let waiter = {
                let mut state = task_join.borrow_mut();
                state.output = Some(output);
                state.finished = true;
                state.waiter.take()
            };
            if let Some(waiter) = waiter {
                waiter.wake();
            }
        });

        let mut slab = self.tasks.borrow_mut();
        let index = match slab.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(slab.slots.len()).expect("more than 2^32 live tasks");
                slab.slots.push(Slot { generation: 0, state: SlotState::Free });
                index
            }
        };
        let slot = &mut slab.slots[index as usize];
        let id = task_id(index, slot.generation);
        let header = Arc::new(TaskHeader { id, scheduled: AtomicBool::new(true), shared: self.shared.clone() });
        let waker = Waker::from(header.clone());
        slot.state = SlotState::Idle(Task { future, header, waker });
        drop(slab);
        self.live_tasks.set(self.live_tasks.get() + 1);
        self.shared.ready.lock().push_back(id);
        JoinHandle { state: join }
    }

    /// Polls task `id` once if it still exists. Returns whether it was polled.
    fn poll_task(&self, id: TaskId) -> bool {
        let index = (id & u64::from(u32::MAX)) as usize;
        let generation = (id >> 32) as u32;
        let mut task = {
            let mut slab = self.tasks.borrow_mut();
            let Some(slot) = slab.slots.get_mut(index) else {
                return false;
            };
            if slot.generation != generation || !matches!(slot.state, SlotState::Idle(_)) {
                return false;
            }
            match core::mem::replace(&mut slot.state, SlotState::Running) {
                SlotState::Idle(task) => task,
                _ => unreachable!("checked above"),
            }
        };
        // Cleared before polling so a wake during the poll queues it again.
        task.header.scheduled.store(false, Ordering::SeqCst);
        let mut cx = Context::from_waker(&task.waker);
        let finished = task.future.as_mut().poll(&mut cx).is_ready();

        let mut slab = self.tasks.borrow_mut();
        let slot = &mut slab.slots[index];
        if finished {
            slot.state = SlotState::Free;
            slot.generation = slot.generation.wrapping_add(1);
            slab.free.push(index as u32);
            drop(slab);
            self.live_tasks.set(self.live_tasks.get() - 1);
            // The finished future is dropped here, outside the slab borrow.
            drop(task);
        } else {
            slot.state = SlotState::Idle(task);
        }
        true
    }
}

/// A single-threaded executor. Not `Send`: its tasks are polled on the thread
/// that created it.
pub struct Executor {
    inner: Rc<Inner>,
}

impl Default for Executor {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Executor").field("task_count", &self.task_count()).finish_non_exhaustive()
    }
}

impl Executor {
    /// An executor without a notifier: for platforms where only this thread
    /// (or interrupts, through events) wakes tasks.
    pub fn new() -> Self {
        Self::build(None)
    }

    /// An executor that calls `notify` on every wake that queues a task (and
    /// on wakes of the `block_on` future), so a platform sleeping in
    /// [`Platform::idle`] can be woken from another thread.
    pub fn with_notifier(notify: Notifier) -> Self {
        Self::build(Some(notify))
    }

    fn build(notify: Option<Notifier>) -> Self {
        Self {
            inner: Rc::new(Inner {
                shared: Arc::new(Shared { ready: spin::Mutex::new(VecDeque::new()), notify }),
                tasks: RefCell::new(Slab::default()),
                live_tasks: Cell::new(0),
                round: RefCell::new(VecDeque::new()),
            }),
        }
    }

    /// A handle that spawns onto this executor, usable from inside tasks.
    pub fn spawner(&self) -> Spawner {
        Spawner { inner: self.inner.clone() }
    }

    /// Spawns `future` as a new task; it first runs at the next
    /// [`Executor::run_ready`].
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        self.inner.spawn(future)
    }

    /// Polls, once each, the tasks that are ready now. Tasks woken during
    /// this round run in the next one. Returns how many polls ran.
    pub fn run_ready(&self) -> usize {
        let inner = &*self.inner;
        inner.round.borrow_mut().append(&mut inner.shared.ready.lock());
        let mut polls = 0;
        loop {
            let next = inner.round.borrow_mut().pop_front();
            let Some(id) = next else { break };
            if inner.poll_task(id) {
                polls += 1;
            }
        }
        polls
    }

    /// True if some task is woken and waiting to be polled.
    pub fn has_ready(&self) -> bool {
        !self.inner.shared.ready.lock().is_empty()
    }

    /// Number of live (spawned and not finished) tasks.
    pub fn task_count(&self) -> usize {
        self.inner.live_tasks.get()
    }

    /// Runs `future` to completion on this thread, running spawned tasks,
    /// platform events and timers meanwhile, and idling the platform when
    /// nothing is ready.
    pub fn block_on<F: Future>(&self, future: F, platform: &mut dyn Platform, timers: &Timers) -> F::Output {
        let mut future = pin!(future);
        let main = Arc::new(MainWake { woken: AtomicBool::new(true), notify: self.inner.shared.notify.clone() });
        let waker = Waker::from(main.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            if main.woken.swap(false, Ordering::AcqRel)
                && let Poll::Ready(output) = future.as_mut().poll(&mut cx)
            {
                return output;
            }
            self.run_ready();
            platform.poll_events();
            timers.fire_expired();
            if !main.woken.load(Ordering::Acquire) && !self.has_ready() {
                platform.idle(timers.next_deadline_ns());
            }
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Tasks may hold Spawners (and so the executor's Inner): drop them
        // explicitly to break the cycle, outside the slab borrow.
        let tasks = core::mem::take(&mut *self.inner.tasks.borrow_mut());
        self.inner.live_tasks.set(0);
        drop(tasks);
    }
}

/// The waker of the `block_on` future.
struct MainWake {
    woken: AtomicBool,
    notify: Option<Notifier>,
}

impl Wake for MainWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(notify) = &self.notify {
            notify();
        }
    }
}

/// Spawns tasks onto an [`Executor`] from inside its tasks. Cheap to clone;
/// not `Send`.
#[derive(Clone)]
pub struct Spawner {
    inner: Rc<Inner>,
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner").finish_non_exhaustive()
    }
}

impl Spawner {
    /// Spawns `future` as a new task on the executor.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        self.inner.spawn(future)
    }
}

struct JoinState<T> {
    output: Option<T>,
    finished: bool,
    waiter: Option<Waker>,
}

/// Resolves to a spawned task's output. Dropping it detaches the task, which
/// keeps running.
pub struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("finished", &self.is_finished()).finish()
    }
}

impl<T> JoinHandle<T> {
    /// True once the task has returned.
    pub fn is_finished(&self) -> bool {
        self.state.borrow().finished
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    /// # Panics
    /// If polled again after it returned the output.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.state.borrow_mut();
        if state.finished {
            let output = state.output.take().expect("JoinHandle polled after completion");
            return Poll::Ready(output);
        }
        match &state.waiter {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waiter = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FakeClock};
    use crate::yield_now;
    use alloc_crate::vec;
    use core::time::Duration;
    use std::sync::Mutex;

    /// Runs `exec` until no task is ready.
    fn run_until_idle(exec: &Executor) -> usize {
        let mut polls = 0;
        while exec.has_ready() {
            polls += exec.run_ready();
        }
        polls
    }

    #[test]
    fn thousand_tasks_complete() {
        let exec = Executor::new();
        let done = Rc::new(Cell::new(0));
        for i in 0..1000 {
            let done = done.clone();
            exec.spawn(async move {
                for _ in 0..(i % 3) {
                    yield_now().await;
                }
                done.set(done.get() + 1);
            });
        }
        assert_eq!(exec.task_count(), 1000);
        run_until_idle(&exec);
        assert_eq!(done.get(), 1000);
        assert_eq!(exec.task_count(), 0);
    }

    #[test]
    fn join_handle_returns_value() {
        let exec = Executor::new();
        let spawner = exec.spawner();
        let outer = exec.spawn(async move {
            let inner = spawner.spawn(async { 40 });
            inner.await + 2
        });
        assert!(!outer.is_finished());
        run_until_idle(&exec);
        assert!(outer.is_finished());
        let mut outer = pin!(outer);
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(outer.as_mut().poll(&mut cx), Poll::Ready(42));
    }

    #[test]
    fn tasks_spawn_tasks_and_detach() {
        let exec = Executor::new();
        let spawner = exec.spawner();
        let count = Rc::new(Cell::new(0));
        let c = count.clone();
        drop(exec.spawn(async move {
            for _ in 0..10 {
                let c = c.clone();
                let nested = spawner.clone();
                // Detached: the handle is dropped at once.
                drop(spawner.spawn(async move {
                    yield_now().await;
                    let c2 = c.clone();
                    nested.spawn(async move { c2.set(c2.get() + 1) }).await;
                    c.set(c.get() + 1);
                }));
            }
        }));
        run_until_idle(&exec);
        assert_eq!(count.get(), 20);
        assert_eq!(exec.task_count(), 0);
    }

    #[test]
    fn yielding_task_is_polled_once_per_round() {
        let exec = Executor::new();
        let handle = exec.spawn(async {
            for _ in 0..5 {
                yield_now().await;
            }
        });
        for _ in 0..5 {
            assert_eq!(exec.run_ready(), 1);
            assert!(exec.has_ready());
        }
        assert_eq!(exec.run_ready(), 1);
        assert!(handle.is_finished());
        assert!(!exec.has_ready());
        assert_eq!(exec.run_ready(), 0);
    }

    #[test]
    fn duplicate_wakes_queue_once_and_stale_wakes_are_ignored() {
        let exec = Executor::new();
        let slot: Rc<RefCell<Option<Waker>>> = Rc::default();
        let s = slot.clone();
        let handle = exec.spawn(core::future::poll_fn(move |cx| {
            if s.borrow().is_some() {
                return Poll::Ready(());
            }
            *s.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }));
        assert_eq!(exec.run_ready(), 1);
        let waker = slot.borrow().clone().unwrap();
        waker.wake_by_ref();
        waker.wake_by_ref();
        assert_eq!(exec.run_ready(), 1);
        assert!(handle.is_finished());
        // The slot is reused by a new task; the old waker must not poll it.
        let polls = Rc::new(Cell::new(0));
        let p = polls.clone();
        exec.spawn(core::future::poll_fn(move |_| {
            p.set(p.get() + 1);
            Poll::<()>::Pending
        }));
        assert_eq!(exec.run_ready(), 1);
        waker.wake();
        assert_eq!(exec.run_ready(), 0);
        assert_eq!(polls.get(), 1);
        assert_eq!(exec.task_count(), 1);
    }

    #[test]
    fn wake_from_another_thread_calls_notifier() {
        let notified = Arc::new(AtomicBool::new(false));
        let n = notified.clone();
        let exec = Executor::with_notifier(Arc::new(move || n.store(true, Ordering::SeqCst)));
        let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
        let s = slot.clone();
        let handle = exec.spawn(core::future::poll_fn(move |cx| {
            let mut slot = s.lock().unwrap();
            if slot.is_some() {
                return Poll::Ready(());
            }
            *slot = Some(cx.waker().clone());
            Poll::Pending
        }));
        exec.run_ready();
        assert!(!exec.has_ready());
        let waker = slot.lock().unwrap().clone().unwrap();
        std::thread::spawn(move || waker.wake()).join().unwrap();
        assert!(notified.load(Ordering::SeqCst));
        assert!(exec.has_ready());
        exec.run_ready();
        assert!(handle.is_finished());
    }

    /// Advances a fake clock to the next deadline when idle, recording calls.
    struct FakePlatform {
        clock: Arc<FakeClock>,
        idles: Vec<Option<u64>>,
        polls: usize,
    }

    impl Platform for FakePlatform {
        fn poll_events(&mut self) {
            self.polls += 1;
        }

        fn idle(&mut self, deadline_ns: Option<u64>) {
            self.idles.push(deadline_ns);
            let deadline = deadline_ns.expect("idle without a timer would hang");
            self.clock.set(deadline);
        }
    }

    #[test]
    fn block_on_with_fake_platform() {
        let clock = Arc::new(FakeClock::new(0));
        let timers = Timers::new(clock.clone());
        let mut platform = FakePlatform { clock: clock.clone(), idles: vec![], polls: 0 };
        let exec = Executor::new();
        let spawner = exec.spawner();
        let t = timers.clone();
        let output = exec.block_on(
            async move {
                let t2 = t.clone();
                let child = spawner.spawn(async move {
                    t2.sleep(Duration::from_nanos(300)).await;
                    7
                });
                t.sleep(Duration::from_nanos(100)).await;
                child.await + 1
            },
            &mut platform,
            &timers,
        );
        assert_eq!(output, 8);
        assert_eq!(platform.idles, vec![Some(100), Some(300)]);
        assert!(platform.polls >= 2);
        assert_eq!(clock.now_ns(), 300);
        assert_eq!(timers.pending(), 0);
    }

    #[test]
    fn dropping_executor_drops_tasks_holding_spawners() {
        let dropped = Rc::new(Cell::new(false));
        struct SetOnDrop(Rc<Cell<bool>>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let exec = Executor::new();
        let spawner = exec.spawner();
        let guard = SetOnDrop(dropped.clone());
        drop(exec.spawn(async move {
            let _keep = (guard, spawner);
            core::future::pending::<()>().await;
        }));
        exec.run_ready();
        drop(exec);
        assert!(dropped.get());
    }
}
