//! The wire layer of the S3 service: everything between bytes on a
//! connection and a handler's arguments and results, with no network or
//! storage logic.

pub mod error;
pub mod http;
pub mod time;
pub mod xml;

pub use error::{S3Error, S3ErrorCode};
