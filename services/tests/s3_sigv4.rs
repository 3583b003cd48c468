//! The S3 server with its real authenticator (SigV4 and API keys over the
//! keystore on the store) and every body variant clients send: a signed
//! SHA-256, `UNSIGNED-PAYLOAD`, aws-chunked with chunk signatures, with
//! signed trailers and with unsigned trailers (what boto3 and the aws cli
//! send over HTTPS by default). For each, the stored bytes must be exactly
//! the payload; a tampered chunk, a wrong checksum or a bad signature must
//! store nothing.

mod common;

use std::sync::Arc;

use common::{Reply, ScriptConnection, SimPlatform, now_ms, parse_replies};
use fs::store::{FormatOptions, Store};
use runtime::clock::FakeClock;
use runtime::executor::Executor;
use runtime::timers::Timers;
use security::checksum::{ChecksumAlgorithm, Checksummer};
use security::chunked::ChunkSigning;
use security::keystore::NodeKey;
use security::sigv4::{
    CanonicalRequest, canonical_query, canonical_uri, hmac_sha256, parse_query, signing_key, string_to_sign,
};
use services::s3::auth::KeyAuth;
use services::s3::keys::{Bootstrap, StoreKeys};
use services::s3::server::{S3Config, S3Service};
use sha2::{Digest, Sha256};
use storage::block::RamDisk;

