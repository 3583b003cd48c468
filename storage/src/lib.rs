//! Rustcore's storage layer, usable on its own: anything that wants a
//! crash-safe object store on a block device. `no_std` + `alloc`, no `unsafe`.
//!
//! - [`block`]: the async block-device trait, owned I/O buffers, a RAM disk
//!   and a simulated faulty disk for crash tests.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod block;
