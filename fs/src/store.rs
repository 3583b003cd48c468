//! The store: a crash-safe object store on one block device.
//!
//! Layout: two superblock copies (pages 0 and 1, see [`crate::layout`]),
//! the journal region, then the data region where object chunks and
//! checkpoints live in extents.
//!
//! A change is applied to the in-memory [`MetaState`] when it is submitted
//! (so the next request sees it) and acknowledged once durable. A waiting
//! task becomes a committer: it takes the records queued so far, writes
//! them as one journal batch and flushes; all their submitters wake
//! together (group commit). That flush also makes durable the chunks the
//! records wrote: the batch is flagged for replay to verify them (see
//! [`crate::journal`]), unless they are more than [`VERIFY_MAX_BYTES`],
//! when a data flush goes first. Up to [`MAX_IN_FLIGHT`]
//! batches are in flight at once, each with its own committer, a later
//! one only if it carries at least as many records as the newest in
//! flight and needs no data flush; records are acknowledged in order,
//! once every batch up to theirs is flushed.
//! A small object's chunk is not written by its PUT at all: its bytes
//! travel in the batch with the record (see [`crate::overlay`]) and reach
//! the data area later, many in one write. When the journal is half
//! full the committer writes a checkpoint (the whole state, into data
//! extents, serialized a slice at a time: see [`crate::snapshot`]) after
//! its batch, then a new superblock that starts replay after that batch;
//! other batches go on beside it meanwhile. An I/O
//! error while committing stops the store: memory may then hold changes
//! the disk does not, so every later call fails until the store is opened
//! again, which replays what is durable.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::task::{Poll, Waker};

use serde::{Deserialize, Serialize};
use spin::Mutex;
use storage::block::{BlockDevice, BlockError, BufferPool, IoBuf};
use storage::checksum::crc32c;
use storage::md5_lanes::Md5Batch;
use storage::object::{
    ChunkRef, ObjectError, ObjectReader, ObjectWriter, SpaceSource, WrittenObject, read_chunk, read_pages, write_pages,
};
use storage::space::{Extent, PAGE_BYTES, SpaceError, SpaceMap};
use storage::version::{Entry, VersionId, VersionIdGenerator, Versioning};

use crate::catalog::{Capabilities, Quota, Usage};
use crate::journal::{self, BatchEnd, BatchHeader, BatchKind};
use crate::layout::{Superblock, SuperblockError};
use crate::overlay::{Overlaid, Overlay, Unwritten};
use crate::record::{JournalRecord, ObjectMeta, PartMeta, UploadTemplate};
use crate::snapshot::Snapshot;
use crate::state::{MetaError, MetaState, hex, multipart_etag};

const PAGE: usize = PAGE_BYTES as usize;

/// Idle chunk buffers the store keeps for its next writers: enough for
/// 16 concurrent large PUTs with 1 MiB chunks.
const IDLE_BUFFER_BYTES: usize = 16 << 20;

/// A checkpoint is written once this many records follow the last one, so
/// that an open replays at most this many (about 0.3 s) after loading the
/// checkpoint.
pub const CHECKPOINT_EVERY_RECORDS: u64 = 250_000;

/// Units of work (keys written or passed over, buckets begun) a
/// checkpoint's image takes before it lets other tasks run: about half a
/// millisecond (see [`crate::snapshot`]).
const SNAPSHOT_STEP_KEYS: usize = 2048;

/// Journal batches in flight at once. One batch's write and flush take a
/// device round trip during which the records of the next queue up; with
/// a second batch allowed to start meanwhile, a record waits for a free
/// slot rather than for the whole round trip of the batch before it, and
/// devices that take several requests at once (NVMe, virtio-blk, a file
/// on an SSD) overlap the two flushes. A second batch waits until it
/// would carry as many records as the one in flight, and one that needs a
/// data flush of its own always waits (see
/// `Inner::worth_overlapping`): 64 writers then got 10-19% more durable
/// 4 KiB PUTs per second (medians of 26 interleaved pairs of
/// `BENCH_ONLY=group cargo xtask bench storage`, 20 won in each mode).
/// Three or four in flight measured no better (stop 22: 3 rounds of the
/// three builds, then 5 pairs of two against three), though the file
/// there ran 1.7 and 2.5 times the write+fdatasync calls per second from
/// two and four threads as from one.
pub const MAX_IN_FLIGHT: usize = 2;

/// A batch may carry records whose chunks are not yet durable, flagged for
/// replay to verify them, while those chunks' extents add up to at most
/// this (see [`crate::journal`]): one flush per batch instead of a data
/// flush before it, and replay reads at most this much for each of the
/// last batches of the log. A larger object's record waits for a data flush.
pub const VERIFY_MAX_BYTES: u64 = 4 << 20;

/// A small object travels in the journal only while fewer records than
/// this wait to be durable. Logging saves a lone PUT its own data write,
/// but a logged byte is written twice (the batch, then a write-back) and
/// fills the journal toward the next checkpoint; once many records wait,
/// their written chunks go out merged beside the journal write and flush
/// with it (format 3 and `crate::write_cache`), so logging only adds
/// bytes. 64 writers of 4 KiB on a file: 77.5k against 54.9k PUTs/s
/// (medians of 6 interleaved pairs, 6 won; stop 22); one writer, which
/// never reaches this, logs as before.
pub const LOG_BUSY_RECORDS: u64 = 16;

/// Objects of at most this many bytes travel in the journal with their
/// record instead of being written on their own (see [`crate::overlay`]).
pub const INLINE_MAX_BYTES: usize = 16 * 1024;

/// A write-back of logged chunks starts once this many bytes wait in
/// memory (or an eighth of the journal, if less: what replay may have to
/// hold stays small next to the journal).
pub const WRITE_BACK_BYTES: usize = 4 << 20;

/// How big an object may travel in the journal. Logged bytes fill the
/// journal, and a full journal costs a checkpoint of the whole state: once
/// that state is more than an eighth of the journal (a checkpoint every
/// half journal then serializes at least a quarter of a byte per logged
/// byte), logging small objects would cost more CPU in checkpoints than it
/// saves in writes, so it stops. Tiny journals (tests) log only what is
/// small next to them.
fn inline_max(journal_pages: u64, checkpoint_bytes: u64) -> usize {
    let journal_bytes = journal_pages * PAGE_BYTES;
    if checkpoint_bytes > journal_bytes / 8 {
        return 0;
    }
    INLINE_MAX_BYTES.min(usize::try_from(journal_bytes / 32).unwrap_or(usize::MAX))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    Block(BlockError),
    Object(ObjectError),
    Space(SpaceError),
    Meta(MetaError),
    /// Neither superblock copy is valid: not a Rustcore volume.
    NotFormatted(SuperblockError),
    DeviceTooSmall,
    /// The checkpoint does not verify or decode.
    CorruptCheckpoint,
    /// A journal batch verified but a record in it does not decode or
    /// apply: a format error, not a torn write. Nothing is guessed.
    CorruptJournal {
        seq: u64,
    },
    /// The referenced extents overlap or leave the data region.
    CorruptSpace(SpaceError),
    /// One record larger than a quarter of the journal.
    RecordTooLarge,
    /// A commit failed earlier; open the store again.
    Stopped,
}

impl From<BlockError> for StoreError {
    fn from(error: BlockError) -> Self {
        Self::Block(error)
    }
}

impl From<ObjectError> for StoreError {
    fn from(error: ObjectError) -> Self {
        Self::Object(error)
    }
}

impl From<MetaError> for StoreError {
    fn from(error: MetaError) -> Self {
        Self::Meta(error)
    }
}

impl From<SpaceError> for StoreError {
    fn from(error: SpaceError) -> Self {
        Self::Space(error)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FormatOptions {
    /// Journal size; default: 1/64 of the device, between 64 KiB and 256 MiB.
    pub journal_pages: Option<u64>,
    pub chunk_max_bytes: u32,
    pub min_part_bytes: u64,
    /// Random: it also seeds the journal chain, so batches left on the
    /// device by an earlier volume never replay into this one.
    pub volume_id: [u8; 16],
    pub now_ms: u64,
}

impl Default for FormatOptions {
    fn default() -> Self {
        Self { journal_pages: None, chunk_max_bytes: 1 << 20, min_part_bytes: 5 << 20, volume_id: [0; 16], now_ms: 0 }
    }
}

/// What open found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenReport {
    pub generation: u64,
    pub checkpoint_seq: u64,
    pub replayed_batches: u64,
    pub replayed_records: u64,
    /// Why replay stopped (the torn or stale end of the log).
    pub end: BatchEnd,
    /// Batches at the end of the log whose records' chunks replay read to
    /// verify (written without a data flush first, and not yet vouched for
    /// by a later batch); one that failed is `end`.
    pub verified_batches: u64,
    pub free_pages: u64,
}

/// Written by a checkpoint into its manifest extent.
#[derive(Serialize, Deserialize)]
struct CheckpointManifest {
    seq: u64,
    state_bytes: u64,
    chunks: Vec<ChunkRef>,
}

/// The data pages, shared by writers (which must leave a reserve for
/// checkpoints) and the committer (which may use it).
pub struct SpaceCell {
    map: Mutex<SpaceMap>,
    reserve_pages: AtomicU64,
}

impl SpaceSource for SpaceCell {
    fn allocate_up_to(&self, max_pages: u32) -> Result<Extent, SpaceError> {
        let mut map = self.map.lock();
        if map.free_pages() <= self.reserve_pages.load(Ordering::Relaxed) {
            return Err(SpaceError::Full);
        }
        map.allocate_up_to(max_pages)
    }

    fn release(&self, extent: Extent) {
        // Only a bug could make this fail; the consistency check reports
        // the leak, and a running store must not stop over it.
        let _ = self.map.lock().release(extent);
    }
}

struct Unreserved<'a>(&'a SpaceCell);

impl SpaceSource for Unreserved<'_> {
    fn allocate_up_to(&self, max_pages: u32) -> Result<Extent, SpaceError> {
        self.0.map.lock().allocate_up_to(max_pages)
    }

    fn release(&self, extent: Extent) {
        let _ = self.0.map.lock().release(extent);
    }
}

