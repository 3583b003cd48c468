//! HTTP/1.1 for the S3 service: the request framing state machine
//! ([`RequestParser`]), response heads and chunked coding ([`Response`],
//! [`chunk_head`]), and the `Range` header ([`resolve_range`]). Dates live in
//! [`crate::s3::time`].

mod range;
mod request;
mod response;

pub use range::{ByteRange, RangeNotSatisfiable, resolve_range, unsatisfied_content_range};
pub use request::{BodyFraming, Event, Headers, HttpError, Limits, Method, RequestHead, RequestParser, Step, Version};
pub use response::{
    CHUNK_END, CONTINUE, ChunkHead, LAST_CHUNK, Response, ResponseFraming, chunk_head, encode_chunk, reason_phrase,
};
