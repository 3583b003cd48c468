//! The metadata state and the one function that changes it.
//!
//! [`MetaState::apply`] is used both when a request makes a change and
//! when the journal is replayed at boot, so the two cannot disagree. It
//! checks everything first and changes nothing on error; on success it
//! returns the space the change gave up (to be reused once durable).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use storage::object::ChunkRef;
use storage::space::Extent;
use storage::version::{Entry, VersionId, Versioning};

use crate::catalog::{Bucket, Capabilities, Quota};
use crate::record::{JournalRecord, ObjectMeta, PartMeta, UploadTemplate};

/// Why a change was refused. Each maps to one S3 error code upstairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaError {
    NoSuchBucket,
    /// Another owner has this name.
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    NoSuchKey,
    NoSuchVersion,
    NoSuchUpload,
    /// A part named in CompleteMultipartUpload was not uploaded.
    InvalidPart {
        part_number: u32,
    },
    InvalidPartOrder,
    /// A part other than the last is below the minimum part size.
    EntityTooSmall {
        part_number: u32,
    },
    QuotaExceeded,
    /// Versioning cannot go back to unversioned once enabled.
    InvalidVersioningChange,
    /// A record that cannot apply to this state (replay of a damaged log).
    Inconsistent,
}

/// An in-progress multipart upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub initiated_ms: u64,
    pub template: UploadTemplate,
    pub parts: BTreeMap<u32, PartMeta>,
}

/// Everything the journal and checkpoints make durable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    pub buckets: BTreeMap<String, Bucket>,
    /// upload ID -> upload.
    pub uploads: BTreeMap<String, Upload>,
    /// (namespace, key) -> value, for the layers above.
    pub system: BTreeMap<(String, String), Vec<u8>>,
    /// The largest version or upload ID handed out (IDs resume after it).
    pub last_id: u64,
    /// Smallest size of a part that is not the last one.
    pub min_part_bytes: u64,
}

fn chunk_extents(chunks: &[ChunkRef]) -> impl Iterator<Item = Extent> + '_ {
    chunks.iter().filter(|chunk| chunk.extent.pages > 0).map(|chunk| chunk.extent)
}

fn note_id(last_id: &mut u64, id: VersionId) {
    if let VersionId::Id(id) = id {
        *last_id = (*last_id).max(id);
    }
}

/// The MD5 of the part MD5s with `-N`, as S3 computes multipart ETags.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    use md5::{Digest, Md5};
    let mut hasher = Md5::new();
    for md5 in part_md5s {
        hasher.update(md5);
    }
    let digest: [u8; 16] = hasher.finalize().into();
    let mut etag = hex(&digest);
    etag.push_str(&alloc::format!("-{}", part_md5s.len()));
    etag
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

impl MetaState {
    pub fn new(min_part_bytes: u64) -> Self {
        Self { min_part_bytes, ..Self::default() }
    }

    pub fn bucket(&self, name: &str) -> Result<&Bucket, MetaError> {
        self.buckets.get(name).ok_or(MetaError::NoSuchBucket)
    }

    /// Whether a PUT of `size_bytes` to `bucket/key` fits the quota now:
    /// the S3 layer asks this with the Content-Length before reading the
    /// body. The commit checks again, since others may write meanwhile.
    pub fn put_fits_quota(&self, bucket: &str, key: &str, size_bytes: u64) -> Result<(), MetaError> {
        Self::check_put_quota(self.bucket(bucket)?, key, size_bytes)
    }

