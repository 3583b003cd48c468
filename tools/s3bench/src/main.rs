//! `s3bench`: the S3 load of `cargo xtask bench s3`, the same against every
//! server.
//!
//! ```text
//! s3bench --connect IP:PORT [--tls-name NAME --ca CA.pem] [--host HOST]
//!         --access-key ID --secret-key SECRET [--region us-east-1]
//!         --bucket NAME [--create-bucket]
//!         [--clients 1,8,64] [--repeats 3] [--seconds 1.5]
//!         [--small-bytes 4096] [--large-bytes 16777216] [--list-keys 10000]
//!         [--workloads put-small,get-small,put-large,get-large,list]
//!         [--large-clients-max 64] [--threads 1] [--wait-ready SECONDS]
//!         [--long-cell 8]
//! ```
//!
//! `--wait-ready`: retry the first request (ListBuckets) that long while
//! the server does not answer.
//!
//! For each repeat, for each client count, it runs each workload for
//! `--seconds` (every client finishes the operation it has in flight, and
//! does at least one), printing a `cell` line; then one `result` line per
//! (workload, clients) with the medians over the repeats. Repeats go round
//! the whole matrix, so a slow moment of this shared machine hits one
//! repeat of many cells rather than every repeat of one. A cell whose first
//! run took longer than `--long-cell` seconds (64 clients of 16 MiB: 1 GiB
//! per round) is not repeated; its `result` line says `repeats=1`.
//!
//! Workloads: `put-small`/`put-large` write new keys (small) or overwrite
//! one key per client (large, so the disk does not fill); `get-small` and
//! `get-large` read what the PUT cell before them wrote; `list` is one
//! ListObjectsV2 page (max-keys 1000) per operation, each client walking
//! the `--list-keys` keys written once before the first cell, page after
//! page, from the start again after the last page.
//!
//! Each client is one keep-alive connection opened before the timed part.

mod client;
mod sigv4;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use client::{Connection, Endpoint, Error};
use sigv4::{Signer, canonical_query, encode};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Workload {
    PutSmall,
    GetSmall,
    PutLarge,
    GetLarge,
    List,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::PutSmall => "put-small",
            Workload::GetSmall => "get-small",
            Workload::PutLarge => "put-large",
            Workload::GetLarge => "get-large",
            Workload::List => "list",
        }
    }

    fn parse(name: &str) -> Result<Workload, String> {
        [Workload::PutSmall, Workload::GetSmall, Workload::PutLarge, Workload::GetLarge, Workload::List]
            .into_iter()
            .find(|w| w.name() == name)
            .ok_or_else(|| format!("unknown workload {name:?}"))
    }

    fn is_large(self) -> bool {
        matches!(self, Workload::PutLarge | Workload::GetLarge)
    }
}

struct Options {
    endpoint: Arc<Endpoint>,
    signer: Signer,
    bucket: String,
    create_bucket: bool,
    clients: Vec<usize>,
    repeats: usize,
    seconds: f64,
    small_bytes: usize,
    large_bytes: usize,
    list_keys: usize,
    workloads: Vec<Workload>,
    large_clients_max: usize,
    threads: usize,
    wait_ready_s: f64,
    long_cell_s: f64,
}

