//! virtio 1.x over PCI ("modern" devices, virtio spec section 4.1): the
//! transport (capabilities, feature negotiation, queue setup, MSI-X routing)
//! shared by every virtio driver, and the drivers themselves.

pub mod blk;
pub mod net;
pub mod queue;

use crate::drivers::mmio::Mmio;
use crate::pci::{self, Capability, ConfigAccess, Function};

use self::queue::SplitQueue;

const STATUS_ACKNOWLEDGE: u8 = 1;
const STATUS_DRIVER: u8 = 2;
const STATUS_DRIVER_OK: u8 = 4;
const STATUS_FEATURES_OK: u8 = 8;
const STATUS_FAILED: u8 = 128;

pub const F_VERSION_1: u64 = 1 << 32;

/// "No MSI-X vector" in the common configuration.
const NO_VECTOR: u16 = 0xFFFF;

const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_ISR: u8 = 3;
const CAP_DEVICE: u8 = 4;

// Common configuration registers.
const DEVICE_FEATURE_SELECT: u64 = 0x00;
const DEVICE_FEATURE: u64 = 0x04;
const DRIVER_FEATURE_SELECT: u64 = 0x08;
const DRIVER_FEATURE: u64 = 0x0C;
const CONFIG_MSIX_VECTOR: u64 = 0x10;
const DEVICE_STATUS: u64 = 0x14;
const QUEUE_SELECT: u64 = 0x16;
const QUEUE_SIZE: u64 = 0x18;
const QUEUE_MSIX_VECTOR: u64 = 0x1A;
const QUEUE_ENABLE: u64 = 0x1C;
const QUEUE_NOTIFY_OFF: u64 = 0x1E;
const QUEUE_DESC: u64 = 0x20;
const QUEUE_DRIVER: u64 = 0x28;
const QUEUE_DEVICE: u64 = 0x30;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioError {
    MissingCapability(u8),
    BarNotMapped(u8),
    NoMsix,
    FeaturesRejected,
    QueueUnavailable(u16),
    VectorRejected(u16),
}

pub struct Transport {
    common: Mmio,
    notify: Mmio,
    notify_multiplier: u32,
    pub device_config: Mmio,
    msix_table: Mmio,
    msix_entries: u16,
}

fn capability_window(function: &Function, cfg_type: u8) -> Result<(Mmio, u8), VirtioError> {
    let (bar, bar_offset, length, offset) = function
        .capabilities
        .iter()
        .find_map(|c| match *c {
            Capability::Virtio { cfg_type: t, bar, bar_offset, length, offset } if t == cfg_type => {
                Some((bar, bar_offset, length, offset))
            }
            _ => None,
        })
        .ok_or(VirtioError::MissingCapability(cfg_type))?;
    let (address, size) = pci::memory_bar(function, bar).ok_or(VirtioError::BarNotMapped(bar))?;
    let region = Mmio::map(address, size);
    Ok((region.window(u64::from(bar_offset), u64::from(length)), offset))
}

