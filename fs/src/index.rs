//! The ordered key index: listing with prefix, delimiter and pagination.
//!
//! Keys live in a `BTreeMap` per bucket, ordered by their UTF-8 bytes as
//! S3 orders them. A page is described by where it starts (`start_after`,
//! exclusive: S3's StartAfter, or the last item of the previous page for a
//! continuation) and yields keys and common prefixes in order. A page ends
//! at its last item and the next one starts strictly after it, so pages
//! neither repeat nor skip a key that exists throughout, whatever others
//! write between them. A common prefix is emitted only if it sorts after
//! `start_after`; keys under it are skipped with one seek, not one by one.
//!
//! In-progress multipart uploads page the same way by (key, upload ID)
//! markers ([`list_uploads`], for ListMultipartUploads), and an upload's
//! parts by part number ([`list_parts`], for ListParts). Versions page by
//! (key, version ID) markers ([`list_versions`], for ListObjectVersions).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Bound;

use storage::version::{Entry, VersionId, Versions};

/// S3 caps a listing page at 1,000 entries.
pub const MAX_KEYS_LIMIT: usize = 1000;

#[derive(Clone, Copy, Debug, Default)]
pub struct ListQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Exclusive lower bound (StartAfter, or a continuation token's key).
    pub start_after: Option<&'a str>,
    /// At most this many keys plus common prefixes (capped at 1,000).
    pub max_keys: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListItem<'a, V> {
    Key(&'a str, &'a V),
    CommonPrefix(String),
}

impl<V> ListItem<'_, V> {
    /// The position of the item in key order (what a continuation resumes after).
    pub fn marker(&self) -> &str {
        match self {
            Self::Key(key, _) => key,
            Self::CommonPrefix(prefix) => prefix,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage<'a, V> {
    pub items: Vec<ListItem<'a, V>>,
    /// More items follow; resume after [`ListPage::next_marker`].
    pub is_truncated: bool,
}

impl<V> ListPage<'_, V> {
    pub fn next_marker(&self) -> Option<&str> {
        if self.is_truncated { self.items.last().map(ListItem::marker) } else { None }
    }
}

/// The smallest string greater than every string that starts with
/// `prefix`, if one exists (the prefix with its last character bumped).
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(bumped) = char::from_u32(next) {
            chars.push(bumped);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// One page of `map` for `query`. `visible` filters keys out without
/// ending the page (keys whose current version is a delete marker).
pub fn list<'a, V>(
    map: &'a BTreeMap<String, V>,
    query: &ListQuery<'_>,
    visible: impl Fn(&V) -> bool,
) -> ListPage<'a, V> {
    let max_keys = query.max_keys.min(MAX_KEYS_LIMIT);
    let mut items = Vec::new();
    let mut lower: Bound<String> = match query.start_after {
        Some(after) if after >= query.prefix => Bound::Excluded(String::from(after)),
        _ => Bound::Included(String::from(query.prefix)),
    };
    loop {
        let mut jumped = false;
        let range = map.range::<String, _>((lower.clone(), Bound::Unbounded));
        for (key, value) in range {
            if !key.starts_with(query.prefix) {
                return ListPage { items, is_truncated: false };
            }
            let rest = &key[query.prefix.len()..];
            let common = query
                .delimiter
                .filter(|delimiter| !delimiter.is_empty())
                .and_then(|delimiter| rest.find(delimiter).map(|at| &key[..query.prefix.len() + at + delimiter.len()]));
            match common {
                Some(common) => {
                    let after_marker = query.start_after.is_none_or(|after| common > after);
                    // A common prefix groups keys that may all be hidden; it
                    // is listed only if one of them is visible.
                    let any_visible = after_marker && group_has_visible(map, common, &visible);
                    if any_visible {
                        if items.len() == max_keys {
                            return ListPage { items, is_truncated: true };
                        }
                        items.push(ListItem::CommonPrefix(String::from(common)));
                    }
                    match prefix_successor(common) {
                        Some(successor) => {
                            lower = Bound::Included(successor);
                            jumped = true;
                            break;
                        }
                        None => return ListPage { items, is_truncated: false },
                    }
                }
                None => {
                    if !visible(value) {
                        continue;
                    }
                    if items.len() == max_keys {
                        return ListPage { items, is_truncated: true };
                    }
                    items.push(ListItem::Key(key, value));
                }
            }
        }
        if !jumped {
            return ListPage { items, is_truncated: false };
        }
    }
}

fn group_has_visible<V>(map: &BTreeMap<String, V>, common: &str, visible: &impl Fn(&V) -> bool) -> bool {
    map.range::<str, _>((Bound::Included(common), Bound::Unbounded))
        .take_while(|(key, _)| key.starts_with(common))
        .any(|(_, value)| visible(value))
}

