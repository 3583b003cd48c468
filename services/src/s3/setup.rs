//! Bringing the S3 service up, the same on both platforms: the store opened
//! from the data disk (formatted only when the disk is blank) and the keys
//! named by the boot files (`keys/node.key`, `keys/admin`,
//! `keys/admin-token`: the boot archive in the kernel, a directory on the
//! hosted platform).

use alloc::string::String;
use alloc::sync::Arc;

use fs::layout::SuperblockError;
use fs::store::{FormatOptions, Store, StoreError};
use security::keystore::NodeKey;
use storage::block::{BlockDevice, IoBuf};

use crate::s3::auth::StaticKeys;
use crate::s3::keys::Bootstrap;

/// How the store came up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    Existing { replayed_records: u64 },
    Formatted,
}

/// Whether both superblock pages are all zeros: a disk never written.
/// Anything else that is not a volume is left alone, never formatted.
async fn is_blank<D: BlockDevice>(disk: &D) -> bool {
    let (result, buf) = disk.read(0, IoBuf::zeroed(8192)).await;
    result.is_ok() && buf.as_slice().iter().all(|&b| b == 0)
}

pub async fn open_or_format<D: BlockDevice>(
    disk: Arc<D>,
    volume_id: [u8; 16],
    now_ms: u64,
) -> Result<(Store<Arc<D>>, Opened), StoreError> {
    match Store::open(disk.clone()).await {
        Ok((store, report)) => Ok((store, Opened::Existing { replayed_records: report.replayed_records })),
        Err(StoreError::NotFormatted(SuperblockError::BadMagic)) if is_blank(&*disk).await => {
            let options = FormatOptions { volume_id, now_ms, ..FormatOptions::default() };
            Ok((Store::format(disk, options).await?, Opened::Formatted))
        }
        Err(error) => Err(error),
    }
}

/// The node key and the bootstrap keys from the boot files.
pub fn boot_keys<'a>(file: impl Fn(&str) -> Option<&'a [u8]>) -> (Option<NodeKey>, Bootstrap) {
    let node_key = file("keys/node.key").and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()).map(NodeKey::new);
    let admin_sigv4 = file("keys/admin").and_then(StaticKeys::parse_admin_file);
    let admin_token =
        file("keys/admin-token").and_then(|b| core::str::from_utf8(b).ok()).map(|t| String::from(t.trim()));
    (node_key, Bootstrap { admin_sigv4, admin_token })
}

/// What [`serve`] needs besides the disk.
pub struct ServeOptions {
    pub node_key: NodeKey,
    pub bootstrap: Bootstrap,
    pub tls: Arc<net::tls::rustls::ServerConfig>,
    pub s3: net::tcp::TcpListener,
    pub admin: net::tcp::TcpListener,
    /// Plain-HTTP S3, off unless a listener is given.
    pub plain: Option<net::tcp::TcpListener>,
    pub config: crate::s3::server::S3Config,
    /// Wall clock (ms since the Unix epoch) and random bytes.
    pub now_ms: fn() -> u64,
    pub random: fn(&mut [u8]),
    /// The platform's own lines for `/metrics`.
    pub platform_metrics: Option<crate::s3::server::PlatformMetrics>,
}

/// Opens the store and the keystore and serves S3 and the admin API until
/// the end of time. If either cannot be opened, the admin port answers
/// health checks only and the reason is logged.
pub async fn serve<D: BlockDevice + 'static>(
    disk: D,
    options: ServeOptions,
    timers: runtime::timers::Timers,
    spawner: runtime::executor::Spawner,
) {
    use alloc::rc::Rc;

    use crate::s3::auth::KeyAuth;
    use crate::s3::keys::StoreKeys;
    use crate::s3::server::S3Service;
    use crate::s3::server::listen::{serve_admin_tls, serve_plain, serve_tls};

    let ServeOptions { node_key, bootstrap, tls, s3, admin, plain, config, now_ms, random, platform_metrics } = options;
    let opened = async {
        let mut volume_id = [0u8; 16];
        random(&mut volume_id);
        let (store, opened) = open_or_format(Arc::new(disk), volume_id, now_ms())
            .await
            .map_err(|error| alloc::format!("the data disk cannot be opened: {error:?}"))?;
        crate::info!("storage", "store ready: {:?}", opened; free_pages = store.free_pages());
        let keys = StoreKeys::open(&store, node_key, &bootstrap, random, now_ms())
            .await
            .map_err(|error| alloc::format!("the keystore cannot be opened: {error:?}"))?;
        Ok::<_, String>((store, keys))
    };
    let (store, keys) = match opened.await {
        Ok(opened) => opened,
        Err(reason) => {
            crate::error!("s3", "S3 is not served: {}", reason);
            let stats = Arc::new(crate::health::Stats::default());
            let limits = crate::health::Limits::default();
            return crate::health::serve(admin, tls, timers, spawner, limits, stats).await;
        }
    };
    let key_count = keys.with(|k| k.len()) as u64;
    crate::info!("security", "keystore loaded"; keys = key_count, unreadable = keys.unreadable as u64);
    let mut seed = [0u8; 8];
    random(&mut seed);
    let mut service = S3Service::new(store, KeyAuth { keys }, config, now_ms, u64::from_le_bytes(seed));
    service.platform_metrics = platform_metrics;
    let service = Rc::new(service);
    let stats = service.listen.clone();
    // Events trail the changes they describe: make them durable within a
    // second even when no other commit comes along.
    let (syncer, sync_timers) = (service.clone(), timers.clone());
    drop(spawner.spawn(async move {
        loop {
            sync_timers.sleep(core::time::Duration::from_secs(1)).await;
            if syncer.store.sync().await.is_err() {
                return;
            }
        }
    }));
    drop(spawner.spawn(serve_admin_tls(service.clone(), admin, tls.clone(), timers.clone(), spawner.clone(), random)));
    if let Some(plain) = plain {
        let port = u32::from(plain.local_port());
        drop(spawner.spawn(serve_plain(service.clone(), plain, timers.clone(), spawner.clone(), stats.clone())));
        crate::info!("s3", "plain http listening"; port = port);
    }
    let read_timeout_s = service.config.read_timeout.as_secs();
    let max_connections = service.config.max_connections as u64;
    crate::info!("s3", "s3 listening"; port = u32::from(s3.local_port()), read_timeout_s = read_timeout_s, max_connections = max_connections);
    serve_tls(service, s3, tls, timers, spawner, stats).await;
}