impl Transport {
    /// Resets the device and negotiates `wanted` features (VERSION_1 is
    /// always required); returns the transport and the accepted features.
    pub fn init(access: &impl ConfigAccess, function: &Function, wanted: u64) -> Result<(Self, u64), VirtioError> {
        let (common, _) = capability_window(function, CAP_COMMON)?;
        let (notify, notify_cap) = capability_window(function, CAP_NOTIFY)?;
        let (device_config, _) = capability_window(function, CAP_DEVICE)?;
        capability_window(function, CAP_ISR)?;
        let notify_multiplier = access.read32(function.bdf, notify_cap + 16);

        let msix = function.msix().ok_or(VirtioError::NoMsix)?;
        let (table_address, table_bar_size) =
            pci::memory_bar(function, msix.table_bar).ok_or(VirtioError::BarNotMapped(msix.table_bar))?;
        let msix_table = Mmio::map(table_address, table_bar_size)
            .window(u64::from(msix.table_offset), 16 * u64::from(msix.table_size));
        // Mask every entry until a queue is routed to it.
        for entry in 0..msix.table_size {
            msix_table.write32(16 * u64::from(entry) + 12, 1);
        }
        pci::enable_msix(access, function.bdf, &msix);

        let transport =
            Self { common, notify, notify_multiplier, device_config, msix_table, msix_entries: msix.table_size };
        transport.common.write8(DEVICE_STATUS, 0);
        while transport.common.read8(DEVICE_STATUS) != 0 {
            core::hint::spin_loop();
        }
        transport.common.write8(DEVICE_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        let offered = transport.device_features();
        let accepted = offered & (wanted | F_VERSION_1);
        if accepted & F_VERSION_1 == 0 {
            transport.common.write8(DEVICE_STATUS, STATUS_FAILED);
            return Err(VirtioError::FeaturesRejected);
        }
        transport.common.write32(DRIVER_FEATURE_SELECT, 0);
        transport.common.write32(DRIVER_FEATURE, accepted as u32);
        transport.common.write32(DRIVER_FEATURE_SELECT, 1);
        transport.common.write32(DRIVER_FEATURE, (accepted >> 32) as u32);
        transport.common.write8(DEVICE_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        if transport.common.read8(DEVICE_STATUS) & STATUS_FEATURES_OK == 0 {
            transport.common.write8(DEVICE_STATUS, STATUS_FAILED);
            return Err(VirtioError::FeaturesRejected);
        }
        transport.common.write16(CONFIG_MSIX_VECTOR, NO_VECTOR);
        Ok((transport, accepted))
    }

    fn device_features(&self) -> u64 {
        self.common.write32(DEVICE_FEATURE_SELECT, 0);
        let low = self.common.read32(DEVICE_FEATURE);
        self.common.write32(DEVICE_FEATURE_SELECT, 1);
        let high = self.common.read32(DEVICE_FEATURE);
        (u64::from(high) << 32) | u64::from(low)
    }

    /// Creates queue `index` with at most `max_size` entries, routed to MSI-X
    /// table entry `msix_entry`, which delivers `vector` to `apic_id`.
    pub fn setup_queue(
        &self,
        index: u16,
        max_size: u16,
        msix_entry: u16,
        apic_id: u32,
        vector: u8,
    ) -> Result<SplitQueue, VirtioError> {
        self.common.write16(QUEUE_SELECT, index);
        let device_max = self.common.read16(QUEUE_SIZE);
        if device_max == 0 {
            return Err(VirtioError::QueueUnavailable(index));
        }
        // Largest power of two within both limits.
        let limit = device_max.min(max_size);
        let size = 1u16 << (15 - limit.leading_zeros().min(15));
        let notify_offset = u64::from(self.common.read16(QUEUE_NOTIFY_OFF)) * u64::from(self.notify_multiplier);
        let queue = SplitQueue::new(size, index, self.notify.window(notify_offset, 2));
        let (descriptors, driver, device) = queue.addresses();
        self.common.write16(QUEUE_SIZE, size);
        self.common.write64_split(QUEUE_DESC, descriptors);
        self.common.write64_split(QUEUE_DRIVER, driver);
        self.common.write64_split(QUEUE_DEVICE, device);

        if msix_entry >= self.msix_entries {
            return Err(VirtioError::VectorRejected(index));
        }
        let (address, data) = pci::msix_message(apic_id, vector);
        let entry = 16 * u64::from(msix_entry);
        self.msix_table.write32(entry, address as u32);
        self.msix_table.write32(entry + 4, (address >> 32) as u32);
        self.msix_table.write32(entry + 8, data);
        self.msix_table.write32(entry + 12, 0);
        self.common.write16(QUEUE_MSIX_VECTOR, msix_entry);
        if self.common.read16(QUEUE_MSIX_VECTOR) != msix_entry {
            return Err(VirtioError::VectorRejected(index));
        }
        self.common.write16(QUEUE_ENABLE, 1);
        Ok(queue)
    }

    /// Ends initialisation: the device may now use the queues.
    pub fn driver_ok(&self) {
        let status = self.common.read8(DEVICE_STATUS);
        self.common.write8(DEVICE_STATUS, status | STATUS_DRIVER_OK);
    }
}