fn parse_options(args: &[String]) -> Result<Options, Error> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let mut flags = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let name = arg.strip_prefix("--").ok_or_else(|| format!("unexpected argument {arg:?}"))?;
        if name == "create-bucket" {
            flags.push(name.to_string());
            continue;
        }
        let value = iter.next().ok_or_else(|| format!("--{name} needs a value"))?;
        map.insert(name.to_string(), value.clone());
    }
    let get = |name: &str, default: Option<&str>| -> Result<String, Error> {
        map.get(name).cloned().or(default.map(String::from)).ok_or_else(|| format!("--{name} is required").into())
    };
    let number = |name: &str, default: &str| -> Result<usize, Error> {
        get(name, Some(default))?.parse().map_err(|_| format!("--{name}: not a number").into())
    };
    let addr: std::net::SocketAddr = get("connect", None)?.parse()?;
    let tls = match (map.get("tls-name"), map.get("ca")) {
        (Some(name), Some(ca)) => {
            let config = Endpoint::tls_config(&std::fs::read(ca).map_err(|e| format!("{ca}: {e}"))?)?;
            Some((config, rustls::pki_types::ServerName::try_from(name.clone())?))
        }
        (None, None) => None,
        _ => return Err("--tls-name and --ca go together".into()),
    };
    let default_host = match (&tls, addr.port()) {
        (Some((_, name)), 443) => name.to_str().into_owned(),
        (Some((_, name)), port) => format!("{}:{port}", name.to_str()),
        (None, _) => addr.to_string(),
    };
    let host = get("host", Some(&default_host))?;
    let signer = Signer::new(&get("access-key", None)?, &get("secret-key", None)?, &get("region", Some("us-east-1"))?);
    let clients = get("clients", Some("1,8,64"))?
        .split(',')
        .map(|c| c.parse::<usize>().map_err(|_| format!("--clients: {c:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let workloads = get("workloads", Some("put-small,get-small,put-large,get-large,list"))?
        .split(',')
        .map(Workload::parse)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Options {
        endpoint: Arc::new(Endpoint { addr, tls, host }),
        signer,
        bucket: get("bucket", None)?,
        create_bucket: flags.iter().any(|f| f == "create-bucket"),
        clients,
        repeats: number("repeats", "3")?,
        seconds: get("seconds", Some("1.5"))?.parse().map_err(|_| "--seconds: not a number")?,
        small_bytes: number("small-bytes", "4096")?,
        large_bytes: number("large-bytes", "16777216")?,
        list_keys: number("list-keys", "10000")?,
        workloads,
        large_clients_max: number("large-clients-max", "64")?,
        threads: number("threads", "1")?,
        long_cell_s: get("long-cell", Some("8"))?.parse().map_err(|_| "--long-cell: not a number")?,
        wait_ready_s: get("wait-ready", Some("0"))?.parse().map_err(|_| "--wait-ready: not a number")?,
    })
}

/// What one cell measured.
#[derive(Clone, Debug, Default)]
struct Cell {
    ops: u64,
    payload_bytes: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    client_cpu_s: f64,
    reconnects: u64,
}

impl Cell {
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.seconds
    }

    fn mb_per_s(&self) -> f64 {
        self.payload_bytes as f64 / self.seconds / 1e6
    }

    /// The latency below which `percent`% of the operations finished, in ms.
    fn percentile_ms(&self, percent: usize) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = (self.latencies_us.len() * percent / 100).min(self.latencies_us.len() - 1);
        f64::from(self.latencies_us[index]) / 1000.0
    }
}

/// One client's share of a cell.
#[derive(Default)]
struct Share {
    ops: u64,
    payload_bytes: u64,
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    written: Vec<String>,
    reconnects: u64,
}

impl Share {
    fn failed(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given, which
    // points to one.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn describe(reply: &client::Reply) -> String {
    let body = reply.body.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
    format!("HTTP {}: {}", reply.status, body.chars().take(300).collect::<String>())
}

/// The text between `<tag>` and `</tag>`, if any.
fn xml_value<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..end])
}

struct Context {
    options: Options,
    small_body: Bytes,
    large_body: Bytes,
    bucket_path: String,
}

