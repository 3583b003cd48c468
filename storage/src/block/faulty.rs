//! A simulated disk that fails the way real ones do, for crash tests.
//!
//! Reads see every completed write. Only flushed writes are durable: a
//! [`SimDisk::power_cut`] decides, per write not yet flushed, whether it
//! reached the media whole, not at all, or torn (some of its 512-byte
//! sectors written, others not; a sector itself is atomic, as disks
//! promise). In yielding mode requests take time, as a real device's do:
//! a write is in flight until its future completes, and a flush makes
//! durable, when it completes, only the writes that had completed when it
//! was issued (a write still in flight then is not covered). After a cut
//! the device is gone until [`SimDisk::restart`].
//! Read errors and bit flips can be injected at chosen blocks. All choices
//! come from a seeded generator, so a failing seed replays exactly.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll};

use spin::Mutex;

use super::{BlockDevice, BlockError, Geometry, IoBuf, IoResult};

const SECTOR_BYTES: usize = 512;

/// How a power cut treats unflushed writes (per mille of writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultConfig {
    pub keep_per_mille: u32,
    pub tear_per_mille: u32,
    // The rest are dropped.
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self { keep_per_mille: 400, tear_per_mille: 300 }
    }
}

/// What a power cut did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    pub kept: u32,
    pub torn: u32,
    pub dropped: u32,
}

struct PendingWrite {
    id: u64,
    offset: usize,
    data: Vec<u8>,
}

struct State {
    /// What the media holds for certain.
    durable: Vec<u8>,
    /// What reads see: durable plus completed, unflushed writes.
    visible: Vec<u8>,
    /// Completed writes not yet flushed, in completion order.
    pending: Vec<PendingWrite>,
    /// Writes issued and not yet completed (yielding mode only).
    in_flight: Vec<PendingWrite>,
    next_write_id: u64,
    gone: bool,
    read_errors: BTreeSet<u64>,
    rng: u64,
    writes: u64,
    flushes: u64,
    /// Writes and flushes started so far, and the one that loses power.
    ops: u64,
    cut_at_op: Option<u64>,
    last_cut: Option<CutReport>,
    /// Power cuts so far: a flush issued before one fails, even if it
    /// completes after the restart.
    cuts: u64,
}

pub struct SimDisk {
    geometry: Geometry,
    faults: FaultConfig,
    state: Mutex<State>,
    yielding: AtomicBool,
}

/// Completes after yielding to the executor a few times, as a real
/// device's request takes a while, so that concurrent tasks interleave
/// around I/O and requests complete out of the order they were issued.
pub struct Delayed<T> {
    value: Option<T>,
    yields: u32,
}

impl<T: Unpin> Future for Delayed<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if self.yields > 0 {
            self.yields -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.value.take() {
            Some(value) => Poll::Ready(value),
            None => Poll::Pending,
        }
    }
}

fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

impl SimDisk {
    pub fn new(block_bytes: u32, capacity_blocks: u64, faults: FaultConfig, seed: u64) -> Self {
        let geometry = Geometry { block_bytes, capacity_blocks, queue_depth: 32, supports_discard: false };
        let bytes = geometry.capacity_bytes() as usize;
        Self {
            geometry,
            faults,
            state: Mutex::new(State {
                durable: vec![0; bytes],
                visible: vec![0; bytes],
                pending: Vec::new(),
                in_flight: Vec::new(),
                next_write_id: 0,
                gone: false,
                read_errors: BTreeSet::new(),
                rng: seed | 1,
                writes: 0,
                flushes: 0,
                ops: 0,
                cut_at_op: None,
                last_cut: None,
                cuts: 0,
            }),
            yielding: AtomicBool::new(false),
        }
    }

    /// Loses power now. Unflushed writes are kept, dropped or torn; the
    /// device is gone until `restart`.
    pub fn power_cut(&self) -> CutReport {
        let mut state = self.state.lock();
        self.cut_locked(&mut state)
    }

