//! The runtime on a real clock and real threads.

use hosted::Runtime;
use runtime::event::Event;
use runtime::timers::Elapsed;
use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

#[test]
fn sleep_10ms_is_never_early_and_not_lost() {
    let mut rt = Runtime::new();
    let timers = rt.timers();
    let start = Instant::now();
    rt.block_on(timers.sleep(Duration::from_millis(10)));
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(10), "{elapsed:?}");
    // Loose on purpose: it catches a lost wakeup without flaking when a
    // shared CI machine descheduled us for a while.
    assert!(elapsed < Duration::from_millis(250), "{elapsed:?}");
    assert_eq!(timers.pending(), 0);
}

#[test]
fn thousand_tasks_with_random_sleeps_complete() {
    let mut rt = Runtime::new();
    let spawner = rt.spawner();
    let timers = rt.timers();
    let mut delays = [0u8; 1000];
    hosted::rng::fill(&mut delays).unwrap();
    let done = Rc::new(Cell::new(0));
    let handles: Vec<_> = delays
        .iter()
        .enumerate()
        .map(|(i, &delay)| {
            let (timers, done) = (timers.clone(), done.clone());
            // 0..=20 ms
            let delay = Duration::from_micros(u64::from(delay) * 80);
            spawner.spawn(async move {
                timers.sleep(delay).await;
                done.set(done.get() + 1);
                i
            })
        })
        .collect();
    let start = Instant::now();
    let sum = rt.block_on(async move {
        let mut sum = 0;
        for handle in handles {
            sum += handle.await;
        }
        sum
    });
    assert_eq!(sum, (0..1000).sum::<usize>());
    assert_eq!(done.get(), 1000);
    assert_eq!(rt.executor().task_count(), 0);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn std_thread_signals_event_and_waiting_task_completes() {
    let mut rt = Runtime::new();
    let event = Arc::new(Event::new());
    let line = rt.platform_mut().add_event(event.clone());
    // Taken before the thread starts its 20 ms, so the bound below holds.
    let start = Instant::now();
    let raiser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        line.raise();
    });
    // No timers pending: the executor parks with no deadline, so only the
    // raised interrupt can end the wait.
    rt.block_on(event.wait());
    assert!(start.elapsed() >= Duration::from_millis(20));
    raiser.join().unwrap();
    assert!(!event.is_pending());
}

#[test]
fn timeout_fires() {
    let mut rt = Runtime::new();
    let timers = rt.timers();
    let start = Instant::now();
    let result = rt.block_on(timers.timeout(Duration::from_millis(15), std::future::pending::<()>()));
    assert_eq!(result, Err(Elapsed));
    assert!(start.elapsed() >= Duration::from_millis(15));
    let ok = rt.block_on(timers.timeout(Duration::from_secs(5), async { 3 }));
    assert_eq!(ok, Ok(3));
    assert_eq!(timers.pending(), 0);
}

#[test]
fn cross_thread_waker_wakes_parked_executor() {
    let mut rt = Runtime::new();
    let slot: Arc<Mutex<(bool, Option<Waker>)>> = Arc::default();
    let s = slot.clone();
    let task = rt.spawner().spawn(poll_fn(move |cx| {
        let mut state = s.lock().unwrap();
        if state.0 {
            return Poll::Ready("woken");
        }
        state.1 = Some(cx.waker().clone());
        Poll::Pending
    }));
    let s = slot.clone();
    let waker_thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        let waker = {
            let mut state = s.lock().unwrap();
            state.0 = true;
            state.1.take().expect("task registered its waker")
        };
        waker.wake();
    });
    let start = Instant::now();
    assert_eq!(rt.block_on(task), "woken");
    assert!(start.elapsed() >= Duration::from_millis(20));
    waker_thread.join().unwrap();
}

#[test]
fn interval_ticks_on_real_clock() {
    let mut rt = Runtime::new();
    let timers = rt.timers();
    let start = Instant::now();
    let ticks = rt.block_on(async move {
        let mut interval = timers.interval(Duration::from_millis(2));
        let mut ticks = Vec::new();
        for _ in 0..5 {
            ticks.push(interval.tick().await);
        }
        ticks
    });
    assert!(ticks.windows(2).all(|w| w[1] - w[0] >= 2_000_000));
    assert!(start.elapsed() >= Duration::from_millis(10));
}
