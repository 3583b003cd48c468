//! XML for S3 bodies.

mod writer;

pub use writer::{S3_XMLNS, XmlWriter, escape_into};
