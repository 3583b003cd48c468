//! Storage benchmarks (`cargo xtask bench storage`). One table, figures
//! only (nothing is asserted):
//!
//! - the store on a file opened with O_DIRECT (fdatasync as flush) beside
//!   Linux's own filesystem doing the same durable work (one file per
//!   object, written and fdatasync'ed);
//! - the store on a RAM disk (the engine's own cost) beside `memcpy`;
//! - group commit: 4 KiB PUTs from 64 concurrent writers with real flushes,
//!   beside what one fdatasync per PUT allows;
//! - listing 100k keys, opening (replaying) a store after 1M small objects,
//!   and heap bytes per object once open.
//!
//! Throughput rows are the median of 3 runs.
#![deny(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use fs::index::{ListQuery, list};
use fs::store::{FormatOptions, PutInfo, Store};
use hosted::block::FileDisk;
use storage::block::{BlockDevice, BlockError, Geometry, IoBuf, IoResult, RamDisk};

/// Heap bytes currently allocated by the whole program.
static LIVE_HEAP_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes (for the bytes-per-object row).
struct CountingAllocator;

// SAFETY: every method hands the caller's pointer and layout unchanged to
// `System`, which upholds the `GlobalAlloc` contract; the counter is only
// arithmetic on an atomic.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_HEAP_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: our caller upholds `alloc`'s contract for `layout`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_HEAP_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_HEAP_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator (so from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_HEAP_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_HEAP_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds
        // `realloc`'s contract for `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const RUNS: usize = 3;
const MIB: u64 = 1 << 20;

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn content(size: usize, seed: u64) -> Vec<u8> {
    (0..size).map(|i| (i as u64).wrapping_mul(seed | 1).rotate_left(13) as u8).collect()
}

/// Seconds to PUT `count` objects of `size` bytes, then to GET them all.
fn store_put_get<D: BlockDevice>(store: &Store<D>, count: usize, size: usize, round: usize) -> (f64, f64) {
    let data = content(size, round as u64);
    let bucket = format!("bench{round}-{size}");
    block_on(store.create_bucket(&bucket, "bench", 0)).expect("bucket");
    let start = Instant::now();
    for index in 0..count {
        block_on(async {
            let mut writer = store.writer();
            writer.expect_size(size as u64);
            // As the network delivers it: 64 KiB at a time.
            for piece in data.chunks(64 * 1024) {
                writer.write(piece).await.expect("write");
            }
            let written = writer.finish().await.expect("finish");
            store.put_object(&bucket, &format!("o{index}"), written, PutInfo::default(), 0).await.expect("put");
        });
    }
    let put = start.elapsed().as_secs_f64();
    // Small objects' bytes wait in memory until a write-back (see the fs
    // README): a checkpoint writes them back, so the GETs read the device.
    block_on(store.checkpoint()).expect("checkpoint");
    let start = Instant::now();
    for index in 0..count {
        block_on(async {
            let handle = store.open_object(&bucket, &format!("o{index}"), None).expect("open");
            let mut reader = handle.read(0..size as u64).expect("range");
            let mut total = 0;
            while let Some(piece) = reader.next().await {
                total += piece.expect("verified").as_slice().len();
            }
            assert_eq!(total, size);
        });
    }
    let get = start.elapsed().as_secs_f64();
    for index in 0..count {
        block_on(store.delete_object(&bucket, &format!("o{index}"), None, 0)).expect("delete");
    }
    (put, get)
}

