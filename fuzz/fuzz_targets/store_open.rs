//! Opening a store never panics and never hangs, whatever its disk holds.
//! The disk is a valid store (superblocks, a checkpoint, a journal tail of
//! records and small objects' images) with the input's patches written over
//! it; after an open that succeeds, every object is read (errors allowed),
//! the consistency check runs and a new object is stored.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use fs::store::{FormatOptions, PutInfo, Store};
use libfuzzer_sys::fuzz_target;
use storage::block::{BlockDevice, IoBuf, RamDisk};

const PAGE: usize = 4096;
const PAGES: u64 = 160;

/// The RAM disk completes every request at once: a store future that is
/// still pending after this many polls is a hang.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("a store future on a RAM disk never finished");
}

async fn put(store: &Store<RamDisk>, key: &str, size: usize) {
    let mut writer = store.writer();
    let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    if writer.write(&data).await.is_err() {
        return;
    }
    if let Ok(written) = writer.finish().await {
        let _ = store.put_object("b", key, written, PutInfo::default(), 5).await;
    }
}

/// The pages of a store built once: objects before and after a checkpoint,
/// an overwrite and a delete, so the journal holds records and images.
fn image() -> &'static [u8] {
    static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        run(async {
            let options = FormatOptions {
                journal_pages: Some(48),
                chunk_max_bytes: 16 * 1024,
                min_part_bytes: 16 * 1024,
                volume_id: [5; 16],
                now_ms: 1,
            };
            let store = Store::format(RamDisk::new(PAGE as u32, PAGES), options).await.expect("format");
            store.create_bucket("b", "owner", 2).await.expect("bucket");
            for (index, size) in [0, 100, 3_000, 40_000].into_iter().enumerate() {
                put(&store, &format!("before{index}"), size).await;
            }
            store.checkpoint().await.expect("checkpoint");
            for (index, size) in [1, 2_000, 4_096, 20_000, 3_000].into_iter().enumerate() {
                put(&store, &format!("after{index}"), size).await;
            }
            put(&store, "after1", 500).await;
            let _ = store.delete_object("b", "before1", None, 6).await;
            let mut bytes = Vec::new();
            for page in 0..PAGES {
                let (result, buf) = store.device().read(page, IoBuf::zeroed(PAGE)).await;
                result.expect("read");
                bytes.extend_from_slice(buf.as_slice());
            }
            bytes
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = image().to_vec();
    // Patches: a page, an offset in it, a length, then that many bytes.
    let mut rest = data;
    while rest.len() >= 4 {
        let page = usize::from(rest[0]) % PAGES as usize;
        let offset = usize::from(u16::from_le_bytes([rest[1], rest[2]])) % PAGE;
        let len = usize::from(rest[3]).min(rest.len() - 4).min(PAGE - offset);
        let at = page * PAGE + offset;
        bytes[at..at + len].copy_from_slice(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    let disk = RamDisk::new(PAGE as u32, PAGES);
    run(async {
        for page in 0..PAGES {
            let at = page as usize * PAGE;
            let (result, _) = disk.write(page, IoBuf::from_slice(&bytes[at..at + PAGE])).await;
            result.expect("write");
        }
        let Ok((store, _)) = Store::open(disk).await else { return };
        let keys: Vec<String> =
            store.with_state(|state| state.buckets.get("b").map(|b| b.objects.keys().cloned().collect()).unwrap_or_default());
        for key in &keys {
            if let Ok(handle) = store.open_object("b", key, None) {
                if let Ok(mut reader) = handle.read(0..handle.meta.size_bytes) {
                    while let Some(piece) = reader.next().await {
                        if piece.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        let _ = store.check().await;
        put(&store, "new", 1_000).await;
        let _ = store.checkpoint().await;
    });
});