struct Inner {
    meta: MetaState,
    /// The image of the state a checkpoint is serializing, while it does:
    /// every record goes past it before it applies.
    snapshot: Option<Snapshot>,
    superblock: Superblock,
    /// Extents of the checkpoint the durable superblock names.
    checkpoint_extents: Vec<Extent>,
    ids: VersionIdGenerator,
    /// Journal page where the next batch goes, and the chain value it names.
    /// A batch claims its pages when it is taken, so these run ahead of
    /// what is durable while batches are in flight.
    head: u64,
    prev_crc: u32,
    /// Sequence number of the last record applied in memory.
    applied_seq: u64,
    /// Sequence number of the last record taken into a batch.
    taken_seq: u64,
    /// Sequence number of the last record that is durable: every batch up
    /// to it completed its flush.
    durable_seq: u64,
    /// Records up to this one have their chunks on stable storage: they
    /// were submitted (after their chunk writes completed) before a flush
    /// that has since completed started. A batch of such records needs no
    /// flush of its own before its journal write.
    data_durable_seq: u64,
    /// Records `taken_seq + 1 ..= applied_seq`, not yet taken.
    pending: Vec<Pending>,
    /// Every logged chunk of a record up to this one is in the data area
    /// and flushed: replay needs no image of them. Written into each batch.
    images_durable_seq: u64,
    /// Batches written and not yet known durable, oldest first: the last
    /// sequence number of each, and whether its flush completed. Records
    /// become durable in order, so a batch that completes before an older
    /// one waits for it.
    in_flight: VecDeque<(u64, bool)>,
    /// A checkpoint is being written. It started with nothing else in
    /// flight; batches taken after it go to the journal meanwhile, after
    /// the place its superblock names (see [`Store::lead`]).
    checkpointing: bool,
    /// A checkpoint is due and waits for the batches in flight to finish.
    checkpoint_waiting: bool,
    /// While a checkpoint is written, the next batch cannot go beside it
    /// (no room without the space it frees, another checkpoint is asked
    /// for, or the checkpoint absorbed its records): nothing starts until
    /// it ends.
    blocked_by_checkpoint: bool,
    /// The next commit writes a checkpoint whatever the journal's fill.
    force_checkpoint: bool,
    waiters: Vec<Waker>,
    stopped: bool,
    /// Start sequence of each active reader -> how many.
    readers: BTreeMap<u64, usize>,
}

impl Inner {
    /// Applies `record` to the state, first showing it to the checkpoint
    /// image being made, if any. The only way records apply once open.
    fn apply(&mut self, record: JournalRecord) -> Result<Vec<Extent>, MetaError> {
        let Some(snapshot) = self.snapshot.as_mut() else { return self.meta.apply(record) };
        snapshot.before_apply(&self.meta, &record);
        let follow = match &record {
            JournalRecord::BucketRenamed { .. } | JournalRecord::BucketDeleted { .. } => Some(record.clone()),
            _ => None,
        };
        let freed = self.meta.apply(record)?;
        if let (Some(snapshot), Some(record)) = (self.snapshot.as_mut(), follow) {
            snapshot.applied(&record);
        }
        Ok(freed)
    }

    /// The most a batch (header included) may take: a quarter of the
    /// journal, so one record always fits beside the others.
    fn max_batch_bytes(&self) -> usize {
        self.superblock.journal_pages as usize * PAGE / 4
    }

    fn journal_used_pages(&self) -> u64 {
        let journal = self.superblock.journal_pages;
        (self.head + journal - self.superblock.replay_position) % journal
    }

    /// Whether a task may start a commit now: the store runs, work is
    /// waiting, a slot is free, no checkpoint waits for the batches in
    /// flight and none holds the next batch back. [`Store::take_work`]
    /// then has work for it: were it to refuse, the task would spin.
    fn may_lead(&self) -> bool {
        !self.stopped
            && !self.pending.is_empty()
            && !self.blocked_by_checkpoint
            && self.in_flight.len() < MAX_IN_FLIGHT
            && (self.in_flight.is_empty() || (!self.checkpoint_waiting && self.worth_overlapping()))
    }

    /// Whether a batch may start beside those in flight: only when it
    /// would carry at least as many records as the newest of them, and
    /// needs no data flush of its own (see `needs_data_flush`). A device that runs one flush at a
    /// time (a file on most SSDs) gains nothing from a second batch in
    /// flight, and one started as soon as a record arrives splits the
    /// writers into ever smaller batches, each paying a whole flush (two
    /// with a data flush: those wait, and take all that queued meanwhile).
    /// Lone logged records, as under light load, still overlap.
    fn worth_overlapping(&self) -> bool {
        let mut newest = self.in_flight.iter().rev().map(|entry| entry.0);
        let Some(last) = newest.next() else { return true };
        let before = newest.next().unwrap_or(self.durable_seq);
        let needs_data_flush = self.pending.first().is_some_and(|first| self.needs_data_flush(first));
        !needs_data_flush && self.pending.len() as u64 >= last.saturating_sub(before)
    }

    /// Whether the next batch, starting with `first`, must flush data
    /// before its write: `first`'s chunks may not be durable yet, and are
    /// more than replay should read to verify them instead.
    fn needs_data_flush(&self, first: &Pending) -> bool {
        !self.is_ready(0, first) && first.verify_bytes > VERIFY_MAX_BYTES
    }

    /// Whether `pending`, the `index`th record not yet taken, may go into
    /// a batch without a data flush first: its chunks are durable already
    /// (see `data_durable_seq`), or it references none that were written.
    fn is_ready(&self, index: usize, pending: &Pending) -> bool {
        !pending.needs_data || self.taken_seq + 1 + index as u64 <= self.data_durable_seq
    }

    /// Records batch `through_seq` as flushed and advances `durable_seq`
    /// over every completed batch at the front.
    fn complete(&mut self, through_seq: u64) {
        if let Some(entry) = self.in_flight.iter_mut().find(|entry| entry.0 == through_seq) {
            entry.1 = true;
        }
        while let Some(&(seq, true)) = self.in_flight.front() {
            self.durable_seq = seq;
            self.in_flight.pop_front();
        }
    }

    fn wake_all(&mut self) {
        for waker in self.waiters.drain(..) {
            waker.wake();
        }
    }
}

/// A record waiting for the journal.
struct Pending {
    encoded: Vec<u8>,
    /// Chunks logged with it, and their extents' pages.
    images: Vec<(ChunkRef, Arc<IoBuf>)>,
    /// It references chunks its request wrote to the device, which must be
    /// durable before it is.
    needs_data: bool,
    /// What replay reads to verify those chunks if its batch is written
    /// without a data flush first: their extents' bytes.
    verify_bytes: u64,
}

impl Pending {
    fn journal_bytes(&self) -> usize {
        self.encoded.len() + images_bytes(&self.images)
    }
}

/// Bytes these chunks take as images in a batch.
fn images_bytes(images: &[(ChunkRef, Arc<IoBuf>)]) -> usize {
    images.iter().map(|(chunk, _)| journal::image_bytes(chunk.len_bytes as usize)).sum()
}

/// What a record needs of the chunks it references.
enum ChunkData {
    /// Nothing written by this request.
    None,
    /// Written to the device: durable only after a flush.
    Written,
    /// Logged with the record.
    Logged(Vec<(ChunkRef, Arc<IoBuf>)>),
}

enum Work {
    /// Records to log.
    Batch(PlacedBatch),
    /// A checkpoint of the state through `through_seq`, after logging the
    /// records that lead to it if the journal has room for them; replay
    /// will start at `replay_from`, the journal head after that batch.
    Checkpoint { batch: Option<PlacedBatch>, through_seq: u64, replay_from: JournalPlace },
}

/// A place in the journal: its page, and the chain value the batch there
/// must name.
#[derive(Clone, Copy)]
struct JournalPlace {
    page: u64,
    prev_crc: u32,
}

/// A batch encoded for its place in the journal.
struct PlacedBatch {
    /// Padding to the journal's end first: its page and bytes.
    padding: Option<(u64, IoBuf)>,
    page: u64,
    buf: IoBuf,
    through_seq: u64,
    records: usize,
    claims: FlushClaims,
}

/// What the flush after a batch's write makes true, captured when the
/// batch was taken.
#[derive(Clone, Copy)]
struct FlushClaims {
    /// Every record up to this one had its chunks written before.
    submitted_through: u64,
    /// Every logged chunk of a record up to this one was written back.
    written_back_through: u64,
}

impl FlushClaims {
    fn apply(self, inner: &mut Inner) {
        inner.data_durable_seq = inner.data_durable_seq.max(self.submitted_through);
        inner.images_durable_seq = inner.images_durable_seq.max(self.written_back_through);
    }
}

/// Counters of the committer, for metrics.
#[derive(Debug, Default)]
pub struct CommitCounters {
    /// Journal batches written, and the records in them (their ratio is
    /// the group-commit size).
    pub batches: AtomicU64,
    pub records: AtomicU64,
    pub checkpoints: AtomicU64,
    pub flushes: AtomicU64,
    /// Chunks logged with their record instead of written, and the
    /// write-backs (and chunks) that later put them in the data area.
    pub logged_chunks: AtomicU64,
    pub write_backs: AtomicU64,
    pub written_back_chunks: AtomicU64,
    /// Batches that started while another was in flight.
    pub overlapped_batches: AtomicU64,
    /// Batches that started while a checkpoint was being written.
    pub batches_beside_checkpoints: AtomicU64,
    /// Checkpoints that took their records instead of logging them (no
    /// journal room).
    pub absorbing_checkpoints: AtomicU64,
    /// Records applied while a checkpoint's image was being serialized.
    pub records_beside_images: AtomicU64,
    /// Batches written without a data flush before them though some of
    /// their records' chunks were not yet durable (replay verifies those).
    pub verified_batches: AtomicU64,
}

/// A copy of [`CommitCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitSnapshot {
    pub batches: u64,
    pub records: u64,
    pub checkpoints: u64,
    pub flushes: u64,
    pub logged_chunks: u64,
    pub write_backs: u64,
    pub written_back_chunks: u64,
    pub overlapped_batches: u64,
    pub batches_beside_checkpoints: u64,
    pub absorbing_checkpoints: u64,
    pub records_beside_images: u64,
    pub verified_batches: u64,
}

pub struct Store<D: BlockDevice> {
    device: Overlaid<D>,
    /// See [`inline_max`]; 0 turns logging of small objects off.
    inline_max: AtomicUsize,
    /// See [`Store::set_small_object_logging`].
    logging_off: AtomicBool,
    counters: CommitCounters,
    /// Writers finishing together hash their objects together.
    md5_batch: Md5Batch,
    /// Chunk buffers writers are done with, for the next writers.
    buffers: BufferPool,
    space: SpaceCell,
    inner: Mutex<Inner>,
    chunk_max_bytes: usize,
    lbas_per_page: u64,
    /// See [`Store::set_snapshot_step_keys`].
    snapshot_step_keys: AtomicUsize,
}

/// A reader of the state as of a sequence number: while it lives, space
/// given up by records after that one stays parked (not reused), so what
/// the reader can see stays on the device.
struct ReaderPin<'a, D: BlockDevice> {
    store: &'a Store<D>,
    seq: u64,
}

impl<'a, D: BlockDevice> ReaderPin<'a, D> {
    fn new(store: &'a Store<D>, inner: &mut Inner, seq: u64) -> Self {
        *inner.readers.entry(seq).or_default() += 1;
        Self { store, seq }
    }
}

