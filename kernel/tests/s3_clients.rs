//! Real S3 clients against the appliance in QEMU: the AWS CLI (v1), boto3,
//! rclone, s3cmd, s3fs-fuse and curl, each with its default settings (only
//! the endpoint, the credentials and the CA bundle configured; path-style
//! where the client needs telling), then the data surviving a hard stop of
//! the VM. The clients are installed by [`xtask::clients::ensure`] (a
//! virtualenv in the user's cache, Debian packages as root).
//!
//! Every check is a row of one table, printed at the end; the test fails on
//! any failed row that is not in [`KNOWN_SERVER_BUGS`].
//!
//! `cargo +nightly test -p kernel --test s3_clients -- --nocapture`

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xtask::bootfs::{Certificates, Credentials};
use xtask::clients::Clients;
use xtask::qemu::{NetConfig, VmConfig};
use xtask::state::State;

/// Checks that fail because of a known server bug, with the reason: their
/// failure is reported as KNOWN and does not fail the test. (client,
/// operation, reason). Keep it empty unless a bug is filed.
const KNOWN_SERVER_BUGS: &[(&str, &str, &str)] = &[];

const MIB: usize = 1 << 20;
/// Per client command; generous, since TCG is slow and the machine shared.
const SHORT: Duration = Duration::from_secs(120);
const LONG: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------- the VM

/// Where the server runs: the image in QEMU, or the same services as a
/// Linux process (`rustcore-hosted`) on a TAP device in a network namespace.
enum Kind {
    Qemu { elf: PathBuf, archive: PathBuf },
    Hosted { bin: PathBuf, netns: String, tap: String, keys: PathBuf, tls: PathBuf },
}

struct Appliance {
    kind: Kind,
    disk: PathBuf,
    serial: PathBuf,
    port: u16,
    admin_port: u16,
    child: Option<Child>,
}

/// The hosted server's address in its namespace (the host side is .1).
const HOSTED_NET: &str = "10.99.8";

