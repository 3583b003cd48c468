//! S3 error codes, in one table: code string, HTTP status and default
//! message as AWS documents them ("Error responses", "List of error codes"),
//! and the `<Error>` body that carries them.
//!
//! Every layer below (HTTP framing, XML bodies, validation) has its own
//! error enum; the handlers convert those with `From` into an
//! [`S3ErrorCode`] and never pick a status by hand.

use alloc::string::String;
use alloc::vec::Vec;

use crate::s3::http::Response;
use crate::s3::xml::XmlWriter;

macro_rules! s3_error_codes {
    ($($(#[$doc:meta])* $code:ident => $status:literal, $message:literal;)+) => {
        /// An S3 error code. [`S3ErrorCode::as_str`] is the `<Code>` on the wire.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum S3ErrorCode {
            $($(#[$doc])* $code,)+
        }

        impl S3ErrorCode {
            /// Every code, in table order (for tests and documentation).
            pub const ALL: &'static [S3ErrorCode] = &[$(S3ErrorCode::$code,)+];

            /// The code as it appears in `<Code>`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(S3ErrorCode::$code => stringify!($code),)+
                }
            }

            /// The HTTP status AWS answers with.
            pub const fn status(self) -> u16 {
                match self {
                    $(S3ErrorCode::$code => $status,)+
                }
            }

            /// AWS's default `<Message>`.
            pub const fn default_message(self) -> &'static str {
                match self {
                    $(S3ErrorCode::$code => $message,)+
                }
            }
        }
    };
}

s3_error_codes! {
    AccessDenied => 403, "Access Denied";
    AuthorizationHeaderMalformed => 400, "The authorization header that you provided is not valid.";
    AuthorizationQueryParametersError => 400, "The query parameters of the presigned request are not valid.";
    BadDigest => 400, "The Content-MD5 or checksum value that you specified did not match what the server received.";
    BucketAlreadyExists => 409, "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Select a different name and try again.";
    BucketAlreadyOwnedByYou => 409, "The bucket that you tried to create already exists, and you own it.";
    BucketNotEmpty => 409, "The bucket that you tried to delete is not empty.";
    EntityTooLarge => 400, "Your proposed upload exceeds the maximum allowed object size.";
    EntityTooSmall => 400, "Your proposed upload is smaller than the minimum allowed object size.";
    IncompleteBody => 400, "You did not provide the number of bytes specified by the Content-Length HTTP header.";
    InternalError => 500, "An internal error occurred. Try again.";
    InvalidAccessKeyId => 403, "The AWS access key ID that you provided does not exist in our records.";
    InvalidArgument => 400, "Invalid Argument";
    InvalidBucketName => 400, "The specified bucket is not valid.";
    InvalidBucketState => 409, "The request is not valid for the current state of the bucket.";
    InvalidDigest => 400, "The Content-MD5 or checksum value that you specified is not valid.";
    InvalidLocationConstraint => 400, "The specified location (Region) constraint is not valid.";
    InvalidObjectState => 403, "The operation is not valid for the current state of the object.";
    InvalidPart => 400, "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified ETag might not have matched the uploaded part's ETag.";
    InvalidPartNumber => 416, "The requested partnumber is not satisfiable.";
    InvalidPartOrder => 400, "The list of parts was not in ascending order. The parts list must be specified in order by part number.";
    InvalidRange => 416, "The requested range cannot be satisfied.";
    InvalidRequest => 400, "Invalid Request";
    InvalidStorageClass => 400, "The storage class that you specified is not valid.";
    /// The request target could not be decoded (bad percent-encoding, not UTF-8).
    InvalidURI => 400, "The specified URI couldn't be parsed.";
    KeyTooLongError => 400, "Your key is too long.";
    MalformedXML => 400, "The XML that you provided was not well formed or did not validate against our published schema.";
    MaxMessageLengthExceeded => 400, "Your request was too large.";
    MetadataTooLarge => 400, "Your metadata headers exceed the maximum allowed metadata size.";
    MethodNotAllowed => 405, "The specified method is not allowed against this resource.";
    MissingContentLength => 411, "You must provide the Content-Length HTTP header.";
    MissingRequestBodyError => 400, "Request body is empty.";
    NoSuchBucket => 404, "The specified bucket does not exist.";
    NoSuchBucketPolicy => 404, "The specified bucket does not have a bucket policy.";
    NoSuchCORSConfiguration => 404, "The specified bucket does not have a CORS configuration.";
    NoSuchKey => 404, "The specified key does not exist.";
    NoSuchLifecycleConfiguration => 404, "The specified lifecycle configuration does not exist.";
    NoSuchTagSet => 404, "The specified tag does not exist.";
    NoSuchUpload => 404, "The specified multipart upload does not exist. The upload ID might not be valid, or the multipart upload might have been aborted or completed.";
    NoSuchVersion => 404, "The version ID specified in the request does not match an existing version.";
    NotImplemented => 501, "A header that you provided implies functionality that is not implemented.";
    /// A conditional GET or HEAD whose object did not change: 304 and never a body.
    NotModified => 304, "Not Modified";
    PreconditionFailed => 412, "At least one of the preconditions that you specified did not hold.";
    /// Not an AWS code: a bucket or account quota would be exceeded. Ceph RGW
    /// answers the same code with 403, so clients treat it as final rather
    /// than retrying as they would a 5xx or `SlowDown`.
    QuotaExceeded => 403, "The quota for this bucket or account has been exceeded.";
    RequestTimeout => 400, "Your socket connection to the server was not read from or written to within the timeout period.";
    RequestTimeTooSkewed => 403, "The difference between the request time and the server's time is too large.";
    ServiceUnavailable => 503, "Service is unable to handle request.";
    /// Not an AWS code (AWS never fills up): the data disk has no room for
    /// the object. MinIO answers the same situation with 507.
    StorageFull => 507, "The storage backend has no free space left for this request.";
    SignatureDoesNotMatch => 403, "The request signature that we calculated does not match the signature that you provided. Check your AWS secret access key and signing method.";
    SlowDown => 503, "Please reduce your request rate.";
    TooManyBuckets => 400, "You have attempted to create more buckets than are allowed.";
    UnexpectedContent => 400, "This request contains unsupported content.";
    UserKeyMustBeSpecified => 400, "The bucket POST request must contain the specified field name. If it is specified, check the order of the fields.";
    XAmzContentSHA256Mismatch => 400, "The provided 'x-amz-content-sha256' header does not match what was computed.";
}

