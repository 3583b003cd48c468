//! Listing against a model: for random key sets, prefixes, delimiters and
//! page sizes, paging through `fs::index::list` yields exactly what a
//! naive filter over a `BTreeMap` gives, with no key repeated or skipped,
//! also when keys are inserted and removed between pages; and the same for
//! multipart uploads (ListMultipartUploads) and their parts (ListParts).

use std::collections::{BTreeMap, BTreeSet};

use fs::index::{
    ListItem, ListQuery, UploadItem, UploadQuery, VersionItem, VersionQuery, list, list_parts, list_uploads,
    list_versions,
};
use proptest::prelude::*;
use storage::version::{VersionId, Versioning, Versions};

/// Everything a full listing shows, in order: keys and common prefixes.
fn model(keys: &BTreeSet<String>, prefix: &str, delimiter: Option<&str>, start_after: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        if !key.starts_with(prefix) || start_after.is_some_and(|after| key.as_str() <= after) {
            continue;
        }
        let item = match delimiter.filter(|d| !d.is_empty()).and_then(|d| key[prefix.len()..].find(d).map(|at| (at, d)))
        {
            Some((at, d)) => key[..prefix.len() + at + d.len()].to_string(),
            None => key.clone(),
        };
        if start_after.is_some_and(|after| item.as_str() <= after) {
            continue;
        }
        if out.last() != Some(&item) {
            out.push(item);
        }
    }
    out
}

fn page_all(
    map: &mut BTreeMap<String, u8>,
    prefix: &str,
    delimiter: Option<&str>,
    max_keys: usize,
    churn: &[(bool, String)],
) -> Vec<String> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = ListQuery { prefix, delimiter, start_after: marker.as_deref(), max_keys };
        let page = list(map, &query, |_| true);
        let items: Vec<String> = page
            .items
            .iter()
            .map(|item| match item {
                ListItem::Key(key, _) => key.to_string(),
                ListItem::CommonPrefix(prefix) => prefix.clone(),
            })
            .collect();
        assert!(items.len() <= max_keys.clamp(1, 1000));
        out.extend(items);
        let next = page.next_marker().map(str::to_string);
        // Others write between pages.
        if let Some((insert, key)) = churn.get(pages) {
            if *insert {
                map.insert(key.clone(), 0);
            } else {
                map.remove(key);
            }
        }
        pages += 1;
        match next {
            Some(next) => marker = Some(next),
            None => return out,
        }
        assert!(pages < 10_000, "pagination does not end");
    }
}

fn key_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof!["a", "b", "/", "-", "é", "z", "ab/", "\u{10FFFF}"], 0..6)
        .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn listing_matches_the_model(
        keys in proptest::collection::btree_set(key_strategy(), 0..60),
        prefix in prop_oneof!["", "a", "ab", "b/", "é"],
        delimiter in prop_oneof![Just(None), Just(Some("/")), Just(Some("b")), Just(Some("ab/")), Just(Some(""))],
        max_keys in 1usize..8,
    ) {
        let mut map: BTreeMap<String, u8> = keys.iter().map(|k| (k.clone(), 0)).collect();
        let listed = page_all(&mut map, &prefix, delimiter, max_keys, &[]);
        prop_assert_eq!(listed, model(&keys, &prefix, delimiter, None));
    }

    #[test]
    fn start_after_matches_the_model(
        keys in proptest::collection::btree_set(key_strategy(), 0..40),
        start_after in key_strategy(),
        delimiter in prop_oneof![Just(None), Just(Some("/"))],
    ) {
        let map: BTreeMap<String, u8> = keys.iter().map(|k| (k.clone(), 0)).collect();
        let query = ListQuery { prefix: "", delimiter, start_after: Some(&start_after), max_keys: 1000 };
        let page = list(&map, &query, |_| true);
        let listed: Vec<String> = page.items.iter().map(|item| item.marker().to_string()).collect();
        prop_assert_eq!(listed, model(&keys, "", delimiter, Some(&start_after)));
    }

    #[test]
    fn pages_never_repeat_or_skip_stable_keys_under_churn(
        keys in proptest::collection::btree_set(key_strategy(), 1..60),
        churn in proptest::collection::vec((any::<bool>(), key_strategy()), 0..30),
        max_keys in 1usize..5,
    ) {
        let mut map: BTreeMap<String, u8> = keys.iter().map(|k| (k.clone(), 0)).collect();
        let touched: BTreeSet<String> = churn.iter().map(|(_, key)| key.clone()).collect();
        let listed = page_all(&mut map, "", None, max_keys, &churn);
        let mut seen = BTreeSet::new();
        for key in &listed {
            prop_assert!(seen.insert(key.clone()), "key {} listed twice", key);
        }
        for key in keys.difference(&touched) {
            prop_assert!(seen.contains(key), "stable key {} skipped", key);
        }
        prop_assert!(listed.windows(2).all(|pair| pair[0] < pair[1]), "listing out of order");
    }
}