/// S3 caps ListParts and ListMultipartUploads pages at 1,000 entries too.
pub const MAX_PARTS_LIMIT: usize = 1000;

/// One page of ListParts: parts after `part_number_marker`, in order, and
/// the marker to continue after if more follow.
pub fn list_parts<V>(
    parts: &BTreeMap<u32, V>,
    part_number_marker: Option<u32>,
    max_parts: usize,
) -> (Vec<(u32, &V)>, Option<u32>) {
    let max_parts = max_parts.min(MAX_PARTS_LIMIT);
    let after = part_number_marker.map_or(Bound::Unbounded, Bound::Excluded);
    let mut range = parts.range((after, Bound::Unbounded));
    let page: Vec<(u32, &V)> = range.by_ref().take(max_parts).map(|(number, part)| (*number, part)).collect();
    let next = if range.next().is_some() { page.last().map(|(number, _)| *number) } else { None };
    (page, next)
}

#[derive(Clone, Copy, Debug, Default)]
pub struct UploadQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Uploads of keys after this one (S3's KeyMarker) ...
    pub key_marker: Option<&'a str>,
    /// ... and, with a key marker, that key's uploads after this ID.
    pub upload_id_marker: Option<&'a str>,
    /// At most this many uploads plus common prefixes (capped at 1,000).
    pub max_uploads: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadItem<'a, V> {
    Upload { key: &'a str, upload_id: &'a str, upload: &'a V },
    CommonPrefix(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadPage<'a, V> {
    pub items: Vec<UploadItem<'a, V>>,
    pub is_truncated: bool,
}

impl<V> UploadPage<'_, V> {
    /// (NextKeyMarker, NextUploadIdMarker) when truncated.
    pub fn next_markers(&self) -> Option<(&str, Option<&str>)> {
        if !self.is_truncated {
            return None;
        }
        match self.items.last()? {
            UploadItem::Upload { key, upload_id, .. } => Some((key, Some(upload_id))),
            UploadItem::CommonPrefix(prefix) => Some((prefix, None)),
        }
    }
}

/// One page of ListMultipartUploads over `(key, upload ID, upload)` of one
/// bucket: ordered by key, then upload ID (IDs sort by initiation time),
/// after the markers; a delimiter groups keys into common prefixes as in
/// [`list`]. In-progress uploads are few, so this sorts them per call.
pub fn list_uploads<'a, V>(
    uploads: impl IntoIterator<Item = (&'a str, &'a str, &'a V)>,
    query: &UploadQuery<'_>,
) -> UploadPage<'a, V> {
    let max_uploads = query.max_uploads.min(MAX_PARTS_LIMIT);
    let mut sorted: Vec<(&str, &str, &V)> =
        uploads.into_iter().filter(|(key, _, _)| key.starts_with(query.prefix)).collect();
    sorted.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let after_marker = |key: &str, upload_id: Option<&str>| match (query.key_marker, query.upload_id_marker) {
        (None, _) => true,
        (Some(marker), Some(id_marker)) => {
            key > marker || (key == marker && upload_id.is_some_and(|id| id > id_marker))
        }
        (Some(marker), None) => key > marker,
    };
    let mut items: Vec<UploadItem<'a, V>> = Vec::new();
    let mut last_prefix: Option<&str> = None;
    for (key, upload_id, upload) in sorted {
        let common = query.delimiter.filter(|delimiter| !delimiter.is_empty()).and_then(|delimiter| {
            key[query.prefix.len()..].find(delimiter).map(|at| &key[..query.prefix.len() + at + delimiter.len()])
        });
        let item = match common {
            Some(common) => {
                if last_prefix == Some(common) || !after_marker(common, None) {
                    continue;
                }
                last_prefix = Some(common);
                UploadItem::CommonPrefix(String::from(common))
            }
            None => {
                if !after_marker(key, Some(upload_id)) {
                    continue;
                }
                UploadItem::Upload { key, upload_id, upload }
            }
        };
        if items.len() == max_uploads {
            return UploadPage { items, is_truncated: true };
        }
        items.push(item);
    }
    UploadPage { items, is_truncated: false }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct VersionQuery<'a> {
    pub prefix: &'a str,
    pub delimiter: Option<&'a str>,
    /// Versions of keys after this one (S3's KeyMarker) ...
    pub key_marker: Option<&'a str>,
    /// ... and, with a key marker, that key's versions older than this one.
    pub version_id_marker: Option<VersionId>,
    /// At most this many versions plus common prefixes (capped at 1,000).
    pub max_keys: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionItem<'a, T> {
    /// A version or delete marker; `is_latest` for the key's current one.
    Version {
        key: &'a str,
        entry: &'a Entry<T>,
        is_latest: bool,
    },
    CommonPrefix(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionPage<'a, T> {
    pub items: Vec<VersionItem<'a, T>>,
    pub is_truncated: bool,
}

impl<T> VersionPage<'_, T> {
    /// (NextKeyMarker, NextVersionIdMarker) when truncated.
    pub fn next_markers(&self) -> Option<(&str, Option<VersionId>)> {
        if !self.is_truncated {
            return None;
        }
        match self.items.last()? {
            VersionItem::Version { key, entry, .. } => Some((key, Some(entry.id()))),
            VersionItem::CommonPrefix(prefix) => Some((prefix, None)),
        }
    }
}