    /// Applies `record`, or refuses it without any change. It takes the
    /// record by value so that replay moves keys and objects into the
    /// index instead of copying them.
    pub fn apply(&mut self, record: JournalRecord) -> Result<Vec<Extent>, MetaError> {
        let mut freed = Vec::new();
        match record {
            JournalRecord::BucketCreated { name, owner, created_ms } => {
                if let Some(existing) = self.buckets.get(&name) {
                    return Err(if existing.owner == owner {
                        MetaError::BucketAlreadyOwnedByYou
                    } else {
                        MetaError::BucketAlreadyExists
                    });
                }
                self.buckets.insert(name, Bucket::new(owner, created_ms));
            }
            JournalRecord::BucketDeleted { name } => {
                let bucket = self.bucket(&name)?;
                if !bucket.objects.is_empty() || self.uploads.values().any(|upload| upload.bucket == name) {
                    return Err(MetaError::BucketNotEmpty);
                }
                self.buckets.remove(&name);
            }
            JournalRecord::BucketRenamed { from, to } => {
                self.bucket(&from)?;
                if self.buckets.contains_key(&to) {
                    return Err(MetaError::BucketAlreadyExists);
                }
                if let Some(bucket) = self.buckets.remove(&from) {
                    self.buckets.insert(to.clone(), bucket);
                }
                for upload in self.uploads.values_mut().filter(|upload| upload.bucket == from) {
                    upload.bucket = to.clone();
                }
            }
            JournalRecord::VersioningSet { bucket, versioning } => {
                let entry = self.buckets.get_mut(&bucket).ok_or(MetaError::NoSuchBucket)?;
                if versioning == Versioning::Unversioned && entry.versioning != Versioning::Unversioned {
                    return Err(MetaError::InvalidVersioningChange);
                }
                entry.versioning = versioning;
            }
            JournalRecord::QuotaSet { bucket, quota } => {
                self.buckets.get_mut(&bucket).ok_or(MetaError::NoSuchBucket)?.quota = quota;
            }
            JournalRecord::GrantSet { bucket, access_key, capabilities } => {
                let entry = self.buckets.get_mut(&bucket).ok_or(MetaError::NoSuchBucket)?;
                if capabilities == Capabilities::NONE {
                    entry.grants.remove(&access_key);
                } else {
                    entry.grants.insert(access_key, capabilities);
                }
            }
            JournalRecord::ObjectPut { bucket, key, new_id, object } => {
                let entry = self.buckets.get_mut(&bucket).ok_or(MetaError::NoSuchBucket)?;
                Self::check_put_quota(entry, &key, object.size_bytes)?;
                entry.usage.add(&object);
                let versions = entry.objects.entry(key).or_default();
                for old in versions.put(entry.versioning, new_id, object) {
                    entry.usage.remove(&old);
                    freed.extend(chunk_extents(&old.chunks));
                }
                note_id(&mut self.last_id, new_id);
            }
            JournalRecord::ObjectDeleted { bucket, key, new_id, now_ms } => {
                let entry = self.buckets.get_mut(&bucket).ok_or(MetaError::NoSuchBucket)?;
                let versioning = entry.versioning;
                if let Some(versions) = entry.objects.get_mut(&key) {
                    let deleted = versions.delete_current(versioning, new_id, now_ms);
                    for old in deleted.removed {
                        entry.usage.remove(&old);
                        freed.extend(chunk_extents(&old.chunks));
                    }
                    if versions.is_empty() {
                        entry.objects.remove(&key);
                    }
                } else if versioning != Versioning::Unversioned {
                    // S3 adds a delete marker even for a key it never saw.
                    let mut versions = storage::version::Versions::default();
                    versions.delete_current(versioning, new_id, now_ms);
                    entry.objects.insert(key, versions);
                }
                note_id(&mut self.last_id, new_id);
            }
            JournalRecord::VersionDeleted { bucket, key, id } => {
                let entry = self.buckets.get_mut(&bucket).ok_or(MetaError::NoSuchBucket)?;
                let versions = entry.objects.get_mut(&key).ok_or(MetaError::NoSuchVersion)?;
                match versions.delete_version(id).ok_or(MetaError::NoSuchVersion)? {
                    Entry::Object { value, .. } => {
                        entry.usage.remove(&value);
                        freed.extend(chunk_extents(&value.chunks));
                    }
                    Entry::DeleteMarker { .. } => {}
                }
                if versions.is_empty() {
                    entry.objects.remove(&key);
                }
            }
            JournalRecord::VersionsExpired { bucket, key, ids } => {
                let entry = self.buckets.get_mut(&bucket).ok_or(MetaError::NoSuchBucket)?;
                let versions = entry.objects.get_mut(&key).ok_or(MetaError::NoSuchVersion)?;
                if ids.iter().any(|id| versions.get(*id).is_none()) {
                    return Err(MetaError::NoSuchVersion);
                }
                for id in ids {
                    if let Some(Entry::Object { value, .. }) = versions.delete_version(id) {
                        entry.usage.remove(&value);
                        freed.extend(chunk_extents(&value.chunks));
                    }
                }
                if versions.is_empty() {
                    entry.objects.remove(&key);
                }
            }
            JournalRecord::MultipartCreated { upload_id, bucket, key, initiated_ms, template } => {
                self.bucket(&bucket)?;
                if self.uploads.contains_key(&upload_id) {
                    return Err(MetaError::Inconsistent);
                }
                if let Some(id) = VersionId::parse(&upload_id) {
                    note_id(&mut self.last_id, id);
                }
                let upload = Upload { bucket, key, initiated_ms, template, parts: BTreeMap::new() };
                self.uploads.insert(upload_id, upload);
            }
            JournalRecord::PartUploaded { upload_id, part_number, part } => {
                let upload = self.uploads.get(&upload_id).ok_or(MetaError::NoSuchUpload)?;
                let bucket = self.buckets.get(&upload.bucket).ok_or(MetaError::Inconsistent)?;
                let replaced = upload.parts.get(&part_number).map_or(0, |old| old.size_bytes);
                if !bucket.usage.allows(
                    &bucket.quota,
                    self.upload_bytes(&upload.bucket) + part.size_bytes - replaced,
                    0,
                ) {
                    return Err(MetaError::QuotaExceeded);
                }
                let upload = self.uploads.get_mut(&upload_id).ok_or(MetaError::NoSuchUpload)?;
                if let Some(old) = upload.parts.insert(part_number, part) {
                    freed.extend(chunk_extents(&old.chunks));
                }
            }
            JournalRecord::MultipartCompleted { upload_id, new_id, parts, etag, now_ms } => {
                let upload = self.uploads.get(&upload_id).ok_or(MetaError::NoSuchUpload)?;
                let object = self.assemble(upload, &parts, &etag, now_ms)?;
                let entry = self.buckets.get(&upload.bucket).ok_or(MetaError::Inconsistent)?;
                let in_upload = self.upload_bytes(&upload.bucket);
                // The parts already count against the quota while uploading;
                // completing moves them into the bucket's usage.
                let others = in_upload.saturating_sub(object.size_bytes);
                Self::check_put_quota(entry, &upload.key, object.size_bytes + others)?;
                let Some(upload) = self.uploads.remove(&upload_id) else { return Err(MetaError::NoSuchUpload) };
                for (number, part) in &upload.parts {
                    if !parts.contains(number) {
                        freed.extend(chunk_extents(&part.chunks));
                    }
                }
                let entry = self.buckets.get_mut(&upload.bucket).ok_or(MetaError::Inconsistent)?;
                entry.usage.add(&object);
                let versions = entry.objects.entry(upload.key).or_default();
                for old in versions.put(entry.versioning, new_id, object) {
                    entry.usage.remove(&old);
                    freed.extend(chunk_extents(&old.chunks));
                }
                note_id(&mut self.last_id, new_id);
            }
            JournalRecord::MultipartAborted { upload_id } => {
                let upload = self.uploads.remove(&upload_id).ok_or(MetaError::NoSuchUpload)?;
                for part in upload.parts.values() {
                    freed.extend(chunk_extents(&part.chunks));
                }
            }
            JournalRecord::SystemPut { namespace, key, value } => {
                self.system.insert((namespace, key), value);
            }
            JournalRecord::SystemDeleted { namespace, key } => {
                self.system.remove(&(namespace, key));
            }
        }
        Ok(freed)
    }

