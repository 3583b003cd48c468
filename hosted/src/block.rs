//! A file (or block device node) as a `storage::block::BlockDevice`, for the
//! hosted platform and the storage benchmarks on a real disk.
//!
//! Opened with O_DIRECT where the filesystem supports it (tmpfs does not,
//! and then the page cache is used: said by `direct_io()`), so benchmarks
//! measure the disk and not memory; `IoBuf`s are page-aligned, which
//! O_DIRECT needs. `flush` is `fdatasync`: the data and the metadata needed
//! to read it back are durable when it returns. By default the I/O is
//! synchronous (positioned reads and writes; the futures complete when
//! polled). [`FileDisk::with_io_threads`] moves it to helper threads: the
//! executor's thread then keeps serving the network while requests are in
//! flight, several at a time, and concurrent commits can share a flush.
//! A completion wakes its task from the helper thread, as the TAP reader's
//! interrupt does.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::pin::Pin;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use storage::block::{BlockDevice, BlockError, Geometry, IoBuf, IoResult};

pub struct FileDisk {
    file: Arc<File>,
    geometry: Geometry,
    direct_io: bool,
    /// Requests go to the helper threads through this, when there are any.
    jobs: Option<Mutex<Sender<Job>>>,
}

enum Work {
    Read {
        offset: u64,
        lba: u64,
        buf: IoBuf,
    },
    /// `durable`: then `fdatasync`, on the same thread.
    Write {
        offset: u64,
        lba: u64,
        buf: IoBuf,
        durable: bool,
    },
    Flush,
}

/// Where a helper thread leaves a finished request for its future.
#[derive(Default)]
struct Slot {
    done: Option<(Result<(), BlockError>, Option<IoBuf>)>,
    waker: Option<Waker>,
}

struct Job {
    work: Work,
    slot: Arc<Mutex<Slot>>,
}

fn perform(file: &File, work: Work) -> (Result<(), BlockError>, Option<IoBuf>) {
    match work {
        Work::Read { offset, lba, mut buf } => {
            let result = file.read_exact_at(buf.as_mut_slice(), offset).map_err(|_| io_error(lba));
            (result, Some(buf))
        }
        Work::Write { offset, lba, buf, durable } => {
            let mut result = file.write_all_at(buf.as_slice(), offset).map_err(|_| io_error(lba));
            if durable && result.is_ok() {
                result = file.sync_data().map_err(|_| io_error(0));
            }
            (result, Some(buf))
        }
        Work::Flush => (file.sync_data().map_err(|_| io_error(0)), None),
    }
}

