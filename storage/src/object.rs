//! Objects as sequences of checksummed chunks.
//!
//! An object's bytes are cut into chunks of at most the store's
//! `chunk_max_bytes` (1 MiB by default); each chunk sits in one extent of
//! whole 4 KiB pages (so a 1 KiB object costs one page, not a chunk) and
//! carries the CRC32C of its bytes. Chunks may be shorter than the maximum:
//! the last one of an object or of a multipart part, or when free space is
//! fragmented. The [`ObjectWriter`] streams bytes to disk as they arrive,
//! holding one chunk in memory whatever the object size, and computes the
//! MD5 that S3 uses as the ETag. The [`ObjectReader`] streams a byte range
//! back, verifying each chunk before any of its bytes leave: a mismatch is
//! an [`ObjectError::Corrupt`] naming the chunk, never wrong bytes.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::future::Future;
use core::ops::Range;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use serde::{Deserialize, Serialize};

use crate::block::{BlockDevice, BlockError, BufferPool, IoBuf};
use crate::checksum::crc32c;
use crate::md5_lanes::{self, Md5Batch, Md5Stream};
use crate::space::{Extent, PAGE_BYTES, SpaceError};

/// One stored chunk: where it is, how many bytes of it are data, and their
/// CRC32C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub extent: Extent,
    pub len_bytes: u32,
    pub crc32c: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectError {
    Block(BlockError),
    Space(SpaceError),
    /// A chunk's bytes do not match its checksum.
    Corrupt {
        chunk_index: usize,
        start_page: u64,
        expected_crc32c: u32,
        actual_crc32c: u32,
    },
    /// The device's blocks do not divide a page.
    UnsupportedBlockSize(u32),
    /// A byte range outside the object.
    RangeOutOfBounds,
}

impl From<BlockError> for ObjectError {
    fn from(error: BlockError) -> Self {
        Self::Block(error)
    }
}

impl From<SpaceError> for ObjectError {
    fn from(error: SpaceError) -> Self {
        Self::Space(error)
    }
}

/// Where a writer gets pages from and gives back the ones it never
/// committed. The engine implements it over its space map.
pub trait SpaceSource {
    fn allocate_up_to(&self, max_pages: u32) -> Result<Extent, SpaceError>;
    fn release(&self, extent: Extent);
}

fn lba_of(device_block_bytes: u32, page: u64) -> Result<u64, ObjectError> {
    if device_block_bytes == 0 || !PAGE_BYTES.is_multiple_of(u64::from(device_block_bytes)) {
        return Err(ObjectError::UnsupportedBlockSize(device_block_bytes));
    }
    Ok(page * (PAGE_BYTES / u64::from(device_block_bytes)))
}

/// Writes `buf` (a whole number of pages) at `extent`.
pub async fn write_pages<D: BlockDevice>(device: &D, extent: Extent, buf: IoBuf) -> (Result<(), ObjectError>, IoBuf) {
    let lba = match lba_of(device.geometry().block_bytes, extent.start_page) {
        Ok(lba) => lba,
        Err(error) => return (Err(error), buf),
    };
    let (result, buf) = device.write(lba, buf).await;
    (result.map_err(ObjectError::from), buf)
}

/// Reads the pages of `extent`.
pub async fn read_pages<D: BlockDevice>(device: &D, extent: Extent) -> Result<IoBuf, ObjectError> {
    let (result, buf) = read_pages_into(device, extent, IoBuf::zeroed(extent.bytes() as usize)).await;
    result.map(|()| buf)
}

/// Reads the pages of `extent` into `buf`, whose capacity holds them; `buf`
/// comes back either way.
async fn read_pages_into<D: BlockDevice>(
    device: &D,
    extent: Extent,
    mut buf: IoBuf,
) -> (Result<(), ObjectError>, IoBuf) {
    let lba = match lba_of(device.geometry().block_bytes, extent.start_page) {
        Ok(lba) => lba,
        Err(error) => return (Err(error), buf),
    };
    buf.set_len(extent.bytes() as usize);
    let (result, buf) = device.read(lba, buf).await;
    (result.map_err(ObjectError::from), buf)
}

/// Chunks written but not yet referenced by a durable record. Dropping it
/// gives the space back; the engine calls [`PendingChunks::into_committed`]
/// once a record owns them.
pub struct PendingChunks<'a, S: SpaceSource> {
    space: &'a S,
    chunks: Vec<ChunkRef>,
}

impl<'a, S: SpaceSource> PendingChunks<'a, S> {
    pub fn chunks(&self) -> &[ChunkRef] {
        &self.chunks
    }

    /// The record that references the chunks now owns their space.
    pub fn into_committed(mut self) -> Vec<ChunkRef> {
        core::mem::take(&mut self.chunks)
    }
}

impl<S: SpaceSource> Drop for PendingChunks<'_, S> {
    fn drop(&mut self) {
        for chunk in self.chunks.drain(..) {
            self.space.release(chunk.extent);
        }
    }
}