/// The same on Linux: one file per object, written and fdatasync'ed (with
/// its directory), read back with O_DIRECT.
fn linux_put_get(dir: &Path, count: usize, size: usize, round: usize) -> (f64, f64) {
    let data = content(size, round as u64);
    let dir = dir.join(format!("linux{round}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let start = Instant::now();
    for index in 0..count {
        let mut file = File::create(dir.join(format!("o{index}"))).expect("create");
        file.write_all(&data).expect("write");
        file.sync_data().expect("fdatasync");
        File::open(&dir).and_then(|d| d.sync_all()).expect("dir fsync");
    }
    let put = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut buf = storage::block::IoBuf::zeroed(size.next_multiple_of(4096));
    for index in 0..count {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(dir.join(format!("o{index}")))
            .expect("open");
        let mut done = 0;
        while done < size {
            let n =
                std::os::unix::fs::FileExt::read_at(&file, &mut buf.as_mut_slice()[done..], done as u64).expect("read");
            if n == 0 {
                break;
            }
            done += n;
        }
    }
    let get = start.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&dir).expect("cleanup");
    (put, get)
}

/// Resolves after yielding to the executor once.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// A device whose flush completes after one executor round, as an
/// interrupt-driven driver's does: other tasks run meanwhile and queue
/// their records, which is what group commit needs. Reads and writes go
/// straight through. For the RAM and sparse disks.
struct YieldingFlush<D>(Arc<D>);

impl<D: BlockDevice> BlockDevice for YieldingFlush<D> {
    fn geometry(&self) -> Geometry {
        self.0.geometry()
    }

    fn read(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        self.0.read(lba, buf)
    }

    fn write(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        self.0.write(lba, buf)
    }

    async fn flush(&self) -> Result<(), BlockError> {
        let result = self.0.flush().await;
        yield_once().await;
        result
    }
}

/// A file of `bytes` zeros, written out, so that the store's writes do not
/// pay for ext4 allocating a sparse file's blocks (a disk has none to
/// allocate) and flushes are data flushes.
fn preallocated(path: &Path, bytes: u64) {
    let mut file = File::create(path).expect("image");
    let zeros = vec![0u8; 8 * MIB as usize];
    for _ in 0..bytes / zeros.len() as u64 {
        file.write_all(&zeros).expect("zeros");
    }
    file.sync_all().expect("sync image");
}

const PAGE: usize = 4096;

/// A disk that stores only pages holding a nonzero byte, so a million small
/// objects of zeros cost memory only for the metadata (journal, checkpoint):
/// what replay reads.
struct SparseDisk {
    capacity_pages: u64,
    pages: Mutex<HashMap<u64, Box<[u8]>>>,
}

impl BlockDevice for SparseDisk {
    fn geometry(&self) -> Geometry {
        Geometry {
            block_bytes: PAGE as u32,
            capacity_blocks: self.capacity_pages,
            queue_depth: 64,
            supports_discard: false,
        }
    }

    async fn read(&self, lba: u64, mut buf: IoBuf) -> IoResult {
        if let Err(error) = self.geometry().check(lba, buf.len()) {
            return (Err(error), buf);
        }
        let pages = self.pages.lock().expect("pages");
        for (index, out) in buf.as_mut_slice().chunks_mut(PAGE).enumerate() {
            match pages.get(&(lba + index as u64)) {
                Some(page) => out.copy_from_slice(page),
                None => out.fill(0),
            }
        }
        drop(pages);
        (Ok(()), buf)
    }

    async fn write(&self, lba: u64, buf: IoBuf) -> IoResult {
        if let Err(error) = self.geometry().check(lba, buf.len()) {
            return (Err(error), buf);
        }
        let mut pages = self.pages.lock().expect("pages");
        for (index, data) in buf.as_slice().chunks(PAGE).enumerate() {
            let page = lba + index as u64;
            if data.iter().all(|&byte| byte == 0) {
                pages.remove(&page);
            } else {
                pages.insert(page, data.into());
            }
        }
        drop(pages);
        (Ok(()), buf)
    }

    async fn flush(&self) -> Result<(), BlockError> {
        Ok(())
    }
}

/// Runs the futures as concurrent tasks to completion on `rustcore-hosted`'s
/// runtime, whose thread sleeps until a disk helper's completion wakes it
/// (a spinning loop here would take the CPU those helpers need).
fn run_tasks(tasks: Vec<impl Future<Output = ()> + 'static>) {
    let mut runtime = hosted::Runtime::new();
    let handles: Vec<_> = tasks.into_iter().map(|task| runtime.spawner().spawn(task)).collect();
    runtime.block_on(async move {
        for handle in handles {
            handle.await;
        }
    });
}

/// A PUT of `data` (its size announced, all of it in one write).
async fn put_whole<D: BlockDevice>(store: &Store<D>, bucket: &str, key: &str, data: &[u8]) {
    let mut object = store.writer();
    object.expect_size(data.len() as u64);
    object.write(data).await.expect("write");
    let written = object.finish().await.expect("finish");
    store.put_object(bucket, key, written, PutInfo::default(), 0).await.expect("put");
}

/// Seconds for `writers` concurrent tasks to PUT `per_writer` objects each
/// of `data` into `bucket` (which must exist), keys from `key(writer, i)`.
fn concurrent_puts<D: BlockDevice + 'static>(
    store: &Rc<Store<D>>,
    bucket: &str,
    writers: usize,
    per_writer: usize,
    data: &Rc<Vec<u8>>,
    key: fn(usize, usize) -> String,
) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let (store, data, bucket) = (store.clone(), data.clone(), bucket.to_string());
            async move {
                for index in 0..per_writer {
                    put_whole(&store, &bucket, &key(writer, index), &data).await;
                }
            }
        })
        .collect();
    run_tasks(tasks);
    start.elapsed().as_secs_f64()
}

struct Row {
    name: String,
    store: f64,
    /// What the row compares with, named in `name`.
    reference: Option<f64>,
    unit: &'static str,
}

impl Row {
    fn new(name: impl Into<String>, store: f64, reference: Option<f64>, unit: &'static str) -> Self {
        Self { name: name.into(), store, reference, unit }
    }
}

