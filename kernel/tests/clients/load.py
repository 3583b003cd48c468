"""Load and fault clients for kernel/tests/s3_load.rs (Python standard library only).

    python load.py COMMAND HOST PORT CA_BUNDLE API_KEY [options]

Every request authenticates with the admin API key (`x-api-key`), so the
clients control every byte they send: no SDK retries can hide an error and
no signing work competes with the VM for the CPU. Commands:

  concurrent  many TLS connections open at the same time, small PUTs and GETs
  hostile     slowloris, an unfinished body, a stalled TLS handshake and a
              client that stops reading, while a normal client keeps working
  write       the crash round's write load: PUTs until killed, logged
  verify      after a crash: every acknowledged PUT reads back byte-exact
  fill        disk full: PUT until refused, check, delete, PUT again
  fill-verify after a reboot: what `fill` left is intact

Prints `RESULT<TAB>check<TAB>ok|FAIL<TAB>detail` lines (the Rust side
counts them) and `FIGURE<TAB>name<TAB>value` lines for the report; exits 0
unless the command itself could not run.
"""

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import socket
import ssl
import sys
import time

BUCKET = "load"


def report(check, ok, detail=""):
    detail = " ".join(str(detail).split())[:400]
    print(f"RESULT\t{check}\t{'ok' if ok else 'FAIL'}\t{detail}", flush=True)


def figure(name, value):
    print(f"FIGURE\t{name}\t{value}", flush=True)


def host_listen_drops():
    """Connections this host's kernel dropped because a listening socket's
    accept queue was full (TcpExt ListenDrops), or None where unreadable.
    QEMU's user-mode network listens for its port forwards with a backlog
    of 1, so a burst of connects overflows it whenever QEMU's main loop is
    slow to accept (TCG on a loaded host): the dropped SYNs are retried by
    the client's kernel after 1, 2, 4, 8, 16 ... s."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines, lines[1:]):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table["ListenDrops"]) if "ListenDrops" in table else None
    return None


def host_listen_drops_since(before):
    """`host_listen_drops()` now less `before` (host-wide, so other
    programs' drops count too: an upper bound), or None where unreadable."""
    after = host_listen_drops()
    return None if before is None or after is None else after - before


def content(seed, seq, size):
    """Unique, reproducible bytes for PUT number `seq` of a run seeded `seed`."""
    return random.Random(f"{seed}/{seq}").randbytes(size)


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Http:
    """One keep-alive HTTP/1.1 connection over TLS (asyncio streams)."""

    def __init__(self, args):
        self.args = args
        self.reader = None
        self.writer = None

    async def open(self, timeout=60.0):
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.args.host,
                self.args.port,
                ssl=self.args.tls,
                server_hostname="localhost",
                # asyncio's own limit (60 s) would otherwise cut in first.
                ssl_handshake_timeout=timeout if self.args.tls else None,
            ),
            timeout,
        )
        return self

    async def request(self, method, path, body=b"", headers=None, timeout=120.0):
        """(status, headers, body) of one request on this connection."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: localhost:{self.args.port}", f"x-api-key: {self.args.key}"]
        if method in ("PUT", "POST") or body:
            lines.append(f"Content-Length: {len(body)}")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        return await asyncio.wait_for(self.response(method), timeout)

    async def response(self, method):
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed before a response")
        status = int(status_line.split()[1])
        headers = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if method == "HEAD" or status in (204, 304):
            length = 0
        body = await self.reader.readexactly(length) if length else b""
        return status, headers, body

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 10)
            except (OSError, asyncio.TimeoutError, ssl.SSLError):
                pass


def error_code(body):
    text = body.decode("utf-8", "replace")
    start = text.find("<Code>")
    return text[start + 6 : text.find("</Code>")] if start >= 0 else ""


async def ensure_bucket(args):
    conn = await Http(args).open()
    status, _, body = await conn.request("PUT", f"/{BUCKET}")
    await conn.close()
    if status != 200 and error_code(body) != "BucketAlreadyOwnedByYou":
        raise RuntimeError(f"CreateBucket {BUCKET}: {status} {body[:200]!r}")


# ---------------------------------------------------------------- concurrent


async def concurrent(args):
    """`--connections` TLS connections, all open at once: each PUTs and GETs
    a small object of its own before and after every connection is open."""
    await ensure_bucket(args)
    n = args.connections
    handshakes = asyncio.Semaphore(args.handshake_parallel)
    settled = 0
    all_settled = asyncio.Event()
    open_now = 0
    max_open = 0
    errors = []
    requests_ok = 0
    handshake_s = []
    drops_before = host_listen_drops()
    started = time.monotonic()

    def settle():
        nonlocal settled
        settled += 1
        if settled == n:
            all_settled.set()

    async def one(i):
        nonlocal open_now, max_open, requests_ok
        conn = Http(args)
        is_open = False
        settled_here = False
        try:
            async with handshakes:
                t = time.monotonic()
                await conn.open(args.open_timeout)
                handshake_s.append(time.monotonic() - t)
            is_open = True
            open_now += 1
            max_open = max(max_open, open_now)
            key = f"/{BUCKET}/c/{args.seed}/{i}"
            for step in range(args.requests):
                data = content(args.seed, i * 1000 + step, args.object_bytes)
                status, _, body = await conn.request("PUT", key, data)
                if status != 200:
                    raise RuntimeError(f"PUT {key}: {status} {error_code(body)}")
                status, _, body = await conn.request("GET", key)
                if status != 200 or body != data:
                    raise RuntimeError(f"GET {key}: {status}, {len(body)} B, expected {len(data)} B")
                requests_ok += 2
                if step == 0:
                    # Hold the connection until every other one is open too.
                    settle()
                    settled_here = True
                    await asyncio.wait_for(all_settled.wait(), args.settle_timeout)
        except Exception as error:  # noqa: BLE001 - every failure is counted
            errors.append(f"conn {i}: {type(error).__name__}: {error}")
        finally:
            if not settled_here:
                settle()
            if is_open:
                open_now -= 1
            await conn.close()

    await asyncio.gather(*(one(i) for i in range(n)))
    took = time.monotonic() - started
    handshake_s.sort()
    figure("connections", n)
    figure("max_open_at_once", max_open)
    figure("requests_ok", requests_ok)
    figure("errors", len(errors))
    figure("seconds", f"{took:.1f}")
    if handshake_s:
        figure("handshake_p50_ms", f"{1000 * handshake_s[len(handshake_s) // 2]:.0f}")
        figure("handshake_max_ms", f"{1000 * handshake_s[-1]:.0f}")
        figure("handshakes_over_1s", sum(1 for s in handshake_s if s > 1.0))
    drops = host_listen_drops_since(drops_before)
    if drops is not None:
        figure("host_listen_drops", drops)
    report(
        f"{n} connections open at once, {args.requests} PUT+GET each",
        not errors and max_open == n,
        f"max open {max_open}, {requests_ok} requests ok in {took:.1f} s, {len(errors)} errors: {errors[:3]}",
    )


# ---------------------------------------------------------------- hostile


def raw_tls_socket(args, rcvbuf=None):
    """A blocking TLS socket; `rcvbuf` shrinks the receive buffer first."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(60)
    sock.connect((args.host, args.port))
    return args.tls.wrap_socket(sock, server_hostname="localhost")