    /// Loses power when the `op`-th write or flush from now starts (that
    /// request fails, as does everything after it until `restart`).
    pub fn cut_at_op(&self, op: u64) {
        let mut state = self.state.lock();
        state.cut_at_op = Some(state.ops + op.max(1));
    }

    /// Whether the power is off (cut and not restarted).
    pub fn is_gone(&self) -> bool {
        self.state.lock().gone
    }

    /// What the last power cut did, if one happened.
    pub fn last_cut(&self) -> Option<CutReport> {
        self.state.lock().last_cut
    }

    /// Requests complete only after yielding to the executor (1-3 times).
    pub fn set_yielding(&self, yielding: bool) {
        self.yielding.store(yielding, Ordering::Relaxed);
    }

    /// Counts one write or flush; cuts the power if it is the chosen one.
    fn start_op(&self, state: &mut State) {
        state.ops += 1;
        if state.cut_at_op == Some(state.ops) {
            state.cut_at_op = None;
            self.cut_locked(state);
        }
    }

    /// In yielding mode a request takes one to three executor rounds
    /// (drawn from the seeded generator).
    fn complete<T: Unpin>(&self, value: T) -> Delayed<T> {
        let yields =
            if self.yielding.load(Ordering::Relaxed) { 1 + (next(&mut self.state.lock().rng) % 3) as u32 } else { 0 };
        Delayed { value: Some(value), yields }
    }

    fn cut_locked(&self, state: &mut State) -> CutReport {
        // A cut planned for later is moot once the power is gone.
        state.cut_at_op = None;
        let mut report = CutReport::default();
        let mut pending = core::mem::take(&mut state.pending);
        pending.append(&mut state.in_flight);
        for write in pending {
            let roll = (next(&mut state.rng) % 1000) as u32;
            if roll < self.faults.keep_per_mille {
                report.kept += 1;
                state.durable[write.offset..write.offset + write.data.len()].copy_from_slice(&write.data);
            } else if roll < self.faults.keep_per_mille + self.faults.tear_per_mille {
                report.torn += 1;
                for (index, sector) in write.data.chunks(SECTOR_BYTES).enumerate() {
                    if next(&mut state.rng).is_multiple_of(2) {
                        let at = write.offset + index * SECTOR_BYTES;
                        state.durable[at..at + sector.len()].copy_from_slice(sector);
                    }
                }
            } else {
                report.dropped += 1;
            }
        }
        state.visible = state.durable.clone();
        state.gone = true;
        state.cuts += 1;
        state.last_cut = Some(report);
        report
    }

    /// Power is back: the device answers again, holding what was durable.
    pub fn restart(&self) {
        self.state.lock().gone = false;
    }

    /// Reads of `lba` fail with an I/O error from now on.
    pub fn fail_reads_at(&self, lba: u64) {
        self.state.lock().read_errors.insert(lba);
    }

    /// Flips one bit on the media (silent corruption: reads succeed).
    pub fn flip_bit(&self, byte_offset: usize, bit: u8) {
        let mut state = self.state.lock();
        if byte_offset < state.durable.len() {
            state.durable[byte_offset] ^= 1 << (bit % 8);
            state.visible[byte_offset] ^= 1 << (bit % 8);
        }
    }

    /// (writes, flushes) completed so far.
    pub fn counts(&self) -> (u64, u64) {
        let state = self.state.lock();
        (state.writes, state.flushes)
    }

    /// Writes not yet flushed.
    pub fn unflushed_writes(&self) -> usize {
        let state = self.state.lock();
        state.pending.len() + state.in_flight.len()
    }

    /// A write issued in yielding mode completes: from now on a flush
    /// issued covers it. Fails if the power went first.
    fn finish_write(&self, id: u64) -> Result<(), BlockError> {
        let mut state = self.state.lock();
        let Some(index) = state.in_flight.iter().position(|write| write.id == id) else {
            return Err(BlockError::DeviceGone);
        };
        let write = state.in_flight.remove(index);
        state.pending.push(write);
        Ok(())
    }