impl<D: BlockDevice> Drop for ReaderPin<'_, D> {
    fn drop(&mut self) {
        let mut inner = self.store.inner.lock();
        if let Some(count) = inner.readers.get_mut(&self.seq) {
            *count -= 1;
            if *count == 0 {
                inner.readers.remove(&self.seq);
            }
        }
        self.store.reclaim(&inner);
    }
}

/// An object version opened for reading. While it lives, the space of the
/// version is not reused even if the version is deleted or overwritten.
pub struct ObjectHandle<'a, D: BlockDevice> {
    store: &'a Store<D>,
    _pin: ReaderPin<'a, D>,
    pub id: VersionId,
    pub meta: ObjectMeta,
}

impl<D: BlockDevice> ObjectHandle<'_, D> {
    /// Streams `range` of the object, verifying every chunk.
    pub fn read(&self, range: Range<u64>) -> Result<ObjectReader<'_, Overlaid<D>>, ObjectError> {
        Ok(ObjectReader::new(&self.store.device, &self.meta.chunks, range)?.with_buffer_pool(&self.store.buffers))
    }
}

/// Facts a PUT stores besides the bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutInfo {
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    pub checksums: Vec<(String, String)>,
}

/// What a DELETE did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The delete marker created, if any.
    pub marker: Option<VersionId>,
}

/// Result of the consistency check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub buckets: u64,
    pub versions: u64,
    pub chunks: u64,
    pub used_pages: u64,
    pub free_pages: u64,
    pub problems: Vec<String>,
}

fn volume_chain_seed(volume_id: &[u8; 16]) -> u32 {
    crc32c(volume_id)
}

impl<D: BlockDevice> Store<D> {
    /// Writes an empty volume onto `device` and opens it.
    pub async fn format(device: D, options: FormatOptions) -> Result<Self, StoreError> {
        let geometry = device.geometry();
        if geometry.block_bytes == 0 || !PAGE_BYTES.is_multiple_of(u64::from(geometry.block_bytes)) {
            return Err(StoreError::Object(ObjectError::UnsupportedBlockSize(geometry.block_bytes)));
        }
        let total_pages = geometry.capacity_bytes() / PAGE_BYTES;
        let journal_pages = options.journal_pages.unwrap_or((total_pages / 64).clamp(16, 65_536));
        let chunk_max_bytes = options.chunk_max_bytes.max(PAGE as u32).next_multiple_of(PAGE as u32);
        let data_start_page = 2 + journal_pages;
        if journal_pages < 4 || data_start_page + 16 > total_pages {
            return Err(StoreError::DeviceTooSmall);
        }
        let superblock = Superblock {
            total_pages,
            journal_start_page: 2,
            journal_pages,
            data_start_page,
            chunk_max_bytes,
            min_part_bytes: options.min_part_bytes.next_multiple_of(PAGE_BYTES),
            generation: 1,
            volume_id: options.volume_id,
            checkpoint_seq: 0,
            replay_position: 0,
            replay_prev_crc: volume_chain_seed(&options.volume_id),
            manifest: None,
            created_ms: options.now_ms,
            format_version: crate::layout::FORMAT_VERSION,
        };
        let lbas_per_page = PAGE_BYTES / u64::from(geometry.block_bytes);
        // Both copies, so a stale copy of an earlier volume cannot win.
        for generation in [0, 1] {
            write_superblock(&device, lbas_per_page, &Superblock { generation, ..superblock }).await?;
        }
        device.flush().await?;
        let (store, _) = Self::open(device).await?;
        Ok(store)
    }

    /// Opens a volume: newest valid superblock, checkpoint, journal replay.
    pub async fn open(device: D) -> Result<(Self, OpenReport), StoreError> {
        let geometry = device.geometry();
        if geometry.block_bytes == 0 || !PAGE_BYTES.is_multiple_of(u64::from(geometry.block_bytes)) {
            return Err(StoreError::Object(ObjectError::UnsupportedBlockSize(geometry.block_bytes)));
        }
        let device_pages = geometry.capacity_bytes() / PAGE_BYTES;
        let lbas_per_page = PAGE_BYTES / u64::from(geometry.block_bytes);
        let mut best: Result<Superblock, SuperblockError> = Err(SuperblockError::BadMagic);
        let mut valid_copies = 0;
        for page in [0, 1] {
            let buf = read_pages(&device, Extent { start_page: page, pages: 1 }).await?;
            match Superblock::decode_checked(buf.as_slice(), device_pages) {
                Ok(copy) if copy.copy_page() == page => {
                    valid_copies += 1;
                    if best.as_ref().is_ok_and(|b| b.generation >= copy.generation) {
                        continue;
                    }
                    best = Ok(copy);
                }
                Ok(_) => {}
                Err(error) => {
                    if best.is_err() {
                        best = Err(error);
                    }
                }
            }
        }
        let mut superblock = best.map_err(StoreError::NotFormatted)?;
        if superblock.format_version < crate::layout::FORMAT_VERSION {
            // Both copies, before any batch of the new format is written:
            // an older build must find no copy it can read.
            for _ in 0..2 {
                let copy = Superblock {
                    format_version: crate::layout::FORMAT_VERSION,
                    ..superblock.after(1).map_err(StoreError::NotFormatted)?
                };
                write_superblock(&device, lbas_per_page, &copy).await?;
                device.flush().await?;
                superblock = copy;
            }
        }

        // The checkpoint.
        let mut checkpoint_extents = Vec::new();
        let mut checkpoint_bytes = 0;
        let mut meta = MetaState::new(superblock.min_part_bytes);
        if let Some(manifest_ref) = superblock.manifest {
            let manifest_buf =
                read_chunk(&device, &manifest_ref, 0).await.map_err(|_| StoreError::CorruptCheckpoint)?;
            let manifest: CheckpointManifest =
                postcard::from_bytes(manifest_buf.as_slice()).map_err(|_| StoreError::CorruptCheckpoint)?;
            if manifest.seq != superblock.checkpoint_seq {
                return Err(StoreError::CorruptCheckpoint);
            }
            let mut state = Vec::new();
            for (index, chunk) in manifest.chunks.iter().enumerate() {
                let buf = read_chunk(&device, chunk, index).await.map_err(|_| StoreError::CorruptCheckpoint)?;
                state.extend_from_slice(buf.as_slice());
                checkpoint_extents.push(chunk.extent);
            }
            if state.len() as u64 != manifest.state_bytes {
                return Err(StoreError::CorruptCheckpoint);
            }
            meta = postcard::from_bytes(&state).map_err(|_| StoreError::CorruptCheckpoint)?;
            checkpoint_extents.push(manifest_ref.extent);
            checkpoint_bytes = manifest.state_bytes;
        }

        // Replay.
        let journal_pages = superblock.journal_pages;
        let mut position = superblock.replay_position;
        let mut next_seq = superblock.checkpoint_seq + 1;
        let mut prev_crc = superblock.replay_prev_crc;
        let mut visited_pages = 0u64;
        // Logged chunk bytes by start page, with the last sequence number of
        // their batch; the latest image of a page wins. Images of records
        // that a later batch says are in the data area are dropped as
        // replay goes, which bounds this by what was waiting for write-back.
        let mut images: BTreeMap<u64, (u64, Vec<u8>)> = BTreeMap::new();
        let mut images_durable_seq = superblock.checkpoint_seq;
        // Batches read but not applied yet: from the first flagged for
        // verification that no later batch has yet said is durable (see
        // `journal`). Only the last batch or two of a log stay here.
        let mut held: VecDeque<ReadBatch> = VecDeque::new();
        let mut vouched_through = superblock.checkpoint_seq;
        let mut replay = Replay {
            meta: &mut meta,
            images: &mut images,
            images_durable_seq: &mut images_durable_seq,
            batches: 0,
            records: 0,
        };
        let mut end = loop {
            let header_page = Extent { start_page: superblock.journal_start_page + position, pages: 1 };
            // A read error is not the end of the log: treating it so would
            // drop acknowledged batches after it and let the next commit
            // overwrite them. The open fails; a retry can still see them.
            let first = read_pages(&device, header_page).await?;
            let header = match BatchHeader::decode_checked(first.as_slice(), next_seq, prev_crc) {
                Ok(header) => header,
                Err(end) => break end,
            };
            if position + u64::from(header.pages) > journal_pages
                || visited_pages + u64::from(header.pages) > journal_pages
            {
                break BatchEnd::BadLength;
            }
            visited_pages += u64::from(header.pages);
            if header.kind == BatchKind::Padding {
                if position + u64::from(header.pages) != journal_pages {
                    break BatchEnd::BadLength;
                }
                position = 0;
                prev_crc = header.header_crc;
                continue;
            }
            let whole = if header.pages > 1 {
                let extent = Extent { start_page: superblock.journal_start_page + position, pages: header.pages };
                read_pages(&device, extent).await?
            } else {
                first
            };
            let batch = match header.records(whole.as_slice()) {
                Ok(Ok(batch)) => batch,
                Ok(Err(undecodable)) => return Err(StoreError::CorruptJournal { seq: undecodable.seq }),
                Err(end) => break end,
            };
            let count = batch.records.len() as u64;
            held.push_back(ReadBatch { position, prev_crc, first_seq: next_seq, header, batch });
            next_seq += count;
            prev_crc = header.header_crc;
            position = (position + u64::from(header.pages)) % journal_pages;
            vouched_through = vouched_through.max(header.durable_through);
            while let Some(front) = held.front() {
                if front.header.verify_data && front.last_seq() > vouched_through {
                    break;
                }
                if let Some(read) = held.pop_front() {
                    replay.apply(read)?;
                }
            }
        };
        // The end of the log: what is still held was written without a
        // data flush before it, and no batch after it says it was flushed.
        // The first whose chunks did not all reach the media ends the log
        // there instead, with everything after it: none of it was
        // acknowledged.
        let mut verified_batches = 0;
        while let Some(read) = held.pop_front() {
            if read.header.verify_data {
                verified_batches += 1;
                if !chunks_intact(&device, &read, &superblock).await? {
                    end = BatchEnd::UnflushedData { seq: read.first_seq };
                    (position, prev_crc, next_seq) = (read.position, read.prev_crc, read.first_seq);
                    break;
                }
            }
            replay.apply(read)?;
        }
        let (replayed_batches, replayed_records) = (replay.batches, replay.records);

        let mut used = meta.referenced_extents();
        used.extend_from_slice(&checkpoint_extents);
        let map = SpaceMap::from_used(superblock.data_start_page, superblock.total_pages, used)
            .map_err(StoreError::CorruptSpace)?;
        // An image is written back only if the replayed state still holds
        // that chunk (a later record may have given it up; see above for a
        // later chunk at the same place); length and CRC are checked too.
        let mut overlay = Overlay::default();
        if !images.is_empty() {
            meta.for_each_chunk(|chunk| {
                let Some((seq, bytes)) = images.get(&chunk.extent.start_page) else { return };
                if chunk.extent.pages == 0
                    || bytes.len() != chunk.len_bytes as usize
                    || bytes.len() as u64 > chunk.extent.bytes()
                    || crc32c(bytes) != chunk.crc32c
                {
                    return;
                }
                let mut pages = IoBuf::zeroed(chunk.extent.bytes() as usize);
                pages.as_mut_slice()[..bytes.len()].copy_from_slice(bytes);
                overlay.insert(Unwritten { chunk: *chunk, pages: Arc::new(pages), seq: *seq, freed_at: None });
            });
        }
        // A new session: batches from now on carry a generation no batch
        // on the disk has (see `journal`), so one left whole behind a lost
        // batch of the last session never chains to this session's. With
        // one copy unreadable, that copy may have been the newest, one
        // generation on, and batches may carry it: the session skips past
        // it, to a generation of the same parity, so the write goes over
        // the unreadable copy and the valid one stays.
        let loaded_generation = superblock.generation;
        let step = if valid_copies == 2 { 1 } else { 3 };
        superblock = superblock.after(step).map_err(StoreError::NotFormatted)?;
        write_superblock(&device, lbas_per_page, &superblock).await?;
        device.flush().await?;
        let free_pages = map.free_pages();
        let reserve = reserve_for(&checkpoint_extents);
        let ids = VersionIdGenerator::resume_after(meta.last_id);
        let inner = Inner {
            meta,
            superblock,
            checkpoint_extents,
            ids,
            head: position,
            prev_crc,
            applied_seq: next_seq - 1,
            taken_seq: next_seq - 1,
            durable_seq: next_seq - 1,
            data_durable_seq: next_seq - 1,
            pending: Vec::new(),
            images_durable_seq,
            in_flight: VecDeque::new(),
            checkpointing: false,
            checkpoint_waiting: false,
            blocked_by_checkpoint: false,
            force_checkpoint: false,
            waiters: Vec::new(),
            stopped: false,
            readers: BTreeMap::new(),
            snapshot: None,
        };
        let store = Self {
            device: Overlaid::new(device, overlay, superblock.data_start_page),
            inline_max: AtomicUsize::new(inline_max(journal_pages, checkpoint_bytes)),
            logging_off: AtomicBool::new(false),
            counters: CommitCounters::default(),
            md5_batch: Md5Batch::new(),
            buffers: BufferPool::new(
                superblock.chunk_max_bytes as usize,
                IDLE_BUFFER_BYTES.div_ceil(superblock.chunk_max_bytes as usize),
            ),
            space: SpaceCell { map: Mutex::new(map), reserve_pages: AtomicU64::new(reserve) },
            inner: Mutex::new(inner),
            chunk_max_bytes: superblock.chunk_max_bytes as usize,
            lbas_per_page,
            snapshot_step_keys: AtomicUsize::new(SNAPSHOT_STEP_KEYS),
        };
        let report = OpenReport {
            generation: loaded_generation,
            checkpoint_seq: superblock.checkpoint_seq,
            replayed_batches,
            replayed_records,
            end,
            verified_batches,
            free_pages,
        };
        Ok((store, report))
    }