def closed_by_server(sock, wait_s):
    """Reads (discarding) until the server closes or resets; the seconds it
    took, or None if still open after `wait_s`. Also returns the first bytes."""
    start = time.monotonic()
    first = b""
    while True:
        left = wait_s - (time.monotonic() - start)
        if left <= 0:
            return None, first
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return None, first
        except (OSError, ssl.SSLError):
            return time.monotonic() - start, first
        if not data:
            return time.monotonic() - start, first
        if len(first) < 200:
            first += data[: 200 - len(first)]


def hostile_check(name, bound_s, fn):
    """Runs one hostile client (blocking, in a thread); ok if the server
    closed it within `bound_s` seconds of its last byte."""
    try:
        took, detail = fn()
    except Exception as error:  # noqa: BLE001
        report(name, False, f"{type(error).__name__}: {error}")
        return
    if took is None:
        report(name, False, f"still open {bound_s:.0f} s after its last byte; {detail}")
    else:
        figure(f"closed_after_s {name}", f"{took:.1f}")
        report(name, took <= bound_s, f"closed {took:.1f} s after its last byte (bound {bound_s:.0f} s); {detail}")


def head_bytes(args, path, method="GET", extra=""):
    return (
        f"{method} {path} HTTP/1.1\r\nHost: localhost:{args.port}\r\nx-api-key: {args.key}\r\n{extra}\r\n"
    ).encode()