    /// A flush issued in yielding mode completes: the writes it covers
    /// (those completed when it was issued) reach the media, unless the
    /// power went since it was issued (`cuts` then).
    fn finish_flush(&self, covered: &[u64], cuts: u64) -> Result<(), BlockError> {
        let mut state = self.state.lock();
        if state.gone || state.cuts != cuts {
            return Err(BlockError::DeviceGone);
        }
        persist(&mut state, |id| covered.binary_search(&id).is_ok());
        Ok(())
    }
}

/// Puts the completed writes `covered` accepts on the media; the others
/// stay unflushed.
fn persist(state: &mut State, covered: impl Fn(u64) -> bool) {
    let pending = core::mem::take(&mut state.pending);
    for write in pending {
        if covered(write.id) {
            state.durable[write.offset..write.offset + write.data.len()].copy_from_slice(&write.data);
        } else {
            state.pending.push(write);
        }
    }
}

impl BlockDevice for SimDisk {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn read(&self, lba: u64, mut buf: IoBuf) -> impl Future<Output = IoResult> {
        let result = (|| {
            let blocks = self.geometry.check(lba, buf.len())?;
            let state = self.state.lock();
            if state.gone {
                return Err(BlockError::DeviceGone);
            }
            if let Some(&bad) = state.read_errors.range(lba..lba + blocks).next() {
                return Err(BlockError::Io { lba: bad });
            }
            let start = (lba * u64::from(self.geometry.block_bytes)) as usize;
            let len = buf.len();
            buf.as_mut_slice().copy_from_slice(&state.visible[start..start + len]);
            Ok(())
        })();
        self.complete((result, buf))
    }

    fn write(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        let yielding = self.yielding.load(Ordering::Relaxed);
        // Ok(Some(id)): in flight until the future completes.
        let issued = (|| {
            self.geometry.check(lba, buf.len())?;
            let mut state = self.state.lock();
            self.start_op(&mut state);
            if state.gone {
                return Err(BlockError::DeviceGone);
            }
            let offset = (lba * u64::from(self.geometry.block_bytes)) as usize;
            state.visible[offset..offset + buf.len()].copy_from_slice(buf.as_slice());
            let id = state.next_write_id;
            state.next_write_id += 1;
            let write = PendingWrite { id, offset, data: buf.as_slice().to_vec() };
            state.writes += 1;
            if yielding {
                state.in_flight.push(write);
                Ok(Some(id))
            } else {
                state.pending.push(write);
                Ok(None)
            }
        })();
        async move {
            let result = match issued {
                Ok(Some(id)) => {
                    self.complete(()).await;
                    self.finish_write(id)
                }
                Ok(None) => Ok(()),
                Err(error) => Err(error),
            };
            (result, buf)
        }
    }

    fn flush(&self) -> impl Future<Output = Result<(), BlockError>> {
        let yielding = self.yielding.load(Ordering::Relaxed);
        let mut state = self.state.lock();
        self.start_op(&mut state);
        // Ok(Some(ids)): the completed writes this flush covers, made
        // durable when it completes.
        let cuts = state.cuts;
        let issued = if state.gone {
            Err(BlockError::DeviceGone)
        } else if yielding {
            state.flushes += 1;
            let mut covered: Vec<u64> = state.pending.iter().map(|write| write.id).collect();
            covered.sort_unstable();
            Ok(Some(covered))
        } else {
            persist(&mut state, |_| true);
            state.flushes += 1;
            Ok(None)
        };
        drop(state);
        async move {
            match issued {
                Ok(Some(covered)) => {
                    self.complete(()).await;
                    self.finish_flush(&covered, cuts)
                }
                Ok(None) => Ok(()),
                Err(error) => Err(error),
            }
        }
    }
}