/// ListMultipartUploads: every upload of the model, paged through with
/// (key, upload ID) markers, in order and exactly once.
fn uploads_model(uploads: &BTreeSet<(String, String)>, prefix: &str, delimiter: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (key, id) in uploads {
        if !key.starts_with(prefix) {
            continue;
        }
        let item = match delimiter.filter(|d| !d.is_empty()).and_then(|d| key[prefix.len()..].find(d).map(|at| (at, d)))
        {
            Some((at, d)) => format!("prefix {}", &key[..prefix.len() + at + d.len()]),
            None => format!("upload {key} {id}"),
        };
        if out.last() != Some(&item) {
            out.push(item);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn upload_pages_match_the_model(
        uploads in proptest::collection::btree_set((key_strategy(), prop_oneof!["0001", "0002", "0003"]), 0..40),
        prefix in prop_oneof!["", "a", "b/"],
        delimiter in prop_oneof![Just(None), Just(Some("/")), Just(Some("b"))],
        max_uploads in 1usize..5,
    ) {
        let values: Vec<(String, String, u8)> = uploads.iter().map(|(k, id)| (k.clone(), id.clone(), 0)).collect();
        let mut listed = Vec::new();
        let mut markers: Option<(String, Option<String>)> = None;
        for _ in 0..1000 {
            let query = UploadQuery {
                prefix: &prefix,
                delimiter,
                key_marker: markers.as_ref().map(|(key, _)| key.as_str()),
                upload_id_marker: markers.as_ref().and_then(|(_, id)| id.as_deref()),
                max_uploads,
            };
            let page = list_uploads(values.iter().map(|(k, id, v)| (k.as_str(), id.as_str(), v)), &query);
            prop_assert!(page.items.len() <= max_uploads);
            for item in &page.items {
                listed.push(match item {
                    UploadItem::Upload { key, upload_id, .. } => format!("upload {key} {upload_id}"),
                    UploadItem::CommonPrefix(prefix) => format!("prefix {prefix}"),
                });
            }
            match page.next_markers() {
                Some((key, id)) => markers = Some((key.to_string(), id.map(str::to_string))),
                None => break,
            }
        }
        prop_assert_eq!(listed, uploads_model(&uploads, &prefix, delimiter));
    }

    #[test]
    fn part_pages_match_the_model(
        numbers in proptest::collection::btree_set(1u32..10_000, 0..50),
        max_parts in 1usize..7,
    ) {
        let parts: BTreeMap<u32, u32> = numbers.iter().map(|n| (*n, n * 2)).collect();
        let mut listed = Vec::new();
        let mut marker = None;
        loop {
            let (page, next) = list_parts(&parts, marker, max_parts);
            prop_assert!(page.len() <= max_parts);
            prop_assert!(page.iter().all(|(number, value)| **value == number * 2));
            listed.extend(page.iter().map(|(number, _)| *number));
            match next {
                Some(next) => marker = Some(next),
                None => break,
            }
        }
        prop_assert_eq!(listed, numbers.into_iter().collect::<Vec<_>>());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// ListObjectVersions: every version of every key, newest first per
    /// key, paged through with (key, version ID) markers, exactly once.
    #[test]
    fn version_pages_match_the_model(
        keys in proptest::collection::btree_map(key_strategy(), 1usize..4, 0..30),
        prefix in prop_oneof!["", "a", "b/"],
        delimiter in prop_oneof![Just(None), Just(Some("/"))],
        max_keys in 1usize..5,
    ) {
        let mut next_id = 0u64;
        let map: BTreeMap<String, Versions<u8>> = keys
            .iter()
            .map(|(key, count)| {
                let mut versions = Versions::default();
                for _ in 0..*count {
                    next_id += 1;
                    versions.put(Versioning::Enabled, VersionId::Id(next_id), 0);
                }
                (key.clone(), versions)
            })
            .collect();
        let mut expected: Vec<String> = Vec::new();
        for item in model(&keys.keys().cloned().collect(), &prefix, delimiter, None) {
            match map.get(&item) {
                Some(versions) if delimiter.is_none_or(|d| !item[prefix.len()..].contains(d)) => {
                    expected.extend(versions.entries().iter().map(|entry| format!("{item} {}", entry.id())));
                }
                _ => expected.push(format!("prefix {item}")),
            }
        }
        let mut listed = Vec::new();
        let mut markers: Option<(String, Option<VersionId>)> = None;
        for _ in 0..1000 {
            let query = VersionQuery {
                prefix: &prefix,
                delimiter,
                key_marker: markers.as_ref().map(|(key, _)| key.as_str()),
                version_id_marker: markers.as_ref().and_then(|(_, id)| *id),
                max_keys,
            };
            let page = list_versions(&map, &query);
            prop_assert!(page.items.len() <= max_keys);
            for item in &page.items {
                listed.push(match item {
                    VersionItem::Version { key, entry, .. } => format!("{key} {}", entry.id()),
                    VersionItem::CommonPrefix(prefix) => format!("prefix {prefix}"),
                });
            }
            match page.next_markers() {
                Some((key, id)) => markers = Some((key.to_string(), id)),
                None => break,
            }
        }
        prop_assert_eq!(listed, expected);
    }
}
