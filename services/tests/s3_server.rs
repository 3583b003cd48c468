//! The S3 server end to end in one process: request bytes in, response
//! bytes out, over the real store on a RAM disk, with the executor and
//! timers on a simulated clock. Each request is fed in random splits, so
//! the connection loop's buffering is exercised too. Authentication is a
//! test double here (`x-test-key`); SigV4 has its own tests.

mod common;

use std::sync::Arc;

use common::{Reply, ScriptConnection, SimPlatform, now_ms, parse_replies};

use fs::catalog::Capabilities;
use fs::store::{FormatOptions, Store};
use runtime::clock::FakeClock;
use runtime::executor::Executor;
use runtime::timers::Timers;
use services::s3::S3ErrorCode;
use services::s3::http::RequestHead;
use services::s3::server::{Authenticated, Authenticator, BodyCheck, Principal, S3Config, S3Service};
use storage::block::RamDisk;

/// `x-test-key: NAME` authenticates as NAME; `admin` is the admin.
struct TestAuth;

impl Authenticator for TestAuth {
    fn authenticate(&self, head: &RequestHead, _now: u64) -> Result<Authenticated, S3ErrorCode> {
        let key = head.headers.get("x-test-key").ok_or(S3ErrorCode::AccessDenied)?;
        let body = match head.headers.get("x-test-sha256") {
            Some(hex) => {
                let mut hash = [0u8; 32];
                for (i, byte) in hash.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
                }
                BodyCheck::Sha256(hash)
            }
            None => BodyCheck::None,
        };
        Ok(Authenticated { principal: Principal { access_key: key.to_string(), admin: key == "admin" }, body })
    }
}

struct Server {
    exec: Executor,
    platform: SimPlatform,
    timers: Timers,
    service: S3Service<RamDisk, TestAuth>,
    seed: u64,
}

impl Server {
    fn new() -> Self {
        let clock = Arc::new(FakeClock::new(1_000_000));
        let timers = Timers::new(clock.clone());
        let exec = Executor::new();
        let mut platform = SimPlatform { clock };
        let disk = RamDisk::new(512, 256 * 2048);
        let options = FormatOptions { min_part_bytes: 64 * 1024, volume_id: [7; 16], ..FormatOptions::default() };
        let store = exec.block_on(Store::format(disk, options), &mut platform, &timers).expect("format");
        let service = S3Service::new(store, TestAuth, S3Config::default(), now_ms, 0x1234);
        Self { exec, platform, timers, service, seed: 0x9E37_79B9_7F4A_7C15 }
    }

    /// Sends raw request bytes on one connection; the responses.
    fn exchange(&mut self, input: Vec<u8>, heads: &[bool]) -> Vec<Reply> {
        self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut conn = ScriptConnection { input, at: 0, seed: self.seed | 1, output: Vec::new() };
        let service = &self.service;
        let timers = self.timers.clone();
        self.exec.block_on(
            async {
                service.serve_connection(&mut conn, &timers).await;
            },
            &mut self.platform,
            &self.timers,
        );
        parse_replies(&conn.output, heads)
    }