/// Throughput in the row's unit: MiB/s from 1 MiB up, objects/s below.
fn throughput(count: usize, size: usize, seconds: f64) -> (f64, &'static str) {
    if size >= MIB as usize {
        ((count * size) as f64 / MIB as f64 / seconds, "MiB/s")
    } else {
        (count as f64 / seconds, "ops/s")
    }
}

/// CRC32C with each implementation this CPU runs: of a 64 MiB buffer (memory-bound once the
/// code is fast) and of one 1 MiB chunk 64 times (in cache, as a chunk just filled is).
fn crc_rows(rows: &mut Vec<Row>, installed: Option<hosted::crc::HardwareCrc32c>) {
    use storage::checksum::Crc32cFn;
    let block = content(64 * MIB as usize, 3);
    let mut functions: Vec<(String, Crc32cFn)> =
        vec![("portable (slice-by-16)".into(), storage::checksum::crc32c_portable)];
    for which in hosted::crc::HardwareCrc32c::ALL {
        let Some(function) = which.function() else { continue };
        let installed = if Some(which) == installed { ", installed" } else { "" };
        functions.push((format!("{}{installed}", which.name()), function));
    }
    // On these VMs a new 64 MiB buffer reads at half speed or less for its first few passes, which
    // favoured whichever row came later: read it a few times first, and take the functions in
    // turn in each round.
    for _ in 0..8 {
        std::hint::black_box(storage::checksum::crc32c(std::hint::black_box(&block)));
    }
    let rates = |buffer: &[u8], passes: usize| {
        let mut samples = vec![Vec::new(); functions.len()];
        for _ in 0..RUNS {
            for ((_, function), samples) in functions.iter().zip(&mut samples) {
                let start = Instant::now();
                for _ in 0..passes {
                    std::hint::black_box(function(0, std::hint::black_box(buffer)));
                }
                samples.push((passes * buffer.len()) as f64 / MIB as f64 / start.elapsed().as_secs_f64());
            }
        }
        samples.into_iter().map(median).collect::<Vec<_>>()
    };
    for ((name, _), rate) in functions.iter().zip(rates(&block, 1)) {
        rows.push(Row::new(format!("CRC32C {name}, 64 MiB buffer"), rate, None, "MiB/s"));
    }
    for ((name, _), rate) in functions.iter().zip(rates(&block[..MIB as usize], 64)) {
        rows.push(Row::new(format!("CRC32C {name}, a 1 MiB chunk 64 times"), rate, None, "MiB/s"));
    }
}

/// MD5 of many 4 KiB messages (the ETags of concurrent small PUTs): one at
/// a time, and in SIMD lanes with each lane code this CPU runs.
fn md5_rows(rows: &mut Vec<Row>) {
    use hosted::md5::Md5Lanes;
    use storage::md5_lanes::digest_many_portable;
    type Hashes<'a> = dyn Fn(&[&[u8]], &mut [[u8; 16]]) + 'a;
    let block = content(16 * MIB as usize, 4);
    let messages: Vec<&[u8]> = block.chunks(4096).collect();
    let mut out = vec![[0u8; 16]; messages.len()];
    let mut rate = |f: &Hashes| -> f64 {
        median(
            (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    f(std::hint::black_box(&messages), &mut out);
                    std::hint::black_box(&out);
                    block.len() as f64 / MIB as f64 / start.elapsed().as_secs_f64()
                })
                .collect(),
        )
    };
    let one = rate(&digest_many_portable);
    rows.push(Row::new("MD5 of 4 KiB messages, one at a time (md-5)", one, None, "MiB/s"));
    for lanes in [Md5Lanes::Sse2, Md5Lanes::Avx2, Md5Lanes::Avx512] {
        let Some(accelerated) = lanes.accelerated() else { continue };
        let width = accelerated.lanes;
        let lanes_rate = rate(&|messages, out| {
            for (group, out) in messages.chunks(width).zip(out.chunks_mut(width)) {
                accelerated.digest_many(group, out);
            }
        });
        rows.push(Row::new(
            format!("MD5 of 4 KiB messages, {width} at once ({lanes:?} lanes) vs one at a time"),
            lanes_rate,
            Some(one),
            "MiB/s",
        ));
    }
}

/// `memcpy` of 64 MiB between two warm buffers, MiB/s.
fn memcpy_rate() -> f64 {
    let (source, mut target) = memcpy_buffers();
    median((0..RUNS).map(|_| memcpy_once(&source, &mut target)).collect())
}

/// Two 64 MiB buffers, both touched already (as the RAM disk is).
fn memcpy_buffers() -> (Vec<u8>, Vec<u8>) {
    let source = content(64 * MIB as usize, 5);
    let mut target = vec![1u8; source.len()];
    target.copy_from_slice(&source);
    (source, target)
}

/// One timed copy, in MiB/s.
fn memcpy_once(source: &[u8], target: &mut [u8]) -> f64 {
    let start = Instant::now();
    target.copy_from_slice(std::hint::black_box(source));
    std::hint::black_box(&target);
    source.len() as f64 / MIB as f64 / start.elapsed().as_secs_f64()
}

