//! Boot-time S3 scenarios: a text file of requests and expectations that
//! the appliance runs against its own S3 service (the seed's "boot-time
//! harness using bootfs configs"), so S3 flows are tested inside QEMU
//! without a host client. The same runner drives the file on the host.
//!
//! One step per line; `#` starts a comment:
//!
//! ```text
//! PUT /bkt                          -> 200
//! PUT /bkt/a.txt body=hello         -> 200
//! PUT /bkt/big fill=3145728         -> 200
//! GET /bkt/a.txt                    -> 200 body=hello
//! GET /bkt/big                      -> 200 len=3145728
//! GET /bkt?list-type=2&prefix=a     -> 200 contains=<Key>a.txt</Key>
//! GET /bkt/none                     -> 404 code=NoSuchKey
//! PUT /bkt/x h:content-type=text/plain body=x -> 200
//! ```
//!
//! Before `->`: method, target, then `h:NAME=VALUE` headers, and the body as
//! `body=TEXT` (to the end of the request part, spaces kept) or
//! `fill=BYTES` (a deterministic pattern). After `->`: the status, then
//! `body=TEXT`, `len=N` (body length; a `fill` body is also compared byte
//! for byte), `contains=TEXT`, `code=S3CODE` (the XML error code) and
//! `header:NAME=VALUE`. Requests are authenticated with the token given to
//! the runner (`Authorization: Bearer`).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use runtime::timers::Timers;
use storage::block::BlockDevice;

use crate::s3::server::{Authenticator, Connection, ConnectionError, S3Service};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Empty,
    Text(String),
    /// `n` bytes of [`fill_byte`].
    Fill(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Body(String),
    Len(u64),
    Contains(String),
    Code(String),
    Header(String, String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub line: usize,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub status: u16,
    pub expects: Vec<Expect>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
}

/// The byte at `offset` of a `fill=` body.
pub fn fill_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (offset as u8)
}

fn fill(len: u64) -> Vec<u8> {
    (0..len).map(fill_byte).collect()
}

/// Largest `fill=` body a scenario may ask for (it is built in memory).
const MAX_FILL_BYTES: u64 = 64 << 20;

