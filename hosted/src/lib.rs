//! The runtime on Linux: a host clock, the OS random source and a platform
//! that sleeps in `ppoll` instead of halting the CPU. The executor, timers and
//! events are the very same code the kernel runs. [`tap`] puts the kernel's
//! network stack on a Linux TAP device.
//!
//! `unsafe` is confined to [`tap`] (the TUN ioctl and fd I/O), [`platform`]
//! (eventfd and `ppoll`), [`crc`], [`gcm`] and [`md5`] (SSE4.2, AES-NI,
//! PCLMULQDQ, AVX2 and AVX-512 code behind a run-time CPU check) and
//! [`memory`] (`mallopt`): this crate never goes into the image.

#![deny(unsafe_code)]

pub mod block;
pub mod clock;
#[allow(unsafe_code)]
pub mod crc;
#[allow(unsafe_code)]
pub mod gcm;
#[allow(unsafe_code)]
pub mod md5;
#[allow(unsafe_code)]
pub mod memory;
#[allow(unsafe_code)]
pub mod platform;
pub mod rng;
#[allow(unsafe_code)]
pub mod tap;

use crate::clock::HostClock;
use crate::platform::HostPlatform;
use runtime::executor::{Executor, Spawner};
use runtime::timers::Timers;
use std::future::Future;
use std::sync::Arc;

/// Executor + timers on the host clock + parking platform, wired together.
/// Not `Send`: create it on the thread that will call [`Runtime::block_on`].
#[derive(Debug)]
pub struct Runtime {
    executor: Executor,
    timers: Timers,
    platform: HostPlatform,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// A runtime for the current thread.
    pub fn new() -> Self {
        let platform = HostPlatform::new();
        let executor = Executor::with_notifier(platform.notifier());
        let timers = Timers::new(Arc::new(HostClock::new()));
        Self { executor, timers, platform }
    }

    /// Runs `future` to completion, running spawned tasks meanwhile.
    pub fn block_on<F: Future>(&mut self, future: F) -> F::Output {
        self.executor.block_on(future, &mut self.platform, &self.timers)
    }

    /// Spawns tasks onto this runtime's executor.
    pub fn spawner(&self) -> Spawner {
        self.executor.spawner()
    }

    /// The runtime's timer queue (a cheap clone sharing the queue).
    pub fn timers(&self) -> Timers {
        self.timers.clone()
    }

    /// The executor, e.g. for `task_count`.
    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// The platform, e.g. to register events with [`HostPlatform::add_event`].
    pub fn platform_mut(&mut self) -> &mut HostPlatform {
        &mut self.platform
    }
}
