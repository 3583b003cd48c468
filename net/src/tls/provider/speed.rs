//! How fast each AEAD seals on the CPU we run on: a boot-time diagnostic for benchmark runs.
//!
//! Under QEMU's TCG, AES-NI and PCLMULQDQ are emulated by helper calls while CPUID still reports
//! them; the guest's own figure tells a slow AEAD apart from a slow network path. It is how the
//! build-to-build TLS cliff was traced to AVX code generation (AES-128-GCM 11-33 MB/s with AVX,
//! 41-66 without; see the kernel's build target). ChaCha20-Poly1305 is slower than AES-GCM
//! under TCG too (16-26 MB/s), and RustCrypto's portable backends, forced with
//! `--cfg aes_backend="soft"` and friends, seal 1-2 MB/s: AES-128-GCM stays first everywhere;
//! no suite order is derived from this. [`compare_gcm`] is the one figure a platform acts on: it
//! picks the faster of two AES-GCM implementations at start-up.
use alloc::vec;

use super::{Aes128Gcm, Aes256Gcm};
use aes_gcm::aead::{AeadInOut, KeyInit, Nonce};
use chacha20poly1305::ChaCha20Poly1305;

/// One full TLS record's payload: what bulk transfers seal and open.
const SAMPLE_BYTES: usize = 16 * 1024;
/// Time spent on each AEAD. Long enough to span many timer ticks and several records even under
/// TCG (a few MB/s), short enough not to show in boot time.
const BUDGET_NS: u64 = 5_000_000;

/// Seal throughput of each AEAD in MB/s (10^6 bytes/s) on 16 KiB records, and of copying such
/// a record (every byte of a TLS stream is copied several times besides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AeadSpeeds {
    pub aes_128_gcm: u64,
    pub aes_256_gcm: u64,
    pub chacha20_poly1305: u64,
    pub memcpy: u64,
}

/// Measures each AEAD for [`BUDGET_NS`] with the given monotonic clock (nanoseconds).
pub fn measure_aead_speeds(now_ns: &dyn Fn() -> u64) -> AeadSpeeds {
    let mut record = vec![0x5au8; SAMPLE_BYTES];
    AeadSpeeds {
        aes_128_gcm: seal_rate::<Aes128Gcm>(now_ns, &mut record),
        aes_256_gcm: seal_rate::<Aes256Gcm>(now_ns, &mut record),
        chacha20_poly1305: seal_rate::<ChaCha20Poly1305>(now_ns, &mut record),
        memcpy: copy_rate(now_ns, &mut record),
    }
}

fn copy_rate(now_ns: &dyn Fn() -> u64, record: &mut [u8]) -> u64 {
    let mut copy = vec![0u8; record.len()];
    rate(now_ns, || {
        copy.copy_from_slice(core::hint::black_box(&*record));
        core::hint::black_box(&mut copy);
    })
}

fn seal_rate<A: AeadInOut + KeyInit>(now_ns: &dyn Fn() -> u64, record: &mut [u8]) -> u64 {
    // The key's value does not change the speed.
    let aead = A::new(&Default::default());
    rate(now_ns, || seal_once(&aead, record))
}

/// AES-128-GCM seal rates of an accelerated implementation and of RustCrypto's on this CPU.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcmComparison {
    pub accelerated_mb_s: u64,
    pub portable_mb_s: u64,
}

#[cfg(target_arch = "x86_64")]
impl GcmComparison {
    pub fn accelerated_wins(&self) -> bool {
        self.accelerated_mb_s > self.portable_mb_s
    }
}

/// Time per implementation and round of [`compare_gcm`]: a few records even under TCG.
#[cfg(target_arch = "x86_64")]
const COMPARE_BUDGET_NS: u64 = 2_000_000;

/// Measures both AES-GCMs, interleaved in two rounds so that a noisy moment hits both, for a
/// platform that must choose one: the one-pass code wins on hardware and under KVM, but QEMU
/// 7.2's TCG runs each PCLMULQDQ as a bit-serial C helper, and there RustCrypto's GHASH (its
/// portable integer code in the image, whose build has no AVX for its CLMUL backend) wins.
#[cfg(target_arch = "x86_64")]
pub fn compare_gcm(accelerated: &'static super::gcm::Accelerated, now_ns: &dyn Fn() -> u64) -> GcmComparison {
    use super::gcm::{Aes128, AesGcm};
    let ours = AesGcm::<Aes128>::with_implementation(accelerated, &Default::default());
    let theirs = aes_gcm::Aes128Gcm::new(&Default::default());
    let mut record = vec![0x5au8; SAMPLE_BYTES];
    let (mut accelerated_mb_s, mut portable_mb_s) = (0, 0);
    for _ in 0..2 {
        accelerated_mb_s += rate_for(now_ns, COMPARE_BUDGET_NS, || seal_once(&ours, &mut record)) / 2;
        portable_mb_s += rate_for(now_ns, COMPARE_BUDGET_NS, || seal_once(&theirs, &mut record)) / 2;
    }
    GcmComparison { accelerated_mb_s, portable_mb_s }
}

/// Seals `record` in place once. The nonce repeats, which is only safe because nothing sealed
/// here leaves this module; sealing a buffer we own cannot fail (the length is far below every
/// AEAD's limit).
fn seal_once<A: AeadInOut>(aead: &A, record: &mut [u8]) {
    let _ = core::hint::black_box(aead.encrypt_inout_detached(&Nonce::<A>::default(), &[0u8; 5], record.into()));
}

/// MB/s of `step` on [`SAMPLE_BYTES`], run for [`BUDGET_NS`] after one warm-up run (key
/// schedule, caches).
fn rate(now_ns: &dyn Fn() -> u64, step: impl FnMut()) -> u64 {
    rate_for(now_ns, BUDGET_NS, step)
}

fn rate_for(now_ns: &dyn Fn() -> u64, budget_ns: u64, mut step: impl FnMut()) -> u64 {
    step();
    let start = now_ns();
    let mut done = 0u64;
    let mut elapsed;
    loop {
        step();
        done += SAMPLE_BYTES as u64;
        elapsed = now_ns().saturating_sub(start);
        if elapsed >= budget_ns {
            break;
        }
    }
    // bytes/ns * 1000 = MB/s
    done * 1000 / elapsed.max(1)
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;

    use super::*;

    #[test]
    fn measurement_stops_after_its_budget_and_reports_bytes_per_time() {
        // A clock that advances 1 ms per reading: each AEAD seals exactly 5 records in 5 ms
        // (16 KiB * 5 / 5 ms = 16.384 MB/s), however fast the CPU.
        let t = Cell::new(0u64);
        let clock = || {
            t.set(t.get() + 1_000_000);
            t.get()
        };
        let speeds = measure_aead_speeds(&clock);
        assert_eq!(speeds, AeadSpeeds { aes_128_gcm: 16, aes_256_gcm: 16, chacha20_poly1305: 16, memcpy: 16 });
    }

    #[test]
    fn a_real_clock_gives_nonzero_speeds() {
        extern crate std;
        let start = std::time::Instant::now();
        let clock = || start.elapsed().as_nanos() as u64;
        let speeds = measure_aead_speeds(&clock);
        assert!(
            speeds.aes_128_gcm > 0 && speeds.aes_256_gcm > 0 && speeds.chacha20_poly1305 > 0 && speeds.memcpy > 0,
            "{speeds:?}"
        );
    }
}
