//! `cargo xtask admin ...`: the host CLI of the admin API (see
//! `services::s3::admin`), over HTTPS with the admin token from
//! `.rustcore/keys/admin-token`, through `curl`.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::state::State;

pub const USAGE: &str = "\
usage: cargo xtask admin [--port N] <command>
  keys                              list keys (never their secrets)
  keys create NAME [--admin] [--apikey]
                                    create a SigV4 key (or an API key); prints its secret once
  keys revoke ID                    revoke a key
  buckets                           buckets with owner, usage, quota and grants
  grant BUCKET KEY CAPS             set a key's capabilities: read,write,list,owner (\"\" for none)
  quota BUCKET [--max-bytes N] [--max-objects N]
                                    set limits (an absent limit is unlimited)
  rename BUCKET NEW                 rename a bucket
  events [--after SEQ]              queued object events (S3 notification records)
  events ack SEQ                    remove the events up to SEQ
  log [--max N]                     the last structured log records
  metrics                           Prometheus text
";

/// The request an admin command makes: method and path with query.
pub fn request_for(args: &[String]) -> Result<(&'static str, String)> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let flag = |name: &str| words.contains(&name);
    let value = |name: &str| words.iter().position(|w| *w == name).and_then(|i| words.get(i + 1)).copied();
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    Ok(match words.as_slice() {
        ["keys"] => ("GET", "/v1/keys".into()),
        ["keys", "create", name, ..] => {
            let kind = if flag("--apikey") { "apikey" } else { "sigv4" };
            ("POST", format!("/v1/keys?name={}&kind={kind}&admin={}", encode(name), flag("--admin")))
        }
        ["keys", "revoke", id] => ("DELETE", format!("/v1/keys/{}", encode(id))),
        ["buckets"] => ("GET", "/v1/buckets".into()),
        ["grant", bucket, key, caps] => {
            ("PUT", format!("/v1/buckets/{}/grants/{}?caps={}", encode(bucket), encode(key), encode(caps)))
        }
        ["quota", bucket, ..] => {
            let mut query = Vec::new();
            if let Some(n) = value("--max-bytes") {
                query.push(format!("max_bytes={}", encode(n)));
            }
            if let Some(n) = value("--max-objects") {
                query.push(format!("max_objects={}", encode(n)));
            }
            ("PUT", format!("/v1/buckets/{}/quota?{}", encode(bucket), query.join("&")))
        }
        ["rename", bucket, new] => ("POST", format!("/v1/buckets/{}/rename?to={}", encode(bucket), encode(new))),
        ["events", "ack", seq] => ("POST", format!("/v1/events/ack?upto={}", encode(seq))),
        ["events", ..] => ("GET", format!("/v1/events?after={}", encode(value("--after").unwrap_or("0")))),
        ["log", ..] => ("GET", format!("/v1/log?max={}", encode(value("--max").unwrap_or("200")))),
        ["metrics"] => ("GET", "/metrics".into()),
        _ => bail!("unknown admin command\n{USAGE}"),
    })
}

pub fn run(args: &[String]) -> Result<bool> {
    let (port, rest) = match args {
        [flag, port, rest @ ..] if flag == "--port" => (port.parse::<u16>().context("--port")?, rest),
        _ => (9443, args),
    };
    let (method, path) = request_for(rest)?;
    let state = State::new();
    let credentials = crate::bootfs::ensure_credentials(&state)?;
    let certificates = crate::bootfs::ensure_certificates(&state)?;
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "30", "--write-out", "\n%{http_code}", "-X", method])
        .arg("--cacert")
        .arg(&certificates.ca)
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", credentials.admin_token))
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .context("running curl (apt-get install curl)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap_or((&text, "0"));
    println!("{body}");
    if !output.status.success() {
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        return Ok(false);
    }
    Ok(status.starts_with('2'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split(' ').map(String::from).collect()
    }

    #[test]
    fn commands_map_to_requests() {
        assert_eq!(request_for(&args("keys")).unwrap(), ("GET", "/v1/keys".into()));
        assert_eq!(
            request_for(&args("keys create ci bot --admin")).unwrap().1,
            "/v1/keys?name=ci&kind=sigv4&admin=true"
        );
        assert_eq!(request_for(&args("keys create x --apikey")).unwrap().1, "/v1/keys?name=x&kind=apikey&admin=false");
        assert_eq!(
            request_for(&args("grant b RCKEY read,list")).unwrap().1,
            "/v1/buckets/b/grants/RCKEY?caps=read%2Clist"
        );
        assert_eq!(request_for(&args("quota b --max-bytes 100")).unwrap().1, "/v1/buckets/b/quota?max_bytes=100");
        assert_eq!(request_for(&args("rename a b")).unwrap(), ("POST", "/v1/buckets/a/rename?to=b".into()));
        assert_eq!(request_for(&args("events ack 7")).unwrap(), ("POST", "/v1/events/ack?upto=7".into()));
        assert_eq!(request_for(&args("events --after 3")).unwrap().1, "/v1/events?after=3");
        assert_eq!(request_for(&args("log")).unwrap().1, "/v1/log?max=200");
        assert!(request_for(&args("nonsense")).is_err());
    }
}
