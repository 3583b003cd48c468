//! Device drivers. Each wraps its hardware once in types whose API cannot be
//! misused (`Mmio` for register blocks, `DmaBuffer` for memory the device
//! reads or writes), and everything above uses only those types.

pub mod dma;
pub mod mmio;
pub mod nvme;
pub mod virtio;
