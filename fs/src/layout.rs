//! The superblock: where everything is, and where replay starts.
//!
//! Pages 0 and 1 each hold a copy. Every update increments the generation
//! and goes to copy `generation % 2`, so a write torn by a power cut
//! damages only the copy being replaced; open takes the valid copy with
//! the highest generation.
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 8 | magic `RCS3SUP1` |
//! | 8 | 4 | format version (3: the journal may hold format-3 batches; open
//! rewrites an older superblock as 3 before it writes any batch, so a
//! build that knows only an older format refuses the volume instead of
//! taking the first new batch for the end of its log) |
//! | 12 | 4 | page bytes (4096) |
//! | 16 | 8 | total pages |
//! | 24 | 8 | journal start page |
//! | 32 | 8 | journal pages |
//! | 40 | 8 | data start page (data runs to the end) |
//! | 48 | 4 | chunk max bytes |
//! | 52 | 4 | min part bytes / 4096 |
//! | 56 | 8 | generation |
//! | 64 | 16 | volume ID |
//! | 80 | 8 | checkpoint sequence: records up to it are in the checkpoint |
//! | 88 | 8 | replay position (page within the journal) |
//! | 96 | 4 | replay chain value |
//! | 100 | 4 | checkpoint manifest bytes (0: no checkpoint) |
//! | 104 | 8 | checkpoint manifest start page |
//! | 112 | 4 | checkpoint manifest pages |
//! | 116 | 4 | checkpoint manifest CRC32C |
//! | 120 | 8 | created (ms since the Unix epoch) |
//! | 128..4092 | | zero |
//! | 4092 | 4 | CRC32C of bytes 0..4092 |

use storage::checksum::crc32c;
use storage::object::ChunkRef;
use storage::space::{Extent, PAGE_BYTES};

