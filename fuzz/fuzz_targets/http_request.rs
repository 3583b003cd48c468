//! The HTTP request parser never panics, and what it reports does not depend
//! on how the bytes were split: the input is fed whole, then in pieces whose
//! sizes come from the fuzzer, and both runs must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use services::s3::http::{Event, HttpError, Limits, RequestHead, RequestParser};

#[derive(Debug, PartialEq)]
enum Seen {
    Head(RequestHead),
    Body(Vec<u8>),
    End(Vec<(String, String)>),
}

fn feed(input: &[u8], sizes: &[u8]) -> (Vec<Seen>, Option<HttpError>) {
    // Small limits so that the limit paths are reached often.
    let limits = Limits { max_head_bytes: 512, max_headers: 8, max_body_bytes: 4096, max_chunk_line_bytes: 64 };
    let mut parser = RequestParser::new(limits);
    let mut buffer = Vec::new();
    let mut seen = Vec::new();
    let mut offset = 0;
    let mut sizes = sizes.iter().map(|&s| usize::from(s));
    while offset < input.len() {
        let size = sizes.next().unwrap_or(input.len()).clamp(1, input.len() - offset);
        buffer.extend_from_slice(&input[offset..offset + size]);
        offset += size;
        loop {
            let step = match parser.advance(&buffer) {
                Ok(step) => step,
                Err(error) => return (seen, Some(error)),
            };
            assert!(step.consumed <= buffer.len());
            let progressed = step.consumed > 0;
            match step.event {
                Event::NeedMore => {
                    buffer.drain(..step.consumed);
                    if !progressed {
                        // Nothing more can come out of these bytes.
                        assert!(buffer.len() <= limits.max_head_bytes);
                        break;
                    }
                    continue;
                }
                Event::Head(head) => seen.push(Seen::Head(head)),
                Event::Body(data) => {
                    assert!(!data.is_empty());
                    match seen.last_mut() {
                        Some(Seen::Body(body)) => body.extend_from_slice(data),
                        _ => seen.push(Seen::Body(data.to_vec())),
                    }
                }
                Event::BodyEnd { trailers } => {
                    seen.push(Seen::End(trailers.iter().map(|(n, v)| (n.into(), v.into())).collect()))
                }
            }
            buffer.drain(..step.consumed);
        }
    }
    (seen, None)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split_len = usize::from(data[0]).min(data.len() - 1);
    let (sizes, input) = data[1..].split_at(split_len);
    let whole = feed(input, &[]);
    let pieces = feed(input, sizes);
    assert_eq!(whole, pieces);
    if let Some(error) = whole.1 {
        assert!(matches!(error.status(), 400 | 413 | 431 | 501 | 505));
    }
});
