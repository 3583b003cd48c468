//! Device drivers. Each wraps its hardware once in types whose API cannot be
//! misused (`Mmio` for register blocks, `DmaBuffer` for memory the device
//! reads or writes), and everything above uses only those types.

#[cfg(target_os = "none")]
pub mod block;
#[cfg(target_os = "none")]
pub mod dma;
#[cfg(target_os = "none")]
pub mod mmio;
#[cfg(target_os = "none")]
pub mod nvme;
pub mod requests;
#[cfg(target_os = "none")]
pub mod virtio;