    fn request(&mut self, key: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut wire = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nx-test-key: {key}\r\n");
        for (name, value) in headers {
            wire.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "PUT" || method == "POST" {
            wire.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        wire.push_str("\r\n");
        let mut bytes = wire.into_bytes();
        bytes.extend_from_slice(body);
        let mut replies = self.exchange(bytes, &[method == "HEAD"]);
        assert_eq!(replies.len(), 1, "one response per request");
        replies.remove(0)
    }

    fn admin(&mut self, method: &str, target: &str, body: &[u8]) -> Reply {
        self.request("admin", method, target, &[], body)
    }
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(u32::from(seed) % 31) as u8 ^ seed).collect()
}

#[test]
fn bucket_lifecycle() {
    let mut s = Server::new();
    assert_eq!(s.admin("PUT", "/photos", b"").status, 200);
    let again = s.admin("PUT", "/photos", b"");
    assert_eq!((again.status, again.code().as_str()), (409, "BucketAlreadyOwnedByYou"));
    let bad = s.admin("PUT", "/Bad_Name", b"");
    assert_eq!((bad.status, bad.code().as_str()), (400, "InvalidBucketName"));
    let list = s.admin("GET", "/", b"");
    assert_eq!(list.status, 200);
    assert!(list.text().contains("<Name>photos</Name>"), "{}", list.text());
    assert_eq!(s.admin("HEAD", "/photos", b"").status, 200);
    assert_eq!(s.admin("HEAD", "/nothing", b"").status, 404);
    assert!(s.admin("GET", "/photos?location", b"").text().contains("us-east-1"));
    assert_eq!(s.admin("PUT", "/photos/a", b"x").status, 200);
    let busy = s.admin("DELETE", "/photos", b"");
    assert_eq!((busy.status, busy.code().as_str()), (409, "BucketNotEmpty"));
    assert_eq!(s.admin("DELETE", "/photos/a", b"").status, 204);
    assert_eq!(s.admin("DELETE", "/photos", b"").status, 204);
    assert_eq!(s.admin("HEAD", "/photos", b"").status, 404);
}

#[test]
fn objects_round_trip_with_metadata_ranges_and_conditions() {
    let mut s = Server::new();
    s.admin("PUT", "/bkt", b"");
    for size in [0usize, 1, 1024, 4097, (1 << 20) + 5, 3 << 20] {
        let data = pattern(size, size as u8);
        let put = s.request(
            "admin",
            "PUT",
            "/bkt/dir/obj%20one",
            &[("Content-Type", "text/plain"), ("x-amz-meta-color", "blue"), ("Cache-Control", "no-cache")],
            &data,
        );
        assert_eq!(put.status, 200, "{}", put.text());
        let etag = put.header("ETag").unwrap().to_string();
        use md5::Digest;
        let digest: Vec<String> = md5::Md5::digest(&data).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(etag, format!("\"{}\"", digest.concat()));
        let get = s.admin("GET", "/bkt/dir/obj%20one", b"");
        assert_eq!(get.status, 200);
        assert_eq!(get.body, data, "size {size}");
        assert_eq!(get.header("ETag"), Some(etag.as_str()));
        assert_eq!(get.header("Content-Type"), Some("text/plain"));
        assert_eq!(get.header("x-amz-meta-color"), Some("blue"));
        assert_eq!(get.header("cache-control"), Some("no-cache"));
        let head = s.admin("HEAD", "/bkt/dir/obj%20one", b"");
        assert_eq!(head.status, 200);
        assert_eq!(head.header("Content-Length"), Some(size.to_string().as_str()));
        if size > 10 {
            let range = s.request("admin", "GET", "/bkt/dir/obj%20one", &[("Range", "bytes=3-9")], b"");
            assert_eq!(range.status, 206);
            assert_eq!(range.body, data[3..10]);
            assert_eq!(range.header("Content-Range"), Some(format!("bytes 3-9/{size}").as_str()));
            let suffix = s.request("admin", "GET", "/bkt/dir/obj%20one", &[("Range", "bytes=-4")], b"");
            assert_eq!(suffix.body, data[size - 4..]);
        }
        let not_modified = s.request("admin", "GET", "/bkt/dir/obj%20one", &[("If-None-Match", &etag)], b"");
        assert_eq!(not_modified.status, 304);
        assert!(not_modified.body.is_empty());
        let failed = s.request("admin", "GET", "/bkt/dir/obj%20one", &[("If-Match", "\"nope\"")], b"");
        assert_eq!((failed.status, failed.code().as_str()), (412, "PreconditionFailed"));
    }
    let unsatisfiable = s.request("admin", "GET", "/bkt/dir/obj%20one", &[("Range", "bytes=99999999-")], b"");
    assert_eq!((unsatisfiable.status, unsatisfiable.code().as_str()), (416, "InvalidRange"));
    let missing = s.admin("GET", "/bkt/none", b"");
    assert_eq!((missing.status, missing.code().as_str()), (404, "NoSuchKey"));
    assert!(missing.header("x-amz-request-id").is_some());
    let override_type = s.admin("GET", "/bkt/dir/obj%20one?response-content-type=image/png", b"");
    assert_eq!(override_type.header("Content-Type"), Some("image/png"));
}

#[test]
fn signed_payload_hash_and_content_md5_are_verified() {
    let mut s = Server::new();
    s.admin("PUT", "/bkt", b"");
    let data = b"hello world";
    // sha256("hello world")
    let good = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    let bad = "0000000000000000000000000000000000000000000000000000000000000000";
    assert_eq!(s.request("admin", "PUT", "/bkt/k", &[("x-test-sha256", good)], data).status, 200);
    let mismatch = s.request("admin", "PUT", "/bkt/k2", &[("x-test-sha256", bad)], data);
    assert_eq!((mismatch.status, mismatch.code().as_str()), (400, "XAmzContentSHA256Mismatch"));
    assert_eq!(s.admin("HEAD", "/bkt/k2", b"").status, 404, "a mismatched upload is discarded");
    let md5_bad = s.request("admin", "PUT", "/bkt/k3", &[("Content-MD5", "AAAAAAAAAAAAAAAAAAAAAA==")], data);
    assert_eq!((md5_bad.status, md5_bad.code().as_str()), (400, "BadDigest"));
    // base64(md5("hello world"))
    let md5_good = s.request("admin", "PUT", "/bkt/k3", &[("Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww==")], data);
    assert_eq!(md5_good.status, 200);
    let crc = s.request("admin", "PUT", "/bkt/k4", &[("x-amz-checksum-crc32", "DUoRhQ==")], data);
    assert_eq!(crc.status, 200, "{}", crc.text());
    let crc_bad = s.request("admin", "PUT", "/bkt/k5", &[("x-amz-checksum-crc32", "AAAAAA==")], data);
    assert_eq!((crc_bad.status, crc_bad.code().as_str()), (400, "BadDigest"));
    let with_mode = s.request("admin", "HEAD", "/bkt/k4", &[("x-amz-checksum-mode", "ENABLED")], b"");
    assert_eq!(with_mode.header("x-amz-checksum-crc32"), Some("DUoRhQ=="));
    // A range carries no whole-object checksum (clients would check the
    // partial bytes against it: found by the aws cli's ranged downloads).
    let ranged =
        s.request("admin", "GET", "/bkt/k4", &[("x-amz-checksum-mode", "ENABLED"), ("Range", "bytes=0-3")], b"");
    assert_eq!((ranged.status, ranged.header("x-amz-checksum-crc32")), (206, None));
}

#[test]
fn listing_v2_and_v1_with_prefix_delimiter_and_pages() {
    let mut s = Server::new();
    s.admin("PUT", "/bkt", b"");
    let keys = ["a/1", "a/2", "a/b/3", "b/1", "c", "d/x/y"];
    for key in keys {
        assert_eq!(s.admin("PUT", &format!("/bkt/{key}"), key.as_bytes()).status, 200);
    }
    let root = s.admin("GET", "/bkt?list-type=2&delimiter=%2F", b"");
    let text = root.text();
    assert!(text.contains("<KeyCount>4</KeyCount>"), "{text}");
    for prefix in ["a/", "b/", "d/"] {
        assert!(text.contains(&format!("<CommonPrefixes><Prefix>{prefix}</Prefix></CommonPrefixes>")), "{text}");
    }
    assert!(text.contains("<Key>c</Key>"));
    let under_a = s.admin("GET", "/bkt?list-type=2&prefix=a%2F&delimiter=%2F", b"").text();
    assert!(under_a.contains("<Key>a/1</Key>") && under_a.contains("<Key>a/2</Key>"), "{under_a}");
    assert!(under_a.contains("<Prefix>a/b/</Prefix>"));
    // Pages of two: every key exactly once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10 {
        let target = match &token {
            Some(t) => format!("/bkt?list-type=2&max-keys=2&continuation-token={t}"),
            None => "/bkt?list-type=2&max-keys=2".to_string(),
        };
        let page = s.admin("GET", &target, b"").text();
        for part in page.split("<Key>").skip(1) {
            seen.push(part.split("</Key>").next().unwrap().to_string());
        }
        token = page.split("<NextContinuationToken>").nth(1).map(|r| r.split('<').next().unwrap().to_string());
        if token.is_none() {
            assert!(page.contains("<IsTruncated>false</IsTruncated>"));
            break;
        }
    }
    assert_eq!(seen, keys);
    let v1 = s.admin("GET", "/bkt?prefix=a%2F&marker=a%2F1", b"").text();
    assert!(
        v1.contains("<Marker>a/1</Marker>") && v1.contains("<Key>a/2</Key>") && !v1.contains("<Key>a/1</Key>"),
        "{v1}"
    );
    let encoded = s.admin("GET", "/bkt?list-type=2&prefix=a&encoding-type=url", b"").text();
    assert!(encoded.contains("<Key>a%2F1</Key>") || encoded.contains("<Key>a/1</Key>"), "{encoded}");
    let missing = s.admin("GET", "/nope?list-type=2", b"");
    assert_eq!(missing.code(), "NoSuchBucket");
}