/// Runs `workload` with `clients` connections; `readable` are keys a GET
/// may read (written by the PUT cell before it). Returns the keys written.
async fn run_cell(
    context: &Arc<Context>,
    workload: Workload,
    clients: usize,
    rep: usize,
    readable: &Arc<Vec<String>>,
) -> (Cell, Vec<String>) {
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut connection = Connection::new(context.options.endpoint.clone(), context.options.signer.clone());
        if let Err(error) = connection.connect().await {
            let cell =
                Cell { errors: 1, first_error: Some(format!("connect: {error}")), seconds: 1.0, ..Cell::default() };
            return (cell, Vec::new());
        }
        connections.push(connection);
    }
    let deadline_after = Duration::from_secs_f64(context.options.seconds);
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let deadline = start + deadline_after;
    let mut tasks = Vec::with_capacity(clients);
    for (client, mut connection) in connections.into_iter().enumerate() {
        let (context, readable) = (context.clone(), readable.clone());
        tasks.push(tokio::spawn(async move {
            let mut share = Share::default();
            let mut continuation: Option<String> = None;
            let mut i = 0usize;
            while i == 0 || Instant::now() < deadline {
                let began = Instant::now();
                let (method, key, query, body, expected) = match workload {
                    Workload::PutSmall => {
                        let key = format!("s/r{rep}c{clients}/w{client}/{i}");
                        ("PUT", key, String::new(), context.small_body.clone(), 0)
                    }
                    Workload::PutLarge => ("PUT", format!("l/w{client}"), String::new(), context.large_body.clone(), 0),
                    Workload::GetSmall | Workload::GetLarge => {
                        if readable.is_empty() {
                            share.failed("nothing to read: the PUT cell before wrote no key".into());
                            break;
                        }
                        let key = readable[(client + i * clients) % readable.len()].clone();
                        let expected =
                            if workload.is_large() { context.large_body.len() } else { context.small_body.len() };
                        ("GET", key, String::new(), Bytes::new(), expected)
                    }
                    Workload::List => {
                        let mut pairs = vec![("list-type", "2"), ("prefix", "list/"), ("max-keys", "1000")];
                        if let Some(token) = &continuation {
                            pairs.push(("continuation-token", token.as_str()));
                        }
                        ("GET", String::new(), canonical_query(&pairs), Bytes::new(), 0)
                    }
                };
                let path = if key.is_empty() {
                    context.bucket_path.clone()
                } else {
                    format!("{}/{}", context.bucket_path, encode(&key, true))
                };
                let sent = body.len() as u64;
                let keep_body = workload == Workload::List;
                match connection.request(method, &path, &query, body, keep_body).await {
                    Ok(reply) if (200..300).contains(&reply.status) => {
                        let micros = began.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                        match workload {
                            Workload::PutSmall | Workload::PutLarge => {
                                share.payload_bytes += sent;
                                share.written.push(key);
                            }
                            Workload::GetSmall | Workload::GetLarge => {
                                if reply.body_bytes != expected as u64 {
                                    share.failed(format!("GET {key}: {} bytes, expected {expected}", reply.body_bytes));
                                }
                                share.payload_bytes += reply.body_bytes;
                            }
                            Workload::List => {
                                share.payload_bytes += reply.body_bytes;
                                let xml = String::from_utf8_lossy(reply.body.as_deref().unwrap_or_default());
                                let truncated = xml_value(&xml, "IsTruncated") == Some("true");
                                continuation = if truncated {
                                    xml_value(&xml, "NextContinuationToken").map(String::from)
                                } else {
                                    None
                                };
                            }
                        }
                        share.ops += 1;
                        share.latencies_us.push(micros);
                    }
                    Ok(reply) => share.failed(format!("{method} {path}?{query}: {}", describe(&reply))),
                    Err(error) => share.failed(format!("{method} {path}: {error}")),
                }
                i += 1;
            }
            share.reconnects = connection.reconnects;
            share
        }));
    }
    let mut cell = Cell::default();
    let mut written = Vec::new();
    for task in tasks {
        let share = task.await.expect("a client task panicked");
        cell.ops += share.ops;
        cell.payload_bytes += share.payload_bytes;
        cell.latencies_us.extend(share.latencies_us);
        cell.errors += share.errors;
        if cell.first_error.is_none() {
            cell.first_error = share.first_error;
        }
        written.extend(share.written);
        cell.reconnects += share.reconnects;
    }
    cell.seconds = start.elapsed().as_secs_f64();
    cell.client_cpu_s = cpu_seconds() - cpu_before;
    cell.latencies_us.sort_unstable();
    (cell, written)
}

/// Creates the bucket (an existing one of ours is fine).
async fn create_bucket(context: &Arc<Context>) -> Result<(), Error> {
    let mut connection = Connection::new(context.options.endpoint.clone(), context.options.signer.clone());
    let reply = connection.request("PUT", &context.bucket_path, "", Bytes::new(), true).await?;
    let text = String::from_utf8_lossy(reply.body.as_deref().unwrap_or_default()).into_owned();
    if (200..300).contains(&reply.status) || text.contains("BucketAlreadyOwnedByYou") {
        Ok(())
    } else {
        Err(format!("CreateBucket: {}", describe(&reply)).into())
    }
}

