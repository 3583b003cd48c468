//! MD5 of several messages at once, one message per SIMD lane: four with
//! SSE2 (every x86_64), eight with AVX2 or sixteen with AVX-512 where a
//! platform installs them ([`install`]).
//!
//! MD5 is a chain of dependent 32-bit additions and rotations, so one
//! message runs at the speed of that chain (~550 MB/s here) however wide
//! the CPU is. Independent messages are not chained to each other: a lane
//! per message runs the same instruction stream over four to sixteen of
//! them. That is what concurrent small PUTs give the store (the S3 ETag of
//! each is its MD5), and [`Md5Batch`] gathers them: the writers that finish
//! in one pass of the executor are hashed together.
//!
//! The lane code is `#[target_feature]` functions, and calling one is
//! `unsafe` (even SSE2's, which every x86_64 has), so the platforms install
//! them as they install CRC32C: the kernel SSE2's, `hosted` the widest its
//! CPU runs. Until then, elsewhere, and for a lone message, the `md-5`
//! crate does the work; it is also the tests' reference.

use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use md5::{Digest, Md5};
use spin::{Mutex, Once};

use crate::block::IoBuf;

/// The widest lane function there is (AVX-512: 16 × 32 bits).
pub const MAX_LANES: usize = 16;

/// [`Md5Batch`] takes jobs of up to this many bytes (a chunk); a leader
/// takes at most [`BATCH_MAX_JOBS`], and no more bytes than its lanes hold
/// chunks, so one poll of the leader hashes at most 16 MiB (AVX-512, ~5 ms)
/// or 4 MiB (SSE2, ~4 ms): a single-core executor is not held up for long.
pub const BATCH_MAX_JOB_BYTES: usize = 1024 * 1024;
pub const BATCH_MAX_JOBS: usize = 64;

/// One lane's work: continue `state` over `data`. A job that ends its
/// message (`message_bytes` set) gets MD5's padding after `data`; one that
/// does not covers whole 64-byte blocks only (the constructors see to it).
#[derive(Clone, Copy, Debug)]
pub struct LaneJob<'a> {
    state: [u32; 4],
    data: &'a [u8],
    message_bytes: Option<u64>,
}

impl<'a> LaneJob<'a> {
    /// The MD5 of all of `message`.
    pub fn message(message: &'a [u8]) -> Self {
        Self { state: INIT, data: message, message_bytes: Some(message.len() as u64) }
    }

    /// `state` continued over whole blocks.
    pub fn blocks(state: [u32; 4], blocks: &'a [[u8; 64]]) -> Self {
        Self { state, data: blocks.as_flattened(), message_bytes: None }
    }

    /// The state after the job ran.
    pub fn state(&self) -> [u32; 4] {
        self.state
    }

    /// The digest, once a job that ends its message ran.
    pub fn digest(&self) -> [u8; 16] {
        state_bytes(self.state)
    }
}

