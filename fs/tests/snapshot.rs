//! A checkpoint image made in slices while records keep applying is
//! byte for byte the state at its start, as `postcard` writes it whole.

use fs::record::{JournalRecord, ObjectMeta, PartMeta, UploadTemplate};
use fs::snapshot::Snapshot;
use fs::state::MetaState;
use proptest::prelude::*;
use storage::object::ChunkRef;
use storage::space::Extent;
use storage::version::{VersionId, Versioning};

/// One change, chosen from the state so that most of them apply.
#[derive(Clone, Debug)]
struct Op {
    kind: u8,
    bucket: u8,
    key: u8,
    arg: u8,
}

fn op() -> impl Strategy<Value = Op> {
    (0u8..12, 0u8..4, 0u8..40, any::<u8>()).prop_map(|(kind, bucket, key, arg)| Op { kind, bucket, key, arg })
}

fn object(size: u64, page: u64) -> ObjectMeta {
    ObjectMeta {
        size_bytes: size,
        etag: format!("{size:032x}"),
        last_modified_ms: size * 7,
        content_type: size.is_multiple_of(3).then(|| String::from("text/plain")),
        headers: vec![(String::from("x-amz-meta-n"), size.to_string())],
        checksums: Vec::new(),
        chunks: vec![ChunkRef { extent: Extent { start_page: page, pages: 1 }, len_bytes: size as u32, crc32c: 9 }],
        part_sizes: Vec::new(),
    }
}

fn record(state: &MetaState, op: &Op, counter: u64) -> JournalRecord {
    let bucket = format!("b{}", op.bucket);
    let key = format!("dir{}/k{:02}", op.key % 3, op.key);
    let some_version = |state: &MetaState| {
        state
            .buckets
            .get(&bucket)
            .and_then(|b| b.objects.get(&key))
            .and_then(|versions| {
                let entries = versions.entries();
                (!entries.is_empty()).then(|| entries[usize::from(op.arg) % entries.len()].id())
            })
            .unwrap_or(VersionId::Null)
    };
    let some_upload = |state: &MetaState| {
        let ids: Vec<&String> = state.uploads.keys().collect();
        if ids.is_empty() { String::from("none") } else { ids[usize::from(op.arg) % ids.len()].clone() }
    };
    match op.kind {
        0 => JournalRecord::BucketCreated { name: bucket, owner: String::from("owner"), created_ms: counter },
        1 | 2 => JournalRecord::ObjectPut {
            bucket,
            key,
            new_id: VersionId::Id(counter),
            object: object(u64::from(op.arg) + 1, counter),
        },
        3 => JournalRecord::ObjectDeleted { bucket, key, new_id: VersionId::Id(counter), now_ms: counter },
        4 => JournalRecord::VersionDeleted { id: some_version(state), bucket, key },
        5 => JournalRecord::VersioningSet {
            bucket,
            versioning: if op.arg.is_multiple_of(2) { Versioning::Enabled } else { Versioning::Suspended },
        },
        6 => JournalRecord::BucketRenamed { from: bucket, to: format!("b{}", op.arg % 4) },
        7 => JournalRecord::BucketDeleted { name: bucket },
        8 => JournalRecord::MultipartCreated {
            upload_id: format!("u{counter}"),
            bucket,
            key,
            initiated_ms: counter,
            template: UploadTemplate { content_type: None, headers: Vec::new() },
        },
        9 => JournalRecord::PartUploaded {
            upload_id: some_upload(state),
            part_number: 1,
            part: PartMeta {
                size_bytes: 10,
                md5: [op.arg; 16],
                last_modified_ms: counter,
                checksums: Vec::new(),
                chunks: Vec::new(),
            },
        },
        10 => JournalRecord::MultipartCompleted {
            upload_id: some_upload(state),
            new_id: VersionId::Id(counter),
            parts: vec![1],
            etag: String::from("e-1"),
            now_ms: counter,
        },
        _ => JournalRecord::VersionsExpired { ids: vec![some_version(state)], bucket, key },
    }
}

