//! Helpers shared by the store's end-to-end tests.
#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use std::sync::Arc;

use fs::store::{FormatOptions, PutInfo, SpaceCell, Store, StoreError};
use storage::block::{BlockDevice, FaultConfig, SimDisk};
use storage::object::WrittenObject;
use storage::version::VersionId;

/// Polls `future` to completion. The simulated disk completes every
/// request at once or after one self-wake, so spinning is enough.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000_000u64 {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
    panic!("future never completed");
}

/// The byte at `offset` of the content named `tag`.
pub fn pattern_byte(tag: u64, offset: u64) -> u8 {
    let word = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (offset >> 3).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (word.rotate_left(29) >> ((offset & 7) * 8)) as u8
}

pub fn pattern(tag: u64, range: std::ops::Range<u64>) -> Vec<u8> {
    range.map(|offset| pattern_byte(tag, offset)).collect()
}

/// Streams `size` bytes of content `tag` through a writer, in uneven pieces.
pub async fn write_content<D: BlockDevice>(
    store: &Store<D>,
    tag: u64,
    range: std::ops::Range<u64>,
) -> Result<WrittenObject<'_, SpaceCell>, StoreError> {
    let mut writer = store.writer();
    let mut at = range.start;
    let mut piece = 1 + (tag % 7_000);
    while at < range.end {
        let end = (at + piece).min(range.end);
        writer.write(&pattern(tag, at..end)).await?;
        at = end;
        piece = piece * 3 % 20_011 + 1;
    }
    Ok(writer.finish().await?)
}

pub fn tag_info(tag: u64) -> PutInfo {
    PutInfo { headers: vec![("x-amz-meta-tag".into(), tag.to_string())], ..PutInfo::default() }
}

pub fn tag_of(headers: &[(String, String)]) -> Option<u64> {
    headers.iter().find(|(name, _)| name == "x-amz-meta-tag").and_then(|(_, value)| value.parse().ok())
}

/// Reads a version whole; Err describes what went wrong.
pub async fn read_all<D: BlockDevice>(
    store: &Store<D>,
    bucket: &str,
    key: &str,
    id: Option<VersionId>,
) -> Result<Vec<u8>, String> {
    let handle = store.open_object(bucket, key, id).map_err(|e| format!("{e:?}"))?;
    let mut reader = handle.read(0..handle.meta.size_bytes).map_err(|e| format!("{e:?}"))?;
    let mut out = Vec::new();
    while let Some(piece) = reader.next().await {
        out.extend_from_slice(piece.map_err(|e| format!("{e:?}"))?.as_slice());
    }
    Ok(out)
}

/// Chunk size of the small test volumes.
pub const CHUNK: u32 = 64 * 1024;

/// A small volume: 32 journal pages, 64 KiB chunks.
pub fn options() -> FormatOptions {
    FormatOptions {
        journal_pages: Some(32),
        chunk_max_bytes: CHUNK,
        min_part_bytes: 16 * 1024,
        volume_id: [7; 16],
        now_ms: 1_000,
    }
}

/// A simulated disk of `pages` 4 KiB blocks.
pub fn sim(pages: u64, seed: u64) -> Arc<SimDisk> {
    Arc::new(SimDisk::new(4096, pages, FaultConfig::default(), seed))
}