/// One page of ListObjectVersions: keys in order, each key's versions
/// newest first, after the markers; a delimiter groups keys into common
/// prefixes as in [`list`]. If the version marker no longer exists (it was
/// deleted between pages), the rest of its key is skipped rather than
/// listed twice.
pub fn list_versions<'a, T>(map: &'a BTreeMap<String, Versions<T>>, query: &VersionQuery<'_>) -> VersionPage<'a, T> {
    let max_keys = query.max_keys.min(MAX_KEYS_LIMIT);
    let mut items = Vec::new();
    let version_marker = query.key_marker.zip(query.version_id_marker);
    let mut lower: Bound<String> = match query.key_marker {
        Some(marker) if marker >= query.prefix => match version_marker {
            Some(_) => Bound::Included(String::from(marker)),
            None => Bound::Excluded(String::from(marker)),
        },
        _ => Bound::Included(String::from(query.prefix)),
    };
    loop {
        let mut jumped = false;
        for (key, versions) in map.range::<String, _>((lower.clone(), Bound::Unbounded)) {
            if !key.starts_with(query.prefix) {
                return VersionPage { items, is_truncated: false };
            }
            let common = query.delimiter.filter(|delimiter| !delimiter.is_empty()).and_then(|delimiter| {
                key[query.prefix.len()..].find(delimiter).map(|at| &key[..query.prefix.len() + at + delimiter.len()])
            });
            if let Some(common) = common {
                if query.key_marker.is_none_or(|marker| common > marker) {
                    if items.len() == max_keys {
                        return VersionPage { items, is_truncated: true };
                    }
                    items.push(VersionItem::CommonPrefix(String::from(common)));
                }
                match prefix_successor(common) {
                    Some(successor) => {
                        lower = Bound::Included(successor);
                        jumped = true;
                        break;
                    }
                    None => return VersionPage { items, is_truncated: false },
                }
            }
            let entries = versions.entries();
            let skip = match version_marker {
                Some((marker_key, marker_id)) if marker_key == key => {
                    entries.iter().position(|entry| entry.id() == marker_id).map_or(entries.len(), |at| at + 1)
                }
                _ => 0,
            };
            for (index, entry) in entries.iter().enumerate().skip(skip) {
                if items.len() == max_keys {
                    return VersionPage { items, is_truncated: true };
                }
                items.push(VersionItem::Version { key, entry, is_latest: index == 0 });
            }
        }
        if !jumped {
            return VersionPage { items, is_truncated: false };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: &[&str]) -> BTreeMap<String, u32> {
        keys.iter().enumerate().map(|(i, k)| (String::from(*k), i as u32)).collect()
    }

    fn markers(page: &ListPage<'_, u32>) -> Vec<String> {
        page.items.iter().map(|item| String::from(item.marker())).collect()
    }

    #[test]
    fn prefix_delimiter_and_pages() {
        let map = map(&["a", "b/1", "b/2", "b/c/3", "c", "d/x"]);
        let query = ListQuery { prefix: "", delimiter: Some("/"), start_after: None, max_keys: 3 };
        let page = list(&map, &query, |_| true);
        assert_eq!(markers(&page), ["a", "b/", "c"]);
        assert!(page.is_truncated);
        let next = ListQuery { start_after: page.next_marker(), ..query };
        let page = list(&map, &next, |_| true);
        assert_eq!(markers(&page), ["d/"]);
        assert!(!page.is_truncated);
        let query = ListQuery { prefix: "b/", delimiter: Some("/"), start_after: None, max_keys: 1000 };
        assert_eq!(markers(&list(&map, &query, |_| true)), ["b/1", "b/2", "b/c/"]);
    }

    #[test]
    fn hidden_keys_do_not_count_or_make_prefixes() {
        let map = map(&["a", "b/1", "c"]);
        let query = ListQuery { prefix: "", delimiter: Some("/"), start_after: None, max_keys: 10 };
        assert_eq!(markers(&list(&map, &query, |v| *v != 1)), ["a", "c"]);
    }

    #[test]
    fn successor_skips_surrogates_and_carries() {
        assert_eq!(prefix_successor("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
    }
}