/// What a finished writer produced.
pub struct WrittenObject<'a, S: SpaceSource> {
    pub chunks: PendingChunks<'a, S>,
    pub size_bytes: u64,
    pub md5: [u8; 16],
    /// A small object's only chunk, allocated but not written (see
    /// [`ObjectWriter::with_inline_max`]): whole pages, the data then
    /// zeros. Whoever commits the chunks owns writing these bytes.
    pub unwritten: Option<IoBuf>,
}

const FIRST_BUFFER_BYTES: usize = 64 * 1024;

/// A chunk of at least this many bytes is hashed through the writer's
/// [`Md5Batch`], if it has one.
const BATCH_MIN_CHUNK_BYTES: usize = 64 * 1024;

/// A chunk write the writer started and has not seen complete.
type ChunkWrite<'a> = Pin<Box<dyn Future<Output = (Result<(), ObjectError>, IoBuf)> + 'a>>;

/// Streams an object's bytes to free space. A full chunk is written while
/// the next one fills (one write in flight, so two chunk buffers at most):
/// the device works while the network delivers, instead of taking turns.
pub struct ObjectWriter<'a, D: BlockDevice, S: SpaceSource> {
    device: &'a D,
    pending: PendingChunks<'a, S>,
    chunk_max_bytes: usize,
    buf: IoBuf,
    filled: usize,
    size_bytes: u64,
    /// MD5 of the chunks written so far (bytes are hashed as their chunk
    /// goes to the device, so an object that fits its buffer is hashed
    /// whole at `finish`, in lanes with other writers' if there is a batch).
    md5: Md5Stream,
    /// The whole object's MD5, when it was hashed in one piece (or not
    /// wanted, see [`ObjectWriter::without_md5`]): no chunk is hashed then.
    digest: Option<[u8; 16]>,
    md5_batch: Option<&'a Md5Batch>,
    /// The previous chunk's write, and its extent until it is seen to
    /// complete: a writer dropped before that leaks the extent (until the
    /// next boot rebuilds the space map) rather than release space the
    /// device may still be writing.
    in_flight: Option<ChunkWrite<'a>>,
    in_flight_extent: Option<Extent>,
    /// The buffer of the last completed write, for the next chunk.
    spare: Option<IoBuf>,
    /// Where chunk-sized buffers come from and go back to.
    pool: Option<&'a BufferPool>,
    /// Objects of at most this many bytes are not written by the writer.
    inline_max_bytes: usize,
}

impl<'a, D: BlockDevice, S: SpaceSource> ObjectWriter<'a, D, S> {
    /// `chunk_max_bytes` is rounded up to whole pages.
    pub fn new(device: &'a D, space: &'a S, chunk_max_bytes: usize) -> Self {
        let chunk_max_bytes = chunk_max_bytes.max(1).next_multiple_of(PAGE_BYTES as usize);
        Self {
            device,
            pending: PendingChunks { space, chunks: Vec::new() },
            chunk_max_bytes,
            // Nothing until the size is known or bytes arrive: most objects
            // are small, and a zeroed buffer bigger than the object costs
            // more than the PUT. It grows by doubling up to a chunk.
            buf: IoBuf::zeroed(0),
            filled: 0,
            size_bytes: 0,
            md5: Md5Stream::new(),
            digest: None,
            md5_batch: None,
            in_flight: None,
            in_flight_extent: None,
            spare: None,
            pool: None,
            inline_max_bytes: 0,
        }
    }

    /// Chunk buffers come from `pool` (when it holds buffers of a chunk) and
    /// go back to it when the writer is done.
    pub fn with_buffer_pool(mut self, pool: &'a BufferPool) -> Self {
        if pool.buffer_bytes() == self.chunk_max_bytes {
            self.pool = Some(pool);
        }
        self
    }

    /// A buffer of `capacity` bytes; its bytes beyond what the caller
    /// writes are stale when it comes from the pool.
    fn fresh(&self, capacity: usize) -> IoBuf {
        match self.pool {
            Some(pool) if capacity == pool.buffer_bytes() => pool.take(),
            _ => IoBuf::zeroed(capacity),
        }
    }

    /// Hands a buffer the writer no longer needs back to the pool.
    fn recycle(&self, buf: IoBuf) {
        if let Some(pool) = self.pool {
            pool.give(buf);
        }
    }

    /// An object of at most `max_bytes` that fits one free extent is not
    /// written: [`ObjectWriter::finish`] allocates its chunk and hands the
    /// bytes back in [`WrittenObject::unwritten`], for an engine that logs
    /// small objects' bytes with their metadata instead of paying a device
    /// write for each.
    pub fn with_inline_max(mut self, max_bytes: usize) -> Self {
        self.inline_max_bytes = max_bytes.min(self.chunk_max_bytes);
        self
    }

