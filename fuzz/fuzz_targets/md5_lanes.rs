//! Differential: the widest MD5 lane code this CPU runs (as rustcore-hosted installs it) against
//! one message at a time, on any number of messages of any lengths, hashed together; and a stream
//! fed the messages as pieces of one object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::md5_lanes::{digest_many, digest_many_portable};

fuzz_target!(|data: &[u8]| {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        hosted::md5::install_md5_lanes();
    });
    // The first bytes are the messages' lengths (one byte each, times 17 so that lengths cross
    // several blocks); a zero ends the list; the rest is the bytes, dealt out in order.
    let count = data.iter().take(40).position(|&b| b == 0).unwrap_or(data.len().min(40));
    let (lengths, mut rest) = data.split_at(count);
    let mut messages = Vec::with_capacity(lengths.len());
    for &length in lengths {
        let take = (usize::from(length) * 17 % 1100).min(rest.len());
        let (message, tail) = rest.split_at(take);
        messages.push(message);
        rest = tail;
    }
    let mut lanes = vec![[0u8; 16]; messages.len()];
    let mut one_at_a_time = vec![[0u8; 16]; messages.len()];
    digest_many(&messages, &mut lanes);
    digest_many_portable(&messages, &mut one_at_a_time);
    assert_eq!(lanes, one_at_a_time);
    let mut stream = storage::md5_lanes::Md5Stream::new();
    for message in &messages {
        stream.update(message);
    }
    assert_eq!(stream.finish(), storage::md5_lanes::digest(&messages.concat()));
});