const ADMIN_ID: &str = "RCADMINADMINADMIN234";
const ADMIN_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "rc_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const REGION: &str = "us-east-1";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fill_random(out: &mut [u8]) {
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time.
fn amz_date(unix_s: u64) -> String {
    let (y, m, d) = services::log::civil_from_days(unix_s / 86_400);
    let rem = unix_s % 86_400;
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

struct Server {
    exec: Executor,
    platform: SimPlatform,
    timers: Timers,
    service: S3Service<RamDisk, KeyAuth<StoreKeys>>,
}

/// What a signed request will carry.
struct Signed {
    wire: Vec<u8>,
    signing: ChunkSigning,
}

impl Server {
    fn new() -> Self {
        let clock = Arc::new(FakeClock::new(1_000_000));
        let timers = Timers::new(clock.clone());
        let exec = Executor::new();
        let mut platform = SimPlatform { clock };
        let disk = RamDisk::new(512, 64 * 2048);
        let options = FormatOptions { volume_id: [3; 16], ..FormatOptions::default() };
        let store = exec.block_on(Store::format(disk, options), &mut platform, &timers).expect("format");
        let bootstrap =
            Bootstrap { admin_sigv4: Some((ADMIN_ID.into(), ADMIN_SECRET.into())), admin_token: Some(TOKEN.into()) };
        let keys = exec
            .block_on(
                StoreKeys::open(&store, NodeKey::new([9; 32]), &bootstrap, fill_random, now_ms()),
                &mut platform,
                &timers,
            )
            .expect("keystore");
        let service = S3Service::new(store, KeyAuth { keys }, S3Config::default(), now_ms, 1);
        Self { exec, platform, timers, service }
    }

    fn exchange(&mut self, input: Vec<u8>) -> Reply {
        let mut conn = ScriptConnection { input, at: 0, seed: 0x2545_F491_4F6C_DD1D, output: Vec::new() };
        let service = &self.service;
        let timers = self.timers.clone();
        self.exec.block_on(
            async {
                service.serve_connection(&mut conn, &timers).await;
            },
            &mut self.platform,
            &self.timers,
        );
        let head_request = conn.input.starts_with(b"HEAD ");
        let mut replies = parse_replies(&conn.output, &[head_request]);
        assert_eq!(replies.len(), 1, "{:?}", String::from_utf8_lossy(&conn.output));
        replies.remove(0)
    }

    /// A SigV4-signed request head (and the body bytes after it).
    #[allow(clippy::too_many_arguments)]
    fn sign(
        &self,
        method: &str,
        target: &str,
        extra: &[(&str, String)],
        content_sha256: &str,
        body: &[u8],
        id: &str,
        secret: &str,
        skew_s: i64,
    ) -> Signed {
        let now_s = (now_ms() / 1000) as i64 + skew_s;
        let date = amz_date(now_s as u64);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), "localhost".into()),
            ("x-amz-content-sha256".into(), content_sha256.into()),
            ("x-amz-date".into(), date.clone()),
        ];
        for (name, value) in extra {
            headers.push((name.to_ascii_lowercase(), value.clone()));
        }
        headers.sort();
        let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        let signed_headers = signed.join(";");
        let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{}\n", v.trim())).collect();
        let canonical = CanonicalRequest {
            method,
            uri: canonical_uri(path).unwrap(),
            query: canonical_query(&parse_query(query).unwrap(), None),
            headers: canonical_headers,
            signed_headers: &signed_headers,
            payload_hash: content_sha256,
        };
        let scope = format!("{}/{REGION}/s3/aws4_request", &date[..8]);
        let key = signing_key(secret.as_bytes(), &date[..8], REGION, "s3");
        let to_sign = string_to_sign(&date, &scope, &canonical.to_text());
        let signature = hmac_sha256(&key, &[to_sign.as_bytes()]);
        let mut wire = format!("{method} {target} HTTP/1.1\r\n");
        for (name, value) in &headers {
            wire.push_str(&format!("{name}: {value}\r\n"));
        }
        wire.push_str(&format!(
            "Authorization: AWS4-HMAC-SHA256 Credential={id}/{scope}, SignedHeaders={signed_headers}, Signature={}\r\n",
            hex(&signature)
        ));
        if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding")) {
            wire.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        wire.push_str("\r\n");
        let mut wire = wire.into_bytes();
        wire.extend_from_slice(body);
        Signed { wire, signing: ChunkSigning { signing_key: key, timestamp: date, scope, seed_signature: signature } }
    }

    fn signed(&mut self, method: &str, target: &str, body: &[u8]) -> Reply {
        let hash = hex(&Sha256::digest(body));
        let signed = self.sign(method, target, &[], &hash, body, ADMIN_ID, ADMIN_SECRET, 0);
        self.exchange(signed.wire)
    }
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// aws-chunked framing of `data` in `chunk`-byte chunks; with `signing`,
/// chunk signatures (and, with trailers, a trailer signature).
fn aws_chunked(
    data: &[u8],
    chunk: usize,
    signing: Option<&ChunkSigning>,
    trailers: &[(&str, String)],
    tamper: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut previous = signing.map(|s| s.seed_signature);
    let mut pieces: Vec<&[u8]> = data.chunks(chunk).collect();
    pieces.push(&[]);
    for piece in pieces {
        match (signing, previous.as_mut()) {
            (Some(signing), Some(previous)) => {
                let signature = signing.chunk_signature(previous, &Sha256::digest(piece).into());
                out.extend_from_slice(format!("{:x};chunk-signature={}\r\n", piece.len(), hex(&signature)).as_bytes());
                *previous = signature;
            }
            _ => out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes()),
        }
        let start = out.len();
        out.extend_from_slice(piece);
        if tamper && !piece.is_empty() {
            out[start] ^= 1;
        }
        if !piece.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
    }
    let mut canonical = Vec::new();
    for (name, value) in trailers {
        out.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
        canonical.extend_from_slice(format!("{name}:{value}\n").as_bytes());
    }
    if let (Some(signing), Some(previous), false) = (signing, previous, trailers.is_empty()) {
        let signature = signing.trailer_signature(&previous, &canonical);
        out.extend_from_slice(format!("x-amz-trailer-signature:{}\r\n", hex(&signature)).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// HTTP chunked transfer coding of `body`, in pieces of `size`.
fn http_chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn signed_payload_and_unsigned_payload_round_trip() {
    let mut s = Server::new();
    assert_eq!(s.signed("PUT", "/bkt", b"").status, 200);
    let data = payload(300_000);
    let put = s.signed("PUT", "/bkt/signed%20key", &data);
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(s.signed("GET", "/bkt/signed%20key", b"").body, data);
    let unsigned = s.sign("PUT", "/bkt/unsigned", &[], "UNSIGNED-PAYLOAD", b"abc", ADMIN_ID, ADMIN_SECRET, 0);
    assert_eq!(s.exchange(unsigned.wire).status, 200);
    assert_eq!(s.signed("GET", "/bkt/unsigned", b"").body, b"abc");
    let mismatch = s.sign("PUT", "/bkt/bad", &[], &hex(&Sha256::digest(b"other")), b"abc", ADMIN_ID, ADMIN_SECRET, 0);
    assert_eq!(s.exchange(mismatch.wire).code(), "XAmzContentSHA256Mismatch");
    assert_eq!(s.signed("HEAD", "/bkt/bad", b"").status, 404);
}

/// Every aws-chunked variant stores exactly the payload, whatever the
/// chunk size and HTTP framing.
#[test]
fn aws_chunked_variants_store_exactly_the_payload() {
    let mut s = Server::new();
    s.signed("PUT", "/bkt", b"");
    for (variant, size, chunk) in [
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 66_560, 65_536),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 5, 8192),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 0, 8192),
        ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", 1_000_001, 65_536),
        ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", 0, 65_536),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", 200_000, 16_384),
    ] {
        let data = payload(size);
        let key = format!("/bkt/{variant}-{size}");
        let crc = Checksummer::digest(ChecksumAlgorithm::Crc32, &data);
        let has_trailer = variant.ends_with("TRAILER");
        let mut extra =
            vec![("content-encoding", "aws-chunked".to_string()), ("x-amz-decoded-content-length", size.to_string())];
        if has_trailer {
            extra.push(("x-amz-trailer", "x-amz-checksum-crc32".into()));
        }
        let chunked_http = variant == "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
        if chunked_http {
            extra.push(("transfer-encoding", "chunked".into()));
        }
        // Sign first (the seed signature chains the chunks), then frame.
        let probe = s.sign("PUT", &key, &extra, variant, b"", ADMIN_ID, ADMIN_SECRET, 0);
        let signing = (!variant.starts_with("STREAMING-UNSIGNED")).then_some(&probe.signing);
        let trailers = if has_trailer { vec![("x-amz-checksum-crc32", crc.clone())] } else { vec![] };
        let mut body = aws_chunked(&data, chunk, signing, &trailers, false);
        if chunked_http {
            body = http_chunked(&body, 10_000);
        }
        let signed = s.sign("PUT", &key, &extra, variant, &body, ADMIN_ID, ADMIN_SECRET, 0);
        let put = s.exchange(signed.wire);
        assert_eq!(put.status, 200, "{variant} {size}: {}", put.text());
        if has_trailer {
            assert_eq!(put.header("x-amz-checksum-crc32"), Some(crc.as_str()), "{variant}");
        }
        let got = s.signed("GET", &key, b"");
        assert_eq!(got.body.len(), data.len(), "{variant} {size}");
        assert!(got.body == data, "{variant} {size}: stored bytes differ from the payload");
    }
}