impl core::fmt::Display for S3ErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One S3 error response: the code, an optional message that replaces the
/// default, the resource it concerns (`/bucket/key`) and the request ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Error {
    pub code: S3ErrorCode,
    pub message: Option<String>,
    pub resource: Option<String>,
    pub request_id: String,
    /// Fields the response carries besides the body (`Content-Range` of a
    /// 416, `x-amz-delete-marker` of a 404 on a delete marker).
    pub extra_headers: Vec<(String, String)>,
}

impl S3Error {
    pub fn new(code: S3ErrorCode, request_id: impl Into<String>) -> Self {
        Self { code, message: None, resource: None, request_id: request_id.into(), extra_headers: Vec::new() }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    pub fn message(&self) -> &str {
        self.message.as_deref().unwrap_or(self.code.default_message())
    }

    /// Whether the response carries the XML body: never for HEAD (HTTP
    /// forbids it) nor for 304.
    pub fn has_body(&self, head_request: bool) -> bool {
        !head_request && self.code != S3ErrorCode::NotModified
    }

    /// `<Error><Code/><Message/><Resource/><RequestId/></Error>`.
    pub fn to_xml(&self) -> Vec<u8> {
        let mut xml = XmlWriter::new();
        xml.start("Error");
        xml.element("Code", self.code.as_str());
        xml.element("Message", self.message());
        if let Some(resource) = &self.resource {
            xml.element("Resource", resource);
        }
        xml.element("RequestId", &self.request_id);
        xml.finish()
    }

    /// The response head and body. The caller adds `Date`, `Server` and
    /// `Connection` and encodes it with the body's length.
    pub fn to_response(&self, head_request: bool) -> (Response, Vec<u8>) {
        let mut response = Response::new(self.status());
        response.header("x-amz-request-id", &self.request_id);
        for (name, value) in &self.extra_headers {
            response.header(name, value);
        }
        if !self.has_body(head_request) {
            return (response, Vec::new());
        }
        response.header("Content-Type", "application/xml");
        (response, self.to_xml())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;

    #[test]
    fn table_is_consistent() {
        let mut names = BTreeSet::new();
        for code in S3ErrorCode::ALL {
            assert!(names.insert(code.as_str()), "duplicate {code}");
            assert!((300..600).contains(&code.status()), "{code}");
            assert!(!code.default_message().is_empty());
        }
        assert_eq!(S3ErrorCode::NoSuchKey.status(), 404);
        assert_eq!(S3ErrorCode::InvalidRange.status(), 416);
        assert_eq!(S3ErrorCode::MissingContentLength.status(), 411);
        assert_eq!(S3ErrorCode::NotModified.status(), 304);
        assert_eq!(S3ErrorCode::XAmzContentSHA256Mismatch.as_str(), "XAmzContentSHA256Mismatch");
    }

    #[test]
    fn error_body() {
        let error = S3Error::new(S3ErrorCode::NoSuchKey, "4442587FB7D0A2F9").with_resource("/b/a&b");
        let xml = String::from_utf8(error.to_xml()).unwrap();
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>\
             <Message>The specified key does not exist.</Message><Resource>/b/a&amp;b</Resource>\
             <RequestId>4442587FB7D0A2F9</RequestId></Error>"
        );
        let custom = S3Error::new(S3ErrorCode::InvalidArgument, "r").with_message("bad max-keys");
        assert!(String::from_utf8(custom.to_xml()).unwrap().contains("<Message>bad max-keys</Message>"));
    }

    #[test]
    fn head_and_not_modified_have_no_body() {
        let error = S3Error::new(S3ErrorCode::NoSuchKey, "r");
        assert!(error.has_body(false));
        assert!(!error.has_body(true));
        let (_, body) = error.to_response(true);
        assert!(body.is_empty());
        let (response, body) = S3Error::new(S3ErrorCode::NotModified, "r").to_response(false);
        assert_eq!(response.status(), 304);
        assert!(body.is_empty());
    }
}