/// A RAM disk whose memory is mapped already. A fresh one is pages the
/// host kernel maps and clears on first write: in `perf` of the 1 MiB
/// PUT rows that was a fifth of the samples (`clear_page_erms`), no part
/// of the engine's work, and the `memcpy` it is compared with copies into
/// touched memory.
fn touched_ram_disk(blocks: u64) -> Arc<RamDisk> {
    const STEP: u64 = 4096;
    let ram = Arc::new(RamDisk::new(4096, blocks));
    let mut zeros = IoBuf::zeroed((STEP * 4096) as usize);
    for lba in (0..blocks).step_by(STEP as usize) {
        if lba + STEP > blocks {
            zeros = IoBuf::zeroed(((blocks - lba) * 4096) as usize);
        }
        let (result, buf) = block_on(ram.write(lba, zeros));
        result.expect("RAM disk write");
        zeros = buf;
    }
    ram
}

/// `rustcore-hosted`'s I/O helper threads on its data file.
const IO_THREADS: usize = 8;

/// Sequential PUT and GET on a file with real flushes, beside ext4.
fn file_rows(rows: &mut Vec<Row>, dir: &Path) {
    let image = dir.join("store.img");
    preallocated(&image, 1024 * MIB);
    let disk = Arc::new(FileDisk::open(&image, 4096, 1024 * MIB).expect("disk image"));
    let options = FormatOptions { volume_id: [9; 16], ..FormatOptions::default() };
    let store = block_on(Store::format(disk.clone(), options)).expect("format");
    let sizes = [
        ("1 MiB objects", 48usize, MIB as usize),
        ("64 MiB objects", 4, 64 * MIB as usize),
        ("4 KiB objects", 400, 4096),
    ];
    for (label, count, size) in sizes {
        let mut samples = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..RUNS {
            let (put, get) = store_put_get(&store, count, size, round);
            let (linux_put, linux_get) = linux_put_get(dir, count, size, round);
            samples.0.push(put);
            samples.1.push(get);
            samples.2.push(linux_put);
            samples.3.push(linux_get);
        }
        let (put, unit) = throughput(count, size, median(samples.0));
        let (get, _) = throughput(count, size, median(samples.1));
        let (linux_put, _) = throughput(count, size, median(samples.2));
        let (linux_get, _) = throughput(count, size, median(samples.3));
        rows.push(Row::new(
            format!("durable PUT, {label}, 1 writer, file disk (ref: ext4)"),
            put,
            Some(linux_put),
            unit,
        ));
        rows.push(Row::new(format!("GET, {label}, file disk (ref: ext4 O_DIRECT)"), get, Some(linux_get), unit));
    }
    drop(store);
    let start = Instant::now();
    let (store, report) = block_on(Store::open(disk.clone())).expect("reopen");
    rows.push(Row::new(
        format!("open: superblock + checkpoint + replay of {} records, file disk", report.replayed_records),
        start.elapsed().as_secs_f64() * 1000.0,
        None,
        "ms",
    ));
    drop(store);
    let _ = std::fs::remove_file(&image);
}

/// Times a device's journal commits (`write_durable`: a write, then a
/// flush), to show what one costs while the group-commit rounds run.
struct TimedCommits<D> {
    device: D,
    commits: std::cell::Cell<(u64, u64)>,
}

impl<D> TimedCommits<D> {
    fn new(device: D) -> Self {
        Self { device, commits: std::cell::Cell::new((0, 0)) }
    }

    /// (commits, total nanoseconds) so far.
    fn commits(&self) -> (u64, u64) {
        self.commits.get()
    }
}

impl<D: BlockDevice> BlockDevice for TimedCommits<D> {
    fn geometry(&self) -> Geometry {
        self.device.geometry()
    }

    fn read(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        self.device.read(lba, buf)
    }

    fn write(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        self.device.write(lba, buf)
    }

    fn flush(&self) -> impl Future<Output = Result<(), BlockError>> {
        self.device.flush()
    }

    async fn write_durable(&self, lba: u64, buf: IoBuf) -> IoResult {
        let start = Instant::now();
        let outcome = self.device.write_durable(lba, buf).await;
        let (count, ns) = self.commits.get();
        self.commits.set((count + 1, ns + start.elapsed().as_nanos() as u64));
        outcome
    }
}