#[test]
fn tampered_chunks_and_checksums_store_nothing() {
    let mut s = Server::new();
    s.signed("PUT", "/bkt", b"");
    let data = payload(100_000);
    let extra =
        vec![("content-encoding", "aws-chunked".to_string()), ("x-amz-decoded-content-length", data.len().to_string())];
    let variant = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    let probe = s.sign("PUT", "/bkt/t", &extra, variant, b"", ADMIN_ID, ADMIN_SECRET, 0);
    let body = aws_chunked(&data, 65_536, Some(&probe.signing), &[], true);
    let put = s.exchange(s.sign("PUT", "/bkt/t", &extra, variant, &body, ADMIN_ID, ADMIN_SECRET, 0).wire);
    assert_eq!((put.status, put.code().as_str()), (403, "SignatureDoesNotMatch"));
    assert_eq!(s.signed("HEAD", "/bkt/t", b"").status, 404);
    // A wrong trailer checksum.
    let mut extra = extra.clone();
    extra.push(("x-amz-trailer", "x-amz-checksum-crc32".into()));
    let variant = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
    let wrong = vec![("x-amz-checksum-crc32", "AAAAAA==".to_string())];
    let body = aws_chunked(&data, 65_536, None, &wrong, false);
    let put = s.exchange(s.sign("PUT", "/bkt/t", &extra, variant, &body, ADMIN_ID, ADMIN_SECRET, 0).wire);
    assert_eq!(put.code(), "BadDigest");
    // A declared length that the chunks do not add up to.
    let mut short = extra.clone();
    short[1].1 = (data.len() + 1).to_string();
    let body = aws_chunked(
        &data,
        65_536,
        None,
        &[("x-amz-checksum-crc32", Checksummer::digest(ChecksumAlgorithm::Crc32, &data))],
        false,
    );
    let put = s.exchange(s.sign("PUT", "/bkt/t", &short, variant, &body, ADMIN_ID, ADMIN_SECRET, 0).wire);
    assert_eq!(put.status, 400, "{}", put.text());
    assert_eq!(s.signed("HEAD", "/bkt/t", b"").status, 404);
    let check = s.exec.block_on(s.service.store.check(), &mut s.platform, &s.timers);
    assert!(check.problems.is_empty(), "{:?}", check.problems);
}

