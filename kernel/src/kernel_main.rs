//! Boot sequence: from the trampoline's first Rust instruction to the
//! services running on the executor.

use alloc::vec::Vec;
use core::time::Duration;

use runtime::executor::Executor;
use services::log::Level;
use services::{info, warn};

use crate::arch::{cpu, gdt, interrupts};
use crate::drivers::nvme::{Nvme, NvmeError};
use crate::drivers::virtio::VirtioError;
use crate::drivers::virtio::blk::VirtioBlk;
use crate::drivers::virtio::net::VirtioNet;
use crate::exit::{ExitCode, exit_qemu};
use crate::pci::{self, Bdf, ConfigAccess};
use crate::platform::KernelPlatform;
use crate::pvh::BootInfo;
use crate::{HEAP, apic, memory, paging, rng, selftest, serial, sym_addr, time};

/// Configuration mechanism #1 (ports 0xCF8/0xCFC): present on q35 and every
/// PC-compatible machine, and enough for the standard 256-byte space.
struct PortIoConfig;

impl ConfigAccess for PortIoConfig {
    fn read32(&self, bdf: Bdf, offset: u8) -> u32 {
        // SAFETY: ports 0xCF8/0xCFC are the PCI configuration mechanism, used
        // only from thread context in this module.
        unsafe {
            cpu::outl(0xCF8, address(bdf, offset));
            cpu::inl(0xCFC)
        }
    }

    fn write32(&self, bdf: Bdf, offset: u8, value: u32) {
        // SAFETY: as in `read32`; the callers write only registers they own.
        unsafe {
            cpu::outl(0xCF8, address(bdf, offset));
            cpu::outl(0xCFC, value);
        }
    }
}

fn address(bdf: Bdf, offset: u8) -> u32 {
    0x8000_0000
        | (u32::from(bdf.bus) << 16)
        | (u32::from(bdf.device) << 11)
        | (u32::from(bdf.function) << 8)
        | u32::from(offset & 0xFC)
}

/// Initialises the first function of `kind` with `init`; a driver that fails
/// is logged and left out (the appliance runs on without that device).
fn bring_up<D, E: core::fmt::Debug>(
    devices: &[pci::Function],
    kind: pci::Known,
    subsystem: &str,
    name: &str,
    init: impl FnOnce(&pci::Function) -> Result<D, E>,
) -> Option<D> {
    let function = devices.iter().find(|d| d.known() == Some(kind))?;
    match init(function) {
        Ok(device) => Some(device),
        Err(error) => {
            warn!(subsystem, "{} at {} failed: {:?}", name, function.bdf, error);
            None
        }
    }
}