    pub fn device(&self) -> &D {
        self.device.inner()
    }

    /// How many units of work (see [`SNAPSHOT_STEP_KEYS`], the default) a
    /// checkpoint's image takes before it lets other tasks run. Tests set
    /// a few, so that records interleave with the image even in small
    /// states.
    pub fn set_snapshot_step_keys(&self, keys: usize) {
        self.snapshot_step_keys.store(keys.max(1), Ordering::Relaxed);
    }

    pub fn chunk_max_bytes(&self) -> usize {
        self.chunk_max_bytes
    }

    /// Small objects travel in the journal while its size allows (see
    /// [`inline_max`]); off, they are written to their extents as larger
    /// ones are, which is what a store whose state has outgrown an eighth
    /// of its journal does. For benches and tests of that path.
    pub fn set_small_object_logging(&self, on: bool) {
        self.logging_off.store(!on, Ordering::Relaxed);
    }

    /// A writer for the bytes of a new object or part.
    pub fn writer(&self) -> ObjectWriter<'_, Overlaid<D>, SpaceCell> {
        let inline_max =
            if self.logging_off.load(Ordering::Relaxed) { 0 } else { self.inline_max.load(Ordering::Relaxed) };
        ObjectWriter::new(&self.device, &self.space, self.chunk_max_bytes)
            .with_inline_max(inline_max)
            .with_md5_batch(&self.md5_batch)
            .with_buffer_pool(&self.buffers)
    }

    /// Hashing jobs run through the store's MD5 batch (small objects whole at
    /// the end of their writer, chunks of larger ones as they go out), and
    /// the leader passes that ran them (their ratio is how many ran at once).
    pub fn md5_batch_counts(&self) -> (u64, u64) {
        self.md5_batch.counts()
    }

    /// Bytes of logged chunks waiting for write-back, and how many.
    pub fn unwritten(&self) -> (usize, usize) {
        let overlay = self.device.overlay.lock();
        (overlay.bytes(), overlay.len())
    }

    /// Reads the metadata under the lock (listings, bucket facts).
    pub fn with_state<R>(&self, read: impl FnOnce(&MetaState) -> R) -> R {
        read(&self.inner.lock().meta)
    }

    /// What the committer has done since the store was opened.
    pub fn commit_counters(&self) -> CommitSnapshot {
        let c = &self.counters;
        CommitSnapshot {
            batches: c.batches.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            logged_chunks: c.logged_chunks.load(Ordering::Relaxed),
            write_backs: c.write_backs.load(Ordering::Relaxed),
            written_back_chunks: c.written_back_chunks.load(Ordering::Relaxed),
            overlapped_batches: c.overlapped_batches.load(Ordering::Relaxed),
            batches_beside_checkpoints: c.batches_beside_checkpoints.load(Ordering::Relaxed),
            absorbing_checkpoints: c.absorbing_checkpoints.load(Ordering::Relaxed),
            records_beside_images: c.records_beside_images.load(Ordering::Relaxed),
            verified_batches: c.verified_batches.load(Ordering::Relaxed),
        }
    }

    /// Pages of the data region in all.
    pub fn total_data_pages(&self) -> u64 {
        let inner = self.inner.lock();
        inner.superblock.total_pages - inner.superblock.data_start_page
    }

    pub fn free_pages(&self) -> u64 {
        self.space.map.lock().free_pages()
    }

    /// Applies a record made from the current state and waits until it is
    /// durable. `make` runs under the lock, so what it checks still holds
    /// when the record applies.
    async fn commit<T>(
        &self,
        make: impl FnOnce(&mut Inner) -> Result<(JournalRecord, T), StoreError>,
    ) -> Result<T, StoreError> {
        self.commit_with(ChunkData::None, make).await
    }

    /// [`Store::commit`] for a record that references chunks `data` says
    /// how to make durable.
    async fn commit_with<T>(
        &self,
        data: ChunkData,
        make: impl FnOnce(&mut Inner) -> Result<(JournalRecord, T), StoreError>,
    ) -> Result<T, StoreError> {
        let (seq, value) = {
            let mut inner = self.inner.lock();
            if inner.stopped {
                return Err(StoreError::Stopped);
            }
            let (record, value) = make(&mut inner)?;
            (self.submit(&mut inner, record, data)?, value)
        };
        self.wait_durable(seq).await?;
        Ok(value)
    }

    /// Applies `record` in memory and queues it for the journal; returns
    /// its sequence number. The space it gives up is parked until durable.
    fn submit(&self, inner: &mut Inner, record: JournalRecord, data: ChunkData) -> Result<u64, StoreError> {
        let encoded = journal::encode_record(&record);
        let (images, needs_data) = match data {
            ChunkData::None => (Vec::new(), false),
            ChunkData::Written => (Vec::new(), true),
            ChunkData::Logged(chunks) => (chunks, false),
        };
        let verify_bytes = if needs_data { verify_bytes(&record) } else { 0 };
        let pending = Pending { encoded, images: images.clone(), needs_data, verify_bytes };
        if pending.journal_bytes() + journal::HEADER_BYTES > inner.max_batch_bytes() {
            return Err(StoreError::RecordTooLarge);
        }
        if inner.snapshot.is_some() {
            self.counters.records_beside_images.fetch_add(1, Ordering::Relaxed);
        }
        let freed = inner.apply(record)?;
        inner.applied_seq += 1;
        let seq = inner.applied_seq;
        inner.pending.push(pending);
        let mut overlay = self.device.overlay.lock();
        self.counters.logged_chunks.fetch_add(images.len() as u64, Ordering::Relaxed);
        for (chunk, pages) in images {
            overlay.insert(Unwritten { chunk, pages, seq, freed_at: None });
        }
        let mut map = self.space.map.lock();
        for extent in freed {
            overlay.mark_freed(extent, seq);
            map.defer(extent, seq);
        }
        Ok(seq)
    }

    async fn wait_durable(&self, seq: u64) -> Result<(), StoreError> {
        loop {
            let lead = {
                let inner = self.inner.lock();
                if inner.stopped {
                    return Err(StoreError::Stopped);
                }
                if inner.durable_seq >= seq {
                    return Ok(());
                }
                inner.may_lead()
            };
            if lead {
                let guard = LeaderGuard { store: self };
                let result = self.lead().await;
                core::mem::forget(guard);
                if result.is_err() {
                    let mut inner = self.inner.lock();
                    inner.stopped = true;
                    // No record applies any more: an image being made is moot.
                    inner.snapshot = None;
                    inner.wake_all();
                }
                continue;
            }
            poll_fn(|cx| {
                let mut inner = self.inner.lock();
                if inner.stopped || inner.durable_seq >= seq || inner.may_lead() {
                    return Poll::Ready(());
                }
                inner.waiters.push(cx.waker().clone());
                Poll::Pending
            })
            .await;
        }
    }

    /// A committer: writes batches (or a checkpoint) while records wait
    /// and it may (see [`Inner::may_lead`]); up to [`MAX_IN_FLIGHT`] run at
    /// once, each with its own batch.
    ///
    /// One flush per batch. A record is ready for the journal when the
    /// chunks it references are durable or travel with it: the flush that
    /// makes batch n's journal write durable also makes durable the chunks
    /// of every record submitted before it started. A record whose chunks
    /// are not durable yet goes in a batch flagged for replay to verify
    /// them, within `VERIFY_MAX_BYTES`; only a batch whose first record
    /// has more than that (or a checkpoint, whose state includes every
    /// applied record) flushes data first.
    ///
    /// Batches in flight together are written to consecutive journal
    /// places and may reach the media in either order; replay stops at the
    /// first one missing or torn, so a later one that made it is ignored
    /// (none of its records was acknowledged: they wait for every batch
    /// before theirs). A checkpoint starts only with nothing in flight (no
    /// write may land in journal space it frees). It names the journal head
    /// after its own batch as the place replay starts; batches go on after
    /// that place while it writes the state, the write-backs, its flushes
    /// and the superblock, and are acknowledged as usual: the superblock in
    /// force replays them either way.
    async fn lead(&self) -> Result<(), StoreError> {
        loop {
            let Some((work, data_flush)) = self.take_work()? else {
                return Ok(());
            };
            // Chunks the records reference were written before they were
            // submitted: this flush makes them durable before the records.
            if let Some(submitted_through) = data_flush {
                self.device.flush().await?;
                self.counters.flushes.fetch_add(1, Ordering::Relaxed);
                let mut inner = self.inner.lock();
                inner.data_durable_seq = inner.data_durable_seq.max(submitted_through);
            }
            match work {
                Work::Batch(batch) => self.log_batch(batch).await?,
                Work::Checkpoint { batch, through_seq, replay_from } => {
                    let logged = batch.is_some();
                    if let Some(batch) = batch {
                        // Durable in the journal, which the superblock
                        // still in force replays: acknowledged now, while
                        // the checkpoint is written.
                        self.log_batch(batch).await?;
                    }
                    self.write_checkpoint(through_seq, replay_from).await?;
                    let mut inner = self.inner.lock();
                    if !logged {
                        inner.complete(through_seq);
                    }
                    inner.checkpointing = false;
                    inner.blocked_by_checkpoint = false;
                    self.reclaim(&inner);
                    inner.wake_all();
                }
            }
        }
    }

    /// Takes the next work under the lock: a batch of the ready records
    /// (placed in the journal and encoded now, so the batch after it can
    /// chain to it), or a checkpoint once nothing else is in flight. `None`
    /// when there is nothing to do or this task may not start it.
    fn take_work(&self) -> Result<Option<(Work, Option<u64>)>, StoreError> {
        let mut inner = self.inner.lock();
        if !inner.may_lead() {
            return Ok(None);
        }
        let journal_pages = inner.superblock.journal_pages;
        let all_bytes: usize = inner.pending.iter().map(Pending::journal_bytes).sum();
        let pages = u64::from(journal::batch_pages(all_bytes));
        let padding = if inner.head + pages > journal_pages { journal_pages - inner.head } else { 0 };
        let used_after = inner.journal_used_pages() + padding + pages;
        let first_seq = inner.taken_seq + 1;
        // Also after many records: replay time grows with the records,
        // whatever their size (small PUTs fill the journal slowly but
        // replay at ~1 µs each).
        let since_checkpoint = inner.applied_seq - inner.superblock.checkpoint_seq;
        let checkpoint_due = !inner.checkpointing
            && (used_after > journal_pages / 2
                || inner.force_checkpoint
                || since_checkpoint > CHECKPOINT_EVERY_RECORDS);
        if checkpoint_due {
            if !inner.in_flight.is_empty() {
                // The last batch in flight to finish takes it.
                inner.checkpoint_waiting = true;
                return Ok(None);
            }
            inner.checkpoint_waiting = false;
            let all_ready = inner.pending.iter().enumerate().all(|(index, pending)| inner.is_ready(index, pending));
            let data_flush = (!all_ready).then_some(inner.applied_seq);
            inner.force_checkpoint = false;
            inner.checkpointing = true;
            // The image starts now, under the lock that took the records,
            // so it is exactly the state they lead to; the committer
            // serializes it in slices (see `write_image`).
            inner.snapshot = Some(Snapshot::start(&inner.meta).map_err(|_| StoreError::CorruptCheckpoint)?);
            let through_seq = inner.applied_seq;
            let pending = core::mem::take(&mut inner.pending);
            inner.taken_seq = through_seq;
            // With no room for the records, the checkpoint takes them.
            let batch = (used_after < journal_pages).then(|| self.place_batch(&mut inner, pending, first_seq, false));
            // Records after these are acknowledged only once these are
            // durable: in the journal, or else in the checkpoint.
            inner.in_flight.push_back((through_seq, false));
            // Absorbed records leave no batch at the head, so a batch
            // beside this checkpoint would sit exactly where, with the
            // sequence number and chain value that, a later session's
            // checkpoint names if it absorbs as many records at the same
            // head after a cut here: that dead batch would replay then.
            // Nothing goes beside an absorbing checkpoint (the journal is
            // full anyway).
            if batch.is_none() {
                inner.blocked_by_checkpoint = true;
                self.counters.absorbing_checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            let replay_from = JournalPlace { page: inner.head, prev_crc: inner.prev_crc };
            return Ok(Some((Work::Checkpoint { batch, through_seq, replay_from }, data_flush)));
        }
        // While a checkpoint is written, batches go after the place it
        // names, as long as the journal has room without the space it will
        // free; one asked for runs after it.
        if inner.checkpointing && (used_after >= journal_pages || inner.force_checkpoint) {
            inner.blocked_by_checkpoint = true;
            return Ok(None);
        }
        // At most a quarter of the journal (a record alone is never more:
        // see `submit`). Records whose chunks may not be durable yet go in
        // a batch flagged for replay to verify them, up to
        // `VERIFY_MAX_BYTES` of chunks in all; the flush after the batch
        // makes chunks and batch durable at once. If the first record
        // alone is more than that, a data flush first makes every pending
        // record ready.
        let cap = inner.max_batch_bytes() - journal::HEADER_BYTES;
        let data_flush_first = inner.needs_data_flush(&inner.pending[0]);
        let (mut bytes, mut verify_bytes, mut verify) = (0, 0, false);
        let mut take = 0;
        for (index, pending) in inner.pending.iter().enumerate() {
            bytes += pending.journal_bytes();
            let ready = data_flush_first || inner.is_ready(index, pending);
            // A flagged batch has every chunk its records bring verified.
            let counted = if ready && !verify { 0 } else { verify_bytes + pending.verify_bytes };
            if index > 0 && (bytes > cap || counted > VERIFY_MAX_BYTES) {
                break;
            }
            if !data_flush_first {
                verify |= !ready;
                verify_bytes += pending.verify_bytes;
            }
            take += 1;
        }
        let rest = inner.pending.split_off(take);
        let pending = core::mem::replace(&mut inner.pending, rest);
        let data_flush = data_flush_first.then_some(inner.applied_seq);
        inner.taken_seq += take as u64;
        if verify {
            self.counters.verified_batches.fetch_add(1, Ordering::Relaxed);
        }
        let batch = self.place_batch(&mut inner, pending, first_seq, verify);
        if !inner.in_flight.is_empty() {
            self.counters.overlapped_batches.fetch_add(1, Ordering::Relaxed);
        }
        if inner.checkpointing {
            self.counters.batches_beside_checkpoints.fetch_add(1, Ordering::Relaxed);
        }
        inner.in_flight.push_back((batch.through_seq, false));
        Ok(Some((Work::Batch(batch), data_flush)))
    }

    /// Encodes `pending` as the batch at the journal head (after padding to
    /// the journal's end if it does not fit before it) and moves the head
    /// past it.
    fn place_batch(&self, inner: &mut Inner, pending: Vec<Pending>, first_seq: u64, verify_data: bool) -> PlacedBatch {
        let journal_start = inner.superblock.journal_start_page;
        let journal_pages = inner.superblock.journal_pages;
        let session = inner.superblock.generation as u32;
        let bytes: usize = pending.iter().map(Pending::journal_bytes).sum();
        let pages = u64::from(journal::batch_pages(bytes));
        let mut padding = None;
        if inner.head + pages > journal_pages {
            let (buf, header) =
                journal::encode_padding(session, first_seq, inner.prev_crc, (journal_pages - inner.head) as u32);
            padding = Some((journal_start + inner.head, buf));
            inner.prev_crc = header.header_crc;
            inner.head = 0;
        }
        let records: Vec<&[u8]> = pending.iter().map(|p| p.encoded.as_slice()).collect();
        let images: Vec<(u64, &[u8])> = pending
            .iter()
            .flat_map(|p| {
                p.images
                    .iter()
                    .map(|(chunk, pages)| (chunk.extent.start_page, &pages.as_slice()[..chunk.len_bytes as usize]))
            })
            .collect();
        // The header vouches only for what a completed flush made durable
        // (write-backs; acknowledged records, whose flagged batches need no
        // verifying then): this batch may reach the media without its own
        // flush.
        let state = journal::BatchState {
            images_durable_seq: inner.images_durable_seq,
            durable_through: inner.durable_seq,
            verify_data,
        };
        let (buf, header) = journal::encode_batch(session, first_seq, inner.prev_crc, &records, &images, state);
        let page = journal_start + inner.head;
        inner.head = (inner.head + pages) % journal_pages;
        inner.prev_crc = header.header_crc;
        // Every record submitted by now had its chunks written, and every
        // logged chunk no longer waiting in memory was written back: the
        // flush after the batch's write makes them durable too (see `lead`).
        let claims = FlushClaims {
            submitted_through: inner.applied_seq,
            written_back_through: self.device.overlay.lock().written_back_through(inner.applied_seq),
        };
        PlacedBatch {
            padding,
            page,
            buf,
            through_seq: first_seq + pending.len() as u64 - 1,
            records: pending.len(),
            claims,
        }
    }

    /// Writes a placed batch and flushes, then completes it: its records
    /// are acknowledged once every batch before it completed, and what the
    /// flush vouches for is taken.
    async fn log_batch(&self, batch: PlacedBatch) -> Result<(), StoreError> {
        let through_seq = batch.through_seq;
        let claims = self.write_batch(batch).await?;
        let mut inner = self.inner.lock();
        inner.complete(through_seq);
        claims.apply(&mut inner);
        self.reclaim(&inner);
        inner.wake_all();
        Ok(())
    }

    /// Writes a placed batch and flushes; returns what the flush vouches for.
    async fn write_batch(&self, batch: PlacedBatch) -> Result<FlushClaims, StoreError> {
        // A batch taken before another failed may get here after the store
        // stopped (its data flush took a while): nothing more goes to the
        // journal of a device that just failed. Its records were never
        // acknowledged. The check is the last thing before the journal
        // write goes out: `write_durable` issues it in its first poll,
        // beside the held writes it drains (see `crate::write_cache`).
        self.ensure_running()?;
        if let Some((page, buf)) = batch.padding {
            self.write_at(page, buf).await?;
            self.ensure_running()?;
        }
        let (result, _) = self.device.write_durable(batch.page * self.lbas_per_page, batch.buf).await;
        result?;
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters.records.fetch_add(batch.records as u64, Ordering::Relaxed);
        Ok(batch.claims)
    }

    fn ensure_running(&self) -> Result<(), StoreError> {
        if self.inner.lock().stopped { Err(StoreError::Stopped) } else { Ok(()) }
    }

    async fn write_at(&self, page: u64, buf: IoBuf) -> Result<(), StoreError> {
        let (result, _) = self.device.write(page * self.lbas_per_page, buf).await;
        Ok(result?)
    }

    /// Writes logged chunks to their extents, adjacent ones in one write.
    /// With `claim` it gives way to a write-back already running; a
    /// checkpoint's does not, since it needs every chunk its state
    /// references written before its flush (a chunk written twice is the
    /// same bytes twice).
    async fn write_back(&self, claim: bool) -> Result<(), StoreError> {
        let (pin, runs) = {
            let mut inner = self.inner.lock();
            let plan = {
                let mut overlay = self.device.overlay.lock();
                if claim && overlay.writing_back {
                    return Ok(());
                }
                let plan = overlay.plan(inner.applied_seq);
                if plan.runs.is_empty() {
                    return Ok(());
                }
                overlay.writing_back |= claim;
                plan
            };
            // In the same critical section as the plan: nothing it writes
            // can be reclaimed and reused before the writes are done.
            (ReaderPin::new(self, &mut inner, plan.pin), plan.runs)
        };
        let mut guard = WriteBackGuard { store: self, claim, pin: Some(pin) };
        let mut written = Vec::new();
        let mut result = Ok(());
        let mut runs = runs.into_iter().peekable();
        while runs.peek().is_some() && result.is_ok() {
            let mut writes = Vec::new();
            for run in runs.by_ref().take(WRITE_BACK_DEPTH) {
                let pages = run.pages();
                written.extend(run.written);
                writes.push(write_pages(&self.device, run.extent, pages));
            }
            for (outcome, _) in runtime::join::join_all(writes).await {
                if let Err(error) = outcome {
                    result = Err(StoreError::from(error));
                }
            }
            // On a device that completes at once (a RAM disk) the writes
            // above never waited: let other tasks run between groups.
            runtime::yield_now().await;
        }
        {
            let mut overlay = self.device.overlay.lock();
            // After an error nothing is forgotten: the next write-back or
            // checkpoint writes it all again.
            if result.is_ok() {
                overlay.written(&written);
                self.counters.write_backs.fetch_add(1, Ordering::Relaxed);
                self.counters.written_back_chunks.fetch_add(written.len() as u64, Ordering::Relaxed);
            }
        }
        // Every write is done: the pin may go.
        drop(guard.pin.take());
        drop(guard);
        result
    }

    /// Serializes the checkpoint's image a slice at a time and hands each
    /// slice's bytes to `writer`, letting other tasks run between slices:
    /// their records go beside it (see [`crate::snapshot`]). The image is
    /// dropped once complete; an error stops the store, which drops it
    /// (see `wait_durable`). Returns the image's length.
    async fn write_image<S: SpaceSource>(
        &self,
        writer: &mut ObjectWriter<'_, Overlaid<D>, S>,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let (done, bytes) = {
                let mut inner = self.inner.lock();
                let inner = &mut *inner;
                let snapshot = inner.snapshot.as_mut().ok_or(StoreError::CorruptCheckpoint)?;
                let keys = self.snapshot_step_keys.load(Ordering::Relaxed);
                let done = snapshot.step(&inner.meta, keys).map_err(|_| StoreError::CorruptCheckpoint)?;
                let bytes = snapshot.take_bytes();
                if done {
                    inner.snapshot = None;
                }
                (done, bytes)
            };
            total += bytes.len() as u64;
            writer.write(&bytes).await?;
            if done {
                return Ok(total);
            }
            runtime::yield_now().await;
        }
    }

    /// Writes the state as of `through_seq` to fresh extents, then a
    /// superblock that names it and starts replay at `replay_from`.
    /// Batches taken meanwhile are written after that place, so the old
    /// superblock (replaying through the checkpoint's own batch) and the
    /// new one both reach them; the journal space before it is free only
    /// once the new superblock is durable.
    async fn write_checkpoint(&self, through_seq: u64, replay_from: JournalPlace) -> Result<(), StoreError> {
        let unreserved = Unreserved(&self.space);
        let mut writer = ObjectWriter::new(&self.device, &unreserved, self.chunk_max_bytes)
            .without_md5()
            .with_buffer_pool(&self.buffers);
        let state_bytes = self.write_image(&mut writer).await?;
        let written: WrittenObject<'_, Unreserved<'_>> = writer.finish().await?;
        let manifest = CheckpointManifest { seq: through_seq, state_bytes, chunks: written.chunks.chunks().to_vec() };
        let manifest_bytes = postcard::to_allocvec(&manifest).map_err(|_| StoreError::CorruptCheckpoint)?;
        let manifest_pages = manifest_bytes.len().div_ceil(PAGE) as u32;
        let manifest_extent = self.allocate_contiguous(manifest_pages)?;
        let mut buf = IoBuf::zeroed(manifest_extent.bytes() as usize);
        buf.as_mut_slice()[..manifest_bytes.len()].copy_from_slice(&manifest_bytes);
        let (result, _) = write_pages(&self.device, manifest_extent, buf).await;
        if let Err(error) = result {
            unreserved.release(manifest_extent);
            return Err(error.into());
        }
        // The new superblock starts replay after the batches that logged
        // these chunks: they must be in the data area first.
        self.write_back(false).await?;
        self.device.flush().await?;
        let manifest_ref = ChunkRef {
            extent: manifest_extent,
            len_bytes: manifest_bytes.len() as u32,
            crc32c: crc32c(&manifest_bytes),
        };
        let next = {
            let inner = self.inner.lock();
            Superblock {
                checkpoint_seq: through_seq,
                replay_position: replay_from.page,
                replay_prev_crc: replay_from.prev_crc,
                manifest: Some(manifest_ref),
                ..inner.superblock.after(1).map_err(StoreError::NotFormatted)?
            }
        };
        write_superblock(&self.device, self.lbas_per_page, &next).await?;
        self.device.flush().await?;
        self.counters.flushes.fetch_add(2, Ordering::Relaxed);
        self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.inline_max.store(inline_max(next.journal_pages, state_bytes), Ordering::Relaxed);
        let mut extents = written.chunks.into_committed().iter().map(|chunk| chunk.extent).collect::<Vec<_>>();
        extents.push(manifest_extent);
        let mut inner = self.inner.lock();
        let old = core::mem::replace(&mut inner.checkpoint_extents, extents);
        self.space.reserve_pages.store(reserve_for(&inner.checkpoint_extents), Ordering::Relaxed);
        inner.superblock = next;
        let mut map = self.space.map.lock();
        for extent in old {
            // The new superblock is durable: nothing names these any more.
            map.release(extent)?;
        }
        Ok(())
    }

    fn allocate_contiguous(&self, pages: u32) -> Result<Extent, StoreError> {
        let mut map = self.space.map.lock();
        let mut short = Vec::new();
        let found = loop {
            match map.allocate_up_to(pages) {
                Ok(extent) if extent.pages == pages => break Ok(extent),
                Ok(extent) => {
                    short.push(extent);
                    if short.len() > 64 {
                        break Err(StoreError::Space(SpaceError::Full));
                    }
                }
                Err(error) => break Err(error.into()),
            }
        };
        for extent in short {
            map.release(extent)?;
        }
        found
    }

    /// Frees parked space that is durable and unread.
    fn reclaim(&self, inner: &Inner) {
        let oldest_reader = inner.readers.keys().next().copied();
        let limit = oldest_reader.map_or(inner.durable_seq, |reader| reader.min(inner.durable_seq));
        self.device.overlay.lock().drop_freed(limit);
        let _ = self.space.map.lock().reclaim(inner.durable_seq, oldest_reader);
    }

    /// How the chunks of `written` become durable: logged with the record
    /// when the writer left them unwritten, both fit a batch and the
    /// committer is not busy (see [`LOG_BUSY_RECORDS`]), else written to
    /// the device now (held until the batch's flush, see
    /// `crate::write_cache`).
    async fn chunk_data(
        &self,
        written: &mut WrittenObject<'_, SpaceCell>,
        record_bound: usize,
    ) -> Result<ChunkData, StoreError> {
        let chunks = match (written.unwritten.take(), written.chunks.chunks()) {
            (Some(pages), [chunk]) => alloc::vec![(*chunk, Arc::new(pages))],
            (_, []) => return Ok(ChunkData::None),
            // `finish` leaves one chunk unwritten or none.
            (_, _) => return Ok(ChunkData::Written),
        };
        let (fits, busy) = {
            let inner = self.inner.lock();
            let fits = record_bound + images_bytes(&chunks) + journal::HEADER_BYTES <= inner.max_batch_bytes();
            (fits, inner.applied_seq - inner.durable_seq >= LOG_BUSY_RECORDS)
        };
        if fits && !busy {
            return Ok(ChunkData::Logged(chunks));
        }
        for (chunk, pages) in chunks {
            let (result, _) = write_pages(&self.device, chunk.extent, IoBuf::from_slice(pages.as_slice())).await;
            result?;
        }
        Ok(ChunkData::Written)
    }

    /// Once enough logged chunks wait in memory, the task whose PUT just
    /// committed writes them back (unless another already is).
    async fn write_back_if_due(&self) {
        let journal_bytes = self.inner.lock().superblock.journal_pages as usize * PAGE;
        if self.device.overlay.lock().bytes() > WRITE_BACK_BYTES.min(journal_bytes / 8) {
            // A failed write leaves the chunks in memory and in the journal;
            // the next write-back or checkpoint tries again, and a
            // checkpoint that fails stops the store. This PUT is durable.
            let _ = self.write_back(true).await;
        }
    }

    /// Writes a checkpoint now (also done automatically).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let seq = {
            let mut inner = self.inner.lock();
            if inner.stopped {
                return Err(StoreError::Stopped);
            }
            // A record that changes nothing gives the committer work; the
            // flag makes that work a checkpoint.
            let record =
                JournalRecord::SystemDeleted { namespace: String::from("fs"), key: String::from("checkpoint") };
            let encoded = journal::encode_record(&record);
            inner.apply(record)?;
            inner.pending.push(Pending { encoded, images: Vec::new(), needs_data: false, verify_bytes: 0 });
            inner.applied_seq += 1;
            inner.force_checkpoint = true;
            inner.applied_seq
        };
        self.wait_durable(seq).await
    }

    // Catalog.

    pub async fn create_bucket(&self, name: &str, owner: &str, now_ms: u64) -> Result<(), StoreError> {
        let record = JournalRecord::BucketCreated { name: name.into(), owner: owner.into(), created_ms: now_ms };
        self.commit(|_| Ok((record, ()))).await
    }

    pub async fn delete_bucket(&self, name: &str) -> Result<(), StoreError> {
        self.commit(|_| Ok((JournalRecord::BucketDeleted { name: name.into() }, ()))).await
    }

    pub async fn rename_bucket(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.commit(|_| Ok((JournalRecord::BucketRenamed { from: from.into(), to: to.into() }, ()))).await
    }

    pub async fn set_versioning(&self, bucket: &str, versioning: Versioning) -> Result<(), StoreError> {
        self.commit(|_| Ok((JournalRecord::VersioningSet { bucket: bucket.into(), versioning }, ()))).await
    }

    pub async fn set_quota(&self, bucket: &str, quota: Quota) -> Result<(), StoreError> {
        self.commit(|_| Ok((JournalRecord::QuotaSet { bucket: bucket.into(), quota }, ()))).await
    }

    pub async fn set_grant(
        &self,
        bucket: &str,
        access_key: &str,
        capabilities: Capabilities,
    ) -> Result<(), StoreError> {
        let record = JournalRecord::GrantSet { bucket: bucket.into(), access_key: access_key.into(), capabilities };
        self.commit(|_| Ok((record, ()))).await
    }

    pub async fn system_put(&self, namespace: &str, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let record = JournalRecord::SystemPut { namespace: namespace.into(), key: key.into(), value };
        self.commit(|_| Ok((record, ()))).await
    }

    /// Applies a system value now and journals it with the next commit,
    /// without waiting: for records that may trail the change they
    /// describe (event notifications). [`Store::sync`] makes it durable.
    pub fn stage_system_put(&self, namespace: &str, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        let record = JournalRecord::SystemPut { namespace: namespace.into(), key: key.into(), value };
        self.stage(record)
    }

    /// [`Store::stage_system_put`] for a removal.
    pub fn stage_system_delete(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        self.stage(JournalRecord::SystemDeleted { namespace: namespace.into(), key: key.into() })
    }

    fn stage(&self, record: JournalRecord) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        if inner.stopped {
            return Err(StoreError::Stopped);
        }
        self.submit(&mut inner, record, ChunkData::None).map(|_| ())
    }

    /// Waits until every change applied so far is durable.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let seq = self.inner.lock().applied_seq;
        self.wait_durable(seq).await
    }

    pub async fn system_delete(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        let record = JournalRecord::SystemDeleted { namespace: namespace.into(), key: key.into() };
        self.commit(|_| Ok((record, ()))).await
    }

    // Objects.

    /// Makes written bytes the new current version of `bucket/key`.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        mut written: WrittenObject<'_, SpaceCell>,
        info: PutInfo,
        now_ms: u64,
    ) -> Result<(VersionId, ObjectMeta), StoreError> {
        let object = ObjectMeta {
            size_bytes: written.size_bytes,
            etag: hex(&written.md5),
            last_modified_ms: now_ms,
            content_type: info.content_type,
            headers: info.headers,
            checksums: info.checksums,
            chunks: written.chunks.chunks().to_vec(),
            part_sizes: Vec::new(),
        };
        let data = self.chunk_data(&mut written, object.encoded_bound(bucket, key)).await?;
        let result = self
            .commit_with(data, |inner| {
                let versioning = inner.meta.bucket(bucket)?.versioning;
                let new_id = inner.ids.next(now_ms);
                let id = if versioning == Versioning::Enabled { new_id } else { VersionId::Null };
                let record =
                    JournalRecord::ObjectPut { bucket: bucket.into(), key: key.into(), new_id, object: object.clone() };
                Ok((record, id))
            })
            .await;
        match result {
            Ok(id) => {
                written.chunks.into_committed();
                self.write_back_if_due().await;
                Ok((id, object))
            }
            // The record never applied: dropping `written` frees its chunks.
            Err(StoreError::Meta(error)) => Err(StoreError::Meta(error)),
            Err(StoreError::RecordTooLarge) => Err(StoreError::RecordTooLarge),
            // Applied but not durable: the chunks belong to the record now,
            // and the stopped store will be reopened from disk.
            Err(error) => {
                written.chunks.into_committed();
                Err(error)
            }
        }
    }

    /// DELETE; with a version ID it removes that version for good.
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        now_ms: u64,
    ) -> Result<DeleteOutcome, StoreError> {
        self.commit(|inner| {
            let state = inner.meta.bucket(bucket)?;
            match version {
                Some(id) => {
                    let is_marker = state
                        .objects
                        .get(key)
                        .and_then(|versions| versions.get(id))
                        .map(|entry| matches!(entry, Entry::DeleteMarker { .. }));
                    let record = JournalRecord::VersionDeleted { bucket: bucket.into(), key: key.into(), id };
                    match is_marker {
                        Some(true) => Ok((record, DeleteOutcome { marker: Some(id) })),
                        Some(false) => Ok((record, DeleteOutcome { marker: None })),
                        // S3 answers 204 for a version that does not exist.
                        None => Err(StoreError::Meta(MetaError::NoSuchVersion)),
                    }
                }
                None => {
                    let versioning = state.versioning;
                    let new_id = inner.ids.next(now_ms);
                    let marker = match versioning {
                        Versioning::Unversioned => None,
                        Versioning::Enabled => Some(new_id),
                        Versioning::Suspended => Some(VersionId::Null),
                    };
                    let record =
                        JournalRecord::ObjectDeleted { bucket: bucket.into(), key: key.into(), new_id, now_ms };
                    Ok((record, DeleteOutcome { marker }))
                }
            }
        })
        .await
    }

    /// Removes the given versions of one key for good.
    pub async fn expire_versions(&self, bucket: &str, key: &str, ids: Vec<VersionId>) -> Result<(), StoreError> {
        let record = JournalRecord::VersionsExpired { bucket: bucket.into(), key: key.into(), ids };
        self.commit(|_| Ok((record, ()))).await
    }

    /// The garbage-collection hook (S3 lifecycle's noncurrent-version and
    /// expired-delete-marker rules): in every key of `bucket`, removes the
    /// noncurrent versions for which `expire(entry, became_noncurrent_ms,
    /// newer_noncurrent_versions)` is true, and a delete marker left as
    /// the only version. One record per key that changes, all made durable
    /// by one group commit; their chunks are freed once it is durable and
    /// no reader still uses them. Returns how many versions it removed.
    pub async fn expire_noncurrent(
        &self,
        bucket: &str,
        mut expire: impl FnMut(&Entry<ObjectMeta>, u64, usize) -> bool,
    ) -> Result<u64, StoreError> {
        let (last_seq, removed) = {
            let mut inner = self.inner.lock();
            if inner.stopped {
                return Err(StoreError::Stopped);
            }
            let mut records = Vec::new();
            let mut removed = 0;
            for (key, versions) in &inner.meta.bucket(bucket)?.objects {
                let mut trial = versions.clone();
                let ids: Vec<VersionId> =
                    trial.expire_noncurrent(&mut expire, created_ms).iter().map(Entry::id).collect();
                if !ids.is_empty() {
                    removed += ids.len() as u64;
                    records.push(JournalRecord::VersionsExpired { bucket: bucket.into(), key: key.clone(), ids });
                }
            }
            let mut last_seq = None;
            for record in records {
                last_seq = Some(self.submit(&mut inner, record, ChunkData::None)?);
            }
            (last_seq, removed)
        };
        if let Some(seq) = last_seq {
            self.wait_durable(seq).await?;
        }
        Ok(removed)
    }

    /// The version `id` (or the current one) of `bucket/key`.
    pub fn head_object(
        &self,
        bucket: &str,
        key: &str,
        id: Option<VersionId>,
    ) -> Result<(VersionId, ObjectMeta), LookupError> {
        let inner = self.inner.lock();
        lookup(&inner.meta, bucket, key, id)
    }

    /// Opens a version for reading; its space stays put while the handle lives.
    pub fn open_object(
        &self,
        bucket: &str,
        key: &str,
        id: Option<VersionId>,
    ) -> Result<ObjectHandle<'_, D>, LookupError> {
        let mut inner = self.inner.lock();
        let (id, meta) = lookup(&inner.meta, bucket, key, id)?;
        let seq = inner.applied_seq;
        let pin = ReaderPin::new(self, &mut inner, seq);
        Ok(ObjectHandle { store: self, _pin: pin, id, meta })
    }

    // Multipart.

    pub async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        template: UploadTemplate,
        now_ms: u64,
    ) -> Result<String, StoreError> {
        self.commit(|inner| {
            inner.meta.bucket(bucket)?;
            let upload_id = alloc::format!("{}", inner.ids.next(now_ms));
            let record = JournalRecord::MultipartCreated {
                upload_id: upload_id.clone(),
                bucket: bucket.into(),
                key: key.into(),
                initiated_ms: now_ms,
                template,
            };
            Ok((record, upload_id))
        })
        .await
    }

    pub async fn put_part(
        &self,
        upload_id: &str,
        part_number: u32,
        mut written: WrittenObject<'_, SpaceCell>,
        checksums: Vec<(String, String)>,
        now_ms: u64,
    ) -> Result<PartMeta, StoreError> {
        let part = PartMeta {
            size_bytes: written.size_bytes,
            md5: written.md5,
            last_modified_ms: now_ms,
            checksums,
            chunks: written.chunks.chunks().to_vec(),
        };
        let record = JournalRecord::PartUploaded { upload_id: upload_id.into(), part_number, part: part.clone() };
        let data = self.chunk_data(&mut written, part.encoded_bound(upload_id)).await?;
        match self.commit_with(data, |_| Ok((record, ()))).await {
            Ok(()) => {
                written.chunks.into_committed();
                self.write_back_if_due().await;
                Ok(part)
            }
            Err(StoreError::Meta(error)) => Err(StoreError::Meta(error)),
            Err(StoreError::RecordTooLarge) => Err(StoreError::RecordTooLarge),
            Err(error) => {
                written.chunks.into_committed();
                Err(error)
            }
        }
    }

    /// Completes an upload from `parts` (number, ETag the client sent).
    /// Metadata only: the parts' chunks become the object's chunks.
    pub async fn complete_multipart(
        &self,
        upload_id: &str,
        parts: &[(u32, String)],
        now_ms: u64,
    ) -> Result<(String, String, VersionId, ObjectMeta), StoreError> {
        let (bucket, key, id) = self
            .commit(|inner| {
                let upload = inner.meta.uploads.get(upload_id).ok_or(MetaError::NoSuchUpload)?;
                let mut md5s = Vec::with_capacity(parts.len());
                for (number, etag) in parts {
                    let part = upload.parts.get(number).ok_or(MetaError::InvalidPart { part_number: *number })?;
                    let wanted = etag.trim_matches('"');
                    if !wanted.eq_ignore_ascii_case(&hex(&part.md5)) {
                        return Err(StoreError::Meta(MetaError::InvalidPart { part_number: *number }));
                    }
                    md5s.push(part.md5);
                }
                let versioning = inner.meta.bucket(&upload.bucket)?.versioning;
                let (bucket, key) = (upload.bucket.clone(), upload.key.clone());
                let new_id = inner.ids.next(now_ms);
                let id = if versioning == Versioning::Enabled { new_id } else { VersionId::Null };
                let record = JournalRecord::MultipartCompleted {
                    upload_id: upload_id.into(),
                    new_id,
                    parts: parts.iter().map(|(number, _)| *number).collect(),
                    etag: multipart_etag(&md5s),
                    now_ms,
                };
                Ok((record, (bucket, key, id)))
            })
            .await?;
        let (_, meta) =
            self.head_object(&bucket, &key, Some(id)).map_err(|_| StoreError::Meta(MetaError::Inconsistent))?;
        Ok((bucket, key, id, meta))
    }

    pub async fn abort_multipart(&self, upload_id: &str) -> Result<(), StoreError> {
        self.commit(|_| Ok((JournalRecord::MultipartAborted { upload_id: upload_id.into() }, ()))).await
    }

    /// Verifies the whole store: references vs. the space map, usage
    /// counters, and every chunk's checksum. Run it with no writer active.
    pub async fn check(&self) -> CheckReport {
        let (chunks, mut report, expected_used, _pin) = {
            let mut inner = self.inner.lock();
            // As a reader: a chunk deleted meanwhile stays readable.
            let seq = inner.applied_seq;
            let pin = ReaderPin::new(self, &mut inner, seq);
            let mut report = CheckReport { buckets: inner.meta.buckets.len() as u64, ..CheckReport::default() };
            for (name, bucket) in &inner.meta.buckets {
                let mut usage = Usage::default();
                for versions in bucket.objects.values() {
                    for entry in versions.entries() {
                        report.versions += 1;
                        if let Entry::Object { value, .. } = entry {
                            usage.add(value);
                        }
                    }
                }
                if usage != bucket.usage {
                    report.problems.push(alloc::format!("bucket {name}: usage {:?}, counted {usage:?}", bucket.usage));
                }
            }
            let mut used = inner.meta.referenced_extents();
            used.extend_from_slice(&inner.checkpoint_extents);
            let map = self.space.map.lock();
            used.extend(map.parked_extents());
            let (start, end) = map.region();
            match SpaceMap::from_used(start, end, used.iter().copied()) {
                Ok(expected) => {
                    let live: Vec<(u64, u64)> = map.free_extents().collect();
                    let wanted: Vec<(u64, u64)> = expected.free_extents().collect();
                    if live != wanted {
                        report.problems.push(alloc::format!(
                            "free map differs from the complement of references: {} free pages, {} expected",
                            map.free_pages(),
                            expected.free_pages()
                        ));
                    }
                }
                Err(error) => report.problems.push(alloc::format!("references overlap: {error:?}")),
            }
            report.free_pages = map.free_pages();
            let used_pages: u64 = used.iter().map(|extent| u64::from(extent.pages)).sum();
            (inner.meta.referenced_chunks(), report, used_pages, pin)
        };
        report.used_pages = expected_used;
        for (place, chunk) in &chunks {
            report.chunks += 1;
            if let Err(error) = read_chunk(&self.device, chunk, 0).await {
                report.problems.push(alloc::format!("{place}: chunk at page {}: {error:?}", chunk.extent.start_page));
            }
        }
        report
    }
}