/// Applies `op` as the store does while an image is being made.
fn apply(state: &mut MetaState, snapshot: Option<&mut Snapshot>, op: &Op, counter: u64) {
    let record = record(state, op, counter);
    match snapshot {
        Some(snapshot) => {
            snapshot.before_apply(state, &record);
            if state.apply(record.clone()).is_ok() {
                snapshot.applied(&record);
            }
        }
        None => {
            let _ = state.apply(record);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn an_image_made_in_slices_is_the_state_at_its_start(
        before in prop::collection::vec(op(), 0..200),
        during in prop::collection::vec((op(), 0usize..4), 0..200),
    ) {
        let mut state = MetaState::new(5);
        // Buckets first, so that most of what follows applies.
        for (index, bucket) in (0..4u8).enumerate() {
            apply(&mut state, None, &Op { kind: 0, bucket, key: 0, arg: 0 }, index as u64);
        }
        let mut counter = 10;
        for op in &before {
            counter += 1;
            apply(&mut state, None, op, counter);
        }
        let expected = postcard::to_allocvec(&state).unwrap();
        let mut snapshot = Snapshot::start(&state).unwrap();
        let mut image = Vec::new();
        let mut done = false;
        for (op, budget) in &during {
            if !done {
                done = snapshot.step(&state, *budget).unwrap();
                image.extend(snapshot.take_bytes());
            }
            counter += 1;
            apply(&mut state, Some(&mut snapshot), op, counter);
        }
        while !done {
            done = snapshot.step(&state, 3).unwrap();
            image.extend(snapshot.take_bytes());
        }
        prop_assert_eq!(&image, &expected);
        let decoded: MetaState = postcard::from_bytes(&image).unwrap();
        prop_assert_eq!(decoded.buckets.len(), postcard::from_bytes::<MetaState>(&expected).unwrap().buckets.len());
    }
}

#[test]
fn a_step_with_no_budget_writes_nothing_twice() {
    let mut state = MetaState::new(5);
    state
        .apply(JournalRecord::BucketCreated { name: String::from("a"), owner: String::from("o"), created_ms: 1 })
        .unwrap();
    for index in 0..5u64 {
        state
            .apply(JournalRecord::ObjectPut {
                bucket: String::from("a"),
                key: format!("k{index}"),
                new_id: VersionId::Null,
                object: object(index + 1, index),
            })
            .unwrap();
    }
    let expected = postcard::to_allocvec(&state).unwrap();
    let mut snapshot = Snapshot::start(&state).unwrap();
    let mut image = snapshot.take_bytes();
    let mut steps = 0;
    while !snapshot.step(&state, steps % 2).unwrap() {
        image.extend(snapshot.take_bytes());
        steps += 1;
    }
    image.extend(snapshot.take_bytes());
    assert_eq!(image, expected);
}

#[test]
fn a_step_does_bounded_work_however_many_empty_buckets() {
    // Empty buckets and keys created after the start write nothing, yet
    // passing them is work: it counts against the step's budget (a step
    // once walked 40,000 empty buckets under the store's lock).
    let mut state = MetaState::new(5);
    for index in 0..5_000u64 {
        state
            .apply(JournalRecord::BucketCreated {
                name: format!("b{index:05}"),
                owner: String::from("o"),
                created_ms: 1,
            })
            .unwrap();
    }
    let expected = postcard::to_allocvec(&state).unwrap();
    let mut snapshot = Snapshot::start(&state).unwrap();
    for index in 0..1_000u64 {
        let record = JournalRecord::ObjectPut {
            bucket: String::from("b00000"),
            key: format!("new{index:04}"),
            new_id: VersionId::Null,
            object: object(index + 1, index),
        };
        snapshot.before_apply(&state, &record);
        state.apply(record).unwrap();
    }
    let mut image = snapshot.take_bytes();
    let mut steps = 0;
    while !snapshot.step(&state, 64).unwrap() {
        image.extend(snapshot.take_bytes());
        steps += 1;
    }
    image.extend(snapshot.take_bytes());
    assert_eq!(image, expected);
    assert!(steps >= (5_000 + 1_000) / 64, "{steps} steps of 64 for 5,000 buckets and 1,000 new keys");
}
