//! Byte ranges of any alignment over a device that takes whole blocks.
//!
//! A range is widened to the blocks that hold it and moved in one request.
//! A write whose first or last block is only partly covered reads that
//! block first and merges the new bytes into it (read-modify-write), so
//! the bytes around the range keep their values. The merge is not atomic:
//! callers must not write the same blocks concurrently, and a power cut
//! may tear the write like any other.

use super::{BlockDevice, BlockError, IoBuf};

/// The blocks `[first_lba, first_lba + blocks)` holding bytes
/// `[offset, offset + len)`, and where the range starts in the first one.
struct Span {
    first_lba: u64,
    blocks: u64,
    skip_bytes: usize,
}

fn span<D: BlockDevice + ?Sized>(device: &D, offset: u64, len: usize) -> Result<Span, BlockError> {
    let geometry = device.geometry();
    let block = u64::from(geometry.block_bytes);
    let out_of_range = BlockError::OutOfRange {
        lba: offset / block.max(1),
        blocks: (len as u64).div_ceil(block.max(1)),
        capacity_blocks: geometry.capacity_blocks,
    };
    let end = offset.checked_add(len as u64).ok_or(out_of_range)?;
    if block == 0 || end > geometry.capacity_bytes() {
        return Err(out_of_range);
    }
    let first_lba = offset / block;
    Ok(Span { first_lba, blocks: end.div_ceil(block) - first_lba, skip_bytes: (offset % block) as usize })
}

/// Reads `out.len()` bytes starting at byte `offset` of the device.
pub async fn read_bytes<D: BlockDevice + ?Sized>(device: &D, offset: u64, out: &mut [u8]) -> Result<(), BlockError> {
    if out.is_empty() {
        return Ok(());
    }
    let span = span(device, offset, out.len())?;
    let block = device.geometry().block_bytes as usize;
    let (result, buf) = device.read(span.first_lba, IoBuf::zeroed(span.blocks as usize * block)).await;
    result?;
    out.copy_from_slice(&buf.as_slice()[span.skip_bytes..span.skip_bytes + out.len()]);
    Ok(())
}

/// Writes `data` starting at byte `offset` of the device, keeping the other
/// bytes of the blocks it touches.
pub async fn write_bytes<D: BlockDevice + ?Sized>(device: &D, offset: u64, data: &[u8]) -> Result<(), BlockError> {
    if data.is_empty() {
        return Ok(());
    }
    let span = span(device, offset, data.len())?;
    let block = device.geometry().block_bytes as usize;
    let mut buf = IoBuf::zeroed(span.blocks as usize * block);
    let head_partial = span.skip_bytes != 0;
    let tail_partial = !(span.skip_bytes + data.len()).is_multiple_of(block);
    let last = span.blocks as usize - 1;
    // The partly covered end blocks (once if they are the same block):
    // their old bytes, to merge into.
    let mut partial_blocks = [head_partial.then_some(0), tail_partial.then_some(last)];
    if partial_blocks[0] == partial_blocks[1] {
        partial_blocks[1] = None;
    }
    for index in partial_blocks.into_iter().flatten() {
        let (result, old) = device.read(span.first_lba + index as u64, IoBuf::zeroed(block)).await;
        result?;
        buf.as_mut_slice()[index * block..(index + 1) * block].copy_from_slice(old.as_slice());
    }
    buf.as_mut_slice()[span.skip_bytes..span.skip_bytes + data.len()].copy_from_slice(data);
    let (result, _) = device.write(span.first_lba, buf).await;
    result
}
