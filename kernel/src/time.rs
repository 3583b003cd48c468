//! Time: the TSC, calibrated once at boot, is the monotonic clock (ns since
//! boot); the RTC read at boot anchors wall-clock time to it.
//!
//! Calibration prefers what the platform states (CPUID leaf 0x15 crystal
//! ratio, or the hypervisor leaf 0x40000010 in kHz) and otherwise measures the
//! TSC against the PIT's fixed 1.193182 MHz clock through channel 2, which
//! needs no interrupts.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Once;

use crate::arch::cpu;
use crate::time_math::TicksToNs;

const PIT_HZ: u64 = 1_193_182;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalibrationSource {
    CpuidCrystal,
    Hypervisor,
    Pit,
}

impl CalibrationSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CpuidCrystal => "cpuid-0x15",
            Self::Hypervisor => "cpuid-0x40000010",
            Self::Pit => "pit",
        }
    }
}

struct Calibration {
    tsc_hz: u64,
    tsc_at_boot: u64,
    conversion: TicksToNs,
    source: CalibrationSource,
}

static CALIBRATION: Once<Calibration> = Once::new();
/// Unix time in ns at `tsc_at_boot`; 0 until the RTC was read.
static BOOT_UNIX_NS: AtomicU64 = AtomicU64::new(0);

fn from_cpuid() -> Option<(u64, CalibrationSource)> {
    let max_leaf = cpu::cpuid(0, 0).eax;
    if max_leaf >= 0x15 {
        let leaf = cpu::cpuid(0x15, 0);
        if leaf.eax != 0 && leaf.ebx != 0 && leaf.ecx != 0 {
            let hz = u64::from(leaf.ecx) * u64::from(leaf.ebx) / u64::from(leaf.eax);
            return Some((hz, CalibrationSource::CpuidCrystal));
        }
    }
    let hypervisor = cpu::cpuid(1, 0).ecx & (1 << 31) != 0;
    if hypervisor && cpu::cpuid(0x4000_0000, 0).eax >= 0x4000_0010 {
        let khz = cpu::cpuid(0x4000_0010, 0).eax;
        if khz != 0 {
            return Some((u64::from(khz) * 1000, CalibrationSource::Hypervisor));
        }
    }
    None
}

/// Reads PIT channel 2's count together with the TSC. The pair is only as
/// good as the time between the two TSC reads around the latch, so take
/// several and keep the tightest: a host that preempts QEMU in the middle
/// (a loaded CI machine) then costs a retry, not a wrong rate.
fn sample_pit() -> (u64, u16) {
    let mut best: Option<(u64, u64, u16)> = None; // (window, tsc midpoint, count)
    for _ in 0..8 {
        // SAFETY: PIT channel 2 is ours (see `measure_against_pit`); latching
        // and reading its count has no other effect.
        let (before, count, after) = unsafe {
            let before = cpu::rdtsc();
            cpu::outb(0x43, 0b1000_0000); // latch channel 2
            let low = cpu::inb(0x42);
            let high = cpu::inb(0x42);
            (before, u16::from_le_bytes([low, high]), cpu::rdtsc())
        };
        let window = after - before;
        if best.is_none_or(|(w, _, _)| window < w) {
            best = Some((window, before + window / 2, count));
        }
    }
    let (_, tsc, count) = best.unwrap_or((0, cpu::rdtsc(), 0));
    (tsc, count)
}

/// TSC ticks per second measured over about `window_ms` of the PIT's
/// 1.193182 MHz count (channel 2, counting down from 0xFFFF, gate on, no
/// speaker, no interrupt). `None` when the PIT does not count (no PIT).
fn measure_against_pit(window_ms: u64) -> Option<u64> {
    // SAFETY: the PIT and port 0x61 are legacy devices the kernel owns; this
    // gates channel 2 without enabling the speaker, and nothing else uses it.
    let port61 = unsafe {
        let port61 = cpu::inb(0x61);
        cpu::outb(0x61, (port61 & !0x02) | 0x01);
        cpu::outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        cpu::outb(0x42, 0xFF);
        cpu::outb(0x42, 0xFF);
        port61
    };
    let wanted_ticks = PIT_HZ * window_ms / 1000;
    let (tsc_start, count_start) = sample_pit();
    let mut polls = 0u64;
    let result = loop {
        let (tsc_now, count_now) = sample_pit();
        let elapsed = u64::from(count_start.wrapping_sub(count_now));
        if elapsed >= wanted_ticks {
            break Some((tsc_now - tsc_start) * PIT_HZ / elapsed);
        }
        polls += 1;
        if polls > 5_000_000 {
            break None; // the count never moved: no PIT here
        }
    };
    // SAFETY: restores port 0x61 as it was.
    unsafe { cpu::outb(0x61, port61) };
    result
}

