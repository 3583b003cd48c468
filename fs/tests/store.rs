//! The store end to end on simulated disks: objects, versions, multipart,
//! quotas, listing, checkpoints, reopen, corruption.

mod common;

use std::future::Future;
use std::sync::Arc;

use common::{block_on, options, pattern, read_all, sim, tag_info, write_content};
use fs::catalog::{Capabilities, Quota};
use fs::index::{ListItem, ListQuery, list};
use fs::record::UploadTemplate;
use fs::state::MetaError;
use fs::store::{FormatOptions, LookupError, Store, StoreError};
use storage::block::{RamDisk, SimDisk};
use storage::version::{VersionId, Versioning};

async fn put(store: &Store<Arc<SimDisk>>, bucket: &str, key: &str, tag: u64, size: u64) -> VersionId {
    let written = write_content(store, tag, 0..size).await.unwrap();
    store.put_object(bucket, key, written, tag_info(tag), 2_000 + tag).await.unwrap().0
}

#[test]
fn objects_survive_reopen_with_the_right_bytes() {
    let disk = sim(2048, 1);
    block_on(async {
        let store = Store::format(disk.clone(), options()).await.unwrap();
        store.create_bucket("photos", "alice", 5).await.unwrap();
        let sizes = [0u64, 1, 4095, 4096, 4097, 65_535, 65_536, 65_537, 200_000];
        for (tag, size) in sizes.iter().enumerate() {
            put(&store, "photos", &format!("k{tag}"), tag as u64, *size).await;
        }
        drop(store);
        let (store, report) = Store::open(disk.clone()).await.unwrap();
        assert!(report.replayed_records > 0 || report.checkpoint_seq > 0);
        for (tag, size) in sizes.iter().enumerate() {
            let bytes = read_all(&store, "photos", &format!("k{tag}"), None).await.unwrap();
            assert_eq!(bytes, pattern(tag as u64, 0..*size), "object k{tag}");
            let (_, meta) = store.head_object("photos", &format!("k{tag}"), None).unwrap();
            assert_eq!(meta.etag.len(), 32);
        }
        let report = store.check().await;
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        // 1 KiB costs one page, not a chunk.
        let one_page = store.free_pages();
        put(&store, "photos", "small", 99, 1024).await;
        assert_eq!(one_page - store.free_pages(), 1);
    });
}