    /// Bytes no client reads back as an object (a checkpoint of the
    /// engine's state) need no MD5: each chunk still has its CRC32C, and
    /// the digest is all zeros. Hashing them would hold the executor for
    /// about 2 ms per MiB.
    pub fn without_md5(mut self) -> Self {
        self.digest = Some([0; 16]);
        self
    }

    /// Chunks of 64 KiB or more, and an object that still fits the writer's
    /// buffer at `finish`, are hashed through `batch`, in lanes with the
    /// other writers' hashing then (see [`Md5Batch`]).
    pub fn with_md5_batch(mut self, batch: &'a Md5Batch) -> Self {
        self.md5_batch = Some(batch);
        self
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Sizes the buffer for an object of `size_bytes` (the Content-Length
    /// when the client sent one): no bigger than the object, and no copies
    /// of growing it.
    pub fn expect_size(&mut self, size_bytes: u64) {
        let wanted = (size_bytes.min(self.chunk_max_bytes as u64) as usize).next_multiple_of(PAGE_BYTES as usize);
        if wanted != self.buf.capacity() && self.filled == 0 {
            let fresh = self.fresh(wanted);
            let old = core::mem::replace(&mut self.buf, fresh);
            self.recycle(old);
        }
    }

    /// Bytes of buffer the writer holds (at most two chunks: the one
    /// filling and a spare or in-flight one).
    pub fn buffer_bytes(&self) -> usize {
        self.buf.capacity() + self.spare.as_ref().map_or(0, IoBuf::capacity)
    }

    fn grow(&mut self, needed: usize) {
        if needed <= self.buf.capacity() {
            return;
        }
        // Past its first chunk an object streams: a whole chunk at once
        // (the last write's buffer, if it is back), not doubling copies.
        let capacity = if self.pending.chunks.is_empty() {
            needed.next_power_of_two().max(FIRST_BUFFER_BYTES).min(self.chunk_max_bytes)
        } else {
            self.chunk_max_bytes
        };
        let mut bigger = match self.spare.take() {
            Some(spare) if spare.capacity() >= capacity => spare,
            other => {
                self.spare = other;
                self.fresh(capacity)
            }
        };
        bigger.set_len(bigger.capacity());
        bigger.as_mut_slice()[..self.filled].copy_from_slice(&self.buf.as_slice()[..self.filled]);
        let smaller = core::mem::replace(&mut self.buf, bigger);
        self.recycle(smaller);
    }

    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), ObjectError>
    where
        D: 'a,
    {
        self.size_bytes += data.len() as u64;
        while !data.is_empty() {
            let take = data.len().min(self.chunk_max_bytes - self.filled);
            self.grow(self.filled + take);
            self.buf.set_len(self.buf.capacity());
            self.buf.as_mut_slice()[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == self.chunk_max_bytes {
                self.write_buffered().await?;
            }
        }
        Ok(())
    }

    /// Writes what is buffered as one or more chunks (more when free space
    /// is fragmented), each started before this returns and finished by the
    /// next call or [`ObjectWriter::finish`].
    async fn write_buffered(&mut self) -> Result<(), ObjectError>
    where
        D: 'a,
    {
        while self.filled > 0 {
            let pages = self.filled.div_ceil(PAGE_BYTES as usize) as u32;
            let extent = self.pending.space.allocate_up_to(pages)?;
            // Record the extent first so that an error below still returns it.
            let data_bytes = (extent.bytes() as usize).min(self.filled);
            let chunk_crc = crc32c(&self.buf.as_slice()[..data_bytes]);
            self.pending.chunks.push(ChunkRef { extent, len_bytes: data_bytes as u32, crc32c: chunk_crc });
            if self.digest.is_none() {
                match self.md5_batch {
                    // A chunk is worth a yield: beside other writers'
                    // chunks it is hashed in lanes (concurrent large PUTs).
                    Some(batch) if data_bytes >= BATCH_MIN_CHUNK_BYTES => {
                        let buf = core::mem::replace(&mut self.buf, IoBuf::zeroed(0));
                        self.buf = batch.update(&mut self.md5, buf, 0..data_bytes).await;
                    }
                    _ => self.md5.update(&self.buf.as_slice()[..data_bytes]),
                }
            }
            self.wait_in_flight().await?;
            // Bytes beyond this extent (fragmented space) move to the next
            // buffer. Without any, the next buffer waits for more bytes
            // (`grow`): an object of one chunk never needs a second.
            let capacity = self.buf.capacity();
            let mut next = match self.spare.take() {
                Some(spare) if spare.capacity() == capacity => spare,
                other if self.filled == data_bytes => {
                    self.spare = other;
                    IoBuf::zeroed(0)
                }
                _ => self.fresh(capacity),
            };
            next.set_len(next.capacity());
            let rest = self.filled - data_bytes;
            next.as_mut_slice()[..rest].copy_from_slice(&self.buf.as_slice()[data_bytes..self.filled]);
            let mut buf = core::mem::replace(&mut self.buf, next);
            self.filled = rest;
            // Zero the padding so no stale bytes of an earlier chunk reach the disk.
            buf.set_len(extent.bytes() as usize);
            buf.as_mut_slice()[data_bytes..].fill(0);
            let mut write: ChunkWrite<'a> = Box::pin(write_pages(self.device, extent, buf));
            // One poll hands the request to the device (an async fn does
            // nothing before it); completion is observed by the next wait.
            match write.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready((result, buf)) => {
                    self.spare = Some(buf);
                    result?;
                }
                Poll::Pending => {
                    self.in_flight = Some(write);
                    self.in_flight_extent = Some(extent);
                }
            }
        }
        Ok(())
    }

    /// Waits for the write in flight, if any.
    async fn wait_in_flight(&mut self) -> Result<(), ObjectError> {
        let Some(write) = self.in_flight.take() else { return Ok(()) };
        let (result, buf) = write.await;
        self.in_flight_extent = None;
        self.spare = Some(buf);
        result
    }

    /// Writes the last partial chunk. The chunks are not durable until the
    /// device is flushed, and not referenced until the engine commits them.
    pub async fn finish(mut self) -> Result<WrittenObject<'a, S>, ObjectError>
    where
        D: 'a,
    {
        if self.digest.is_none() && self.filled as u64 == self.size_bytes {
            // No chunk went out yet: the whole object is in the buffer.
            self.digest = Some(match self.md5_batch {
                Some(batch) if self.filled > 0 => {
                    let buf = core::mem::replace(&mut self.buf, IoBuf::zeroed(0));
                    let (buf, digest) = batch.digest(buf, self.filled).await;
                    self.buf = buf;
                    digest
                }
                _ => md5_lanes::digest(&self.buf.as_slice()[..self.filled]),
            });
        }
        let unwritten = self.keep_small()?;
        if unwritten.is_none() {
            self.write_buffered().await?;
            self.wait_in_flight().await?;
        }
        let md5 = match self.digest {
            Some(digest) => digest,
            None => core::mem::take(&mut self.md5).finish(),
        };
        let chunks = PendingChunks { space: self.pending.space, chunks: core::mem::take(&mut self.pending.chunks) };
        Ok(WrittenObject { chunks, size_bytes: self.size_bytes, md5, unwritten })
    }

    /// The whole object as one allocated, unwritten chunk, when it is small
    /// enough and one free run holds it.
    fn keep_small(&mut self) -> Result<Option<IoBuf>, ObjectError> {
        let small = self.filled > 0 && self.filled <= self.inline_max_bytes;
        if !small || !self.pending.chunks.is_empty() || self.in_flight.is_some() {
            return Ok(None);
        }
        let pages = self.filled.div_ceil(PAGE_BYTES as usize) as u32;
        let extent = self.pending.space.allocate_up_to(pages)?;
        if extent.pages != pages {
            self.pending.space.release(extent);
            return Ok(None);
        }
        let mut buf = core::mem::replace(&mut self.buf, IoBuf::zeroed(0));
        let data = &buf.as_slice()[..self.filled];
        self.pending.chunks.push(ChunkRef { extent, len_bytes: self.filled as u32, crc32c: crc32c(data) });
        // The bytes outlive the writer (until a write-back): no more
        // memory than the extent, whatever the buffer grew to.
        if buf.capacity() > extent.bytes() as usize {
            let copy = IoBuf::from_slice(data);
            self.recycle(core::mem::replace(&mut buf, copy));
        }
        buf.set_len(extent.bytes() as usize);
        buf.as_mut_slice()[self.filled..].fill(0);
        self.filled = 0;
        Ok(Some(buf))
    }
}

impl<D: BlockDevice, S: SpaceSource> Drop for ObjectWriter<'_, D, S> {
    fn drop(&mut self) {
        // The device may still be writing this extent: never hand it out.
        // Its buffer goes with the write (the device may still read it).
        if let Some(extent) = self.in_flight_extent.take() {
            self.pending.chunks.retain(|chunk| chunk.extent != extent);
        }
        let buf = core::mem::replace(&mut self.buf, IoBuf::zeroed(0));
        self.recycle(buf);
        if let Some(spare) = self.spare.take() {
            self.recycle(spare);
        }
    }
}

