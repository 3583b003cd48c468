//! The write cache in front of the store's data area: held writes are read
//! back, merged by address at a flush, never lost by a flush that was
//! dropped half way, and never vouched for by a flush before they are on
//! the device.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use fs::write_cache::{Cached, HELD_WRITE_MAX_BYTES};
use storage::block::{BlockDevice, BlockError, Geometry, IoBuf, IoResult, RamDisk};

const DATA_START: u64 = 16;

/// A RAM disk that counts writes and flushes and, while `gated`, leaves
/// every write pending until the gate opens.
struct Gated {
    disk: RamDisk,
    /// Writes started, and writes done.
    issued: Cell<u64>,
    writes: Cell<u64>,
    flushes: Cell<u64>,
    gated: Cell<bool>,
}

impl Gated {
    fn new() -> Self {
        Self {
            disk: RamDisk::new(4096, 1024),
            issued: Cell::new(0),
            writes: Cell::new(0),
            flushes: Cell::new(0),
            gated: Cell::new(false),
        }
    }

    fn on_disk(&self, lba: u64, blocks: usize) -> Vec<u8> {
        let (result, buf) = now(self.disk.read(lba, IoBuf::zeroed(blocks * 4096)));
        result.unwrap();
        buf.as_slice().to_vec()
    }
}

impl BlockDevice for Gated {
    fn geometry(&self) -> Geometry {
        self.disk.geometry()
    }

    fn read(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        self.disk.read(lba, buf)
    }

    async fn write(&self, lba: u64, buf: IoBuf) -> IoResult {
        self.issued.set(self.issued.get() + 1);
        std::future::poll_fn(|_| if self.gated.get() { Poll::Pending } else { Poll::Ready(()) }).await;
        self.writes.set(self.writes.get() + 1);
        self.disk.write(lba, buf).await
    }

    async fn flush(&self) -> Result<(), BlockError> {
        self.flushes.set(self.flushes.get() + 1);
        self.disk.flush().await
    }
}

fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

fn now<F: Future>(future: F) -> F::Output {
    match poll_once(pin!(future)) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("expected to complete at once"),
    }
}

fn page(fill: u8) -> IoBuf {
    IoBuf::from_slice(&[fill; 4096])
}

#[test]
fn held_writes_are_read_back_and_merged_at_the_flush() {
    let cached = Cached::new(Gated::new(), DATA_START);
    for (lba, fill) in [(20, 1), (21, 2), (22, 3), (30, 4)] {
        now(cached.write(lba, page(fill))).0.unwrap();
    }
    assert_eq!(cached.held(), (4 * 4096, 4));
    assert_eq!(cached.inner().writes.get(), 0);
    assert_eq!(cached.inner().on_disk(21, 1), vec![0; 4096]);
    // A read over held and unheld blocks: each block from where it is.
    now(cached.inner().disk.write(23, page(9))).0.unwrap();
    let (result, buf) = now(cached.read(20, IoBuf::zeroed(4 * 4096)));
    result.unwrap();
    let firsts: Vec<u8> = buf.as_slice().chunks(4096).map(|block| block[0]).collect();
    assert_eq!(firsts, [1, 2, 3, 9]);

    now(cached.flush()).unwrap();
    // Two writes (20..23 merged, and 30), then the device's flush.
    assert_eq!((cached.inner().writes.get(), cached.inner().flushes.get()), (2, 1));
    assert_eq!(cached.held(), (0, 0));
    assert_eq!(cached.inner().on_disk(22, 1), vec![3; 4096]);
    assert_eq!(cached.inner().on_disk(30, 1), vec![4; 4096]);
}

#[test]
fn large_journal_and_out_of_range_writes_are_not_held() {
    let cached = Cached::new(Gated::new(), DATA_START);
    let large = IoBuf::from_slice(&vec![5; HELD_WRITE_MAX_BYTES + 4096]);
    now(cached.write(100, large)).0.unwrap();
    now(cached.write(DATA_START - 1, page(6))).0.unwrap();
    assert_eq!(cached.held(), (0, 0));
    assert_eq!(cached.inner().writes.get(), 2);
    assert!(now(cached.write(1024, page(7))).0.is_err());
    assert_eq!(cached.held(), (0, 0));
    // A journal commit (a write and a flush) first writes what is held.
    now(cached.write(40, page(8))).0.unwrap();
    now(cached.write_durable(3, page(9))).0.unwrap();
    assert_eq!(cached.inner().on_disk(40, 1), vec![8; 4096]);
    assert_eq!(cached.held(), (0, 0));
}

#[test]
fn a_write_over_a_held_one_lands_after_it() {
    let cached = Cached::new(Gated::new(), DATA_START);
    now(cached.write(50, page(1))).0.unwrap();
    // Overlaps the held block 50: the held one is written first.
    now(cached.write(49, IoBuf::from_slice(&[2; 2 * 4096]))).0.unwrap();
    now(cached.flush()).unwrap();
    assert_eq!(cached.inner().on_disk(50, 1), vec![2; 4096]);
}

#[test]
fn a_flush_dropped_half_way_leaves_its_writes_to_the_next() {
    let cached = Cached::new(Gated::new(), DATA_START);
    now(cached.write(60, page(1))).0.unwrap();
    cached.inner().gated.set(true);
    {
        let mut flush = pin!(cached.flush());
        assert!(poll_once(flush.as_mut()).is_pending());
    }
    cached.inner().gated.set(false);
    assert_eq!(cached.held(), (4096, 1));
    now(cached.flush()).unwrap();
    assert_eq!(cached.inner().on_disk(60, 1), vec![1; 4096]);
    assert_eq!(cached.held(), (0, 0));
}