/// Writes the keys the list workload walks, 32 at a time (3 tries each).
async fn fill_list_keys(context: &Arc<Context>) -> Result<(), Error> {
    const WRITERS: usize = 32;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let context = context.clone();
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::new(context.options.endpoint.clone(), context.options.signer.clone());
            let mut index = writer;
            while index < context.options.list_keys {
                let path = format!("{}/list/{index:06}", context.bucket_path);
                let mut tries = 0;
                loop {
                    tries += 1;
                    match connection.request("PUT", &path, "", Bytes::from_static(b"list entry"), false).await {
                        Ok(reply) if (200..300).contains(&reply.status) => break,
                        Ok(reply) if tries >= 3 => {
                            return Err::<(), Error>(format!("PUT {path}: {}", describe(&reply)).into());
                        }
                        Err(error) if tries >= 3 => return Err(format!("PUT {path}: {error}").into()),
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
                index += WRITERS;
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() { f64::NAN } else { values[values.len() / 2] }
}

async fn run(options: Options) -> Result<(), Error> {
    let mut random = vec![0u8; options.large_bytes.max(options.small_bytes)];
    // Incompressible enough and cheap: a xorshift stream.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in random.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let random = Bytes::from(random);
    let context = Arc::new(Context {
        small_body: random.slice(..options.small_bytes),
        large_body: random.slice(..options.large_bytes),
        bucket_path: format!("/{}", encode(&options.bucket, false)),
        options,
    });
    let options = &context.options;

    // Waits for the server to answer any HTTP (a store may still be opening
    // behind a listening socket), and reports the negotiated protocol.
    let ready_deadline = Instant::now() + Duration::from_secs_f64(options.wait_ready_s);
    let probe = loop {
        let mut probe = Connection::new(options.endpoint.clone(), options.signer.clone());
        let attempt = tokio::time::timeout(Duration::from_secs(2), async {
            probe.connect().await?;
            probe.request("GET", "/", "", Bytes::new(), false).await
        })
        .await;
        match attempt {
            Ok(Ok(_)) => break probe,
            _ if Instant::now() < ready_deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(Err(error)) => return Err(format!("the server never answered: {error}").into()),
            Err(_) => return Err("the server never answered (2 s per attempt)".into()),
        }
    };
    println!("transport {}", probe.negotiated.as_deref().unwrap_or("plain HTTP/1.1"));
    if options.create_bucket {
        create_bucket(&context).await?;
    }
    if options.workloads.contains(&Workload::List) {
        let started = Instant::now();
        fill_list_keys(&context).await?;
        eprintln!("s3bench: wrote {} list keys in {:.1} s", options.list_keys, started.elapsed().as_secs_f64());
    }

    let mut results: BTreeMap<(Workload, usize), Vec<Cell>> = BTreeMap::new();
    // (large, clients) -> the keys the last PUT cell of that kind wrote.
    let mut readable: BTreeMap<(bool, usize), Arc<Vec<String>>> = BTreeMap::new();
    for rep in 0..options.repeats {
        for &clients in &options.clients {
            for &workload in &options.workloads {
                if workload.is_large() && clients > options.large_clients_max {
                    continue;
                }
                // A long cell has done many operations in its one run:
                // repeating it would cost minutes for little.
                let first_run_s = results.get(&(workload, clients)).and_then(|cells| cells.first()).map(|c| c.seconds);
                if first_run_s.is_some_and(|s| s > options.long_cell_s) {
                    continue;
                }
                let keys = readable.get(&(workload.is_large(), clients)).cloned().unwrap_or_default();
                let (cell, mut written) = run_cell(&context, workload, clients, rep, &keys).await;
                if matches!(workload, Workload::PutSmall | Workload::PutLarge) {
                    written.sort();
                    written.dedup();
                    readable.insert((workload.is_large(), clients), Arc::new(written));
                }
                println!(
                    "cell workload={} clients={clients} rep={rep} ops={} bytes={} secs={:.3} ops_s={:.1} mb_s={:.2} \
                     p50_ms={:.3} p99_ms={:.3} errors={} reconnects={} client_cpu_pct={:.0}{}",
                    workload.name(),
                    cell.ops,
                    cell.payload_bytes,
                    cell.seconds,
                    cell.ops_per_s(),
                    cell.mb_per_s(),
                    cell.percentile_ms(50),
                    cell.percentile_ms(99),
                    cell.errors,
                    cell.reconnects,
                    cell.client_cpu_s / cell.seconds * 100.0,
                    cell.first_error.as_deref().map(|e| format!(" first_error={e:?}")).unwrap_or_default()
                );
                results.entry((workload, clients)).or_default().push(cell);
            }
        }
    }
    for ((workload, clients), cells) in &results {
        let pick = |f: &dyn Fn(&Cell) -> f64| median(&mut cells.iter().map(f).collect::<Vec<_>>());
        println!(
            "result workload={} clients={clients} repeats={} ops_s={:.1} mb_s={:.2} p50_ms={:.3} p99_ms={:.3} errors={} \
             client_cpu_pct={:.0}",
            workload.name(),
            cells.len(),
            pick(&Cell::ops_per_s),
            pick(&Cell::mb_per_s),
            pick(&|c| c.percentile_ms(50)),
            pick(&|c| c.percentile_ms(99)),
            cells.iter().map(|c| c.errors).sum::<u64>(),
            pick(&|c| c.client_cpu_s / c.seconds * 100.0),
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_options(&args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("s3bench: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(options)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("s3bench: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
