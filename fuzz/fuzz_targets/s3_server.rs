//! The whole S3 server on a RAM disk: arbitrary bytes on a connection (after
//! a few well-formed requests that create a bucket and objects) never panic,
//! always end, and leave the store consistent.
#![no_main]

use std::sync::Arc;

use fs::store::{FormatOptions, Store};
use libfuzzer_sys::fuzz_target;
use runtime::clock::{Clock, FakeClock};
use runtime::executor::{Executor, Platform};
use runtime::timers::Timers;
use services::s3::S3ErrorCode;
use services::s3::http::RequestHead;
use services::s3::server::{
    Authenticated, Authenticator, BodyCheck, Connection, ConnectionError, Principal, S3Config, S3Service,
};
use storage::block::RamDisk;

struct Sim(Arc<FakeClock>);

impl Platform for Sim {
    fn poll_events(&mut self) {}
    fn idle(&mut self, deadline_ns: Option<u64>) {
        if let Some(deadline) = deadline_ns {
            self.0.set(deadline.max(self.0.now_ns()));
        }
    }
}

/// Everyone is the admin: the fuzzer explores the handlers, not SigV4
/// (which has its own target).
struct Admin;

impl Authenticator for Admin {
    fn authenticate(&self, _: &RequestHead, _: u64) -> Result<Authenticated, S3ErrorCode> {
        Ok(Authenticated { principal: Principal { access_key: "admin".into(), admin: true }, body: BodyCheck::None })
    }
}

struct Bytes(Vec<u8>, usize);

impl Connection for Bytes {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ConnectionError> {
        let n = buf.len().min(self.0.len() - self.1).min(977);
        buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
        self.1 += n;
        Ok(n)
    }
    async fn write_all(&mut self, _: &[u8]) -> Result<(), ConnectionError> {
        Ok(())
    }
}

const SETUP: &[u8] = b"PUT /fz HTTP/1.1\r\nHost: localhost\r\n\r\nPUT /fz/a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabcPUT /fz/b/c HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\nx";

fuzz_target!(|data: &[u8]| {
    let clock = Arc::new(FakeClock::new(1));
    let timers = Timers::new(clock.clone());
    let exec = Executor::new();
    let mut platform = Sim(clock);
    exec.block_on(
        async {
            let options = FormatOptions { min_part_bytes: 4096, ..FormatOptions::default() };
            let store = Store::format(RamDisk::new(512, 16 * 2048), options).await.unwrap();
            let service = S3Service::new(store, Admin, S3Config::default(), || 1_764_000_000_000, 1);
            service.serve_connection(&mut Bytes(SETUP.to_vec(), 0), &timers).await;
            service.serve_connection(&mut Bytes(data.to_vec(), 0), &timers).await;
            let check = service.store.check().await;
            assert!(check.problems.is_empty(), "{:?}", check.problems);
        },
        &mut platform,
        &timers,
    );
});
