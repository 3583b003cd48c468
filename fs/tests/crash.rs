//! Crash simulation: random workloads on a disk that loses power at a
//! random request, keeping, dropping or tearing every unflushed write.
//!
//! After each cut the store is reopened and must show every acknowledged
//! operation with the right bytes, and for the one operation per task that
//! was in flight either nothing or all of it; the consistency check
//! (references vs. free space, usage, every chunk's checksum) must be
//! clean. Workloads mix puts of many sizes, overwrites, deletes, version
//! deletes, multipart uploads, versioning changes (a third of the seeds
//! never enable it), the versions GC hook and checkpoints, from one task or
//! from three at once (so group commit batches several); on a fifth of the
//! seeds, system values of a fifth of the journal staged three at a time,
//! which checkpoints absorb.
//!
//! `cargo test -p fs --test crash` runs a fixed list of seeds (at least
//! 1,000 cuts); `cargo xtask crash --cuts N --seed S` runs more through
//! the ignored `campaign` test and prints the seed of any failure.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{pattern, read_all, tag_info, write_content};
use fs::record::UploadTemplate;
use fs::store::{FormatOptions, Store, StoreError};
use runtime::executor::Executor;
use storage::block::{FaultConfig, SimDisk};
use storage::object::ObjectError;
use storage::space::SpaceError;
use storage::version::{Entry, VersionId, Versioning, Versions};

type Disk = Arc<SimDisk>;
/// (content tag, size) of an object version.
type Content = (u64, u64);
/// Per key: versions newest first, `None` for a delete marker.
type Snapshot = (Versioning, BTreeMap<String, Vec<(VersionId, Option<Content>)>>);

const KEYS: u64 = 6;
const SIZES: [u64; 11] = [0, 1, 100, 4095, 4096, 4097, 30_000, 65_535, 65_536, 65_537, 150_000];
const MIN_PART: u64 = 16 * 1024;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: String,
        content: Content,
    },
    Delete {
        key: String,
    },
    DeleteVersion {
        key: String,
        id: VersionId,
    },
    SetVersioning(Versioning),
    /// The GC hook over the bucket: keep one noncurrent version per key.
    ExpireNoncurrent,
}

/// Versions the GC hook removed, over the whole run (so a green run shows
/// it ran).
static EXPIRED_VERSIONS: AtomicU64 = AtomicU64::new(0);

fn keep_one_noncurrent<T>(_: &Entry<T>, _became_noncurrent_ms: u64, newer_noncurrent: usize) -> bool {
    newer_noncurrent >= 1
}

/// What one task knows is acknowledged in its bucket.
struct Model {
    bucket: String,
    versioning: Versioning,
    keys: BTreeMap<String, Versions<Content>>,
    in_doubt: Option<Op>,
    /// Acknowledged system values in the namespace named like the bucket:
    /// key -> content tag (`SYSTEM_VALUE` bytes of it).
    system: BTreeMap<String, u64>,
    /// Staged system changes not yet known durable, in order (a put's tag,
    /// or `None` for a delete): after a cut some prefix of them applied.
    system_in_doubt: Vec<(String, Option<u64>)>,
    failure: Option<String>,
}

impl Model {
    fn snapshot(&self) -> Snapshot {
        let keys = self
            .keys
            .iter()
            .filter(|(_, versions)| !versions.is_empty())
            .map(|(key, versions)| (key.clone(), entries(versions.entries(), |c| *c)))
            .collect();
        (self.versioning, keys)
    }

    /// Applies an acknowledged (or, when checking, a possibly applied) op.
    /// `new_id` is the ID the store gave a new version or marker.
    fn apply(&mut self, op: &Op, new_id: VersionId) {
        match op {
            Op::Put { key, content } => {
                self.keys.entry(key.clone()).or_default().put(self.versioning, new_id, *content);
            }
            Op::Delete { key } => {
                let versions = self.keys.entry(key.clone()).or_default();
                versions.delete_current(self.versioning, new_id, 0);
            }
            Op::DeleteVersion { key, id } => {
                if let Some(versions) = self.keys.get_mut(key) {
                    versions.delete_version(*id);
                }
            }
            Op::SetVersioning(versioning) => self.versioning = *versioning,
            Op::ExpireNoncurrent => {
                for versions in self.keys.values_mut() {
                    versions.expire_noncurrent(keep_one_noncurrent, |_| 0);
                }
            }
        }
        self.keys.retain(|_, versions| !versions.is_empty());
    }
}