/// Group commit on a file with real flushes, beside one flush per PUT.
/// With `logged` true the store chooses as it does by default (small
/// objects in the journal while the committer is idle, written beside the
/// batch once many records wait: `fs::store::LOG_BUSY_RECORDS`); with it
/// false, 4 KiB objects are always written to their extents (held and
/// merged until each flush: see `fs::write_cache`), as once a store's
/// state outgrows an eighth of its journal.
fn group_commit_rows(rows: &mut Vec<Row>, dir: &Path, logged: bool) {
    let image = dir.join("group.img");
    preallocated(&image, 1024 * MIB);
    let disk = Arc::new(FileDisk::open(&image, 4096, 1024 * MIB).expect("disk image"));
    // BENCH_JOURNAL_PAGES=65536 (a 256 MiB journal, as a disk of 64 GiB or
    // more gets): the store's state stays under a sixteenth of it through
    // the rounds, so logging never stops for the state's size; by default
    // (16 MiB) it may after the first round.
    let journal_pages = std::env::var("BENCH_JOURNAL_PAGES").ok().and_then(|v| v.parse().ok());
    let options = FormatOptions { volume_id: [10; 16], journal_pages, ..FormatOptions::default() };
    drop(block_on(Store::format(disk.clone(), options)).expect("format"));

    // Group commit: 64 writers of 4 KiB PUTs on the disk as rustcore-hosted
    // drives it (I/O on helper threads, several requests in flight, as
    // virtio-blk and NVMe requests are in the kernel): the flush runs on a
    // helper while the other writers queue their records behind it.
    let queued = FileDisk::open(&image, 4096, 1024 * MIB)
        .and_then(|disk| disk.with_io_threads(IO_THREADS))
        .expect("disk image with I/O threads");
    let queued = TimedCommits::new(queued);
    let store = Rc::new(block_on(Store::open(queued)).expect("open").0);
    store.set_small_object_logging(logged);
    let how = if logged { "" } else { ", written (not logged)" };
    let data = Rc::new(content(4096, 11));
    // 12,800 PUTs a round (0.4-0.6 s): long enough to include the
    // checkpoints and write-backs that the journal's size brings.
    let (writers, per_writer) = (64, 200);
    // Flush latency on a shared disk drifts: each round measures the
    // baseline right after the group-commit run, and the row shows medians.
    let (mut rates, mut baselines, mut batch_shapes) = (Vec::new(), Vec::new(), Vec::new());
    // The executor's thread (this one) on a CPU, in % of each round: near
    // 100 the PUTs wait for the CPU, well below it for the device.
    let mut busy = Vec::new();
    let md5_before = store.md5_batch_counts();
    let commits_before = store.device().commits();
    for round in 0..RUNS {
        let bucket = format!("group{round}");
        block_on(store.create_bucket(&bucket, "bench", 0)).expect("bucket");
        let before = store.commit_counters();
        let cpu_before = on_cpu_ms();
        let seconds = concurrent_puts(&store, &bucket, writers, per_writer, &data, |w, i| format!("w{w}/o{i}"));
        busy.push((on_cpu_ms() - cpu_before) / 10.0 / seconds);
        let after = store.commit_counters();
        let batches = (after.batches - before.batches).max(1) as f64;
        batch_shapes.push((
            (after.records - before.records) as f64 / batches,
            (after.flushes - before.flushes) as f64 / batches,
            (after.overlapped_batches - before.overlapped_batches) as f64 / batches,
            (after.batches_beside_checkpoints - before.batches_beside_checkpoints) as f64 / batches,
            (after.logged_chunks - before.logged_chunks) as f64 / (after.records - before.records).max(1) as f64,
            (after.verified_batches - before.verified_batches) as f64 / batches,
        ));
        rates.push((writers * per_writer) as f64 / seconds);
        // What one flush per PUT would allow: a 4 KiB write and an fdatasync.
        let flushes = 100;
        let start = Instant::now();
        for index in 0..flushes {
            let lba = disk.geometry().capacity_blocks - 1 - index % 16;
            block_on(disk.write(lba, IoBuf::from_slice(&data))).0.expect("write");
            block_on(disk.flush()).expect("flush");
        }
        baselines.push(flushes as f64 / start.elapsed().as_secs_f64());
    }
    let baseline = median(baselines);
    rows.push(Row::new(
        format!(
            "durable PUT, 4 KiB, {writers} writers (group commit){how}, file disk (ref: one write+fdatasync per PUT)"
        ),
        median(rates),
        Some(baseline),
        "ops/s",
    ));
    rows.push(Row::new(
        format!("group commit, {writers} writers{how}: records per journal batch"),
        median(batch_shapes.iter().map(|shape| shape.0).collect()),
        None,
        "records",
    ));
    rows.push(Row::new(
        format!("group commit, {writers} writers{how}: flushes per journal batch (2 without flush merging)"),
        median(batch_shapes.iter().map(|shape| shape.1).collect()),
        None,
        "flushes",
    ));
    rows.push(Row::new(
        format!("group commit, {writers} writers{how}: share of records whose object travelled in the journal"),
        median(batch_shapes.iter().map(|shape| shape.4).collect()),
        None,
        "",
    ));
    rows.push(Row::new(
        format!(
            "group commit, {writers} writers{how}: share of batches flagged for replay to verify (no data flush before)"
        ),
        median(batch_shapes.iter().map(|shape| shape.5).collect()),
        None,
        "",
    ));
    rows.push(Row::new(
        format!("group commit, {writers} writers{how}: share of batches started while another was in flight"),
        median(batch_shapes.iter().map(|shape| shape.2).collect()),
        None,
        "",
    ));
    rows.push(Row::new(
        format!("group commit, {writers} writers{how}: share of batches started while a checkpoint was written"),
        median(batch_shapes.iter().map(|shape| shape.3).collect()),
        None,
        "",
    ));
    let (commits, commit_ns) = {
        let after = store.device().commits();
        (after.0 - commits_before.0, after.1 - commits_before.1)
    };
    rows.push(Row::new(
        format!(
            "group commit, {writers} writers{how}: one journal write+flush, mean (ref: one 4 KiB write+fdatasync alone)"
        ),
        commit_ns as f64 / commits.max(1) as f64 / 1000.0,
        Some(1e6 / baseline),
        "us",
    ));
    rows.push(Row::new(
        format!("group commit, {writers} writers{how}: share of the round the executor's thread was on a CPU"),
        median(busy),
        None,
        "%",
    ));
    let md5_after = store.md5_batch_counts();
    rows.push(Row::new(
        format!(
            "group commit, {writers} writers{how}: hashing jobs per MD5 batch pass ({} lanes)",
            storage::md5_lanes::lanes()
        ),
        (md5_after.0 - md5_before.0) as f64 / (md5_after.1 - md5_before.1).max(1) as f64,
        None,
        "jobs",
    ));
    drop(store);
    let _ = std::fs::remove_file(&image);
}