/// Runs up to the function's lane count of jobs at once.
pub type LanesFn = fn(jobs: &mut [LaneJob<'_>]);

/// A lane function, installed by a platform.
#[derive(Clone, Copy)]
pub struct Accelerated {
    pub lanes: usize,
    pub run: LanesFn,
}

impl Accelerated {
    /// MD5 of up to [`Accelerated::lanes`] messages in one call of this
    /// lane code (for its tests and benchmarks).
    pub fn digest_many(&self, messages: &[&[u8]], out: &mut [[u8; 16]]) {
        assert!(messages.len() <= self.lanes, "more messages than lanes");
        digest_with(messages, out, self.run);
    }
}

static ACCELERATED: Once<Accelerated> = Once::new();

/// Installs a lane implementation; the first call wins. It must compute
/// what [`run_portable`] does (the platforms' tests check).
pub fn install(accelerated: Accelerated) {
    assert!((2..=MAX_LANES).contains(&accelerated.lanes), "lane count out of range");
    ACCELERATED.call_once(|| accelerated);
}

/// Lanes of the implementation in use (1: one job at a time).
pub fn lanes() -> usize {
    match ACCELERATED.get() {
        Some(accelerated) => accelerated.lanes,
        None => 1,
    }
}

/// MD5 of one message.
pub fn digest(message: &[u8]) -> [u8; 16] {
    Md5::digest(message).into()
}

/// Runs each job on its own with the `md-5` crate's compression: the
/// reference, and what a lone job costs.
pub fn run_portable(jobs: &mut [LaneJob<'_>]) {
    for job in jobs {
        let (blocks, rest) = job.data.as_chunks::<64>();
        compress(&mut job.state, blocks);
        if let Some(total) = job.message_bytes {
            let mut tail = [0u8; 128];
            let count = padding(rest, total, &mut tail);
            let (tail_blocks, _) = tail[..count * 64].as_chunks::<64>();
            compress(&mut job.state, tail_blocks);
        }
    }
}

/// Runs `jobs`, as many at once as the CPU has lanes for.
pub fn run(jobs: &mut [LaneJob<'_>]) {
    let Some(&Accelerated { lanes: width, run: lanes_fn }) = ACCELERATED.get() else {
        return run_portable(jobs);
    };
    if jobs.len() < 2 {
        return run_portable(jobs);
    }
    // Lanes run until their longest job is done: jobs of similar length
    // together waste the least.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_unstable_by_key(|&i| core::cmp::Reverse(jobs[i].data.len()));
    let mut group: Vec<LaneJob<'_>> = Vec::with_capacity(width);
    for indexes in order.chunks(width) {
        group.clear();
        group.extend(indexes.iter().map(|&i| jobs[i]));
        if group.len() == 1 {
            run_portable(&mut group);
        } else {
            lanes_fn(&mut group);
        }
        for (&i, job) in indexes.iter().zip(&group) {
            jobs[i].state = job.state;
        }
    }
}

/// MD5 of each message, one at a time: the reference.
pub fn digest_many_portable(messages: &[&[u8]], out: &mut [[u8; 16]]) {
    for (message, out) in messages.iter().zip(out) {
        *out = digest(message);
    }
}

/// MD5 of each of `messages` into `out` (the same length), as many at once
/// as the CPU has lanes for.
pub fn digest_many(messages: &[&[u8]], out: &mut [[u8; 16]]) {
    digest_with(messages, out, run);
}

/// MD5 of each message into `out` (the same length), by `run` over one
/// message job each.
fn digest_with(messages: &[&[u8]], out: &mut [[u8; 16]], run: impl FnOnce(&mut [LaneJob<'_>])) {
    assert_eq!(messages.len(), out.len(), "one digest per message");
    let mut jobs: Vec<LaneJob<'_>> = messages.iter().map(|message| LaneJob::message(message)).collect();
    run(&mut jobs);
    for (out, job) in out.iter_mut().zip(&jobs) {
        *out = job.digest();
    }
}

fn compress(state: &mut [u32; 4], blocks: &[[u8; 64]]) {
    md5::block_api::compress(state, blocks);
}

fn state_bytes(state: [u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// An MD5 fed piece by piece, whose whole blocks can be hashed elsewhere
/// (in lanes, beside other streams' blocks): [`Md5Stream::split`] takes a
/// piece, finishes a partial block with its head and says which whole
/// blocks are left; the caller runs them and hands back the state, then the
/// piece's last bytes wait for the next one.
#[derive(Clone, Debug)]
pub struct Md5Stream {
    state: [u32; 4],
    bytes: u64,
    partial: [u8; 64],
    partial_len: usize,
}

impl Default for Md5Stream {
    fn default() -> Self {
        Self::new()
    }
}

impl Md5Stream {
    pub fn new() -> Self {
        Self { state: INIT, bytes: 0, partial: [0; 64], partial_len: 0 }
    }

    /// Takes `data`; returns the range of it that is whole blocks still to
    /// hash (continuing [`Md5Stream::state`], then [`Md5Stream::set_state`])
    /// before [`Md5Stream::keep`] of the rest.
    pub fn split(&mut self, data: &[u8]) -> core::ops::Range<usize> {
        self.bytes += data.len() as u64;
        let mut at = 0;
        if self.partial_len > 0 {
            let take = (64 - self.partial_len).min(data.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&data[..take]);
            self.partial_len += take;
            at = take;
            if self.partial_len < 64 {
                return at..at;
            }
            compress(&mut self.state, &[self.partial]);
            self.partial_len = 0;
        }
        let whole = (data.len() - at) / 64 * 64;
        at..at + whole
    }

    /// The bytes after the range [`Md5Stream::split`] returned (fewer than 64).
    pub fn keep(&mut self, rest: &[u8]) {
        debug_assert!(self.partial_len + rest.len() < 64);
        let take = rest.len().min(64 - self.partial_len);
        self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&rest[..take]);
        self.partial_len += take;
    }

    pub fn state(&self) -> [u32; 4] {
        self.state
    }

    pub fn set_state(&mut self, state: [u32; 4]) {
        self.state = state;
    }

    /// Takes `data`, hashing its blocks here.
    pub fn update(&mut self, data: &[u8]) {
        let whole = self.split(data);
        let (blocks, _) = data[whole.clone()].as_chunks::<64>();
        compress(&mut self.state, blocks);
        self.keep(&data[whole.end..]);
    }

    pub fn finish(self) -> [u8; 16] {
        let mut job =
            LaneJob { state: self.state, data: &self.partial[..self.partial_len], message_bytes: Some(self.bytes) };
        run_portable(core::slice::from_mut(&mut job));
        job.digest()
    }
}

/// MB/s of a lane function against one message at a time, on 4 KiB
/// messages (a small PUT), measured for a few milliseconds: under QEMU's TCG
/// every instruction is emulated, and which is faster is not a given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanesComparison {
    pub lanes_mb_s: u64,
    pub one_at_a_time_mb_s: u64,
}

impl LanesComparison {
    pub fn lanes_win(&self) -> bool {
        self.lanes_mb_s > self.one_at_a_time_mb_s
    }
}

/// Compares `accelerated` with one message at a time, 2 × 2 ms each.
pub fn compare(accelerated: &Accelerated, now_ns: &dyn Fn() -> u64) -> LanesComparison {
    const MESSAGE_BYTES: usize = 4096;
    const BUDGET_NS: u64 = 2_000_000;
    let lanes = accelerated.lanes.clamp(1, MAX_LANES);
    let data: Vec<u8> = (0..lanes * MESSAGE_BYTES).map(|i| (i % 251) as u8).collect();
    let jobs: Vec<LaneJob<'_>> = data.chunks(MESSAGE_BYTES).map(LaneJob::message).collect();
    let rate = |step: &mut dyn FnMut()| {
        step();
        let start = now_ns();
        let (mut bytes, mut elapsed) = (0u64, 0u64);
        while elapsed < BUDGET_NS {
            step();
            bytes += data.len() as u64;
            elapsed = now_ns().saturating_sub(start);
        }
        // bytes/ns * 1000 = MB/s
        bytes * 1000 / elapsed.max(1)
    };
    let mut comparison = LanesComparison { lanes_mb_s: 0, one_at_a_time_mb_s: 0 };
    for _ in 0..2 {
        comparison.lanes_mb_s += rate(&mut || (accelerated.run)(core::hint::black_box(&mut jobs.clone()))) / 2;
        comparison.one_at_a_time_mb_s += rate(&mut || run_portable(core::hint::black_box(&mut jobs.clone()))) / 2;
    }
    comparison
}

/// Gathers the hashing wanted in one pass of the executor and runs it in
/// lanes together: each writer hands over its buffer (with a range of it and
/// where its MD5 stands) and gets it back with the new state.
///
/// The first writer to ask leads: it queues its buffer, wakes itself and
/// yields, so every task the executor runs before it comes back can queue
/// too (after a group commit wakes its batch, that is all of them); then it
/// hashes what is queued and wakes the others. A lone writer pays one extra
/// poll. A leader dropped before its second poll hands the lead on.
#[derive(Default)]
pub struct Md5Batch {
    inner: Mutex<BatchInner>,
}

#[derive(Default)]
struct BatchInner {
    jobs: Vec<Job>,
    next_id: u64,
    leader: Option<u64>,
    /// Jobs run and leader passes that ran them (for tests and metrics).
    jobs_run: u64,
    calls: u64,
}

struct Job {
    id: u64,
    /// `None` while the leader hashes it (or once it is done and taken).
    buf: Option<IoBuf>,
    spec: Spec,
    done: bool,
    waker: Option<Waker>,
}

/// What to hash of a job's buffer: a [`LaneJob`] once the buffer is there.
#[derive(Clone)]
struct Spec {
    range: core::ops::Range<usize>,
    /// The state to continue; the result once the job is done.
    state: [u32; 4],
    /// Set for a job that ends its message (padding follows).
    message_bytes: Option<u64>,
}

impl Spec {
    fn lane_job<'b>(&self, buf: &'b IoBuf) -> LaneJob<'b> {
        LaneJob { state: self.state, data: &buf.as_slice()[self.range.clone()], message_bytes: self.message_bytes }
    }
}

impl Md5Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// MD5 of `buf[..len]`, computed with those asked for in the same pass;
    /// the buffer comes back with it.
    pub async fn digest(&self, buf: IoBuf, len: usize) -> (IoBuf, [u8; 16]) {
        debug_assert!(len <= buf.len(), "digest of more bytes than the buffer holds");
        let len = len.min(buf.len());
        let (buf, state) = self.hash(buf, 0..len, INIT, Some(len as u64)).await;
        (buf, state_bytes(state))
    }

    /// Continues `stream` over `buf[range]`; the buffer comes back.
    pub async fn update(&self, stream: &mut Md5Stream, buf: IoBuf, range: core::ops::Range<usize>) -> IoBuf {
        debug_assert!(range.start <= range.end && range.end <= buf.len(), "range outside the buffer");
        let range = range.start.min(buf.len())..range.end.min(buf.len());
        let whole = stream.split(&buf.as_slice()[range.clone()]);
        let whole = range.start + whole.start..range.start + whole.end;
        if whole.is_empty() {
            stream.keep(&buf.as_slice()[whole.end..range.end]);
            return buf;
        }
        let (buf, state) = self.hash(buf, whole.clone(), stream.state(), None).await;
        stream.set_state(state);
        stream.keep(&buf.as_slice()[whole.end..range.end]);
        buf
    }

    fn hash(
        &self,
        buf: IoBuf,
        range: core::ops::Range<usize>,
        state: [u32; 4],
        message_bytes: Option<u64>,
    ) -> BatchHash<'_> {
        BatchHash { batch: self, state: HashState::New(buf, Spec { range, state, message_bytes }) }
    }

    /// (jobs run, leader passes that ran them).
    pub fn counts(&self) -> (u64, u64) {
        let inner = self.inner.lock();
        (inner.jobs_run, inner.calls)
    }
}

/// The future of one job of an [`Md5Batch`].
struct BatchHash<'a> {
    batch: &'a Md5Batch,
    state: HashState,
}

enum HashState {
    New(IoBuf, Spec),
    Queued(u64),
    Done,
}

impl Future for BatchHash<'_> {
    type Output = (IoBuf, [u32; 4]);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let id = match core::mem::replace(&mut this.state, HashState::Done) {
            HashState::New(buf, spec) => {
                if lanes() < 2 || spec.range.len() > BATCH_MAX_JOB_BYTES {
                    // Nothing to gain from waiting for company.
                    let mut lane_job = spec.lane_job(&buf);
                    run_portable(core::slice::from_mut(&mut lane_job));
                    let state = lane_job.state;
                    return Poll::Ready((buf, state));
                }
                let mut inner = this.batch.inner.lock();
                let id = inner.next_id;
                inner.next_id += 1;
                inner.jobs.push(Job { id, buf: Some(buf), spec, done: false, waker: Some(cx.waker().clone()) });
                let lead = inner.leader.is_none();
                if lead {
                    inner.leader = Some(id);
                }
                drop(inner);
                if lead {
                    // Come back after the tasks already ready have queued.
                    cx.waker().wake_by_ref();
                }
                this.state = HashState::Queued(id);
                return Poll::Pending;
            }
            HashState::Queued(id) => id,
            HashState::Done => panic!("BatchHash polled after completion"),
        };
        let mut inner = this.batch.inner.lock();
        if let Some(done) = take_done(&mut inner, id) {
            return Poll::Ready(done);
        }
        match inner.leader {
            Some(leader) if leader == id => {
                // The leader's own job first, then others up to the limits.
                let byte_limit = lanes().max(1) * BATCH_MAX_JOB_BYTES;
                let mut taken: Vec<(u64, IoBuf, Spec)> = Vec::with_capacity(BATCH_MAX_JOBS);
                let mut bytes = 0;
                let order = inner.jobs.iter().position(|job| job.id == id).into_iter().chain(0..inner.jobs.len());
                let order: Vec<usize> = order.collect();
                for index in order {
                    let job = &mut inner.jobs[index];
                    if job.done || job.buf.is_none() {
                        continue;
                    }
                    if taken.len() == BATCH_MAX_JOBS {
                        break;
                    }
                    if !taken.is_empty() && bytes + job.spec.range.len() > byte_limit {
                        // Smaller jobs behind it may still fit.
                        continue;
                    }
                    bytes += job.spec.range.len();
                    taken.extend(job.buf.take().map(|buf| (job.id, buf, job.spec.clone())));
                }
                drop(inner);
                let mut lane_jobs: Vec<LaneJob<'_>> = taken.iter().map(|(_, buf, spec)| spec.lane_job(buf)).collect();
                run(&mut lane_jobs);
                let states: Vec<[u32; 4]> = lane_jobs.iter().map(LaneJob::state).collect();
                drop(lane_jobs);
                let mut wakers = Vec::with_capacity(taken.len());
                let mut inner = this.batch.inner.lock();
                inner.jobs_run += taken.len() as u64;
                inner.calls += 1;
                inner.leader = None;
                for ((job_id, buf, _), state) in taken.into_iter().zip(states) {
                    // A job dropped meanwhile (only possible across threads) is gone.
                    if let Some(job) = inner.jobs.iter_mut().find(|job| job.id == job_id) {
                        job.buf = Some(buf);
                        job.spec.state = state;
                        job.done = true;
                        wakers.extend(job.waker.take().filter(|_| job_id != id));
                    }
                }
                // Jobs beyond this pass, or queued while the lock was
                // released, get a new leader.
                let BatchInner { jobs, leader, .. } = &mut *inner;
                if let Some(next) = jobs.iter_mut().find(|job| !job.done && job.buf.is_some()) {
                    *leader = Some(next.id);
                    wakers.extend(next.waker.take());
                }
                let done = take_done(&mut inner, id).expect("the leader's own job is done");
                drop(inner);
                wakers.into_iter().for_each(Waker::wake);
                Poll::Ready(done)
            }
            Some(_) => {
                if let Some(job) = inner.jobs.iter_mut().find(|job| job.id == id) {
                    job.waker = Some(cx.waker().clone());
                }
                this.state = HashState::Queued(id);
                Poll::Pending
            }
            None => {
                // No leader (it went away before hashing): lead.
                inner.leader = Some(id);
                drop(inner);
                cx.waker().wake_by_ref();
                this.state = HashState::Queued(id);
                Poll::Pending
            }
        }
    }
}

