//! The S3 wire layer as a connection uses it: random pipelines of requests
//! with random framing, fed at random splits, must come out exactly as the
//! model that generated them; and requests followed from bytes to the bytes
//! of their responses.

use services::s3::S3Error;
use services::s3::S3ErrorCode;
use services::s3::addressing::{AddressingStyle, parse_query, resolve_target};
use services::s3::http::{
    BodyFraming, CONTINUE, Event, HttpError, LAST_CHUNK, Limits, Method, RequestHead, RequestParser, Response,
    ResponseFraming, encode_chunk, resolve_range,
};
use services::s3::time::{format_http_date, parse_http_date};
use services::s3::validate::{validate_bucket_name, validate_object_key, validate_user_metadata};
use services::s3::xml::{Delete, DeleteResult, DeletedEntry};

/// Deterministic, so that a failure reproduces from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What the generator meant to send.
struct Model {
    method: Method,
    target: String,
    body: Vec<u8>,
    trailer: Option<(String, String)>,
    close: bool,
}

fn generate(random: &mut XorShift) -> (Model, Vec<u8>) {
    let method = [Method::Get, Method::Head, Method::Put, Method::Post, Method::Delete][random.below(5)];
    let target = format!("/bucket/k{}?partNumber={}", random.next() % 1000, random.below(100));
    let body_len = if matches!(method, Method::Put | Method::Post) { random.below(3000) } else { 0 };
    let body = random.bytes(body_len);
    let chunked = !body.is_empty() && random.below(2) == 0;
    let close = random.below(8) == 0;
    let mut wire = format!("{} {target} HTTP/1.1\r\nHost: localhost\r\n", method.as_str()).into_bytes();
    if close {
        wire.extend_from_slice(b"Connection: close\r\n");
    }
    let mut trailer = None;
    if chunked {
        wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        let mut rest = &body[..];
        while !rest.is_empty() {
            let n = (1 + random.below(700)).min(rest.len());
            if random.below(3) == 0 {
                wire.extend_from_slice(format!("{n:X};chunk-signature=abc\r\n").as_bytes());
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
            } else {
                encode_chunk(&rest[..n], &mut wire);
            }
            rest = &rest[n..];
        }
        if random.below(2) == 0 {
            let value = format!("{}", random.next());
            wire.extend_from_slice(format!("0\r\nx-amz-checksum-crc32: {value}\r\n\r\n").as_bytes());
            trailer = Some((String::from("x-amz-checksum-crc32"), value));
        } else {
            wire.extend_from_slice(LAST_CHUNK);
        }
    } else {
        if !body.is_empty() || random.below(2) == 0 {
            wire.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(&body);
    }
    (Model { method, target, body, trailer, close }, wire)
}

/// A request as the parser reported it.
struct Parsed {
    head: RequestHead,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

fn parse_in_pieces(wire: &[u8], random: &mut XorShift, max_piece: usize) -> Result<Vec<Parsed>, HttpError> {
    let mut parser = RequestParser::new(Limits::default());
    let mut buffer = Vec::new();
    let mut requests: Vec<Parsed> = Vec::new();
    let mut offset = 0;
    while offset < wire.len() {
        let n = (1 + random.below(max_piece)).min(wire.len() - offset);
        buffer.extend_from_slice(&wire[offset..offset + n]);
        offset += n;
        loop {
            let step = parser.advance(&buffer)?;
            let consumed = step.consumed;
            match step.event {
                Event::NeedMore if consumed == 0 => break,
                Event::NeedMore => {}
                Event::Head(head) => requests.push(Parsed { head, body: Vec::new(), trailers: Vec::new() }),
                Event::Body(data) => requests.last_mut().unwrap().body.extend_from_slice(data),
                Event::BodyEnd { trailers } => {
                    requests.last_mut().unwrap().trailers =
                        trailers.iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
                }
            }
            buffer.drain(..consumed);
        }
    }
    assert!(buffer.is_empty(), "{} bytes left over", buffer.len());
    assert!(parser.is_idle());
    Ok(requests)
}

#[test]
fn random_pipelines_match_the_model() {
    for seed in 1..=200u64 {
        let mut random = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut models = Vec::new();
        let mut wire = Vec::new();
        for _ in 0..1 + random.below(6) {
            let (model, bytes) = generate(&mut random);
            models.push(model);
            wire.extend_from_slice(&bytes);
        }
        let max_piece = [1, 7, 64, 4096][random.below(4)];
        let parsed = parse_in_pieces(&wire, &mut random, max_piece).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(parsed.len(), models.len(), "seed {seed}");
        for (model, request) in models.iter().zip(&parsed) {
            assert_eq!(request.head.method, model.method, "seed {seed}");
            assert_eq!(request.head.target, model.target, "seed {seed}");
            assert_eq!(request.body, model.body, "seed {seed}");
            assert_eq!(request.head.keep_alive, !model.close, "seed {seed}");
            assert_eq!(request.trailers.first().cloned(), model.trailer, "seed {seed}");
        }
    }
}

#[test]
fn a_put_from_bytes_to_response() {
    let wire = b"PUT /2006/feb%2003/sample%20%2B.jpg HTTP/1.1\r\nHost: Photos.localhost:8443\r\n\
                 Content-Length: 11\r\nExpect: 100-continue\r\nx-amz-meta-camera: x100\r\n\r\nhello world";
    let mut parser = RequestParser::new(Limits::default());
    let step = parser.advance(wire).unwrap();
    let Event::Head(head) = step.event else { panic!("{:?}", step.event) };
    assert_eq!(head.body, BodyFraming::Length(11));
    assert!(head.expect_continue);
    let mut out = CONTINUE.to_vec();

    let target = resolve_target(head.headers.get("host"), "localhost", head.path()).unwrap();
    assert_eq!(target.style, AddressingStyle::VirtualHosted);
    let (bucket, key) = (target.bucket.unwrap(), target.key.unwrap());
    assert_eq!((bucket.as_str(), key.as_str()), ("photos", "2006/feb 03/sample +.jpg"));
    validate_bucket_name(&bucket).unwrap();
    validate_object_key(&key).unwrap();
    validate_user_metadata(&head.headers).unwrap();

    let rest = &wire[step.consumed..];
    let step = parser.advance(rest).unwrap();
    assert_eq!(step.event, Event::Body(b"hello world"));
    let step = parser.advance(&rest[step.consumed..]).unwrap();
    assert!(matches!(step.event, Event::BodyEnd { .. }));

    let mut response = Response::new(200);
    response.header("Date", &format_http_date(1_138_985_109)).header("ETag", "\"5eb63bbbe01eeed093cb22bb8f5acdc3\"");
    response.encode(ResponseFraming::Length(0), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nDate: Fri, 03 Feb 2006 16:45:09 GMT\r\n\
         ETag: \"5eb63bbbe01eeed093cb22bb8f5acdc3\"\r\nContent-Length: 0\r\n\r\n"
    );
}

#[test]
fn a_get_with_range_and_conditions() {
    let wire = b"GET /b/k?versionId=null HTTP/1.1\r\nHost: localhost\r\nRange: bytes=-5\r\n\
                 If-Modified-Since: Sunday, 06-Nov-94 08:49:37 GMT\r\n\r\n";
    let mut parser = RequestParser::new(Limits::default());
    let Event::Head(head) = parser.advance(wire).unwrap().event else { panic!() };
    let query = parse_query(head.query().unwrap()).unwrap();
    assert_eq!(query, [(String::from("versionId"), String::from("null"))]);
    let since = parse_http_date(head.headers.get("if-modified-since").unwrap()).unwrap();
    assert_eq!(since, 784_111_777);
    let range = resolve_range(head.headers.get("range").unwrap(), 100).unwrap().unwrap();
    assert_eq!(range.content_range(100), "bytes 95-99/100");
    let error = resolve_range("bytes=100-", 100).map_err(S3ErrorCode::from).unwrap_err();
    let (response, body) = S3Error::new(error, "req-1").with_resource("/b/k").to_response(false);
    assert_eq!(response.status(), 416);
    assert!(String::from_utf8(body).unwrap().contains("<Code>InvalidRange</Code>"));
}

#[test]
fn delete_objects_round_trip() {
    let request = Delete::parse(
        b"<?xml version=\"1.0\"?>\n<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
          <Object><Key>a &amp; b</Key></Object><Object><Key>c</Key><VersionId>v1</VersionId></Object></Delete>",
    )
    .unwrap();
    let result = DeleteResult {
        deleted: request
            .objects
            .iter()
            .map(|o| DeletedEntry { key: o.key.clone(), version_id: o.version_id.clone(), ..DeletedEntry::default() })
            .collect(),
        errors: Vec::new(),
    };
    let xml = String::from_utf8(result.to_xml()).unwrap();
    assert!(xml.contains("<Deleted><Key>a &amp; b</Key></Deleted><Deleted><Key>c</Key><VersionId>v1</VersionId>"));
}

#[test]
fn protocol_errors_answer_and_close() {
    let mut parser = RequestParser::new(Limits::default());
    let error = parser.advance(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").unwrap_err();
    let bytes = error.to_response().to_bytes(ResponseFraming::Length(0));
    assert_eq!(bytes, b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
}
