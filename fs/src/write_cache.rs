//! Small data-area writes held in memory until the next flush, then
//! written together, adjacent ones merged.
//!
//! A small PUT that is not logged in the journal (see
//! [`crate::store::INLINE_MAX_BYTES`] and the rule that stops logging once
//! the state is large next to the journal) writes its one chunk, then its
//! record waits for a flush. Sixty-four such PUTs at once were sixty-four
//! 4 KiB device writes, each queued behind the others (730–840 µs apiece on
//! this machine's virtual disk under that load, 86 µs alone). A device
//! only promises what a flush makes durable, so holding a write in memory
//! until the next flush keeps every promise the store relies on, exactly
//! as a drive's volatile write cache does: a flush first writes everything
//! held when it was called, merged by address, then flushes; a
//! write-and-flush (a journal commit) writes its own write beside those,
//! and flushes once all are done. A power cut loses what is held here as it loses what the
//! drive's cache held; the store acknowledges nothing before a flush.
//!
//! Reads see held bytes over what the device returns, so a chunk read back
//! before its flush is the one written.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use spin::Mutex;
use storage::block::{BlockDevice, BlockError, Geometry, IoBuf};

/// The largest write held: a small object's chunk, page-rounded. Larger
/// writes go straight to the device.
pub const HELD_WRITE_MAX_BYTES: usize = 64 * 1024;

/// What may be held at once (in whole pages); past it writes go straight
/// to the device.
pub const HELD_MAX_BYTES: usize = 8 << 20;

/// Memory a held copy of `len` bytes takes.
fn cost(len: usize) -> usize {
    len.next_multiple_of(4096)
}

/// The largest write that adjacent pieces are merged into, here and by a
/// write-back of logged chunks (`crate::overlay`).
pub(crate) const MERGED_MAX_BYTES: usize = 1 << 20;

/// `parts` one after another in one buffer of `len` bytes, for one device
/// write (copied outside the locks).
pub(crate) fn concat<'a>(parts: impl IntoIterator<Item = &'a IoBuf>, len: usize) -> IoBuf {
    let mut buf = IoBuf::zeroed(len);
    let mut at = 0;
    for part in parts {
        buf.as_mut_slice()[at..at + part.len()].copy_from_slice(part.as_slice());
        at += part.len();
    }
    buf
}

/// One held write.
#[derive(Debug)]
struct Held {
    bytes: Arc<IoBuf>,
    blocks: u64,
    /// Order of arrival: a flush waits for every write held before it.
    seq: u64,
    /// Being written by a drain (or waiting for one).
    draining: bool,
}

/// Writes held until a flush, by start block.
#[derive(Debug, Default)]
struct WriteCache {
    held: BTreeMap<u64, Held>,
    /// (sequence number, start block) of each held write. Pieces of one
    /// write cut by a later write over part of it share its number.
    by_seq: BTreeSet<(u64, u64)>,
    bytes: usize,
    last_seq: u64,
    waiters: Vec<Waker>,
}

/// What became of a write offered to the cache.
enum Hold {
    Held,
    /// Too large, or the cache is full: the device takes it now.
    WriteThrough,
    /// It overlaps a held write being written: it must land after that.
    WaitForDrain,
}

/// One device write of a drain: adjacent held writes merged.
struct Merged {
    lba: u64,
    members: Vec<(u64, u64, Arc<IoBuf>)>,
    bytes: usize,
}

impl WriteCache {
    fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Bytes held.
    fn bytes(&self) -> usize {
        self.bytes
    }

    /// Start blocks of the held writes that overlap `blocks` (at least
    /// one) at `lba`: only the last one starting at or before `lba` can
    /// reach into it.
    fn overlapping_starts(&self, lba: u64, blocks: u64) -> Vec<u64> {
        let end = lba.saturating_add(blocks);
        let first = self.held.range(..=lba).next_back().map_or(lba, |(&start, _)| start);
        self.held
            .range(first..end)
            .filter(|&(&start, held)| start + held.blocks > lba)
            .map(|(&start, _)| start)
            .collect()
    }

    fn insert(&mut self, lba: u64, held: Held) {
        self.bytes += cost(held.bytes.len());
        self.by_seq.insert((held.seq, lba));
        self.held.insert(lba, held);
    }

    fn remove(&mut self, lba: u64) -> Option<Held> {
        let held = self.held.remove(&lba)?;
        self.bytes -= cost(held.bytes.len());
        self.by_seq.remove(&(held.seq, lba));
        Some(held)
    }

