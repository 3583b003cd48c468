//! The write-ahead journal: batches of records in a circular region.
//!
//! A batch is one write of whole 4 KiB pages: a 64-byte header, then the
//! records, each a little-endian `u32` length and its postcard bytes, then
//! (format 2) the images: the bytes of small objects' chunks that are not
//! yet in the data area, each a `u64` start page, a `u32` length and the
//! bytes. Replay writes an image back when the chunk it holds is still
//! referenced by the replayed state (see the store).
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 8 | magic `RCS3JNL1` |
//! | 8 | 4 | format version (2; 1 is format 2 without images) |
//! | 12 | 4 | kind: 1 records, 2 padding (the region wraps to page 0 after it) |
//! | 16 | 8 | sequence number of the first record |
//! | 24 | 4 | record count |
//! | 28 | 4 | pages, header page included |
//! | 32 | 4 | payload bytes (after the header) |
//! | 36 | 4 | CRC32C of the payload |
//! | 40 | 4 | chain: header CRC of the previous batch |
//! | 44 | 4 | image count (format 2) |
//! | 48 | 8 | images durable through: every image of a record up to this sequence number is in the data area and flushed (format 2) |
//! | 56 | 4 | session: the low 32 bits of the superblock generation when the batch was written (0 before this field) |
//! | 60 | 8 | durable through (format 3): every record up to this sequence number was acknowledged, its batch and chunks flushed, when this batch was written |
//! | 68 | 4 | flags (format 3): bit 0, *verify data*: the batch was written without a data flush before it (see below) |
//! | 72 | 4 | zero |
//! | 76 | 4 | CRC32C of bytes 0..76 |
//!
//! Formats 1 and 2 have a 64-byte header: bytes 60..64 are its CRC32C (of
//! bytes 0..60), and the payload starts at 64.
//!
//! Replay starts where the superblock says (position, expected sequence,
//! expected chain value) and takes batches while each is whole and valid,
//! starts with the next expected sequence number and names the previous
//! batch's CRC as its chain. The first batch that fails any check is the
//! torn or stale end of the log: replay stops cleanly there, and the next
//! batch is written in its place. The chain is what keeps a stale batch of
//! an earlier lap, or one written before a crash after a batch that did
//! not survive, from being taken for the next one.
//!
//! A batch is acknowledged only after the device flush that follows its
//! write, so whatever replay drops was never acknowledged.
//!
//! One flush per batch, data included (format 3). A record may reference
//! chunks its request wrote to the data area; they must be durable before
//! the record is. A batch flagged *verify data* was written without a
//! flush of those chunks first: the flush after the batch makes both
//! durable at once, and until then either may reach the media without the
//! other. Replay therefore checks the CRC32C of every chunk such a batch's
//! records bring (the written ones: logged chunks travel in the batch),
//! unless a later batch's *durable through* covers it, and a batch with a
//! chunk that does not match is the torn end of the log like a batch that
//! does not match its own CRC. Only the last batch or two of a log are
//! ever unvouched (a batch is written while at most one other is in
//! flight), and the store flags a batch only while its chunks are small
//! (see the store), so replay reads little. A batch that was
//! acknowledged had its chunks flushed, so they match unless the media
//! corrupted them since.
//!
//! Two batches may be in flight at once (see the store), so a crash can
//! leave batch n+1 whole behind a batch n that never made it: replay stops
//! at n, and the next session writes its own batch n there. The session
//! field keeps that new batch's header, and so the chain value batch n+1
//! names, different from the lost one's even if the records were the
//! same: every open writes a superblock of a new generation first, and a
//! batch carries the generation it was written under.

use alloc::vec::Vec;

use storage::block::IoBuf;
use storage::checksum::crc32c;
use storage::space::PAGE_BYTES;

use crate::record::JournalRecord;

pub const MAGIC: [u8; 8] = *b"RCS3JNL1";
pub const FORMAT_VERSION: u32 = 3;
/// Bytes before an image's data: start page and length.
pub const IMAGE_HEADER_BYTES: usize = 12;
/// The header of a format 3 batch; formats 1 and 2 had 64 bytes.
pub const HEADER_BYTES: usize = 80;
const OLD_HEADER_BYTES: usize = 64;
/// Flag bit: replay verifies the chunks the batch's records bring.
const FLAG_VERIFY_DATA: u32 = 1;
const PAGE: usize = PAGE_BYTES as usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchKind {
    Records,
    Padding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub kind: BatchKind,
    pub first_seq: u64,
    pub record_count: u32,
    pub image_count: u32,
    pub images_durable_seq: u64,
    pub session: u32,
    /// Every record up to this one was durable, chunks included, when the
    /// batch was written (0 before format 3).
    pub durable_through: u64,
    /// Written without a flush of the chunks its records bring first:
    /// replay verifies them unless a later batch's `durable_through`
    /// covers this batch.
    pub verify_data: bool,
    /// Bytes before the payload: 64 before format 3.
    pub header_bytes: u32,
    pub pages: u32,
    pub payload_bytes: u32,
    pub payload_crc: u32,
    pub prev_crc: u32,
    /// CRC of the encoded header: the next batch's chain value.
    pub header_crc: u32,
}

