//! The block devices' contract, checked the same way for each device.

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use storage::block::{BlockDevice, BlockError, FaultConfig, IoBuf, RamDisk, SimDisk, read_bytes, write_bytes};

/// The devices here complete synchronously; poll once.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("in-memory devices complete at once"),
    }
}

/// Polls until ready: in yielding mode a request takes a few polls.
fn finish<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    for _ in 0..100 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            return output;
        }
    }
    panic!("a simulated request completes within a few polls");
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn contract(device: &impl BlockDevice) {
    let geometry = device.geometry();
    let block = geometry.block_bytes as usize;
    let data = pattern(7, 3 * block);
    let (result, _) = now(device.write(5, IoBuf::from_slice(&data)));
    result.unwrap();
    let (result, buf) = now(device.read(5, IoBuf::zeroed(3 * block)));
    result.unwrap();
    assert_eq!(buf.as_slice(), &data[..]);
    now(device.flush()).unwrap();
    // Errors, not panics, for bad requests; the buffer comes back.
    let (result, buf) = now(device.read(geometry.capacity_blocks, IoBuf::zeroed(block)));
    assert!(matches!(result, Err(BlockError::OutOfRange { .. })));
    assert_eq!(buf.len(), block);
    let (result, _) = now(device.write(u64::MAX - 1, IoBuf::zeroed(2 * block)));
    assert!(matches!(result, Err(BlockError::OutOfRange { .. })));
    let (result, _) = now(device.read(0, IoBuf::zeroed(block + 1)));
    assert!(matches!(result, Err(BlockError::Misaligned { .. })));
}

#[test]
fn ram_disk_contract() {
    contract(&RamDisk::new(512, 1024));
    contract(&RamDisk::new(4096, 256));
}

#[test]
fn sim_disk_contract() {
    contract(&SimDisk::new(512, 1024, FaultConfig::default(), 1));
}

#[test]
fn flushed_writes_survive_a_power_cut() {
    let disk = SimDisk::new(512, 256, FaultConfig { keep_per_mille: 0, tear_per_mille: 0 }, 9);
    let durable = pattern(1, 4096);
    now(disk.write(0, IoBuf::from_slice(&durable))).0.unwrap();
    now(disk.flush()).unwrap();
    now(disk.write(8, IoBuf::from_slice(&pattern(2, 4096)))).0.unwrap();
    let report = disk.power_cut();
    assert_eq!(report.dropped, 1);
    // Gone until restarted.
    assert_eq!(now(disk.read(0, IoBuf::zeroed(512))).0, Err(BlockError::DeviceGone));
    disk.restart();
    let (result, buf) = now(disk.read(0, IoBuf::zeroed(8192)));
    result.unwrap();
    assert_eq!(&buf.as_slice()[..4096], &durable[..]);
    assert!(buf.as_slice()[4096..].iter().all(|&b| b == 0), "the unflushed write was dropped");
}

#[test]
fn a_flush_issued_before_a_power_cut_fails_even_if_it_completes_after_the_restart() {
    let disk = SimDisk::new(512, 256, FaultConfig { keep_per_mille: 0, tear_per_mille: 0 }, 9);
    disk.set_yielding(true);
    finish(disk.write(0, IoBuf::from_slice(&pattern(1, 4096)))).0.unwrap();
    let flush = disk.flush();
    disk.power_cut();
    disk.restart();
    assert_eq!(finish(flush), Err(BlockError::DeviceGone), "the write it covered was lost");
    let (result, buf) = finish(disk.read(0, IoBuf::zeroed(4096)));
    result.unwrap();
    assert!(buf.as_slice().iter().all(|&b| b == 0));
    // A flush issued after the restart works as before.
    finish(disk.write(0, IoBuf::from_slice(&pattern(2, 4096)))).0.unwrap();
    finish(disk.flush()).unwrap();
}

#[test]
fn torn_writes_tear_at_sector_granularity() {
    let disk = SimDisk::new(512, 256, FaultConfig { keep_per_mille: 0, tear_per_mille: 1000 }, 42);
    let data = vec![0xAB; 64 * 512];
    now(disk.write(0, IoBuf::from_slice(&data))).0.unwrap();
    assert_eq!(disk.power_cut().torn, 1);
    disk.restart();
    let (_, buf) = now(disk.read(0, IoBuf::zeroed(64 * 512)));
    let written: Vec<bool> = buf.as_slice().chunks(512).map(|s| s.iter().all(|&b| b == 0xAB)).collect();
    let zero: Vec<bool> = buf.as_slice().chunks(512).map(|s| s.iter().all(|&b| b == 0)).collect();
    assert!(written.iter().zip(&zero).all(|(w, z)| w ^ z), "each sector is all old or all new");
    assert!(written.iter().any(|&w| w) && zero.iter().any(|&z| z), "some sectors of 64 made it, some did not");
}

