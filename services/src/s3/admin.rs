//! The admin API, on its own port: JSON over HTTPS, authenticated by an
//! admin key (the bearer admin token, an admin API key, or SigV4 with an
//! admin access key). It manages what S3 itself cannot: keys, bucket
//! grants, quotas and renames; `GET /health` needs no key.
//!
//! | method and path | effect |
//! |---|---|
//! | `GET /health` | liveness (no key needed) |
//! | `GET /v1/events?after=SEQ&max=N` | queued object events (S3 notification records) after SEQ, and the dropped count |
//! | `POST /v1/events/ack?upto=SEQ` | remove the events up to SEQ |
//! | `GET /v1/log?max=N` | the last N structured log records (access log included) |
//! | `GET /metrics` | Prometheus text: requests, latency, bytes, errors, TLS, journal, space, buckets, heap |
//! | `GET /v1/keys` | every key (never a secret) |
//! | `POST /v1/keys?name=N&kind=sigv4\|apikey&admin=true` | a new key; its secret is in this response only |
//! | `DELETE /v1/keys/ID` | revoke |
//! | `GET /v1/buckets` | buckets with owner, usage, quota and grants |
//! | `PUT /v1/buckets/B/grants/KEY?caps=read,write,list,owner` | set a key's capabilities (`caps=` empty: none) |
//! | `PUT /v1/buckets/B/quota?max_bytes=N&max_objects=N` | set limits (absent: unlimited) |
//! | `POST /v1/buckets/B/rename?to=NEW` | rename a bucket |

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use fs::catalog::{Capabilities, Quota};
use runtime::timers::Timers;
use security::keystore::{KeyKind, KeyRecord};
use storage::block::BlockDevice;

use crate::log::write_json_str;
use crate::s3::addressing::{decode, parse_query};
use crate::s3::auth::KeyAuth;
use crate::s3::http::{Method, RequestHead, RequestParser, Response, ResponseFraming};
use crate::s3::keys::StoreKeys;
use crate::s3::server::ops::store_error;
use crate::s3::server::{Authenticator, ConnIo, Connection, S3Service};
use crate::s3::time::format_http_date;
use crate::s3::validate::validate_bucket_name;

/// A reply: status and body, JSON unless it is the metrics text.
struct Json(u16, String);

const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

fn error(status: u16, message: &str) -> Json {
    let mut body = String::from("{\"error\":");
    let _ = write_json_str(&mut body, message);
    body.push('}');
    Json(status, body)
}

/// A store error as the S3 layer names it.
fn store_failure(failed: &fs::store::StoreError) -> Json {
    let code = store_error(failed);
    error(code.status(), code.as_str())
}

fn key_json(out: &mut String, record: &KeyRecord) {
    let kind = match record.kind {
        KeyKind::SigV4 { .. } => "sigv4",
        KeyKind::ApiKey { .. } => "apikey",
    };
    out.push_str("{\"id\":");
    let _ = write_json_str(out, &record.access_key_id);
    out.push_str(",\"name\":");
    let _ = write_json_str(out, &record.name);
    let _ = write!(
        out,
        ",\"kind\":\"{kind}\",\"admin\":{},\"revoked\":{},\"created_ms\":{}}}",
        record.admin, record.revoked, record.created_ms
    );
}

fn parse_capabilities(text: &str) -> Option<Capabilities> {
    let mut caps = Capabilities::NONE;
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        caps = caps.union(match word {
            "read" => Capabilities::READ,
            "write" => Capabilities::WRITE,
            "list" => Capabilities::LIST,
            "owner" => Capabilities::OWNER,
            "all" => Capabilities::ALL,
            _ => return None,
        });
    }
    Some(caps)
}

fn capability_names(caps: Capabilities) -> String {
    let names: Vec<&str> = [
        (Capabilities::READ, "read"),
        (Capabilities::WRITE, "write"),
        (Capabilities::LIST, "list"),
        (Capabilities::OWNER, "owner"),
    ]
    .iter()
    .filter(|(cap, _)| caps.contains(*cap))
    .map(|(_, name)| *name)
    .collect();
    names.join(",")
}

