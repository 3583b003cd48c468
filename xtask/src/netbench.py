"""Clients (and the Linux-side sink) for `cargo xtask bench net`.

Every loop is bounded in bytes or time and every socket has a timeout, so a
stuck server ends a run with an error rather than a hang.

  netbench.py bulk HOST PORT BYTES CONNS [CAFILE [batched]]
                                                    -> prints MB/s (TLS if CAFILE;
                                                       batched: records per write)
  netbench.py handshakes HOST PORT SECONDS THREADS CAFILE -> prints handshakes/s
  netbench.py health HOST PORT CAFILE               -> checks GET /health
  netbench.py sink HOST PORT                        -> reads and discards, forever
"""

import socket
import ssl
import sys
import threading
import time

TIMEOUT_S = 30
CHUNK = bytes(256 * 1024)


def tls_context(cafile):
    # The bench certificate names localhost: verify the chain, not the name.
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False
    return context


def run_threads(count, target):
    errors = []

    def guarded():
        try:
            target()
        except Exception as error:  # reported below, fails the run
            errors.append(error)

    threads = [threading.Thread(target=guarded) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        sys.exit(f"netbench: {errors[0]!r}")


class BatchedTls:
    """TLS through an in-memory BIO, as asyncio does it: one `sendall` carries
    every record of a 256 KiB write. (`ssl.SSLSocket` writes each 16 KiB
    record with its own syscall, and on these VMs that per-write cost, not
    the crypto, bounds one connection: plain TCP in 16 KiB writes is as slow.)
    """

    def __init__(self, sock, context):
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing)
        self._until_done(self.tls.do_handshake)

    def _flush(self):
        pending = self.outgoing.read()
        if pending:
            self.sock.sendall(pending)

    def _until_done(self, step):
        while True:
            try:
                result = step()
                self._flush()
                return result
            except ssl.SSLWantReadError:
                self._flush()
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("peer closed during TLS")
                self.incoming.write(data)

    def sendall(self, data):
        view = memoryview(data)
        while view:
            view = view[self.tls.write(view):]
        self._flush()

    def unwrap(self):
        self._until_done(self.tls.unwrap)
        return self.sock


def bulk(host, port, total_bytes, conns, cafile=None, batched=False):
    context = tls_context(cafile) if cafile else None
    per_conn = total_bytes // conns

    def send():
        sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
        if context:
            sock = BatchedTls(sock, context) if batched else context.wrap_socket(sock)
        view = memoryview(CHUNK)
        left = per_conn
        while left:
            n = min(left, len(CHUNK))
            sock.sendall(view[:n])
            left -= n
        if context:
            sock = sock.unwrap()  # close_notify both ways
        # Wait for the server's FIN: everything was read, not just sent.
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):
            pass
        sock.close()

    start = time.perf_counter()
    run_threads(conns, send)
    elapsed = time.perf_counter() - start
    print(f"{per_conn * conns / elapsed / 1e6:.1f}")


def get_health(context, host, port):
    sock = context.wrap_socket(socket.create_connection((host, port), timeout=TIMEOUT_S))
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: rustcore\r\n\r\n")
    response = b""
    while True:
        data = sock.recv(4096)
        if not data:
            break
        response += data
    sock.close()
    return response


def handshakes(host, port, seconds, threads, cafile):
    context = tls_context(cafile)
    deadline = time.perf_counter() + seconds
    counts = []

    def loop():
        done = 0
        while time.perf_counter() < deadline:
            if not get_health(context, host, port).startswith(b"HTTP/1.1 200"):
                raise RuntimeError("bad health response")
            done += 1
        counts.append(done)

    start = time.perf_counter()
    run_threads(threads, loop)
    print(f"{sum(counts) / (time.perf_counter() - start):.1f}")


def health(host, port, cafile):
    response = get_health(tls_context(cafile), host, port)
    if not response.startswith(b"HTTP/1.1 200") or b'"status":"ok"' not in response:
        sys.exit(f"netbench: unexpected health response {response!r}")
    print(response.split(b"\r\n\r\n", 1)[1].decode().strip())


def sink(host, port):
    listener = socket.create_server((host, port), backlog=64)
    print("netbench sink ready", flush=True)

    def drain(conn):
        buf = bytearray(1 << 20)
        with conn:
            while conn.recv_into(buf):
                pass

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=drain, args=(conn,), daemon=True).start()


def main(argv):
    command, host, port, *rest = argv
    port = int(port)
    if command == "bulk":
        cafile = rest[2] if len(rest) > 2 else None
        bulk(host, port, int(rest[0]), int(rest[1]), cafile, batched=rest[3:] == ["batched"])
    elif command == "handshakes":
        handshakes(host, port, float(rest[0]), int(rest[1]), rest[2])
    elif command == "health":
        health(host, port, rest[0])
    elif command == "sink":
        sink(host, port)
    else:
        sys.exit(f"netbench: unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