#[test]
fn same_seed_same_outcome() {
    let run = |seed| {
        let disk = SimDisk::new(512, 256, FaultConfig::default(), seed);
        for i in 0..20 {
            now(disk.write(i * 4, IoBuf::from_slice(&pattern(i as u8, 2048)))).0.unwrap();
        }
        let report = disk.power_cut();
        disk.restart();
        (report, now(disk.read(0, IoBuf::zeroed(256 * 512))).1.as_slice().to_vec())
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5).1, run(6).1);
}

#[test]
fn injected_faults() {
    let disk = SimDisk::new(512, 64, FaultConfig::default(), 3);
    now(disk.write(0, IoBuf::from_slice(&pattern(3, 1024)))).0.unwrap();
    disk.fail_reads_at(1);
    assert_eq!(now(disk.read(0, IoBuf::zeroed(1024))).0, Err(BlockError::Io { lba: 1 }));
    assert!(now(disk.read(2, IoBuf::zeroed(512))).0.is_ok());
    disk.flip_bit(2 * 512 + 10, 3);
    let (_, buf) = now(disk.read(2, IoBuf::zeroed(512)));
    assert_eq!(buf.as_slice()[10], 1 << 3, "one bit flipped in a byte that was zero");
}

/// `write_bytes` and `read_bytes` at every kind of alignment, against a
/// byte-array model of the device.
fn unaligned_ranges(device: &impl BlockDevice) {
    let geometry = device.geometry();
    let block = u64::from(geometry.block_bytes);
    let capacity = geometry.capacity_bytes();
    let mut model = pattern(9, capacity as usize);
    now(device.write(0, IoBuf::from_slice(&model))).0.unwrap();
    let cases = [
        (0, 0),
        (0, 1),
        (1, 1),
        (block - 1, 2),
        (block, block),
        (3, block - 6),
        (block / 2, 3 * block),
        (5 * block + 7, 2 * block - 7),
        (capacity - 3, 3),
        (capacity - block, block),
    ];
    for (step, (offset, len)) in cases.into_iter().enumerate() {
        let data = pattern(100 + step as u8, len as usize);
        now(write_bytes(device, offset, &data)).unwrap();
        model[offset as usize..(offset + len) as usize].copy_from_slice(&data);
        let (result, whole) = now(device.read(0, IoBuf::zeroed(capacity as usize)));
        result.unwrap();
        assert!(whole.as_slice() == &model[..], "write of {len} bytes at {offset} changed other bytes");
        let mut back = vec![0; len as usize];
        now(read_bytes(device, offset, &mut back)).unwrap();
        assert_eq!(back, data, "read of {len} bytes at {offset}");
        let mut around = vec![0; (len + 2).min(capacity - offset.saturating_sub(1)) as usize];
        let from = offset.saturating_sub(1);
        now(read_bytes(device, from, &mut around)).unwrap();
        assert_eq!(around, &model[from as usize..from as usize + around.len()]);
    }
    assert!(matches!(now(write_bytes(device, capacity - 1, &[1, 2])), Err(BlockError::OutOfRange { .. })));
    assert!(matches!(now(read_bytes(device, u64::MAX, &mut [0])), Err(BlockError::OutOfRange { .. })));
}

#[test]
fn unaligned_byte_ranges() {
    unaligned_ranges(&RamDisk::new(512, 64));
    unaligned_ranges(&RamDisk::new(4096, 16));
    unaligned_ranges(&SimDisk::new(512, 64, FaultConfig::default(), 4));
}

#[test]
fn discard_checks_its_range() {
    let ram = RamDisk::new(512, 64);
    assert!(ram.geometry().supports_discard);
    now(ram.write(4, IoBuf::from_slice(&pattern(1, 1024)))).0.unwrap();
    now(ram.discard(4, 1)).unwrap();
    let (_, buf) = now(ram.read(4, IoBuf::zeroed(1024)));
    assert!(buf.as_slice()[..512].iter().all(|&b| b == 0), "a discarded RAM block reads as zeros");
    assert_eq!(&buf.as_slice()[512..], &pattern(1, 1024)[512..], "the next block is kept");
    assert!(matches!(now(ram.discard(63, 2)), Err(BlockError::OutOfRange { .. })));
    // Where unsupported it is a checked no-op.
    let sim = SimDisk::new(512, 64, FaultConfig::default(), 1);
    assert!(!sim.geometry().supports_discard);
    now(sim.discard(0, 64)).unwrap();
    assert!(matches!(now(sim.discard(u64::MAX, 2)), Err(BlockError::OutOfRange { .. })));
}