async def hostile(args):
    """Hostile clients in threads, a normal client on the event loop."""
    await ensure_bucket(args)
    drops_before = host_listen_drops()
    big = content(args.seed, 1, args.big_bytes)
    conn = await Http(args).open()
    status, _, body = await conn.request("PUT", f"/{BUCKET}/hostile/big", big, timeout=600)
    await conn.close()
    if status != 200:
        report("setup: PUT the large object", False, f"{status} {error_code(body)}")
        return
    bound = args.read_timeout + args.slack
    loop = asyncio.get_running_loop()

    def silent_head():
        sock = raw_tls_socket(args)
        sock.sendall(head_bytes(args, f"/{BUCKET}/hostile/big")[:40])
        took, first = closed_by_server(sock, bound + 5)
        return took, f"answer {first[:12]!r}"

    def drip_head():
        # One byte every `drip` seconds: each read succeeds well inside the
        # read timeout, so only a deadline on the whole head ends it.
        sock = raw_tls_socket(args)
        request = head_bytes(args, f"/{BUCKET}/hostile/big", extra="x-pad: " + "a" * 4000 + "\r\n")
        start = time.monotonic()
        sent = 0
        sock.settimeout(0.1)
        while time.monotonic() - start < bound + 5 and sent < len(request):
            try:
                sock.sendall(request[sent : sent + 1])
            except (OSError, ssl.SSLError):
                return time.monotonic() - start, f"send failed after {sent} B (closed by the server)"
            sent += 1
            try:
                if sock.recv(4096) == b"":
                    return time.monotonic() - start, f"closed after {sent} B"
            except (socket.timeout, TimeoutError, ssl.SSLWantReadError):
                pass
            except (OSError, ssl.SSLError):
                return time.monotonic() - start, f"reset after {sent} B"
            time.sleep(args.drip)
        return None, f"{sent} B sent, one every {args.drip} s, over {time.monotonic() - start:.0f} s"

    def unfinished_body():
        sock = raw_tls_socket(args)
        sock.sendall(head_bytes(args, f"/{BUCKET}/hostile/unfinished", "PUT", "Content-Length: 1048576\r\n"))
        sock.sendall(b"x" * 65536)
        took, first = closed_by_server(sock, bound + 5)
        return took, f"answer {first[:12]!r}"

    def stalled_handshake():
        sock = socket.create_connection((args.host, args.port), timeout=60)
        sock.sendall(b"\x16\x03\x01\x02\x00")  # a TLS record header, then nothing
        start = time.monotonic()
        sock.settimeout(bound + 5)
        try:
            data = sock.recv(4096)
            while data:
                data = sock.recv(4096)
        except (socket.timeout, TimeoutError):
            return None, "no close"
        except OSError:
            pass
        return time.monotonic() - start, ""

    def stops_reading():
        # Reads the response head only, then nothing: the server's writes
        # stall on a zero window. Closed when its access-log line appears
        # (the GET ended with fewer bytes out than the object).
        sock = raw_tls_socket(args, rcvbuf=8192)
        mark = os.path.getsize(args.serial)
        sock.sendall(head_bytes(args, f"/{BUCKET}/hostile/big"))
        sock.settimeout(60)
        got = sock.recv(1024)
        start = time.monotonic()
        wait = bound + 5 if not args.long else max(bound + 5, 160)
        while time.monotonic() - start < wait:
            with open(args.serial, "rb") as log:
                log.seek(mark)
                for line in log.read().decode("utf-8", "replace").splitlines():
                    if '"op":"GetObject"' in line and '"key":"hostile/big"' in line:
                        took = time.monotonic() - start
                        out = line[line.find('"bytes_out"') :][:40]
                        sock.close()
                        return took, f"server log: {out}"
            time.sleep(0.5)
        sock.close()
        return None, f"head {got[:12]!r}, no GetObject log line"

    from concurrent.futures import ThreadPoolExecutor

    loop.set_default_executor(ThreadPoolExecutor(max_workers=args.slowloris + 8))
    hostile_done = asyncio.Event()
    latencies = []
    normal_errors = []

    async def normal_client():
        seq = 0
        while not hostile_done.is_set():
            seq += 1
            t = time.monotonic()
            try:
                c = await Http(args).open(timeout=30)
                data = content(args.seed, 100000 + seq, 4096)
                status, _, body = await c.request("PUT", f"/{BUCKET}/hostile/normal-{seq}", data, timeout=30)
                ok = status == 200
                status, _, body = await c.request("GET", f"/{BUCKET}/hostile/normal-{seq}", timeout=30)
                ok = ok and status == 200 and body == data
                await c.close()
                if not ok:
                    normal_errors.append(f"request {seq}: {status}")
            except Exception as error:  # noqa: BLE001
                normal_errors.append(f"request {seq}: {type(error).__name__}: {error}")
            latencies.append(time.monotonic() - t)
            await asyncio.sleep(0.5)

    normal = asyncio.ensure_future(normal_client())
    slowloris = [loop.run_in_executor(None, drip_head) for _ in range(args.slowloris)]
    checks = [
        ("silent after a partial head", silent_head),
        ("unfinished body (64 KiB of 1 MiB)", unfinished_body),
        ("stalled TLS handshake", stalled_handshake),
        ("stops reading a large GET", stops_reading),
    ]
    futures = [loop.run_in_executor(None, lambda f=f, n=n: hostile_check(n, bound, f)) for n, f in checks]

    drips = await asyncio.gather(*slowloris, return_exceptions=True)
    await asyncio.gather(*futures)
    hostile_done.set()
    await normal
    fine = [d for d in drips if isinstance(d, tuple)]
    closed = [d for d in fine if d[0] is not None and d[0] <= bound]
    report(
        f"slowloris x{args.slowloris} (a head byte every {args.drip} s)",
        len(closed) == args.slowloris,
        f"{len(closed)} of {args.slowloris} closed within {bound:.0f} s; e.g. {(fine or drips)[:1]}",
    )
    # The unfinished PUT must have left nothing behind.
    c = await Http(args).open()
    status, _, _ = await c.request("HEAD", f"/{BUCKET}/hostile/unfinished")
    await c.close()
    report("unfinished body left no object", status == 404, f"HEAD {status}")
    latencies.sort()
    figure("normal_requests", len(latencies))
    if latencies:
        figure("normal_p50_s", f"{latencies[len(latencies) // 2]:.2f}")
        figure("normal_max_s", f"{latencies[-1]:.2f}")
    # The normal client connects anew each round: a connect dropped at
    # QEMU's port forward (see host_listen_drops) costs it 1, 3, 7 ... s.
    drops = host_listen_drops_since(drops_before)
    drops = "?" if drops is None else drops
    figure("host_listen_drops", drops)
    report(
        "a normal client served meanwhile (PUT+GET every 0.5 s)",
        latencies and not normal_errors and latencies[-1] < args.normal_max_s,
        f"{len(latencies)} rounds, max {latencies[-1] if latencies else 0:.2f} s "
        f"(bound {args.normal_max_s} s), errors {normal_errors[:3]}, host listen drops {drops}",
    )


