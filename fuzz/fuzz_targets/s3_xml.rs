//! The S3 request-body parsers never panic, and what they accept respects
//! S3's limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use services::s3::S3ErrorCode;
use services::s3::xml::{CompleteMultipartUpload, CreateBucketConfiguration, Delete, VersioningConfigurationRequest};

fuzz_target!(|data: &[u8]| {
    match CompleteMultipartUpload::parse(data) {
        Ok(complete) => {
            assert!((1..=10_000).contains(&complete.parts.len()));
            assert!(complete.parts.iter().all(|p| (1..=10_000).contains(&p.part_number)));
            let _ = complete.check_order();
        }
        Err(error) => assert!(matches!(
            S3ErrorCode::from(error),
            S3ErrorCode::MalformedXML | S3ErrorCode::MaxMessageLengthExceeded
        )),
    }
    if let Ok(delete) = Delete::parse(data) {
        assert!((1..=1000).contains(&delete.objects.len()));
    }
    let _ = VersioningConfigurationRequest::parse(data);
    let _ = CreateBucketConfiguration::parse(data);
});
