//! Monotonic time source used by the timers.

use core::sync::atomic::{AtomicU64, Ordering};

/// A monotonic clock: nanoseconds since boot (or since process start on the
/// host). Never goes backwards.
pub trait Clock: Send + Sync {
    /// Current time in nanoseconds since boot.
    fn now_ns(&self) -> u64;
}

/// A clock that only moves when told to: makes timer tests and simulations
/// deterministic.
#[derive(Debug, Default)]
pub struct FakeClock {
    now_ns: AtomicU64,
}

impl FakeClock {
    /// A fake clock reading `start_ns`.
    pub const fn new(start_ns: u64) -> Self {
        Self { now_ns: AtomicU64::new(start_ns) }
    }

    /// Sets the time to `ns`. Callers keep it monotonic.
    pub fn set(&self, ns: u64) {
        self.now_ns.store(ns, Ordering::Relaxed);
    }

    /// Moves the time forward by `ns` nanoseconds.
    pub fn advance(&self, ns: u64) {
        self.now_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_moves_only_when_told() {
        let clock = FakeClock::new(5);
        assert_eq!(clock.now_ns(), 5);
        clock.advance(10);
        assert_eq!(clock.now_ns(), 15);
        clock.set(100);
        assert_eq!(clock.now_ns(), 100);
    }
}