#[test]
fn multipart_upload_complete_and_abort() {
    let mut s = Server::new();
    s.admin("PUT", "/bkt", b"");
    let create = s.admin("POST", "/bkt/big?uploads", b"");
    assert_eq!(create.status, 200);
    let upload_id = create.text().split("<UploadId>").nth(1).unwrap().split('<').next().unwrap().to_string();
    let part1 = pattern(100 * 1024, 1);
    let part2 = pattern(333, 2);
    let e1 = s.admin("PUT", &format!("/bkt/big?partNumber=1&uploadId={upload_id}"), &part1);
    let e2 = s.admin("PUT", &format!("/bkt/big?partNumber=2&uploadId={upload_id}"), &part2);
    assert_eq!((e1.status, e2.status), (200, 200));
    let (e1, e2) = (e1.header("ETag").unwrap().to_string(), e2.header("ETag").unwrap().to_string());
    let parts = s.admin("GET", &format!("/bkt/big?uploadId={upload_id}"), b"").text();
    assert!(parts.contains("<PartNumber>1</PartNumber>") && parts.contains("<PartNumber>2</PartNumber>"), "{parts}");
    let uploads = s.admin("GET", "/bkt?uploads", b"").text();
    assert!(uploads.contains(&upload_id), "{uploads}");
    let complete_xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{e2}</ETag></Part></CompleteMultipartUpload>"
    );
    let done = s.admin("POST", &format!("/bkt/big?uploadId={upload_id}"), complete_xml.as_bytes());
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(done.text().contains("-2&quot;") || done.text().contains("-2\""), "{}", done.text());
    let got = s.admin("GET", "/bkt/big", b"");
    let mut whole = part1.clone();
    whole.extend_from_slice(&part2);
    assert_eq!(got.body, whole);
    let second = s.admin("GET", "/bkt/big?partNumber=2", b"");
    assert_eq!((second.status, second.body.clone()), (206, part2.clone()));
    assert_eq!(second.header("x-amz-mp-parts-count"), Some("2"));
    // Bad order, unknown upload, abort.
    let create = s.admin("POST", "/bkt/other?uploads", b"").text();
    let other = create.split("<UploadId>").nth(1).unwrap().split('<').next().unwrap().to_string();
    let wrong = s.admin("POST", &format!("/bkt/other?uploadId={other}"), complete_xml.as_bytes());
    assert_eq!(wrong.code(), "InvalidPart");
    assert_eq!(s.admin("DELETE", &format!("/bkt/other?uploadId={other}"), b"").status, 204);
    let gone = s.admin("PUT", &format!("/bkt/other?partNumber=1&uploadId={other}"), b"x");
    assert_eq!(gone.code(), "NoSuchUpload");
    let bad_xml = s.admin("POST", &format!("/bkt/big?uploadId={upload_id}"), b"<nope");
    assert_eq!(bad_xml.status, 404, "the upload completed already");
}

