//! The boot-time scenario (`services/scenarios/basic.s3`) run on the host,
//! against the real authenticator and store, exactly as the kernel runs it
//! at boot with `selftest=scenario`.

mod common;

use std::sync::Arc;

use common::{SimPlatform, now_ms};
use fs::store::{FormatOptions, Store};
use runtime::clock::FakeClock;
use runtime::executor::Executor;
use runtime::timers::Timers;
use security::keystore::NodeKey;
use services::s3::auth::KeyAuth;
use services::s3::keys::{Bootstrap, StoreKeys};
use services::s3::scenario;
use services::s3::server::{S3Config, S3Service};
use storage::block::RamDisk;

const TOKEN: &str = "rc_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn run(text: &str) -> Result<usize, scenario::Failure> {
    let clock = Arc::new(FakeClock::new(1_000_000));
    let timers = Timers::new(clock.clone());
    let exec = Executor::new();
    let mut platform = SimPlatform { clock };
    let steps = scenario::parse(text).expect("the scenario parses");
    exec.block_on(
        async {
            let store = Store::format(RamDisk::new(512, 128 * 2048), FormatOptions::default()).await.unwrap();
            let bootstrap = Bootstrap { admin_sigv4: None, admin_token: Some(TOKEN.into()) };
            let keys =
                StoreKeys::open(&store, NodeKey::new([1; 32]), &bootstrap, |b| b.fill(7), now_ms()).await.unwrap();
            let service = S3Service::new(store, KeyAuth { keys }, S3Config::default(), now_ms, 5);
            scenario::run(&service, &timers, &steps, TOKEN).await
        },
        &mut platform,
        &timers,
    )
}

#[test]
fn the_boot_scenario_passes_on_the_host() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/basic.s3")).unwrap();
    let steps = run(&text).unwrap_or_else(|failure| panic!("line {}: {}", failure.line, failure.detail));
    assert!(steps >= 30, "{steps} steps");
}

#[test]
fn a_wrong_expectation_fails_with_its_line() {
    let failure = run("PUT /bkt -> 200\nGET /bkt/none -> 200\n").unwrap_err();
    assert_eq!(failure.line, 2);
    assert!(failure.detail.contains("status 404"), "{}", failure.detail);
    let failure = run("PUT /bkt -> 200\nPUT /bkt/k body=abc -> 200\nGET /bkt/k -> 200 body=abd\n").unwrap_err();
    assert_eq!(failure.line, 3);
}