impl<D: BlockDevice> S3Service<D, KeyAuth<StoreKeys>> {
    /// `GET /metrics`: Prometheus text.
    fn metrics_text(&self) -> String {
        use core::sync::atomic::Ordering::Relaxed;
        let mut out = crate::metrics::Exposition::new();
        self.requests.write(&mut out);
        let stats = &self.stats;
        out.single(
            "rustcore_s3_bytes_in_total",
            "counter",
            "Request body bytes received.",
            stats.bytes_in.load(Relaxed),
        );
        out.single(
            "rustcore_s3_bytes_out_total",
            "counter",
            "Response body bytes sent.",
            stats.bytes_out.load(Relaxed),
        );
        let (errors_4xx, errors_5xx) = self.requests.errors();
        out.family("rustcore_s3_errors_total", "counter", "Error responses by class.");
        out.sample("rustcore_s3_errors_total", &[("class", "4xx")], errors_4xx);
        out.sample("rustcore_s3_errors_total", &[("class", "5xx")], errors_5xx);
        let listen = &self.listen;
        out.single(
            "rustcore_tcp_connections_accepted_total",
            "counter",
            "S3 connections accepted.",
            listen.accepted.load(Relaxed),
        );
        out.single("rustcore_tcp_connections_open", "gauge", "S3 connections open now.", listen.open.load(Relaxed));
        out.single(
            "rustcore_tcp_connections_rejected_total",
            "counter",
            "Connections refused at accept: max_connections were open.",
            listen.rejected.load(Relaxed),
        );
        out.single(
            "rustcore_tls_handshakes_total",
            "counter",
            "Completed TLS handshakes.",
            listen.handshakes.load(Relaxed),
        );
        out.single(
            "rustcore_tls_handshake_failures_total",
            "counter",
            "Failed or timed-out TLS handshakes.",
            listen.handshake_failures.load(Relaxed),
        );
        let commits = self.store.commit_counters();
        out.single(
            "rustcore_journal_batches_total",
            "counter",
            "Journal batches written (group commits).",
            commits.batches,
        );
        out.single(
            "rustcore_journal_records_total",
            "counter",
            "Journal records written; records/batches is the mean group size.",
            commits.records,
        );
        out.single("rustcore_journal_checkpoints_total", "counter", "Checkpoints written.", commits.checkpoints);
        out.single(
            "rustcore_disk_flushes_total",
            "counter",
            "Device flushes issued by the committer.",
            commits.flushes,
        );
        out.single(
            "rustcore_journal_verified_batches_total",
            "counter",
            "Journal batches written without a data flush before them, their records' new chunks left for replay to verify.",
            commits.verified_batches,
        );
        out.single(
            "rustcore_journal_logged_chunks_total",
            "counter",
            "Small objects' chunks written into the journal with their record instead of on their own.",
            commits.logged_chunks,
        );
        out.single(
            "rustcore_write_backs_total",
            "counter",
            "Write-backs that moved logged chunks to the data area.",
            commits.write_backs,
        );
        out.single(
            "rustcore_unwritten_chunk_bytes",
            "gauge",
            "Bytes of logged chunks in memory waiting for write-back.",
            self.store.unwritten().0 as u64,
        );
        let page = storage::space::PAGE_BYTES;
        out.single("rustcore_data_bytes", "gauge", "Size of the data region.", self.store.total_data_pages() * page);
        out.single(
            "rustcore_data_free_bytes",
            "gauge",
            "Free space in the data region.",
            self.store.free_pages() * page,
        );
        out.family("rustcore_bucket_objects", "gauge", "Stored object versions per bucket.");
        let usage: Vec<(String, u64, u64)> = self.store.with_state(|state| {
            state.buckets.iter().map(|(n, b)| (n.clone(), b.usage.objects, b.usage.bytes)).collect()
        });
        for (name, objects, _) in &usage {
            out.sample("rustcore_bucket_objects", &[("bucket", name)], *objects);
        }
        out.family("rustcore_bucket_bytes", "gauge", "Stored bytes per bucket (every version).");
        for (name, _, bytes) in &usage {
            out.sample("rustcore_bucket_bytes", &[("bucket", name)], *bytes);
        }
        if let Some(events) = &self.events {
            out.single(
                "rustcore_events_dropped_total",
                "counter",
                "Events dropped because the queue was full.",
                events.dropped(),
            );
        }
        out.single(
            "rustcore_keys",
            "gauge",
            "Keys in the keystore (revoked included).",
            self.auth.keys.with(|k| k.len()) as u64,
        );
        if let Some(platform) = &self.platform_metrics {
            platform(&mut out);
        }
        out.into_text()
    }