/// Why a lookup found nothing to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupError {
    NoSuchBucket,
    NoSuchKey,
    NoSuchVersion,
    /// The current version (or the one asked for) is a delete marker.
    DeleteMarker {
        id: VersionId,
        last_modified_ms: u64,
    },
}

fn lookup(
    meta: &MetaState,
    bucket: &str,
    key: &str,
    id: Option<VersionId>,
) -> Result<(VersionId, ObjectMeta), LookupError> {
    let bucket = meta.buckets.get(bucket).ok_or(LookupError::NoSuchBucket)?;
    let versions = bucket.objects.get(key);
    let entry = match id {
        None => versions.and_then(|versions| versions.current()).ok_or(LookupError::NoSuchKey)?,
        Some(id) => versions.and_then(|versions| versions.get(id)).ok_or(LookupError::NoSuchVersion)?,
    };
    match entry {
        Entry::Object { id, value } => Ok((*id, value.clone())),
        Entry::DeleteMarker { id, last_modified_ms } => {
            Err(LookupError::DeleteMarker { id: *id, last_modified_ms: *last_modified_ms })
        }
    }
}

/// When a version was created: what "became noncurrent" is measured from.
fn created_ms(entry: &Entry<ObjectMeta>) -> u64 {
    match entry {
        Entry::Object { value, .. } => value.last_modified_ms,
        Entry::DeleteMarker { last_modified_ms, .. } => *last_modified_ms,
    }
}

