//! S3 versioning for one key.
//!
//! A key holds its versions newest first. Each is an object or a delete
//! marker, with a [`VersionId`]: `null` (written while versioning was off
//! or suspended; at most one per key) or a unique ID that sorts by creation
//! time. The rules follow the S3 documentation:
//!
//! | bucket state | PUT | DELETE without versionId |
//! |---|---|---|
//! | unversioned | replaces the `null` version | removes the `null` version |
//! | enabled | adds a new version | adds a delete marker |
//! | suspended | replaces the `null` version | replaces the `null` version with a `null` delete marker |
//!
//! A DELETE with a versionId removes that version permanently, whatever
//! the state. Operations return the values they removed, so the caller can
//! give their space back.

use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

/// A version's identity. `Id` values are `(milliseconds << 20) | counter`:
/// unique, and sorting by them sorts by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VersionId {
    Null,
    Id(u64),
}

impl VersionId {
    /// Parses the form [`fmt::Display`] prints: `null` or 16 hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        if text == "null" {
            return Some(Self::Null);
        }
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(Self::Id)
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => f.write_str("null"),
            Self::Id(id) => write!(f, "{id:016x}"),
        }
    }
}

/// Hands out time-sortable IDs, strictly increasing even if the clock
/// stands still or steps back.
#[derive(Clone, Copy, Debug, Default)]
pub struct VersionIdGenerator {
    last: u64,
}

impl VersionIdGenerator {
    /// Continues after the largest ID already in use.
    pub fn resume_after(last: u64) -> Self {
        Self { last }
    }

    pub fn next(&mut self, now_ms: u64) -> VersionId {
        let from_clock = now_ms.saturating_mul(1 << 20);
        self.last = from_clock.max(self.last.saturating_add(1));
        VersionId::Id(self.last)
    }

    pub fn last(&self) -> u64 {
        self.last
    }
}

/// A bucket's versioning state. Once enabled it can only be suspended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    #[default]
    Unversioned,
    Enabled,
    Suspended,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry<T> {
    Object { id: VersionId, value: T },
    DeleteMarker { id: VersionId, last_modified_ms: u64 },
}

impl<T> Entry<T> {
    pub fn id(&self) -> VersionId {
        match self {
            Self::Object { id, .. } | Self::DeleteMarker { id, .. } => *id,
        }
    }

    pub fn object(&self) -> Option<&T> {
        match self {
            Self::Object { value, .. } => Some(value),
            Self::DeleteMarker { .. } => None,
        }
    }
}

/// The versions of one key, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions<T> {
    newest_first: Vec<Entry<T>>,
}

impl<T> Default for Versions<T> {
    fn default() -> Self {
        Self { newest_first: Vec::new() }
    }
}

/// What a DELETE without a version ID did.
#[derive(Debug, PartialEq, Eq)]
pub struct Deleted<T> {
    pub removed: Vec<T>,
    /// The delete marker it added, if any.
    pub marker: Option<VersionId>,
}

impl<T> Versions<T> {
    pub fn is_empty(&self) -> bool {
        self.newest_first.is_empty()
    }

    pub fn entries(&self) -> &[Entry<T>] {
        &self.newest_first
    }

    pub fn current(&self) -> Option<&Entry<T>> {
        self.newest_first.first()
    }

    /// The current version if it is an object (not a delete marker).
    pub fn current_object(&self) -> Option<(VersionId, &T)> {
        match self.newest_first.first() {
            Some(Entry::Object { id, value }) => Some((*id, value)),
            _ => None,
        }
    }

    pub fn get(&self, id: VersionId) -> Option<&Entry<T>> {
        self.newest_first.iter().find(|entry| entry.id() == id)
    }

    /// Adds the newest entry. Most keys keep one version all their life:
    /// growing the list 1, 2, 4, ... instead of starting at `Vec`'s 4 saves
    /// three entries of memory per key in the index.
    fn push_newest(&mut self, entry: Entry<T>) {
        if self.newest_first.len() == self.newest_first.capacity() {
            self.newest_first.reserve_exact(self.newest_first.len().max(1));
        }
        self.newest_first.insert(0, entry);
    }

    fn take_null(&mut self) -> Option<Entry<T>> {
        let at = self.newest_first.iter().position(|entry| entry.id() == VersionId::Null)?;
        Some(self.newest_first.remove(at))
    }

    /// Stores `value` as the new current version. `new_id` is used only
    /// when versioning is enabled. Returns values the PUT replaced.
    pub fn put(&mut self, versioning: Versioning, new_id: VersionId, value: T) -> Vec<T> {
        let mut removed = Vec::new();
        let id = match versioning {
            Versioning::Enabled => new_id,
            Versioning::Unversioned | Versioning::Suspended => {
                if let Some(Entry::Object { value, .. }) = self.take_null() {
                    removed.push(value);
                }
                VersionId::Null
            }
        };
        self.push_newest(Entry::Object { id, value });
        removed
    }

    /// A DELETE without a version ID.
    pub fn delete_current(&mut self, versioning: Versioning, new_id: VersionId, now_ms: u64) -> Deleted<T> {
        let mut removed = Vec::new();
        let marker = match versioning {
            Versioning::Unversioned => {
                if let Some(Entry::Object { value, .. }) = self.take_null() {
                    removed.push(value);
                }
                None
            }
            Versioning::Enabled => Some(new_id),
            Versioning::Suspended => {
                if let Some(Entry::Object { value, .. }) = self.take_null() {
                    removed.push(value);
                }
                Some(VersionId::Null)
            }
        };
        if let Some(id) = marker {
            self.push_newest(Entry::DeleteMarker { id, last_modified_ms: now_ms });
        }
        Deleted { removed, marker }
    }

