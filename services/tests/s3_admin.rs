//! The admin API end to end on the host: keys (create, use, revoke),
//! grants, quotas, renames, the event queue (list, acknowledge, bounded with
//! a dropped count, surviving a reopen) and the metrics text.

mod common;

use std::sync::Arc;

use common::{Reply, ScriptConnection, SimPlatform, now_ms, parse_replies};
use fs::store::{FormatOptions, Store};
use runtime::clock::FakeClock;
use runtime::executor::Executor;
use runtime::timers::Timers;
use security::keystore::NodeKey;
use services::s3::auth::KeyAuth;
use services::s3::keys::{Bootstrap, StoreKeys};
use services::s3::server::{S3Config, S3Service};
use storage::block::RamDisk;

const TOKEN: &str = "rc_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

struct Admin {
    exec: Executor,
    platform: SimPlatform,
    timers: Timers,
    service: S3Service<Arc<RamDisk>, KeyAuth<StoreKeys>>,
    disk: Arc<RamDisk>,
}

fn fill(out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
}

fn open(disk: Arc<RamDisk>, format: bool, event_capacity: usize) -> Admin {
    let clock = Arc::new(FakeClock::new(1_000_000));
    let timers = Timers::new(clock.clone());
    let exec = Executor::new();
    let mut platform = SimPlatform { clock };
    let service = exec.block_on(
        async {
            let store = if format {
                Store::format(disk.clone(), FormatOptions::default()).await.unwrap()
            } else {
                Store::open(disk.clone()).await.unwrap().0
            };
            let bootstrap = Bootstrap { admin_sigv4: None, admin_token: Some(TOKEN.into()) };
            let keys = StoreKeys::open(&store, NodeKey::new([2; 32]), &bootstrap, fill, now_ms()).await.unwrap();
            let config = S3Config { event_capacity, ..S3Config::default() };
            S3Service::new(store, KeyAuth { keys }, config, now_ms, 3)
        },
        &mut platform,
        &timers,
    );
    Admin { exec, platform, timers, service, disk }
}

impl Admin {
    fn run(&mut self, wire: String, admin_port: bool) -> Reply {
        let mut conn = ScriptConnection { input: wire.into_bytes(), at: 0, seed: 99, output: Vec::new() };
        let (service, timers) = (&self.service, self.timers.clone());
        self.exec.block_on(
            async {
                if admin_port {
                    service.serve_admin_connection(&mut conn, &timers, fill).await;
                } else {
                    service.serve_connection(&mut conn, &timers).await;
                }
            },
            &mut self.platform,
            &self.timers,
        );
        parse_replies(&conn.output, &[]).remove(0)
    }

    fn admin(&mut self, method: &str, target: &str) -> Reply {
        self.run(format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n"), true)
    }

    fn s3(&mut self, token: &str, method: &str, target: &str, body: &str) -> Reply {
        self.run(
            format!(
                "{method} {target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            false,
        )
    }
}

fn json_field<'a>(text: &'a str, field: &str) -> &'a str {
    let start = text.find(&format!("\"{field}\":\"")).unwrap_or_else(|| panic!("{field} in {text}")) + field.len() + 4;
    &text[start..start + text[start..].find('"').unwrap()]
}

#[test]
fn keys_grants_quotas_and_renames() {
    let mut a = open(Arc::new(RamDisk::new(512, 64 * 2048)), true, 100);
    assert_eq!(a.run("GET /health HTTP/1.1\r\nHost: x\r\n\r\n".into(), true).status, 200);
    let anonymous = a.run("GET /v1/keys HTTP/1.1\r\nHost: x\r\n\r\n".into(), true);
    assert_eq!(anonymous.status, 403);
    assert_eq!(a.s3(TOKEN, "PUT", "/shared", "").status, 200);
    let created = a.admin("POST", "/v1/keys?name=app&kind=apikey");
    assert_eq!(created.status, 201, "{}", created.text());
    let app_token = json_field(&created.text(), "secret").to_string();
    let app_id = json_field(&created.text(), "id").to_string();
    // A non-admin key may not use the admin API, nor the bucket until granted.
    assert_eq!(a.s3(&app_token, "PUT", "/shared/x", "1").status, 403);
    let grant = a.admin("PUT", &format!("/v1/buckets/shared/grants/{app_id}?caps=read,write"));
    assert_eq!(grant.status, 200, "{}", grant.text());
    assert_eq!(a.s3(&app_token, "PUT", "/shared/x", "1").status, 200);
    assert_eq!(a.s3(&app_token, "GET", "/shared/x", "").body, b"1");
    assert_eq!(a.s3(&app_token, "GET", "/shared?list-type=2", "").status, 403, "no list capability");
    let forbidden =
        a.run(format!("GET /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {app_token}\r\n\r\n"), true);
    assert_eq!(forbidden.status, 403);
    // Quota.
    assert_eq!(a.admin("PUT", "/v1/buckets/shared/quota?max_objects=1").status, 200);
    assert_eq!(a.s3(TOKEN, "PUT", "/shared/y", "2").code(), "QuotaExceeded");
    assert_eq!(a.admin("PUT", "/v1/buckets/shared/quota").status, 200);
    assert_eq!(a.s3(TOKEN, "PUT", "/shared/y", "2").status, 200);
    // Rename.
    assert_eq!(a.admin("POST", "/v1/buckets/shared/rename?to=renamed").status, 200);
    assert_eq!(a.s3(TOKEN, "GET", "/renamed/x", "").body, b"1");
    assert_eq!(a.admin("POST", "/v1/buckets/renamed/rename?to=Bad_Name").status, 400);
    let buckets = a.admin("GET", "/v1/buckets").text();
    assert!(
        buckets.contains("\"name\":\"renamed\"") && buckets.contains(&format!("\"{app_id}\":\"read,write\"")),
        "{buckets}"
    );
    // Revocation is immediate and survives a reopen.
    assert_eq!(a.admin("DELETE", &format!("/v1/keys/{app_id}")).status, 200);
    assert_eq!(a.s3(&app_token, "GET", "/renamed/x", "").status, 403);
    let keys = a.admin("GET", "/v1/keys").text();
    assert!(keys.contains("\"revoked\":true") && !keys.contains("secret"), "{keys}");
    let disk = a.disk.clone();
    drop(a);
    let mut b = open(disk, false, 100);
    assert_eq!(b.s3(&app_token, "GET", "/renamed/x", "").status, 403, "revoked after reopen");
    assert_eq!(b.s3(TOKEN, "GET", "/renamed/x", "").body, b"1");
    assert_eq!(b.admin("GET", "/nope").status, 404);
}

