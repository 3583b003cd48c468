//! The catalog: buckets, their owners, per-key capabilities, quotas and
//! usage. Pure data and rules; the store applies them under its lock.

use alloc::collections::BTreeMap;
use alloc::string::String;

use serde::{Deserialize, Serialize};
use storage::version::{Versioning, Versions};

use crate::record::ObjectMeta;

/// What an access key may do on a bucket (bit set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities(u8);

impl Capabilities {
    pub const NONE: Self = Self(0);
    pub const READ: Self = Self(1);
    pub const WRITE: Self = Self(2);
    pub const LIST: Self = Self(4);
    /// Change the bucket's settings and grants, delete it.
    pub const OWNER: Self = Self(8);
    pub const ALL: Self = Self(15);

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Unknown bits are dropped: a record from a newer format cannot grant
    /// more than this code understands.
    pub const fn from_bits_truncate(bits: u8) -> Self {
        Self(bits & Self::ALL.0)
    }
}

/// Limits checked before a write is accepted; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub max_bytes: Option<u64>,
    pub max_objects: Option<u64>,
}

/// Space and count used by a bucket: every stored version counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub bytes: u64,
    pub objects: u64,
}

impl Usage {
    pub fn add(&mut self, object: &ObjectMeta) {
        self.bytes += object.size_bytes;
        self.objects += 1;
    }

    pub fn remove(&mut self, object: &ObjectMeta) {
        self.bytes = self.bytes.saturating_sub(object.size_bytes);
        self.objects = self.objects.saturating_sub(1);
    }

    /// Whether adding `bytes` in `objects` more objects stays within `quota`.
    pub fn allows(&self, quota: &Quota, bytes: u64, objects: u64) -> bool {
        quota.max_bytes.is_none_or(|max| self.bytes.saturating_add(bytes) <= max)
            && quota.max_objects.is_none_or(|max| self.objects.saturating_add(objects) <= max)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub owner: String,
    pub created_ms: u64,
    pub versioning: Versioning,
    pub quota: Quota,
    /// access key -> capabilities; the owner has all of them implicitly.
    pub grants: BTreeMap<String, Capabilities>,
    pub usage: Usage,
    /// The index: key -> versions, ordered by key bytes.
    pub objects: BTreeMap<String, Versions<ObjectMeta>>,
}

impl Bucket {
    pub fn new(owner: String, created_ms: u64) -> Self {
        Self {
            owner,
            created_ms,
            versioning: Versioning::Unversioned,
            quota: Quota::default(),
            grants: BTreeMap::new(),
            usage: Usage::default(),
            objects: BTreeMap::new(),
        }
    }

    /// What `access_key` may do here.
    pub fn capabilities_of(&self, access_key: &str) -> Capabilities {
        if self.owner == access_key {
            return Capabilities::ALL;
        }
        self.grants.get(access_key).copied().unwrap_or(Capabilities::NONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_and_quota() {
        let rw = Capabilities::READ.union(Capabilities::WRITE);
        assert!(rw.contains(Capabilities::READ) && !rw.contains(Capabilities::LIST));
        assert_eq!(Capabilities::from_bits_truncate(0xFF), Capabilities::ALL);
        let usage = Usage { bytes: 90, objects: 9 };
        let quota = Quota { max_bytes: Some(100), max_objects: Some(10) };
        assert!(usage.allows(&quota, 10, 1));
        assert!(!usage.allows(&quota, 11, 1));
        assert!(!usage.allows(&quota, 0, 2));
        let mut bucket = Bucket::new("alice".into(), 0);
        bucket.grants.insert("bob".into(), Capabilities::LIST);
        assert_eq!(bucket.capabilities_of("alice"), Capabilities::ALL);
        assert_eq!(bucket.capabilities_of("bob"), Capabilities::LIST);
        assert_eq!(bucket.capabilities_of("eve"), Capabilities::NONE);
    }
}
