//! The wire layer of the S3 service: everything between bytes on a
//! connection and a handler's arguments and results, with no network or
//! storage logic.
//!
//! - [`http`]: HTTP/1.1 request framing as a feed-bytes/get-events state
//!   machine, response heads, chunked coding, `Range`.
//! - [`xml`]: response bodies (one struct per S3 result) and request-body
//!   parsers (CompleteMultipartUpload, Delete, VersioningConfiguration,
//!   CreateBucketConfiguration).
//! - [`error`]: every S3 error code with its status and message, in one
//!   table, and the `<Error>` body.
//! - [`validate`]: bucket name, key length and user metadata limits.
//! - [`addressing`]: bucket and key from `Host` and path, both styles.
//! - [`server`]: the connection loop, routing and operation handlers over
//!   the store (`fs::store`), behind an [`server::Authenticator`].
//! - [`time`]: HTTP dates and the ISO-8601 timestamps of XML bodies.

pub mod addressing;
pub mod admin;
pub mod auth;
pub mod error;
pub mod http;
pub mod keys;
pub mod scenario;
pub mod server;
pub mod setup;
pub mod time;
pub mod validate;
pub mod xml;

pub use error::{S3Error, S3ErrorCode};