/// Why a page is not the batch replay expects (the end of the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchEnd {
    BadMagic,
    UnknownVersion(u32),
    BadHeaderCrc,
    WrongSequence {
        expected: u64,
        found: u64,
    },
    BrokenChain,
    BadLength,
    BadPayloadCrc,
    /// A batch flagged *verify data* whose records bring a chunk that does
    /// not match its CRC32C (a write that never reached the media), and no
    /// later batch says it was flushed: the store's replay ends there.
    UnflushedData {
        seq: u64,
    },
}

/// A batch that passed its checksums but whose records do not decode:
/// not a torn write but a format error, which must stop the open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UndecodableRecord {
    pub seq: u64,
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

impl BatchHeader {
    fn encode_into(&mut self, out: &mut [u8]) {
        out[..HEADER_BYTES].fill(0);
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let kind: u32 = match self.kind {
            BatchKind::Records => 1,
            BatchKind::Padding => 2,
        };
        out[12..16].copy_from_slice(&kind.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        out[24..28].copy_from_slice(&self.record_count.to_le_bytes());
        out[28..32].copy_from_slice(&self.pages.to_le_bytes());
        out[32..36].copy_from_slice(&self.payload_bytes.to_le_bytes());
        out[36..40].copy_from_slice(&self.payload_crc.to_le_bytes());
        out[40..44].copy_from_slice(&self.prev_crc.to_le_bytes());
        out[44..48].copy_from_slice(&self.image_count.to_le_bytes());
        out[48..56].copy_from_slice(&self.images_durable_seq.to_le_bytes());
        out[56..60].copy_from_slice(&self.session.to_le_bytes());
        out[60..68].copy_from_slice(&self.durable_through.to_le_bytes());
        let flags = if self.verify_data { FLAG_VERIFY_DATA } else { 0 };
        out[68..72].copy_from_slice(&flags.to_le_bytes());
        self.header_bytes = HEADER_BYTES as u32;
        self.header_crc = crc32c(&out[..HEADER_BYTES - 4]);
        out[HEADER_BYTES - 4..HEADER_BYTES].copy_from_slice(&self.header_crc.to_le_bytes());
    }

    /// Checks the header page against what replay expects next.
    pub fn decode_checked(page: &[u8], expected_seq: u64, expected_prev_crc: u32) -> Result<Self, BatchEnd> {
        if page.len() < HEADER_BYTES || page[0..8] != MAGIC {
            return Err(BatchEnd::BadMagic);
        }
        // The version picks the header's length, and so where its CRC is:
        // a version torn into another one fails that CRC either way.
        let version = le_u32(page, 8);
        let header_bytes = match version {
            1 | 2 => OLD_HEADER_BYTES,
            FORMAT_VERSION => HEADER_BYTES,
            _ => return Err(BatchEnd::UnknownVersion(version)),
        };
        if page.len() < header_bytes || crc32c(&page[..header_bytes - 4]) != le_u32(page, header_bytes - 4) {
            return Err(BatchEnd::BadHeaderCrc);
        }
        let current = version == FORMAT_VERSION;
        let flags = if current { le_u32(page, 68) } else { 0 };
        if flags & !FLAG_VERIFY_DATA != 0 {
            return Err(BatchEnd::BadLength);
        }
        let kind = match le_u32(page, 12) {
            1 => BatchKind::Records,
            2 => BatchKind::Padding,
            _ => return Err(BatchEnd::BadLength),
        };
        let header = Self {
            kind,
            first_seq: le_u64(page, 16),
            record_count: le_u32(page, 24),
            image_count: if version == 1 { 0 } else { le_u32(page, 44) },
            images_durable_seq: if version == 1 { 0 } else { le_u64(page, 48) },
            session: le_u32(page, 56),
            durable_through: if current { le_u64(page, 60) } else { 0 },
            verify_data: flags & FLAG_VERIFY_DATA != 0,
            header_bytes: header_bytes as u32,
            pages: le_u32(page, 28),
            payload_bytes: le_u32(page, 32),
            payload_crc: le_u32(page, 36),
            prev_crc: le_u32(page, 40),
            header_crc: le_u32(page, header_bytes - 4),
        };
        if header.first_seq != expected_seq {
            return Err(BatchEnd::WrongSequence { expected: expected_seq, found: header.first_seq });
        }
        if header.prev_crc != expected_prev_crc {
            return Err(BatchEnd::BrokenChain);
        }
        let needed = (header_bytes + header.payload_bytes as usize).div_ceil(PAGE);
        let fits = match kind {
            BatchKind::Records => header.pages as usize == needed,
            BatchKind::Padding => {
                header.pages >= 1 && header.payload_bytes == 0 && header.record_count == 0 && header.image_count == 0
            }
        };
        if !fits {
            return Err(BatchEnd::BadLength);
        }
        Ok(header)
    }

    /// Checks the whole batch (`bytes` starts with the header page) and
    /// returns its records and images.
    pub fn records(&self, bytes: &[u8]) -> Result<Result<DecodedBatch, UndecodableRecord>, BatchEnd> {
        let start = self.header_bytes as usize;
        let end = start + self.payload_bytes as usize;
        if bytes.len() < end {
            return Err(BatchEnd::BadLength);
        }
        let payload = &bytes[start..end];
        if crc32c(payload) != self.payload_crc {
            return Err(BatchEnd::BadPayloadCrc);
        }
        // Counts come from the disk: a capacity no bigger than the payload
        // could hold, whatever they say.
        let mut records = Vec::with_capacity((self.record_count as usize).min(payload.len() / 4));
        let mut rest = payload;
        for index in 0..u64::from(self.record_count) {
            let undecodable = UndecodableRecord { seq: self.first_seq + index };
            if rest.len() < 4 {
                return Ok(Err(undecodable));
            }
            let len = le_u32(rest, 0) as usize;
            let Some(encoded) = rest.get(4..4 + len) else { return Ok(Err(undecodable)) };
            match postcard::from_bytes::<JournalRecord>(encoded) {
                Ok(record) => records.push(record),
                Err(_) => return Ok(Err(undecodable)),
            }
            rest = &rest[4 + len..];
        }
        let after_records = UndecodableRecord { seq: self.first_seq + u64::from(self.record_count) };
        let mut images = Vec::with_capacity((self.image_count as usize).min(rest.len() / IMAGE_HEADER_BYTES));
        for _ in 0..self.image_count {
            if rest.len() < IMAGE_HEADER_BYTES {
                return Ok(Err(after_records));
            }
            let start_page = le_u64(rest, 0);
            let len = le_u32(rest, 8) as usize;
            let Some(data) = rest.get(IMAGE_HEADER_BYTES..IMAGE_HEADER_BYTES + len) else {
                return Ok(Err(after_records));
            };
            images.push(Image { start_page, bytes: data.to_vec() });
            rest = &rest[IMAGE_HEADER_BYTES + len..];
        }
        if !rest.is_empty() {
            return Ok(Err(after_records));
        }
        Ok(Ok(DecodedBatch { records, images }))
    }
}

/// The bytes of a chunk logged with the record that references it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub start_page: u64,
    /// The chunk's data bytes (not the page padding).
    pub bytes: Vec<u8>,
}