# ---------------------------------------------------------------- crash rounds

SIZES = [0, 1, 100, 4096, 65536, 65537, 300_000, 1 << 20, (3 << 20) + 7]


async def write(args):
    """PUTs of varied sizes and unique contents until killed. Appends to
    `--log`: `A round seq key size sha256` before a PUT is sent, `K round seq`
    once it returned 200. A key is overwritten now and then."""
    await ensure_bucket(args)
    fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    rng = random.Random(args.seed)
    keys = []
    seq = 0

    def log(line):
        os.write(fd, (line + "\n").encode())

    async def writer():
        nonlocal seq
        conn = None
        while True:
            seq += 1
            mine = seq
            size = rng.choice(SIZES)
            if keys and rng.random() < 0.25:
                key = rng.choice(keys)
            else:
                key = f"crash/r{args.round}/{mine}"
                keys.append(key)
            data = content(args.seed, mine, size)
            log(f"A {args.round} {mine} {key} {size} {sha(data)}")
            try:
                if conn is None:
                    conn = await Http(args).open(timeout=30)
                status, _, _ = await conn.request("PUT", f"/{BUCKET}/{key}", data, timeout=60)
            except Exception:  # noqa: BLE001 - the VM is being killed
                conn = None
                await asyncio.sleep(0.2)
                continue
            if status == 200:
                log(f"K {args.round} {mine}")

    await asyncio.gather(*(writer() for _ in range(args.writers)))


