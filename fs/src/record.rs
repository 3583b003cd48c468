//! Journal records: every mutation of the metadata, as it is logged.
//!
//! A record carries every input its effect depends on (times, version IDs,
//! upload IDs), so replaying it at boot does exactly what it did the first
//! time. Records are encoded with postcard 1.x (a stable, documented
//! varint format) inside journal batches; see the crate README.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use storage::object::ChunkRef;
use storage::version::{VersionId, Versioning};

use crate::catalog::{Capabilities, Quota};

/// Stored facts about one object version. Headers are whatever the S3
/// layer chooses to keep (`x-amz-meta-*`, `content-encoding`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub size_bytes: u64,
    /// The S3 ETag without quotes: hex MD5, or hex MD5 of part MD5s + `-N`.
    pub etag: String,
    pub last_modified_ms: u64,
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Client checksums: (algorithm name as S3 spells it, base64 value).
    pub checksums: Vec<(String, String)>,
    pub chunks: Vec<ChunkRef>,
    /// Sizes of the parts for a multipart object (empty otherwise).
    pub part_sizes: Vec<u64>,
}

/// At least the postcard bytes of this many strings, chunks and numbers:
/// each string or list has a length prefix of at most 5 bytes, a chunk
/// reference at most 29 bytes, a number at most 10.
fn bound(strings: impl Iterator<Item = usize>, chunks: usize, numbers: usize) -> usize {
    strings.map(|len| len + 5).sum::<usize>() + chunks * 29 + numbers * 10
}

impl ObjectMeta {
    /// An upper bound of the encoded size of a record holding this.
    pub fn encoded_bound(&self, bucket: &str, key: &str) -> usize {
        let strings = [bucket.len(), key.len(), self.etag.len(), self.content_type.as_ref().map_or(0, String::len)]
            .into_iter()
            .chain(self.headers.iter().chain(&self.checksums).flat_map(|(name, value)| [name.len(), value.len()]));
        // + the variant, version ID and the lists' own prefixes.
        64 + bound(strings, self.chunks.len(), 4 + self.part_sizes.len())
    }
}

/// One uploaded part of a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartMeta {
    pub size_bytes: u64,
    pub md5: [u8; 16],
    pub last_modified_ms: u64,
    pub checksums: Vec<(String, String)>,
    pub chunks: Vec<ChunkRef>,
}

impl PartMeta {
    /// An upper bound of the encoded size of a record holding this.
    pub fn encoded_bound(&self, upload_id: &str) -> usize {
        let strings = [upload_id.len()]
            .into_iter()
            .chain(self.checksums.iter().flat_map(|(name, value)| [name.len(), value.len()]));
        64 + 16 + bound(strings, self.chunks.len(), 4)
    }
}

/// What an upload will become: set at CreateMultipartUpload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadTemplate {
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JournalRecord {
    BucketCreated {
        name: String,
        owner: String,
        created_ms: u64,
    },
    BucketDeleted {
        name: String,
    },
    BucketRenamed {
        from: String,
        to: String,
    },
    VersioningSet {
        bucket: String,
        versioning: Versioning,
    },
    QuotaSet {
        bucket: String,
        quota: Quota,
    },
    /// Capabilities of one access key on a bucket; empty revokes.
    GrantSet {
        bucket: String,
        access_key: String,
        capabilities: Capabilities,
    },
    ObjectPut {
        bucket: String,
        key: String,
        new_id: VersionId,
        object: ObjectMeta,
    },
    /// DELETE without a version ID (may add a delete marker `new_id`).
    ObjectDeleted {
        bucket: String,
        key: String,
        new_id: VersionId,
        now_ms: u64,
    },
    VersionDeleted {
        bucket: String,
        key: String,
        id: VersionId,
    },
    /// Garbage collection removed these versions.
    VersionsExpired {
        bucket: String,
        key: String,
        ids: Vec<VersionId>,
    },
    MultipartCreated {
        upload_id: String,
        bucket: String,
        key: String,
        initiated_ms: u64,
        template: UploadTemplate,
    },
    PartUploaded {
        upload_id: String,
        part_number: u32,
        part: PartMeta,
    },
    MultipartCompleted {
        upload_id: String,
        new_id: VersionId,
        parts: Vec<u32>,
        etag: String,
        now_ms: u64,
    },
    MultipartAborted {
        upload_id: String,
    },
    /// Small records of the layers above (the keystore), by namespace.
    SystemPut {
        namespace: String,
        key: String,
        value: Vec<u8>,
    },
    SystemDeleted {
        namespace: String,
        key: String,
    },
}
