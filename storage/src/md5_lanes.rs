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

/// [`Md5Batch`] hashes messages up to this size together; a larger one is
/// hashed at once by its own task, and a leader takes at most
/// [`BATCH_MAX_MESSAGES`]: one poll of the leader hashes at most 4 MiB, so a
/// single-core executor is never held up for long by it.
pub const BATCH_MAX_MESSAGE_BYTES: usize = 64 * 1024;
pub const BATCH_MAX_MESSAGES: usize = 64;

/// MD5 of `messages` (at most the function's lane count), into `out`
/// (the same length).
pub type LanesFn = fn(messages: &[&[u8]], out: &mut [[u8; 16]]);

/// A lane function, installed by a platform.
#[derive(Clone, Copy)]
pub struct Accelerated {
    pub lanes: usize,
    pub digest: LanesFn,
}

static ACCELERATED: Once<Accelerated> = Once::new();

/// Installs a lane implementation; the first call wins. It must compute
/// what [`digest_many_portable`] does (the platforms' tests check).
pub fn install(accelerated: Accelerated) {
    assert!((2..=MAX_LANES).contains(&accelerated.lanes), "lane count out of range");
    ACCELERATED.call_once(|| accelerated);
}

/// Lanes of the implementation in use (1: one message at a time).
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

/// MD5 of each message, one at a time: the reference.
pub fn digest_many_portable(messages: &[&[u8]], out: &mut [[u8; 16]]) {
    for (message, out) in messages.iter().zip(out) {
        *out = digest(message);
    }
}

/// MD5 of each of `messages` into `out` (the same length), as many at once
/// as the CPU has lanes for.
pub fn digest_many(messages: &[&[u8]], out: &mut [[u8; 16]]) {
    assert_eq!(messages.len(), out.len(), "one digest per message");
    let Some(&Accelerated { lanes: width, digest: lanes_fn }) = ACCELERATED.get() else {
        return digest_many_portable(messages, out);
    };
    if messages.len() < 2 {
        return digest_many_portable(messages, out);
    }
    // Lanes run until their longest message is done: hashing messages of
    // similar length together wastes the least.
    let mut order: Vec<usize> = (0..messages.len()).collect();
    order.sort_unstable_by_key(|&i| core::cmp::Reverse(messages[i].len()));
    let mut group: Vec<&[u8]> = Vec::with_capacity(width);
    let mut digests = [[0u8; 16]; MAX_LANES];
    for indexes in order.chunks(width) {
        if indexes.len() == 1 {
            out[indexes[0]] = digest(messages[indexes[0]]);
            continue;
        }
        group.clear();
        group.extend(indexes.iter().map(|&i| messages[i]));
        lanes_fn(&group, &mut digests[..group.len()]);
        for (&i, digest) in indexes.iter().zip(&digests) {
            out[i] = *digest;
        }
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
    let messages: Vec<&[u8]> = data.chunks(MESSAGE_BYTES).collect();
    let mut out = [[0u8; 16]; MAX_LANES];
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
        comparison.lanes_mb_s += rate(&mut || (accelerated.digest)(&messages, &mut out[..lanes])) / 2;
        comparison.one_at_a_time_mb_s += rate(&mut || digest_many_portable(&messages, &mut out[..lanes])) / 2;
    }
    core::hint::black_box(&out);
    comparison
}

/// Gathers the MD5s wanted in one pass of the executor and computes them in
/// lanes together: each writer hands over its buffer and gets it back with
/// the digest.
///
/// The first writer to ask leads: it queues its buffer, wakes itself and
/// yields, so every task the executor runs before it comes back can queue
/// too (after a group commit wakes its batch, that is all of them); then it
/// hashes whatever is queued and wakes the others. A lone writer pays one
/// extra poll. A leader dropped before its second poll passes the lead on.
#[derive(Default)]
pub struct Md5Batch {
    inner: Mutex<BatchInner>,
}

#[derive(Default)]
struct BatchInner {
    jobs: Vec<Job>,
    next_id: u64,
    leader: Option<u64>,
    /// Digests computed and lane calls made (for tests and metrics).
    digests: u64,
    calls: u64,
}

