//! Request authentication for Rustcore S3, as pure logic: no I/O, no clock,
//! no randomness (callers pass the time and random bytes in).
//!
//! - [`sigv4`]: AWS Signature Version 4 verification, header and presigned.
//! - [`chunked`]: the aws-chunked body decoder, verifying chunk signatures.
//! - [`checksum`]: the S3 client checksums (CRC32, CRC32C, CRC64NVME, SHA).
//! - [`apikey`]: simple bearer API keys.
//! - [`keystore`]: key records, sealed SigV4 secrets, the in-memory store.
//!
//! See the crate README for the wire formats.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod apikey;
pub mod checksum;
pub mod chunked;
mod hex;
pub mod keystore;
pub mod sigv4;