pub fn start(start_info: u64) -> ! {
    serial::init();
    gdt::init();
    interrupts::init();

    // SAFETY: `start_info` is the pointer the PVH loader passed in %ebx,
    // still identity-mapped by the trampoline and not yet overwritten.
    let boot = match unsafe { BootInfo::parse(start_info) } {
        Ok(boot) => boot,
        Err(error) => crate::fatal(format_args!("bad PVH start info: {error:?}")),
    };
    let kernel_range = sym_addr!(__kernel_start)..sym_addr!(__kernel_end);
    let memmap = match memory::check_sane(boot.regions(), kernel_range) {
        Ok(summary) => summary,
        Err(error) => crate::fatal(format_args!("memory map rejected: {error:?}")),
    };
    paging::init(boot.regions());
    memory::heap_ranges(boot.regions(), sym_addr!(__kernel_end), boot.module_ranges(), 1 << 20, |range| {
        // SAFETY: `heap_ranges` yields RAM above the kernel image that is not
        // a boot module; nothing else uses it, and paging maps it RW.
        unsafe { HEAP.claim(range.start as *mut u8, (range.end - range.start) as usize) };
    });

    let (tsc_hz, tsc_source) = time::init();
    let apic_mode = apic::init();
    let apic_timer_hz = apic::calibrate(tsc_hz);
    let entropy = rng::init();
    crate::arch::crc::install();
    let gcm = crate::arch::gcm::install();
    let md5 = crate::arch::md5::install();
    let wall = time::init_wall_clock();
    let level = Level::from_cmdline(boot.cmdline).unwrap_or(Level::Info);
    services::log::init(&serial::SERIAL_SINK, &time::KERNEL_CLOCK, level);
    // SAFETY: the IDT is loaded and the APIC timer is masked until armed.
    unsafe { cpu::enable_interrupts() };

    info!("boot", "rustcore {}", env!("CARGO_PKG_VERSION"); cmdline = boot.cmdline, boot_archive_bytes = boot.boot_archive().map_or(0, <[u8]>::len));
    info!("boot", "memory"; regions = memmap.regions, ram_bytes = memmap.ram_bytes, heap_bytes = HEAP.stats().heap_size_bytes, page_tables = paging::tables_used());
    info!("boot", "clocks"; tsc_hz = tsc_hz, tsc_source = tsc_source.as_str(), apic = if apic_mode == apic::Mode::X2Apic { "x2apic" } else { "xapic" }, apic_timer_hz = apic_timer_hz, tsc_deadline = apic::timer_kind() == apic::TimerKind::TscDeadline, unix_seconds = wall.unwrap_or(0));
    if let Some(bytes) = boot.boot_archive() {
        match services::bootfs::Archive::new(bytes).validate() {
            Ok(files) => info!("boot", "boot archive"; files = files, bytes = bytes.len()),
            Err(error) => warn!("boot", "boot archive is not a ustar archive: {:?}", error; bytes = bytes.len()),
        }
    }
    if wall.is_none() {
        warn!("boot", "no usable RTC: wall clock unknown, TLS and SigV4 will fail");
    }
    info!("boot", "entropy"; source = if entropy == rng::EntropySource::Rdseed { "rdseed" } else { "rdrand" }, generator = "chacha20");
    info!("boot", "AES-GCM"; implementation = if gcm.accelerated_wins() { "one-pass" } else { "rustcrypto" }, one_pass_mb_s = gcm.accelerated_mb_s, rustcrypto_mb_s = gcm.portable_mb_s);
    info!("boot", "MD5"; implementation = if md5.lanes_win() { "sse2-lanes" } else { "one-at-a-time" }, lanes_mb_s = md5.lanes_mb_s, one_at_a_time_mb_s = md5.one_at_a_time_mb_s);

    let mut devices = pci::enumerate(&PortIoConfig);
    if let Err(error) = pci::assign_bars(&PortIoConfig, &mut devices) {
        warn!("pci", "BAR assignment failed: {:?}", error);
    }
    for device in &devices {
        for (index, bar) in device.bars.iter().enumerate() {
            if let Some(bar) = bar {
                services::debug!("pci", "bar {} of {}: {:x?}", index, device.bdf, bar);
            }
        }
        info!("pci", "function {}", device.bdf; id = &*pci::id_string(device), class = u32::from(device.class), subclass = u32::from(device.subclass), kind = device.known().map_or("other", |k| match k { pci::Known::VirtioNet => "virtio-net", pci::Known::VirtioBlock => "virtio-blk", pci::Known::Nvme => "nvme" }), msix_vectors = device.msix().map_or(0, |m| u32::from(m.table_size)));
    }

    let network = bring_up(
        &devices,
        pci::Known::VirtioNet,
        "net",
        "virtio-net",
        |function| -> Result<_, VirtioError> {
            let (rx_vector, tx_vector) = (interrupts::allocate_vector(), interrupts::allocate_vector());
            let device = VirtioNet::init(&PortIoConfig, function, apic::id(), rx_vector, tx_vector)?;
            let (mac, offload) = (device.mac(), device.tcp_offload());
            info!("net", "virtio-net at {}", function.bdf; mac = &*alloc::format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]), rx_vector = u32::from(rx_vector), tx_vector = u32::from(tx_vector), checksum_offload = offload != net::tcp::TcpOffload::None, segmentation_offload = offload == net::tcp::TcpOffload::FULL, receive_segments = device.receive_segments);
            Ok(device)
        },
    );
    let disk = bring_up(
        &devices,
        pci::Known::VirtioBlock,
        "storage",
        "virtio-blk",
        |function| -> Result<_, VirtioError> {
            let vector = interrupts::allocate_vector();
            let device = VirtioBlk::init(&PortIoConfig, function, apic::id(), vector)?;
            let geometry = storage::block::BlockDevice::geometry(&device);
            info!("storage", "virtio-blk at {}", function.bdf; block_bytes = geometry.block_bytes, capacity_bytes = geometry.capacity_bytes(), queue_depth = u32::from(geometry.queue_depth), vector = u32::from(vector));
            Ok(device)
        },
    );
    let nvme = bring_up(&devices, pci::Known::Nvme, "storage", "nvme", |function| -> Result<_, NvmeError> {
        let vector = interrupts::allocate_vector();
        let device = Nvme::init(&PortIoConfig, function, apic::id(), vector)?;
        let geometry = storage::block::BlockDevice::geometry(&device);
        info!("storage", "nvme at {}", function.bdf; model = &*device.model, serial = &*device.serial, block_bytes = geometry.block_bytes, capacity_bytes = geometry.capacity_bytes(), queue_depth = u32::from(geometry.queue_depth), max_transfer_bytes = device.max_transfer_bytes(), vector = u32::from(vector));
        Ok(device)
    });

    match boot.cmdline_value("selftest") {
        Some("smoke") => {
            let ok = selftest::run_smoke(&boot, &devices, network, disk, nvme);
            exit_qemu(if ok { ExitCode::Success } else { ExitCode::Failure });
        }
        Some(mode @ ("blk-write" | "blk-verify")) => {
            let seed = boot.cmdline_value("selftest.seed").and_then(|s| s.parse().ok()).unwrap_or(1);
            let ok = selftest::run_block_persistence("blk", disk, mode == "blk-write", seed);
            exit_qemu(if ok { ExitCode::Success } else { ExitCode::Failure });
        }
        Some(mode @ ("nvme-write" | "nvme-verify")) => {
            let seed = boot.cmdline_value("selftest.seed").and_then(|s| s.parse().ok()).unwrap_or(1);
            let ok = selftest::run_block_persistence("nvme", nvme, mode == "nvme-write", seed);
            exit_qemu(if ok { ExitCode::Success } else { ExitCode::Failure });
        }
        Some(mode @ ("store-write" | "store-verify")) => {
            let seed = boot.cmdline_value("selftest.seed").and_then(|s| s.parse().ok()).unwrap_or(1);
            let write = mode == "store-write";
            let ok = match boot.cmdline_value("selftest.disk") {
                Some("nvme") => selftest::run_store_persistence("nvme", nvme, write, seed),
                _ => selftest::run_store_persistence("blk", disk, write, seed),
            };
            exit_qemu(if ok { ExitCode::Success } else { ExitCode::Failure });
        }
        Some("scenario") => {
            let ok = selftest::run_scenario(&boot, disk);
            exit_qemu(if ok { ExitCode::Success } else { ExitCode::Failure });
        }
        Some("guard-fault") => {
            selftest::run_guard_fault();
            exit_qemu(ExitCode::Failure);
        }
        Some(other) => crate::fatal(format_args!("unknown selftest '{other}'")),
        None => {}
    }

    serve(&boot, devices, network, disk, nvme)
}