    /// Holds a copy of `bytes` (`blocks` of `block_bytes`, at least one)
    /// for `lba`, or says why not. A write over held ones that no drain
    /// has is held whatever its size, in their place and with the oldest
    /// one's sequence number: a flush that must write them writes it (the
    /// parts it covers would be overwritten by it anyway), and no drain
    /// writes them after it.
    fn hold(&mut self, lba: u64, blocks: u64, block_bytes: u64, bytes: &IoBuf) -> Hold {
        let overlapping = self.overlapping_starts(lba, blocks);
        if overlapping.iter().any(|start| self.held[start].draining) {
            return Hold::WaitForDrain;
        }
        let seq = if overlapping.is_empty() {
            if bytes.len() > HELD_WRITE_MAX_BYTES || self.bytes + cost(bytes.len()) > HELD_MAX_BYTES {
                return Hold::WriteThrough;
            }
            self.last_seq += 1;
            self.last_seq
        } else {
            let end = lba + blocks;
            let mut oldest = u64::MAX;
            for start in overlapping {
                let Some(old) = self.remove(start) else { continue };
                oldest = oldest.min(old.seq);
                let old_end = start + old.blocks;
                // The parts it does not cover stay held, in pieces.
                for (from, to) in [(start, lba.min(old_end)), (end.max(start), old_end)] {
                    if from < to {
                        let at = ((from - start) * block_bytes) as usize;
                        let len = ((to - from) * block_bytes) as usize;
                        let piece = IoBuf::from_slice(&old.bytes.as_slice()[at..at + len]);
                        self.insert(
                            from,
                            Held { bytes: Arc::new(piece), blocks: to - from, seq: old.seq, draining: false },
                        );
                    }
                }
            }
            oldest
        };
        self.insert(lba, Held { bytes: Arc::new(IoBuf::from_slice(bytes.as_slice())), blocks, seq, draining: false });
        Hold::Held
    }

    /// Takes every held write no drain has, merged by address.
    fn take(&mut self, block_bytes: usize) -> Vec<Merged> {
        let mut merged: Vec<Merged> = Vec::new();
        for (&lba, held) in self.held.iter_mut().filter(|(_, held)| !held.draining) {
            held.draining = true;
            let member = (lba, held.seq, held.bytes.clone());
            match merged.last_mut() {
                Some(run)
                    if run.lba + (run.bytes / block_bytes) as u64 == lba
                        && run.bytes + held.bytes.len() <= MERGED_MAX_BYTES =>
                {
                    run.bytes += held.bytes.len();
                    run.members.push(member);
                }
                _ => merged.push(Merged { lba, bytes: held.bytes.len(), members: alloc::vec![member] }),
            }
        }
        merged
    }

    /// The drain wrote these: forget them (unless held again since).
    fn written(&mut self, members: &[(u64, u64)]) {
        for &(lba, seq) in members {
            if self.held.get(&lba).is_some_and(|held| held.seq == seq && held.draining) {
                self.remove(lba);
            }
        }
    }

    /// A drain did not write these: the next one takes them again.
    fn untake(&mut self, members: &[(u64, u64)]) {
        for &(lba, seq) in members {
            if let Some(held) = self.held.get_mut(&lba).filter(|held| held.seq == seq) {
                held.draining = false;
            }
        }
    }

    fn wake_all(&mut self) {
        for waker in self.waiters.drain(..) {
            waker.wake();
        }
    }

    /// Copies of the held writes overlapping `blocks` at `lba`, taken
    /// before a device read so that a drain finishing meanwhile cannot
    /// leave the read with the old bytes.
    fn overlapping(&self, lba: u64, blocks: u64) -> Vec<(u64, Arc<IoBuf>)> {
        self.overlapping_starts(lba, blocks).into_iter().map(|start| (start, self.held[&start].bytes.clone())).collect()
    }
}

/// Puts a drain's writes back when its future is dropped before they are
/// known written: the next flush writes them again.
struct DrainGuard<'a> {
    cache: &'a Mutex<WriteCache>,
    members: Vec<(u64, u64)>,
    done: bool,
}

impl Drop for DrainGuard<'_> {
    fn drop(&mut self) {
        let mut cache = self.cache.lock();
        if self.done {
            cache.written(&self.members);
        } else {
            cache.untake(&self.members);
        }
        cache.wake_all();
    }
}

/// A device with a [`WriteCache`] in front of its data area.
pub struct Cached<D> {
    device: D,
    /// Writes below this block (superblocks, journal) are never held.
    data_start_lba: u64,
    cache: Mutex<WriteCache>,
}

impl<D: BlockDevice> Cached<D> {
    pub fn new(device: D, data_start_lba: u64) -> Self {
        Self { device, data_start_lba, cache: Mutex::new(WriteCache::default()) }
    }

    pub fn inner(&self) -> &D {
        &self.device
    }

    /// Bytes held, and how many writes.
    pub fn held(&self) -> (usize, usize) {
        let cache = self.cache.lock();
        (cache.bytes(), cache.held.len())
    }