/// Total data bytes of a chunk list.
pub fn layout_bytes(chunks: &[ChunkRef]) -> u64 {
    chunks.iter().map(|chunk| u64::from(chunk.len_bytes)).sum()
}

/// Reads one chunk and checks it. `chunk_index` only names it in errors.
pub async fn read_chunk<D: BlockDevice>(
    device: &D,
    chunk: &ChunkRef,
    chunk_index: usize,
) -> Result<IoBuf, ObjectError> {
    let (result, buf) = read_chunk_into(device, chunk, chunk_index, IoBuf::zeroed(chunk.extent.bytes() as usize)).await;
    result.map(|()| buf)
}

/// [`read_chunk`] into `buf` (its capacity holds the extent; what it held
/// before is overwritten or, on an error, returned unread).
async fn read_chunk_into<D: BlockDevice>(
    device: &D,
    chunk: &ChunkRef,
    chunk_index: usize,
    buf: IoBuf,
) -> (Result<(), ObjectError>, IoBuf) {
    let (result, mut buf) = read_pages_into(device, chunk.extent, buf).await;
    if let Err(error) = result {
        return (Err(error), buf);
    }
    let corrupt = |actual_crc32c| ObjectError::Corrupt {
        chunk_index,
        start_page: chunk.extent.start_page,
        expected_crc32c: chunk.crc32c,
        actual_crc32c,
    };
    if chunk.len_bytes as usize > buf.len() {
        return (Err(corrupt(0)), buf);
    }
    buf.set_len(chunk.len_bytes as usize);
    let actual = crc32c(buf.as_slice());
    if actual != chunk.crc32c {
        return (Err(corrupt(actual)), buf);
    }
    (Ok(()), buf)
}