/// The appliance's steady state: the executor runs the services forever.
fn serve(
    boot: &BootInfo,
    devices: Vec<pci::Function>,
    network: Option<VirtioNet>,
    disk: Option<VirtioBlk>,
    nvme: Option<Nvme>,
) -> ! {
    let executor = Executor::new();
    let spawner = executor.spawner();
    let timers = crate::platform::new_timers();
    let mut platform = KernelPlatform::new();
    let heartbeat_timers = timers.clone();
    executor.spawn(async move {
        let mut interval = heartbeat_timers.interval(Duration::from_secs(60));
        loop {
            interval.tick().await;
            if let Some(correction_ns) = time::resync_wall_clock(1_500_000_000)
                && correction_ns != 0
            {
                info!("time", "wall clock re-anchored to the RTC"; correction_ms = correction_ns / 1_000_000);
            }
            let heap = HEAP.stats();
            info!("runtime", "heartbeat"; heap_bytes_in_use = heap.bytes_in_use, heap_peak_bytes = heap.peak_bytes, interrupts = interrupts::INTERRUPT_COUNT.load(core::sync::atomic::Ordering::Relaxed));
        }
    });
    let running = match network {
        Some(device) => match crate::network::start(boot, device, &spawner, &timers) {
            Ok(running) => Some(running),
            Err(error) => {
                warn!("net", "network service not started: {:?}", error);
                None
            }
        },
        None => {
            warn!("net", "no virtio-net device: no network service");
            None
        }
    };
    // The data disk: virtio-blk unless `data=nvme` (or only NVMe exists).
    match (running, boot.cmdline_value("data"), disk, nvme) {
        (None, ..) => {}
        (Some(running), Some("nvme"), _, Some(nvme)) | (Some(running), _, None, Some(nvme)) => {
            crate::s3_service::start(boot, nvme, &running, &spawner, &timers)
        }
        (Some(running), _, Some(disk), _) => crate::s3_service::start(boot, disk, &running, &spawner, &timers),
        (Some(running), ..) => {
            warn!("storage", "no data disk: S3 is not served");
            running.serve_health_only(&spawner, &timers);
        }
    }
    info!("boot", "ready"; boot_ms = time::now_ns() / 1_000_000, devices = devices.len());
    executor.block_on(core::future::pending::<()>(), &mut platform, &timers);
    crate::fatal(format_args!("executor returned"))
}