async def verify(args):
    """Checks every key of the log. A key may hold the content of any PUT to
    it that was not acknowledged (in flight at the kill), or of an
    acknowledged one that no later acknowledged PUT superseded (one sent
    after it was acknowledged); it may be absent only if no PUT to it was
    acknowledged. `--observed` keeps what each key held: a later boot must
    read the same (nothing read once may change or vanish)."""
    attempts = {}  # key -> [(round, seq, sha, line number of A)]
    ack_line = {}  # (round, seq) -> line number of K
    with open(args.log) as f:
        for number, line in enumerate(f):
            parts = line.split()
            if len(parts) == 6 and parts[0] == "A":
                _, rnd, seq, key, _size, digest = parts
                attempts.setdefault(key, []).append((int(rnd), int(seq), digest, number))
            elif len(parts) == 3 and parts[0] == "K":
                ack_line[(int(parts[1]), int(parts[2]))] = number
    acked = ack_line
    observed = {}
    if os.path.exists(args.observed):
        with open(args.observed) as f:
            observed = json.load(f)
    failures = []
    checked_acked = 0
    conn = await Http(args).open()
    for key, tries in sorted(attempts.items()):
        acked_sent = [t[3] for t in tries if (t[0], t[1]) in acked]
        allowed = set()
        for rnd, seq, digest, _ in tries:
            done = acked.get((rnd, seq))
            if done is None or not any(later > done for later in acked_sent):
                allowed.add(digest)
        if not acked_sent:
            allowed.add("absent")
        else:
            checked_acked += 1
        status, _, body = await conn.request("GET", f"/{BUCKET}/{key}", timeout=120)
        got = sha(body) if status == 200 else "absent" if status == 404 else f"status {status}"
        if got not in allowed:
            known = {t[2]: t for t in tries}
            what = f"PUT seq {known[got][1]}" if got in known else got
            failures.append(f"{key}: read {what} ({len(body)} B), allowed {sorted(allowed)[:3]}")
        elif key in observed and observed[key] != got:
            failures.append(f"{key}: read {got[:12]}, an earlier boot read {observed[key][:12]}")
        observed[key] = got
    await conn.close()
    with open(args.observed, "w") as f:
        json.dump(observed, f)
    rounds = {}
    for tries in attempts.values():
        for rnd, seq, _, _ in tries:
            a, k = rounds.get(rnd, (0, 0))
            rounds[rnd] = (a + 1, k + ((rnd, seq) in acked))
    for rnd, (a, k) in sorted(rounds.items()):
        figure(f"round {rnd}", f"{a} PUTs sent, {k} acknowledged")
    figure("keys_checked", len(attempts))
    figure("keys_with_acked_put", checked_acked)
    report(
        f"after reboot: {len(attempts)} keys, {checked_acked} with an acknowledged PUT",
        not failures,
        f"{len(failures)} wrong: {failures[:3]}",
    )


# ---------------------------------------------------------------- disk full