/// Verified bytes of one chunk, part of the requested range. A buffer from
/// a pool goes back to it when these are dropped.
pub struct ChunkBytes<'a> {
    buf: IoBuf,
    range: Range<usize>,
    pool: Option<&'a BufferPool>,
}

impl ChunkBytes<'_> {
    pub fn as_slice(&self) -> &[u8] {
        &self.buf.as_slice()[self.range.clone()]
    }
}

impl Drop for ChunkBytes<'_> {
    fn drop(&mut self) {
        if let Some(pool) = self.pool {
            pool.give(core::mem::replace(&mut self.buf, IoBuf::zeroed(0)));
        }
    }
}

/// Streams the bytes `range` of an object, chunk by chunk.
pub struct ObjectReader<'a, D: BlockDevice> {
    device: &'a D,
    chunks: &'a [ChunkRef],
    next_chunk: usize,
    /// Object offset where `next_chunk` starts.
    chunk_start: u64,
    range: Range<u64>,
    pool: Option<&'a BufferPool>,
}

impl<'a, D: BlockDevice> ObjectReader<'a, D> {
    pub fn new(device: &'a D, chunks: &'a [ChunkRef], range: Range<u64>) -> Result<Self, ObjectError> {
        if range.start > range.end || range.end > layout_bytes(chunks) {
            return Err(ObjectError::RangeOutOfBounds);
        }
        // Skip whole chunks before the range without reading them.
        let mut next_chunk = 0;
        let mut chunk_start = 0;
        while next_chunk < chunks.len() && chunk_start + u64::from(chunks[next_chunk].len_bytes) <= range.start {
            chunk_start += u64::from(chunks[next_chunk].len_bytes);
            next_chunk += 1;
        }
        Ok(Self { device, chunks, next_chunk, chunk_start, range, pool: None })
    }

    /// Chunks of more than half a pool buffer are read into buffers from
    /// `pool`, which go back when their [`ChunkBytes`] are dropped.
    pub fn with_buffer_pool(mut self, pool: &'a BufferPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// A buffer for `extent`, and the pool it goes back to.
    fn buffer_for(&self, extent: Extent) -> (IoBuf, Option<&'a BufferPool>) {
        let bytes = extent.bytes() as usize;
        match self.pool {
            Some(pool) if bytes <= pool.buffer_bytes() && 2 * bytes > pool.buffer_bytes() => (pool.take(), Some(pool)),
            _ => (IoBuf::zeroed(bytes), None),
        }
    }

    /// The next verified piece of the range, or `None` at its end.
    pub async fn next(&mut self) -> Option<Result<ChunkBytes<'a>, ObjectError>> {
        while self.next_chunk < self.chunks.len() && self.chunk_start < self.range.end {
            let index = self.next_chunk;
            let chunk = &self.chunks[index];
            let start = self.chunk_start;
            self.next_chunk += 1;
            self.chunk_start += u64::from(chunk.len_bytes);
            if chunk.len_bytes == 0 {
                continue;
            }
            let (buf, pool) = self.buffer_for(chunk.extent);
            let (result, buf) = read_chunk_into(self.device, chunk, index, buf).await;
            if let Err(error) = result {
                if let Some(pool) = pool {
                    pool.give(buf);
                }
                self.next_chunk = self.chunks.len();
                return Some(Err(error));
            }
            let from = self.range.start.saturating_sub(start) as usize;
            let to = (self.range.end - start).min(u64::from(chunk.len_bytes)) as usize;
            return Some(Ok(ChunkBytes { buf, range: from..to, pool }));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::RamDisk;
    use crate::space::SpaceMap;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};
    use spin::Mutex;

    /// The RAM disk completes at once: one poll runs a future to its end.
    fn now<F: Future>(future: F) -> F::Output {
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("RAM disk futures complete at once"),
        }
    }