fn helper(file: Arc<File>, jobs: Arc<Mutex<Receiver<Job>>>) {
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(Job { work, slot }) = job else { return };
        let outcome = perform(&file, work);
        let waker = {
            let Ok(mut slot) = slot.lock() else { return };
            slot.done = Some(outcome);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A request handed to the helper threads; resolves when one finished it.
/// Dropped early, the request still completes (the helper owns the buffer
/// until then) and its result is discarded.
struct InFlight {
    slot: Arc<Mutex<Slot>>,
}

impl Future for InFlight {
    type Output = (Result<(), BlockError>, Option<IoBuf>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut slot) = self.slot.lock() else {
            return Poll::Ready((Err(BlockError::DeviceGone), None));
        };
        match slot.done.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl FileDisk {
    /// Opens (creating and sizing if needed) `path` as a disk of
    /// `capacity_bytes` with `block_bytes` logical blocks.
    pub fn open(path: &Path, block_bytes: u32, capacity_bytes: u64) -> io::Result<Self> {
        let open = |flags: i32| {
            OpenOptions::new().read(true).write(true).create(true).truncate(false).custom_flags(flags).open(path)
        };
        let (file, direct_io) = match open(libc::O_DIRECT) {
            Ok(file) => (file, true),
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => (open(0)?, false),
            Err(error) => return Err(error),
        };
        if file.metadata()?.len() < capacity_bytes {
            file.set_len(capacity_bytes)?;
        }
        let geometry = Geometry {
            block_bytes,
            capacity_blocks: capacity_bytes / u64::from(block_bytes),
            queue_depth: 1,
            supports_discard: false,
        };
        Ok(Self { file: Arc::new(file), geometry, direct_io, jobs: None })
    }

    /// Does the I/O on `threads` helper threads, up to that many requests
    /// at a time (the queue depth the store sees).
    pub fn with_io_threads(mut self, threads: usize) -> io::Result<Self> {
        let threads = threads.max(1);
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads {
            let (file, receiver) = (self.file.clone(), receiver.clone());
            std::thread::Builder::new().name(format!("filedisk-{index}")).spawn(move || helper(file, receiver))?;
        }
        self.jobs = Some(Mutex::new(sender));
        self.geometry.queue_depth = u16::try_from(threads).unwrap_or(u16::MAX);
        Ok(self)
    }

    /// Hands `work` to a helper thread; `None` without helper threads.
    fn submit(&self, work: Work) -> Result<InFlight, Work> {
        let Some(jobs) = &self.jobs else { return Err(work) };
        let slot = Arc::new(Mutex::new(Slot::default()));
        let sent = jobs
            .lock()
            .map_err(|_| ())
            .and_then(|sender| sender.send(Job { work, slot: slot.clone() }).map_err(|_| ()));
        match sent {
            Ok(()) => Ok(InFlight { slot }),
            // The helpers are gone: nothing can be done on this device.
            Err(()) => Ok(InFlight {
                slot: Arc::new(Mutex::new(Slot { done: Some((Err(BlockError::DeviceGone), None)), waker: None })),
            }),
        }
    }

    /// Whether the page cache is bypassed.
    pub fn direct_io(&self) -> bool {
        self.direct_io
    }

    fn offset(&self, lba: u64) -> u64 {
        lba * u64::from(self.geometry.block_bytes)
    }
}

fn io_error(lba: u64) -> BlockError {
    BlockError::Io { lba }
}

impl FileDisk {
    /// A write (and with `durable` its `fdatasync`) of whole blocks in range.
    async fn checked_write(&self, lba: u64, buf: IoBuf, durable: bool) -> IoResult {
        if let Err(error) = self.geometry.check(lba, buf.len()) {
            return (Err(error), buf);
        }
        self.run(Work::Write { offset: self.offset(lba), lba, buf, durable }).await
    }

    /// A read or write, on a helper thread or here.
    async fn run(&self, work: Work) -> IoResult {
        let (result, buf) = match self.submit(work) {
            Ok(in_flight) => in_flight.await,
            Err(work) => perform(&self.file, work),
        };
        match buf {
            Some(buf) => (result, buf),
            // Only when the helper threads are gone: the buffer went with them.
            None => (result.and(Err(BlockError::DeviceGone)), IoBuf::zeroed(0)),
        }
    }
}

impl BlockDevice for FileDisk {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    async fn read(&self, lba: u64, buf: IoBuf) -> IoResult {
        if let Err(error) = self.geometry.check(lba, buf.len()) {
            return (Err(error), buf);
        }
        self.run(Work::Read { offset: self.offset(lba), lba, buf }).await
    }

    async fn write(&self, lba: u64, buf: IoBuf) -> IoResult {
        self.checked_write(lba, buf, false).await
    }

    /// One job for a helper: the `fdatasync` follows the write on the same
    /// thread, without waiting for the executor to see the write complete.
    async fn write_durable(&self, lba: u64, buf: IoBuf) -> IoResult {
        self.checked_write(lba, buf, true).await
    }

    async fn flush(&self) -> Result<(), BlockError> {
        let (result, _) = match self.submit(Work::Flush) {
            Ok(in_flight) => in_flight.await,
            Err(work) => perform(&self.file, work),
        };
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

    fn now<F: Future>(future: F) -> F::Output {
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("FileDisk completes synchronously"),
        }
    }

    #[test]
    fn writes_read_back_and_survive_reopening() {
        // Under target/ (a real filesystem, so O_DIRECT is exercised where
        // supported), not /tmp (often tmpfs).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/hosted-block-test");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("disk-{}.img", std::process::id()));
        let data: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
        {
            let disk = FileDisk::open(&path, 512, 1 << 20).unwrap();
            assert_eq!(disk.geometry().capacity_blocks, 2048);
            now(disk.write(10, IoBuf::from_slice(&data))).0.unwrap();
            now(disk.flush()).unwrap();
            now(disk.write_durable(100, IoBuf::from_slice(&data[..4096]))).0.unwrap();
            let (result, _) = now(disk.write_durable(2047, IoBuf::zeroed(4096)));
            assert!(matches!(result, Err(BlockError::OutOfRange { .. })));
            let (result, _) = now(disk.read(2048, IoBuf::zeroed(512)));
            assert!(matches!(result, Err(BlockError::OutOfRange { .. })));
            let (result, _) = now(disk.write(0, IoBuf::zeroed(100)));
            assert!(matches!(result, Err(BlockError::Misaligned { .. })));
        }
        let disk = FileDisk::open(&path, 512, 1 << 20).unwrap();
        let (result, buf) = now(disk.read(10, IoBuf::zeroed(8192)));
        result.unwrap();
        assert_eq!(buf.as_slice(), &data[..]);
        let (result, buf) = now(disk.read(100, IoBuf::zeroed(4096)));
        result.unwrap();
        assert_eq!(buf.as_slice(), &data[..4096]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn helper_threads_serve_many_requests_at_once() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/hosted-block-test");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("threaded-{}.img", std::process::id()));
        let disk = Rc::new(FileDisk::open(&path, 4096, 4 << 20).unwrap().with_io_threads(4).unwrap());
        assert_eq!(disk.geometry().queue_depth, 4);
        let mut runtime = crate::Runtime::new();
        let spawner = runtime.spawner();
        let block = |i: u64| -> Vec<u8> { (0..4096u64).map(|b| (b * 31 + i * 7) as u8).collect() };
        runtime.block_on(async {
            // 64 writes in flight at once, then a flush, then 64 reads.
            let writes: Vec<_> = (0..64u64)
                .map(|i| {
                    let disk = disk.clone();
                    let data = block(i);
                    spawner.spawn(async move { disk.write(i, IoBuf::from_slice(&data)).await.0 })
                })
                .collect();
            for write in writes {
                write.await.unwrap();
            }
            disk.flush().await.unwrap();
            let reads: Vec<_> = (0..64u64)
                .map(|i| {
                    let disk = disk.clone();
                    spawner.spawn(async move { disk.read(i, IoBuf::zeroed(4096)).await })
                })
                .collect();
            for (i, read) in reads.into_iter().enumerate() {
                let (result, buf) = read.await;
                result.unwrap();
                assert_eq!(buf.as_slice(), &block(i as u64)[..], "block {i}");
            }
            // Checks still come first, on this thread.
            let (result, _) = disk.read(1 << 20, IoBuf::zeroed(4096)).await;
            assert!(matches!(result, Err(BlockError::OutOfRange { .. })));
        });
        std::fs::remove_file(&path).unwrap();
    }
}
