//! Rustcore's metadata layer and crash-safe store, usable on its own by
//! anyone who wants an S3-shaped object store on a block device.
//! `no_std` + `alloc`, no `unsafe`.
//!
//! - [`journal`]: the write-ahead log's batch format and replay checks.
//! - [`layout`]: the superblock (two copies) that says where replay starts.
//! - [`overlay`]: small objects' chunks logged in the journal, until written back.
//! - [`record`]: the journal records, one per kind of change.
//! - [`catalog`]: buckets, owners, per-key capabilities, quotas, usage.
//! - [`index`]: ordered keys and listing with prefix, delimiter, pagination.
//! - [`state`]: the metadata and the one function that changes it.
//! - [`snapshot`]: a checkpoint's image of the state, made in slices.
//! - [`store`]: the engine: group commit, checkpoints, replay, reads.
//! - [`write_cache`]: small data writes held until the next flush, then merged.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod catalog;
pub mod index;
pub mod journal;
pub mod layout;
pub mod overlay;
pub mod record;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod write_cache;