/// Removes job `id` if it is done.
fn take_done(inner: &mut BatchInner, id: u64) -> Option<(IoBuf, [u32; 4])> {
    let index = inner.jobs.iter().position(|job| job.id == id && job.done && job.buf.is_some())?;
    let job = inner.jobs.swap_remove(index);
    Some((job.buf?, job.spec.state))
}

impl Drop for BatchHash<'_> {
    fn drop(&mut self) {
        let HashState::Queued(id) = self.state else { return };
        let mut inner = self.batch.inner.lock();
        inner.jobs.retain(|job| job.id != id);
        if inner.leader == Some(id) {
            // The next one waiting leads (and passes it on in turn if it is
            // dropped too before it runs).
            let BatchInner { jobs, leader, .. } = &mut *inner;
            *leader = None;
            let mut waker = None;
            if let Some(next) = jobs.iter_mut().find(|job| !job.done && job.buf.is_some()) {
                *leader = Some(next.id);
                waker = next.waker.take();
            }
            drop(inner);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// Initial MD5 state (RFC 1321 §3.3).
const INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// The jobs of one lane group, served block by block (with MD5's padding
/// where a job ends a message), as the transposed 32-bit words the lane code
/// loads.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Lanes<'a, const W: usize> {
    data: [&'a [u8]; W],
    states: [[u32; 4]; W],
    /// The last one or two blocks of a job that ends its message: its
    /// tail, 0x80, zeros and the message's length in bits.
    tails: [[u8; 128]; W],
    full_blocks: [usize; W],
    blocks: [usize; W],
    most_blocks: usize,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl<'a, const W: usize> Lanes<'a, W> {
    /// Lanes beyond `jobs.len()` have no block (and are dropped).
    fn new(jobs: &[LaneJob<'a>]) -> Self {
        assert!(jobs.len() <= W, "more jobs than lanes");
        let mut lanes = Self {
            data: [&[]; W],
            states: [[0; 4]; W],
            tails: [[0; 128]; W],
            full_blocks: [0; W],
            blocks: [0; W],
            most_blocks: 0,
        };
        for (lane, job) in jobs.iter().enumerate() {
            lanes.data[lane] = job.data;
            lanes.states[lane] = job.state;
            let full = job.data.len() / 64;
            let tail_blocks = match job.message_bytes {
                None => 0,
                Some(total) => padding(&job.data[full * 64..], total, &mut lanes.tails[lane]),
            };
            lanes.full_blocks[lane] = full;
            lanes.blocks[lane] = full + tail_blocks;
            lanes.most_blocks = lanes.most_blocks.max(full + tail_blocks);
        }
        lanes
    }

    /// The lanes' starting states, transposed: `[A of every lane, B, C, D]`.
    fn states(&self) -> [[u32; W]; 4] {
        let mut words = [[0; W]; 4];
        for (lane, state) in self.states.iter().enumerate() {
            for (word, value) in words.iter_mut().zip(state) {
                word[lane] = *value;
            }
        }
        words
    }

    /// Block `index` of `lane`, if it has one.
    fn block_bytes(&self, lane: usize, index: usize) -> Option<&[u8]> {
        if index < self.full_blocks[lane] {
            Some(&self.data[lane][index * 64..index * 64 + 64])
        } else if index < self.blocks[lane] {
            let at = (index - self.full_blocks[lane]) * 64;
            Some(&self.tails[lane][at..at + 64])
        } else {
            None
        }
    }

    /// Block `index` of every lane as 16 words × W lanes, and which lanes
    /// still have a block there (all ones) or are done (zero).
    fn block(&self, index: usize, words: &mut [[u32; W]; 16], active: &mut [u32; W]) {
        for lane in 0..W {
            let Some(block) = self.block_bytes(lane, index) else {
                active[lane] = 0;
                for word in words.iter_mut() {
                    word[lane] = 0;
                }
                continue;
            };
            active[lane] = u32::MAX;
            let block: [u32; 16] = bytemuck::pod_read_unaligned(&block[..64]);
            for (word, value) in words.iter_mut().zip(block) {
                word[lane] = u32::from_le(value);
            }
        }
    }
}

/// Writes into `tail` the last blocks of a message of `total` bytes whose
/// last `rest.len()` (< 64) bytes are `rest`: them, 0x80, zeros and the
/// length in bits (RFC 1321 §3.1–3.2); returns how many blocks (1 or 2).
fn padding(rest: &[u8], total: u64, tail: &mut [u8; 128]) -> usize {
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let blocks = if rest.len() + 9 <= 64 { 1 } else { 2 };
    tail[blocks * 64 - 8..blocks * 64].copy_from_slice(&total.wrapping_mul(8).to_le_bytes());
    blocks
}

/// The 64 steps of one MD5 block (RFC 1321 §3.4) over vectors `a..d` and
/// message words `m`, with the lane type's operations as the macros
/// `add!`, `k!` (a constant in every lane), `rotl!`, `f!`, `g!`, `h!`, `i!`
/// in scope where it is used.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_macros))]
macro_rules! md5_block {
    ($m:ident, $a:ident, $b:ident, $c:ident, $d:ident) => {{
        let (mut a, mut b, mut c, mut d) = ($a, $b, $c, $d);
        macro_rules! step {
            ($fun:ident, $w:ident, $x:ident, $y:ident, $z:ident, $g:literal, $s:literal, $k:literal) => {
                $w = add!($x, rotl!(add!(add!($w, $fun!($x, $y, $z)), add!($m[$g], k!($k))), $s));
            };
        }
        step!(f, a, b, c, d, 0, 7, 0xd76aa478);
        step!(f, d, a, b, c, 1, 12, 0xe8c7b756);
        step!(f, c, d, a, b, 2, 17, 0x242070db);
        step!(f, b, c, d, a, 3, 22, 0xc1bdceee);
        step!(f, a, b, c, d, 4, 7, 0xf57c0faf);
        step!(f, d, a, b, c, 5, 12, 0x4787c62a);
        step!(f, c, d, a, b, 6, 17, 0xa8304613);
        step!(f, b, c, d, a, 7, 22, 0xfd469501);
        step!(f, a, b, c, d, 8, 7, 0x698098d8);
        step!(f, d, a, b, c, 9, 12, 0x8b44f7af);
        step!(f, c, d, a, b, 10, 17, 0xffff5bb1);
        step!(f, b, c, d, a, 11, 22, 0x895cd7be);
        step!(f, a, b, c, d, 12, 7, 0x6b901122);
        step!(f, d, a, b, c, 13, 12, 0xfd987193);
        step!(f, c, d, a, b, 14, 17, 0xa679438e);
        step!(f, b, c, d, a, 15, 22, 0x49b40821);
        step!(g, a, b, c, d, 1, 5, 0xf61e2562);
        step!(g, d, a, b, c, 6, 9, 0xc040b340);
        step!(g, c, d, a, b, 11, 14, 0x265e5a51);
        step!(g, b, c, d, a, 0, 20, 0xe9b6c7aa);
        step!(g, a, b, c, d, 5, 5, 0xd62f105d);
        step!(g, d, a, b, c, 10, 9, 0x02441453);
        step!(g, c, d, a, b, 15, 14, 0xd8a1e681);
        step!(g, b, c, d, a, 4, 20, 0xe7d3fbc8);
        step!(g, a, b, c, d, 9, 5, 0x21e1cde6);
        step!(g, d, a, b, c, 14, 9, 0xc33707d6);
        step!(g, c, d, a, b, 3, 14, 0xf4d50d87);
        step!(g, b, c, d, a, 8, 20, 0x455a14ed);
        step!(g, a, b, c, d, 13, 5, 0xa9e3e905);
        step!(g, d, a, b, c, 2, 9, 0xfcefa3f8);
        step!(g, c, d, a, b, 7, 14, 0x676f02d9);
        step!(g, b, c, d, a, 12, 20, 0x8d2a4c8a);
        step!(h, a, b, c, d, 5, 4, 0xfffa3942);
        step!(h, d, a, b, c, 8, 11, 0x8771f681);
        step!(h, c, d, a, b, 11, 16, 0x6d9d6122);
        step!(h, b, c, d, a, 14, 23, 0xfde5380c);
        step!(h, a, b, c, d, 1, 4, 0xa4beea44);
        step!(h, d, a, b, c, 4, 11, 0x4bdecfa9);
        step!(h, c, d, a, b, 7, 16, 0xf6bb4b60);
        step!(h, b, c, d, a, 10, 23, 0xbebfbc70);
        step!(h, a, b, c, d, 13, 4, 0x289b7ec6);
        step!(h, d, a, b, c, 0, 11, 0xeaa127fa);
        step!(h, c, d, a, b, 3, 16, 0xd4ef3085);
        step!(h, b, c, d, a, 6, 23, 0x04881d05);
        step!(h, a, b, c, d, 9, 4, 0xd9d4d039);
        step!(h, d, a, b, c, 12, 11, 0xe6db99e5);
        step!(h, c, d, a, b, 15, 16, 0x1fa27cf8);
        step!(h, b, c, d, a, 2, 23, 0xc4ac5665);
        step!(i, a, b, c, d, 0, 6, 0xf4292244);
        step!(i, d, a, b, c, 7, 10, 0x432aff97);
        step!(i, c, d, a, b, 14, 15, 0xab9423a7);
        step!(i, b, c, d, a, 5, 21, 0xfc93a039);
        step!(i, a, b, c, d, 12, 6, 0x655b59c3);
        step!(i, d, a, b, c, 3, 10, 0x8f0ccc92);
        step!(i, c, d, a, b, 10, 15, 0xffeff47d);
        step!(i, b, c, d, a, 1, 21, 0x85845dd1);
        step!(i, a, b, c, d, 8, 6, 0x6fa87e4f);
        step!(i, d, a, b, c, 15, 10, 0xfe2ce6e0);
        step!(i, c, d, a, b, 6, 15, 0xa3014314);
        step!(i, b, c, d, a, 13, 21, 0x4e0811a1);
        step!(i, a, b, c, d, 4, 6, 0xf7537e82);
        step!(i, d, a, b, c, 11, 10, 0xbd3af235);
        step!(i, c, d, a, b, 2, 15, 0x2ad7d2bb);
        step!(i, b, c, d, a, 9, 21, 0xeb86d391);
        (a, b, c, d)
    }};
}

#[cfg(target_arch = "x86_64")]
pub mod x86 {
    //! The lane functions: SSE2 (4 lanes), AVX2 (8), AVX-512 (16).

    use core::arch::x86_64::*;

    use super::{LaneJob, Lanes};

    /// An SSE2 or AVX2 lane function: the same code over 128- or 256-bit
    /// vectors (neither has a rotate or a three-input logic instruction).
    macro_rules! shift_rotate_lanes {
        ($(#[$doc:meta])* $name:ident, $feature:literal, $lanes:literal, $vector:ty,
         add: $add:ident, set1: $set1:ident, slli: $slli:ident, srli: $srli:ident,
         or: $or:ident, and: $and:ident, xor: $xor:ident, andnot: $andnot:ident) => {
            $(#[$doc])*
            #[target_feature(enable = $feature)]
            pub fn $name(jobs: &mut [LaneJob<'_>]) {
                macro_rules! add {
                    ($x:expr, $y:expr) => {
                        $add($x, $y)
                    };
                }
                macro_rules! k {
                    ($k:expr) => {
                        $set1($k as u32 as i32)
                    };
                }
                macro_rules! rotl {
                    ($x:expr, $s:literal) => {{
                        let x = $x;
                        $or($slli::<$s>(x), $srli::<{ 32 - $s }>(x))
                    }};
                }
                macro_rules! f {
                    ($x:expr, $y:expr, $z:expr) => {
                        $xor($z, $and($x, $xor($y, $z)))
                    };
                }
                macro_rules! g {
                    ($x:expr, $y:expr, $z:expr) => {
                        $xor($y, $and($z, $xor($x, $y)))
                    };
                }
                macro_rules! h {
                    ($x:expr, $y:expr, $z:expr) => {
                        $xor($xor($x, $y), $z)
                    };
                }
                macro_rules! i {
                    ($x:expr, $y:expr, $z:expr) => {
                        // y ^ (x | !z); andnot(z, ones) is !z.
                        $xor($y, $or($x, $andnot($z, $set1(-1))))
                    };
                }
                let lanes = Lanes::<$lanes>::new(jobs);
                let mut state: [$vector; 4] = bytemuck::cast(lanes.states());
                let mut words = [[0u32; $lanes]; 16];
                let mut active = [0u32; $lanes];
                for index in 0..lanes.most_blocks {
                    lanes.block(index, &mut words, &mut active);
                    let m: [$vector; 16] = bytemuck::cast(words);
                    let mask: $vector = bytemuck::cast(active);
                    let [a0, b0, c0, d0] = state;
                    let (a, b, c, d) = md5_block!(m, a0, b0, c0, d0);
                    // Lanes whose job is done keep their state.
                    let select = |new: $vector, old: $vector| $or($and(mask, $add(old, new)), $andnot(mask, old));
                    state = [select(a, a0), select(b, b0), select(c, c0), select(d, d0)];
                }
                let words: [[u32; $lanes]; 4] = bytemuck::cast(state);
                super::store(&words, jobs);
            }
        };
    }

    shift_rotate_lanes!(
        /// Runs up to 4 jobs. SSE2 is part of x86_64, but calling a
        /// target-feature function is `unsafe` all the same.
        ///
        /// # Safety
        /// Only on a CPU with SSE2 (every x86_64).
        run_sse2, "sse2", 4, __m128i,
        add: _mm_add_epi32, set1: _mm_set1_epi32, slli: _mm_slli_epi32, srli: _mm_srli_epi32,
        or: _mm_or_si128, and: _mm_and_si128, xor: _mm_xor_si128, andnot: _mm_andnot_si128
    );

    shift_rotate_lanes!(
        /// Runs up to 8 jobs.
        ///
        /// # Safety
        /// Only on a CPU with AVX2.
        run_avx2, "avx2", 8, __m256i,
        add: _mm256_add_epi32, set1: _mm256_set1_epi32, slli: _mm256_slli_epi32, srli: _mm256_srli_epi32,
        or: _mm256_or_si256, and: _mm256_and_si256, xor: _mm256_xor_si256, andnot: _mm256_andnot_si256
    );

    /// Runs up to 16 jobs.
    ///
    /// # Safety
    /// Only on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub fn run_avx512(jobs: &mut [LaneJob<'_>]) {
        macro_rules! add {
            ($x:expr, $y:expr) => {
                _mm512_add_epi32($x, $y)
            };
        }
        macro_rules! k {
            ($k:expr) => {
                _mm512_set1_epi32($k as u32 as i32)
            };
        }
        macro_rules! rotl {
            ($x:expr, $s:literal) => {
                _mm512_rol_epi32::<$s>($x)
            };
        }
        // Truth tables of the round functions over (x, y, z) for
        // VPTERNLOGD: bit (x << 2 | y << 1 | z) of the immediate.
        macro_rules! f {
            ($x:expr, $y:expr, $z:expr) => {
                _mm512_ternarylogic_epi32::<0xCA>($x, $y, $z)
            };
        }
        macro_rules! g {
            ($x:expr, $y:expr, $z:expr) => {
                _mm512_ternarylogic_epi32::<0xE4>($x, $y, $z)
            };
        }
        macro_rules! h {
            ($x:expr, $y:expr, $z:expr) => {
                _mm512_ternarylogic_epi32::<0x96>($x, $y, $z)
            };
        }
        macro_rules! i {
            ($x:expr, $y:expr, $z:expr) => {
                _mm512_ternarylogic_epi32::<0x39>($x, $y, $z)
            };
        }
        let lanes = Lanes::<16>::new(jobs);
        let mut state: [__m512i; 4] = bytemuck::cast(lanes.states());
        for index in 0..lanes.most_blocks {
            // Each lane's block is one 512-bit row; transposed, vector w
            // holds word w of every lane.
            let mut rows = [_mm512_setzero_si512(); 16];
            let mut mask: __mmask16 = 0;
            for (lane, row) in rows.iter_mut().enumerate() {
                if let Some(block) = lanes.block_bytes(lane, index) {
                    *row = bytemuck::pod_read_unaligned(block);
                    mask |= 1 << lane;
                }
            }
            let m = transpose(rows);
            let [a0, b0, c0, d0] = state;
            let (a, b, c, d) = md5_block!(m, a0, b0, c0, d0);
            let select = |new: __m512i, old: __m512i| _mm512_mask_add_epi32(old, mask, old, new);
            state = [select(a, a0), select(b, b0), select(c, c0), select(d, d0)];
        }
        let words: [[u32; 16]; 4] = bytemuck::cast(state);
        super::store(&words, jobs);
    }

    /// The 16 × 16 transpose of 32-bit words: `out[w]` word `l` is
    /// `rows[l]` word `w` (interleave 32-bit, then 64-bit pairs, which
    /// transposes each 4 × 4 within the 128-bit quarters; then move the
    /// quarters).
    #[target_feature(enable = "avx512f")]
    fn transpose(rows: [__m512i; 16]) -> [__m512i; 16] {
        let t: [__m512i; 16] = core::array::from_fn(|i| {
            let (a, b) = (rows[i & !1], rows[i | 1]);
            if i % 2 == 0 { _mm512_unpacklo_epi32(a, b) } else { _mm512_unpackhi_epi32(a, b) }
        });
        // u[4i + j], quarter q: word 4q + j of rows 4i .. 4i + 3.
        let u: [__m512i; 16] = core::array::from_fn(|k| {
            let (i, j) = (k / 4, k % 4);
            let (a, b) = (t[4 * i + j / 2], t[4 * i + 2 + j / 2]);
            if j % 2 == 0 { _mm512_unpacklo_epi64(a, b) } else { _mm512_unpackhi_epi64(a, b) }
        });
        let mut out = [_mm512_setzero_si512(); 16];
        for j in 0..4 {
            let (a, b, c, d) = (u[j], u[4 + j], u[8 + j], u[12 + j]);
            let low = (_mm512_shuffle_i32x4::<0x44>(a, b), _mm512_shuffle_i32x4::<0x44>(c, d));
            let high = (_mm512_shuffle_i32x4::<0xEE>(a, b), _mm512_shuffle_i32x4::<0xEE>(c, d));
            out[j] = _mm512_shuffle_i32x4::<0x88>(low.0, low.1);
            out[4 + j] = _mm512_shuffle_i32x4::<0xDD>(low.0, low.1);
            out[8 + j] = _mm512_shuffle_i32x4::<0x88>(high.0, high.1);
            out[12 + j] = _mm512_shuffle_i32x4::<0xDD>(high.0, high.1);
        }
        out
    }
}

/// Lane `l` of `words[0..4]` is job `l`'s new state A, B, C, D.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn store<const W: usize>(words: &[[u32; W]; 4], jobs: &mut [LaneJob<'_>]) {
    for (lane, job) in jobs.iter_mut().enumerate() {
        job.state = [words[0][lane], words[1][lane], words[2][lane], words[3][lane]];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use alloc::vec;
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// Batching needs lanes; the reference function posing as four of them
    /// exercises the batch logic (the platforms test the real lane code).
    fn lanes_on() {
        install(Accelerated { lanes: 4, run: run_portable });
    }

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn poll<F: Future + Unpin>(future: &mut F, wakes: &Arc<Wakes>) -> Poll<F::Output> {
        Pin::new(future).poll(&mut Context::from_waker(&Waker::from(wakes.clone())))
    }

    type Digesting<'a> = Pin<Box<dyn Future<Output = (IoBuf, [u8; 16])> + 'a>>;

    /// Three digests queued (polled once each): the first leads.
    fn three_queued<'a>(batch: &'a Md5Batch, messages: [&[u8]; 3]) -> ([Digesting<'a>; 3], [Arc<Wakes>; 3]) {
        let wakes: [Arc<Wakes>; 3] = Default::default();
        let mut futures = messages.map(|m| Box::pin(batch.digest(IoBuf::from_slice(m), m.len())) as Digesting<'a>);
        for (future, wakes) in futures.iter_mut().zip(&wakes) {
            assert!(poll(future, wakes).is_pending());
        }
        (futures, wakes)
    }

    fn message(i: usize) -> Vec<u8> {
        (0..i * 97 % 5000).map(|j| (i * 31 + j) as u8).collect()
    }

    #[test]
    fn writers_finishing_in_one_pass_are_hashed_together() {
        lanes_on();
        let batch = Md5Batch::new();
        let messages: Vec<Vec<u8>> = (0..40).map(message).collect();
        let mut futures: Vec<_> =
            messages.iter().map(|m| Box::pin(batch.digest(IoBuf::from_slice(m), m.len()))).collect();
        let wakes: Vec<Arc<Wakes>> = (0..futures.len()).map(|_| Arc::default()).collect();
        let mut results: Vec<Option<(IoBuf, [u8; 16])>> = (0..futures.len()).map(|_| None).collect();
        // First pass: everyone queues; the first leads and woke itself.
        for (future, wakes) in futures.iter_mut().zip(&wakes) {
            assert!(poll(future, wakes).is_pending());
        }
        assert_eq!(wakes[0].0.load(Ordering::Relaxed), 1, "the leader woke itself");
        assert!(wakes[1..].iter().all(|w| w.0.load(Ordering::Relaxed) == 0));
        // The leader hashes all 40 and wakes the others.
        let Poll::Ready(first) = poll(&mut futures[0], &wakes[0]) else { panic!("the leader hashes") };
        results[0] = Some(first);
        assert!(wakes[1..].iter().all(|w| w.0.load(Ordering::Relaxed) == 1), "every follower woken once");
        for i in 1..futures.len() {
            let Poll::Ready(done) = poll(&mut futures[i], &wakes[i]) else { panic!("follower {i} done") };
            results[i] = Some(done);
        }
        for (i, result) in results.into_iter().enumerate() {
            let (buf, md5) = result.unwrap();
            assert_eq!(md5, digest(&messages[i]), "message {i}");
            assert_eq!(&buf.as_slice()[..messages[i].len()], &messages[i][..], "buffer {i} comes back intact");
        }
        assert_eq!(batch.counts(), (40, 1));
        assert!(batch.inner.lock().jobs.is_empty());
    }

    #[test]
    fn a_leader_dropped_before_hashing_passes_the_lead_on() {
        lanes_on();
        let batch = Md5Batch::new();
        let (a, b, c) = (message(3), message(7), message(11));
        let ([leader, second, third], wakes) = three_queued(&batch, [&a, &b, &c]);
        drop(leader);
        assert_eq!(wakes[1].0.load(Ordering::Relaxed) + wakes[2].0.load(Ordering::Relaxed), 1, "one takes over");
        let (mut next, next_wakes, next_message, mut other, other_wakes, other_message) =
            if wakes[1].0.load(Ordering::Relaxed) == 1 {
                (second, &wakes[1], &b, third, &wakes[2], &c)
            } else {
                (third, &wakes[2], &c, second, &wakes[1], &b)
            };
        // It leads: hashes both that are left when it runs.
        let Poll::Ready((_, md5)) = poll(&mut next, next_wakes) else { panic!("the new leader hashes") };
        assert_eq!(md5, digest(next_message));
        let Poll::Ready((_, md5)) = poll(&mut other, other_wakes) else { panic!("the other is done") };
        assert_eq!(md5, digest(other_message));
        assert_eq!(batch.counts(), (2, 1));
        assert!(batch.inner.lock().jobs.is_empty());
    }

    #[test]
    fn a_lead_passed_to_a_follower_that_is_dropped_too_passes_on() {
        lanes_on();
        let batch = Md5Batch::new();
        let (a, b, c) = (message(8), message(9), message(10));
        let ([leader, second, mut third], wakes) = three_queued(&batch, [&a, &b, &c]);
        // The leader and the one it handed the lead to both go away.
        drop(leader);
        assert_eq!(wakes[1].0.load(Ordering::Relaxed), 1, "the first one waiting takes over");
        drop(second);
        assert_eq!(wakes[2].0.load(Ordering::Relaxed), 1, "and passes it on");
        let Poll::Ready((_, md5)) = poll(&mut third, &wakes[2]) else { panic!("the last one hashes") };
        assert_eq!(md5, digest(&c));
        assert_eq!(batch.counts(), (1, 1));
        assert!(batch.inner.lock().jobs.is_empty());
    }

    #[test]
    fn a_leader_takes_at_most_the_limit_and_hands_on_the_rest() {
        lanes_on();
        let batch = Md5Batch::new();
        let count = BATCH_MAX_JOBS + 10;
        let messages: Vec<Vec<u8>> = (0..count).map(message).collect();
        let mut futures: Vec<_> =
            messages.iter().map(|m| Box::pin(batch.digest(IoBuf::from_slice(m), m.len()))).collect();
        let wakes: Vec<Arc<Wakes>> = (0..count).map(|_| Arc::default()).collect();
        let mut done = vec![false; count];
        // Poll whoever was woken until all are done, like an executor.
        for (future, wakes) in futures.iter_mut().zip(&wakes) {
            assert!(poll(future, wakes).is_pending());
        }
        let mut seen = vec![0; count];
        for _ in 0..4 {
            for i in 0..count {
                let woken = wakes[i].0.load(Ordering::Relaxed);
                if done[i] || woken == seen[i] {
                    continue;
                }
                seen[i] = woken;
                if let Poll::Ready((_, md5)) = poll(&mut futures[i], &wakes[i]) {
                    assert_eq!(md5, digest(&messages[i]));
                    done[i] = true;
                }
            }
        }
        assert!(done.iter().all(|&d| d), "every digest delivered");
        assert_eq!(batch.counts(), (count as u64, 2));
        // A message above the batch limit is hashed at once, alone.
        let big = vec![7u8; BATCH_MAX_JOB_BYTES + 1];
        let mut alone = Box::pin(batch.digest(IoBuf::from_slice(&big), big.len()));
        let Poll::Ready((_, md5)) = poll(&mut alone, &wakes[0]) else { panic!("hashed at once") };
        assert_eq!(md5, digest(&big));
    }

    #[test]
    fn a_stream_fed_in_any_pieces_matches_md5() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for piece in [1usize, 7, 63, 64, 65, 100, 128, 1000, 4096, 10_000] {
            let mut stream = Md5Stream::new();
            for part in data.chunks(piece) {
                stream.update(part);
            }
            assert_eq!(stream.finish(), digest(&data), "pieces of {piece}");
        }
        assert_eq!(Md5Stream::new().finish(), digest(b""));
    }

    #[test]
    fn streams_continued_in_a_batch_match_md5() {
        lanes_on();
        let batch = Md5Batch::new();
        // Three streams fed pieces of uneven sizes in turn, their whole
        // blocks hashed together in the batch.
        let datas: Vec<Vec<u8>> = (0..3).map(|i| message(i + 40).repeat(3)).collect();
        let mut streams = [Md5Stream::new(), Md5Stream::new(), Md5Stream::new()];
        let pieces = [100usize, 3000, 1, 4500, 64, 777];
        let mut offsets = [0usize; 3];
        for &piece in pieces.iter().cycle().take(40) {
            let wakes: Vec<Arc<Wakes>> = (0..3).map(|_| Arc::default()).collect();
            let mut futures: Vec<_> = streams
                .iter_mut()
                .zip(&datas)
                .zip(&mut offsets)
                .map(|((stream, data), offset)| {
                    let end = (*offset + piece).min(data.len());
                    let range = *offset..end;
                    *offset = end;
                    Box::pin(batch.update(stream, IoBuf::from_slice(data), range))
                })
                .collect();
            let mut done = [false; 3];
            for _ in 0..3 {
                for (i, future) in futures.iter_mut().enumerate() {
                    if !done[i] {
                        done[i] = poll(future, &wakes[i]).is_ready();
                    }
                }
            }
            assert!(done.iter().all(|&d| d));
        }
        for ((stream, data), offset) in streams.into_iter().zip(&datas).zip(offsets) {
            assert_eq!(stream.finish(), digest(&data[..offset]));
        }
    }

    #[test]
    fn a_dropped_follower_leaves_nothing_behind() {
        lanes_on();
        let batch = Md5Batch::new();
        let (a, b) = (message(5), message(6));
        let mut leader = Box::pin(batch.digest(IoBuf::from_slice(&a), a.len()));
        let mut follower = Box::pin(batch.digest(IoBuf::from_slice(&b), b.len()));
        let wakes: [Arc<Wakes>; 2] = Default::default();
        assert!(poll(&mut leader, &wakes[0]).is_pending());
        assert!(poll(&mut follower, &wakes[1]).is_pending());
        drop(follower);
        let Poll::Ready((_, md5)) = poll(&mut leader, &wakes[0]) else { panic!("the leader hashes") };
        assert_eq!(md5, digest(&a));
        assert_eq!(batch.counts(), (1, 1));
        assert!(batch.inner.lock().jobs.is_empty());
    }

    #[test]
    fn digest_many_matches_one_at_a_time_in_any_grouping() {
        lanes_on();
        let messages: Vec<Vec<u8>> = (0..23).map(message).collect();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        for count in 0..refs.len() {
            let mut out = vec![[0u8; 16]; count];
            digest_many(&refs[..count], &mut out);
            for (message, md5) in refs.iter().zip(&out) {
                assert_eq!(*md5, digest(message));
            }
        }
    }
}