    /// Returns once every write held when it was called is on the device
    /// (not yet flushed), writing what no other drain is writing.
    pub(crate) async fn drain(&self) -> Result<(), BlockError> {
        let through = {
            let cache = self.cache.lock();
            if cache.is_empty() {
                return Ok(());
            }
            cache.last_seq
        };
        let block_bytes = self.device.geometry().block_bytes as usize;
        loop {
            let runs = poll_fn(|cx| {
                let mut cache = self.cache.lock();
                if cache.by_seq.first().is_none_or(|&(seq, _)| seq > through) {
                    return Poll::Ready(None);
                }
                let runs = cache.take(block_bytes);
                if runs.is_empty() {
                    // Another drain is writing them: wait for it to end.
                    cache.waiters.push(cx.waker().clone());
                    return Poll::Pending;
                }
                Poll::Ready(Some(runs))
            })
            .await;
            let Some(runs) = runs else {
                return Ok(());
            };
            let members = runs.iter().flat_map(|run| run.members.iter().map(|&(lba, seq, _)| (lba, seq))).collect();
            let mut guard = DrainGuard { cache: &self.cache, members, done: false };
            let writes = runs.into_iter().map(|run| {
                let buf = concat(run.members.iter().map(|(_, _, bytes)| &**bytes), run.bytes);
                self.device.write(run.lba, buf)
            });
            let mut result = Ok(());
            for (outcome, _) in runtime::join::join_all(writes.collect()).await {
                if let Err(error) = outcome {
                    result = Err(error);
                }
            }
            guard.done = result.is_ok();
            drop(guard);
            result?;
        }
    }
}

impl<D: BlockDevice> BlockDevice for Cached<D> {
    fn geometry(&self) -> Geometry {
        self.device.geometry()
    }

    async fn read(&self, lba: u64, buf: IoBuf) -> storage::block::IoResult {
        let geometry = self.device.geometry();
        let overlapping = {
            let cache = self.cache.lock();
            if cache.is_empty() {
                Vec::new()
            } else {
                let blocks = (buf.len() / geometry.block_bytes as usize) as u64;
                cache.overlapping(lba, blocks)
            }
        };
        let (result, mut buf) = self.device.read(lba, buf).await;
        if result.is_ok() {
            let block = geometry.block_bytes as u64;
            let read_start = lba * block;
            let read_end = read_start + buf.len() as u64;
            for (start, bytes) in overlapping {
                let held_start = start * block;
                let from = read_start.max(held_start);
                let to = read_end.min(held_start + bytes.len() as u64);
                if from < to {
                    buf.as_mut_slice()[(from - read_start) as usize..(to - read_start) as usize]
                        .copy_from_slice(&bytes.as_slice()[(from - held_start) as usize..(to - held_start) as usize]);
                }
            }
        }
        (result, buf)
    }

    async fn write(&self, lba: u64, buf: IoBuf) -> storage::block::IoResult {
        let geometry = self.device.geometry();
        let blocks = match geometry.check(lba, buf.len()) {
            Ok(blocks) => blocks,
            Err(error) => return (Err(error), buf),
        };
        // Below the data area (superblocks, journal) nothing is held, and
        // nothing can overlap a held write.
        if blocks == 0 || lba + blocks <= self.data_start_lba {
            return self.device.write(lba, buf).await;
        }
        let block_bytes = u64::from(geometry.block_bytes);
        let held = poll_fn(|cx| {
            let mut cache = self.cache.lock();
            match cache.hold(lba, blocks, block_bytes, &buf) {
                Hold::Held => Poll::Ready(true),
                Hold::WriteThrough => Poll::Ready(false),
                Hold::WaitForDrain => {
                    cache.waiters.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        if held {
            return (Ok(()), buf);
        }
        self.device.write(lba, buf).await
    }

    async fn flush(&self) -> Result<(), BlockError> {
        self.drain().await?;
        self.device.flush().await
    }

    async fn write_durable(&self, lba: u64, buf: IoBuf) -> storage::block::IoResult {
        if self.cache.lock().is_empty() {
            return self.device.write_durable(lba, buf).await;
        }
        // The held writes and this one in parallel: the flush after them
        // covers all of them, whatever order they completed in.
        let (drained, (written, buf)) = runtime::join::join(self.drain(), self.device.write(lba, buf)).await;
        if let Err(error) = drained.and(written) {
            return (Err(error), buf);
        }
        (self.device.flush().await, buf)
    }

    async fn discard(&self, lba: u64, blocks: u64) -> Result<(), BlockError> {
        // Held writes before it land before it.
        self.drain().await?;
        self.device.discard(lba, blocks).await
    }
}