#[test]
fn versioning_delete_markers_and_version_listing() {
    let mut s = Server::new();
    s.admin("PUT", "/ver", b"");
    let enable = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    assert_eq!(s.admin("PUT", "/ver?versioning", enable).status, 200);
    assert!(s.admin("GET", "/ver?versioning", b"").text().contains("<Status>Enabled</Status>"));
    let v1 = s.admin("PUT", "/ver/doc", b"one").header("x-amz-version-id").unwrap().to_string();
    let v2 = s.admin("PUT", "/ver/doc", b"two").header("x-amz-version-id").unwrap().to_string();
    assert_ne!(v1, v2);
    assert_eq!(s.admin("GET", "/ver/doc", b"").body, b"two");
    assert_eq!(s.admin("GET", &format!("/ver/doc?versionId={v1}"), b"").body, b"one");
    let deleted = s.admin("DELETE", "/ver/doc", b"");
    assert_eq!(deleted.header("x-amz-delete-marker"), Some("true"));
    let gone = s.admin("GET", "/ver/doc", b"");
    assert_eq!((gone.status, gone.header("x-amz-delete-marker")), (404, Some("true")));
    let versions = s.admin("GET", "/ver?versions", b"").text();
    assert_eq!(versions.matches("<Version>").count(), 2, "{versions}");
    assert_eq!(versions.matches("<DeleteMarker>").count(), 1);
    let marker = deleted.header("x-amz-version-id").unwrap().to_string();
    assert_eq!(s.admin("DELETE", &format!("/ver/doc?versionId={marker}"), b"").status, 204);
    assert_eq!(s.admin("GET", "/ver/doc", b"").body, b"two", "removing the marker restores the object");
    let bulk = format!(
        "<Delete><Object><Key>doc</Key><VersionId>{v1}</VersionId></Object><Object><Key>none</Key></Object></Delete>"
    );
    let result = s.admin("POST", "/ver?delete", bulk.as_bytes());
    assert_eq!(result.status, 200);
    assert_eq!(result.text().matches("<Deleted>").count(), 2, "{}", result.text());
    assert_eq!(s.admin("GET", &format!("/ver/doc?versionId={v1}"), b"").code(), "NoSuchVersion");
}