fn entries<T>(entries: &[Entry<T>], content: impl Fn(&T) -> Content) -> Vec<(VersionId, Option<Content>)> {
    entries
        .iter()
        .map(|entry| match entry {
            Entry::Object { id, value } => (*id, Some(content(value))),
            Entry::DeleteMarker { id, .. } => (*id, None),
        })
        .collect()
}

fn store_snapshot(store: &Store<Disk>, bucket: &str) -> Result<Snapshot, String> {
    store.with_state(|state| {
        let bucket = state.buckets.get(bucket).ok_or_else(|| format!("bucket {bucket} lost"))?;
        let mut keys = BTreeMap::new();
        for (key, versions) in &bucket.objects {
            let listed = entries(versions.entries(), |object| {
                (common::tag_of(&object.headers).unwrap_or(u64::MAX), object.size_bytes)
            });
            keys.insert(key.clone(), listed);
        }
        Ok((bucket.versioning, keys))
    })
}

/// Compares the reopened store with the model; on success the model
/// becomes what the store shows.
async fn verify(store: &Store<Disk>, model: &mut Model, system_value: u64) -> Result<(), String> {
    verify_system(store, model, system_value)?;
    let actual = store_snapshot(store, &model.bucket)?;
    let before = model.snapshot();
    if actual != before {
        let Some(op) = model.in_doubt.clone() else {
            return Err(format!(
                "{}: no operation in flight, yet\n  store {actual:?}\n  model {before:?}",
                model.bucket
            ));
        };
        // The in-flight operation applied: its new version or marker, if
        // any, is the newest entry of its key in the store.
        let key = match &op {
            Op::Put { key, .. } | Op::Delete { key } | Op::DeleteVersion { key, .. } => Some(key.clone()),
            Op::SetVersioning(_) | Op::ExpireNoncurrent => None,
        };
        let new_id = key
            .and_then(|key| actual.1.get(&key).and_then(|versions| versions.first()).map(|(id, _)| *id))
            .unwrap_or(VersionId::Null);
        let mut after = Model {
            bucket: model.bucket.clone(),
            versioning: model.versioning,
            keys: model.keys.clone(),
            in_doubt: None,
            system: BTreeMap::new(),
            system_in_doubt: Vec::new(),
            failure: None,
        };
        after.apply(&op, new_id);
        if actual != after.snapshot() {
            return Err(format!(
                "{}: in flight {op:?}, store shows neither before nor after\n  store  {actual:?}\n  before {before:?}\n  after  {:?}",
                model.bucket,
                after.snapshot()
            ));
        }
        model.keys = after.keys;
        model.versioning = after.versioning;
    }
    model.in_doubt = None;
    for (key, versions) in &actual.1 {
        for (id, content) in versions {
            if let Some((tag, size)) = content {
                let bytes = read_all(store, &model.bucket, key, Some(*id)).await?;
                if bytes != pattern(*tag, 0..*size) {
                    return Err(format!("{}/{key}@{id}: wrong bytes (tag {tag}, {size} bytes)", model.bucket));
                }
            }
        }
    }
    Ok(())
}