#[test]
fn bad_credentials_are_refused_with_their_codes() {
    let mut s = Server::new();
    s.signed("PUT", "/bkt", b"");
    let empty = hex(&Sha256::digest(b""));
    let wrong = s.sign("GET", "/bkt?list-type=2", &[], &empty, b"", ADMIN_ID, "not-the-secret", 0);
    assert_eq!(s.exchange(wrong.wire).code(), "SignatureDoesNotMatch");
    let unknown = s.sign("GET", "/bkt?list-type=2", &[], &empty, b"", "RCUNKNOWNUNKNOWN2345", ADMIN_SECRET, 0);
    assert_eq!(s.exchange(unknown.wire).code(), "InvalidAccessKeyId");
    let skewed = s.sign("GET", "/bkt?list-type=2", &[], &empty, b"", ADMIN_ID, ADMIN_SECRET, 3600);
    assert_eq!(s.exchange(skewed.wire).code(), "RequestTimeTooSkewed");
    let anonymous = s.exchange(b"GET /bkt?list-type=2 HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec());
    assert_eq!((anonymous.status, anonymous.code().as_str()), (403, "AccessDenied"));
    // The bootstrap admin token works as an API key; a wrong one does not.
    let with_token =
        format!("GET /bkt?list-type=2 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    assert_eq!(s.exchange(with_token.into_bytes()).status, 200);
    let bad_token = TOKEN.replace("_AAAA", "_BAAA");
    let with_bad = format!("GET /bkt?list-type=2 HTTP/1.1\r\nHost: localhost\r\nx-api-key: {bad_token}\r\n\r\n");
    assert_eq!(s.exchange(with_bad.into_bytes()).status, 403);
}

#[test]
fn presigned_urls_work_until_they_expire() {
    let mut s = Server::new();
    s.signed("PUT", "/bkt", b"");
    s.signed("PUT", "/bkt/file", b"presigned body");
    let presign = |s: &Server, expires: u64, age_s: u64| -> Vec<u8> {
        let now_s = now_ms() / 1000 - age_s;
        let date = amz_date(now_s);
        let scope = format!("{}/{REGION}/s3/aws4_request", &date[..8]);
        let credential = format!("{ADMIN_ID}/{scope}").replace('/', "%2F");
        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}&X-Amz-Date={date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host"
        );
        let canonical = CanonicalRequest {
            method: "GET",
            uri: canonical_uri("/bkt/file").unwrap(),
            query: canonical_query(&parse_query(&query).unwrap(), None),
            headers: "host:localhost\n".into(),
            signed_headers: "host",
            payload_hash: "UNSIGNED-PAYLOAD",
        };
        let key = signing_key(ADMIN_SECRET.as_bytes(), &date[..8], REGION, "s3");
        let signature = hmac_sha256(&key, &[string_to_sign(&date, &scope, &canonical.to_text()).as_bytes()]);
        let _ = s;
        format!("GET /bkt/file?{query}&X-Amz-Signature={} HTTP/1.1\r\nHost: localhost\r\n\r\n", hex(&signature))
            .into_bytes()
    };
    let fresh = presign(&s, 600, 0);
    assert_eq!(s.exchange(fresh).body, b"presigned body");
    let expired = presign(&s, 60, 120);
    let reply = s.exchange(expired);
    assert_eq!((reply.status, reply.code().as_str()), (403, "AccessDenied"));
}

/// (method, target, extra headers, body, a read the read-only key may do)
type Op<'a> = (&'a str, &'a str, Vec<(&'a str, String)>, Vec<u8>, bool);