/// Writes `superblock` to the page of its copy (not flushed).
async fn write_superblock<D: BlockDevice>(
    device: &D,
    lbas_per_page: u64,
    superblock: &Superblock,
) -> Result<(), StoreError> {
    let (result, _) =
        device.write(superblock.copy_page() * lbas_per_page, IoBuf::from_slice(&superblock.encode())).await;
    Ok(result?)
}

/// The chunks a record brings into the state (written by its request).
fn new_chunks(record: &JournalRecord) -> &[ChunkRef] {
    match record {
        JournalRecord::ObjectPut { object, .. } => &object.chunks,
        JournalRecord::PartUploaded { part, .. } => &part.chunks,
        _ => &[],
    }
}

/// A batch replay has read and checked, with where the log would end if
/// it were dropped.
struct ReadBatch {
    position: u64,
    prev_crc: u32,
    first_seq: u64,
    header: BatchHeader,
    batch: journal::DecodedBatch,
}

impl ReadBatch {
    fn last_seq(&self) -> u64 {
        (self.first_seq + self.batch.records.len() as u64).saturating_sub(1)
    }
}

/// What replay builds, batch by batch, in log order.
struct Replay<'a> {
    meta: &'a mut MetaState,
    /// Logged chunk bytes by start page, with the last sequence number of
    /// their batch (see `Store::open`).
    images: &'a mut BTreeMap<u64, (u64, Vec<u8>)>,
    images_durable_seq: &'a mut u64,
    batches: u64,
    records: u64,
}

