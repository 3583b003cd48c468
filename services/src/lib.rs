//! Services that run unchanged on the kernel and the hosted platform.
//!
//! - [`log`]: structured JSON-lines log records on a [`log::Sink`], with the
//!   `error!` .. `trace!` macros exported at the crate root.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod log;