#[test]
fn copy_object_and_upload_part_copy() {
    let mut s = Server::new();
    s.admin("PUT", "/bkt", b"");
    let data = pattern(200_000, 9);
    s.request("admin", "PUT", "/bkt/src", &[("x-amz-meta-a", "1"), ("Content-Type", "text/x")], &data);
    let copy = s.request("admin", "PUT", "/bkt/dst", &[("x-amz-copy-source", "/bkt/src")], b"");
    assert_eq!(copy.status, 200, "{}", copy.text());
    let got = s.admin("GET", "/bkt/dst", b"");
    assert_eq!(got.body, data);
    assert_eq!(got.header("x-amz-meta-a"), Some("1"));
    let replaced = s.request(
        "admin",
        "PUT",
        "/bkt/dst2",
        &[("x-amz-copy-source", "bkt/src"), ("x-amz-metadata-directive", "REPLACE"), ("x-amz-meta-b", "2")],
        b"",
    );
    assert_eq!(replaced.status, 200);
    let got = s.admin("HEAD", "/bkt/dst2", b"");
    assert_eq!((got.header("x-amz-meta-a"), got.header("x-amz-meta-b")), (None, Some("2")));
    let create = s.admin("POST", "/bkt/mp?uploads", b"").text();
    let id = create.split("<UploadId>").nth(1).unwrap().split('<').next().unwrap().to_string();
    let part = s.request(
        "admin",
        "PUT",
        &format!("/bkt/mp?partNumber=1&uploadId={id}"),
        &[("x-amz-copy-source", "/bkt/src"), ("x-amz-copy-source-range", "bytes=10-99")],
        b"",
    );
    assert_eq!(part.status, 200, "{}", part.text());
    let etag = part.text().split("<ETag>").nth(1).unwrap().split('<').next().unwrap().replace("&quot;", "\"");
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    assert_eq!(s.admin("POST", &format!("/bkt/mp?uploadId={id}"), xml.as_bytes()).status, 200);
    assert_eq!(s.admin("GET", "/bkt/mp", b"").body, data[10..100]);
}