/// The engine alone: PUT and GET on a RAM disk, beside `memcpy`.
fn ram_rows(rows: &mut Vec<Row>) {
    let memcpy = memcpy_rate();
    rows.push(Row::new("memcpy, 64 MiB buffers", memcpy, None, "MiB/s"));
    let ram = touched_ram_disk(262_144);
    let store = block_on(Store::format(ram.clone(), FormatOptions::default())).expect("format ram");
    let sizes = [
        ("1 MiB objects", 256usize, MIB as usize),
        ("64 MiB objects", 8, 64 * MIB as usize),
        ("4 KiB objects", 5_000, 4096),
    ];
    for (label, count, size) in sizes {
        let mut puts = Vec::new();
        let mut gets = Vec::new();
        for round in 0..RUNS {
            let (put, get) = store_put_get(&store, count, size, round + 10);
            puts.push(put);
            gets.push(get);
        }
        let (put, unit) = throughput(count, size, median(puts));
        let (get, _) = throughput(count, size, median(gets));
        let reference = (unit == "MiB/s").then_some(memcpy);
        let suffix = if reference.is_some() { " (ref: memcpy)" } else { "" };
        rows.push(Row::new(format!("PUT, {label}, 1 writer, RAM disk{suffix}"), put, reference, unit));
        rows.push(Row::new(format!("GET, {label}, RAM disk{suffix}"), get, reference, unit));
    }
    drop(store);
    let store = Rc::new(block_on(Store::open(YieldingFlush(ram))).expect("open").0);
    let data = Rc::new(content(4096, 12));
    let mut rates = Vec::new();
    for round in 0..RUNS {
        let bucket = format!("group{round}");
        block_on(store.create_bucket(&bucket, "bench", 0)).expect("bucket");
        let seconds = concurrent_puts(&store, &bucket, 64, 100, &data, |w, i| format!("w{w}/o{i}"));
        rates.push(6_400.0 / seconds);
    }
    rows.push(Row::new("PUT, 4 KiB, 64 writers (group commit), RAM disk", median(rates), None, "ops/s"));
}

/// Concurrent large PUTs on a RAM disk: their chunks are hashed in lanes
/// together.
fn lanes_rows(rows: &mut Vec<Row>) {
    let ram = touched_ram_disk(262_144);
    let store = Rc::new(block_on(Store::format(YieldingFlush(ram), FormatOptions::default())).expect("format ram"));
    block_on(store.create_bucket("lanes", "bench", 0)).expect("bucket");
    let data = Rc::new(content(16 * MIB as usize, 13));
    let writers = 16;
    // Memory bandwidth on this shared machine drifts (4-8 GiB/s between
    // runs): each round times a memcpy right before its PUTs.
    let (source, mut target) = memcpy_buffers();
    let (mut rates, mut copies) = (Vec::new(), Vec::new());
    // A round first, not timed, as a server that has run a while: the
    // store's idle chunk buffers and the heap are warm.
    concurrent_puts(&store, "lanes", writers, 1, &data, |w, _| format!("big{w}"));
    for _ in 0..RUNS {
        copies.push(memcpy_once(&source, &mut target));
        // The same keys each round (overwrites), so the RAM disk holds them.
        let seconds = concurrent_puts(&store, "lanes", writers, 1, &data, |w, _| format!("big{w}"));
        rates.push((writers * data.len()) as f64 / MIB as f64 / seconds);
    }
    rows.push(Row::new(
        format!("PUT, 16 MiB objects, {writers} writers, RAM disk (ref: memcpy, timed in each round)"),
        median(rates),
        Some(median(copies)),
        "MiB/s",
    ));
}

