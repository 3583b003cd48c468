//! Services that run unchanged on the kernel and the hosted platform.
//!
//! - [`log`]: structured JSON-lines log records on a [`log::Sink`], with the
//!   `error!` .. `trace!` macros exported at the crate root.
//! - [`bootfs`]: the boot archive (ustar) the kernel receives as a PVH module.
//! - [`events`]: object created/removed events in the S3 notification format, queued on the data disk.
//! - [`health`]: a minimal HTTPS responder (`GET /health`) until the S3 layer exists.
//! - [`metrics`]: Prometheus text exposition of the services' counters.
//! - [`sink`]: plain and TLS discard servers for throughput benchmarks.
//! - [`s3`]: the wire layer of the S3 API (HTTP/1.1 framing, XML bodies,
//!   error codes, name validation, bucket addressing), pure and host-tested.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bootfs;
pub mod events;
pub mod health;
pub mod log;
pub mod metrics;
pub mod s3;
pub mod sink;
