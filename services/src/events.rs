//! Event hooks: object created and removed events in the S3 event
//! notification format, kept in a bounded queue on the data disk (the
//! store's system namespace [`EVENTS_NAMESPACE`], one value per event keyed
//! by its sequence number) and read and acknowledged through the admin API.
//!
//! An event is staged right after the change it describes committed, and
//! becomes durable with the next commit (any request's, or the periodic
//! [`EventQueue::sync`]): a power cut in that window can lose the event,
//! never the change. When the queue is full the oldest event is dropped
//! and counted.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use fs::state::MetaState;
use fs::store::{Store, StoreError};
use spin::Mutex;
use storage::block::BlockDevice;

use crate::log::{write_json_str, write_rfc3339};

pub const EVENTS_NAMESPACE: &str = "events";
/// The dropped-event count, under this key in [`STATE_NAMESPACE`].
const STATE_NAMESPACE: &str = "events-state";
const DROPPED_KEY: &str = "dropped";

/// What happened to an object, as S3 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventName {
    Put,
    Copy,
    CompleteMultipartUpload,
    Delete,
    DeleteMarkerCreated,
}

impl EventName {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Put => "ObjectCreated:Put",
            Self::Copy => "ObjectCreated:Copy",
            Self::CompleteMultipartUpload => "ObjectCreated:CompleteMultipartUpload",
            Self::Delete => "ObjectRemoved:Delete",
            Self::DeleteMarkerCreated => "ObjectRemoved:DeleteMarkerCreated",
        }
    }
}

/// One event's facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub name: EventName,
    pub bucket: &'a str,
    pub key: &'a str,
    pub size: Option<u64>,
    pub etag: Option<&'a str>,
    pub version_id: Option<String>,
    pub principal: &'a str,
    pub request_id: &'a str,
    pub time_ms: u64,
}

/// The queue's position and counters (the events themselves are in the
/// store's state).
pub struct EventQueue {
    capacity: usize,
    next_seq: AtomicU64,
    dropped: AtomicU64,
    /// Events held now, so that an emit need not count the namespace; its
    /// lock also serializes staging so sequence numbers and trimming agree.
    held: Mutex<usize>,
    region: String,
}

fn seq_key(seq: u64) -> String {
    format!("{seq:016x}")
}

/// The S3 event notification record (one `Records` entry).
fn record_json(event: &Event<'_>, seq: u64, region: &str) -> String {
    let mut out = String::from("{\"eventVersion\":\"2.1\",\"eventSource\":\"aws:s3\",\"awsRegion\":");
    let _ = write_json_str(&mut out, region);
    out.push_str(",\"eventTime\":\"");
    let _ = write_rfc3339(&mut out, event.time_ms * 1_000_000);
    out.push_str("\",\"eventName\":");
    let _ = write_json_str(&mut out, event.name.as_str());
    out.push_str(",\"userIdentity\":{\"principalId\":");
    let _ = write_json_str(&mut out, event.principal);
    out.push_str("},\"responseElements\":{\"x-amz-request-id\":");
    let _ = write_json_str(&mut out, event.request_id);
    out.push_str("},\"s3\":{\"s3SchemaVersion\":\"1.0\",\"bucket\":{\"name\":");
    let _ = write_json_str(&mut out, event.bucket);
    out.push_str(",\"arn\":");
    let _ = write_json_str(&mut out, &format!("arn:aws:s3:::{}", event.bucket));
    out.push_str("},\"object\":{\"key\":");
    let _ = write_json_str(&mut out, &crate::s3::xml::url_encode(event.key));
    if let Some(size) = event.size {
        let _ = write!(out, ",\"size\":{size}");
    }
    if let Some(etag) = event.etag {
        out.push_str(",\"eTag\":");
        let _ = write_json_str(&mut out, etag);
    }
    if let Some(version) = &event.version_id {
        out.push_str(",\"versionId\":");
        let _ = write_json_str(&mut out, version);
    }
    let _ = write!(out, ",\"sequencer\":\"{seq:016X}\"}}}}}}");
    out
}

/// The stored events from sequence key `from` on, oldest first:
/// (sequence key, record JSON).
fn events_from<'s>(state: &'s MetaState, from: &str) -> impl Iterator<Item = (&'s str, &'s Vec<u8>)> {
    state
        .system
        .range((String::from(EVENTS_NAMESPACE), String::from(from))..)
        .take_while(|((ns, _), _)| ns == EVENTS_NAMESPACE)
        .map(|((_, key), value)| (key.as_str(), value))
}