#[test]
fn a_flush_waits_for_writes_another_flush_is_making() {
    let cached = Cached::new(Gated::new(), DATA_START);
    now(cached.write(70, page(1))).0.unwrap();
    cached.inner().gated.set(true);
    let mut first = pin!(cached.flush());
    assert!(poll_once(first.as_mut()).is_pending());
    // Held before the second flush, being written by the first: the second
    // may not flush the device until that write is done.
    let mut second = pin!(cached.flush());
    assert!(poll_once(second.as_mut()).is_pending());
    assert_eq!(cached.inner().flushes.get(), 0);
    cached.inner().gated.set(false);
    assert!(poll_once(second.as_mut()).is_pending());
    assert!(poll_once(first.as_mut()).is_ready());
    assert!(poll_once(second.as_mut()).is_ready());
    assert_eq!((cached.inner().writes.get(), cached.inner().flushes.get()), (1, 2));
    assert_eq!(cached.inner().on_disk(70, 1), vec![1; 4096]);
}

#[test]
fn a_failed_drain_keeps_the_writes_held() {
    // A device error in the drain: nothing is flushed, the write stays
    // held, and the next flush writes it.
    struct Failing(Gated, Cell<bool>);
    impl BlockDevice for Failing {
        fn geometry(&self) -> Geometry {
            self.0.geometry()
        }
        fn read(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
            self.0.read(lba, buf)
        }
        async fn write(&self, lba: u64, buf: IoBuf) -> IoResult {
            if self.1.get() {
                return (Err(BlockError::DeviceGone), buf);
            }
            self.0.write(lba, buf).await
        }
        fn flush(&self) -> impl Future<Output = Result<(), BlockError>> {
            self.0.flush()
        }
    }
    let cached = Cached::new(Failing(Gated::new(), Cell::new(true)), DATA_START);
    now(cached.write(80, page(3))).0.unwrap();
    assert_eq!(now(cached.flush()), Err(BlockError::DeviceGone));
    assert_eq!(cached.held(), (4096, 1));
    assert_eq!(cached.inner().0.flushes.get(), 0);
    cached.inner().1.set(false);
    now(cached.flush()).unwrap();
    assert_eq!(cached.inner().0.on_disk(80, 1), vec![3; 4096]);
}

#[test]
fn a_write_over_part_of_a_held_one_is_held_in_its_place() {
    // A failed PUT leaves its held chunk over space freed at once; a later
    // object there may cover part of it, or be too large to hold.
    let cached = Cached::new(Gated::new(), DATA_START);
    now(cached.write(100, IoBuf::from_slice(&[1; 3 * 4096]))).0.unwrap();
    now(cached.write(101, page(2))).0.unwrap();
    let large = IoBuf::from_slice(&vec![3; HELD_WRITE_MAX_BYTES + 4096]);
    now(cached.write(102, large)).0.unwrap();
    assert_eq!(cached.inner().writes.get(), 0);
    let (result, buf) = now(cached.read(100, IoBuf::zeroed(4 * 4096)));
    result.unwrap();
    let firsts: Vec<u8> = buf.as_slice().chunks(4096).map(|block| block[0]).collect();
    assert_eq!(firsts, [1, 2, 3, 3]);
    now(cached.flush()).unwrap();
    assert_eq!(cached.held(), (0, 0));
    let firsts: Vec<u8> = cached.inner().on_disk(100, 4).chunks(4096).map(|block| block[0]).collect();
    assert_eq!(firsts, [1, 2, 3, 3]);
}

#[test]
fn a_write_over_one_being_written_waits_for_it() {
    let cached = Cached::new(Gated::new(), DATA_START);
    now(cached.write(110, page(1))).0.unwrap();
    cached.inner().gated.set(true);
    let mut flush = pin!(cached.flush());
    assert!(poll_once(flush.as_mut()).is_pending());
    let mut write = pin!(cached.write(110, page(2)));
    assert!(poll_once(write.as_mut()).is_pending());
    cached.inner().gated.set(false);
    assert!(poll_once(flush.as_mut()).is_ready());
    assert!(poll_once(write.as_mut()).is_ready());
    assert_eq!(cached.inner().on_disk(110, 1), vec![1; 4096]);
    now(cached.flush()).unwrap();
    assert_eq!(cached.inner().on_disk(110, 1), vec![2; 4096]);
}

#[test]
fn an_empty_write_leaves_held_ones_alone() {
    let cached = Cached::new(Gated::new(), DATA_START);
    now(cached.write(120, page(4))).0.unwrap();
    now(cached.write(120, IoBuf::from_slice(&[]))).0.unwrap();
    assert_eq!(cached.held(), (4096, 1));
    now(cached.flush()).unwrap();
    assert_eq!(cached.inner().on_disk(120, 1), vec![4; 4096]);
}

#[test]
fn a_journal_commit_writes_beside_the_held_writes_and_flushes_after_both() {
    let cached = Cached::new(Gated::new(), DATA_START);
    now(cached.write(70, page(1))).0.unwrap();
    cached.inner().gated.set(true);
    let mut commit = pin!(cached.write_durable(3, page(2)));
    assert!(poll_once(commit.as_mut()).is_pending());
    // The held write and the journal write are both on their way, and no
    // flush yet: it must cover both.
    assert_eq!((cached.inner().issued.get(), cached.inner().flushes.get()), (2, 0));
    cached.inner().gated.set(false);
    let Poll::Ready((result, _)) = poll_once(commit.as_mut()) else { panic!("the commit did not finish") };
    result.unwrap();
    assert_eq!((cached.inner().writes.get(), cached.inner().flushes.get()), (2, 1));
    assert_eq!((cached.inner().on_disk(70, 1), cached.inner().on_disk(3, 1)), (vec![1; 4096], vec![2; 4096]));
}