/// The authorization matrix over every operation: no key, a wrong secret,
/// a key that owns another bucket, and a read-only key. Nothing but the
/// read-only key's reads may succeed, and the refusals must not tell a
/// missing object or bucket from an existing one.
#[test]
fn authorization_matrix_over_every_operation() {
    let mut s = Server::new();
    s.signed("PUT", "/bkt", b"");
    s.signed("PUT", "/bkt/obj", b"secret bytes");
    let keys = &s.service.auth.keys;
    let store = &s.service.store;
    let made = async {
        let reader = keys.create_sigv4(store, "reader", false, fill_random, now_ms()).await.unwrap();
        let other = keys.create_sigv4(store, "other", false, |b| b.fill(3), now_ms()).await.unwrap();
        store.set_grant("bkt", &reader.0.access_key_id, fs::catalog::Capabilities::READ).await.unwrap();
        (reader, other)
    };
    let ((reader, reader_secret), (other, other_secret)) = s.exec.block_on(made, &mut s.platform, &s.timers);
    let (reader_id, other_id) = (reader.access_key_id.clone(), other.access_key_id.clone());
    let empty = hex(&Sha256::digest(b""));
    // The other key owns a bucket of its own.
    let own = s.sign("PUT", "/others", &[], &empty, b"", &other_id, &other_secret, 0);
    assert_eq!(s.exchange(own.wire).status, 200);
    let delete_xml = b"<Delete><Object><Key>obj</Key></Object></Delete>".to_vec();
    let versioning = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>".to_vec();
    let ops: Vec<Op> = vec![
        ("GET", "/bkt/obj", vec![], vec![], true),
        ("HEAD", "/bkt/obj", vec![], vec![], true),
        ("GET", "/bkt/obj", vec![("range", "bytes=0-3".into())], vec![], true),
        ("GET", "/bkt/missing", vec![], vec![], false),
        ("PUT", "/bkt/new", vec![], b"data".to_vec(), false),
        ("PUT", "/bkt/copy", vec![("x-amz-copy-source", "/bkt/obj".into())], vec![], false),
        ("DELETE", "/bkt/obj", vec![], vec![], false),
        ("POST", "/bkt?delete", vec![], delete_xml, false),
        ("POST", "/bkt/mp?uploads", vec![], vec![], false),
        ("GET", "/bkt?list-type=2", vec![], vec![], false),
        ("GET", "/bkt", vec![], vec![], false),
        ("GET", "/bkt?versions", vec![], vec![], false),
        ("GET", "/bkt?uploads", vec![], vec![], false),
        ("GET", "/bkt?location", vec![], vec![], false),
        ("GET", "/bkt?versioning", vec![], vec![], false),
        ("PUT", "/bkt?versioning", vec![], versioning, false),
        ("DELETE", "/bkt", vec![], vec![], false),
        ("GET", "/absent/obj", vec![], vec![], false),
        ("GET", "/absent?list-type=2", vec![], vec![], false),
    ];
    for (method, target, extra, body, reader_may) in &ops {
        let hash = hex(&Sha256::digest(body));
        let cases = [
            ("wrong secret", ADMIN_ID, "wrong-secret-wrong-secret-wrong-secret0", "SignatureDoesNotMatch"),
            ("other bucket's owner", other_id.as_str(), other_secret.as_str(), "AccessDenied"),
            ("read-only", reader_id.as_str(), reader_secret.as_str(), "AccessDenied"),
        ];
        for (who, id, secret, code) in cases {
            let signed = s.sign(method, target, extra, &hash, body, id, secret, 0);
            let reply = s.exchange(signed.wire);
            if who == "read-only" && *reader_may {
                assert!(reply.status == 200 || reply.status == 206, "{who} {method} {target}: {}", reply.status);
                continue;
            }
            assert_eq!(reply.status, 403, "{who} {method} {target}: {}", reply.text());
            if *method != "HEAD" {
                assert_eq!(reply.code(), code, "{who} {method} {target}");
            }
        }
        let anonymous =
            format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len());
        let mut wire = anonymous.into_bytes();
        wire.extend_from_slice(body);
        assert_eq!(s.exchange(wire).status, 403, "anonymous {method} {target}");
    }
    // ListBuckets shows each key only what it may see.
    let list = |s: &mut Server, id: &str, secret: &str| {
        let signed = s.sign("GET", "/", &[], &empty, b"", id, secret, 0);
        s.exchange(signed.wire).text()
    };
    let seen = list(&mut s, &reader_id, &reader_secret);
    assert!(seen.contains("<Name>bkt</Name>") && !seen.contains("<Name>others</Name>"), "{seen}");
    let seen = list(&mut s, &other_id, &other_secret);
    assert!(!seen.contains("<Name>bkt</Name>") && seen.contains("<Name>others</Name>"), "{seen}");
    // Nothing changed.
    assert_eq!(s.signed("GET", "/bkt/obj", b"").body, b"secret bytes");
    assert_eq!(s.signed("HEAD", "/bkt/new", b"").status, 404);
    assert!(!s.signed("GET", "/bkt?versioning", b"").text().contains("Enabled"));
}