impl Replay<'_> {
    fn apply(&mut self, read: ReadBatch) -> Result<(), StoreError> {
        let last_seq = read.last_seq();
        let ReadBatch { first_seq, header, batch, .. } = read;
        let count = batch.records.len() as u64;
        // A chunk a record of this batch brings starts a new life for
        // its pages: an image of an earlier batch at the same page is
        // of a chunk given up since (a free and a reuse are never in
        // one batch: space is reused only after the free is durable).
        for record in &batch.records {
            for chunk in new_chunks(record) {
                self.images.remove(&chunk.extent.start_page);
            }
        }
        for (index, record) in batch.records.into_iter().enumerate() {
            self.meta.apply(record).map_err(|_| StoreError::CorruptJournal { seq: first_seq + index as u64 })?;
        }
        let durable = (*self.images_durable_seq).max(header.images_durable_seq);
        *self.images_durable_seq = durable;
        self.images.retain(|_, (seq, _)| *seq > durable);
        for image in batch.images {
            self.images.insert(image.start_page, (last_seq, image.bytes));
        }
        self.batches += 1;
        self.records += count;
        Ok(())
    }
}

/// The bytes replay reads to verify the chunks `record` brings.
fn verify_bytes(record: &JournalRecord) -> u64 {
    new_chunks(record).iter().map(|chunk| chunk.extent.bytes()).sum()
}

