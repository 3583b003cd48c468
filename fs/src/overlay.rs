//! Small objects' chunks that are durable in the journal but not yet in
//! the data area.
//!
//! A small PUT (see [`crate::store::INLINE_MAX_BYTES`]) does not write its
//! chunk: the chunk's bytes travel in the journal batch with the record
//! that references it, so the PUT costs a share of one journal write and
//! one flush instead of a device write of its own and a flush ordered
//! before the journal's. Until the store writes such chunks to their
//! extents (a write-back: many at once, adjacent ones merged into one
//! write), reads are served from here, which is why the store's device is
//! an [`Overlaid`] one. Replay rebuilds this set from the images in the
//! journal's tail, and a checkpoint writes it back before the journal
//! space holding those images can be reused.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;

use spin::Mutex;
use storage::block::{BlockDevice, BlockError, Geometry, IoBuf, IoResult};
use storage::object::ChunkRef;
use storage::space::{Extent, PAGE_BYTES};

use crate::write_cache::{Cached, MERGED_MAX_BYTES, concat};

/// One chunk whose bytes are not in its extent yet.
#[derive(Clone, Debug)]
pub(crate) struct Unwritten {
    pub chunk: ChunkRef,
    /// The extent's whole pages: data, then zeros.
    pub pages: Arc<IoBuf>,
    /// Sequence number of the record that logged it: a write-back removes
    /// only the entry it wrote, not one logged later at the same place.
    pub seq: u64,
    /// Sequence number of the record that gave the chunk up. Its bytes need
    /// no write-back, but readers that started earlier may still read them.
    pub freed_at: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Overlay {
    /// By start page.
    entries: BTreeMap<u64, Unwritten>,
    /// How many entries each logging record has: the oldest is what a
    /// flush can vouch for (see `written_back_through`), asked every batch.
    seqs: BTreeMap<u64, usize>,
    /// (record that gave the chunk up, start page): what `drop_freed`
    /// forgets, asked after every batch, without a scan of every entry.
    freed: BTreeSet<(u64, u64)>,
    bytes: usize,
    /// A write-back is running (only one at a time besides a checkpoint's).
    pub writing_back: bool,
}

/// One write of a write-back: adjacent chunks merged.
pub(crate) struct Run {
    pub extent: Extent,
    members: Vec<Arc<IoBuf>>,
    /// (start page, seq) of each entry written.
    pub written: Vec<(u64, u64)>,
}

impl Run {
    /// The run's pages in one buffer (copied outside the locks).
    pub fn pages(&self) -> IoBuf {
        concat(self.members.iter().map(|member| &**member), self.extent.bytes() as usize)
    }
}

/// What a write-back writes, and the oldest state it must keep from reuse.
pub(crate) struct Plan {
    pub runs: Vec<Run>,
    /// The write-back reads as a reader pinned here: space given up by a
    /// record after it stays parked until the writes are done. That covers
    /// every chunk written, including chunks already given up (still
    /// here because an older reader may read them).
    pub pin: u64,
}

impl Overlay {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn insert(&mut self, entry: Unwritten) {
        let start_page = entry.chunk.extent.start_page;
        self.remove(start_page);
        self.bytes += entry.pages.len();
        *self.seqs.entry(entry.seq).or_default() += 1;
        if let Some(freed) = entry.freed_at {
            self.freed.insert((freed, start_page));
        }
        self.entries.insert(start_page, entry);
    }

    /// Removes the entry at `start_page`, if any, from every index.
    fn remove(&mut self, start_page: u64) -> Option<Unwritten> {
        let entry = self.entries.remove(&start_page)?;
        self.bytes -= entry.pages.len();
        if let Some(count) = self.seqs.get_mut(&entry.seq) {
            *count -= 1;
            if *count == 0 {
                self.seqs.remove(&entry.seq);
            }
        }
        if let Some(freed) = entry.freed_at {
            self.freed.remove(&(freed, start_page));
        }
        Some(entry)
    }

    /// A record gave up `extent`: if its bytes are here they need no write-back.
    pub fn mark_freed(&mut self, extent: Extent, seq: u64) {
        if let Some(entry) = self.entries.get_mut(&extent.start_page)
            && entry.chunk.extent == extent
            && entry.freed_at.is_none()
        {
            entry.freed_at = Some(seq);
            self.freed.insert((seq, extent.start_page));
        }
    }

    /// Forgets chunks given up by records up to `seq`: their extents are
    /// about to be freed, and no reader can still see them.
    pub fn drop_freed(&mut self, through_seq: u64) {
        while let Some(&(freed, start_page)) = self.freed.first() {
            if freed > through_seq {
                break;
            }
            self.freed.remove(&(freed, start_page));
            self.remove(start_page);
        }
    }

    /// The chunk at exactly `extent`, if it is here.
    fn get(&self, start_page: u64, bytes: usize) -> Option<&Unwritten> {
        self.entries.get(&start_page).filter(|entry| entry.pages.len() == bytes)
    }

    /// Everything here, adjacent chunks merged. Chunks already given up
    /// are written too: they stay only while an older reader may read
    /// them, and written they need no memory. `applied_seq`: the last
    /// record applied.
    pub fn plan(&self, applied_seq: u64) -> Plan {
        let mut runs: Vec<Run> = Vec::new();
        let mut pin = applied_seq;
        for entry in self.entries.values() {
            if let Some(freed) = entry.freed_at {
                pin = pin.min(freed.saturating_sub(1));
            }
            let extent = entry.chunk.extent;
            let member = (entry.pages.clone(), (extent.start_page, entry.seq));
            match runs.last_mut() {
                Some(run)
                    if run.extent.end_page() == extent.start_page
                        && (run.extent.bytes() + extent.bytes()) as usize <= MERGED_MAX_BYTES =>
                {
                    run.extent.pages += extent.pages;
                    run.members.push(member.0);
                    run.written.push(member.1);
                }
                _ => runs.push(Run { extent, members: alloc::vec![member.0], written: alloc::vec![member.1] }),
            }
        }
        Plan { runs, pin }
    }