/// The system values of the model's namespace must be the acknowledged
/// ones with some prefix of the staged changes applied, byte for byte; on
/// success the model becomes what the store shows.
fn verify_system(store: &Store<Disk>, model: &mut Model, value_bytes: u64) -> Result<(), String> {
    let actual: BTreeMap<String, Vec<u8>> = store.with_state(|state| {
        state
            .system
            .iter()
            .filter(|((namespace, _), _)| *namespace == model.bucket)
            .map(|((_, key), value)| (key.clone(), value.clone()))
            .collect()
    });
    let mut expected = model.system.clone();
    for applied in 0..=model.system_in_doubt.len() {
        if applied > 0 {
            match &model.system_in_doubt[applied - 1] {
                (key, Some(tag)) => expected.insert(key.clone(), *tag),
                (key, None) => expected.remove(key),
            };
        }
        let bytes: BTreeMap<String, Vec<u8>> =
            expected.iter().map(|(key, tag)| (key.clone(), pattern(*tag, 0..value_bytes))).collect();
        if bytes == actual {
            model.system = expected;
            model.system_in_doubt.clear();
            return Ok(());
        }
    }
    Err(format!(
        "{}: system values {:?} are not the acknowledged {:?} with a prefix of {:?} applied",
        model.bucket,
        actual.keys().collect::<Vec<_>>(),
        model.system,
        model.system_in_doubt
    ))
}

/// Stages `changes` to system values and waits until they are durable.
async fn stage_and_sync(
    store: &Store<Disk>,
    model: &RefCell<Model>,
    changes: Vec<(String, Option<u64>)>,
    value_bytes: u64,
) -> Result<(), StoreError> {
    let namespace = model.borrow().bucket.clone();
    model.borrow_mut().system_in_doubt = changes.clone();
    for (key, change) in &changes {
        match change {
            Some(tag) => store.stage_system_put(&namespace, key, pattern(*tag, 0..value_bytes))?,
            None => store.stage_system_delete(&namespace, key)?,
        }
    }
    store.sync().await?;
    let mut model = model.borrow_mut();
    for (key, change) in changes {
        match change {
            Some(tag) => model.system.insert(key, tag),
            None => model.system.remove(&key),
        };
    }
    model.system_in_doubt.clear();
    Ok(())
}

/// Whether an error means "the power is gone" (the expected end of a run).
fn is_outage(error: &StoreError) -> bool {
    matches!(error, StoreError::Stopped | StoreError::Block(_) | StoreError::Object(ObjectError::Block(_)))
}

fn is_full(error: &StoreError) -> bool {
    matches!(error, StoreError::Object(ObjectError::Space(SpaceError::Full)) | StoreError::Space(SpaceError::Full))
}