#[test]
fn capabilities_are_enforced_without_revealing_existence() {
    let mut s = Server::new();
    s.admin("PUT", "/private", b"");
    s.admin("PUT", "/private/secret", b"s");
    s.request("alice", "PUT", "/alices", &[], b"");
    // alice owns her bucket; she sees nothing of the admin's.
    assert_eq!(s.request("alice", "PUT", "/alices/k", &[], b"v").status, 200);
    let listed = s.request("alice", "GET", "/", &[], b"").text();
    assert!(listed.contains("<Name>alices</Name>") && !listed.contains("private"), "{listed}");
    for (method, target) in [
        ("GET", "/private/secret"),
        ("GET", "/private/none"),
        ("GET", "/absent/none"),
        ("GET", "/private?list-type=2"),
        ("PUT", "/private/x"),
        ("DELETE", "/private/secret"),
        ("HEAD", "/private"),
    ] {
        let reply = s.request("alice", method, target, &[], b"");
        assert_eq!(reply.status, 403, "{method} {target}");
    }
    // A read-only grant: reads, no writes, no listing; a missing key is 403.
    let store = &s.service.store;
    let grant = store.set_grant("private", "bob", Capabilities::READ);
    s.exec.block_on(grant, &mut s.platform, &s.timers).unwrap();
    assert_eq!(s.request("bob", "GET", "/private/secret", &[], b"").body, b"s");
    assert_eq!(s.request("bob", "PUT", "/private/secret", &[], b"x").status, 403);
    assert_eq!(s.request("bob", "GET", "/private?list-type=2", &[], b"").status, 403);
    assert_eq!(s.request("bob", "GET", "/private/none", &[], b"").status, 403);
    // No key at all.
    let anonymous = s.exchange(b"GET /private/secret HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), &[false]);
    assert_eq!(anonymous[0].status, 403);
}

#[test]
fn pipelined_requests_keep_alive_and_100_continue() {
    let mut s = Server::new();
    s.admin("PUT", "/bkt", b"");
    let mut wire = Vec::new();
    for i in 0..20 {
        let body = format!("body-{i}");
        wire.extend_from_slice(
            format!(
                "PUT /bkt/k{i} HTTP/1.1\r\nHost: localhost\r\nx-test-key: admin\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        wire.extend_from_slice(
            format!("GET /bkt/k{i} HTTP/1.1\r\nHost: localhost\r\nx-test-key: admin\r\n\r\n").as_bytes(),
        );
    }
    wire.extend_from_slice(b"PUT /bkt/chunked HTTP/1.1\r\nHost: localhost\r\nx-test-key: admin\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    wire.extend_from_slice(
        b"GET /bkt/chunked HTTP/1.1\r\nHost: localhost\r\nx-test-key: admin\r\nConnection: close\r\n\r\n",
    );
    let replies = s.exchange(wire, &[]);
    assert_eq!(replies.len(), 42);
    for i in 0..20 {
        assert_eq!(replies[2 * i].status, 200);
        assert_eq!(replies[2 * i + 1].body, format!("body-{i}").as_bytes());
    }
    assert_eq!(replies[41].body, b"hello world");
    assert_eq!(replies[41].header("Connection"), Some("close"));
}

#[test]
fn hostile_input_gets_errors_not_panics() {
    let mut s = Server::new();
    s.admin("PUT", "/bkt", b"");
    let cases: Vec<&[u8]> = vec![
        b"GARBAGE\r\n\r\n",
        b"GET /bkt/k HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"PUT /bkt/k HTTP/1.1\r\nHost: localhost\r\nx-test-key: admin\r\nContent-Length: 10\r\n\r\nshort",
        b"GET /bkt/%ZZ HTTP/1.1\r\nHost: localhost\r\nx-test-key: admin\r\n\r\n",
        b"POST /bkt?delete HTTP/1.1\r\nHost: localhost\r\nx-test-key: admin\r\nContent-Length: 6\r\n\r\n<Dele>",
        b"PUT /bkt/k?partNumber=0&uploadId=x HTTP/1.1\r\nHost: localhost\r\nx-test-key: admin\r\nContent-Length: 0\r\n\r\n",
        b"GET /bkt/k?versionId=zzz HTTP/1.1\r\nHost: localhost\r\nx-test-key: admin\r\n\r\n",
        b"PATCH /bkt/k HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ];
    for case in cases {
        let replies = s.exchange(case.to_vec(), &[]);
        assert!(replies.iter().all(|r| r.status >= 400), "{:?}", String::from_utf8_lossy(case));
    }
    // A slow client that never finishes its head is dropped at the timeout.
    let replies = s.exchange(b"GET /bkt/k HTTP/1.1\r\nHost: local".to_vec(), &[]);
    assert!(replies.iter().all(|r| r.status >= 400));
    // The store is intact and the server still serves.
    assert_eq!(s.admin("PUT", "/bkt/ok", b"fine").status, 200);
    assert_eq!(s.admin("GET", "/bkt/ok", b"").body, b"fine");
    let check = s.exec.block_on(s.service.store.check(), &mut s.platform, &s.timers);
    assert!(check.problems.is_empty(), "{:?}", check.problems);
}

#[test]
fn quotas_refuse_writes_with_quota_exceeded() {
    let mut s = Server::new();
    s.admin("PUT", "/quota", b"");
    let quota = fs::catalog::Quota { max_bytes: Some(10_000), max_objects: Some(2) };
    let set = s.service.store.set_quota("quota", quota);
    s.exec.block_on(set, &mut s.platform, &s.timers).unwrap();
    assert_eq!(s.admin("PUT", "/quota/a", &pattern(4000, 1)).status, 200);
    let too_big = s.admin("PUT", "/quota/big", &pattern(7000, 2));
    assert_eq!((too_big.status, too_big.code().as_str()), (403, "QuotaExceeded"));
    assert_eq!(s.admin("PUT", "/quota/b", &pattern(10, 3)).status, 200);
    let too_many = s.admin("PUT", "/quota/c", b"x");
    assert_eq!(too_many.code(), "QuotaExceeded");
    // Overwriting within the limits is fine; deleting frees room.
    assert_eq!(s.admin("PUT", "/quota/a", &pattern(100, 4)).status, 200);
    assert_eq!(s.admin("DELETE", "/quota/b", b"").status, 204);
    assert_eq!(s.admin("PUT", "/quota/c", b"x").status, 200);
}

/// Sends its input a byte at a time, each after `gap` of simulated time.
struct Trickle {
    input: Vec<u8>,
    at: usize,
    gap: std::time::Duration,
    timers: Timers,
    output: Vec<u8>,
}

impl services::s3::server::Connection for Trickle {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, services::s3::server::ConnectionError> {
        if self.at == self.input.len() {
            return Ok(0);
        }
        self.timers.sleep(self.gap).await;
        buf[0] = self.input[self.at];
        self.at += 1;
        Ok(1)
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), services::s3::server::ConnectionError> {
        self.output.extend_from_slice(data);
        Ok(())
    }
}

/// Sends a request, then never takes the response.
struct NeverReads {
    input: Vec<u8>,
    at: usize,
}

impl services::s3::server::Connection for NeverReads {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, services::s3::server::ConnectionError> {
        let n = buf.len().min(self.input.len() - self.at);
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }

    async fn write_all(&mut self, _: &[u8]) -> Result<(), services::s3::server::ConnectionError> {
        std::future::pending().await
    }
}

#[test]
fn slowloris_heads_and_stalled_readers_are_cut_off() {
    let mut s = Server::new();
    s.admin("PUT", "/bkt", b"");
    s.admin("PUT", "/bkt/k", &pattern(100_000, 1));
    let timeout_ns = S3Config::default().read_timeout.as_nanos() as u64;
    // A byte every 5 s: each read is well within the read timeout, the
    // whole head is not.
    let head =
        b"GET /bkt/k HTTP/1.1\r\nHost: localhost\r\nx-test-key: admin\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut trickle = Trickle {
        input: head.to_vec(),
        at: 0,
        gap: std::time::Duration::from_secs(5),
        timers: s.timers.clone(),
        output: Vec::new(),
    };
    let start = s.timers.now_ns();
    let (service, timers) = (&s.service, s.timers.clone());
    s.exec.block_on(service.serve_connection(&mut trickle, &timers), &mut s.platform, &s.timers);
    let elapsed = s.timers.now_ns() - start;
    assert!(trickle.at < head.len(), "the head must not be read to its end");
    assert!(elapsed <= timeout_ns + 6_000_000_000, "closed after {} s", elapsed / 1_000_000_000);
    assert!(trickle.output.starts_with(b"HTTP/1.1 408 "), "{:?}", String::from_utf8_lossy(&trickle.output));
    // A client that stops reading its response is dropped after the timeout.
    let mut stalled =
        NeverReads { input: b"GET /bkt/k HTTP/1.1\r\nHost: localhost\r\nx-test-key: admin\r\n\r\n".to_vec(), at: 0 };
    let start = s.timers.now_ns();
    s.exec.block_on(service.serve_connection(&mut stalled, &timers), &mut s.platform, &s.timers);
    assert!(s.timers.now_ns() - start <= timeout_ns + 1_000_000_000);
    // The server still serves.
    assert_eq!(s.admin("GET", "/bkt/k", b"").body, pattern(100_000, 1));
}
