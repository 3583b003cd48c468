//! Storage benchmarks (`cargo xtask bench storage`): the store on a file
//! opened with O_DIRECT (fdatasync as flush) side by side with Linux's own
//! filesystem doing the same durable work (one file per object, written
//! and fdatasync'ed), and the store on a RAM disk (the engine's own cost).
//! Each row is the median of 3 runs; the ratio is store / Linux.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use fs::store::{FormatOptions, PutInfo, Store};
use hosted::block::FileDisk;
use storage::block::{BlockDevice, RamDisk};

const RUNS: usize = 3;
const MIB: u64 = 1 << 20;

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn content(size: usize, seed: u64) -> Vec<u8> {
    (0..size).map(|i| (i as u64).wrapping_mul(seed | 1).rotate_left(13) as u8).collect()
}

/// Seconds to PUT `count` objects of `size` bytes, then to GET them all.
fn store_put_get<D: BlockDevice>(store: &Store<D>, count: usize, size: usize, round: usize) -> (f64, f64) {
    let data = content(size, round as u64);
    let bucket = format!("bench{round}-{size}");
    block_on(store.create_bucket(&bucket, "bench", 0)).expect("bucket");
    let start = Instant::now();
    for index in 0..count {
        block_on(async {
            let mut writer = store.writer();
            writer.expect_size(size as u64);
            // As the network delivers it: 64 KiB at a time.
            for piece in data.chunks(64 * 1024) {
                writer.write(piece).await.expect("write");
            }
            let written = writer.finish().await.expect("finish");
            store.put_object(&bucket, &format!("o{index}"), written, PutInfo::default(), 0).await.expect("put");
        });
    }
    let put = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for index in 0..count {
        block_on(async {
            let handle = store.open_object(&bucket, &format!("o{index}"), None).expect("open");
            let mut reader = handle.read(0..size as u64).expect("range");
            let mut total = 0;
            while let Some(piece) = reader.next().await {
                total += piece.expect("verified").as_slice().len();
            }
            assert_eq!(total, size);
        });
    }
    let get = start.elapsed().as_secs_f64();
    for index in 0..count {
        block_on(store.delete_object(&bucket, &format!("o{index}"), None, 0)).expect("delete");
    }
    (put, get)
}