    /// A DELETE of one version, permanently.
    pub fn delete_version(&mut self, id: VersionId) -> Option<Entry<T>> {
        let at = self.newest_first.iter().position(|entry| entry.id() == id)?;
        Some(self.newest_first.remove(at))
    }

    /// The garbage-collection hook: removes noncurrent versions for which
    /// `expire(entry, became_noncurrent_ms, newer_noncurrent_count)` says
    /// so, and a delete marker left as the only version. A version becomes
    /// noncurrent when the next newer one is created.
    pub fn expire_noncurrent(
        &mut self,
        mut expire: impl FnMut(&Entry<T>, u64, usize) -> bool,
        created_ms: impl Fn(&Entry<T>) -> u64,
    ) -> Vec<Entry<T>> {
        let mut removed = Vec::new();
        let mut kept: Vec<Entry<T>> = Vec::with_capacity(self.newest_first.len());
        let mut newer_created_ms = 0;
        let mut noncurrent_seen = 0;
        for (index, entry) in core::mem::take(&mut self.newest_first).into_iter().enumerate() {
            let created = created_ms(&entry);
            if index > 0 && expire(&entry, newer_created_ms, noncurrent_seen) {
                removed.push(entry);
            } else {
                if index > 0 {
                    noncurrent_seen += 1;
                }
                kept.push(entry);
            }
            newer_created_ms = created;
        }
        if let [Entry::DeleteMarker { .. }] = kept.as_slice() {
            removed.append(&mut kept);
        }
        self.newest_first = kept;
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn ids(versions: &Versions<u32>) -> Vec<VersionId> {
        versions.entries().iter().map(Entry::id).collect()
    }

    #[test]
    fn ids_sort_by_time_and_round_trip() {
        let mut generator = VersionIdGenerator::default();
        let a = generator.next(1_000);
        let b = generator.next(1_000);
        let c = generator.next(999);
        assert!(a < b && b < c);
        for id in [a, VersionId::Null] {
            assert_eq!(VersionId::parse(&alloc::format!("{id}")), Some(id));
        }
        assert_eq!(VersionId::parse("xyz"), None);
    }

    #[test]
    fn unversioned_replaces_and_removes() {
        let mut versions = Versions::default();
        assert!(versions.put(Versioning::Unversioned, VersionId::Id(1), 10).is_empty());
        assert_eq!(versions.put(Versioning::Unversioned, VersionId::Id(2), 11), vec![10]);
        assert_eq!(ids(&versions), [VersionId::Null]);
        let deleted = versions.delete_current(Versioning::Unversioned, VersionId::Id(3), 5);
        assert_eq!(deleted, Deleted { removed: vec![11], marker: None });
        assert!(versions.is_empty());
    }

    #[test]
    fn enabled_keeps_history_and_adds_markers() {
        let mut versions = Versions::default();
        versions.put(Versioning::Unversioned, VersionId::Id(1), 10);
        versions.put(Versioning::Enabled, VersionId::Id(2), 11);
        let deleted = versions.delete_current(Versioning::Enabled, VersionId::Id(3), 5);
        assert_eq!(deleted.marker, Some(VersionId::Id(3)));
        assert!(versions.current_object().is_none());
        assert_eq!(ids(&versions), [VersionId::Id(3), VersionId::Id(2), VersionId::Null]);
        // Removing the marker makes the previous version current again.
        versions.delete_version(VersionId::Id(3));
        assert_eq!(versions.current_object(), Some((VersionId::Id(2), &11)));
    }

    #[test]
    fn suspended_replaces_only_the_null_version() {
        let mut versions = Versions::default();
        versions.put(Versioning::Enabled, VersionId::Id(1), 10);
        versions.put(Versioning::Suspended, VersionId::Id(2), 11);
        assert_eq!(versions.put(Versioning::Suspended, VersionId::Id(3), 12), vec![11]);
        assert_eq!(ids(&versions), [VersionId::Null, VersionId::Id(1)]);
        let deleted = versions.delete_current(Versioning::Suspended, VersionId::Id(4), 5);
        assert_eq!(deleted, Deleted { removed: vec![12], marker: Some(VersionId::Null) });
        assert_eq!(ids(&versions), [VersionId::Null, VersionId::Id(1)]);
    }

    #[test]
    fn a_single_version_takes_one_slot() {
        let mut versions = Versions::default();
        versions.put(Versioning::Unversioned, VersionId::Id(1), 10u32);
        assert_eq!(versions.newest_first.capacity(), 1);
        for id in 2..=9 {
            versions.put(Versioning::Enabled, VersionId::Id(id), 10);
        }
        assert_eq!(versions.entries().len(), 9);
        assert!(versions.newest_first.capacity() <= 16);
    }

    #[test]
    fn expiry_removes_noncurrent_and_lone_markers() {
        let mut versions = Versions::default();
        for id in 1..=4 {
            versions.put(Versioning::Enabled, VersionId::Id(id), id as u32);
        }
        let removed = versions.expire_noncurrent(|_, _, newer| newer >= 1, |e| e.object().map_or(0, |v| u64::from(*v)));
        assert_eq!(removed.len(), 2);
        assert_eq!(ids(&versions), [VersionId::Id(4), VersionId::Id(3)]);
        versions.delete_current(Versioning::Enabled, VersionId::Id(5), 9);
        let removed = versions.expire_noncurrent(|_, _, _| true, |_| 0);
        assert_eq!(removed.len(), 3, "two noncurrent versions, then the lone marker");
        assert!(versions.is_empty());
    }
}
