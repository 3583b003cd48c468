//! The admin API, on its own port: JSON over HTTPS, authenticated by an
//! admin key (the bearer admin token, an admin API key, or SigV4 with an
//! admin access key). It manages what S3 itself cannot: keys, bucket
//! grants, quotas and renames; `GET /health` needs no key.
//!
//! | method and path | effect |
//! |---|---|
//! | `GET /health` | liveness (no key needed) |
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

/// A JSON reply: status and body.
struct Json(u16, String);

fn error(status: u16, message: &str) -> Json {
    let mut body = String::from("{\"error\":");
    let _ = write_json_str(&mut body, message);
    body.push('}');
    Json(status, body)
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
            response.header("Content-Type", "application/json");
            response.header("Date", &format_http_date(self.now_ms() / 1000));
            let close = !head.keep_alive || !drained;
            if close {
                response.close();
            }
            let mut bytes = response.to_bytes(ResponseFraming::Length(body.len() as u64));
            bytes.extend_from_slice(body.as_bytes());
            crate::info!("admin", "request"; method = head.method.as_str(), path = head.path(), status = u64::from(status));
            if io.conn.write_all(&bytes).await.is_err() || close {
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
                    Err(e) => error(store_error(&e).status(), store_error(&e).as_str()),
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
                    Err(e) => error(store_error(&e).status(), store_error(&e).as_str()),
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
                    Err(e) => error(store_error(&e).status(), store_error(&e).as_str()),
                }
            }
            _ => error(404, "no such admin endpoint"),
        }
    }
}