/// The same on Linux: one file per object, written and fdatasync'ed (with
/// its directory), read back with O_DIRECT.
fn linux_put_get(dir: &Path, count: usize, size: usize, round: usize) -> (f64, f64) {
    let data = content(size, round as u64);
    let dir = dir.join(format!("linux{round}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let start = Instant::now();
    for index in 0..count {
        let mut file = File::create(dir.join(format!("o{index}"))).expect("create");
        file.write_all(&data).expect("write");
        file.sync_data().expect("fdatasync");
        File::open(&dir).and_then(|d| d.sync_all()).expect("dir fsync");
    }
    let put = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut buf = storage::block::IoBuf::zeroed(size.next_multiple_of(4096));
    for index in 0..count {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(dir.join(format!("o{index}")))
            .expect("open");
        let mut done = 0;
        while done < size {
            let n =
                std::os::unix::fs::FileExt::read_at(&file, &mut buf.as_mut_slice()[done..], done as u64).expect("read");
            if n == 0 {
                break;
            }
            done += n;
        }
    }
    let get = start.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&dir).expect("cleanup");
    (put, get)
}

struct Row {
    name: String,
    store: f64,
    linux: Option<f64>,
    unit: &'static str,
}

fn main() {
    let hardware = hosted::crc::install_hardware_crc32c();
    let dir = PathBuf::from(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target/bench-storage".into()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let mut rows = Vec::new();

    // CRC32C, the checksum on every chunk.
    let block = content(64 * MIB as usize, 3);
    let rate = |f: &dyn Fn(&[u8]) -> u32| {
        median(
            (0..RUNS)
                .map(|_| {
                    let start = Instant::now();
                    std::hint::black_box(f(&block));
                    block.len() as f64 / MIB as f64 / start.elapsed().as_secs_f64()
                })
                .collect(),
        )
    };
    rows.push(Row {
        name: "CRC32C portable (slice-by-16)".into(),
        store: rate(&|d| storage::checksum::crc32c_portable(0, d)),
        linux: None,
        unit: "MiB/s",
    });
    if hardware {
        rows.push(Row {
            name: "CRC32C SSE4.2 (as installed)".into(),
            store: rate(&|d| storage::checksum::crc32c(d)),
            linux: None,
            unit: "MiB/s",
        });
    }

    let image = dir.join("store.img");
    let _ = std::fs::remove_file(&image);
    let disk = Arc::new(FileDisk::open(&image, 4096, 1024 * MIB).expect("disk image"));
    let direct = disk.direct_io();
    let options = FormatOptions { volume_id: [9; 16], ..FormatOptions::default() };
    let store = block_on(Store::format(disk.clone(), options)).expect("format");
    for (label, count, size) in [("1 MiB objects", 48usize, MIB as usize), ("4 KiB objects", 400, 4096)] {
        let mut samples = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..RUNS {
            let (put, get) = store_put_get(&store, count, size, round);
            let (linux_put, linux_get) = linux_put_get(&dir, count, size, round);
            samples.0.push(put);
            samples.1.push(get);
            samples.2.push(linux_put);
            samples.3.push(linux_get);
        }
        let (put, get, linux_put, linux_get) =
            (median(samples.0), median(samples.1), median(samples.2), median(samples.3));
        let per = |seconds: f64| -> f64 {
            if size >= MIB as usize { (count * size) as f64 / MIB as f64 / seconds } else { count as f64 / seconds }
        };
        let unit = if size >= MIB as usize { "MiB/s" } else { "ops/s" };
        rows.push(Row {
            name: format!("durable PUT, {label}, file disk"),
            store: per(put),
            linux: Some(per(linux_put)),
            unit,
        });
        rows.push(Row { name: format!("GET, {label}, file disk"), store: per(get), linux: Some(per(linux_get)), unit });
    }
    drop(store);
    let start = Instant::now();
    let (store, report) = block_on(Store::open(disk.clone())).expect("reopen");
    rows.push(Row {
        name: format!("open: superblock + checkpoint + replay of {} records", report.replayed_records),
        store: start.elapsed().as_secs_f64() * 1000.0,
        linux: None,
        unit: "ms",
    });
    drop(store);

    let ram = Arc::new(RamDisk::new(4096, 262_144));
    let store = block_on(Store::format(ram, FormatOptions::default())).expect("format ram");
    for (label, count, size) in [("1 MiB objects", 256usize, MIB as usize), ("4 KiB objects", 5_000, 4096)] {
        let mut puts = Vec::new();
        let mut gets = Vec::new();
        for round in 0..RUNS {
            let (put, get) = store_put_get(&store, count, size, round + 10);
            puts.push(put);
            gets.push(get);
        }
        let per = |seconds: f64| -> f64 {
            if size >= MIB as usize { (count * size) as f64 / MIB as f64 / seconds } else { count as f64 / seconds }
        };
        let unit = if size >= MIB as usize { "MiB/s" } else { "ops/s" };
        rows.push(Row {
            name: format!("PUT, {label}, RAM disk (engine only)"),
            store: per(median(puts)),
            linux: None,
            unit,
        });
        rows.push(Row {
            name: format!("GET, {label}, RAM disk (engine only)"),
            store: per(median(gets)),
            linux: None,
            unit,
        });
    }

    println!("\nstorage bench (O_DIRECT: {direct}; median of {RUNS}; Linux = ext4 file per object + fdatasync)\n");
    println!("| measurement | Rustcore store | Linux | store / Linux |");
    println!("|---|---:|---:|---:|");
    for row in rows {
        let (linux, ratio) = match row.linux {
            Some(linux) => (format!("{linux:.1} {}", row.unit), format!("{:.2}", row.store / linux)),
            None => (String::from("-"), String::from("-")),
        };
        println!("| {} | {:.1} {} | {linux} | {ratio} |", row.name, row.store, row.unit);
    }
    let _ = std::fs::remove_file(&image);
}