fn from_pit() -> Option<u64> {
    // 40 ms windows (well inside the 55 ms before the 16-bit count wraps);
    // three of them, keep the median.
    let mut samples = [0u64; 3];
    for sample in &mut samples {
        *sample = measure_against_pit(40)?;
    }
    samples.sort_unstable();
    Some(samples[1])
}

/// Calibrates the TSC. Called once at boot with interrupts off.
pub fn init() -> (u64, CalibrationSource) {
    let (tsc_hz, source) = match from_cpuid() {
        Some(found) => found,
        None => match from_pit() {
            Some(hz) => (hz, CalibrationSource::Pit),
            None => crate::fatal(format_args!("cannot calibrate the TSC: no CPUID frequency and no PIT")),
        },
    };
    let calibration = CALIBRATION.call_once(|| Calibration {
        tsc_hz,
        tsc_at_boot: cpu::rdtsc(),
        conversion: TicksToNs::new(tsc_hz),
        source,
    });
    (calibration.tsc_hz, calibration.source)
}

fn calibration() -> &'static Calibration {
    match CALIBRATION.get() {
        Some(calibration) => calibration,
        None => crate::fatal(format_args!("clock used before time::init")),
    }
}

pub fn tsc_hz() -> u64 {
    calibration().tsc_hz
}

pub fn source() -> CalibrationSource {
    calibration().source
}

/// Nanoseconds since boot.
pub fn now_ns() -> u64 {
    CALIBRATION.get().map_or(0, |c| c.conversion.ns(cpu::rdtsc().saturating_sub(c.tsc_at_boot)))
}

pub fn tsc_to_ns(ticks: u64) -> u64 {
    calibration().conversion.ns(ticks)
}

/// The TSC value at which the monotonic clock reads `ns`.
pub fn tsc_at(ns: u64) -> u64 {
    let c = calibration();
    c.tsc_at_boot + c.conversion.ticks(ns)
}

/// Reads the RTC and anchors wall time; returns Unix seconds.
pub fn init_wall_clock() -> Option<u64> {
    let seconds = crate::rtc::read_unix_seconds()?;
    let unix_ns = seconds * 1_000_000_000;
    BOOT_UNIX_NS.store(unix_ns.saturating_sub(now_ns()).max(1), Ordering::Relaxed);
    Some(seconds)
}

/// Re-anchors wall time to the RTC when they disagree by more than
/// `max_skew_ns`. The TSC rate from calibration is off by a few hundred ppm
/// under TCG (the self test measures it against the RTC), which would drift
/// the wall clock by minutes a day; SigV4 allows 15 minutes of skew and TLS
/// checks certificate validity, so a periodic task calls this. Returns the
/// correction applied in ns (positive: the clock was behind).
pub fn resync_wall_clock(max_skew_ns: u64) -> Option<i64> {
    let rtc_ns = crate::rtc::read_unix_seconds()? * 1_000_000_000;
    let ours = unix_ns()?;
    // The RTC only has whole seconds: compare against the middle of its second.
    let rtc_mid_ns = rtc_ns + 500_000_000;
    let skew = rtc_mid_ns as i64 - ours as i64;
    if skew.unsigned_abs() <= max_skew_ns {
        return Some(0);
    }
    BOOT_UNIX_NS.store(rtc_mid_ns.saturating_sub(now_ns()).max(1), Ordering::Relaxed);
    Some(skew)
}

/// Wall-clock time in ns since the Unix epoch, once known.
pub fn unix_ns() -> Option<u64> {
    match BOOT_UNIX_NS.load(Ordering::Relaxed) {
        0 => None,
        boot => Some(boot + now_ns()),
    }
}

/// The monotonic clock as the runtime's timers see it.
pub struct KernelClock;

impl runtime::clock::Clock for KernelClock {
    fn now_ns(&self) -> u64 {
        now_ns()
    }
}

impl services::log::LogClock for KernelClock {
    fn uptime_ns(&self) -> u64 {
        now_ns()
    }

    fn unix_ns(&self) -> Option<u64> {
        unix_ns()
    }
}

pub static KERNEL_CLOCK: KernelClock = KernelClock;
