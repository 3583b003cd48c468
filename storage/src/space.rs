//! The allocator of data pages.
//!
//! Space is handed out in 4 KiB pages as extents (a start page and a
//! count). The free map is not journaled on its own: it is the complement
//! of the extents that durable metadata references, rebuilt at open with
//! [`SpaceMap::from_used`]. What must be ordered is reuse: space an object
//! gave up (overwrite, delete) may be written again only when the record
//! that gave it up is durable (else a power cut could bring the old object
//! back over new bytes) and no reader that started before that record is
//! still reading it. [`SpaceMap::defer`] parks such space with the record's
//! sequence number; [`SpaceMap::reclaim`] releases it when both hold.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// Bytes per allocation unit.
pub const PAGE_BYTES: u64 = 4096;

/// A run of pages on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Extent {
    pub start_page: u64,
    pub pages: u32,
}

impl Extent {
    pub fn end_page(&self) -> u64 {
        self.start_page + u64::from(self.pages)
    }

    pub fn bytes(&self) -> u64 {
        u64::from(self.pages) * PAGE_BYTES
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpaceError {
    /// No free page left.
    Full,
    /// An extent lies (partly) outside the data region.
    OutOfRegion(Extent),
    /// Two references claim the same page, or a free of free space.
    Overlap(Extent),
    /// A zero-length extent.
    Empty,
}

/// Free and parked space of one data region `[start_page, end_page)`.
#[derive(Debug)]
pub struct SpaceMap {
    start_page: u64,
    end_page: u64,
    /// Free runs, coalesced: start -> length in pages.
    free: BTreeMap<u64, u64>,
    free_pages: u64,
    /// Next-fit cursor: allocation continues after the last one, which
    /// keeps a stream of chunks sequential on the device.
    cursor: u64,
    /// Space given up by the record with this sequence number.
    parked: Vec<(Extent, u64)>,
}

impl SpaceMap {
    /// A region with every page free.
    pub fn new(start_page: u64, end_page: u64) -> Self {
        let mut free = BTreeMap::new();
        if end_page > start_page {
            free.insert(start_page, end_page - start_page);
        }
        Self { start_page, end_page, free, free_pages: end_page - start_page, cursor: start_page, parked: Vec::new() }
    }

    /// The region minus `used`. Fails on a reference outside the region or
    /// two references to one page: metadata that must not be trusted.
    pub fn from_used(
        start_page: u64,
        end_page: u64,
        used: impl IntoIterator<Item = Extent>,
    ) -> Result<Self, SpaceError> {
        let mut used: Vec<Extent> = used.into_iter().collect();
        used.sort_unstable();
        let mut map = Self::new(start_page, end_page);
        map.free.clear();
        map.free_pages = 0;
        let mut at = start_page;
        for extent in used {
            if extent.pages == 0 {
                return Err(SpaceError::Empty);
            }
            if extent.start_page < start_page || extent.end_page() > end_page {
                return Err(SpaceError::OutOfRegion(extent));
            }
            if extent.start_page < at {
                return Err(SpaceError::Overlap(extent));
            }
            if extent.start_page > at {
                map.free.insert(at, extent.start_page - at);
                map.free_pages += extent.start_page - at;
            }
            at = extent.end_page();
        }
        if end_page > at {
            map.free.insert(at, end_page - at);
            map.free_pages += end_page - at;
        }
        Ok(map)
    }

    pub fn region(&self) -> (u64, u64) {
        (self.start_page, self.end_page)
    }

    pub fn free_pages(&self) -> u64 {
        self.free_pages
    }

    pub fn parked_pages(&self) -> u64 {
        self.parked.iter().map(|(extent, _)| u64::from(extent.pages)).sum()
    }

    /// Allocates between 1 and `max_pages` contiguous pages: as many as the
    /// next free run holds. Never fails while any page is free, so a
    /// fragmented device yields shorter chunks instead of an error.
    pub fn allocate_up_to(&mut self, max_pages: u32) -> Result<Extent, SpaceError> {
        if max_pages == 0 {
            return Err(SpaceError::Empty);
        }
        // The run containing the cursor, else the next one, else wrap.
        let containing =
            self.free.range(..=self.cursor).next_back().map(|(&s, &l)| (s, l)).filter(|&(s, l)| self.cursor < s + l);
        let run = containing
            .or_else(|| self.free.range(self.cursor..).next().map(|(&s, &l)| (s, l)))
            .or_else(|| self.free.iter().next().map(|(&s, &l)| (s, l)));
        let Some((run_start, run_pages)) = run else {
            return Err(SpaceError::Full);
        };
        let start =
            if run_start <= self.cursor && self.cursor < run_start + run_pages { self.cursor } else { run_start };
        let available = run_start + run_pages - start;
        let pages = available.min(u64::from(max_pages));
        let extent = Extent { start_page: start, pages: pages as u32 };
        self.take(run_start, run_pages, extent);
        self.cursor = extent.end_page();
        Ok(extent)
    }

    /// Removes `extent` from the free run `(run_start, run_pages)` holding it.
    fn take(&mut self, run_start: u64, run_pages: u64, extent: Extent) {
        self.free.remove(&run_start);
        if extent.start_page > run_start {
            self.free.insert(run_start, extent.start_page - run_start);
        }
        let run_end = run_start + run_pages;
        if extent.end_page() < run_end {
            self.free.insert(extent.end_page(), run_end - extent.end_page());
        }
        self.free_pages -= u64::from(extent.pages);
    }

    /// Returns space that no durable record references (an upload that
    /// never committed) to the free map at once.
    pub fn release(&mut self, extent: Extent) -> Result<(), SpaceError> {
        if extent.pages == 0 {
            return Err(SpaceError::Empty);
        }
        if extent.start_page < self.start_page || extent.end_page() > self.end_page {
            return Err(SpaceError::OutOfRegion(extent));
        }
        let mut start = extent.start_page;
        let mut pages = u64::from(extent.pages);
        if let Some((&prev_start, &prev_pages)) = self.free.range(..=start).next_back() {
            if prev_start + prev_pages > start {
                return Err(SpaceError::Overlap(extent));
            }
            if prev_start + prev_pages == start {
                self.free.remove(&prev_start);
                start = prev_start;
                pages += prev_pages;
            }
        }
        if let Some((&next_start, &next_pages)) = self.free.range(extent.start_page..).next() {
            if next_start < extent.end_page() {
                return Err(SpaceError::Overlap(extent));
            }
            if next_start == extent.end_page() {
                self.free.remove(&next_start);
                pages += next_pages;
            }
        }
        self.free.insert(start, pages);
        self.free_pages += u64::from(extent.pages);
        Ok(())
    }

    /// Parks space given up by the record with sequence number `seq`.
    pub fn defer(&mut self, extent: Extent, seq: u64) {
        self.parked.push((extent, seq));
    }

    /// Frees parked space whose record is durable (`seq <= durable_seq`)
    /// and that no reader can still see: every active reader started after
    /// the record (`seq <= oldest_reader_seq`). Returns the pages freed.
    pub fn reclaim(&mut self, durable_seq: u64, oldest_reader_seq: Option<u64>) -> Result<u64, SpaceError> {
        let limit = oldest_reader_seq.map_or(durable_seq, |reader| reader.min(durable_seq));
        let mut freed = 0;
        let parked = core::mem::take(&mut self.parked);
        let mut kept = Vec::with_capacity(parked.len());
        let mut failure = None;
        for (extent, seq) in parked {
            if seq <= limit && failure.is_none() {
                match self.release(extent) {
                    Ok(()) => freed += u64::from(extent.pages),
                    Err(error) => failure = Some(error),
                }
            } else {
                kept.push((extent, seq));
            }
        }
        self.parked = kept;
        match failure {
            Some(error) => Err(error),
            None => Ok(freed),
        }
    }

    /// Free runs in address order (for the consistency check).
    pub fn free_extents(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.free.iter().map(|(&start, &pages)| (start, pages))
    }

    /// Parked extents (for the consistency check).
    pub fn parked_extents(&self) -> impl Iterator<Item = Extent> + '_ {
        self.parked.iter().map(|(extent, _)| *extent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_sequentially_and_coalesces() {
        let mut map = SpaceMap::new(10, 110);
        let a = map.allocate_up_to(30).unwrap();
        let b = map.allocate_up_to(30).unwrap();
        assert_eq!((a.start_page, b.start_page), (10, 40));
        map.release(a).unwrap();
        map.release(b).unwrap();
        assert_eq!(map.free_extents().collect::<Vec<_>>(), [(10, 100)]);
        assert_eq!(map.free_pages(), 100);
    }

    #[test]
    fn fragmented_space_gives_short_extents_then_full() {
        let mut map =
            SpaceMap::from_used(0, 10, [Extent { start_page: 2, pages: 3 }, Extent { start_page: 6, pages: 2 }])
                .unwrap();
        assert_eq!(map.free_pages(), 5);
        let mut got = Vec::new();
        while let Ok(extent) = map.allocate_up_to(8) {
            got.push(extent);
        }
        assert_eq!(got.iter().map(|e| e.pages).sum::<u32>(), 5);
        assert_eq!(map.allocate_up_to(1), Err(SpaceError::Full));
    }

    #[test]
    fn rejects_overlaps_and_double_frees() {
        let overlap = [Extent { start_page: 2, pages: 3 }, Extent { start_page: 4, pages: 2 }];
        assert!(matches!(SpaceMap::from_used(0, 10, overlap), Err(SpaceError::Overlap(_))));
        assert!(matches!(
            SpaceMap::from_used(0, 10, [Extent { start_page: 9, pages: 2 }]),
            Err(SpaceError::OutOfRegion(_))
        ));
        let mut map = SpaceMap::new(0, 10);
        assert!(matches!(map.release(Extent { start_page: 3, pages: 1 }), Err(SpaceError::Overlap(_))));
    }

    #[test]
    fn parked_space_waits_for_durability_and_readers() {
        let mut map = SpaceMap::new(0, 4);
        let extent = map.allocate_up_to(4).unwrap();
        map.defer(extent, 7);
        assert_eq!(map.reclaim(6, None), Ok(0));
        assert_eq!(map.reclaim(7, Some(5)), Ok(0), "a reader from before seq 7 may still read it");
        assert_eq!(map.reclaim(7, Some(7)), Ok(4));
        assert_eq!(map.free_pages(), 4);
    }
}