/// What a valid records batch holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedBatch {
    pub records: Vec<JournalRecord>,
    pub images: Vec<Image>,
}

/// Bytes one image takes in a batch.
pub fn image_bytes(data_bytes: usize) -> usize {
    IMAGE_HEADER_BYTES + data_bytes
}

/// Encodes one record as it sits in a batch payload.
pub fn encode_record(record: &JournalRecord) -> Vec<u8> {
    // postcard cannot fail on these types except by running out of memory,
    // which the global allocator turns into an abort anyway.
    let body = postcard::to_allocvec(record).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Pages a batch of `payload_bytes` (encoded records and images) takes.
pub fn batch_pages(payload_bytes: usize) -> u32 {
    (HEADER_BYTES + payload_bytes).div_ceil(PAGE) as u32
}

/// What a batch's header says besides its records: see the format table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchState {
    pub images_durable_seq: u64,
    pub durable_through: u64,
    pub verify_data: bool,
}

/// The pages of a records batch, and its header (for the chain). Images
/// are (start page, data bytes).
pub fn encode_batch(
    session: u32,
    first_seq: u64,
    prev_crc: u32,
    encoded: &[&[u8]],
    images: &[(u64, &[u8])],
    state: BatchState,
) -> (IoBuf, BatchHeader) {
    let payload_bytes: usize = encoded.iter().map(|record| record.len()).sum::<usize>()
        + images.iter().map(|(_, data)| image_bytes(data.len())).sum::<usize>();
    let pages = batch_pages(payload_bytes);
    let mut buf = IoBuf::zeroed(pages as usize * PAGE);
    let bytes = buf.as_mut_slice();
    let mut at = HEADER_BYTES;
    for record in encoded {
        bytes[at..at + record.len()].copy_from_slice(record);
        at += record.len();
    }
    for (start_page, data) in images {
        bytes[at..at + 8].copy_from_slice(&start_page.to_le_bytes());
        bytes[at + 8..at + 12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        bytes[at + IMAGE_HEADER_BYTES..at + image_bytes(data.len())].copy_from_slice(data);
        at += image_bytes(data.len());
    }
    let mut header = BatchHeader {
        kind: BatchKind::Records,
        first_seq,
        record_count: encoded.len() as u32,
        image_count: images.len() as u32,
        images_durable_seq: state.images_durable_seq,
        session,
        durable_through: state.durable_through,
        verify_data: state.verify_data,
        header_bytes: HEADER_BYTES as u32,
        pages,
        payload_bytes: payload_bytes as u32,
        payload_crc: crc32c(&bytes[HEADER_BYTES..at]),
        prev_crc,
        header_crc: 0,
    };
    header.encode_into(bytes);
    (buf, header)
}

/// The header page of a padding batch covering `pages` up to the end of
/// the region.
pub fn encode_padding(session: u32, next_seq: u64, prev_crc: u32, pages: u32) -> (IoBuf, BatchHeader) {
    let mut buf = IoBuf::zeroed(PAGE);
    let mut header = BatchHeader {
        kind: BatchKind::Padding,
        first_seq: next_seq,
        record_count: 0,
        image_count: 0,
        images_durable_seq: 0,
        session,
        durable_through: 0,
        verify_data: false,
        header_bytes: HEADER_BYTES as u32,
        pages,
        payload_bytes: 0,
        payload_crc: crc32c(&[]),
        prev_crc,
        header_crc: 0,
    };
    header.encode_into(buf.as_mut_slice());
    (buf, header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn record(name: &str) -> JournalRecord {
        JournalRecord::BucketCreated { name: String::from(name), owner: String::from("o"), created_ms: 1 }
    }

    #[test]
    fn batch_round_trip_and_checks() {
        let encoded = [encode_record(&record("a")), encode_record(&record("b"))];
        let encoded: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let image = alloc::vec![7u8; 5000];
        let (buf, header) = encode_batch(4, 10, 77, &encoded, &[(1234, &image), (99, &[])], state(8));
        let bytes = buf.as_slice();
        assert_eq!((header.pages, header.images_durable_seq, header.session), (2, 8, 4));
        // The same records written in another session chain differently.
        let (_, other_session) = encode_batch(5, 10, 77, &encoded, &[(1234, &image), (99, &[])], state(8));
        assert_ne!(other_session.header_crc, header.header_crc);
        let decoded = BatchHeader::decode_checked(bytes, 10, 77).unwrap();
        assert_eq!(decoded, header);
        let images =
            alloc::vec![Image { start_page: 1234, bytes: image.clone() }, Image { start_page: 99, bytes: Vec::new() }];
        assert_eq!(
            decoded.records(bytes),
            Ok(Ok(DecodedBatch { records: alloc::vec![record("a"), record("b")], images }))
        );
        // A batch whose header promises an image more than the payload holds.
        let mut short = decoded;
        short.image_count = 3;
        assert_eq!(short.records(bytes), Ok(Err(UndecodableRecord { seq: 12 })));
        assert_eq!(
            BatchHeader::decode_checked(bytes, 11, 77),
            Err(BatchEnd::WrongSequence { expected: 11, found: 10 })
        );
        assert_eq!(BatchHeader::decode_checked(bytes, 10, 78), Err(BatchEnd::BrokenChain));
        let mut torn = bytes.to_vec();
        torn[HEADER_BYTES + 3] ^= 1;
        assert_eq!(decoded.records(&torn), Err(BatchEnd::BadPayloadCrc));
        torn[20] ^= 1;
        assert_eq!(BatchHeader::decode_checked(&torn, 10, 77), Err(BatchEnd::BadHeaderCrc));
        assert_eq!(BatchHeader::decode_checked(&[0; 4096], 10, 77), Err(BatchEnd::BadMagic));
    }

    fn state(images_durable_seq: u64) -> BatchState {
        BatchState { images_durable_seq, ..BatchState::default() }
    }

    /// A batch as formats 1 and 2 wrote it: a 64-byte header, CRC at 60.
    fn old_format(version: u32, current: &[u8], payload_bytes: usize) -> Vec<u8> {
        let mut bytes = alloc::vec![0u8; current.len()];
        bytes[..60].copy_from_slice(&current[..60]);
        bytes[8..12].copy_from_slice(&version.to_le_bytes());
        bytes[OLD_HEADER_BYTES..OLD_HEADER_BYTES + payload_bytes]
            .copy_from_slice(&current[HEADER_BYTES..HEADER_BYTES + payload_bytes]);
        let crc = crc32c(&bytes[..60]);
        bytes[60..64].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn format_1_and_2_batches_still_replay() {
        let encoded = encode_record(&record("a"));
        let image = [9u8; 10];
        let (buf, header) = encode_batch(0, 3, 5, &[&encoded], &[(44, &image)], state(2));
        let payload = header.payload_bytes as usize;
        let bytes = old_format(1, buf.as_slice(), payload);
        let decoded = BatchHeader::decode_checked(&bytes, 3, 5).unwrap();
        assert_eq!((decoded.image_count, decoded.header_bytes, decoded.verify_data), (0, 64, false));
        // Format 1 had no images: the payload's image bytes are left over.
        assert_eq!(decoded.records(&bytes), Ok(Err(UndecodableRecord { seq: 4 })));
        let bytes = old_format(2, buf.as_slice(), payload);
        let decoded = BatchHeader::decode_checked(&bytes, 3, 5).unwrap();
        assert_eq!((decoded.image_count, decoded.images_durable_seq, decoded.durable_through), (1, 2, 0));
        assert_eq!(
            decoded.records(&bytes),
            Ok(Ok(DecodedBatch {
                records: alloc::vec![record("a")],
                images: alloc::vec![Image { start_page: 44, bytes: image.to_vec() }],
            }))
        );
        let (buf, _) = encode_batch(0, 3, 5, &[&encoded], &[], state(0));
        let bytes = old_format(1, buf.as_slice(), encoded.len());
        let decoded = BatchHeader::decode_checked(&bytes, 3, 5).unwrap();
        assert_eq!(
            decoded.records(&bytes),
            Ok(Ok(DecodedBatch { records: alloc::vec![record("a")], images: Vec::new() }))
        );
    }

    #[test]
    fn format_3_carries_durable_through_and_the_verify_flag() {
        let encoded = encode_record(&record("a"));
        let state = BatchState { images_durable_seq: 4, durable_through: 6, verify_data: true };
        let (buf, header) = encode_batch(1, 8, 5, &[&encoded], &[], state);
        let decoded = BatchHeader::decode_checked(buf.as_slice(), 8, 5).unwrap();
        assert_eq!(decoded, header);
        assert_eq!((decoded.durable_through, decoded.verify_data, decoded.header_bytes), (6, true, 80));
        // A flag this format does not know is not taken for a batch.
        let mut bytes = buf.as_slice().to_vec();
        bytes[68] |= 2;
        let crc = crc32c(&bytes[..76]);
        bytes[76..80].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(BatchHeader::decode_checked(&bytes, 8, 5), Err(BatchEnd::BadLength));
        // Nor is a header torn between the two formats' CRC places.
        let mut bytes = buf.as_slice().to_vec();
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(BatchHeader::decode_checked(&bytes, 8, 5), Err(BatchEnd::BadHeaderCrc));
    }

    #[test]
    fn padding_round_trip() {
        let (buf, header) = encode_padding(1, 5, 9, 3);
        let decoded = BatchHeader::decode_checked(buf.as_slice(), 5, 9).unwrap();
        assert_eq!((decoded.kind, decoded.pages, decoded.header_crc), (BatchKind::Padding, 3, header.header_crc));
    }

    #[test]
    fn garbage_never_panics() {
        let mut page = alloc::vec![0u8; 4096];
        page[..8].copy_from_slice(&MAGIC);
        for seed in 0..2000u32 {
            for (i, byte) in page.iter_mut().enumerate().skip(8).take(HEADER_BYTES) {
                *byte = (seed.wrapping_mul(2_654_435_761).wrapping_add(i as u32) >> 7) as u8;
            }
            if let Ok(header) = BatchHeader::decode_checked(&page, le_u64(&page, 16), le_u32(&page, 40)) {
                let _ = header.records(&page);
            }
        }
    }
}