pub const MAGIC: [u8; 8] = *b"RCS3SUP1";
/// 3: journal batches of format 3 (one flush per batch, see
/// [`crate::journal`]); a build that knows only 2 must not replay them.
pub const FORMAT_VERSION: u32 = 3;
const PAGE: usize = PAGE_BYTES as usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    pub total_pages: u64,
    pub journal_start_page: u64,
    pub journal_pages: u64,
    pub data_start_page: u64,
    pub chunk_max_bytes: u32,
    pub min_part_bytes: u64,
    pub generation: u64,
    pub volume_id: [u8; 16],
    pub checkpoint_seq: u64,
    pub replay_position: u64,
    pub replay_prev_crc: u32,
    /// The checkpoint's manifest, if one was written.
    pub manifest: Option<ChunkRef>,
    pub created_ms: u64,
    /// The version this copy was written with; encoding always writes
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuperblockError {
    BadMagic,
    BadCrc,
    UnknownVersion(u32),
    /// Fields that contradict each other or the device.
    BadGeometry,
    /// The generation counter has no successor left (a valid copy holds
    /// nearly `u64::MAX`: written by no Rustcore, which counts up by one).
    LastGeneration,
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

impl Superblock {
    /// This superblock `step` generations on.
    pub fn after(&self, step: u64) -> Result<Self, SuperblockError> {
        let generation = self.generation.checked_add(step).ok_or(SuperblockError::LastGeneration)?;
        Ok(Self { generation, ..*self })
    }

    /// Which page this generation goes to.
    pub fn copy_page(&self) -> u64 {
        self.generation % 2
    }

    pub fn encode(&self) -> [u8; PAGE] {
        let mut out = [0u8; PAGE];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(PAGE as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.total_pages.to_le_bytes());
        out[24..32].copy_from_slice(&self.journal_start_page.to_le_bytes());
        out[32..40].copy_from_slice(&self.journal_pages.to_le_bytes());
        out[40..48].copy_from_slice(&self.data_start_page.to_le_bytes());
        out[48..52].copy_from_slice(&self.chunk_max_bytes.to_le_bytes());
        out[52..56].copy_from_slice(&((self.min_part_bytes / PAGE_BYTES) as u32).to_le_bytes());
        out[56..64].copy_from_slice(&self.generation.to_le_bytes());
        out[64..80].copy_from_slice(&self.volume_id);
        out[80..88].copy_from_slice(&self.checkpoint_seq.to_le_bytes());
        out[88..96].copy_from_slice(&self.replay_position.to_le_bytes());
        out[96..100].copy_from_slice(&self.replay_prev_crc.to_le_bytes());
        if let Some(manifest) = self.manifest {
            out[100..104].copy_from_slice(&manifest.len_bytes.to_le_bytes());
            out[104..112].copy_from_slice(&manifest.extent.start_page.to_le_bytes());
            out[112..116].copy_from_slice(&manifest.extent.pages.to_le_bytes());
            out[116..120].copy_from_slice(&manifest.crc32c.to_le_bytes());
        }
        out[120..128].copy_from_slice(&self.created_ms.to_le_bytes());
        let crc = crc32c(&out[..PAGE - 4]);
        out[PAGE - 4..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and validates one copy against the device size.
    pub fn decode_checked(page: &[u8], device_pages: u64) -> Result<Self, SuperblockError> {
        if page.len() < PAGE || page[0..8] != MAGIC {
            return Err(SuperblockError::BadMagic);
        }
        if crc32c(&page[..PAGE - 4]) != le_u32(page, PAGE - 4) {
            return Err(SuperblockError::BadCrc);
        }
        let version = le_u32(page, 8);
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(SuperblockError::UnknownVersion(version));
        }
        let manifest_bytes = le_u32(page, 100);
        let manifest = (manifest_bytes > 0).then(|| ChunkRef {
            extent: Extent { start_page: le_u64(page, 104), pages: le_u32(page, 112) },
            len_bytes: manifest_bytes,
            crc32c: le_u32(page, 116),
        });
        let mut volume_id = [0; 16];
        volume_id.copy_from_slice(&page[64..80]);
        let superblock = Self {
            total_pages: le_u64(page, 16),
            journal_start_page: le_u64(page, 24),
            journal_pages: le_u64(page, 32),
            data_start_page: le_u64(page, 40),
            chunk_max_bytes: le_u32(page, 48),
            min_part_bytes: u64::from(le_u32(page, 52)) * PAGE_BYTES,
            generation: le_u64(page, 56),
            volume_id,
            checkpoint_seq: le_u64(page, 80),
            replay_position: le_u64(page, 88),
            replay_prev_crc: le_u32(page, 96),
            manifest,
            created_ms: le_u64(page, 120),
            format_version: version,
        };
        let geometry_ok = le_u32(page, 12) as usize == PAGE
            && superblock.total_pages <= device_pages
            && superblock.journal_start_page >= 2
            && superblock.journal_pages >= 4
            && superblock.journal_start_page.checked_add(superblock.journal_pages) == Some(superblock.data_start_page)
            && superblock.data_start_page < superblock.total_pages
            && superblock.replay_position < superblock.journal_pages
            && superblock.chunk_max_bytes as u64 >= PAGE_BYTES
            && u64::from(superblock.chunk_max_bytes).is_multiple_of(PAGE_BYTES)
            && manifest.is_none_or(|m| {
                m.extent.pages > 0
                    && m.extent.start_page >= superblock.data_start_page
                    && m.extent.end_page() <= superblock.total_pages
                    && u64::from(m.len_bytes) <= m.extent.bytes()
            });
        if !geometry_ok {
            return Err(SuperblockError::BadGeometry);
        }
        Ok(superblock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        Superblock {
            total_pages: 1000,
            journal_start_page: 2,
            journal_pages: 100,
            data_start_page: 102,
            chunk_max_bytes: 1 << 20,
            min_part_bytes: 5 << 20,
            generation: 7,
            volume_id: [3; 16],
            checkpoint_seq: 42,
            replay_position: 9,
            replay_prev_crc: 0xABCD,
            manifest: Some(ChunkRef { extent: Extent { start_page: 500, pages: 2 }, len_bytes: 5000, crc32c: 1 }),
            created_ms: 123,
            format_version: FORMAT_VERSION,
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let page = sample().encode();
        assert_eq!(Superblock::decode_checked(&page, 1000), Ok(sample()));
        assert_eq!(Superblock::decode_checked(&page, 999), Err(SuperblockError::BadGeometry));
        let mut bad = page;
        bad[30] ^= 1;
        assert_eq!(Superblock::decode_checked(&bad, 1000), Err(SuperblockError::BadCrc));
        assert_eq!(Superblock::decode_checked(&[0; PAGE], 1000), Err(SuperblockError::BadMagic));
        assert_eq!(sample().copy_page(), 1);
        // Copies of versions 1 and 2 still open, and say so.
        let mut old = page;
        for version in [1, 2] {
            old[8..12].copy_from_slice(&u32::to_le_bytes(version));
            let crc = crc32c(&old[..PAGE - 4]);
            old[PAGE - 4..].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(Superblock::decode_checked(&old, 1000), Ok(Superblock { format_version: version, ..sample() }));
        }
        old[8..12].copy_from_slice(&4u32.to_le_bytes());
        let crc = crc32c(&old[..PAGE - 4]);
        old[PAGE - 4..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Superblock::decode_checked(&old, 1000), Err(SuperblockError::UnknownVersion(4)));
    }
}
