//! A checkpoint's image of the state, serialized a slice at a time while
//! the state goes on changing.
//!
//! Serializing a million objects takes about 0.2 s, and the store's state
//! lives behind one lock on one executor: done at once, every request
//! would wait that long. Instead the image is taken as of one sequence
//! number ([`Snapshot::start`]) and written in key order over many short
//! [`Snapshot::step`]s. A change between steps to a key not yet written
//! first saves that key's versions as they were ([`Snapshot::before_apply`],
//! called with every record before it applies), so the image is exactly
//! the state at the start: the bytes are those `postcard` gives for the
//! whole [`MetaState`] then, and an open reads them as it always did.
//! Each step's bytes are taken ([`Snapshot::take_bytes`]) and written
//! out as they come.
//!
//! Everything but the object index (bucket settings and usage, uploads,
//! system values, the last ID) is small and serialized at the start.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Bound;

use storage::version::Versions;

use crate::record::{JournalRecord, ObjectMeta};
use crate::state::MetaState;

/// Why an image could not be made. Both are defects, never input: the
/// checkpoint fails and the store stops rather than write a wrong image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    Encode,
    /// A bucket's keys written differ in number from those it had at the start.
    CountChanged {
        bucket: usize,
    },
}

impl From<postcard::Error> for SnapshotError {
    fn from(_: postcard::Error) -> Self {
        Self::Encode
    }
}

/// A bucket as it was at the start.
struct Planned {
    /// Its name, settings and usage then, and how many keys it had: the
    /// bytes before its keys.
    header: Vec<u8>,
    keys: u64,
}

pub struct Snapshot {
    out: Vec<u8>,
    plan: Vec<Planned>,
    /// Live bucket name -> its place in `plan` (renames follow it; a
    /// bucket deleted or created since the start has none), and the
    /// other way round.
    live: BTreeMap<String, usize>,
    live_names: Vec<Option<String>>,
    /// The bucket being written, and the last of its keys written.
    at: usize,
    last_key: Option<String>,
    /// Whether the bytes before `at`'s keys are out, and how many keys.
    header_written: bool,
    written_in_bucket: u64,
    /// Keys changed since the start and not written yet, with their
    /// versions at the start (`None`: the key did not exist then).
    before: BTreeMap<(usize, String), Option<Versions<ObjectMeta>>>,
    /// Uploads, system values, last ID and minimum part size at the start.
    tail: Vec<u8>,
}

impl Snapshot {
    /// Starts an image of `meta` as it is now.
    pub fn start(meta: &MetaState) -> Result<Self, SnapshotError> {
        let out = postcard::to_extend(&meta.buckets.len(), Vec::new())?;
        let mut plan = Vec::with_capacity(meta.buckets.len());
        let mut live = BTreeMap::new();
        let mut live_names = Vec::with_capacity(meta.buckets.len());
        for (index, (name, bucket)) in meta.buckets.iter().enumerate() {
            // Field by field as `Bucket` serializes, `objects` last: its
            // length, then its entries as the steps write them.
            let header = postcard::to_extend(
                &(
                    name,
                    &bucket.owner,
                    bucket.created_ms,
                    bucket.versioning,
                    &bucket.quota,
                    &bucket.grants,
                    &bucket.usage,
                    bucket.objects.len(),
                ),
                Vec::new(),
            )?;
            plan.push(Planned { header, keys: bucket.objects.len() as u64 });
            live.insert(name.clone(), index);
            live_names.push(Some(name.clone()));
        }
        let tail = postcard::to_extend(&(&meta.uploads, &meta.system, meta.last_id, meta.min_part_bytes), Vec::new())?;
        Ok(Self {
            out,
            plan,
            live,
            live_names,
            at: 0,
            last_key: None,
            header_written: false,
            written_in_bucket: 0,
            before: BTreeMap::new(),
            tail,
        })
    }

    /// Call with every record, before `meta` applies it (whether or not
    /// it will apply): keeps what the record may change and the image
    /// still needs.
    pub fn before_apply(&mut self, meta: &MetaState, record: &JournalRecord) {
        match record {
            JournalRecord::ObjectPut { bucket, key, .. }
            | JournalRecord::ObjectDeleted { bucket, key, .. }
            | JournalRecord::VersionDeleted { bucket, key, .. }
            | JournalRecord::VersionsExpired { bucket, key, .. } => self.keep(meta, bucket, key),
            JournalRecord::MultipartCompleted { upload_id, .. } => {
                if let Some(upload) = meta.uploads.get(upload_id) {
                    self.keep(meta, &upload.bucket, &upload.key);
                }
            }
            // Bucket settings and everything outside the index were
            // serialized at the start; renames and deletes are followed
            // once applied (`applied`).
            _ => {}
        }
    }