#[test]
fn events_are_queued_bounded_acknowledged_and_durable() {
    let mut a = open(Arc::new(RamDisk::new(512, 64 * 2048)), true, 5);
    a.s3(TOKEN, "PUT", "/evts", "");
    a.s3(TOKEN, "PUT", "/evts/one", "1");
    a.s3(TOKEN, "DELETE", "/evts/one", "");
    let listed = a.admin("GET", "/v1/events").text();
    assert!(listed.contains("\"dropped\":0"), "{listed}");
    assert!(
        listed.contains("\"eventName\":\"ObjectCreated:Put\"")
            && listed.contains("\"eventName\":\"ObjectRemoved:Delete\"")
    );
    assert!(
        listed.contains("\"bucket\":{\"name\":\"evts\"") && listed.contains("\"key\":\"one\",\"size\":1,"),
        "{listed}"
    );
    // Beyond the capacity the oldest are dropped and counted.
    for i in 0..6 {
        a.s3(TOKEN, "PUT", &format!("/evts/k{i}"), "x");
    }
    let listed = a.admin("GET", "/v1/events?max=100").text();
    assert_eq!(listed.matches("\"seq\":").count(), 5, "{listed}");
    assert!(listed.contains("\"dropped\":3"), "{listed}");
    let first_seq: u64 = listed.split("\"seq\":").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    let ack = a.admin("POST", &format!("/v1/events/ack?upto={}", first_seq + 1));
    assert_eq!(ack.text(), "{\"acknowledged\":2}");
    let after = a.admin("GET", "/v1/events").text();
    assert_eq!(after.matches("\"seq\":").count(), 3);
    // The queue and the dropped count survive a reopen (the last PUT's
    // event trails it: sync, as the server's periodic task does).
    a.exec.block_on(a.service.store.sync(), &mut a.platform, &a.timers).unwrap();
    let disk = a.disk.clone();
    drop(a);
    let mut b = open(disk, false, 5);
    let reopened = b.admin("GET", "/v1/events").text();
    assert_eq!(reopened.matches("\"seq\":").count(), 3, "{reopened}");
    assert!(reopened.contains("\"dropped\":3"));
    b.s3(TOKEN, "PUT", "/evts/after", "x");
    let last = b.admin("GET", "/v1/events").text();
    let seqs: Vec<u64> =
        last.split("\"seq\":").skip(1).map(|s| s.split(',').next().unwrap().parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequence numbers keep increasing after a reopen: {seqs:?}");
}

#[test]
fn metrics_are_prometheus_text() {
    let mut a = open(Arc::new(RamDisk::new(512, 64 * 2048)), true, 100);
    a.s3(TOKEN, "PUT", "/metrics-b", "");
    a.s3(TOKEN, "PUT", "/metrics-b/k", "hello");
    a.s3(TOKEN, "GET", "/metrics-b/none", "");
    let reply = a.admin("GET", "/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Type"), Some("text/plain; version=0.0.4"));
    let text = reply.text();
    for needle in [
        "rustcore_s3_requests_total{op=\"PutObject\",status=\"200\"} 1",
        "rustcore_s3_requests_total{op=\"GetObject\",status=\"404\"} 1",
        "rustcore_s3_request_duration_seconds_count{op=\"CreateBucket\"} 1",
        "rustcore_s3_bytes_in_total 5",
        "rustcore_s3_errors_total{class=\"4xx\"} 1",
        "rustcore_bucket_objects{bucket=\"metrics-b\"} 1",
        "rustcore_bucket_bytes{bucket=\"metrics-b\"} 5",
        "rustcore_journal_batches_total ",
        "rustcore_data_free_bytes ",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}