struct Job {
    id: u64,
    /// `None` while the leader hashes it (or once it is done and taken).
    buf: Option<IoBuf>,
    len: usize,
    digest: Option<[u8; 16]>,
    waker: Option<Waker>,
}

impl Md5Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// MD5 of `buf[..len]`, computed with those asked for in the same pass;
    /// the buffer comes back with it.
    pub fn digest(&self, buf: IoBuf, len: usize) -> BatchDigest<'_> {
        assert!(len <= buf.len(), "digest of more bytes than the buffer holds");
        BatchDigest { batch: self, state: DigestState::New(buf, len) }
    }

    /// (digests computed, batches they were computed in).
    pub fn counts(&self) -> (u64, u64) {
        let inner = self.inner.lock();
        (inner.digests, inner.calls)
    }
}

/// The future of [`Md5Batch::digest`].
pub struct BatchDigest<'a> {
    batch: &'a Md5Batch,
    state: DigestState,
}

enum DigestState {
    New(IoBuf, usize),
    Queued(u64),
    Done,
}

impl Future for BatchDigest<'_> {
    type Output = (IoBuf, [u8; 16]);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let id = match core::mem::replace(&mut this.state, DigestState::Done) {
            DigestState::New(buf, len) => {
                if lanes() < 2 || len > BATCH_MAX_MESSAGE_BYTES {
                    // Nothing to gain from waiting for company.
                    let digest = digest(&buf.as_slice()[..len]);
                    return Poll::Ready((buf, digest));
                }
                let mut inner = this.batch.inner.lock();
                let id = inner.next_id;
                inner.next_id += 1;
                inner.jobs.push(Job { id, buf: Some(buf), len, digest: None, waker: Some(cx.waker().clone()) });
                let lead = inner.leader.is_none();
                if lead {
                    inner.leader = Some(id);
                }
                drop(inner);
                if lead {
                    // Come back after the tasks already ready have queued.
                    cx.waker().wake_by_ref();
                }
                this.state = DigestState::Queued(id);
                return Poll::Pending;
            }
            DigestState::Queued(id) => id,
            DigestState::Done => panic!("BatchDigest polled after completion"),
        };
        let mut inner = this.batch.inner.lock();
        if let Some(done) = take_done(&mut inner, id) {
            return Poll::Ready(done);
        }
        match inner.leader {
            Some(leader) if leader == id => {
                // The leader's own job first, then others up to the limit.
                let mut queued: Vec<(u64, IoBuf, usize)> = Vec::with_capacity(BATCH_MAX_MESSAGES);
                for job in inner.jobs.iter_mut().filter(|job| job.id == id) {
                    queued.extend(job.buf.take().map(|buf| (job.id, buf, job.len)));
                }
                for job in inner.jobs.iter_mut().filter(|job| job.digest.is_none()) {
                    if queued.len() == BATCH_MAX_MESSAGES {
                        break;
                    }
                    queued.extend(job.buf.take().map(|buf| (job.id, buf, job.len)));
                }
                drop(inner);
                let messages: Vec<&[u8]> = queued.iter().map(|(_, buf, len)| &buf.as_slice()[..*len]).collect();
                let mut digests = alloc::vec![[0u8; 16]; messages.len()];
                digest_many(&messages, &mut digests);
                drop(messages);
                let mut wakers = Vec::with_capacity(queued.len());
                let mut inner = this.batch.inner.lock();
                inner.digests += queued.len() as u64;
                inner.calls += 1;
                inner.leader = None;
                for ((job_id, buf, _), digest) in queued.into_iter().zip(digests) {
                    // A job dropped meanwhile (only possible across threads) is gone.
                    if let Some(job) = inner.jobs.iter_mut().find(|job| job.id == job_id) {
                        job.buf = Some(buf);
                        job.digest = Some(digest);
                        wakers.extend(job.waker.take().filter(|_| job_id != id));
                    }
                }
                // Jobs beyond this batch, or queued while the lock was
                // released, get a new leader.
                let BatchInner { jobs, leader, .. } = &mut *inner;
                if let Some(next) = jobs.iter_mut().find(|job| job.digest.is_none() && job.buf.is_some()) {
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
                this.state = DigestState::Queued(id);
                Poll::Pending
            }
            None => {
                // No leader (it went away before hashing): lead.
                inner.leader = Some(id);
                drop(inner);
                cx.waker().wake_by_ref();
                this.state = DigestState::Queued(id);
                Poll::Pending
            }
        }
    }
}

