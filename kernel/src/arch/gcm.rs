//! AES-NI and PCLMULQDQ behind `net::tls::provider::gcm`, the one-pass AES-GCM of every TLS record.
use net::tls::provider::gcm::{self, AesKey, GcmKey};
use net::tls::provider::speed;

static ONE_PASS: gcm::Accelerated = gcm::Accelerated { new_key, seal, open };

/// Installs the one-pass AES-GCM where it is the faster of the two (measured now: it is on
/// hardware and under KVM, not under QEMU 7.2's TCG, which emulates PCLMULQDQ slowly); returns
/// the measurement for the boot log. The boot trampoline refused to start on a CPU without
/// AES-NI, PCLMULQDQ, SSSE3 or SSE4.1, so the instructions are always there.
pub fn install() -> speed::GcmComparison {
    let comparison = speed::compare_gcm(&ONE_PASS, &crate::time::now_ns);
    if comparison.accelerated_wins() {
        gcm::install(ONE_PASS);
    }
    comparison
}

fn new_key(key: AesKey<'_>) -> GcmKey {
    // SAFETY: the image requires AES-NI, PCLMULQDQ, SSSE3 and SSE4.1 (checked by CPUID before any
    // Rust runs), which is all the function is compiled for.
    unsafe { gcm::new_key_ni(key) }
}

fn seal(key: &GcmKey, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    // SAFETY: as in `new_key`.
    unsafe { gcm::seal_ni(key, nonce, aad, data) }
}

fn open(key: &GcmKey, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; 16]) -> bool {
    // SAFETY: as in `new_key`.
    unsafe { gcm::open_ni(key, nonce, aad, data, tag) }
}