impl EventQueue {
    /// Resumes after the events already stored.
    pub fn open<D: BlockDevice>(store: &Store<D>, capacity: usize, region: &str) -> Self {
        let (last, held, dropped) = store.with_state(|state| {
            let seqs: Vec<u64> =
                events_from(state, "").filter_map(|(key, _)| u64::from_str_radix(key, 16).ok()).collect();
            let dropped = state
                .system
                .get(&(String::from(STATE_NAMESPACE), String::from(DROPPED_KEY)))
                .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
                .map_or(0, u64::from_le_bytes);
            (seqs.iter().copied().max(), seqs.len(), dropped)
        });
        Self {
            capacity: capacity.max(1),
            next_seq: AtomicU64::new(last.map_or(1, |l| l + 1)),
            dropped: AtomicU64::new(dropped),
            held: Mutex::new(held),
            region: String::from(region),
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stages the event (durable with the next commit); drops the oldest
    /// when the queue is full.
    pub fn emit<D: BlockDevice>(&self, store: &Store<D>, event: &Event<'_>) -> Result<(), StoreError> {
        let mut held = self.held.lock();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        store.stage_system_put(EVENTS_NAMESPACE, &seq_key(seq), record_json(event, seq, &self.region).into_bytes())?;
        *held += 1;
        if *held > self.capacity
            && let Some(oldest) =
                store.with_state(|state| events_from(state, "").next().map(|(key, _)| String::from(key)))
        {
            store.stage_system_delete(EVENTS_NAMESPACE, &oldest)?;
            *held -= 1;
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            store.stage_system_put(STATE_NAMESPACE, DROPPED_KEY, dropped.to_le_bytes().to_vec())?;
        }
        Ok(())
    }

    /// Up to `max` events after `after`, oldest first: (sequence, record JSON).
    pub fn list<D: BlockDevice>(&self, store: &Store<D>, after: u64, max: usize) -> Vec<(u64, String)> {
        store.with_state(|state| {
            events_from(state, &seq_key(after.saturating_add(1)))
                .filter_map(|(key, value)| {
                    Some((u64::from_str_radix(key, 16).ok()?, String::from_utf8(value.clone()).ok()?))
                })
                .take(max)
                .collect()
        })
    }

    /// Removes every event up to and including `upto`; durable on return.
    pub async fn ack<D: BlockDevice>(&self, store: &Store<D>, upto: u64) -> Result<usize, StoreError> {
        let removed = {
            let mut held = self.held.lock();
            let until = seq_key(upto.saturating_add(1));
            let keys: Vec<String> = store.with_state(|state| {
                events_from(state, "")
                    .take_while(|(key, _)| *key < until.as_str())
                    .map(|(key, _)| String::from(key))
                    .collect()
            });
            for key in &keys {
                store.stage_system_delete(EVENTS_NAMESPACE, key)?;
                *held -= 1;
            }
            keys.len()
        };
        store.sync().await?;
        Ok(removed)
    }

    /// Makes staged events durable (for a periodic task).
    pub async fn sync<D: BlockDevice>(&self, store: &Store<D>) -> Result<(), StoreError> {
        store.sync().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_s3_event_json() {
        let event = Event {
            name: EventName::Put,
            bucket: "photos",
            key: "a b/c.jpg",
            size: Some(1024),
            etag: Some("0123"),
            version_id: Some(String::from("null")),
            principal: "RCKEY",
            request_id: "REQ",
            time_ms: 1_764_000_000_123,
        };
        let json = record_json(&event, 42, "us-east-1");
        assert!(json.starts_with("{\"eventVersion\":\"2.1\",\"eventSource\":\"aws:s3\",\"awsRegion\":\"us-east-1\""));
        assert!(json.contains("\"eventName\":\"ObjectCreated:Put\""));
        assert!(json.contains("\"eventTime\":\"2025-11-24T16:00:00.123000Z\""), "{json}");
        assert!(json.contains("\"object\":{\"key\":\"a+b/c.jpg\",\"size\":1024,\"eTag\":\"0123\",\"versionId\":\"null\",\"sequencer\":\"000000000000002A\"}"), "{json}");
        assert!(json.ends_with("}}}"));
        let opens = json.matches('{').count();
        assert_eq!(opens, json.matches('}').count());
    }
}