    /// Serves admin requests on `conn` until the client closes.
    pub async fn serve_admin_connection<C: Connection>(&self, conn: &mut C, timers: &Timers, random: fn(&mut [u8])) {
        let parser = RequestParser::new(self.config.http);
        let mut io = ConnIo::new(conn, parser, timers.clone(), self.config.read_timeout);
        loop {
            let head = match io.next_head().await {
                Ok(Some(head)) => head,
                _ => return,
            };
            // Admin requests carry no body worth keeping.
            let drained = io.discard_body(64 * 1024).await.unwrap_or(false);
            let Json(status, body) = self.admin_request(&head, random).await;
            let mut response = Response::new(status);
            let metrics = head.path() == "/metrics" && status == 200;
            response.header("Content-Type", if metrics { METRICS_CONTENT_TYPE } else { "application/json" });
            response.header("Date", &format_http_date(self.now_ms() / 1000));
            let close = !head.keep_alive || !drained;
            if close {
                response.close();
            }
            let mut bytes = response.to_bytes(ResponseFraming::Length(body.len() as u64));
            bytes.extend_from_slice(body.as_bytes());
            crate::info!("admin", "request"; method = head.method.as_str(), path = head.path(), status = u64::from(status));
            if io.write_all(&bytes).await.is_err() || close {
                return;
            }
        }
    }

