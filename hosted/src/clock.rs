//! Host time sources.

use runtime::clock::Clock;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The process's "boot": every `HostClock` counts from the same instant, so
/// deadlines from one clock mean the same to the platform's own clock.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Monotonic clock over `std::time::Instant`: ns since the first `HostClock`
/// of the process was created.
#[derive(Clone, Copy, Debug)]
pub struct HostClock {
    epoch: Instant,
}

impl Default for HostClock {
    fn default() -> Self {
        Self::new()
    }
}

impl HostClock {
    /// A clock on the process-wide epoch.
    pub fn new() -> Self {
        Self { epoch: epoch() }
    }
}

impl Clock for HostClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Wall-clock time in ns since the Unix epoch (for `Date` headers and SigV4),
/// 0 if the system clock is before 1970.
pub fn unix_time_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_share_an_epoch_and_move_forward() {
        let a = HostClock::new();
        let first = a.now_ns();
        let b = HostClock::new();
        assert!(b.now_ns() >= first);
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(a.now_ns() >= first + 1_000_000);
        // 2020-01-01 in ns: any sane host is later.
        assert!(unix_time_ns() > 1_577_836_800_000_000_000);
    }
}