    /// What a flush starting now makes true: every logged chunk of a
    /// record up to the returned sequence number is in the data area (the
    /// entries still here are the ones not yet written). `applied_seq`: the
    /// last record logged so far.
    pub fn written_back_through(&self, applied_seq: u64) -> u64 {
        self.seqs.keys().next().map_or(applied_seq, |oldest| oldest.saturating_sub(1))
    }

    /// Forgets what a write-back wrote (unless logged again since).
    pub fn written(&mut self, written: &[(u64, u64)]) {
        for &(start_page, seq) in written {
            if self.entries.get(&start_page).is_some_and(|entry| entry.seq == seq) {
                self.remove(start_page);
            }
        }
    }
}

/// The store's device: reads of chunks not yet written back come from
/// memory, everything else goes to the device.
pub struct Overlaid<D> {
    device: Cached<D>,
    lbas_per_page: u64,
    pub(crate) overlay: Mutex<Overlay>,
}

impl<D: BlockDevice> Overlaid<D> {
    /// Small writes from `data_start_page` on are held until a flush (see
    /// [`crate::write_cache`]).
    pub(crate) fn new(device: D, overlay: Overlay, data_start_page: u64) -> Self {
        let block_bytes = u64::from(device.geometry().block_bytes).max(1);
        let lbas_per_page = (PAGE_BYTES / block_bytes).max(1);
        let device = Cached::new(device, data_start_page * lbas_per_page);
        Self { lbas_per_page, device, overlay: Mutex::new(overlay) }
    }

    /// The device underneath.
    pub fn inner(&self) -> &D {
        self.device.inner()
    }

    fn cached(&self, lba: u64, buf: &mut IoBuf) -> bool {
        if !lba.is_multiple_of(self.lbas_per_page) {
            return false;
        }
        let overlay = self.overlay.lock();
        match overlay.get(lba / self.lbas_per_page, buf.len()) {
            Some(entry) => {
                buf.as_mut_slice().copy_from_slice(entry.pages.as_slice());
                true
            }
            None => false,
        }
    }
}

impl<D: BlockDevice> BlockDevice for Overlaid<D> {
    fn geometry(&self) -> Geometry {
        self.device.geometry()
    }

    async fn read(&self, lba: u64, mut buf: IoBuf) -> IoResult {
        if self.cached(lba, &mut buf) {
            return (Ok(()), buf);
        }
        self.device.read(lba, buf).await
    }

    fn write(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        self.device.write(lba, buf)
    }

    fn flush(&self) -> impl Future<Output = Result<(), BlockError>> {
        self.device.flush()
    }

    fn write_durable(&self, lba: u64, buf: IoBuf) -> impl Future<Output = IoResult> {
        self.device.write_durable(lba, buf)
    }

    fn discard(&self, lba: u64, blocks: u64) -> impl Future<Output = Result<(), BlockError>> {
        self.device.discard(lba, blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(start_page: u64, pages: u32, fill: u8, seq: u64) -> Unwritten {
        let extent = Extent { start_page, pages };
        let buf = IoBuf::from_slice(&alloc::vec![fill; extent.bytes() as usize]);
        Unwritten { chunk: ChunkRef { extent, len_bytes: 10, crc32c: 0 }, pages: Arc::new(buf), seq, freed_at: None }
    }

    #[test]
    fn runs_merge_adjacent_live_chunks_and_written_forgets_only_them() {
        let mut overlay = Overlay::default();
        overlay.insert(entry(10, 1, 1, 1));
        overlay.insert(entry(11, 2, 2, 2));
        overlay.insert(entry(20, 1, 3, 3));
        overlay.insert(entry(21, 1, 4, 4));
        overlay.mark_freed(Extent { start_page: 20, pages: 1 }, 5);
        // The chunk given up at 5 is written too, by a write-back pinned
        // before 5 so that its space stays parked meanwhile.
        let plan = overlay.plan(9);
        assert_eq!(plan.pin, 4);
        let runs = plan.runs;
        let shapes: Vec<(Extent, Vec<(u64, u64)>)> = runs.iter().map(|run| (run.extent, run.written.clone())).collect();
        assert_eq!(
            shapes,
            alloc::vec![
                (Extent { start_page: 10, pages: 3 }, alloc::vec![(10, 1), (11, 2)]),
                (Extent { start_page: 20, pages: 2 }, alloc::vec![(20, 3), (21, 4)]),
            ]
        );
        assert_eq!(&runs[0].pages().as_slice()[4095..4097], &[1, 2]);
        assert_eq!(overlay.plan(9).pin, 4);
        // Logged again at page 11 while the write-back ran: that one stays.
        overlay.insert(entry(11, 2, 9, 6));
        overlay.written(&runs[0].written);
        assert_eq!(overlay.len(), 3);
        overlay.drop_freed(4);
        assert_eq!(overlay.len(), 3);
        overlay.drop_freed(5);
        assert_eq!(overlay.len(), 2);
        overlay.written(&runs[1].written);
        assert_eq!((overlay.len(), overlay.bytes()), (1, 2 * 4096));
        // The indexes follow: the oldest logging record left is 6, nothing
        // given up is left.
        assert_eq!(overlay.written_back_through(9), 5);
        assert!(overlay.freed.is_empty());
        overlay.written(&[(11, 6)]);
        assert_eq!((overlay.len(), overlay.bytes(), overlay.written_back_through(9)), (0, 0, 9));
    }
}
