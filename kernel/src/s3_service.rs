//! The S3 service of the appliance: opens the store on the data disk
//! (formatting it only when it is blank), loads the keys and serves S3 over
//! TLS on port 443.

use alloc::rc::Rc;
use alloc::sync::Arc;

use fs::layout::SuperblockError;
use fs::store::{FormatOptions, Store, StoreError};
use runtime::executor::Spawner;
use runtime::timers::Timers;
use services::s3::auth::{KeyAuth, StaticKeys};
use services::s3::server::listen::{ListenStats, serve_tls};
use services::s3::server::{S3Config, S3Service};
use services::{error, info, warn};
use storage::block::{BlockDevice, IoBuf};

use crate::arch::interrupts;
use crate::network::{HTTPS_PORT, LISTEN_BACKLOG, Running};
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

/// Starts the service in the background; logs `s3 listening` when it serves.
pub fn start<D: InterruptBlockDevice + 'static>(
    boot: &BootInfo,
    disk: D,
    network: &Running,
    spawner: &Spawner,
    timers: &Timers,
) {
    let archive = boot.boot_archive().map(services::bootfs::Archive::new);
    let mut keys = StaticKeys::new();
    match archive.as_ref().and_then(|a| a.get("keys/admin")).and_then(StaticKeys::parse_admin_file) {
        Some((id, secret)) => {
            info!("security", "admin key loaded from the boot archive"; access_key = &*id);
            keys.add(&id, secret.as_bytes(), true);
        }
        None => warn!("security", "no keys/admin in the boot archive: nobody can authenticate"),
    }
    drop(spawner.spawn(disk.reaper(&interrupts::EVENTS[usize::from(disk.vector())])));
    let listener = match network.stack.listen(HTTPS_PORT, LISTEN_BACKLOG) {
        Ok(listener) => listener,
        Err(e) => {
            error!("s3", "cannot listen: {:?}", e);
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
                return;
            }
        };
        let service =
            Rc::new(S3Service::new(store, KeyAuth { keys }, S3Config::default(), now_unix_ms, rng::next_u64()));
        info!("s3", "s3 listening"; port = u32::from(HTTPS_PORT));
        serve_tls(service, listener, tls, timers_inner, spawner_inner, Arc::new(ListenStats::default())).await;
    }));
}