#[test]
fn ranges_and_etag_match_s3() {
    let disk = Arc::new(RamDisk::new(512, 8192));
    block_on(async {
        let store = Store::format(disk, options()).await.unwrap();
        store.create_bucket("b", "o", 1).await.unwrap();
        let mut writer = store.writer();
        writer.write(b"hello world").await.unwrap();
        let written = writer.finish().await.unwrap();
        let (_, meta) = store.put_object("b", "k", written, Default::default(), 3).await.unwrap();
        assert_eq!(meta.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        let written = write_content(&store, 5, 0..300_000).await.unwrap();
        store.put_object("b", "big", written, Default::default(), 3).await.unwrap();
        let handle = store.open_object("b", "big", None).unwrap();
        for range in [0..1, 65_530..65_540, 131_072..262_145, 299_999..300_000, 7..7] {
            let mut reader = handle.read(range.clone()).unwrap();
            let mut got = Vec::new();
            while let Some(piece) = reader.next().await {
                got.extend_from_slice(piece.unwrap().as_slice());
            }
            assert_eq!(got, pattern(5, range.clone()), "range {range:?}");
        }
        assert!(handle.read(0..300_001).is_err());
    });
}

#[test]
fn versioning_rules_and_delete_markers() {
    let disk = sim(2048, 2);
    block_on(async {
        let store = Store::format(disk.clone(), options()).await.unwrap();
        store.create_bucket("v", "o", 1).await.unwrap();
        let null = put(&store, "v", "k", 1, 10).await;
        assert_eq!(null, VersionId::Null);
        store.set_versioning("v", Versioning::Enabled).await.unwrap();
        let v2 = put(&store, "v", "k", 2, 20).await;
        let outcome = store.delete_object("v", "k", None, 50).await.unwrap();
        let marker = outcome.marker.unwrap();
        assert!(matches!(store.head_object("v", "k", None), Err(LookupError::DeleteMarker { .. })));
        assert_eq!(read_all(&store, "v", "k", Some(v2)).await.unwrap(), pattern(2, 0..20));
        assert_eq!(read_all(&store, "v", "k", Some(VersionId::Null)).await.unwrap(), pattern(1, 0..10));
        store.delete_object("v", "k", Some(marker), 51).await.unwrap();
        assert_eq!(store.head_object("v", "k", None).unwrap().0, v2);
        assert_eq!(
            store.set_versioning("v", Versioning::Unversioned).await,
            Err(StoreError::Meta(MetaError::InvalidVersioningChange))
        );
        store.expire_versions("v", "k", vec![VersionId::Null]).await.unwrap();
        drop(store);
        let (store, _) = Store::open(disk).await.unwrap();
        let ids = store.with_state(|state| {
            state.buckets["v"].objects["k"].entries().iter().map(|entry| entry.id()).collect::<Vec<_>>()
        });
        assert_eq!(ids, [v2]);
        assert!(store.check().await.problems.is_empty());
    });
}

#[test]
fn multipart_is_metadata_only_and_checked() {
    let disk = sim(4096, 3);
    block_on(async {
        let store = Store::format(disk.clone(), options()).await.unwrap();
        store.create_bucket("m", "o", 1).await.unwrap();
        let upload = store
            .create_multipart("m", "big", UploadTemplate { content_type: None, headers: vec![] }, 9)
            .await
            .unwrap();
        let sizes = [20_000u64, 70_000, 5];
        let mut etags = Vec::new();
        let mut offset = 0;
        for (index, size) in sizes.iter().enumerate() {
            let written = write_content(&store, 42, offset..offset + size).await.unwrap();
            let part = store.put_part(&upload, index as u32 + 1, written, vec![], 10).await.unwrap();
            etags.push((index as u32 + 1, fs::state::hex(&part.md5)));
            offset += size;
        }
        let free_before = store.free_pages();
        let bad = vec![(2, etags[1].1.clone()), (1, etags[0].1.clone())];
        assert_eq!(
            store.complete_multipart(&upload, &bad, 11).await,
            Err(StoreError::Meta(MetaError::InvalidPartOrder))
        );
        let (_, _, _, meta) = store.complete_multipart(&upload, &etags, 12).await.unwrap();
        assert_eq!(store.free_pages(), free_before, "completion copies nothing");
        assert!(meta.etag.ends_with("-3"));
        assert_eq!(meta.part_sizes, sizes);
        assert_eq!(read_all(&store, "m", "big", None).await.unwrap(), pattern(42, 0..offset));
        // A too-small part that is not the last one.
        let upload = store
            .create_multipart("m", "small", UploadTemplate { content_type: None, headers: vec![] }, 9)
            .await
            .unwrap();
        let mut parts = Vec::new();
        for number in 1..=2 {
            let written = write_content(&store, 7, 0..100).await.unwrap();
            let part = store.put_part(&upload, number, written, vec![], 10).await.unwrap();
            parts.push((number, fs::state::hex(&part.md5)));
        }
        assert_eq!(
            store.complete_multipart(&upload, &parts, 11).await,
            Err(StoreError::Meta(MetaError::EntityTooSmall { part_number: 1 }))
        );
        store.abort_multipart(&upload).await.unwrap();
        assert_eq!(store.delete_bucket("m").await, Err(StoreError::Meta(MetaError::BucketNotEmpty)));
        assert!(store.check().await.problems.is_empty());
    });
}

#[test]
fn quotas_bucket_rules_and_listing() {
    let disk = sim(2048, 4);
    block_on(async {
        let store = Store::format(disk.clone(), options()).await.unwrap();
        store.create_bucket("q", "alice", 1).await.unwrap();
        assert_eq!(
            store.create_bucket("q", "alice", 1).await,
            Err(StoreError::Meta(MetaError::BucketAlreadyOwnedByYou))
        );
        assert_eq!(store.create_bucket("q", "bob", 1).await, Err(StoreError::Meta(MetaError::BucketAlreadyExists)));
        store.set_quota("q", Quota { max_bytes: Some(10_000), max_objects: Some(3) }).await.unwrap();
        put(&store, "q", "a/1", 1, 4_000).await;
        put(&store, "q", "a/2", 2, 4_000).await;
        let free = store.free_pages();
        let written = write_content(&store, 3, 0..4_000).await.unwrap();
        let refused = store.put_object("q", "c", written, tag_info(3), 5).await;
        assert_eq!(refused.err(), Some(StoreError::Meta(MetaError::QuotaExceeded)));
        assert_eq!(store.free_pages(), free, "a refused upload gives its space back");
        put(&store, "q", "a/1", 4, 3_000).await; // Overwrite within quota.
        put(&store, "q", "b", 5, 100).await;
        let page = store.with_state(|state| {
            let query = ListQuery { prefix: "", delimiter: Some("/"), start_after: None, max_keys: 10 };
            list(&state.buckets["q"].objects, &query, |v| v.current_object().is_some())
                .items
                .iter()
                .map(|item| match item {
                    ListItem::Key(key, _) => key.to_string(),
                    ListItem::CommonPrefix(prefix) => prefix.clone(),
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(page, ["a/", "b"]);
        store.rename_bucket("q", "r").await.unwrap();
        assert_eq!(read_all(&store, "r", "b", None).await.unwrap(), pattern(5, 0..100));
        drop(store);
        let (store, _) = Store::open(disk).await.unwrap();
        assert!(store.with_state(|state| state.buckets.contains_key("r") && !state.buckets.contains_key("q")));
    });
}

#[test]
fn checkpoints_keep_replay_short_and_reuse_space() {
    let disk = sim(4096, 5);
    block_on(async {
        let store = Store::format(disk.clone(), options()).await.unwrap();
        store.create_bucket("c", "o", 1).await.unwrap();
        let empty = store.free_pages();
        for round in 0..300u64 {
            put(&store, "c", &format!("k{}", round % 10), round, 5_000 + round).await;
        }
        for key in 0..10 {
            store.delete_object("c", &format!("k{key}"), None, 9).await.unwrap();
        }
        store.checkpoint().await.unwrap();
        let checkpoint_pages = empty - store.free_pages();
        assert!(checkpoint_pages <= 4, "only the checkpoint stays allocated: {checkpoint_pages}");
        drop(store);
        let (store, report) = Store::open(disk).await.unwrap();
        assert!(report.generation > 2, "checkpoints were written: {report:?}");
        assert!(report.replayed_records < 50, "replay stays short: {report:?}");
        assert!(store.check().await.problems.is_empty());
    });
}

#[test]
fn corruption_is_reported_never_returned() {
    let disk = sim(2048, 6);
    block_on(async {
        let store = Store::format(disk.clone(), options()).await.unwrap();
        store.create_bucket("x", "o", 1).await.unwrap();
        put(&store, "x", "k", 1, 100_000).await;
        let (_, meta) = store.head_object("x", "k", None).unwrap();
        let second = meta.chunks[1];
        disk.flip_bit(second.extent.start_page as usize * 4096 + 17, 3);
        let error = read_all(&store, "x", "k", None).await.unwrap_err();
        assert!(error.contains("Corrupt") && error.contains("chunk_index: 1"), "{error}");
        let report = store.check().await;
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        // The store goes on serving the rest.
        put(&store, "x", "other", 2, 10).await;
        assert_eq!(read_all(&store, "x", "other", None).await.unwrap(), pattern(2, 0..10));
    });
}

#[test]
fn a_torn_superblock_falls_back_to_the_other_copy() {
    let disk = sim(2048, 7);
    block_on(async {
        let store = Store::format(disk.clone(), options()).await.unwrap();
        store.create_bucket("s", "o", 1).await.unwrap();
        put(&store, "s", "k", 1, 10).await;
        store.checkpoint().await.unwrap();
        put(&store, "s", "k2", 2, 10).await;
        // The open found the superblock's newest copy and wrote the next.
        let generation = Store::open(disk.clone()).await.unwrap().1.generation + 1;
        disk.flip_bit((generation % 2) as usize * 4096 + 100, 1);
        let (store, report) = Store::open(disk.clone()).await.unwrap();
        assert_eq!(report.generation, generation - 1);
        // The older checkpoint plus the longer replay give the same state.
        assert_eq!(read_all(&store, "s", "k2", None).await.unwrap(), pattern(2, 0..10));
        assert!(matches!(Store::open(Arc::new(RamDisk::new(4096, 100))).await, Err(StoreError::NotFormatted(_))));
    });
}

/// A journal big enough that no checkpoint takes pages during the test, so
/// free-page counts are exact.
fn roomy() -> FormatOptions {
    FormatOptions { journal_pages: Some(256), ..options() }
}

#[test]
fn expiring_noncurrent_versions_frees_their_chunks() {
    let disk = sim(4096, 8);
    block_on(async {
        let store = Store::format(disk.clone(), roomy()).await.unwrap();
        store.create_bucket("g", "o", 1).await.unwrap();
        store.set_versioning("g", Versioning::Enabled).await.unwrap();
        let empty = store.free_pages();
        // k: versions created at 2001..=2004 ms, 3 pages each.
        for tag in 1..=4 {
            put(&store, "g", "k", tag, 3 * 4096).await;
        }
        // m: one version (created at 2005), then a delete marker at 3000.
        put(&store, "g", "m", 5, 4096).await;
        store.delete_object("g", "m", None, 3_000).await.unwrap();
        assert_eq!(empty - store.free_pages(), 13);
        let versions_of = |key: &str| {
            store.with_state(|state| {
                state.buckets["g"].objects.get(key).map(|v| v.entries().iter().map(|e| e.id()).collect::<Vec<_>>())
            })
        };
        let k_before = versions_of("k").unwrap();

        // Keep one noncurrent version per key.
        assert_eq!(store.expire_noncurrent("g", |_, _, newer_noncurrent| newer_noncurrent >= 1).await, Ok(2));
        assert_eq!(versions_of("k").unwrap(), k_before[..2]);
        assert_eq!(empty - store.free_pages(), 7, "the two expired versions' chunks are free");
        // Noncurrent since before 2500 ms: k's third version only.
        assert_eq!(
            store.expire_noncurrent("g", |_, became_noncurrent_ms, _| became_noncurrent_ms < 2_500).await,
            Ok(1)
        );
        assert_eq!(empty - store.free_pages(), 4);
        // Everything noncurrent: m's object, then its marker, left alone.
        assert_eq!(store.expire_noncurrent("g", |_, _, _| true).await, Ok(2));
        assert_eq!(versions_of("m"), None);
        assert_eq!(versions_of("k").unwrap(), k_before[..1]);
        assert_eq!(empty - store.free_pages(), 3);
        assert_eq!(store.expire_noncurrent("g", |_, _, _| true).await, Ok(0));
        drop(store);
        let (store, _) = Store::open(disk).await.unwrap();
        assert_eq!(empty - store.free_pages(), 3, "the frees were journaled");
        assert_eq!(read_all(&store, "g", "k", None).await.unwrap(), pattern(4, 0..3 * 4096));
        assert!(store.check().await.problems.is_empty());
    });
}

#[test]
fn space_under_a_reader_is_reused_only_after_it_ends() {
    let disk = sim(2048, 9);
    block_on(async {
        let store = Store::format(disk.clone(), roomy()).await.unwrap();
        store.create_bucket("r", "o", 1).await.unwrap();
        put(&store, "r", "k", 1, 5 * 4096).await;
        let before_delete = store.free_pages();
        let handle = store.open_object("r", "k", None).unwrap();
        store.delete_object("r", "k", None, 5).await.unwrap();
        assert!(matches!(store.head_object("r", "k", None), Err(LookupError::NoSuchKey)));
        assert_eq!(store.free_pages(), before_delete, "the deleted object's pages wait for the reader");
        put(&store, "r", "other", 2, 4 * 4096).await;
        assert_eq!(store.free_pages(), before_delete - 4);
        let mut bytes = Vec::new();
        let mut reader = handle.read(0..5 * 4096).unwrap();
        while let Some(piece) = reader.next().await {
            bytes.extend_from_slice(piece.unwrap().as_slice());
        }
        assert_eq!(bytes, pattern(1, 0..5 * 4096), "the reader sees the deleted object's bytes");
        drop(handle);
        assert_eq!(store.free_pages(), before_delete + 5 - 4, "freed once the reader is gone");
        assert!(store.check().await.problems.is_empty());
    });
}

#[test]
fn quotas_count_objects_and_parts_in_progress() {
    let disk = sim(2048, 10);
    block_on(async {
        let store = Store::format(disk.clone(), roomy()).await.unwrap();
        store.create_bucket("q", "o", 1).await.unwrap();
        store.set_quota("q", Quota { max_bytes: None, max_objects: Some(2) }).await.unwrap();
        put(&store, "q", "a", 1, 100).await;
        put(&store, "q", "b", 2, 100).await;
        let written = write_content(&store, 3, 0..10).await.unwrap();
        let refused = store.put_object("q", "c", written, tag_info(3), 5).await;
        assert_eq!(refused.err(), Some(StoreError::Meta(MetaError::QuotaExceeded)));
        // Asked before the body is read, with the Content-Length.
        let early = |key: &str, size| store.with_state(|state| state.put_fits_quota("q", key, size));
        assert_eq!(early("c", 10), Err(MetaError::QuotaExceeded));
        assert_eq!(early("a", 200), Ok(()), "replacing an object adds none");
        assert_eq!(store.with_state(|state| state.put_fits_quota("nope", "a", 1)), Err(MetaError::NoSuchBucket));
        put(&store, "q", "a", 4, 200).await; // Replaces a: still two objects.

        store.set_quota("q", Quota { max_bytes: Some(50_000), max_objects: None }).await.unwrap();
        let template = UploadTemplate { content_type: None, headers: vec![] };
        let upload = store.create_multipart("q", "big", template, 9).await.unwrap();
        let written = write_content(&store, 5, 0..30_000).await.unwrap();
        store.put_part(&upload, 1, written, vec![], 10).await.unwrap();
        let free = store.free_pages();
        let written = write_content(&store, 5, 30_000..60_000).await.unwrap();
        let refused = store.put_part(&upload, 2, written, vec![], 10).await;
        assert_eq!(refused.err(), Some(StoreError::Meta(MetaError::QuotaExceeded)), "parts in progress count");
        assert_eq!(store.free_pages(), free, "the refused part's space is back");
        let usage = store.with_state(|state| state.buckets["q"].usage);
        assert_eq!((usage.bytes, usage.objects), (300, 2));
    });
}

#[test]
fn client_checksums_are_kept_with_objects_and_parts() {
    let disk = sim(2048, 11);
    let sums =
        |value: &str| vec![("CRC32C".to_string(), value.to_string()), ("SHA256".to_string(), "c2hh".to_string())];
    block_on(async {
        let store = Store::format(disk.clone(), roomy()).await.unwrap();
        store.create_bucket("c", "o", 1).await.unwrap();
        let written = write_content(&store, 1, 0..1000).await.unwrap();
        let info = fs::store::PutInfo { checksums: sums("AAAAAQ=="), ..tag_info(1) };
        store.put_object("c", "k", written, info, 5).await.unwrap();
        let template = UploadTemplate { content_type: None, headers: vec![] };
        let upload = store.create_multipart("c", "m", template, 9).await.unwrap();
        let written = write_content(&store, 2, 0..100).await.unwrap();
        store.put_part(&upload, 1, written, sums("AAAAAg=="), 10).await.unwrap();
        store.checkpoint().await.unwrap();
        let written = write_content(&store, 3, 0..100).await.unwrap();
        store.put_part(&upload, 2, written, sums("AAAAAw=="), 10).await.unwrap();
        drop(store);
        // From the checkpoint (object, part 1) and the journal (part 2).
        let (store, _) = Store::open(disk).await.unwrap();
        assert_eq!(store.head_object("c", "k", None).unwrap().1.checksums, sums("AAAAAQ=="));
        let parts = store.with_state(|state| {
            state.uploads[&upload].parts.values().map(|part| part.checksums.clone()).collect::<Vec<_>>()
        });
        assert_eq!(parts, [sums("AAAAAg=="), sums("AAAAAw==")]);
    });
}

#[test]
fn grants_and_renames_survive_reopen() {
    let disk = sim(2048, 12);
    block_on(async {
        let store = Store::format(disk.clone(), roomy()).await.unwrap();
        store.create_bucket("a", "alice", 1).await.unwrap();
        store.create_bucket("b", "alice", 1).await.unwrap();
        store.set_grant("a", "bob", Capabilities::READ.union(Capabilities::LIST)).await.unwrap();
        store.set_grant("a", "carol", Capabilities::WRITE).await.unwrap();
        store.set_grant("a", "carol", Capabilities::NONE).await.unwrap();
        assert_eq!(store.rename_bucket("a", "b").await, Err(StoreError::Meta(MetaError::BucketAlreadyExists)));
        let template = UploadTemplate { content_type: None, headers: vec![] };
        let upload = store.create_multipart("a", "k", template, 9).await.unwrap();
        store.rename_bucket("a", "c").await.unwrap();
        assert_eq!(store.delete_bucket("c").await, Err(StoreError::Meta(MetaError::BucketNotEmpty)));
        drop(store);
        let (store, _) = Store::open(disk).await.unwrap();
        store.with_state(|state| {
            assert!(!state.buckets.contains_key("a"));
            let bucket = &state.buckets["c"];
            assert_eq!(bucket.capabilities_of("alice"), Capabilities::ALL);
            assert_eq!(bucket.capabilities_of("bob"), Capabilities::READ.union(Capabilities::LIST));
            assert_eq!(bucket.capabilities_of("carol"), Capabilities::NONE, "revoked");
            assert_eq!(state.uploads[&upload].bucket, "c", "uploads move with their bucket");
        });
        store.abort_multipart(&upload).await.unwrap();
        store.delete_bucket("c").await.unwrap();
        assert_eq!(store.with_state(|state| state.buckets.keys().cloned().collect::<Vec<_>>()), ["b"]);
    });
}

#[test]
fn concurrent_puts_share_flushes() {
    let disk = sim(4096, 13);
    let store = block_on(Store::format(disk.clone(), roomy())).unwrap();
    block_on(store.create_bucket("g", "o", 1)).unwrap();
    let store = std::rc::Rc::new(store);
    // Requests complete after a yield, as a real device's do, so the
    // writers interleave while the committer waits for its flushes.
    disk.set_yielding(true);
    let flushes_before = disk.counts().1;
    let executor = runtime::executor::Executor::new();
    let handles: Vec<_> = (0..16u64)
        .map(|tag| {
            let store = store.clone();
            executor.spawn(async move {
                put(&store, "g", &format!("k{tag}"), tag, 5_000).await;
            })
        })
        .collect();
    while handles.iter().any(|handle| !handle.is_finished()) {
        assert!(executor.run_ready() > 0, "writers stuck");
    }
    let flushes = disk.counts().1 - flushes_before;
    assert!(flushes <= 8, "16 PUTs took {flushes} flushes; a batch per PUT takes 32");
    disk.set_yielding(false);
    for tag in 0..16 {
        assert_eq!(block_on(read_all(&store, "g", &format!("k{tag}"), None)).unwrap(), pattern(tag, 0..5_000));
    }
}

#[test]
fn a_journal_read_error_fails_the_open_instead_of_cutting_the_log() {
    // Journal pages start at page 2 (after both superblock copies); with
    // 4 KiB blocks a page is one LBA. Failing the third batch's page must not
    // look like the end of the log: the batches after it are acknowledged.
    let disk = sim(2048, 3);
    block_on(async {
        let store = Store::format(disk.clone(), options()).await.unwrap();
        store.create_bucket("b", "alice", 5).await.unwrap();
        for tag in 0..4 {
            put(&store, "b", &format!("k{tag}"), tag, 100).await;
        }
        drop(store);
        disk.fail_reads_at(2 + 2);
        assert!(matches!(Store::open(disk.clone()).await, Err(StoreError::Block(_) | StoreError::Object(_))));
    });
}

/// A store with bucket `b` whose 1 MiB journal carries objects of up to
/// 16 KiB and starts a write-back past 128 KiB waiting.
async fn logging_store(disk: &Arc<SimDisk>) -> Store<Arc<SimDisk>> {
    let options = FormatOptions { journal_pages: Some(256), ..options() };
    let store = Store::format(disk.clone(), options).await.unwrap();
    store.create_bucket("b", "o", 1).await.unwrap();
    store
}

#[test]
fn small_objects_travel_in_the_journal_and_reach_the_data_area() {
    let disk = sim(4096, 3);
    block_on(async {
        let store = logging_store(&disk).await;
        for tag in 0..10 {
            put(&store, "b", &format!("k{tag}"), tag, 3_000).await;
        }
        assert_eq!(store.commit_counters().logged_chunks, 10);
        assert_eq!(store.unwritten(), (10 * 4096, 10));
        // Readable at once, from memory: the data area does not hold them yet.
        for tag in 0..10 {
            assert_eq!(read_all(&store, "b", &format!("k{tag}"), None).await.unwrap(), pattern(tag, 0..3_000));
            let (_, meta) = store.head_object("b", &format!("k{tag}"), None).unwrap();
            assert!(storage::object::read_chunk(store.device(), &meta.chunks[0], 0).await.is_err());
        }

        // A power cut before any write-back: replay finds them in the journal.
        drop(store);
        disk.power_cut();
        disk.restart();
        let (store, _) = Store::open(disk.clone()).await.unwrap();
        assert_eq!(store.unwritten(), (10 * 4096, 10));
        for tag in 0..10 {
            assert_eq!(read_all(&store, "b", &format!("k{tag}"), None).await.unwrap(), pattern(tag, 0..3_000));
        }

        // Past an eighth of the journal (128 KiB) waiting, a PUT writes them back.
        for tag in 10..50 {
            put(&store, "b", &format!("k{tag}"), tag, 4_096).await;
        }
        let counters = store.commit_counters();
        assert!(counters.write_backs >= 1 && counters.written_back_chunks >= 32, "{counters:?}");
        assert!(store.unwritten().0 <= 128 * 1024, "{:?}", store.unwritten());

        // A checkpoint writes back everything before replay skips the batches.
        store.checkpoint().await.unwrap();
        assert_eq!(store.unwritten(), (0, 0));
        for tag in 0..50 {
            let (_, meta) = store.head_object("b", &format!("k{tag}"), None).unwrap();
            let on_disk = storage::object::read_chunk(store.device(), &meta.chunks[0], 0).await.unwrap();
            let size = if tag < 10 { 3_000 } else { 4_096 };
            assert_eq!(on_disk.as_slice(), pattern(tag, 0..size).as_slice(), "k{tag}");
        }
        drop(store);
        disk.power_cut();
        disk.restart();
        let (store, _) = Store::open(disk.clone()).await.unwrap();
        assert_eq!(store.unwritten(), (0, 0));
        let report = store.check().await;
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    });
}

#[test]
fn an_older_volume_is_upgraded_before_anything_new_is_written() {
    use storage::block::{BlockDevice, IoBuf};
    for (seed, version) in [(4, 1u32), (14, 2)] {
        let disk = sim(2048, seed);
        block_on(async {
            let store = Store::format(disk.clone(), options()).await.unwrap();
            store.create_bucket("b", "o", 1).await.unwrap();
            put(&store, "b", "k", 1, 100_000).await;
            drop(store);
            // Both superblock copies as a build of that format wrote them.
            for page in 0..2u64 {
                let (result, mut buf) = disk.read(page, IoBuf::zeroed(4096)).await;
                result.unwrap();
                let bytes = buf.as_mut_slice();
                bytes[8..12].copy_from_slice(&version.to_le_bytes());
                let crc = storage::checksum::crc32c(&bytes[..4092]);
                bytes[4092..].copy_from_slice(&crc.to_le_bytes());
                disk.write(page, buf).await.0.unwrap();
            }
            disk.flush().await.unwrap();
            let (store, _) = Store::open(disk.clone()).await.unwrap();
            for page in 0..2u64 {
                let (result, buf) = disk.read(page, IoBuf::zeroed(4096)).await;
                result.unwrap();
                assert_eq!(buf.as_slice()[8..12], fs::layout::FORMAT_VERSION.to_le_bytes(), "copy {page}");
            }
            assert_eq!(read_all(&store, "b", "k", None).await.unwrap(), pattern(1, 0..100_000));
        });
    }
}

#[test]
fn overwrites_under_an_open_reader_do_not_pile_up_in_memory() {
    let disk = sim(4096, 5);
    block_on(async {
        let store = logging_store(&disk).await;
        put(&store, "b", "held", 7, 3_000).await;
        // A slow reader pins the state: every chunk given up from now on
        // stays on the device (and, if not yet written back, in memory
        // until a write-back puts it there).
        let handle = store.open_object("b", "held", None).unwrap();
        let mut most = 0;
        for round in 0..100u64 {
            for key in 0..10u64 {
                put(&store, "b", &format!("k{key}"), round * 10 + key, 3_000).await;
                most = most.max(store.unwritten().0);
            }
        }
        // Bounded memory, and write-backs that stay batched: chunks given up
        // are written back too (else they would sit in memory under the
        // reader, and once they alone passed the threshold every PUT would
        // start a write-back of its own chunk).
        assert!(most <= 128 * 1024 + 4096, "{most} bytes waited in memory");
        let counters = store.commit_counters();
        assert!(counters.write_backs <= 40, "{counters:?}");
        let mut reader = handle.read(0..3_000).unwrap();
        let mut bytes = Vec::new();
        while let Some(piece) = reader.next().await {
            bytes.extend_from_slice(piece.unwrap().as_slice());
        }
        assert_eq!(bytes, pattern(7, 0..3_000));
        drop(handle);
        for key in 0..10u64 {
            assert_eq!(read_all(&store, "b", &format!("k{key}"), None).await.unwrap(), pattern(990 + key, 0..3_000));
        }
        let report = store.check().await;
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    });
}

/// Every page of `disk`, as the device returns it now.
async fn pages_of(disk: &SimDisk) -> Vec<Vec<u8>> {
    use storage::block::{BlockDevice, IoBuf};
    let mut pages = Vec::new();
    for page in 0..disk.geometry().capacity_blocks {
        let (result, buf) = disk.read(page, IoBuf::zeroed(4096)).await;
        result.unwrap();
        pages.push(buf.as_slice().to_vec());
    }
    pages
}

/// With two batches in flight, a cut can keep batch n+1 whole while
/// batch n is lost. Replay stops at n; the next session then writes its
/// own batch n there, here byte for byte the same records (same key,
/// bytes, time and extent). The old n+1 must not chain onto it, also when
/// the newest superblock copy (the lost session's) reads back corrupt and
/// the open starts from the copy before it.
fn a_batch_left_behind_a_lost_one_stays_dead(corrupt_newest_superblock: bool) {
    use fs::layout::Superblock;
    use storage::block::{BlockDevice, IoBuf};
    let disk = sim(2048, 6);
    block_on(async {
        let store = Store::format(disk.clone(), options()).await.unwrap();
        store.create_bucket("b", "o", 1).await.unwrap();
        put(&store, "b", "before", 1, 100).await;
        let before_n = pages_of(&disk).await;
        put(&store, "b", "x", 2, 100).await;
        let after_n = pages_of(&disk).await;
        put(&store, "b", "y", 3, 100).await;
        drop(store);
        // Batch n never reached the media; n+1 did.
        let lost: Vec<usize> = (0..before_n.len()).filter(|&page| before_n[page] != after_n[page]).collect();
        assert!(!lost.is_empty());
        for &page in &lost {
            disk.write(page as u64, IoBuf::from_slice(&before_n[page])).await.0.unwrap();
        }
        disk.flush().await.unwrap();
        if corrupt_newest_superblock {
            let generation = |page: usize| Superblock::decode_checked(&before_n[page], 2048).unwrap().generation;
            let newest = if generation(0) > generation(1) { 0 } else { 1 };
            disk.flip_bit(newest * 4096 + 8, 0);
        }

        let (store, _) = Store::open(disk.clone()).await.unwrap();
        assert!(store.head_object("b", "x", None).is_err());
        assert!(store.head_object("b", "y", None).is_err(), "y followed a lost batch");
        put(&store, "b", "x", 2, 100).await;
        drop(store);
        // The new batch n sits where the lost one would have been.
        let rewritten = pages_of(&disk).await;
        assert!(lost.iter().all(|&page| rewritten[page] != before_n[page]));

        let (store, _) = Store::open(disk.clone()).await.unwrap();
        assert_eq!(read_all(&store, "b", "x", None).await.unwrap(), pattern(2, 0..100));
        assert!(store.head_object("b", "y", None).is_err(), "the old batch n+1 chained to the new batch n");
        let report = store.check().await;
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    });
}

#[test]
fn a_batch_left_behind_a_lost_one_never_chains_to_the_next_session() {
    a_batch_left_behind_a_lost_one_stays_dead(false);
}

#[test]
fn a_batch_left_behind_a_lost_one_stays_dead_when_the_newest_superblock_copy_is_corrupt() {
    a_batch_left_behind_a_lost_one_stays_dead(true);
}

/// A simulated disk whose `fail_at`-th journal write fails; it counts the
/// journal writes issued after that failure was reported.
struct FailingJournal {
    disk: Arc<SimDisk>,
    journal: std::ops::Range<u64>,
    fail_at: u64,
    journal_writes: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicBool,
    writes_after_failure: std::sync::atomic::AtomicU64,
}

impl storage::block::BlockDevice for FailingJournal {
    fn geometry(&self) -> storage::block::Geometry {
        self.disk.geometry()
    }

    fn read(&self, lba: u64, buf: storage::block::IoBuf) -> impl Future<Output = storage::block::IoResult> {
        self.disk.read(lba, buf)
    }

    fn write(&self, lba: u64, buf: storage::block::IoBuf) -> impl Future<Output = storage::block::IoResult> {
        use std::sync::atomic::Ordering;
        let in_journal = self.journal.contains(&lba);
        let fail = in_journal && self.journal_writes.fetch_add(1, Ordering::Relaxed) == self.fail_at;
        if in_journal && self.failed.load(Ordering::Relaxed) {
            self.writes_after_failure.fetch_add(1, Ordering::Relaxed);
        }
        // Err: the buffer of the write that fails.
        let write = if fail { Err(buf) } else { Ok(self.disk.write(lba, buf)) };
        async move {
            match write {
                Ok(write) => write.await,
                Err(buf) => {
                    // A read takes as long as a write: the failure is
                    // reported while other requests are in flight.
                    let _ = self.disk.read(lba, storage::block::IoBuf::zeroed(buf.len())).await;
                    self.failed.store(true, Ordering::Relaxed);
                    (Err(storage::block::BlockError::Io { lba }), buf)
                }
            }
        }
    }

    fn flush(&self) -> impl Future<Output = Result<(), storage::block::BlockError>> {
        self.disk.flush()
    }
}

#[test]
fn no_journal_batch_starts_after_a_failed_one_stopped_the_store() {
    use std::sync::atomic::Ordering;
    let disk = sim(2048, 17);
    let options = options();
    block_on(Store::format(disk.clone(), options)).unwrap();
    // Journal pages follow the two superblock copies; a page is one LBA.
    let journal = 2..2 + options.journal_pages.unwrap();
    // Batches overlapped in these runs (so a second committer could have
    // gone on after the failure).
    let mut batches_overlapped = false;
    for fail_at in 1..8 {
        let device = Arc::new(FailingJournal {
            disk: disk.clone(),
            journal: journal.clone(),
            fail_at,
            journal_writes: Default::default(),
            failed: Default::default(),
            writes_after_failure: Default::default(),
        });
        let (store, _) = block_on(Store::open(device.clone())).unwrap();
        if fail_at == 1 {
            block_on(store.create_bucket("b", "o", 1)).unwrap();
        }
        let store = std::rc::Rc::new(store);
        disk.set_yielding(true);
        let executor = runtime::executor::Executor::new();
        let handles: Vec<_> = (0..32u64)
            .map(|tag| {
                let store = store.clone();
                executor.spawn(async move {
                    for round in 0..4 {
                        let written = write_content(&store, tag, 0..100).await?;
                        let key = format!("k{tag}-{round}");
                        store.put_object("b", &key, written, tag_info(tag), 2_000 + tag).await?;
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .collect();
        while handles.iter().any(|handle| !handle.is_finished()) {
            assert!(executor.run_ready() > 0, "writers stuck");
        }
        disk.set_yielding(false);
        assert!(device.failed.load(Ordering::Relaxed), "journal write {fail_at} was issued and failed");
        assert_eq!(device.writes_after_failure.load(Ordering::Relaxed), 0, "fail_at {fail_at}");
        batches_overlapped |= store.commit_counters().overlapped_batches > 0;
    }
    assert!(batches_overlapped);
}

#[test]
fn requests_go_on_while_a_checkpoint_image_is_serialized() {
    let disk = sim(4096, 21);
    let store = block_on(Store::format(disk.clone(), roomy())).unwrap();
    block_on(async {
        store.create_bucket("i", "o", 1).await.unwrap();
        for tag in 0..300u64 {
            put(&store, "i", &format!("k{tag:03}"), tag, 100).await;
        }
    });
    // Ten keys a slice: the image of 300 takes 30, with a yield after each.
    store.set_snapshot_step_keys(10);
    let store = std::rc::Rc::new(store);
    disk.set_yielding(true);
    let executor = runtime::executor::Executor::new();
    let checkpoint_done = std::rc::Rc::new(std::cell::Cell::new(false));
    let checkpoint = {
        let (store, done) = (store.clone(), checkpoint_done.clone());
        executor.spawn(async move {
            store.checkpoint().await.unwrap();
            done.set(true);
        })
    };
    let writer = {
        let store = store.clone();
        executor.spawn(async move {
            let mut during = 0u64;
            let mut tag = 1_000u64;
            while !checkpoint_done.get() {
                // Overwrites and deletes of keys on both sides of the
                // image's progress, and new keys.
                put(&store, "i", &format!("k{:03}", tag % 300), tag, 100).await;
                store.delete_object("i", &format!("k{:03}", (tag * 7) % 300), None, 9).await.unwrap();
                put(&store, "i", &format!("new{tag}"), tag, 100).await;
                during += 1;
                tag += 1;
            }
            during
        })
    };
    while !writer.is_finished() || !checkpoint.is_finished() {
        assert!(executor.run_ready() > 0, "tasks stuck");
    }
    let rounds = block_on(writer);
    assert!(rounds >= 3, "requests completed while the image was made: {rounds}");
    assert!(store.commit_counters().records_beside_images >= 3, "{:?}", store.commit_counters());
    disk.set_yielding(false);
    let expected = store.with_state(|state| postcard::to_allocvec(state).unwrap());
    let store = std::rc::Rc::try_unwrap(store).ok().unwrap();
    drop(store);
    block_on(async {
        let (store, report) = Store::open(disk).await.unwrap();
        assert!(report.checkpoint_seq > 300, "the checkpoint was written: {report:?}");
        assert!(store.check().await.problems.is_empty());
        // What the checkpoint holds plus the records after it is exactly
        // the state before the store closed.
        assert_eq!(store.with_state(|state| postcard::to_allocvec(state).unwrap()), expected);
    });
}

#[test]
fn a_written_object_is_durable_with_one_flush() {
    let disk = sim(2048, 21);
    block_on(async {
        let store = Store::format(disk.clone(), options()).await.unwrap();
        store.create_bucket("b", "o", 1).await.unwrap();
        let before = store.commit_counters();
        put(&store, "b", "k", 1, 100_000).await;
        let after = store.commit_counters();
        // Its chunks were written, not logged: one batch, flagged for replay
        // to verify them, and the flush after it (not one before it too).
        assert_eq!(after.logged_chunks, before.logged_chunks);
        assert_eq!((after.batches - before.batches, after.flushes - before.flushes), (1, 1));
        assert_eq!(after.verified_batches - before.verified_batches, 1);
        drop(store);
        let (store, report) = Store::open(disk.clone()).await.unwrap();
        assert_eq!(report.verified_batches, 1, "{report:?}");
        assert_eq!(read_all(&store, "b", "k", None).await.unwrap(), pattern(1, 0..100_000));
    });
}

/// The last batch of a log, flagged for verification, with one of its
/// chunks not matching: what a cut between its write and its flush leaves
/// when the journal write reached the media and a data write did not
/// (here a bit flip stands in for the missing write).
#[test]
fn replay_ends_before_a_batch_whose_written_chunk_did_not_reach_the_media() {
    let disk = sim(2048, 22);
    block_on(async {
        let store = Store::format(disk.clone(), options()).await.unwrap();
        store.create_bucket("b", "o", 1).await.unwrap();
        put(&store, "b", "kept", 1, 50_000).await;
        // This batch vouches for the one before it.
        store.create_bucket("c", "o", 2).await.unwrap();
        put(&store, "b", "lost", 2, 100_000).await;
        let lost = store.head_object("b", "lost", None).unwrap().1.chunks[1];
        let kept = store.head_object("b", "kept", None).unwrap().1.chunks[0];
        drop(store);
        disk.flip_bit(lost.extent.start_page as usize * 4096 + 5, 2);
        // A chunk of a vouched batch: corruption, reported by reads, never
        // the end of the log.
        disk.flip_bit(kept.extent.start_page as usize * 4096 + 9, 4);
        let (store, report) = Store::open(disk.clone()).await.unwrap();
        assert!(matches!(report.end, fs::journal::BatchEnd::UnflushedData { .. }), "{report:?}");
        assert_eq!(report.verified_batches, 1, "{report:?}");
        assert!(store.head_object("b", "lost", None).is_err());
        assert!(store.with_state(|state| state.buckets.contains_key("c")));
        let error = read_all(&store, "b", "kept", None).await.unwrap_err();
        assert!(error.contains("Corrupt"), "{error}");
        // The log goes on from there: the next batch takes the dropped one's
        // place, and a reopen replays it.
        put(&store, "b", "next", 3, 100_000).await;
        drop(store);
        let (store, report) = Store::open(disk.clone()).await.unwrap();
        assert!(!matches!(report.end, fs::journal::BatchEnd::UnflushedData { .. }), "{report:?}");
        assert_eq!(read_all(&store, "b", "next", None).await.unwrap(), pattern(3, 0..100_000));
        assert!(store.head_object("b", "lost", None).is_err());
        let report = store.check().await;
        assert_eq!(report.problems.len(), 1, "only the flipped chunk of kept: {:?}", report.problems);
    });
}

/// A flagged batch whose record names a chunk no store could have written
/// (past the device, or larger than a chunk): the open refuses it without
/// reading or allocating what it names.
#[test]
fn replay_refuses_a_flagged_record_with_an_impossible_chunk() {
    use fs::journal::{self, BatchHeader, BatchKind, BatchState};
    use fs::record::JournalRecord;
    use storage::block::{BlockDevice, IoBuf};
    for (seed, start_page, pages) in [(23, u64::MAX - 1, 1u32), (24, 100, 1 << 30), (25, 0, 1)] {
        let disk = sim(2048, seed);
        block_on(async {
            let store = Store::format(disk.clone(), options()).await.unwrap();
            store.create_bucket("b", "o", 1).await.unwrap();
            put(&store, "b", "k", 1, 100_000).await;
            drop(store);
            // The newest records batch in the journal: the PUT's.
            let mut newest: Option<(u64, BatchHeader, Vec<u8>)> = None;
            for page in 2..2048u64 {
                let (result, buf) = disk.read(page, IoBuf::zeroed(4096)).await;
                result.unwrap();
                let bytes = buf.as_slice();
                let (seq, chain) = (u64::from_le_bytes(bytes[16..24].try_into().unwrap()), bytes[40..44].to_vec());
                let chain = u32::from_le_bytes(chain.try_into().unwrap());
                if let Ok(header) = BatchHeader::decode_checked(bytes, seq, chain)
                    && header.kind == BatchKind::Records
                    && newest.as_ref().is_none_or(|(_, old, _)| old.first_seq < seq)
                {
                    let (result, whole) = disk.read(page, IoBuf::zeroed(header.pages as usize * 4096)).await;
                    result.unwrap();
                    newest = Some((page, header, whole.as_slice().to_vec()));
                }
            }
            let (page, header, bytes) = newest.unwrap();
            assert!(header.verify_data);
            let mut batch = header.records(&bytes).unwrap().unwrap();
            for record in &mut batch.records {
                if let JournalRecord::ObjectPut { object, .. } = record {
                    object.chunks[0].extent.start_page = start_page;
                    object.chunks[0].extent.pages = pages;
                }
            }
            let encoded: Vec<Vec<u8>> = batch.records.iter().map(journal::encode_record).collect();
            let encoded: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            let state = BatchState {
                images_durable_seq: header.images_durable_seq,
                durable_through: header.durable_through,
                verify_data: true,
            };
            let (forged, _) =
                journal::encode_batch(header.session, header.first_seq, header.prev_crc, &encoded, &[], state);
            disk.write(page, forged).await.0.unwrap();
            disk.flush().await.unwrap();
            let error = Store::open(disk.clone()).await.err();
            assert!(matches!(error, Some(StoreError::CorruptJournal { .. })), "{error:?}");
        });
    }
}

/// Small objects travel in the journal while the committer is idle, and are
/// written beside the journal batch once many records wait (see
/// `fs::store::LOG_BUSY_RECORDS`): everything reads back either way, also
/// after a reopen.
#[test]
fn small_objects_are_logged_when_idle_and_written_when_many_wait() {
    let disk = sim(4096, 26);
    let store = std::rc::Rc::new(block_on(logging_store(&disk)));
    block_on(put(&store, "b", "alone", 99, 3_000));
    assert_eq!(store.commit_counters().logged_chunks, 1);
    disk.set_yielding(true);
    let executor = runtime::executor::Executor::new();
    let handles: Vec<_> = (0..48u64)
        .map(|tag| {
            let store = store.clone();
            executor.spawn(async move {
                for round in 0..3 {
                    put(&store, "b", &format!("k{tag}-{round}"), tag + 100 * round, 3_000).await;
                }
            })
        })
        .collect();
    while handles.iter().any(|handle| !handle.is_finished()) {
        assert!(executor.run_ready() > 0, "writers stuck");
    }
    disk.set_yielding(false);
    let counters = store.commit_counters();
    // Some went each way.
    assert!(counters.logged_chunks > 1 && counters.logged_chunks < 1 + 144, "{counters:?}");
    assert!(counters.verified_batches > 0, "{counters:?}");
    drop(handles);
    drop(executor);
    let store = std::rc::Rc::into_inner(store).unwrap();
    drop(store);
    let (store, _) = block_on(Store::open(disk.clone())).unwrap();
    for tag in 0..48u64 {
        for round in 0..3 {
            let key = format!("k{tag}-{round}");
            assert_eq!(block_on(read_all(&store, "b", &key, None)).unwrap(), pattern(tag + 100 * round, 0..3_000));
        }
    }
    assert!(block_on(store.check()).problems.is_empty());
}
