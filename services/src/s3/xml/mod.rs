//! XML for S3 bodies: a writer and one struct per response body
//! ([`response`]), and parsers for the request bodies S3 operations take
//! ([`request`]).

pub mod request;
pub mod response;
mod writer;

pub use request::{
    CompleteMultipartUpload, CompletedPart, CreateBucketConfiguration, Delete, ObjectIdentifier,
    VersioningConfigurationRequest, XmlError,
};
pub use response::*;
pub use writer::{S3_XMLNS, XmlWriter, escape_into};