/// Listing 100k keys in pages of 1,000, as ListObjectsV2 pages them.
fn listing_rows(rows: &mut Vec<Row>) {
    let ram = Arc::new(RamDisk::new(4096, 262_144));
    let store = Rc::new(block_on(Store::format(YieldingFlush(ram), FormatOptions::default())).expect("format"));
    block_on(store.create_bucket("list", "bench", 0)).expect("bucket");
    let data = Rc::new(vec![7u8; 10]);
    concurrent_puts(&store, "list", 100, 1_000, &data, |w, i| format!("dir{w:02}/key{i:06}"));
    for (label, delimiter, expected) in
        [("100k keys", None, 100_000), ("100k keys, delimiter / (100 prefixes)", Some("/"), 100)]
    {
        let seconds = median(
            (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    let mut marker: Option<String> = None;
                    let mut listed = 0;
                    loop {
                        let query = ListQuery { prefix: "", delimiter, start_after: marker.as_deref(), max_keys: 1000 };
                        let next = store.with_state(|state| {
                            let page = list(&state.buckets["list"].objects, &query, |v| v.current_object().is_some());
                            listed += page.items.len();
                            page.next_marker().map(str::to_string)
                        });
                        match next {
                            Some(next) => marker = Some(next),
                            None => break,
                        }
                    }
                    assert_eq!(listed, expected);
                    start.elapsed().as_secs_f64()
                })
                .collect(),
        );
        rows.push(Row::new(format!("list {label}, pages of 1,000"), seconds * 1000.0, None, "ms"));
    }
}

/// Milliseconds this thread has run on a CPU (from the scheduler's
/// statistics): unlike wall time, not inflated when other work shares the
/// machine. 0 where the kernel does not provide it.
fn on_cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e6)
}

/// A store with 1M small objects: open time (all in the journal, then from
/// a checkpoint) and the heap the open store holds per object.
fn million_rows(rows: &mut Vec<Row>) {
    const OBJECTS: usize = 1_000_000;
    let journal_pages = 110_000;
    let disk =
        Arc::new(SparseDisk { capacity_pages: OBJECTS as u64 + journal_pages + 80_000, pages: Mutex::default() });
    let options = FormatOptions { journal_pages: Some(journal_pages), volume_id: [4; 16], ..FormatOptions::default() };
    let store = Rc::new(block_on(Store::format(YieldingFlush(disk.clone()), options)).expect("format"));
    block_on(store.create_bucket("million", "bench", 0)).expect("bucket");
    let data = Rc::new(vec![0u8; 100]);
    let seconds = concurrent_puts(&store, "million", 250, OBJECTS / 250, &data, |w, i| format!("obj/{w:03}/{i:05}"));
    rows.push(Row::new(
        "PUT 1M objects of 100 bytes, 250 writers, sparse RAM disk",
        OBJECTS as f64 / seconds,
        None,
        "ops/s",
    ));
    drop(store);

    for pass in ["journal", "checkpoint"] {
        let (mut times_ms, mut cpu_ms) = (Vec::new(), Vec::new());
        for _ in 1..RUNS {
            let (start, cpu_start) = (Instant::now(), on_cpu_ms());
            drop(block_on(Store::open(disk.clone())).expect("open"));
            times_ms.push(start.elapsed().as_secs_f64() * 1000.0);
            cpu_ms.push(on_cpu_ms() - cpu_start);
        }
        let heap_before = LIVE_HEAP_BYTES.load(Ordering::Relaxed);
        let (start, cpu_start) = (Instant::now(), on_cpu_ms());
        let (store, report) = block_on(Store::open(disk.clone())).expect("open");
        times_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        cpu_ms.push(on_cpu_ms() - cpu_start);
        let (open_ms, cpu_ms) = (median(times_ms), median(cpu_ms));
        let heap_bytes = LIVE_HEAP_BYTES.load(Ordering::Relaxed).saturating_sub(heap_before);
        let objects = store.with_state(|state| state.buckets["million"].objects.len());
        assert_eq!(objects, OBJECTS);
        rows.push(Row::new(
            format!(
                "open after 1M objects from the {pass}: {} records replayed (checkpoint through seq {}); on CPU {cpu_ms:.0} ms",
                report.replayed_records, report.checkpoint_seq
            ),
            open_ms,
            None,
            "ms",
        ));
        if pass == "journal" {
            rows.push(Row::new(
                "heap held by the open store per object (index, catalog, space map)",
                heap_bytes as f64 / OBJECTS as f64,
                None,
                "bytes",
            ));
            let (start, cpu_start) = (Instant::now(), on_cpu_ms());
            block_on(store.checkpoint()).expect("checkpoint");
            let cpu_ms = on_cpu_ms() - cpu_start;
            rows.push(Row::new(
                format!("checkpoint of 1M objects (forced, nothing else running); on CPU {cpu_ms:.0} ms"),
                start.elapsed().as_secs_f64() * 1000.0,
                None,
                "ms",
            ));
            let store = Rc::new(store);
            checkpoint_beside_puts_rows(rows, &store);
            // So that the next open starts from a checkpoint of everything.
            block_on(store.checkpoint()).expect("checkpoint");
        }
    }
}

