//! Rustcore's storage layer, usable on its own: anything that wants a
//! crash-safe object store on a block device. `no_std` + `alloc`, no `unsafe`.
//!
//! - [`block`]: the async block-device trait, owned I/O buffers, a RAM disk
//!   and a simulated faulty disk for crash tests.
//! - [`checksum`]: CRC32C, portable or accelerated by the platform.
//! - [`space`]: the allocator of data pages, with frees deferred until they
//!   are durable and no reader still uses the space.
//! - [`object`]: objects as checksummed chunks; streaming writer and reader.
//! - [`version`]: version IDs and the S3 versioning rules for one key.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod block;
pub mod checksum;
pub mod md5_lanes;
pub mod object;
pub mod space;
pub mod version;