/// Whether every chunk the records of `read` bring, other than those it
/// logs, matches its CRC32C on `device`; replay asks this of a batch
/// written without a data flush first (see [`crate::journal`]). A read
/// error fails the open, as anywhere in replay: only a mismatch, what a
/// write that never reached the media leaves, ends the log. A chunk
/// outside the data area, or larger than a chunk may be, is a record no
/// store wrote: the open fails on it before reading (or allocating) it.
async fn chunks_intact<D: BlockDevice>(
    device: &D,
    read: &ReadBatch,
    superblock: &Superblock,
) -> Result<bool, StoreError> {
    let batch = &read.batch;
    let max_chunk_pages = u64::from(superblock.chunk_max_bytes).div_ceil(PAGE_BYTES);
    for (offset, record) in batch.records.iter().enumerate() {
        for (index, chunk) in new_chunks(record).iter().enumerate() {
            let extent = chunk.extent;
            if extent.pages == 0 || batch.images.iter().any(|image| image.start_page == extent.start_page) {
                continue;
            }
            let end = extent.start_page.checked_add(u64::from(extent.pages));
            if extent.start_page < superblock.data_start_page
                || end.is_none_or(|end| end > superblock.total_pages)
                || u64::from(extent.pages) > max_chunk_pages
            {
                return Err(StoreError::CorruptJournal { seq: read.first_seq + offset as u64 });
            }
            match read_chunk(device, chunk, index).await {
                Ok(_) => {}
                Err(ObjectError::Corrupt { .. }) => return Ok(false),
                Err(error) => return Err(StoreError::Object(error)),
            }
        }
    }
    Ok(true)
}

/// Writes a write-back keeps in flight at once.
const WRITE_BACK_DEPTH: usize = 16;

/// Space kept free for checkpoints: twice the last one, and some.
fn reserve_for(checkpoint: &[Extent]) -> u64 {
    let pages: u64 = checkpoint.iter().map(|extent| u64::from(extent.pages)).sum();
    2 * pages + 64
}

/// Ends a write-back. Dropped with its pin still in place, the write-back
/// was cancelled while writes may be in flight (a device finishes a write
/// whose future was dropped): the pin then stays, and space given up from
/// then on is reused only after the store is opened again, rather than
/// while a late write could still land on it. Callers run store futures to
/// completion; this is the net under that rule.
struct WriteBackGuard<'a, D: BlockDevice> {
    store: &'a Store<D>,
    claim: bool,
    pin: Option<ReaderPin<'a, D>>,
}

impl<D: BlockDevice> Drop for WriteBackGuard<'_, D> {
    fn drop(&mut self) {
        if let Some(pin) = self.pin.take() {
            core::mem::forget(pin);
        }
        if self.claim {
            self.store.device.overlay.lock().writing_back = false;
        }
    }
}

/// Dropped only if the committing future is cancelled mid-commit: the
/// records it had taken may be half written, so the store stops (a reopen
/// replays what is durable) rather than guess. Callers run store futures
/// to completion; this is the net under that rule.
struct LeaderGuard<'a, D: BlockDevice> {
    store: &'a Store<D>,
}

impl<D: BlockDevice> Drop for LeaderGuard<'_, D> {
    fn drop(&mut self) {
        let mut inner = self.store.inner.lock();
        inner.stopped = true;
        inner.snapshot = None;
        inner.wake_all();
    }
}
