//! Helpers shared by the S3 server's end-to-end tests: a simulated
//! platform, a scripted connection, and a parser for response bytes.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use runtime::clock::{Clock, FakeClock};
use runtime::executor::Platform;
use services::s3::server::{Connection, ConnectionError};

pub struct SimPlatform {
    pub clock: Arc<FakeClock>,
}

impl Platform for SimPlatform {
    fn poll_events(&mut self) {}

    fn idle(&mut self, deadline_ns: Option<u64>) {
        let deadline = deadline_ns.expect("deadlock: no task ready and no timer");
        self.clock.set(deadline.max(self.clock.now_ns()));
    }
}

/// Hands out `input` in pieces of pseudo-random size, then EOF.
pub struct ScriptConnection {
    pub input: Vec<u8>,
    pub at: usize,
    pub seed: u64,
    pub output: Vec<u8>,
}

impl Connection for ScriptConnection {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ConnectionError> {
        if self.at == self.input.len() {
            return Ok(0);
        }
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let n = (1 + (self.seed % 9000) as usize).min(buf.len()).min(self.input.len() - self.at);
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), ConnectionError> {
        self.output.extend_from_slice(data);
        Ok(())
    }
}

pub static NOW_MS: AtomicU64 = AtomicU64::new(1_764_000_000_000);

pub fn now_ms() -> u64 {
    NOW_MS.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn code(&self) -> String {
        let text = self.text();
        text.split("<Code>").nth(1).and_then(|rest| rest.split("</Code>").next()).unwrap_or("").to_string()
    }
}

/// Splits a byte stream of responses; HEAD responses carry no body.
pub fn parse_replies(mut bytes: &[u8], heads: &[bool]) -> Vec<Reply> {
    let mut replies = Vec::new();
    let mut index = 0;
    while !bytes.is_empty() {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head") + 4;
        let head = std::str::from_utf8(&bytes[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_string(), v.to_string())
            })
            .collect();
        bytes = &bytes[end..];
        if status == 100 {
            continue;
        }
        let is_head = heads.get(index).copied().unwrap_or(false);
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let body_len = if is_head { 0 } else { length };
        let body = bytes[..body_len].to_vec();
        bytes = &bytes[body_len..];
        replies.push(Reply { status, headers, body });
        index += 1;
    }
    replies
}