/// One task's workload until the power goes or `steps` run out. Without
/// `versioned` the bucket stays unversioned all along. With a
/// `system_value` size, some steps stage three system values of that size
/// at once (each a fifth of the journal), then remove them.
async fn workload(
    store: Rc<Store<Disk>>,
    model: Rc<RefCell<Model>>,
    seed: u64,
    steps: u32,
    versioned: bool,
    system_value: u64,
) {
    let mut rng = Rng(seed | 1);
    let bucket = model.borrow().bucket.clone();
    for step in 0..steps {
        let key = format!("k{}", rng.below(KEYS));
        let tag = seed.wrapping_mul(1_000_003).wrapping_add(u64::from(step)) & 0xFFFF_FFFF_FFFF;
        let low_space = store.free_pages() < 1_200;
        let roll = rng.below(100);
        let result: Result<(), StoreError> = async {
            if (roll < 12 || (low_space && roll < 60)) && rng.below(4) == 0 {
                let op = Op::ExpireNoncurrent;
                model.borrow_mut().in_doubt = Some(op.clone());
                let removed = store.expire_noncurrent(&bucket, keep_one_noncurrent).await?;
                EXPIRED_VERSIONS.fetch_add(removed, Ordering::Relaxed);
                let mut model = model.borrow_mut();
                model.apply(&op, VersionId::Null);
                model.in_doubt = None;
            } else if roll < 12 || (low_space && roll < 60) {
                // Remove a noncurrent or current version for good.
                let target = {
                    let model = model.borrow();
                    let keys: Vec<_> = model.keys.iter().collect();
                    if keys.is_empty() {
                        None
                    } else {
                        let (key, versions) = keys[rng.below(keys.len() as u64) as usize];
                        let entries = versions.entries();
                        Some((key.clone(), entries[rng.below(entries.len() as u64) as usize].id()))
                    }
                };
                if let Some((key, id)) = target {
                    let op = Op::DeleteVersion { key: key.clone(), id };
                    model.borrow_mut().in_doubt = Some(op.clone());
                    store.delete_object(&bucket, &key, Some(id), 10).await?;
                    let mut model = model.borrow_mut();
                    model.apply(&op, VersionId::Null);
                    model.in_doubt = None;
                }
            } else if roll < 62 {
                let size = SIZES[rng.below(SIZES.len() as u64) as usize];
                let written = match write_content(&store, tag, 0..size).await {
                    Err(error) if is_full(&error) => return Ok(()),
                    other => other?,
                };
                let op = Op::Put { key: key.clone(), content: (tag, size) };
                model.borrow_mut().in_doubt = Some(op.clone());
                let (id, _) = store.put_object(&bucket, &key, written, tag_info(tag), 20).await?;
                let mut model = model.borrow_mut();
                model.apply(&op, id);
                model.in_doubt = None;
            } else if roll < 75 {
                let op = Op::Delete { key: key.clone() };
                model.borrow_mut().in_doubt = Some(op.clone());
                let outcome = store.delete_object(&bucket, &key, None, 30).await?;
                let mut model = model.borrow_mut();
                model.apply(&op, outcome.marker.unwrap_or(VersionId::Null));
                model.in_doubt = None;
            } else if roll < 85 {
                // Multipart: only completion changes what is visible.
                let template = UploadTemplate { content_type: None, headers: tag_info(tag).headers };
                let upload = store.create_multipart(&bucket, &key, template, 40).await?;
                let part_sizes = [MIN_PART + rng.below(50_000), 1 + rng.below(70_000)];
                let mut parts = Vec::new();
                let mut offset = 0;
                for (index, size) in part_sizes.iter().enumerate() {
                    let written = match write_content(&store, tag, offset..offset + size).await {
                        Err(error) if is_full(&error) => return Ok(()),
                        other => other?,
                    };
                    let part = store.put_part(&upload, index as u32 + 1, written, Vec::new(), 41).await?;
                    parts.push((index as u32 + 1, fs::state::hex(&part.md5)));
                    offset += size;
                }
                if rng.below(5) == 0 {
                    store.abort_multipart(&upload).await?;
                    return Ok(());
                }
                let op = Op::Put { key: key.clone(), content: (tag, offset) };
                model.borrow_mut().in_doubt = Some(op.clone());
                let (_, _, id, _) = store.complete_multipart(&upload, &parts, 42).await?;
                let mut model = model.borrow_mut();
                model.apply(&op, id);
                model.in_doubt = None;
            } else if roll < 90 && versioned {
                let versioning = match model.borrow().versioning {
                    Versioning::Enabled => Versioning::Suspended,
                    Versioning::Unversioned | Versioning::Suspended => Versioning::Enabled,
                };
                let op = Op::SetVersioning(versioning);
                model.borrow_mut().in_doubt = Some(op.clone());
                store.set_versioning(&bucket, versioning).await?;
                let mut model = model.borrow_mut();
                model.apply(&op, VersionId::Null);
                model.in_doubt = None;
            } else if roll < 95 && system_value > 0 && roll >= 92 {
                // Records too large to fit the journal beside the ones
                // before them: checkpoints take them instead (absorb),
                // while the other tasks commit.
                let puts = (0..3).map(|index| (format!("s{index}"), Some(tag.wrapping_add(index)))).collect();
                stage_and_sync(&store, &model, puts, system_value).await?;
                let deletes = (0..3).map(|index| (format!("s{index}"), None)).collect();
                stage_and_sync(&store, &model, deletes, system_value).await?;
            } else if roll < 95 {
                // (Also where an unversioned run would change versioning.)
                store.checkpoint().await?;
            } else {
                // Abort uploads a previous power cut left behind.
                let stale: Vec<String> = store.with_state(|state| {
                    state.uploads.iter().filter(|(_, u)| u.bucket == bucket).map(|(id, _)| id.clone()).collect()
                });
                for upload in stale {
                    store.abort_multipart(&upload).await?;
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {}
            Err(error) if is_outage(&error) => return,
            Err(error) if is_full(&error) => model.borrow_mut().in_doubt = None,
            Err(error) => {
                model.borrow_mut().failure = Some(format!("step {step}: unexpected {error:?}"));
                return;
            }
        }
    }
}

/// What a run exercised, so a green run shows it tested something.
#[derive(Default, Debug)]
struct Stats {
    cuts: u32,
    cuts_mid_workload: u32,
    in_doubt_applied: u32,
    in_doubt_not_applied: u32,
    writes_torn: u32,
    writes_dropped: u32,
    /// Small objects' chunks logged in the journal, write-backs of them,
    /// and chunks an open found only in the journal and restored.
    logged_chunks: u64,
    write_backs: u64,
    restored_at_open: u64,
    /// Objects hashed at the end of their writer, and the lane batches
    /// that hashed them (more objects than batches: some went together).
    md5_digests: u64,
    md5_batches: u64,
    /// Journal batches that started while another was in flight.
    overlapped_batches: u64,
    /// Batches started while a checkpoint was written.
    batches_beside_checkpoints: u64,
    /// Checkpoints that took their records (the journal was full).
    absorbing_checkpoints: u64,
    /// Records applied while a checkpoint's image was being serialized.
    records_beside_images: u64,
    /// Batches written without a data flush before them though some of
    /// their records' chunks were not yet durable; batches whose chunks an
    /// open read to verify; opens whose log ended at one of them because a
    /// chunk had not reached the media.
    verified_batches: u64,
    verified_at_open: u64,
    ends_at_unflushed_data: u32,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.cuts += other.cuts;
        self.cuts_mid_workload += other.cuts_mid_workload;
        self.in_doubt_applied += other.in_doubt_applied;
        self.in_doubt_not_applied += other.in_doubt_not_applied;
        self.writes_torn += other.writes_torn;
        self.writes_dropped += other.writes_dropped;
        self.logged_chunks += other.logged_chunks;
        self.write_backs += other.write_backs;
        self.overlapped_batches += other.overlapped_batches;
        self.batches_beside_checkpoints += other.batches_beside_checkpoints;
        self.absorbing_checkpoints += other.absorbing_checkpoints;
        self.records_beside_images += other.records_beside_images;
        self.verified_batches += other.verified_batches;
        self.verified_at_open += other.verified_at_open;
        self.ends_at_unflushed_data += other.ends_at_unflushed_data;
        self.restored_at_open += other.restored_at_open;
        self.md5_digests += other.md5_digests;
        self.md5_batches += other.md5_batches;
    }
}

/// Runs one seed through `cuts` power cuts.
fn run_seed(seed: u64, cuts: u32) -> Result<Stats, String> {
    // Writers finishing together hash together, in "lanes" here computed by
    // the reference one at a time (the platforms test the SIMD code): cuts
    // then also land while a batch of hashes is pending.
    storage::md5_lanes::install(storage::md5_lanes::Accelerated { lanes: 4, run: storage::md5_lanes::run_portable });
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let tasks = if seed.is_multiple_of(2) { 1 } else { 3 };
    // A third of the seeds never turn versioning on.
    let versioned = !seed.is_multiple_of(3);
    let disk: Disk = Arc::new(SimDisk::new(4096, 4096, FaultConfig::default(), seed));
    let journal_pages = 24 + rng.below(40);
    // A fifth of the journal (a record may take up to a quarter), on a
    // fifth of the seeds.
    let system_value = if seed.is_multiple_of(5) { journal_pages * 4096 / 5 - 512 } else { 0 };
    let options = FormatOptions {
        journal_pages: Some(journal_pages),
        chunk_max_bytes: 64 * 1024,
        min_part_bytes: MIN_PART,
        volume_id: seed.to_le_bytes().repeat(2).try_into().unwrap_or([1; 16]),
        now_ms: 1,
    };
    let models: Vec<Rc<RefCell<Model>>> = (0..tasks)
        .map(|task| {
            Rc::new(RefCell::new(Model {
                bucket: format!("b{task}"),
                versioning: Versioning::Unversioned,
                keys: BTreeMap::new(),
                in_doubt: None,
                system: BTreeMap::new(),
                system_in_doubt: Vec::new(),
                failure: None,
            }))
        })
        .collect();
    let mut store = common::block_on(async {
        let store = Store::format(disk.clone(), options).await.map_err(|e| format!("format: {e:?}"))?;
        for model in &models {
            let bucket = model.borrow().bucket.clone();
            store.create_bucket(&bucket, "owner", 1).await.map_err(|e| format!("{e:?}"))?;
        }
        Ok::<_, String>(store)
    })?;
    // Half of the seeds serialize checkpoint images a few keys at a time,
    // so that records apply beside them (a slice is 2,048 units of work
    // otherwise, more than these states hold).
    let step_keys = if seed % 4 < 2 { 1 + rng.below(4) as usize } else { usize::MAX };
    let mut stats = Stats::default();
    for round in 0..cuts {
        store.set_snapshot_step_keys(step_keys);
        let shared = Rc::new(store);
        disk.set_yielding(tasks > 1);
        disk.cut_at_op(1 + rng.below(160));
        let executor = Executor::new();
        let handles: Vec<_> = models
            .iter()
            .enumerate()
            .map(|(task, model)| {
                let task_seed = seed ^ (u64::from(round) << 32) ^ (task as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                executor.spawn(workload(shared.clone(), model.clone(), task_seed, 40, versioned, system_value))
            })
            .collect();
        let mut idle_rounds = 0;
        while handles.iter().any(|handle| !handle.is_finished()) {
            if executor.run_ready() == 0 {
                idle_rounds += 1;
                if idle_rounds > 3 {
                    return Err(format!("seed {seed} round {round}: tasks stuck (lost wakeup)"));
                }
            } else {
                idle_rounds = 0;
            }
        }
        for model in &models {
            if let Some(failure) = model.borrow_mut().failure.take() {
                return Err(format!("seed {seed} round {round}: {failure}"));
            }
        }
        let counters = shared.commit_counters();
        stats.logged_chunks += counters.logged_chunks;
        stats.write_backs += counters.write_backs;
        stats.overlapped_batches += counters.overlapped_batches;
        stats.batches_beside_checkpoints += counters.batches_beside_checkpoints;
        stats.absorbing_checkpoints += counters.absorbing_checkpoints;
        stats.records_beside_images += counters.records_beside_images;
        stats.verified_batches += counters.verified_batches;
        let (digests, batches) = shared.md5_batch_counts();
        stats.md5_digests += digests;
        stats.md5_batches += batches;
        if disk.is_gone() {
            stats.cuts_mid_workload += 1;
        } else {
            disk.power_cut();
        }
        if let Some(report) = disk.last_cut() {
            stats.writes_torn += report.torn;
            stats.writes_dropped += report.dropped;
        }
        let in_doubt: Vec<bool> = models.iter().map(|model| model.borrow().in_doubt.is_some()).collect();
        drop(handles);
        drop(executor);
        drop(shared);
        disk.restart();
        disk.set_yielding(false);
        let reopened = common::block_on(async {
            let (store, opened) = Store::open(disk.clone()).await.map_err(|e| format!("reopen: {e:?}"))?;
            let restored = store.unwritten().1 as u64;
            stats.verified_at_open += opened.verified_batches;
            if matches!(opened.end, fs::journal::BatchEnd::UnflushedData { .. }) {
                stats.ends_at_unflushed_data += 1;
            }
            for (model, was_in_doubt) in models.iter().zip(&in_doubt) {
                let before = model.borrow().snapshot();
                // Only this test touches the models while it verifies.
                let mut owned = model.replace(Model {
                    bucket: String::new(),
                    versioning: Versioning::Unversioned,
                    keys: BTreeMap::new(),
                    in_doubt: None,
                    system: BTreeMap::new(),
                    system_in_doubt: Vec::new(),
                    failure: None,
                });
                let verified = verify(&store, &mut owned, system_value).await;
                model.replace(owned);
                verified?;
                if *was_in_doubt {
                    if model.borrow().snapshot() == before {
                        stats.in_doubt_not_applied += 1;
                    } else {
                        stats.in_doubt_applied += 1;
                    }
                }
            }
            let report = store.check().await;
            if !report.problems.is_empty() {
                return Err(format!("consistency check: {:?}", report.problems));
            }
            Ok::<_, String>((store, restored))
        });
        let (reopened, restored) = reopened.map_err(|error| format!("seed {seed} round {round}: {error}"))?;
        store = reopened;
        stats.restored_at_open += restored;
        stats.cuts += 1;
    }
    Ok(stats)
}

#[test]
fn fixed_seeds_survive_a_thousand_cuts() {
    let mut total = Stats::default();
    // And seeds that once found a defect the first hundred missed: a
    // journal commit that did not write the held data writes first (see
    // `fs::write_cache`), found by 19 of 1,000 campaign seeds.
    for seed in (1..=100u64).chain([1055, 1102, 1142]) {
        total.add(&run_seed(seed, 10).unwrap_or_else(|error| panic!("{error}")));
    }
    println!("crash simulation, 103 seeds: {total:?}");
    assert!(total.cuts >= 1_000);
    // The cuts must land mid-work and catch operations on both sides.
    assert!(total.cuts_mid_workload >= total.cuts / 2, "{total:?}");
    assert!(total.in_doubt_applied > 50 && total.in_doubt_not_applied > 50, "{total:?}");
    assert!(total.writes_torn > 100, "{total:?}");
    // Small objects went through the journal, were written back, and some
    // were found at reopen only in the journal (and read back intact).
    assert!(total.logged_chunks > 1_000 && total.write_backs > 100 && total.restored_at_open > 100, "{total:?}");
    assert!(total.md5_digests > total.md5_batches + 300, "objects were hashed together: {total:?}");
    // Cuts also landed while two journal batches were in flight.
    assert!(total.overlapped_batches > 300, "{total:?}");
    // And while checkpoints were written beside them.
    assert!(total.batches_beside_checkpoints > 300, "{total:?}");
    // And checkpoints took records the journal had no room for (with the
    // other tasks' batches held back meanwhile).
    assert!(total.absorbing_checkpoints > 20, "{total:?}");
    // And records applied while checkpoint images were serialized.
    assert!(total.records_beside_images > 300, "{total:?}");
    // Records whose chunks were written, not logged, went in batches with
    // one flush, which opens verified; some cuts left such a batch whole
    // with a chunk of it missing, and replay ended the log before it.
    assert!(total.verified_batches > 1_000 && total.verified_at_open > 100, "{total:?}");
    assert!(total.ends_at_unflushed_data > 10, "{total:?}");
    let expired = EXPIRED_VERSIONS.load(Ordering::Relaxed);
    println!("versions removed by the GC hook: {expired}");
    assert!(expired > 100, "the GC hook ran and removed versions: {expired}");
}

/// `cargo xtask crash --cuts N --seed S`: seeds S, S+1, ... until N cuts.
#[test]
#[ignore]
fn campaign() {
    let cuts: u64 = std::env::var("CRASH_CUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let first: u64 = std::env::var("CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
    let mut done = 0;
    let mut seed = first;
    let mut failures = Vec::new();
    while done < cuts {
        match run_seed(seed, 10) {
            Ok(stats) => done += u64::from(stats.cuts),
            Err(error) => {
                println!("FAILED seed {seed}: {error}");
                failures.push(seed);
                done += 1;
            }
        }
        seed += 1;
    }
    println!("crash campaign: {done} cuts over seeds {first}..{seed}, {} failing seeds {failures:?}", failures.len());
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}
