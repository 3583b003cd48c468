//! Listing against a model: for random key sets, prefixes, delimiters and
//! page sizes, paging through `fs::index::list` yields exactly what a
//! naive filter over a `BTreeMap` gives, with no key repeated or skipped,
//! also when keys are inserted and removed between pages.

use std::collections::{BTreeMap, BTreeSet};

use fs::index::{ListItem, ListQuery, list};
use proptest::prelude::*;

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
