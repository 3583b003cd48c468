//! The S3 service of the appliance: opens the store on the data disk
//! (formatting it only when it is blank), loads the keys and serves S3 over
//! TLS on port 443.

use alloc::rc::Rc;
use alloc::sync::Arc;

use alloc::string::String;
use fs::layout::SuperblockError;
use fs::store::{FormatOptions, Store, StoreError};
use runtime::executor::Spawner;
use runtime::timers::Timers;
use security::keystore::NodeKey;
use services::s3::auth::{KeyAuth, StaticKeys};
use services::s3::keys::{Bootstrap, StoreKeys};
use services::s3::server::listen::{ListenStats, serve_admin_tls, serve_tls};
use services::s3::server::{S3Config, S3Service};
use services::{error, info};
use storage::block::{BlockDevice, IoBuf};

use crate::arch::interrupts;
use crate::network::{ADMIN_PORT, HTTPS_PORT, LISTEN_BACKLOG, Running};
use crate::pvh::BootInfo;
use crate::selftest::InterruptBlockDevice;
use crate::{rng, time};

fn now_unix_ms() -> u64 {
    time::unix_ns().unwrap_or(0) / 1_000_000
}

/// Whether the first two pages (both superblock copies) are all zeros: a
/// disk never written. Anything else that is not a volume is left alone.
async fn is_blank<D: BlockDevice>(disk: &D) -> bool {
    let (result, buf) = disk.read(0, IoBuf::zeroed(8192)).await;
    result.is_ok() && buf.as_slice().iter().all(|&b| b == 0)
}

async fn open_or_format<D: BlockDevice>(disk: Arc<D>) -> Result<Store<Arc<D>>, StoreError> {
    match Store::open(disk.clone()).await {
        Ok((store, report)) => {
            info!("storage", "store opened"; generation = report.generation, replayed_batches = report.replayed_batches, replayed_records = report.replayed_records, free_pages = report.free_pages);
            Ok(store)
        }
        Err(StoreError::NotFormatted(SuperblockError::BadMagic)) if is_blank(&*disk).await => {
            let mut volume_id = [0u8; 16];
            rng::fill(&mut volume_id);
            let options = FormatOptions { volume_id, now_ms: now_unix_ms(), ..FormatOptions::default() };
            let store = Store::format(disk, options).await?;
            info!("storage", "blank disk formatted"; free_pages = store.free_pages());
            Ok(store)
        }
        Err(error) => Err(error),
    }
}

fn random(out: &mut [u8]) {
    rng::fill(out);
}

/// The keys from the boot archive: the node key and the first admin keys.
fn boot_keys(boot: &BootInfo) -> (Option<NodeKey>, Bootstrap) {
    let archive = boot.boot_archive().map(services::bootfs::Archive::new);
    let file = |name: &str| archive.as_ref().and_then(|a| a.get(name));
    let node_key = file("keys/node.key").and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()).map(NodeKey::new);
    let admin_sigv4 = file("keys/admin").and_then(StaticKeys::parse_admin_file);
    let admin_token = file("keys/admin-token")
        .and_then(|bytes| core::str::from_utf8(bytes).ok())
        .map(|text| String::from(text.trim()));
    (node_key, Bootstrap { admin_sigv4, admin_token })
}

/// Starts the service in the background; logs `s3 listening` when it
/// serves. Until then (and for good if the disk cannot be opened) the admin
/// port answers health checks only.
pub fn start<D: InterruptBlockDevice + 'static>(
    boot: &BootInfo,
    disk: D,
    network: &Running,
    spawner: &Spawner,
    timers: &Timers,
) {
    let (node_key, bootstrap) = boot_keys(boot);
    let Some(node_key) = node_key else {
        error!("security", "no keys/node.key (32 bytes) in the boot archive: S3 is not served");
        network.serve_health_only(spawner, timers);
        return;
    };
    drop(spawner.spawn(disk.reaper(&interrupts::EVENTS[usize::from(disk.vector())])));
    let (listener, admin_listener) =
        match (network.stack.listen(HTTPS_PORT, LISTEN_BACKLOG), network.stack.listen(ADMIN_PORT, LISTEN_BACKLOG)) {
            (Ok(s3), Ok(admin)) => (s3, admin),
            _ => {
                error!("s3", "cannot listen on the S3 and admin ports");
                return;
            }
        };
    let tls = network.tls.clone();
    let (spawner_inner, timers_inner) = (spawner.clone(), timers.clone());
    drop(spawner.spawn(async move {
        let store = match open_or_format(Arc::new(disk)).await {
            Ok(store) => store,
            Err(e) => {
                error!("storage", "the data disk cannot be opened; S3 is not served: {:?}", e);
                serve_health(admin_listener, tls, timers_inner, spawner_inner).await;
                return;
            }
        };
        let keys = match StoreKeys::open(&store, node_key, &bootstrap, random, now_unix_ms()).await {
            Ok(keys) => keys,
            Err(e) => {
                error!("security", "the keystore cannot be opened; S3 is not served: {:?}", e);
                serve_health(admin_listener, tls, timers_inner, spawner_inner).await;
                return;
            }
        };
        let key_count = keys.with(|k| k.len());
        info!("security", "keystore loaded"; keys = key_count as u64, unreadable = keys.unreadable as u64);
        let service =
            Rc::new(S3Service::new(store, KeyAuth { keys }, S3Config::default(), now_unix_ms, rng::next_u64()));
        drop(spawner_inner.spawn(serve_admin_tls(
            service.clone(),
            admin_listener,
            tls.clone(),
            timers_inner.clone(),
            spawner_inner.clone(),
            random,
        )));
        info!("s3", "s3 listening"; port = u32::from(HTTPS_PORT), admin_port = u32::from(ADMIN_PORT));
        serve_tls(service, listener, tls, timers_inner, spawner_inner, Arc::new(ListenStats::default())).await;
    }));
}

async fn serve_health(
    listener: net::tcp::TcpListener,
    tls: Arc<net::tls::rustls::ServerConfig>,
    timers: Timers,
    spawner: Spawner,
) {
    let stats = Arc::new(services::health::Stats::default());
    services::health::serve(listener, tls, timers, spawner, services::health::Limits::default(), stats).await;
}