    struct Space(Mutex<SpaceMap>);

    impl SpaceSource for Space {
        fn allocate_up_to(&self, max_pages: u32) -> Result<Extent, SpaceError> {
            self.0.lock().allocate_up_to(max_pages)
        }

        fn release(&self, extent: Extent) {
            self.0.lock().release(extent).expect("released once");
        }
    }

    fn byte(offset: usize) -> u8 {
        (offset * 7 % 251) as u8
    }

    #[test]
    fn writer_memory_is_two_chunks_whatever_the_size() {
        let disk = RamDisk::new(4096, 4096);
        let space = Space(Mutex::new(SpaceMap::new(0, 4096)));
        let chunk = 256 * 1024;
        let mut writer = ObjectWriter::new(&disk, &space, chunk);
        assert_eq!(writer.buffer_bytes(), 0, "nothing before the first byte");
        let data: Vec<u8> = (0..5 * chunk + 123).map(byte).collect();
        for piece in data.chunks(10_000) {
            now(writer.write(piece)).unwrap();
            assert!(writer.buffer_bytes() <= 2 * chunk);
        }
        let written = now(writer.finish()).unwrap();
        assert_eq!(written.chunks.chunks().len(), 6);
        let chunks = written.chunks.into_committed();
        for range in [0..data.len() as u64, 5..chunk as u64 + 5, 3 * chunk as u64..3 * chunk as u64] {
            let mut reader = ObjectReader::new(&disk, &chunks, range.clone()).unwrap();
            let mut got = Vec::new();
            while let Some(piece) = now(reader.next()) {
                got.extend_from_slice(piece.unwrap().as_slice());
            }
            assert_eq!(got, &data[range.start as usize..range.end as usize]);
        }
        // An object of exactly one chunk never takes a second buffer (the
        // bytes for the next chunk would go there, and none come).
        let mut writer = ObjectWriter::new(&disk, &space, chunk);
        writer.expect_size(chunk as u64);
        now(writer.write(&data[..chunk])).unwrap();
        assert_eq!(writer.buffer_bytes(), chunk);
        let one = now(writer.finish()).unwrap();
        assert_eq!(one.chunks.chunks().len(), 1);
        // A small object with its size announced holds a page, not a chunk.
        let mut writer = ObjectWriter::new(&disk, &space, chunk);
        writer.expect_size(100);
        now(writer.write(&data[..100])).unwrap();
        assert_eq!(writer.buffer_bytes(), PAGE_BYTES as usize);
        let small = now(writer.finish()).unwrap();
        assert_eq!(small.chunks.chunks()[0].extent.pages, 1);
    }

    #[test]
    fn pooled_buffers_are_reused_and_their_old_bytes_never_reach_the_disk() {
        let disk = RamDisk::new(4096, 4096);
        let space = Space(Mutex::new(SpaceMap::new(0, 4096)));
        let chunk = 64 * 1024;
        let pool = BufferPool::new(chunk, 4);
        let old: Vec<u8> = (0..3 * chunk).map(byte).collect();
        let mut writer = ObjectWriter::new(&disk, &space, chunk).with_buffer_pool(&pool);
        now(writer.write(&old)).unwrap();
        drop(now(writer.finish()).unwrap());
        assert!(pool.idle() > 0, "the writer's chunk buffers went back");
        // Each new object ends inside a chunk: whatever a reused buffer held
        // past the object's bytes must be zeros on the disk.
        for (len, announced) in [(chunk + 1000, false), (2 * chunk + 4097, true), (chunk - 10, true)] {
            let idle = pool.idle();
            let data = alloc::vec![0xEE; len];
            let mut writer = ObjectWriter::new(&disk, &space, chunk).with_buffer_pool(&pool);
            if announced {
                writer.expect_size(len as u64);
            }
            now(writer.write(&data)).unwrap();
            let written = now(writer.finish()).unwrap();
            assert!(pool.idle() >= idle.min(1), "buffers came from the pool and went back");
            for chunk_ref in written.chunks.chunks() {
                let (_, pages) =
                    now(disk.read(chunk_ref.extent.start_page, IoBuf::zeroed(chunk_ref.extent.bytes() as usize)));
                let (bytes, padding) = pages.as_slice().split_at(chunk_ref.len_bytes as usize);
                assert!(bytes.iter().all(|&b| b == 0xEE));
                assert!(padding.iter().all(|&b| b == 0), "stale bytes in the padding of a {len}-byte object");
            }
        }
        // Reads of whole chunks take buffers from the pool and give them
        // back when the bytes are dropped; the bytes are the object's.
        let mut writer = ObjectWriter::new(&disk, &space, chunk).with_buffer_pool(&pool);
        now(writer.write(&old[..2 * chunk + 100])).unwrap();
        let chunks = now(writer.finish()).unwrap().chunks.into_committed();
        let idle = pool.idle();
        let mut reader = ObjectReader::new(&disk, &chunks, 10..2 * chunk as u64 + 50).unwrap().with_buffer_pool(&pool);
        let first = now(reader.next()).unwrap().unwrap();
        assert_eq!(pool.idle(), idle - 1);
        assert_eq!(first.as_slice(), &old[10..chunk]);
        drop(first);
        assert_eq!(pool.idle(), idle);
        let mut got = Vec::new();
        while let Some(piece) = now(reader.next()) {
            got.extend_from_slice(piece.unwrap().as_slice());
        }
        assert_eq!(got, &old[chunk..2 * chunk + 50]);
        assert_eq!(pool.idle(), idle, "the last chunk (one page) used its own buffer; the others came back");
        // A pool of another size is not used.
        let other = BufferPool::new(2 * chunk, 4);
        let mut writer = ObjectWriter::new(&disk, &space, chunk).with_buffer_pool(&other);
        now(writer.write(&old)).unwrap();
        drop(now(writer.finish()).unwrap());
        assert_eq!(other.idle(), 0);
    }

