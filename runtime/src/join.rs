//! Futures at once on one task: [`join`] polls two until both are done, so
//! one's I/O proceeds while the other waits (e.g. reading the next chunk of
//! an object from disk while the current one is sent); [`join_all`] does
//! the same for any number of one kind (e.g. a store's write-back writes).

use alloc_crate::boxed::Box;
use alloc_crate::vec::Vec;
use core::future::{Future, poll_fn};
use core::pin::{Pin, pin};
use core::task::Poll;

/// Runs `a` and `b` concurrently and returns both outputs.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut out_a, mut out_b) = (None, None);
    poll_fn(|cx| {
        if out_a.is_none()
            && let Poll::Ready(value) = a.as_mut().poll(cx)
        {
            out_a = Some(value);
        }
        if out_b.is_none()
            && let Poll::Ready(value) = b.as_mut().poll(cx)
        {
            out_b = Some(value);
        }
        match (out_a.take(), out_b.take()) {
            (Some(a), Some(b)) => Poll::Ready((a, b)),
            (a, b) => {
                (out_a, out_b) = (a, b);
                Poll::Pending
            }
        }
    })
    .await
}

/// Runs `futures` concurrently and returns their outputs in order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut done = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => done = false,
                }
            }
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yield_now;
    use core::cell::RefCell;
    use core::task::{Context, Waker};
    use std::vec::Vec;

    #[test]
    fn both_run_interleaved_and_both_outputs_come_back() {
        let log = RefCell::new(Vec::new());
        let task = |name: &'static str, steps: usize| {
            let log = &log;
            async move {
                for step in 0..steps {
                    log.borrow_mut().push((name, step));
                    yield_now().await;
                }
                name.len() * 10 + steps
            }
        };
        let mut future = pin!(join(task("a", 3), task("bb", 1)));
        let mut cx = Context::from_waker(Waker::noop());
        let output = loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                break output;
            }
        };
        assert_eq!(output, (13, 21));
        assert_eq!(*log.borrow(), [("a", 0), ("bb", 0), ("a", 1), ("a", 2)]);
    }

    #[test]
    fn all_run_interleaved_and_outputs_come_back_in_order() {
        let log = RefCell::new(Vec::new());
        let task = |name: usize, steps: usize| {
            let log = &log;
            async move {
                for step in 0..steps {
                    log.borrow_mut().push((name, step));
                    yield_now().await;
                }
                name * 10 + steps
            }
        };
        let mut future = pin!(join_all(std::vec![task(1, 2), task(2, 0), task(3, 1)]));
        let mut cx = Context::from_waker(Waker::noop());
        let output = loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                break output;
            }
        };
        assert_eq!(output, [12, 20, 31]);
        assert_eq!(*log.borrow(), [(1, 0), (3, 0), (1, 1)]);
    }
}