impl Appliance {
    fn boot(&mut self) -> Duration {
        let (elf, archive) = match &self.kind {
            Kind::Qemu { elf, archive } => (elf.clone(), archive.clone()),
            Kind::Hosted { bin, netns, tap, keys, tls } => {
                let serial = std::fs::File::create(&self.serial).expect("log file");
                let start = Instant::now();
                let child = Command::new("ip")
                    .args(["netns", "exec", netns])
                    .arg(bin)
                    .args(["--tap", tap, "--ip", &format!("{HOSTED_NET}.2/24")])
                    .arg("--cert")
                    .arg(tls.join("server-chain.pem"))
                    .arg("--key")
                    .arg(tls.join("server.key"))
                    .arg("--data")
                    .arg(&self.disk)
                    .args(["--data-bytes", &xtask::state::DISK_SIZE_BYTES.to_string()])
                    .arg("--keys")
                    .arg(keys)
                    .stdout(serial.try_clone().expect("log file"))
                    .stderr(serial)
                    .spawn()
                    .expect("rustcore-hosted starts");
                self.child = Some(child);
                while !std::fs::read_to_string(&self.serial).unwrap_or_default().contains("\"msg\":\"s3 listening\"") {
                    assert!(
                        start.elapsed() < Duration::from_secs(60),
                        "rustcore-hosted did not serve S3:\n{}",
                        self.serial_tail(40)
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                return start.elapsed();
            }
        };
        let mut config = VmConfig::new(&elf, "log=info");
        config.memory_mib = 512;
        config.initrd = Some(archive);
        config.virtio_blk = Some(self.disk.clone());
        config.net = Some(NetConfig::User { forwards: vec![(self.port, 443), (self.admin_port, 9443)] });
        let (child, took) =
            xtask::qemu::run_until_line(&config, &self.serial, "\"msg\":\"s3 listening\"", Duration::from_secs(180))
                .expect("the appliance boots and serves S3");
        self.child = Some(child);
        took
    }

    /// SIGKILL: no chance to flush anything the guest has not flushed.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn serial_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.serial).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

// ---------------------------------------------------------------- results

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Ok,
    Fail,
    Skip,
    Known,
}

struct Row {
    client: &'static str,
    op: String,
    status: Status,
    detail: String,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn add(&mut self, client: &'static str, op: &str, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        let known = KNOWN_SERVER_BUGS.iter().find(|(c, o, _)| *c == client && *o == op);
        let (status, detail) = match (result, known) {
            (Ok(detail), None) => (Status::Ok, detail),
            (Ok(detail), Some(_)) => (Status::Ok, format!("{detail} (passes: remove it from KNOWN_SERVER_BUGS)")),
            (Err(detail), None) => (Status::Fail, detail),
            (Err(detail), Some((_, _, reason))) => (Status::Known, format!("{reason}: {detail}")),
        };
        let shown = if detail.len() > 400 { format!("{}...", &detail[..floor_char(&detail, 400)]) } else { detail };
        println!("s3_clients: {client:<8} {op:<50} {:?} {shown}", status);
        self.rows.push(Row { client, op: op.to_string(), status, detail: shown });
        ok
    }

    fn skip(&mut self, client: &'static str, op: &str, reason: &str) {
        println!("s3_clients: {client:<8} {op:<50} SKIP {reason}");
        self.rows.push(Row { client, op: op.to_string(), status: Status::Skip, detail: reason.to_string() });
    }

    fn table(&self) -> String {
        let width = self.rows.iter().map(|r| r.op.len()).max().unwrap_or(9).max(9);
        let mut out = format!("| client   | {:<width$} | result | detail\n", "operation");
        let _ = writeln!(out, "|----------|-{}-|--------|-------", "-".repeat(width));
        for row in &self.rows {
            let status = match row.status {
                Status::Ok => "ok",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
                Status::Known => "KNOWN",
            };
            let detail = row.detail.replace('\n', " ");
            let _ = writeln!(out, "| {:<8} | {:<width$} | {status:<6} | {detail}", row.client, row.op);
        }
        out
    }

    fn count(&self, status: Status) -> usize {
        self.rows.iter().filter(|r| r.status == status).count()
    }
}

fn floor_char(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

// ---------------------------------------------------------------- running clients

/// What a finished client command left.
struct Ran {
    success: bool,
    stdout: String,
    stderr: String,
    code: String,
}

impl Ran {
    /// `Ok(stdout)` on exit 0, else the exit and the tail of stderr.
    fn ok(self) -> Result<String, String> {
        if self.success { Ok(self.stdout) } else { Err(self.failure()) }
    }

    fn failure(&self) -> String {
        let tail = |s: &str| s.trim().chars().rev().take(600).collect::<Vec<_>>().into_iter().rev().collect::<String>();
        format!("{}: {} {}", self.code, tail(&self.stderr), tail(&self.stdout))
    }
}

/// A command for `program` without the host's own client settings
/// (`AWS_CA_BUNDLE` and the like would override or break ours).
fn client_command(env: &Env, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = match &env.netns {
        // Inside the namespace, where `localhost` names the hosted server
        // (ip netns exec bind-mounts /etc/netns/NAME/hosts on /etc/hosts).
        Some(netns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", netns]).arg(program.as_ref());
            cmd
        }
        None => Command::new(program),
    };
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if name_str.starts_with("AWS_") || name_str.starts_with("RCLONE_") || name_str == "CURL_CA_BUNDLE" {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// curl, which resolves `localhost` to loopback by itself (never through
/// /etc/hosts): in the hosted namespace it is told where localhost is.
fn curl_command(env: &Env) -> Command {
    let mut cmd = client_command(env, &env.clients.curl);
    if env.netns.is_some() {
        for port in [env.port, env.admin_port] {
            cmd.arg("--resolve").arg(format!("localhost:{port}:{HOSTED_NET}.2"));
        }
    }
    cmd
}

/// Runs `cmd` with output to files (no pipe can fill up), killing it after
/// `timeout`.
fn run(cmd: &mut Command, scratch: &Path, timeout: Duration) -> Ran {
    let out_path = scratch.join("last.stdout");
    let err_path = scratch.join("last.stderr");
    let out = std::fs::File::create(&out_path).expect("stdout file");
    let err = std::fs::File::create(&err_path).expect("stderr file");
    let shown = xtask::display_command(cmd);
    let mut child = match cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn() {
        Ok(child) => child,
        Err(error) => {
            return Ran {
                success: false,
                stdout: String::new(),
                stderr: error.to_string(),
                code: format!("cannot run {shown}"),
            };
        }
    };
    let status = xtask::wait_with_timeout(&mut child, timeout).expect("wait");
    let stdout = String::from_utf8_lossy(&std::fs::read(&out_path).unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&std::fs::read(&err_path).unwrap_or_default()).into_owned();
    let code = match status {
        Some(status) => format!("{status}"),
        None => format!("timed out after {timeout:?}"),
    };
    Ran { success: status.is_some_and(|s| s.success()), stdout, stderr, code }
}

/// Deterministic bytes (xorshift) so that a mismatch is reproducible.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Whether two files hold the same bytes, or why not.
fn same_file(expected: &Path, actual: &Path) -> Result<String, String> {
    let a = std::fs::read(expected).map_err(|e| format!("{}: {e}", expected.display()))?;
    let b = std::fs::read(actual).map_err(|e| format!("{}: {e}", actual.display()))?;
    if a == b {
        Ok(format!("{} B byte-exact", a.len()))
    } else {
        let first = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
        Err(format!("{} B expected, {} B received, first difference at byte {first}", a.len(), b.len()))
    }
}

/// Every `"field": "value"` string value in a JSON document (enough for
/// the AWS CLI's output: keys, version ids and tokens hold no quotes).
fn json_strings(json: &str, field: &str) -> Vec<String> {
    // Pretty-printed (aws cli) or compact (the admin API).
    let spaced = format!("\"{field}\": \"");
    let compact = format!("\"{field}\":\"");
    let mut values = Vec::new();
    let mut rest = json;
    loop {
        let found = [&spaced, &compact]
            .iter()
            .filter_map(|needle| rest.find(needle.as_str()).map(|at| (at, needle.len())))
            .min();
        let Some((at, len)) = found else { break };
        rest = &rest[at + len..];
        let end = rest.find('"').unwrap_or(rest.len());
        values.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    values
}

fn expect(condition: bool, detail: String) -> Result<String, String> {
    if condition { Ok(detail) } else { Err(detail) }
}

/// The files every client moves: name and contents.
struct Files {
    dir: PathBuf,
}

impl Files {
    const ALL: [(&'static str, usize, u64); 5] = [
        ("zero.bin", 0, 1),
        ("small.bin", 1024, 2),
        ("mid.bin", 3 * MIB, 3),
        ("single.bin", 12 * MIB, 5),
        ("big.bin", 20 * MIB, 4),
    ];

    fn create(dir: PathBuf) -> Files {
        std::fs::create_dir_all(&dir).expect("files dir");
        for (name, len, seed) in Self::ALL {
            std::fs::write(dir.join(name), pattern(len, seed)).expect("write a test file");
        }
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

struct Env {
    clients: Clients,
    certificates: Certificates,
    credentials: Credentials,
    endpoint: String,
    port: u16,
    admin_port: u16,
    work: PathBuf,
    files: Files,
    /// The hosted server's namespace, where the clients run.
    netns: Option<String>,
}

impl Env {
    /// A fresh directory under the work directory.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.work.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn aws(&self, args: &[&str]) -> Command {
        let mut cmd = client_command(self, &self.clients.aws);
        cmd.args(args);
        // Progress lines only clutter the table (a display option, not a
        // transfer setting).
        if args.first() == Some(&"s3") && args.get(1) == Some(&"cp") {
            cmd.arg("--no-progress");
        }
        self.aws_env(&mut cmd);
        cmd
    }

    /// What `.rustcore/env` holds, and nothing from the host's own AWS
    /// configuration.
    fn aws_env(&self, cmd: &mut Command) {
        let ca = std::fs::canonicalize(&self.certificates.ca).expect("CA path");
        cmd.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.credentials.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.credentials.secret_access_key)
            .env("AWS_CA_BUNDLE", ca)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", self.work.join("no-aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.work.join("no-aws-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN");
    }

    fn run(&self, cmd: &mut Command, timeout: Duration) -> Ran {
        run(cmd, &self.work, timeout)
    }
}

// ---------------------------------------------------------------- the clients

fn aws_cli(env: &Env, report: &mut Report) {
    const C: &str = "aws-cli";
    let down = env.dir("aws-down");
    let r = |args: &[&str], timeout: Duration| env.run(&mut env.aws(args), timeout);

    report.add(C, "s3 mb", r(&["s3", "mb", "s3://aws-cli"], SHORT).ok());
    let listed = r(&["s3", "ls"], SHORT).ok();
    report.add(C, "s3 ls (buckets)", listed.and_then(|out| expect(out.contains(" aws-cli"), out)));

    for (name, timeout) in [("zero.bin", SHORT), ("small.bin", SHORT), ("big.bin", LONG)] {
        let local = env.files.path(name);
        let remote = format!("s3://aws-cli/dir/{name}");
        let op =
            if name == "big.bin" { format!("s3 cp up {name} (20 MiB, multipart)") } else { format!("s3 cp up {name}") };
        let start = Instant::now();
        let up = r(&["s3", "cp", &local.to_string_lossy(), &remote], timeout).ok();
        let took = start.elapsed();
        report.add(C, &op, up.map(|_| format!("{:.1} s", took.as_secs_f64())));
        let target = down.join(name);
        let start = Instant::now();
        let got = r(&["s3", "cp", &remote, &target.to_string_lossy()], timeout).ok();
        let took = start.elapsed();
        report.add(
            C,
            &format!("s3 cp down {name} + cmp"),
            got.and_then(|_| same_file(&local, &target)).map(|d| format!("{d}, {:.1} s", took.as_secs_f64())),
        );
    }
    let head = r(&["s3api", "head-object", "--bucket", "aws-cli", "--key", "dir/big.bin"], SHORT).ok();
    report.add(
        C,
        "s3api head-object (multipart ETag, length)",
        head.and_then(|out| {
            // "ETag": "\"<md5 of the part md5s>-3\"" for three 8 MiB parts.
            expect(out.contains("-3\\\"\"") && out.contains("\"ContentLength\": 20971520"), out)
        }),
    );

    // A server-side copy of 20 MiB: the CLI uses UploadPartCopy with
    // x-amz-copy-source-range for anything over 8 MiB.
    let copied = r(&["s3", "cp", "s3://aws-cli/dir/big.bin", "s3://aws-cli/copy/big.bin"], LONG).ok().and_then(|_| {
        let target = down.join("big-copy.bin");
        r(&["s3", "cp", "s3://aws-cli/copy/big.bin", &target.to_string_lossy()], LONG).ok()?;
        same_file(&env.files.path("big.bin"), &target)
    });
    report.add(C, "s3 cp s3->s3 20 MiB (UploadPartCopy) + download + cmp", copied);

    // One PUT of 12 MiB: the CLI downloads it in 8 MiB ranges, asking for
    // checksums, which only a whole-object response may carry.
    let single = env.files.path("single.bin");
    let put = r(
        &["s3api", "put-object", "--bucket", "aws-cli", "--key", "single.bin", "--body", &single.to_string_lossy()],
        LONG,
    );
    report.add(C, "s3api put-object 12 MiB (single PUT)", put.ok());
    let target = down.join("single.bin");
    let got = r(&["s3", "cp", "s3://aws-cli/single.bin", &target.to_string_lossy()], LONG).ok();
    report.add(
        C,
        "s3 cp down 12 MiB single-part object (ranged GETs) + cmp",
        got.and_then(|_| same_file(&single, &target)),
    );

    // A tree for listings: uploaded in one recursive copy.
    let tree = env.dir("aws-tree");
    let mut keys = BTreeSet::new();
    for sub in ["list/a", "list/b"] {
        std::fs::create_dir_all(tree.join(sub)).expect("tree");
    }
    for i in 0..7 {
        std::fs::write(tree.join(format!("list/a/{i:02}")), format!("a{i}")).expect("tree file");
        keys.insert(format!("list/a/{i:02}"));
    }
    std::fs::write(tree.join("list/b/x"), "x").expect("tree file");
    std::fs::write(tree.join("list/top"), "top").expect("tree file");
    report.add(
        C,
        "s3 cp --recursive (9 small files)",
        r(&["s3", "cp", "--recursive", &tree.to_string_lossy(), "s3://aws-cli/"], SHORT).ok(),
    );

    let ls_prefix = r(&["s3", "ls", "s3://aws-cli/li"], SHORT).ok();
    report.add(C, "s3 ls with a partial prefix", ls_prefix.and_then(|out| expect(out.trim() == "PRE list/", out)));
    let ls_dir = r(&["s3", "ls", "s3://aws-cli/list/"], SHORT).ok();
    report.add(
        C,
        "s3 ls of a directory",
        ls_dir.and_then(|out| {
            let ok = out.contains("PRE a/") && out.contains("PRE b/") && out.trim_end().ends_with(" top");
            expect(ok && out.lines().count() == 3, out)
        }),
    );
    let ls_rec = r(&["s3", "ls", "--recursive", "s3://aws-cli/list/a/"], SHORT).ok();
    report.add(
        C,
        "s3 ls --recursive",
        ls_rec.and_then(|out| {
            let got: Vec<&str> = out.lines().filter_map(|l| l.split_whitespace().last()).collect();
            expect(got == keys.iter().map(String::as_str).collect::<Vec<_>>(), out.clone())
        }),
    );

    // Pages of 2, handed back in items of 3: the CLI resumes inside a page.
    let paged = (|| -> Result<String, String> {
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut calls = 0;
        loop {
            let mut args = vec!["s3api", "list-objects-v2", "--bucket", "aws-cli", "--prefix", "list/a/"];
            args.extend(["--page-size", "2", "--max-items", "3", "--output", "json"]);
            if let Some(token) = &token {
                args.extend(["--starting-token", token.as_str()]);
            }
            let out = r(&args, SHORT).ok()?;
            calls += 1;
            seen.extend(json_strings(&out, "Key"));
            token = json_strings(&out, "NextToken").pop();
            if token.is_none() || calls > 10 {
                break;
            }
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        let ok = seen.len() == keys.len() && unique.len() == seen.len() && unique.into_iter().eq(keys.iter());
        expect(ok && calls == 3, format!("{calls} calls, keys {seen:?}"))
    })();
    report.add(C, "s3api list-objects-v2 --page-size 2 --max-items 3", paged);
    let delimited = r(
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            "aws-cli",
            "--prefix",
            "list/",
            "--delimiter",
            "/",
            "--page-size",
            "1",
        ],
        SHORT,
    )
    .ok();
    report.add(
        C,
        "s3api list-objects-v2 --delimiter / --page-size 1",
        delimited.and_then(|out| {
            let mut prefixes = json_strings(&out, "Prefix");
            prefixes.retain(|p| p != "list/");
            let contents = json_strings(&out, "Key");
            let ok = prefixes == ["list/a/", "list/b/"] && contents == ["list/top"];
            expect(ok, format!("prefixes {prefixes:?} contents {contents:?}"))
        }),
    );

    let deleted = r(&["s3api", "delete-object", "--bucket", "aws-cli", "--key", "list/top"], SHORT).ok();
    let gone = deleted.and_then(|_| {
        let ran = r(&["s3api", "head-object", "--bucket", "aws-cli", "--key", "list/top"], SHORT);
        expect(!ran.success && ran.stderr.contains("404"), ran.failure())
    });
    report.add(C, "s3api delete-object (then head-object 404)", gone);

    // Versioning in a bucket of its own: its versions are removed one by one.
    let versions = (|| -> Result<String, String> {
        r(&["s3", "mb", "s3://aws-cli-versions"], SHORT).ok()?;
        let b = ["--bucket", "aws-cli-versions"];
        let mut enable = b.to_vec();
        enable.extend(["--versioning-configuration", "Status=Enabled"]);
        let mut args = vec!["s3api", "put-bucket-versioning"];
        args.extend(enable);
        r(&args, SHORT).ok()?;
        let mut ids = Vec::new();
        for name in ["small.bin", "mid.bin"] {
            let body = env.files.path(name);
            let body = body.to_string_lossy();
            let out =
                r(&["s3api", "put-object", "--bucket", "aws-cli-versions", "--key", "doc", "--body", &body], SHORT)
                    .ok()?;
            ids.push(json_strings(&out, "VersionId").pop().ok_or(format!("no VersionId in {out}"))?);
        }
        let listed =
            r(&["s3api", "list-object-versions", "--bucket", "aws-cli-versions", "--prefix", "doc"], SHORT).ok()?;
        let listed_ids = json_strings(&listed, "VersionId");
        let target = down.join("version-1");
        let target_s = target.to_string_lossy();
        r(
            &[
                "s3api",
                "get-object",
                "--bucket",
                "aws-cli-versions",
                "--key",
                "doc",
                "--version-id",
                &ids[0],
                &target_s,
            ],
            SHORT,
        )
        .ok()?;
        let same = same_file(&env.files.path("small.bin"), &target)?;
        for id in &ids {
            r(&["s3api", "delete-object", "--bucket", "aws-cli-versions", "--key", "doc", "--version-id", id], SHORT)
                .ok()?;
        }
        r(&["s3", "rb", "s3://aws-cli-versions"], SHORT).ok()?;
        let mut sorted_listed = listed_ids.clone();
        sorted_listed.sort();
        let mut sorted_ids = ids.clone();
        sorted_ids.sort();
        expect(
            ids[0] != ids[1] && sorted_listed == sorted_ids,
            format!("versions {ids:?} listed {listed_ids:?}, old version {same}"),
        )
    })();
    report.add(C, "versioning: put-bucket-versioning, list-object-versions, get --version-id, rb", versions);

    let rm = r(&["s3", "rm", "--recursive", "s3://aws-cli"], SHORT).ok();
    report.add(
        C,
        "s3 rm --recursive",
        rm.and_then(|_| {
            let out = r(&["s3", "ls", "--recursive", "s3://aws-cli"], SHORT);
            // An empty listing exits 1 in the AWS CLI v1.
            expect(out.stdout.trim().is_empty(), out.stdout)
        }),
    );
    let rb = r(&["s3", "rb", "s3://aws-cli"], SHORT).ok();
    report.add(
        C,
        "s3 rb",
        rb.and_then(|_| r(&["s3", "ls"], SHORT).ok()).and_then(|out| expect(!out.contains(" aws-cli"), out)),
    );
}

fn boto3(env: &Env, report: &mut Report) {
    const C: &str = "boto3";
    let script = xtask::repo_root().join("kernel/tests/clients/boto3_suite.py");
    let mut cmd = client_command(env, &env.clients.python);
    cmd.arg(&script)
        .arg(&env.endpoint)
        .arg(std::fs::canonicalize(&env.certificates.ca).expect("CA"))
        .arg(&env.credentials.access_key_id)
        .arg(&env.credentials.secret_access_key)
        .arg(env.dir("boto3"));
    env.aws_env(&mut cmd);
    let ran = env.run(&mut cmd, LONG);
    let mut rows = 0;
    for line in ran.stdout.lines() {
        let mut parts = line.splitn(4, '\t');
        if parts.next() != Some("RESULT") {
            continue;
        }
        let (op, status, detail) =
            (parts.next().unwrap_or("?"), parts.next().unwrap_or("?"), parts.next().unwrap_or(""));
        report.add(C, op, if status == "ok" { Ok(detail.to_string()) } else { Err(detail.to_string()) });
        rows += 1;
    }
    if !ran.success || rows == 0 {
        report.add(C, "the script runs to its end", Err(ran.failure()));
    }
}

fn rclone(env: &Env, report: &mut Report) {
    const C: &str = "rclone";
    let ca = std::fs::canonicalize(&env.certificates.ca).expect("CA");
    let rc = |args: &[&str], timeout: Duration| {
        let mut cmd = client_command(env, &env.clients.rclone);
        cmd.args(args)
            .arg("--ca-cert")
            .arg(&ca)
            .args(["--retries", "1", "--low-level-retries", "2", "--contimeout", "30s", "--timeout", "120s"])
            .env("RCLONE_CONFIG", env.work.join("no-rclone.conf"))
            .env("RCLONE_CONFIG_RC_TYPE", "s3")
            .env("RCLONE_CONFIG_RC_PROVIDER", "Other")
            .env("RCLONE_CONFIG_RC_ENV_AUTH", "false")
            .env("RCLONE_CONFIG_RC_ACCESS_KEY_ID", &env.credentials.access_key_id)
            .env("RCLONE_CONFIG_RC_SECRET_ACCESS_KEY", &env.credentials.secret_access_key)
            .env("RCLONE_CONFIG_RC_ENDPOINT", &env.endpoint)
            .env("RCLONE_CONFIG_RC_REGION", "us-east-1")
            .env("RCLONE_CONFIG_RC_FORCE_PATH_STYLE", "true");
        env.run(&mut cmd, timeout)
    };
    let up = env.dir("rclone-up");
    for name in ["zero.bin", "small.bin", "mid.bin"] {
        std::fs::copy(env.files.path(name), up.join(name)).expect("stage");
    }
    let up_s = up.to_string_lossy().into_owned();
    report.add(C, "mkdir (bucket)", rc(&["mkdir", "rc:rclone-b"], SHORT).ok());
    report.add(C, "copy dir up (0 B, 1 KiB, 3 MiB)", rc(&["copy", &up_s, "rc:rclone-b/dir"], LONG).ok());
    let big = env.files.path("big.bin");
    let start = Instant::now();
    let copyto = rc(&["copyto", &big.to_string_lossy(), "rc:rclone-b/single/big.bin"], LONG).ok();
    let took = start.elapsed().as_secs_f64();
    report.add(C, "copyto up 20 MiB (multipart)", copyto.map(|_| format!("{took:.1} s")));
    let lsf = rc(&["lsf", "-R", "rc:rclone-b"], SHORT).ok();
    report.add(
        C,
        "lsf -R",
        lsf.and_then(|out| {
            let got: BTreeSet<&str> = out.lines().collect();
            let want: BTreeSet<&str> =
                ["dir/", "dir/mid.bin", "dir/small.bin", "dir/zero.bin", "single/", "single/big.bin"].into();
            expect(got == want, out.clone())
        }),
    );
    let ls = rc(&["ls", "rc:rclone-b/dir"], SHORT).ok();
    report.add(
        C,
        "ls (sizes)",
        ls.and_then(|out| expect(out.contains(&format!("{} mid.bin", 3 * MIB)) && out.contains("0 zero.bin"), out)),
    );
    report.add(C, "check (sizes and MD5 against the local dir)", rc(&["check", &up_s, "rc:rclone-b/dir"], SHORT).ok());
    let down = env.dir("rclone-down");
    let down_s = down.to_string_lossy().into_owned();
    let copied = rc(&["copy", "rc:rclone-b/dir", &down_s], LONG).ok();
    report.add(
        C,
        "copy dir down + cmp",
        copied.and_then(|_| {
            let mut details = Vec::new();
            for name in ["zero.bin", "small.bin", "mid.bin"] {
                details.push(format!("{name} {}", same_file(&up.join(name), &down.join(name))?));
            }
            Ok(details.join(", "))
        }),
    );
    let big_down = down.join("big.bin");
    let copied = rc(&["copyto", "rc:rclone-b/single/big.bin", &big_down.to_string_lossy()], LONG).ok();
    report.add(C, "copyto down 20 MiB + cmp", copied.and_then(|_| same_file(&big, &big_down)));
    let deleted = rc(&["delete", "rc:rclone-b/dir", "--include", "small.bin"], SHORT).ok();
    report.add(
        C,
        "delete --include small.bin",
        deleted
            .and_then(|_| rc(&["lsf", "rc:rclone-b/dir"], SHORT).ok())
            .and_then(|out| expect(!out.contains("small.bin") && out.contains("mid.bin"), out)),
    );
    let purged = rc(&["purge", "rc:rclone-b"], SHORT).ok();
    report.add(
        C,
        "purge (bucket)",
        purged.and_then(|_| rc(&["lsd", "rc:"], SHORT).ok()).and_then(|out| expect(!out.contains("rclone-b"), out)),
    );
}

fn s3cmd(env: &Env, report: &mut Report) {
    const C: &str = "s3cmd";
    let config = env.work.join("s3cmd.cfg");
    let ca = std::fs::canonicalize(&env.certificates.ca).expect("CA");
    std::fs::write(
        &config,
        format!(
            "[default]\naccess_key = {}\nsecret_key = {}\nhost_base = localhost:{port}\nhost_bucket = localhost:{port}\n\
             use_https = True\nca_certs_file = {}\ncheck_ssl_certificate = True\nsignature_v2 = False\n\
             bucket_location = us-east-1\n",
            env.credentials.access_key_id,
            env.credentials.secret_access_key,
            ca.display(),
            port = env.port
        ),
    )
    .expect("s3cmd config");
    let s3 = |args: &[&str], timeout: Duration| {
        let mut cmd = client_command(env, &env.clients.s3cmd);
        cmd.arg("-c").arg(&config).args(args).env("HOME", &env.work);
        env.run(&mut cmd, timeout)
    };
    let down = env.dir("s3cmd-down");
    report.add(C, "mb", s3(&["mb", "s3://s3cmd-b"], SHORT).ok());
    for (name, op) in
        [("small.bin", "put/get 1 KiB + cmp"), ("big.bin", "put/get 20 MiB (multipart, 15 MiB chunks) + cmp")]
    {
        let local = env.files.path(name);
        let remote = format!("s3://s3cmd-b/{name}");
        let target = down.join(name);
        let result = s3(&["put", &local.to_string_lossy(), &remote], LONG)
            .ok()
            .and_then(|_| s3(&["get", &remote, &target.to_string_lossy()], LONG).ok())
            .and_then(|_| same_file(&local, &target));
        report.add(C, op, result);
    }
    let ls = s3(&["ls", "s3://s3cmd-b"], SHORT).ok();
    report.add(
        C,
        "ls",
        ls.and_then(|out| expect(out.contains("s3://s3cmd-b/small.bin") && out.contains("s3://s3cmd-b/big.bin"), out)),
    );
    let buckets = s3(&["ls"], SHORT).ok();
    report.add(C, "ls (buckets)", buckets.and_then(|out| expect(out.contains("s3://s3cmd-b"), out)));
    let del = s3(&["del", "s3://s3cmd-b/small.bin", "s3://s3cmd-b/big.bin"], SHORT).ok();
    report.add(
        C,
        "del",
        del.and_then(|_| s3(&["ls", "s3://s3cmd-b"], SHORT).ok()).and_then(|out| expect(out.trim().is_empty(), out)),
    );
    report.add(C, "rb", s3(&["rb", "s3://s3cmd-b"], SHORT).ok());
}

fn s3fs(env: &Env, report: &mut Report) {
    const C: &str = "s3fs";
    let program = match &env.clients.s3fs {
        Ok(program) => program.clone(),
        Err(reason) => return report.skip(C, "mount, write, read, ls, unmount", reason),
    };
    let created = env.run(&mut env.aws(&["s3", "mb", "s3://s3fs-b"]), SHORT).ok();
    if !report.add(C, "bucket made with the AWS CLI", created) {
        return;
    }
    if env.netns.is_some() {
        // `ip netns exec` runs the client in a mount namespace of its own:
        // the FUSE mount would not be visible here.
        return report.skip(
            C,
            "mount, write, read, ls, unmount",
            "hosted: the mount would live in the namespace's private mount table",
        );
    }
    let mount = env.dir("s3fs-mnt");
    let passwd = env.work.join("s3fs.passwd");
    std::fs::write(&passwd, format!("{}:{}\n", env.credentials.access_key_id, env.credentials.secret_access_key))
        .expect("passwd");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let ca = std::fs::canonicalize(&env.certificates.ca).expect("CA");
    let mut cmd = client_command(env, &program);
    cmd.arg("s3fs-b")
        .arg(&mount)
        .arg("-o")
        .arg(format!("url={},use_path_request_style,passwd_file={},endpoint=us-east-1", env.endpoint, passwd.display()))
        .env("CURL_CA_BUNDLE", &ca);
    let ran = env.run(&mut cmd, SHORT);
    let mounted = |path: &Path| {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(&*path.to_string_lossy()))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while ran.success && !mounted(&mount) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if !ran.success || !mounted(&mount) {
        let why = ran.failure();
        // FUSE refused by the host (a container without the capability) is
        // not the appliance's doing.
        if why.contains("fuse: ") || why.contains("Operation not permitted") || why.contains("/dev/fuse") {
            report.skip(C, "mount", &format!("FUSE unusable here: {why}"));
        } else {
            report.add(C, "mount", Err(format!("not mounted: {why}")));
        }
        let _ = env.run(&mut env.aws(&["s3", "rb", "s3://s3fs-b", "--force"]), SHORT);
        return;
    }
    report.add(C, "mount", Ok(String::new()));
    let small = env.files.path("small.bin");
    let mid = env.files.path("mid.bin");
    let wrote = std::fs::copy(&small, mount.join("small.bin"))
        .and_then(|_| std::fs::copy(&mid, mount.join("mid.bin")))
        .map_err(|e| e.to_string());
    report.add(C, "write 1 KiB and 3 MiB files", wrote.map(|_| String::new()));
    let listed = std::fs::read_dir(&mount).map_err(|e| e.to_string()).map(|entries| {
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect::<BTreeSet<_>>()
    });
    report.add(
        C,
        "ls",
        listed.and_then(|names| expect(names.contains("small.bin") && names.contains("mid.bin"), format!("{names:?}"))),
    );
    report.add(
        C,
        "read back + cmp",
        same_file(&small, &mount.join("small.bin"))
            .and_then(|a| Ok(format!("{a}; {}", same_file(&mid, &mount.join("mid.bin"))?))),
    );
    let through_s3 = env.dir("s3fs-check").join("mid.bin");
    let got = env.run(&mut env.aws(&["s3", "cp", "s3://s3fs-b/mid.bin", &through_s3.to_string_lossy()]), SHORT).ok();
    report.add(C, "file written through FUSE read with the AWS CLI", got.and_then(|_| same_file(&mid, &through_s3)));
    let removed = std::fs::remove_file(mount.join("small.bin")).map_err(|e| e.to_string());
    report.add(C, "rm", removed.map(|_| String::new()));
    let unmounted = env.run(Command::new("fusermount").arg("-u").arg(&mount), SHORT);
    let unmounted =
        if unmounted.success { Ok(String::new()) } else { env.run(Command::new("umount").arg(&mount), SHORT).ok() };
    report.add(C, "unmount", unmounted.and_then(|d| expect(!mounted(&mount), d)));
    let _ = env.run(&mut env.aws(&["s3", "rb", "s3://s3fs-b", "--force"]), SHORT);
}

fn curl(env: &Env, report: &mut Report) {
    const C: &str = "curl";
    let ca = std::fs::canonicalize(&env.certificates.ca).expect("CA");
    let user = format!("{}:{}", env.credentials.access_key_id, env.credentials.secret_access_key);
    // S3 requires x-amz-content-sha256 with SigV4 headers; curl before 8.x
    // does not send it by itself (then 400 InvalidRequest, as from S3).
    let bare = |extra: &[&str], path: &str| {
        let mut cmd = curl_command(env);
        cmd.args(["--silent", "--show-error", "--fail-with-body", "--max-time", "120", "--cacert"])
            .arg(&ca)
            .args(["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", &user])
            .args(extra)
            .arg(format!("{}/{path}", env.endpoint));
        env.run(&mut cmd, SHORT)
    };
    let curl = |extra: &[&str], path: &str| {
        let mut args = vec!["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"];
        args.extend(extra);
        bare(&args, path)
    };
    let without = bare(&[], "");
    report.add(
        C,
        "GET / without x-amz-content-sha256 -> 400 InvalidRequest",
        expect(!without.success && without.stdout.contains("<Code>InvalidRequest</Code>"), without.failure()),
    );
    report.add(C, "PUT bucket", curl(&["-X", "PUT"], "curl-b").ok());
    let small = env.files.path("small.bin");
    report.add(C, "PUT object (1 KiB, -T)", curl(&["-T", &small.to_string_lossy()], "curl-b/small.bin").ok());
    let target = env.dir("curl-down").join("small.bin");
    let got = curl(&["-o", &target.to_string_lossy()], "curl-b/small.bin").ok();
    report.add(C, "GET object + cmp", got.and_then(|_| same_file(&small, &target)));
    let listed = curl(&[], "curl-b?list-type=2").ok();
    report.add(
        C,
        "GET bucket (ListObjectsV2 XML)",
        listed.and_then(|out| expect(out.contains("<Key>small.bin</Key>"), out)),
    );
    report.add(C, "DELETE object", curl(&["-X", "DELETE"], "curl-b/small.bin").ok());
    report.add(C, "DELETE bucket", curl(&["-X", "DELETE"], "curl-b").ok());
}

/// An API key made through the admin API (with the admin token), granted
/// read and write on a bucket, then used by plain curl as a bearer token, a
/// header and a query parameter; revoked, it stops working.
fn curl_api_key(env: &Env, report: &mut Report) {
    const C: &str = "curl+apikey";
    let ca = std::fs::canonicalize(&env.certificates.ca).expect("CA");
    let admin = |method: &str, path: &str| {
        let mut cmd = curl_command(env);
        cmd.args(["--silent", "--show-error", "--fail-with-body", "--max-time", "60", "-X", method, "--cacert"])
            .arg(&ca)
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", env.credentials.admin_token))
            .arg(format!("https://localhost:{}{path}", env.admin_port));
        env.run(&mut cmd, SHORT)
    };
    let s3 = |extra: &[&str], url: String| {
        let mut cmd = curl_command(env);
        cmd.args(["--silent", "--show-error", "--fail-with-body", "--max-time", "60", "--cacert"])
            .arg(&ca)
            .args(extra)
            .arg(url);
        env.run(&mut cmd, SHORT)
    };
    report.add(C, "admin API health", admin("GET", "/health").ok());
    let created = admin("POST", "/v1/keys?name=curl&kind=apikey").ok();
    let key = created.as_ref().ok().and_then(|json| json_strings(json, "secret").into_iter().next());
    let id = created.as_ref().ok().and_then(|json| json_strings(json, "id").into_iter().next());
    report.add(C, "admin API: create an API key", created.map(|_| String::from("created")));
    let (Some(key), Some(id)) = (key, id) else {
        return;
    };
    let sigv4 = env.run(&mut env.aws(&["s3", "mb", "s3://apikey-b"]), SHORT).ok();
    report.add(C, "bucket made with the AWS CLI", sigv4);
    report.add(
        C,
        "admin API: grant read,write",
        admin("PUT", &format!("/v1/buckets/apikey-b/grants/{id}?caps=read,write")).ok(),
    );
    let small = env.files.path("small.bin");
    let bearer = format!("Authorization: Bearer {key}");
    let url = |path: &str| format!("{}/{path}", env.endpoint);
    report.add(
        C,
        "PUT with Authorization: Bearer",
        s3(&["-H", &bearer, "-T", &small.to_string_lossy()], url("apikey-b/small.bin")).ok(),
    );
    let target = env.dir("apikey-down").join("small.bin");
    let got =
        s3(&["-H", &format!("x-api-key: {key}"), "-o", &target.to_string_lossy()], url("apikey-b/small.bin")).ok();
    report.add(C, "GET with x-api-key + cmp", got.and_then(|_| same_file(&small, &target)));
    let target = env.dir("apikey-query").join("small.bin");
    let query = s3(&["-o", &target.to_string_lossy()], url(&format!("apikey-b/small.bin?x-api-key={key}"))).ok();
    report.add(C, "GET with ?x-api-key= + cmp", query.and_then(|_| same_file(&small, &target)));
    let listed = s3(&["-H", &bearer], url("apikey-b?list-type=2"));
    report.add(
        C,
        "no list capability -> 403",
        expect(!listed.success && listed.stdout.contains("AccessDenied"), listed.failure()),
    );
    report.add(C, "admin API: revoke", admin("DELETE", &format!("/v1/keys/{id}")).ok());
    let revoked = s3(&["-H", &bearer], url("apikey-b/small.bin"));
    report.add(
        C,
        "revoked key -> 403",
        expect(!revoked.success && revoked.stdout.contains("AccessDenied"), revoked.failure()),
    );
    let metrics = admin("GET", "/metrics").ok();
    report.add(
        C,
        "admin API: /metrics counts the requests",
        metrics.and_then(|text| {
            expect(
                text.contains("rustcore_s3_requests_total{op=\"PutObject\",status=\"200\"}"),
                text.lines().take(5).collect(),
            )
        }),
    );
}

/// Objects written, the VM killed (SIGKILL) and booted again on the same
/// disk, the objects read back.
fn restart(env: &Env, vm: &mut Appliance, report: &mut Report) {
    const C: &str = "restart";
    let names = ["zero.bin", "small.bin", "mid.bin"];
    let written = (|| -> Result<String, String> {
        env.run(&mut env.aws(&["s3", "mb", "s3://persist"]), SHORT).ok()?;
        for name in names {
            let local = env.files.path(name);
            env.run(&mut env.aws(&["s3", "cp", &local.to_string_lossy(), &format!("s3://persist/{name}")]), SHORT)
                .ok()?;
        }
        Ok(String::from("3 objects"))
    })();
    report.add(C, "write with the AWS CLI", written);
    vm.kill();
    let _ = std::fs::copy(&vm.serial, vm.serial.with_file_name("serial-first-boot.log"));
    let took = vm.boot();
    report.add(
        C,
        "kill -9 QEMU, boot on the same disk",
        Ok(format!("serving again after {:.1} s", took.as_secs_f64())),
    );
    let down = env.dir("persist-down");
    let read = (|| -> Result<String, String> {
        let listed = env.run(&mut env.aws(&["s3", "ls", "s3://persist/"]), SHORT).ok()?;
        let mut details = Vec::new();
        for name in names {
            let target = down.join(name);
            env.run(&mut env.aws(&["s3", "cp", &format!("s3://persist/{name}"), &target.to_string_lossy()]), SHORT)
                .ok()?;
            details.push(format!("{name} {}", same_file(&env.files.path(name), &target)?));
        }
        expect(listed.lines().count() == 3, format!("{}; listing: {}", details.join(", "), listed.trim()))
    })();
    report.add(C, "read back with the AWS CLI + cmp", read);
}

/// One client's checks.
type Suite = fn(&Env, &mut Report);

/// One test at a time: each drives a server on this two-core machine.
static ONE_SERVER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs every client suite, then the restart check, against `server`.
fn run_clients(label: &str, server: &mut Appliance, env: &Env, started: Instant) {
    let mut report = Report::default();
    let suites: [(&str, Suite); 7] = [
        ("aws-cli", aws_cli),
        ("boto3", boto3),
        ("rclone", rclone),
        ("s3cmd", s3cmd),
        ("s3fs", s3fs),
        ("curl", curl),
        ("curl+apikey", curl_api_key),
    ];
    let mut timings = Vec::new();
    for (name, suite) in suites {
        let start = Instant::now();
        suite(env, &mut report);
        timings.push(format!("{name} {:.0} s", start.elapsed().as_secs_f64()));
    }
    let start = Instant::now();
    restart(env, server, &mut report);
    timings.push(format!("restart {:.0} s", start.elapsed().as_secs_f64()));

    let failed = report.count(Status::Fail);
    println!("\n{label}\n{}", report.table());
    println!(
        "s3_clients ({label}): {} ok, {failed} failed, {} known server bugs, {} skipped; {}; total {:.0} s",
        report.count(Status::Ok),
        report.count(Status::Known),
        report.count(Status::Skip),
        timings.join(", "),
        started.elapsed().as_secs_f64()
    );
    let first_boot = std::fs::read_to_string(server.serial.with_file_name("serial-first-boot.log")).unwrap_or_default();
    let log = first_boot + &std::fs::read_to_string(&server.serial).unwrap_or_default();
    if failed > 0 || log.contains("FATAL") || log.contains("panicked") {
        println!("--- log tail ---\n{}", server.serial_tail(80));
    }
    assert!(!log.contains("FATAL") && !log.contains("panicked"), "the server reported a fatal error");
    assert_eq!(failed, 0, "{failed} client checks failed ({label}):\n{}", report.table());
}

fn fresh_work(root: &Path) -> PathBuf {
    let work = root.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    work
}

#[test]
fn real_clients_against_the_appliance() {
    let _one = ONE_SERVER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let started = Instant::now();
    xtask::setup::ensure_host_tools().expect("QEMU is needed");
    let clients = xtask::clients::ensure().expect("the S3 clients install");
    println!("s3_clients: clients ready in {:.1} s ({})", clients.install_time.as_secs_f64(), clients.venv.display());

    let elf = xtask::image::build().expect("image builds");
    let root = xtask::repo_root().join("target/image/s3-clients");
    let state = State::at(&root);
    std::fs::create_dir_all(state.logs_dir()).expect("state dir");
    let disk = state.virtio_disk();
    let _ = std::fs::remove_file(&disk);
    xtask::qemu::ensure_disk(&disk, xtask::state::DISK_SIZE_BYTES).expect("data disk");
    let certificates = xtask::bootfs::ensure_certificates(&state).expect("certificates");
    let credentials = xtask::bootfs::ensure_credentials(&state).expect("credentials");
    let archive = xtask::bootfs::pack(&state, &certificates, &credentials).expect("boot archive");
    let port = free_port();
    let kind = Kind::Qemu { elf, archive };
    let mut vm = Appliance { kind, disk, serial: state.serial_log(), port, admin_port: free_port(), child: None };
    let to_listening = vm.boot();
    println!("s3_clients: appliance serving S3 on https://localhost:{port} after {:.1} s", to_listening.as_secs_f64());
    let work = fresh_work(&root);
    let env = Env {
        files: Files::create(work.join("files")),
        endpoint: format!("https://localhost:{port}"),
        clients,
        certificates,
        credentials,
        port,
        admin_port: vm.admin_port,
        work,
        netns: None,
    };
    run_clients("the appliance in QEMU", &mut vm, &env, started);
}

/// A network namespace with a TAP device for the hosted server, deleted
/// (with its device and hosts file) when dropped.
struct Namespace {
    name: String,
}

impl Namespace {
    fn create(name: &str, tap: &str) -> Namespace {
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().expect("ip runs");
            assert!(status.success(), "ip {args:?}");
        };
        let _ = Command::new("ip").args(["netns", "delete", name]).stderr(Stdio::null()).status();
        let namespace = Namespace { name: name.to_string() };
        ip(&["netns", "add", name]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ip(&["-n", name, "tuntap", "add", "dev", tap, "mode", "tap"]);
        ip(&["-n", name, "addr", "add", &format!("{HOSTED_NET}.1/24"), "dev", tap]);
        ip(&["-n", name, "link", "set", tap, "up"]);
        // Clients in the namespace reach the server as `localhost`, the
        // name its certificate carries.
        let etc = PathBuf::from("/etc/netns").join(name);
        std::fs::create_dir_all(&etc).expect("/etc/netns");
        std::fs::write(etc.join("hosts"), format!("{HOSTED_NET}.2 localhost\n")).expect("hosts file");
        namespace
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).stderr(Stdio::null()).status();
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}

/// The same suite against `rustcore-hosted` (our TCP/IP, TLS, S3 and store
/// as a Linux process on a TAP device, a file as its disk). Needs root for
/// the namespace and the TAP device, as CI has.
#[test]
fn real_clients_against_hosted() {
    if !xtask::is_root() {
        println!("s3_clients: hosted suite skipped: needs root for a network namespace and a TAP device");
        return;
    }
    let _one = ONE_SERVER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let started = Instant::now();
    let clients = xtask::clients::ensure().expect("the S3 clients install");
    let build = Command::new(xtask::cargo_program())
        .current_dir(xtask::repo_root())
        .args(["build", "-p", "hosted", "--bin", "rustcore-hosted"])
        .status()
        .expect("cargo runs");
    assert!(build.success(), "rustcore-hosted builds");
    let bin = xtask::repo_root().join("target/debug/rustcore-hosted");
    let root = xtask::repo_root().join("target/image/s3-clients-hosted");
    let state = State::at(&root);
    std::fs::create_dir_all(state.logs_dir()).expect("state dir");
    let disk = root.join("data.img");
    let _ = std::fs::remove_file(&disk);
    let certificates = xtask::bootfs::ensure_certificates(&state).expect("certificates");
    let credentials = xtask::bootfs::ensure_credentials(&state).expect("credentials");
    let namespace = Namespace::create("rc-s3clients", "rcctap0");
    let kind = Kind::Hosted {
        bin,
        netns: namespace.name.clone(),
        tap: String::from("rcctap0"),
        keys: state.dir().join("keys"),
        tls: state.dir().join("tls"),
    };
    let mut server = Appliance { kind, disk, serial: state.serial_log(), port: 443, admin_port: 9443, child: None };
    let to_listening = server.boot();
    println!("s3_clients: rustcore-hosted serving S3 after {:.1} s", to_listening.as_secs_f64());
    let work = fresh_work(&root);
    let env = Env {
        files: Files::create(work.join("files")),
        endpoint: String::from("https://localhost"),
        clients,
        certificates,
        credentials,
        port: 443,
        admin_port: 9443,
        work,
        netns: Some(namespace.name.clone()),
    };
    run_clients("rustcore-hosted on a TAP device", &mut server, &env, started);
    drop(server);
    drop(namespace);
}
