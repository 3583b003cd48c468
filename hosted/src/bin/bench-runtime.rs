//! Micro-benchmarks of the runtime on the host. Run with
//! `cargo run --release -p hosted --bin bench-runtime`; prints a Markdown
//! table, each row the median of 5 runs.

use hosted::Runtime;
use runtime::clock::FakeClock;
use runtime::executor::Executor;
use runtime::timers::{Sleep, Timers};
use runtime::yield_now;
use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

const RUNS: usize = 5;

/// One benchmark run: (total ns, operations).
type Bench = fn() -> (u128, u64);

/// Runs `bench` (which returns total ns and operation count) `RUNS` times and
/// returns the median ns per operation.
fn median_ns_per_op(mut bench: impl FnMut() -> (u128, u64)) -> f64 {
    let mut samples: Vec<f64> = (0..RUNS)
        .map(|_| {
            let (ns, ops) = bench();
            ns as f64 / ops as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[RUNS / 2]
}

fn run_until_idle(exec: &Executor) {
    while exec.has_ready() {
        exec.run_ready();
    }
}

fn yield_loop() -> (u128, u64) {
    const YIELDS: u64 = 1_000_000;
    let exec = Executor::new();
    drop(exec.spawn(async {
        for _ in 0..YIELDS {
            yield_now().await;
        }
    }));
    let start = Instant::now();
    run_until_idle(&exec);
    (start.elapsed().as_nanos(), YIELDS)
}

/// Two tasks hand a turn back and forth; each hand-off is one switch.
fn ping_pong() -> (u128, u64) {
    const ROUNDS: u64 = 500_000;
    struct Court {
        turn: Cell<usize>,
        wakers: RefCell<[Option<Waker>; 2]>,
    }
    let court = Rc::new(Court { turn: Cell::new(0), wakers: RefCell::new([None, None]) });
    let exec = Executor::new();
    for me in 0..2 {
        let court = court.clone();
        drop(exec.spawn(async move {
            for _ in 0..ROUNDS {
                poll_fn(|cx| {
                    if court.turn.get() == me {
                        Poll::Ready(())
                    } else {
                        court.wakers.borrow_mut()[me] = Some(cx.waker().clone());
                        Poll::Pending
                    }
                })
                .await;
                court.turn.set(1 - me);
                let other = court.wakers.borrow_mut()[1 - me].take();
                if let Some(waker) = other {
                    waker.wake();
                }
            }
        }));
    }
    let start = Instant::now();
    run_until_idle(&exec);
    (start.elapsed().as_nanos(), 2 * ROUNDS)
}

fn spawn_join() -> (u128, u64) {
    const TASKS: u64 = 100_000;
    let mut rt = Runtime::new();
    let spawner = rt.spawner();
    let start = Instant::now();
    let sum = rt.block_on(async move {
        let handles: Vec<_> = (0..TASKS).map(|i| spawner.spawn(async move { i })).collect();
        let mut sum = 0;
        for handle in handles {
            sum += handle.await;
        }
        sum
    });
    let ns = start.elapsed().as_nanos();
    std::hint::black_box(sum);
    (ns, TASKS)
}

/// Registers timers (first poll), fires them all and completes them.
fn timers_insert_fire() -> (u128, u64) {
    const TIMERS: u64 = 100_000;
    let clock = Arc::new(FakeClock::new(0));
    let timers = Timers::new(clock.clone());
    let mut cx = Context::from_waker(Waker::noop());
    let start = Instant::now();
    let mut sleeps: Vec<Sleep> = (0..TIMERS).map(|i| timers.sleep_until(1 + (i * 7919) % TIMERS)).collect();
    for sleep in &mut sleeps {
        let _ = Pin::new(sleep).poll(&mut cx);
    }
    clock.set(TIMERS);
    let fired = timers.fire_expired();
    for sleep in &mut sleeps {
        let _ = Pin::new(sleep).poll(&mut cx);
    }
    drop(sleeps);
    let ns = start.elapsed().as_nanos();
    std::hint::black_box(fired);
    (ns, TIMERS)
}

fn main() {
    let rows: [(&str, &str, Bench); 4] = [
        ("task switch: 1 task yielding 1,000,000x", "ns/switch", yield_loop),
        ("task switch: 2 tasks ping-pong (1,000,000 switches)", "ns/switch", ping_pong),
        ("spawn + join (100k tasks)", "ns/task", spawn_join),
        ("timer insert + fire (100k timers)", "ns/timer", timers_insert_fire),
    ];
    println!("| benchmark | median of {RUNS} | unit |");
    println!("|---|---:|---|");
    for (name, unit, bench) in rows {
        println!("| {name} | {:.1} | {unit} |", median_ns_per_op(bench));
    }
}