/// Removes job `id` if its digest is there.
fn take_done(inner: &mut BatchInner, id: u64) -> Option<(IoBuf, [u8; 16])> {
    let index = inner.jobs.iter().position(|job| job.id == id && job.digest.is_some() && job.buf.is_some())?;
    let job = inner.jobs.swap_remove(index);
    Some((job.buf?, job.digest?))
}

impl Drop for BatchDigest<'_> {
    fn drop(&mut self) {
        let DigestState::Queued(id) = self.state else { return };
        let mut inner = self.batch.inner.lock();
        inner.jobs.retain(|job| job.id != id);
        if inner.leader == Some(id) {
            // The next one waiting leads (and passes it on in turn if it is
            // dropped too before it runs).
            let BatchInner { jobs, leader, .. } = &mut *inner;
            *leader = None;
            let mut waker = None;
            if let Some(next) = jobs.iter_mut().find(|job| job.digest.is_none() && job.buf.is_some()) {
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
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// The messages of one lane group, served block by block with MD5's
/// padding, as the transposed 32-bit words the lane code loads.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Lanes<'a, const W: usize> {
    messages: [&'a [u8]; W],
    /// The last one or two blocks of each message: its tail, 0x80, zeros
    /// and the length in bits.
    tails: [[u8; 128]; W],
    full_blocks: [usize; W],
    blocks: [usize; W],
    most_blocks: usize,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl<'a, const W: usize> Lanes<'a, W> {
    /// Lanes beyond `messages.len()` hash an empty message (and are dropped).
    fn new(messages: &[&'a [u8]]) -> Self {
        assert!(messages.len() <= W, "more messages than lanes");
        let mut lanes =
            Self { messages: [&[]; W], tails: [[0; 128]; W], full_blocks: [0; W], blocks: [0; W], most_blocks: 0 };
        for (lane, message) in messages.iter().enumerate() {
            lanes.messages[lane] = message;
        }
        for lane in 0..W {
            let message = lanes.messages[lane];
            let full = message.len() / 64;
            let rest = &message[full * 64..];
            let tail = &mut lanes.tails[lane];
            tail[..rest.len()].copy_from_slice(rest);
            tail[rest.len()] = 0x80;
            let tail_blocks = if rest.len() + 9 <= 64 { 1 } else { 2 };
            let bits = (message.len() as u64).wrapping_mul(8);
            tail[tail_blocks * 64 - 8..tail_blocks * 64].copy_from_slice(&bits.to_le_bytes());
            lanes.full_blocks[lane] = full;
            lanes.blocks[lane] = full + tail_blocks;
            lanes.most_blocks = lanes.most_blocks.max(full + tail_blocks);
        }
        lanes
    }

    /// Block `index` of every lane as 16 words × W lanes, and which lanes
    /// still have a block there (all ones) or are done (zero).
    fn block(&self, index: usize, words: &mut [[u32; W]; 16], active: &mut [u32; W]) {
        for lane in 0..W {
            let block: &[u8] = if index < self.full_blocks[lane] {
                &self.messages[lane][index * 64..index * 64 + 64]
            } else if index < self.blocks[lane] {
                let at = (index - self.full_blocks[lane]) * 64;
                &self.tails[lane][at..at + 64]
            } else {
                active[lane] = 0;
                for word in words.iter_mut() {
                    word[lane] = 0;
                }
                continue;
            };
            active[lane] = u32::MAX;
            for (word, bytes) in words.iter_mut().zip(block.chunks_exact(4)) {
                word[lane] = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
        }
    }
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

    use super::{INIT, Lanes};

    /// MD5 of up to 4 messages. SSE2 is part of x86_64, but calling a
    /// target-feature function is `unsafe` all the same.
    ///
    /// # Safety
    /// Only on a CPU with SSE2 (every x86_64).
    #[target_feature(enable = "sse2")]
    pub fn digest_sse2(messages: &[&[u8]], out: &mut [[u8; 16]]) {
        macro_rules! add {
            ($x:expr, $y:expr) => {
                _mm_add_epi32($x, $y)
            };
        }
        macro_rules! k {
            ($k:expr) => {
                _mm_set1_epi32($k as u32 as i32)
            };
        }
        macro_rules! rotl {
            ($x:expr, $s:literal) => {{
                let x = $x;
                _mm_or_si128(_mm_slli_epi32::<$s>(x), _mm_srli_epi32::<{ 32 - $s }>(x))
            }};
        }
        macro_rules! f {
            ($x:expr, $y:expr, $z:expr) => {
                _mm_xor_si128($z, _mm_and_si128($x, _mm_xor_si128($y, $z)))
            };
        }
        macro_rules! g {
            ($x:expr, $y:expr, $z:expr) => {
                _mm_xor_si128($y, _mm_and_si128($z, _mm_xor_si128($x, $y)))
            };
        }
        macro_rules! h {
            ($x:expr, $y:expr, $z:expr) => {
                _mm_xor_si128(_mm_xor_si128($x, $y), $z)
            };
        }
        macro_rules! i {
            ($x:expr, $y:expr, $z:expr) => {
                // y ^ (x | !z); andnot(z, ones) is !z.
                _mm_xor_si128($y, _mm_or_si128($x, _mm_andnot_si128($z, _mm_set1_epi32(-1))))
            };
        }
        let lanes = Lanes::<4>::new(messages);
        let mut state: [__m128i; 4] = INIT.map(|word| _mm_set1_epi32(word as i32));
        let mut words = [[0u32; 4]; 16];
        let mut active = [0u32; 4];
        for index in 0..lanes.most_blocks {
            lanes.block(index, &mut words, &mut active);
            let m: [__m128i; 16] = bytemuck::cast(words);
            let mask: __m128i = bytemuck::cast(active);
            let [a0, b0, c0, d0] = state;
            let (a, b, c, d) = md5_block!(m, a0, b0, c0, d0);
            let select = |new: __m128i, old: __m128i| {
                _mm_or_si128(_mm_and_si128(mask, _mm_add_epi32(old, new)), _mm_andnot_si128(mask, old))
            };
            state = [select(a, a0), select(b, b0), select(c, c0), select(d, d0)];
        }
        let words: [[u32; 4]; 4] = bytemuck::cast(state);
        super::store(&words, out);
    }

    /// MD5 of up to 8 messages.
    ///
    /// # Safety
    /// Only on a CPU with AVX2.
    #[target_feature(enable = "avx2")]
    pub fn digest_avx2(messages: &[&[u8]], out: &mut [[u8; 16]]) {
        macro_rules! add {
            ($x:expr, $y:expr) => {
                _mm256_add_epi32($x, $y)
            };
        }
        macro_rules! k {
            ($k:expr) => {
                _mm256_set1_epi32($k as u32 as i32)
            };
        }
        macro_rules! rotl {
            ($x:expr, $s:literal) => {{
                let x = $x;
                _mm256_or_si256(_mm256_slli_epi32::<$s>(x), _mm256_srli_epi32::<{ 32 - $s }>(x))
            }};
        }
        macro_rules! f {
            ($x:expr, $y:expr, $z:expr) => {
                _mm256_xor_si256($z, _mm256_and_si256($x, _mm256_xor_si256($y, $z)))
            };
        }
        macro_rules! g {
            ($x:expr, $y:expr, $z:expr) => {
                _mm256_xor_si256($y, _mm256_and_si256($z, _mm256_xor_si256($x, $y)))
            };
        }
        macro_rules! h {
            ($x:expr, $y:expr, $z:expr) => {
                _mm256_xor_si256(_mm256_xor_si256($x, $y), $z)
            };
        }
        macro_rules! i {
            ($x:expr, $y:expr, $z:expr) => {
                _mm256_xor_si256($y, _mm256_or_si256($x, _mm256_andnot_si256($z, _mm256_set1_epi32(-1))))
            };
        }
        let lanes = Lanes::<8>::new(messages);
        let mut state: [__m256i; 4] = INIT.map(|word| _mm256_set1_epi32(word as i32));
        let mut words = [[0u32; 8]; 16];
        let mut active = [0u32; 8];
        for index in 0..lanes.most_blocks {
            lanes.block(index, &mut words, &mut active);
            let m: [__m256i; 16] = bytemuck::cast(words);
            let mask: __m256i = bytemuck::cast(active);
            let [a0, b0, c0, d0] = state;
            let (a, b, c, d) = md5_block!(m, a0, b0, c0, d0);
            let select = |new: __m256i, old: __m256i| _mm256_blendv_epi8(old, _mm256_add_epi32(old, new), mask);
            state = [select(a, a0), select(b, b0), select(c, c0), select(d, d0)];
        }
        let words: [[u32; 8]; 4] = bytemuck::cast(state);
        super::store(&words, out);
    }

    /// MD5 of up to 16 messages.
    ///
    /// # Safety
    /// Only on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub fn digest_avx512(messages: &[&[u8]], out: &mut [[u8; 16]]) {
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
        let lanes = Lanes::<16>::new(messages);
        let mut state: [__m512i; 4] = INIT.map(|word| _mm512_set1_epi32(word as i32));
        let mut words = [[0u32; 16]; 16];
        let mut active = [0u32; 16];
        for index in 0..lanes.most_blocks {
            lanes.block(index, &mut words, &mut active);
            let m: [__m512i; 16] = bytemuck::cast(words);
            let mut mask: __mmask16 = 0;
            for (lane, &on) in active.iter().enumerate() {
                mask |= u16::from(on != 0) << lane;
            }
            let [a0, b0, c0, d0] = state;
            let (a, b, c, d) = md5_block!(m, a0, b0, c0, d0);
            let select = |new: __m512i, old: __m512i| _mm512_mask_add_epi32(old, mask, old, new);
            state = [select(a, a0), select(b, b0), select(c, c0), select(d, d0)];
        }
        let words: [[u32; 16]; 4] = bytemuck::cast(state);
        super::store(&words, out);
    }
}

/// Lane `l` of `words[0..4]` is message `l`'s state A, B, C, D: its digest
/// is those words little-endian.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn store<const W: usize>(words: &[[u32; W]; 4], out: &mut [[u8; 16]]) {
    for (lane, out) in out.iter_mut().enumerate() {
        for (word, bytes) in words.iter().zip(out.chunks_exact_mut(4)) {
            bytes.copy_from_slice(&word[lane].to_le_bytes());
        }
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
        install(Accelerated { lanes: 4, digest: digest_many_portable });
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
        let mut leader = Box::pin(batch.digest(IoBuf::from_slice(&a), a.len()));
        let mut second = Box::pin(batch.digest(IoBuf::from_slice(&b), b.len()));
        let mut third = Box::pin(batch.digest(IoBuf::from_slice(&c), c.len()));
        let wakes: [Arc<Wakes>; 3] = Default::default();
        assert!(poll(&mut leader, &wakes[0]).is_pending());
        assert!(poll(&mut second, &wakes[1]).is_pending());
        assert!(poll(&mut third, &wakes[2]).is_pending());
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
        let mut leader = Box::pin(batch.digest(IoBuf::from_slice(&a), a.len()));
        let mut second = Box::pin(batch.digest(IoBuf::from_slice(&b), b.len()));
        let mut third = Box::pin(batch.digest(IoBuf::from_slice(&c), c.len()));
        let wakes: [Arc<Wakes>; 3] = Default::default();
        assert!(poll(&mut leader, &wakes[0]).is_pending());
        assert!(poll(&mut second, &wakes[1]).is_pending());
        assert!(poll(&mut third, &wakes[2]).is_pending());
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
        let count = BATCH_MAX_MESSAGES + 10;
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
        let big = vec![7u8; BATCH_MAX_MESSAGE_BYTES + 1];
        let mut alone = Box::pin(batch.digest(IoBuf::from_slice(&big), big.len()));
        let Poll::Ready((_, md5)) = poll(&mut alone, &wakes[0]) else { panic!("hashed at once") };
        assert_eq!(md5, digest(&big));
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
