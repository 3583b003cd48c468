//! The async runtime shared by the kernel and the hosted platform: a
//! single-threaded cooperative executor, one timer queue, an
//! interrupt-to-task bridge and heap statistics.
//!
//! Everything here is safe, `no_std` + `alloc` code. The platform (bare metal
//! or a Linux process) supplies a [`clock::Clock`] and an
//! [`executor::Platform`] that turns hardware events into wakes and sleeps
//! until the next one.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc as alloc_crate;

#[cfg(test)]
extern crate std;

pub mod alloc;
pub mod clock;
pub mod event;
pub mod executor;
pub mod join;
pub mod timers;

mod yield_now;

pub use yield_now::{YieldNow, yield_now};