    /// Call after `meta` applied `record`: follows a bucket renamed or
    /// deleted since the start (a deleted one was empty, so each of its
    /// keys was kept as it was when it went).
    pub fn applied(&mut self, record: &JournalRecord) {
        match record {
            JournalRecord::BucketRenamed { from, to } => {
                if let Some(index) = self.live.remove(from) {
                    self.live.insert(to.clone(), index);
                    self.live_names[index] = Some(to.clone());
                }
            }
            JournalRecord::BucketDeleted { name } => {
                if let Some(index) = self.live.remove(name) {
                    self.live_names[index] = None;
                }
            }
            _ => {}
        }
    }

    fn keep(&mut self, meta: &MetaState, bucket: &str, key: &str) {
        let Some(&index) = self.live.get(bucket) else { return };
        let written = index < self.at || (index == self.at && self.last_key.as_deref().is_some_and(|last| key <= last));
        if written {
            return;
        }
        self.before
            .entry((index, String::from(key)))
            .or_insert_with(|| meta.buckets.get(bucket).and_then(|b| b.objects.get(key)).cloned());
    }

    /// Does up to `budget` units of work, a unit being a key written or
    /// passed over or a bucket begun (so a step's time is bounded however
    /// many empty buckets or new keys there are); `true` once the image is
    /// complete.
    pub fn step(&mut self, meta: &MetaState, budget: usize) -> Result<bool, SnapshotError> {
        let mut left = budget;
        while self.at < self.plan.len() {
            if left == 0 {
                return Ok(false);
            }
            if !self.header_written {
                self.out.extend_from_slice(&self.plan[self.at].header);
                self.header_written = true;
                left -= 1;
            }
            let live_name = self.live_names[self.at].as_deref();
            let objects = live_name.and_then(|name| meta.buckets.get(name)).map(|bucket| &bucket.objects);
            let after = self.last_key.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let mut live =
                objects.into_iter().flat_map(|objects| objects.range::<str, _>((after, Bound::Unbounded))).peekable();
            let from = match &self.last_key {
                Some(last) => Bound::Excluded((self.at, last.clone())),
                None => Bound::Included((self.at, String::new())),
            };
            let mut kept = self.before.range((from, Bound::Excluded((self.at + 1, String::new())))).peekable();
            let mut last: Option<&str> = None;
            let mut finished = false;
            while left > 0 {
                // The smaller key next; a kept one stands for the live one.
                let (key, versions) = match (live.peek(), kept.peek()) {
                    (None, None) => {
                        finished = true;
                        break;
                    }
                    (Some((live_key, _)), Some(((_, kept_key), _))) if live_key.as_str() < kept_key.as_str() => {
                        let (key, versions) = live.next().expect("peeked");
                        (key.as_str(), Some(versions))
                    }
                    (Some(_), None) => {
                        let (key, versions) = live.next().expect("peeked");
                        (key.as_str(), Some(versions))
                    }
                    (live_next, Some(_)) => {
                        let ((_, key), versions) = kept.next().expect("peeked");
                        if live_next.is_some_and(|(live_key, _)| live_key.as_str() == key.as_str()) {
                            live.next();
                        }
                        (key.as_str(), versions.as_ref())
                    }
                };
                if let Some(versions) = versions {
                    self.out = postcard::to_extend(&(key, versions), core::mem::take(&mut self.out))?;
                    self.written_in_bucket += 1;
                }
                left -= 1;
                last = Some(key);
            }
            if finished {
                if self.written_in_bucket != self.plan[self.at].keys {
                    return Err(SnapshotError::CountChanged { bucket: self.at });
                }
                let done = self.at;
                self.at += 1;
                self.last_key = None;
                self.header_written = false;
                self.written_in_bucket = 0;
                // What was kept for the finished bucket is no longer needed.
                self.before = self.before.split_off(&(done + 1, String::new()));
                continue;
            }
            if let Some(last) = last {
                self.last_key = Some(String::from(last));
            }
            return Ok(false);
        }
        if !self.tail.is_empty() {
            let tail = core::mem::take(&mut self.tail);
            self.out.extend_from_slice(&tail);
        }
        Ok(true)
    }

    /// The bytes serialized since the last call: the image is the
    /// concatenation of them all, once [`Snapshot::step`] said it is
    /// complete. Taken after every step, they never pile up (a whole
    /// image in one buffer would be reallocated, and copied, as it grows).
    pub fn take_bytes(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }
}