    /// Bytes held by in-progress uploads of a bucket.
    fn upload_bytes(&self, bucket: &str) -> u64 {
        self.uploads
            .values()
            .filter(|upload| upload.bucket == bucket)
            .flat_map(|upload| upload.parts.values())
            .map(|part| part.size_bytes)
            .sum()
    }

    fn check_put_quota(bucket: &Bucket, key: &str, new_bytes: u64) -> Result<(), MetaError> {
        if bucket.quota == Quota::default() {
            // Unlimited: skip the key lookup (half the cost of a replayed PUT).
            return Ok(());
        }
        // An overwrite without versioning frees the old version's bytes.
        let replaced = match bucket.versioning {
            Versioning::Enabled => None,
            Versioning::Unversioned | Versioning::Suspended => bucket
                .objects
                .get(key)
                .and_then(|versions| versions.get(VersionId::Null))
                .and_then(Entry::object)
                .map(|object| object.size_bytes),
        };
        let (bytes, objects) = match replaced {
            Some(old) => (new_bytes.saturating_sub(old), 0),
            None => (new_bytes, 1),
        };
        let used = bucket.usage;
        let shrinking = replaced.is_some_and(|old| new_bytes <= old);
        if shrinking || used.allows(&bucket.quota, bytes, objects) { Ok(()) } else { Err(MetaError::QuotaExceeded) }
    }