    async fn admin_request(&self, head: &RequestHead, random: fn(&mut [u8])) -> Json {
        let Ok(path) = decode(head.path()) else {
            return error(400, "invalid path");
        };
        if path == "/health" && head.method == Method::Get {
            return Json(200, String::from("{\"status\":\"ok\",\"service\":\"rustcore\"}"));
        }
        match self.auth.authenticate(head, self.now_ms() / 1000) {
            Ok(authenticated) if authenticated.principal.admin => {}
            Ok(_) => return error(403, "an admin key is required"),
            Err(code) => return error(code.status(), code.as_str()),
        }
        let Ok(query) = parse_query(head.query().unwrap_or("")) else {
            return error(400, "invalid query");
        };
        let param = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let keys = &self.auth.keys;
        let now = self.now_ms();
        match (head.method, segments.as_slice()) {
            (Method::Get, ["metrics"]) => Json(200, self.metrics_text()),
            (Method::Get, ["v1", "log"]) => {
                // The lines are JSON objects already: a JSON array of them.
                let max = param("max").and_then(|v| v.parse().ok()).unwrap_or(200usize);
                let lines = crate::log::RECENT.lines(max);
                Json(200, format!("[{}]", lines.join(",")))
            }
            (Method::Get, ["v1", "events"]) => {
                let Some(events) = &self.events else {
                    return error(404, "events are off (event_capacity = 0)");
                };
                let after = param("after").and_then(|v| v.parse().ok()).unwrap_or(0);
                let max = param("max").and_then(|v| v.parse().ok()).unwrap_or(100usize).min(1000);
                let mut body = format!("{{\"dropped\":{},\"events\":[", events.dropped());
                for (i, (seq, record)) in events.list(&self.store, after, max).iter().enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    let _ = write!(body, "{{\"seq\":{seq},\"record\":{{\"Records\":[{record}]}}}}");
                }
                body.push_str("]}");
                Json(200, body)
            }
            (Method::Post, ["v1", "events", "ack"]) => {
                let Some(events) = &self.events else {
                    return error(404, "events are off (event_capacity = 0)");
                };
                let Some(upto) = param("upto").and_then(|v| v.parse::<u64>().ok()) else {
                    return error(400, "upto= is the last sequence number to acknowledge");
                };
                match events.ack(&self.store, upto).await {
                    Ok(count) => Json(200, format!("{{\"acknowledged\":{count}}}")),
                    Err(e) => error(500, &format!("{e:?}")),
                }
            }
            (Method::Get, ["v1", "keys"]) => {
                let mut body = String::from("[");
                keys.with(|store| {
                    for (i, record) in store.iter().enumerate() {
                        if i > 0 {
                            body.push(',');
                        }
                        key_json(&mut body, record);
                    }
                });
                body.push(']');
                Json(200, body)
            }
            (Method::Post, ["v1", "keys"]) => {
                let name = param("name").unwrap_or("");
                let admin = param("admin") == Some("true");
                let mut body = String::new();
                match param("kind").unwrap_or("sigv4") {
                    "sigv4" => match keys.create_sigv4(&self.store, name, admin, random, now).await {
                        Ok((record, secret)) => {
                            body.push_str("{\"key\":");
                            key_json(&mut body, &record);
                            body.push_str(",\"secret\":");
                            let _ = write_json_str(&mut body, &secret);
                        }
                        Err(e) => return error(500, &format!("{e:?}")),
                    },
                    "apikey" => match keys.create_api_key(&self.store, name, admin, random, now).await {
                        Ok((record, key)) => {
                            body.push_str("{\"key\":");
                            key_json(&mut body, &record);
                            body.push_str(",\"secret\":");
                            let _ = write_json_str(&mut body, &key.to_text());
                        }
                        Err(e) => return error(500, &format!("{e:?}")),
                    },
                    _ => return error(400, "kind must be sigv4 or apikey"),
                }
                body.push('}');
                Json(201, body)
            }
            (Method::Delete, ["v1", "keys", id]) => match keys.revoke(&self.store, id).await {
                Ok(true) => Json(200, String::from("{\"revoked\":true}")),
                Ok(false) => error(404, "no such key"),
                Err(e) => error(500, &format!("{e:?}")),
            },
            (Method::Get, ["v1", "buckets"]) => {
                let mut body = String::from("[");
                self.store.with_state(|state| {
                    for (i, (name, bucket)) in state.buckets.iter().enumerate() {
                        if i > 0 {
                            body.push(',');
                        }
                        body.push_str("{\"name\":");
                        let _ = write_json_str(&mut body, name);
                        body.push_str(",\"owner\":");
                        let _ = write_json_str(&mut body, &bucket.owner);
                        let _ = write!(
                            body,
                            ",\"objects\":{},\"bytes\":{},\"max_bytes\":{},\"max_objects\":{},\"grants\":{{",
                            bucket.usage.objects,
                            bucket.usage.bytes,
                            bucket.quota.max_bytes.map_or(String::from("null"), |n| format!("{n}")),
                            bucket.quota.max_objects.map_or(String::from("null"), |n| format!("{n}")),
                        );
                        for (j, (key, caps)) in bucket.grants.iter().enumerate() {
                            if j > 0 {
                                body.push(',');
                            }
                            let _ = write_json_str(&mut body, key);
                            body.push(':');
                            let _ = write_json_str(&mut body, &capability_names(*caps));
                        }
                        body.push_str("}}");
                    }
                });
                body.push(']');
                Json(200, body)
            }
            (Method::Put, ["v1", "buckets", bucket, "grants", key]) => {
                let Some(caps) = parse_capabilities(param("caps").unwrap_or("")) else {
                    return error(400, "caps: a comma-separated list of read, write, list, owner");
                };
                match self.store.set_grant(bucket, key, caps).await {
                    Ok(()) => Json(200, format!("{{\"caps\":\"{}\"}}", capability_names(caps))),
                    Err(e) => store_failure(&e),
                }
            }
            (Method::Put, ["v1", "buckets", bucket, "quota"]) => {
                let number = |name: &str| param(name).map(|v| v.parse::<u64>());
                let (max_bytes, max_objects) = match (number("max_bytes"), number("max_objects")) {
                    (Some(Err(_)), _) | (_, Some(Err(_))) => return error(400, "quota limits are numbers"),
                    (bytes, objects) => (bytes.and_then(Result::ok), objects.and_then(Result::ok)),
                };
                match self.store.set_quota(bucket, Quota { max_bytes, max_objects }).await {
                    Ok(()) => Json(200, String::from("{\"quota\":\"set\"}")),
                    Err(e) => store_failure(&e),
                }
            }
            (Method::Post, ["v1", "buckets", bucket, "rename"]) => {
                let Some(to) = param("to") else {
                    return error(400, "to= names the new bucket");
                };
                if validate_bucket_name(to).is_err() {
                    return error(400, "InvalidBucketName");
                }
                match self.store.rename_bucket(bucket, to).await {
                    Ok(()) => Json(200, String::from("{\"renamed\":true}")),
                    Err(e) => store_failure(&e),
                }
            }
            _ => error(404, "no such admin endpoint"),
        }
    }
}
