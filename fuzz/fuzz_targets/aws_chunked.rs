//! The aws-chunked decoder never panics, and what it decodes does not depend
//! on how the body was split (whole, then in fuzzer-chosen pieces).
#![no_main]

use libfuzzer_sys::fuzz_target;
use security::chunked::{ChunkSigning, ChunkedDecoder, Event, Framing, Limits};

fn decode(
    framing: Framing,
    declared: u64,
    input: &[u8],
    sizes: &[u8],
) -> (Vec<u8>, Result<(), security::chunked::ChunkedError>) {
    let limits = Limits { max_line_bytes: 256, max_chunk_bytes: 4096, max_trailers: 4 };
    let mut decoder = ChunkedDecoder::new(framing, declared, limits);
    let mut buffer: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut offset = 0;
    let mut sizes = sizes.iter().map(|&s| usize::from(s));
    while offset < input.len() {
        let size = sizes.next().unwrap_or(input.len()).clamp(1, input.len() - offset);
        buffer.extend_from_slice(&input[offset..offset + size]);
        offset += size;
        loop {
            match decoder.advance(&buffer) {
                Err(error) => return (out, Err(error)),
                Ok(step) => {
                    let consumed = step.consumed;
                    let done = match step.event {
                        Event::Data(data) => {
                            out.extend_from_slice(data);
                            false
                        }
                        Event::NeedMore => true,
                        Event::End => true,
                    };
                    buffer.drain(..consumed);
                    if done && (consumed == 0 || buffer.is_empty()) {
                        break;
                    }
                }
            }
        }
    }
    (out, decoder.finish())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (control, rest) = data.split_at(4);
    let split = usize::from(control[1]).min(rest.len());
    let (sizes, body) = rest.split_at(split);
    let declared = u64::from(control[2]) * 16 + u64::from(control[3]);
    let signing = ChunkSigning {
        signing_key: [7; 32],
        timestamp: "20130524T000000Z".into(),
        scope: "20130524/us-east-1/s3/aws4_request".into(),
        seed_signature: [1; 32],
    };
    let framing = match control[0] % 3 {
        0 => Framing::Signed(signing),
        1 => Framing::SignedWithTrailer(signing),
        _ => Framing::UnsignedWithTrailer,
    };
    let whole = decode(framing.clone(), declared, body, &[]);
    let pieces = decode(framing, declared, body, sizes);
    // Data handed out before an error may differ in length, but a clean end
    // must be the same for every split.
    if whole.1.is_ok() || pieces.1.is_ok() {
        assert_eq!(whole, pieces);
    }
});