async def fill(args):
    """PUTs of `--object-bytes` until the server refuses one; then checks
    the error, reads everything back, deletes every other object and PUTs
    again into the freed space. Writes the final state to `--state`."""
    await ensure_bucket(args)
    conn = await Http(args).open()
    stored = {}  # key -> sha
    refusal = None
    seq = 0
    started = time.monotonic()
    while seq < 100000:
        seq += 1
        key = f"fill/{seq}"
        data = content(args.seed, seq, args.object_bytes)
        try:
            status, headers, body = await conn.request("PUT", f"/{BUCKET}/{key}", data, timeout=300)
        except Exception as error:  # noqa: BLE001
            refusal = (None, f"{type(error).__name__}: {error}", "")
            break
        if headers.get("connection", "").lower() == "close":
            await conn.close()
            conn = await Http(args).open()
        if status == 200:
            stored[key] = sha(data)
            continue
        refusal = (status, error_code(body), body.decode("utf-8", "replace")[:300])
        break
    took = time.monotonic() - started
    stored_bytes = len(stored) * args.object_bytes
    figure("fill_objects", len(stored))
    figure("fill_mib", f"{stored_bytes / (1 << 20):.0f}")
    figure("fill_seconds", f"{took:.1f}")
    figure("refusal", refusal[:2] if refusal else None)
    status, code = (refusal or (None, None, None))[:2]
    report(
        "PUT refused with a clear S3 error when the disk is full",
        status == 507 and code == "StorageFull",
        f"after {len(stored)} x {args.object_bytes} B: {refusal[:2] if refusal else 'never refused'}",
    )
    if refusal and refusal[0] is None:
        conn = await Http(args).open()

    async def check_all(what):
        bad = []
        for key, digest in stored.items():
            st, _, body = await conn.request("GET", f"/{BUCKET}/{key}", timeout=120)
            if st != 200 or sha(body) != digest:
                bad.append(f"{key}: {st}, {len(body)} B")
        report(what, not bad, f"{len(stored)} objects; {len(bad)} wrong: {bad[:3]}")

    await check_all("everything stored before the refusal reads back intact")
    # A refused PUT must not have left an object behind.
    st, _, _ = await conn.request("HEAD", f"/{BUCKET}/fill/{seq}")
    report("the refused PUT left no object", st == 404, f"HEAD fill/{seq}: {st}")
    # Small writes when full: what clients do next (a marker, a delete).
    st, _, body = await conn.request("PUT", f"/{BUCKET}/fill-small", b"x" * 100)
    figure("small_put_when_full", f"{st} {error_code(body)}")
    if st == 200:
        stored["fill-small"] = sha(b"x" * 100)
    deleted = []
    delete_errors = []
    for key in sorted(k for k in stored if k.startswith("fill/"))[::2]:
        st, _, body = await conn.request("DELETE", f"/{BUCKET}/{key}")
        if st == 204:
            deleted.append(key)
        else:
            delete_errors.append(f"{key}: {st} {error_code(body)}")
    for key in deleted:
        del stored[key]
    report(
        "DELETE works on a full disk",
        deleted and not delete_errors,
        f"{len(deleted)} deleted, errors {delete_errors[:3]}",
    )
    again = 0
    refill_refusal = None
    for i in range(len(deleted)):
        key = f"refill/{i}"
        data = content(args.seed + 1, i, args.object_bytes)
        st, headers, body = await conn.request("PUT", f"/{BUCKET}/{key}", data, timeout=300)
        if headers.get("connection", "").lower() == "close":
            await conn.close()
            conn = await Http(args).open()
        if st != 200:
            refill_refusal = (st, error_code(body))
            break
        stored[key] = sha(data)
        again += 1
    figure("freed_objects", len(deleted))
    figure("rewritten_objects", again)
    report(
        "space freed by deletes is usable again",
        again >= max(1, len(deleted) // 2),
        f"{again} of {len(deleted)} objects of {args.object_bytes} B written again; then {refill_refusal}",
    )
    # The survivors are read again after the reboot (fill-verify).
    refilled = {k: v for k, v in stored.items() if k.startswith("refill/")}
    bad = []
    for key, digest in refilled.items():
        st, _, body = await conn.request("GET", f"/{BUCKET}/{key}", timeout=120)
        if st != 200 or sha(body) != digest:
            bad.append(f"{key}: {st}, {len(body)} B")
    report("the objects written into freed space read back intact", not bad, f"{len(refilled)}; wrong: {bad[:3]}")
    await conn.close()
    with open(args.state, "w") as f:
        json.dump(stored, f)


async def fill_verify(args):
    with open(args.state) as f:
        stored = json.load(f)
    conn = await Http(args).open()
    bad = []
    for key, digest in stored.items():
        st, _, body = await conn.request("GET", f"/{BUCKET}/{key}", timeout=120)
        if st != 200 or sha(body) != digest:
            bad.append(f"{key}: {st}, {len(body)} B")
    st, _, body = await conn.request("PUT", f"/{BUCKET}/after-reboot", b"y" * 4096)
    await conn.close()
    report("after kill -9 and reboot: everything intact", not bad, f"{len(stored)} objects; {len(bad)} wrong: {bad[:3]}")
    report("after reboot: a PUT succeeds", st == 200, f"{st} {error_code(body)}")


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("ca")
    parser.add_argument("key")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--handshake-parallel", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2)
    parser.add_argument("--object-bytes", type=int, default=1024)
    parser.add_argument("--settle-timeout", type=float, default=600)
    parser.add_argument("--open-timeout", type=float, default=60)
    parser.add_argument("--read-timeout", type=float, default=30)
    parser.add_argument("--slack", type=float, default=15)
    parser.add_argument("--drip", type=float, default=2)
    parser.add_argument("--slowloris", type=int, default=10)
    parser.add_argument("--big-bytes", type=int, default=16 << 20)
    parser.add_argument("--normal-max-s", type=float, default=10)
    parser.add_argument("--serial")
    parser.add_argument("--long", action="store_true")
    parser.add_argument("--log")
    parser.add_argument("--observed")
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--state")
    args = parser.parse_args()
    args.tls = ssl.create_default_context(cafile=args.ca)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    commands = {
        "concurrent": concurrent,
        "hostile": hostile,
        "write": write,
        "verify": verify,
        "fill": fill,
        "fill-verify": fill_verify,
    }
    asyncio.run(commands[args.command](args))


if __name__ == "__main__":
    sys.exit(main())