    /// The object a CompleteMultipartUpload makes, after S3's checks.
    fn assemble(&self, upload: &Upload, parts: &[u32], etag: &str, now_ms: u64) -> Result<ObjectMeta, MetaError> {
        if parts.is_empty() {
            return Err(MetaError::InvalidPart { part_number: 0 });
        }
        if parts.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(MetaError::InvalidPartOrder);
        }
        let mut chunks = Vec::new();
        let mut part_sizes = Vec::with_capacity(parts.len());
        for (index, number) in parts.iter().enumerate() {
            let part = upload.parts.get(number).ok_or(MetaError::InvalidPart { part_number: *number })?;
            if index + 1 < parts.len() && part.size_bytes < self.min_part_bytes {
                return Err(MetaError::EntityTooSmall { part_number: *number });
            }
            chunks.extend_from_slice(&part.chunks);
            part_sizes.push(part.size_bytes);
        }
        Ok(ObjectMeta {
            size_bytes: part_sizes.iter().sum(),
            etag: String::from(etag),
            last_modified_ms: now_ms,
            content_type: upload.template.content_type.clone(),
            headers: upload.template.headers.clone(),
            checksums: Vec::new(),
            chunks,
            part_sizes,
        })
    }

    /// Every extent the state references.
    pub fn referenced_extents(&self) -> Vec<Extent> {
        let mut extents = Vec::new();
        self.for_each_chunk(|chunk| extents.extend(chunk_extents(core::slice::from_ref(chunk))));
        extents
    }

    /// Calls `visit` with every chunk the state references.
    pub fn for_each_chunk(&self, mut visit: impl FnMut(&ChunkRef)) {
        for bucket in self.buckets.values() {
            for versions in bucket.objects.values() {
                for entry in versions.entries() {
                    if let Entry::Object { value, .. } = entry {
                        value.chunks.iter().for_each(&mut visit);
                    }
                }
            }
        }
        for upload in self.uploads.values() {
            for part in upload.parts.values() {
                part.chunks.iter().for_each(&mut visit);
            }
        }
    }

    /// Every chunk the state references, with where it is used.
    pub fn referenced_chunks(&self) -> Vec<(String, ChunkRef)> {
        let mut chunks = Vec::new();
        for (name, bucket) in &self.buckets {
            for (key, versions) in &bucket.objects {
                for entry in versions.entries() {
                    if let Entry::Object { id, value } = entry {
                        let place = alloc::format!("{name}/{key}@{id}");
                        chunks.extend(value.chunks.iter().map(|chunk| (place.clone(), *chunk)));
                    }
                }
            }
        }
        for (upload_id, upload) in &self.uploads {
            for (number, part) in &upload.parts {
                let place = alloc::format!("upload {upload_id} part {number}");
                chunks.extend(part.chunks.iter().map(|chunk| (place.clone(), *chunk)));
            }
        }
        chunks
    }
}
