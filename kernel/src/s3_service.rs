//! The S3 service of the appliance: the data disk's driver, the keys from
//! the boot archive and the listeners, handed to `services::s3::setup`,
//! which opens the store (formatting it only when it is blank) and serves
//! S3 on 443 and the admin API on 9443.

use runtime::executor::Spawner;
use runtime::timers::Timers;
use services::error;
use services::s3::server::S3Config;
use services::s3::setup::{self, ServeOptions};

use crate::arch::interrupts;
use crate::drivers::block::InterruptBlockDevice;
use crate::network::{ADMIN_BACKLOG, ADMIN_PORT, HTTPS_PORT, LISTEN_BACKLOG, Running};
use crate::pvh::BootInfo;
use crate::{rng, time};

fn now_unix_ms() -> u64 {
    time::unix_ns().unwrap_or(0) / 1_000_000
}

/// Starts the service in the background; it logs `s3 listening` once it
/// serves. Without a node key nothing can be unsealed: health only.
pub fn start<D: InterruptBlockDevice + 'static>(
    boot: &BootInfo,
    disk: D,
    network: &Running,
    spawner: &Spawner,
    timers: &Timers,
) {
    let archive = boot.boot_archive().map(services::bootfs::Archive::new);
    let (node_key, bootstrap) = setup::boot_keys(|name| archive.as_ref().and_then(|a| a.get(name)));
    let Some(node_key) = node_key else {
        error!("security", "no keys/node.key (32 bytes) in the boot archive: S3 is not served");
        network.serve_health_only(spawner, timers);
        return;
    };
    let (Ok(s3), Ok(admin)) =
        (network.stack.listen(HTTPS_PORT, LISTEN_BACKLOG), network.stack.listen(ADMIN_PORT, ADMIN_BACKLOG))
    else {
        error!("s3", "cannot listen on the S3 and admin ports");
        return;
    };
    drop(spawner.spawn(disk.reaper(&interrupts::EVENTS[usize::from(disk.vector())])));
    let mut config = S3Config::default();
    // Half the heap for connections, at about 384 KiB each (two 128 KiB
    // socket buffers, TLS records and state, the request buffer): a 1 GiB
    // guest serves 1,000 at once,
    // a 512 MiB one about 650.
    let heap_bytes = crate::HEAP.stats().heap_size_bytes;
    config.max_connections = (heap_bytes / 2 / (384 * 1024)).clamp(16, 1000);
    if let Some(seconds) = boot.cmdline_value("s3.read_timeout_s").and_then(|s| s.parse::<u64>().ok()) {
        config.read_timeout = core::time::Duration::from_secs(seconds.max(1));
    }
    let stack = network.stack.clone();
    let platform_metrics: services::s3::server::PlatformMetrics = alloc::boxed::Box::new(move |out| {
        let heap = crate::HEAP.stats();
        out.single("rustcore_heap_bytes_in_use", "gauge", "Kernel heap bytes in use.", heap.bytes_in_use as u64);
        out.single("rustcore_heap_peak_bytes", "gauge", "Kernel heap high-water mark.", heap.peak_bytes as u64);
        out.single("rustcore_heap_bytes", "gauge", "Kernel heap size.", heap.heap_size_bytes as u64);
        out.single(
            "rustcore_tcp_sockets",
            "gauge",
            "TCP sockets (listening and connected).",
            stack.tcp_socket_count() as u64,
        );
        let interrupts = interrupts::INTERRUPT_COUNT.load(core::sync::atomic::Ordering::Relaxed);
        out.single("rustcore_interrupts_total", "counter", "Device and timer interrupts taken.", interrupts);
    });
    let options = ServeOptions {
        node_key,
        bootstrap,
        tls: network.tls.clone(),
        s3,
        admin,
        plain: None,
        config,
        now_ms: now_unix_ms,
        random: rng::fill,
        platform_metrics: Some(platform_metrics),
    };
    drop(spawner.spawn(setup::serve(disk, options, timers.clone(), spawner.clone())));
}
