//! CPU cost of the TCP stack: two stacks in one thread over a perfect
//! `SimLink`, driven by a busy loop on the real clock (no sleeping, so the
//! figures are the stack's own cost, both ends included).
//!
//! `cargo bench -p net --no-default-features --features tcp --bench tcp`

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use net::ethernet::{SimLink, SimLinkConfig, SimPort};
use net::ip::{IpAddress, IpConfig, IpEndpoint, Ipv4Address, Ipv4Cidr};
use net::tcp::{Stack, StackOptions};
use runtime::executor::Executor;

const PORT: u16 = 8080;

struct Bench {
    exec: Executor,
    a: Stack,
    b: Stack,
    port_a: SimPort,
    port_b: SimPort,
    start: Instant,
}

impl Bench {
    fn new(options: StackOptions) -> Bench {
        let (port_a, port_b) = SimLink::pair(SimLinkConfig { inspect_frames: false, ..SimLinkConfig::default() });
        let config =
            |last| IpConfig::Static { address: Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, last), 24), gateway: None };
        let a = Stack::new([2, 0, 0, 0, 0, 1], config(1), options, 0, 1);
        let b = Stack::new([2, 0, 0, 0, 0, 2], config(2), options, 0, 2);
        Bench { exec: Executor::new(), a, b, port_a, port_b, start: Instant::now() }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs tasks and polls both stacks until `done` is set.
    fn pump(&mut self, done: &Cell<bool>) {
        while !done.get() {
            self.exec.run_ready();
            let now_ns = self.now_ns();
            self.a.poll(&mut self.port_a, now_ns);
            self.b.poll(&mut self.port_b, now_ns);
        }
    }

    fn server_endpoint() -> IpEndpoint {
        IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2)), PORT)
    }
}

/// Moves `total_bytes` from A to B; returns MB/s.
fn bulk(options: StackOptions, total_bytes: usize) -> f64 {
    let mut bench = Bench::new(options);
    let listener = bench.b.listen(PORT, 1).unwrap();
    let done = Rc::new(Cell::new(false));
    let server_done = done.clone();
    bench.exec.spawn(async move {
        let stream = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut received = 0;
        loop {
            let read = stream.read(&mut buf).await.unwrap();
            if read == 0 {
                break;
            }
            received += read;
        }
        assert_eq!(received, total_bytes);
        server_done.set(true);
    });
    let a = bench.a.clone();
    bench.exec.spawn(async move {
        let stream = a.connect(Bench::server_endpoint()).await.unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        let mut sent = 0;
        while sent < total_bytes {
            let n = chunk.len().min(total_bytes - sent);
            stream.write_all(&chunk[..n]).await.unwrap();
            sent += n;
        }
        stream.flush().await.unwrap();
    });
    let start = Instant::now();
    bench.pump(&done);
    total_bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// Round trips of a 100-byte request and a 1000-byte response on one
/// connection while `idle_connections` other connections stay open (they
/// lengthen smoltcp's linear socket lookup). Returns µs per round trip.
fn request_response(options: StackOptions, idle_connections: usize, round_trips: usize) -> f64 {
    let mut bench = Bench::new(options);
    let listener = Rc::new(bench.b.listen(PORT, 64).unwrap());
    let idle_ready = Rc::new(Cell::new(false));
    let done = Rc::new(Cell::new(false));
    let spawner = bench.exec.spawner();
    let accept_listener = listener.clone();
    bench.exec.spawn(async move {
        loop {
            let stream = accept_listener.accept().await.unwrap();
            spawner.spawn(async move {
                let mut request = [0u8; 100];
                let response = [0x42u8; 1000];
                loop {
                    let mut got = 0;
                    while got < request.len() {
                        let read = stream.read(&mut request[got..]).await.unwrap();
                        if read == 0 {
                            return;
                        }
                        got += read;
                    }
                    stream.write_all(&response).await.unwrap();
                }
            });
        }
    });
    let a = bench.a.clone();
    let ready = idle_ready.clone();
    let idle = Rc::new(std::cell::RefCell::new(Vec::new()));
    let idle_keep = idle.clone();
    bench.exec.spawn(async move {
        for _ in 0..idle_connections {
            let stream = a.connect(Bench::server_endpoint()).await.unwrap();
            idle_keep.borrow_mut().push(stream);
        }
        ready.set(true);
    });
    bench.pump(&idle_ready);
    let a = bench.a.clone();
    let finished = done.clone();
    bench.exec.spawn(async move {
        let stream = a.connect(Bench::server_endpoint()).await.unwrap();
        let request = [0x11u8; 100];
        let mut response = [0u8; 1000];
        for _ in 0..round_trips {
            stream.write_all(&request).await.unwrap();
            let mut got = 0;
            while got < response.len() {
                got += stream.read(&mut response[got..]).await.unwrap();
            }
        }
        finished.set(true);
    });
    let start = Instant::now();
    bench.pump(&done);
    let per_round_trip = start.elapsed().as_secs_f64() * 1e6 / round_trips as f64;
    drop(idle);
    per_round_trip
}

fn main() {
    const BULK_BYTES: usize = 256 << 20;
    for (name, ack_delay) in [("1 ms", Some(Duration::from_millis(1))), ("none", None)] {
        let options = StackOptions { ack_delay, ..StackOptions::default() };
        let mbps = bulk(options, BULK_BYTES);
        println!("bulk 256 MiB, 256 KiB buffers, ack delay {name}: {mbps:.0} MB/s");
        let rtt_us = request_response(options, 0, 10_000);
        println!("request/response 100 B -> 1000 B, ack delay {name}: {rtt_us:.1} us per round trip");
    }
    let small = StackOptions {
        rx_buffer_bytes: 64 * 1024,
        tx_buffer_bytes: 16 * 1024,
        max_connections: 1_200,
        ..StackOptions::default()
    };
    for idle in [0, 1_000] {
        let rtt_us = request_response(small, idle, 10_000);
        println!("request/response with {idle} other open connections: {rtt_us:.1} us per round trip");
    }
}