    #[test]
    fn without_md5_the_chunks_are_the_same_and_the_digest_is_zero() {
        let disk = RamDisk::new(4096, 4096);
        let space = Space(Mutex::new(SpaceMap::new(0, 4096)));
        let chunk = 64 * 1024;
        let data: Vec<u8> = (0..3 * chunk + 77).map(byte).collect();
        for len in [0, 100, data.len()] {
            let mut hashed = ObjectWriter::new(&disk, &space, chunk);
            now(hashed.write(&data[..len])).unwrap();
            let hashed = now(hashed.finish()).unwrap();
            let mut plain = ObjectWriter::new(&disk, &space, chunk).without_md5();
            now(plain.write(&data[..len])).unwrap();
            let plain = now(plain.finish()).unwrap();
            assert_eq!(hashed.md5, md5_lanes::digest(&data[..len]));
            assert_eq!(plain.md5, [0; 16]);
            let crcs = |written: &WrittenObject<'_, Space>| {
                written.chunks.chunks().iter().map(|chunk| (chunk.len_bytes, chunk.crc32c)).collect::<Vec<_>>()
            };
            assert_eq!(crcs(&hashed), crcs(&plain));
            let chunks = plain.chunks.into_committed();
            let mut reader = ObjectReader::new(&disk, &chunks, 0..len as u64).unwrap();
            let mut got = Vec::new();
            while let Some(piece) = now(reader.next()) {
                got.extend_from_slice(piece.unwrap().as_slice());
            }
            assert_eq!(got, &data[..len]);
        }
    }

    #[test]
    fn a_writer_dropped_while_its_chunk_waits_in_the_md5_batch_returns_the_space() {
        // Lanes, so that the batch queues (the reference posing as four).
        crate::md5_lanes::install(crate::md5_lanes::Accelerated { lanes: 4, run: crate::md5_lanes::run_portable });
        let disk = RamDisk::new(4096, 4096);
        let space = Space(Mutex::new(SpaceMap::new(0, 4096)));
        let free = space.0.lock().free_pages();
        let batch = Md5Batch::new();
        let chunk = 64 * 1024;
        let data: Vec<u8> = (0..chunk).map(byte).collect();
        {
            let mut writer = ObjectWriter::new(&disk, &space, chunk).with_md5_batch(&batch);
            let mut write = pin!(writer.write(&data));
            // The full chunk has its extent and waits in the batch, whose
            // leader yields once.
            assert!(write.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
            assert!(space.0.lock().free_pages() < free);
        }
        assert_eq!(space.0.lock().free_pages(), free, "the chunk's extent came back");
    }

    #[test]
    fn small_objects_can_be_left_unwritten() {
        let disk = RamDisk::new(4096, 256);
        let space = Space(Mutex::new(SpaceMap::new(0, 256)));
        let data: Vec<u8> = (0..20_000).map(byte).collect();
        // No size announced: the buffer grew to 64 KiB, the bytes handed
        // back take the extent's one page.
        let mut writer = ObjectWriter::new(&disk, &space, 64 * 1024).with_inline_max(16 * 1024);
        now(writer.write(&data[..3_000])).unwrap();
        let small = now(writer.finish()).unwrap();
        let chunk = small.chunks.chunks()[0];
        let pages = small.unwritten.as_ref().unwrap();
        assert_eq!((chunk.extent.pages, chunk.len_bytes, pages.len(), pages.capacity()), (1, 3_000, 4096, 4096));
        assert_eq!(&pages.as_slice()[..3_000], &data[..3_000]);
        assert!(pages.as_slice()[3_000..].iter().all(|&b| b == 0));
        assert_eq!(chunk.crc32c, crc32c(&data[..3_000]));
        // Nothing reached the device.
        assert!(now(read_chunk(&disk, &chunk, 0)).is_err());
        // Bigger than the limit, or empty: written (or nothing) as before.
        let mut writer = ObjectWriter::new(&disk, &space, 64 * 1024).with_inline_max(16 * 1024);
        now(writer.write(&data)).unwrap();
        let big = now(writer.finish()).unwrap();
        assert!(big.unwritten.is_none());
        assert_eq!(now(read_chunk(&disk, &big.chunks.chunks()[0], 0)).unwrap().as_slice(), &data[..]);
        let empty = now(ObjectWriter::new(&disk, &space, 64 * 1024).with_inline_max(16 * 1024).finish()).unwrap();
        assert!(empty.unwritten.is_none() && empty.chunks.chunks().is_empty());
    }

    /// A RAM disk whose writes stay in flight until the gate opens.
    struct GatedDisk {
        disk: RamDisk,
        open: core::cell::Cell<bool>,
        started: core::cell::Cell<usize>,
    }

    impl BlockDevice for GatedDisk {
        fn geometry(&self) -> crate::block::Geometry {
            self.disk.geometry()
        }

        fn read(&self, lba: u64, buf: IoBuf) -> impl Future<Output = crate::block::IoResult> {
            self.disk.read(lba, buf)
        }

        fn write(&self, lba: u64, buf: IoBuf) -> impl Future<Output = crate::block::IoResult> {
            self.started.set(self.started.get() + 1);
            let mut buf = Some(buf);
            core::future::poll_fn(move |_| match (self.open.get(), buf.take()) {
                (true, Some(buf)) => Poll::Ready(now(self.disk.write(lba, buf))),
                (_, taken) => {
                    buf = taken;
                    Poll::Pending
                }
            })
        }

        fn flush(&self) -> impl Future<Output = Result<(), BlockError>> {
            self.disk.flush()
        }
    }

    #[test]
    fn a_chunk_is_written_while_the_next_fills_and_a_dropped_writer_keeps_its_space() {
        let disk = GatedDisk {
            disk: RamDisk::new(4096, 1024),
            open: core::cell::Cell::new(false),
            started: core::cell::Cell::new(0),
        };
        let space = Space(Mutex::new(SpaceMap::new(0, 1024)));
        let chunk = 64 * 1024;
        let data: Vec<u8> = (0..3 * chunk + 10).map(byte).collect();
        // The first chunk's write starts and is left in flight: `write`
        // returns while the device still holds it.
        let mut writer = ObjectWriter::new(&disk, &space, chunk);
        now(writer.write(&data[..chunk + 1])).unwrap();
        assert_eq!(disk.started.get(), 1);
        let free_before_drop = space.0.lock().free_pages();
        drop(writer);
        assert_eq!(
            space.0.lock().free_pages(),
            free_before_drop,
            "the extent of a write still in flight is never released"
        );

        // A write seen to complete later, then the rest: the bytes round-trip.
        let mut writer = ObjectWriter::new(&disk, &space, chunk);
        now(writer.write(&data[..chunk + 1])).unwrap();
        assert_eq!(disk.started.get(), 2);
        disk.open.set(true);
        for piece in data[chunk + 1..].chunks(7_000) {
            now(writer.write(piece)).unwrap();
        }
        let chunks = now(writer.finish()).unwrap().chunks.into_committed();
        assert_eq!(chunks.len(), 4);
        let mut reader = ObjectReader::new(&disk, &chunks, 0..data.len() as u64).unwrap();
        let mut got = Vec::new();
        while let Some(piece) = now(reader.next()) {
            got.extend_from_slice(piece.unwrap().as_slice());
        }
        assert_eq!(got, data);
    }

    #[test]
    fn a_corrupt_chunk_is_an_error_naming_it() {
        let disk = RamDisk::new(4096, 64);
        let space = Space(Mutex::new(SpaceMap::new(0, 64)));
        let mut writer = ObjectWriter::new(&disk, &space, 4096);
        now(writer.write(&[5; 10_000])).unwrap();
        let chunks = now(writer.finish()).unwrap().chunks.into_committed();
        let bad = chunks[1];
        let (_, mut page) = now(disk.read(bad.extent.start_page, IoBuf::zeroed(4096)));
        page.as_mut_slice()[9] ^= 0x40;
        now(disk.write(bad.extent.start_page, page)).0.unwrap();
        let mut reader = ObjectReader::new(&disk, &chunks, 0..10_000).unwrap();
        assert_eq!(now(reader.next()).unwrap().unwrap().as_slice(), &[5; 4096][..]);
        match now(reader.next()) {
            Some(Err(ObjectError::Corrupt { chunk_index: 1, start_page, .. })) => {
                assert_eq!(start_page, bad.extent.start_page)
            }
            Some(Ok(_)) => panic!("corrupt bytes returned"),
            other => panic!("expected a corrupt chunk 1, got {:?}", other.map(|result| result.err())),
        }
        assert!(now(reader.next()).is_none(), "nothing after the error");
    }
}
