//! Rustcore's network stack. `no_std` + `alloc`, no `unsafe`: the kernel
//! supplies frames (virtio-net) and the host supplies them through a TAP
//! device or a simulated link, behind smoltcp's `phy::Device` trait.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

#[cfg(feature = "tcp")]
pub mod ethernet;
#[cfg(feature = "tcp")]
pub mod ip;
#[cfg(feature = "tcp")]
pub mod offload;
#[cfg(feature = "tcp")]
pub mod tcp;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(all(feature = "tcp", feature = "tls"))]
pub mod tls_stream;