/// A checkpoint of 1M objects while 16 writers PUT small objects (until it
/// ends): how long the slowest PUT took, beside the checkpoint's own time.
fn checkpoint_beside_puts_rows<D: BlockDevice + 'static>(rows: &mut Vec<Row>, store: &Rc<Store<D>>) {
    block_on(store.create_bucket("beside", "bench", 0)).expect("bucket");
    let done = Rc::new(Cell::new(false));
    let (slowest, puts) = (Rc::new(Cell::new(0.0f64)), Rc::new(Cell::new(0u64)));
    let checkpoint_ms = Rc::new(Cell::new(0.0));
    let data = Rc::new(vec![1u8; 100]);
    let mut tasks: Vec<Pin<Box<dyn Future<Output = ()>>>> = Vec::new();
    {
        let (store, done, checkpoint_ms) = (store.clone(), done.clone(), checkpoint_ms.clone());
        tasks.push(Box::pin(async move {
            let start = Instant::now();
            store.checkpoint().await.expect("checkpoint");
            checkpoint_ms.set(start.elapsed().as_secs_f64() * 1000.0);
            done.set(true);
        }));
    }
    for writer in 0..16 {
        let (store, done, slowest, puts, data) =
            (store.clone(), done.clone(), slowest.clone(), puts.clone(), data.clone());
        tasks.push(Box::pin(async move {
            // At most 500 each: the sparse disk has room for 8,000 more.
            let mut index = 0;
            while !done.get() && index < 500 {
                let start = Instant::now();
                put_whole(&store, "beside", &format!("beside/{writer:02}/{index:06}"), &data).await;
                slowest.set(slowest.get().max(start.elapsed().as_secs_f64() * 1000.0));
                puts.set(puts.get() + 1);
                index += 1;
            }
        }));
    }
    run_tasks(tasks);
    rows.push(Row::new(
        format!(
            "slowest of {} PUTs by 16 writers during a checkpoint of 1M objects (ref: the checkpoint's time)",
            puts.get()
        ),
        slowest.get(),
        Some(checkpoint_ms.get()),
        "ms",
    ));
}

fn main() {
    // As rustcore-hosted does: large freed buffers stay in the process.
    hosted::memory::keep_freed_memory();
    let crc32c = hosted::crc::install_hardware_crc32c();
    // BENCH_MD5_LANES=off: one MD5 at a time, for an A/B of the same build.
    if std::env::var("BENCH_MD5_LANES").as_deref() != Ok("off") {
        hosted::md5::install_md5_lanes();
    }
    let dir = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target/bench-storage".into()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let direct = FileDisk::open(&dir.join("probe.img"), 4096, MIB).expect("probe").direct_io();
    let _ = std::fs::remove_file(dir.join("probe.img"));
    // BENCH_ONLY=group,ram (say) runs some sections (crc, md5, file, group, ram,
    // lanes, list, million): for profiling.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |section: &str| only.is_empty() || only.split(',').any(|name| name == section);
    let mut rows = Vec::new();
    if run("crc") {
        crc_rows(&mut rows, crc32c);
    }
    if run("md5") {
        md5_rows(&mut rows);
    }
    if run("file") {
        file_rows(&mut rows, &dir);
    }
    if run("group") {
        group_commit_rows(&mut rows, &dir, true);
        group_commit_rows(&mut rows, &dir, false);
    }
    if run("ram") {
        ram_rows(&mut rows);
    }
    if run("lanes") {
        lanes_rows(&mut rows);
    }
    if run("list") {
        listing_rows(&mut rows);
    }
    if run("million") {
        million_rows(&mut rows);
    }

    println!("\nstorage bench (O_DIRECT: {direct}; median of {RUNS}; ref = the comparison named in the row)\n");
    println!("| measurement | Rustcore store | ref | store / ref |");
    println!("|---|---:|---:|---:|");
    for row in rows {
        let (reference, ratio) = match row.reference {
            Some(reference) => (format!("{reference:.1} {}", row.unit), format!("{:.2}", row.store / reference)),
            None => (String::from("-"), String::from("-")),
        };
        println!("| {} | {:.1} {} | {reference} | {ratio} |", row.name, row.store, row.unit);
    }
}