pub fn parse(text: &str) -> Result<Vec<Step>, ParseError> {
    let mut steps = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split_once(" #").map_or(raw, |(before, _)| before).trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let error = |reason| ParseError { line, reason };
        let (request, expect) = content.rsplit_once("->").ok_or(error("no `->`"))?;
        let mut words = request.trim().splitn(3, ' ');
        let method = words.next().filter(|m| !m.is_empty()).ok_or(error("no method"))?.to_string();
        let target = words.next().filter(|t| t.starts_with('/')).ok_or(error("no target"))?.to_string();
        let mut rest = words.next().unwrap_or("").trim();
        let mut headers = Vec::new();
        let mut body = Body::Empty;
        while !rest.is_empty() {
            if let Some(text) = rest.strip_prefix("body=") {
                body = Body::Text(text.to_string());
                break;
            }
            let (word, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Some(header) = word.strip_prefix("h:") {
                let (name, value) = header.split_once('=').ok_or(error("header without ="))?;
                headers.push((name.to_string(), value.to_string()));
            } else if let Some(n) = word.strip_prefix("fill=") {
                let n = n.parse().ok().filter(|n| *n <= MAX_FILL_BYTES).ok_or(error("bad fill size"))?;
                body = Body::Fill(n);
            } else {
                return Err(error("unknown request word"));
            }
            rest = tail.trim_start();
        }
        let mut words = expect.trim().splitn(2, ' ');
        let status = words.next().and_then(|s| s.parse().ok()).ok_or(error("no status"))?;
        let mut expects = Vec::new();
        let mut rest = words.next().unwrap_or("").trim();
        while !rest.is_empty() {
            if let Some(text) = rest.strip_prefix("body=") {
                expects.push(Expect::Body(text.to_string()));
                break;
            }
            if let Some(text) = rest.strip_prefix("contains=") {
                expects.push(Expect::Contains(text.to_string()));
                break;
            }
            let (word, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Some(n) = word.strip_prefix("len=") {
                expects.push(Expect::Len(n.parse().map_err(|_| error("bad len"))?));
            } else if let Some(code) = word.strip_prefix("code=") {
                expects.push(Expect::Code(code.to_string()));
            } else if let Some(header) = word.strip_prefix("header:") {
                let (name, value) = header.split_once('=').ok_or(error("header without ="))?;
                expects.push(Expect::Header(name.to_string(), value.to_string()));
            } else {
                return Err(error("unknown expectation"));
            }
            rest = tail.trim_start();
        }
        steps.push(Step { line, method, target, headers, body, status, expects });
    }
    Ok(steps)
}

/// One request's bytes in, the response bytes out.
struct Exchange {
    input: Vec<u8>,
    at: usize,
    output: Vec<u8>,
}

impl Connection for Exchange {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ConnectionError> {
        let n = buf.len().min(self.input.len() - self.at).min(64 * 1024);
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), ConnectionError> {
        self.output.extend_from_slice(data);
        Ok(())
    }
}

struct Parsed {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_response(bytes: &[u8], head_request: bool) -> Option<Parsed> {
    let mut rest = bytes;
    loop {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = core::str::from_utf8(&rest[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        rest = &rest[end..];
        if status == 100 {
            continue;
        }
        let headers: Vec<(String, String)> =
            lines.filter_map(|l| l.split_once(": ")).map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())).collect();
        let body = if head_request { Vec::new() } else { rest.to_vec() };
        return Some(Parsed { status, headers, body });
    }
}

/// Why a step failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub detail: String,
}

/// Runs every step in order (one connection each); the number of steps
/// that passed, or the first failure.
pub async fn run<D: BlockDevice, A: Authenticator>(
    service: &S3Service<D, A>,
    timers: &Timers,
    steps: &[Step],
    token: &str,
) -> Result<usize, Failure> {
    for step in steps {
        let fail = |detail: String| Failure { line: step.line, detail };
        let body = match &step.body {
            Body::Empty => Vec::new(),
            Body::Text(text) => text.clone().into_bytes(),
            Body::Fill(n) => fill(*n),
        };
        let mut wire = format!(
            "{} {} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\nContent-Length: {}\r\n",
            step.method,
            step.target,
            body.len()
        );
        for (name, value) in &step.headers {
            wire.push_str(&format!("{name}: {value}\r\n"));
        }
        wire.push_str("\r\n");
        let mut input = wire.into_bytes();
        input.extend_from_slice(&body);
        let mut conn = Exchange { input, at: 0, output: Vec::new() };
        service.serve_connection(&mut conn, timers).await;
        let response =
            parse_response(&conn.output, step.method == "HEAD").ok_or_else(|| fail(String::from("no response")))?;
        if response.status != step.status {
            let text = String::from_utf8_lossy(&response.body[..response.body.len().min(300)]).into_owned();
            return Err(fail(format!("status {} (expected {}): {text}", response.status, step.status)));
        }
        for expect in &step.expects {
            let ok = match expect {
                Expect::Body(text) => response.body == text.as_bytes(),
                Expect::Len(n) => {
                    response.body.len() as u64 == *n
                        && find_fill(steps, step).is_none_or(|len| len != *n || response.body == fill(len))
                }
                Expect::Contains(text) => {
                    let body = String::from_utf8_lossy(&response.body);
                    body.contains(text.as_str())
                }
                Expect::Code(code) => {
                    let body = String::from_utf8_lossy(&response.body);
                    body.contains(&format!("<Code>{code}</Code>"))
                }
                Expect::Header(name, value) => {
                    response.headers.iter().any(|(n, v)| n.eq_ignore_ascii_case(name) && v == value)
                }
            };
            if !ok {
                return Err(fail(format!("expectation {expect:?} not met")));
            }
        }
    }
    Ok(steps.len())
}

/// The `fill=` size of the latest earlier PUT to the same target, if any,
/// so that `len=` also checks the bytes of a filled object.
fn find_fill(steps: &[Step], step: &Step) -> Option<u64> {
    let path = step.target.split('?').next()?;
    steps.iter().take_while(|s| s.line < step.line).filter(|s| s.method == "PUT" && s.target == path).last().and_then(
        |s| match s.body {
            Body::Fill(n) => Some(n),
            _ => None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps() {
        let steps = parse(
            "# comment\nPUT /b -> 200\nPUT /b/k h:content-type=text/plain body=hello world -> 200 header:etag=\"x\"\nGET /b/k -> 200 body=hello world\nPUT /b/f fill=10 -> 200\nGET /b/f -> 200 len=10\n",
        )
        .unwrap();
        assert_eq!(steps.len(), 5);
        assert_eq!(steps[1].headers, [("content-type".to_string(), "text/plain".to_string())]);
        assert_eq!(steps[1].body, Body::Text("hello world".into()));
        assert_eq!(steps[2].expects, [Expect::Body("hello world".into())]);
        assert_eq!(steps[3].body, Body::Fill(10));
        assert_eq!(find_fill(&steps, &steps[4]), Some(10));
    }

    #[test]
    fn rejects_bad_lines() {
        for bad in [
            "PUT /b",
            "PUT b -> 200",
            "PUT /b -> abc",
            "PUT /b zzz -> 200",
            "PUT /b fill=x -> 200",
            "GET /b -> 200 what",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
