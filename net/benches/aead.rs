//! AEAD throughput on 16 KiB records, raw (in place: RustCrypto's AES-GCM beside each of our
//! one-pass implementations this CPU runs, AES-NI and VAES, one of which the platforms install) and through our provider's TLS 1.3
//! `MessageEncrypter` (the record path: copy into the record buffer, content type, tag).
//! MB/s = 10^6 bytes/s, median of 5 runs. Prints a Markdown table; the record path is measured on
//! the implementation `hosted` installs (VAES where the CPU has it).
//!
//! The xtask runs it with the kernel's code generation:
//! `RUSTFLAGS="-C target-feature=+sse3,+ssse3,+sse4.1,+sse4.2,+popcnt,+aes,+pclmulqdq,+bmi1,+bmi2"`.
use std::hint::black_box;
use std::time::Instant;

use aes_gcm::aead::{AeadInOut, KeyInit};
use net::tls::provider::{self, gcm};
use rustls::crypto::cipher::{OutboundChunks, OutboundPlainMessage};
use rustls::{ContentType, ProtocolVersion, Tls13CipherSuite};

const RECORD_BYTES: usize = 16 * 1024;
const RECORDS_PER_RUN: usize = 4096; // 64 MiB per run
const RUNS: usize = 5;

fn median_mb_s(mut run: impl FnMut()) -> f64 {
    run(); // warm-up
    let mut rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            run();
            (RECORD_BYTES * RECORDS_PER_RUN) as f64 / start.elapsed().as_secs_f64() / 1e6
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[RUNS / 2]
}

fn raw<A: AeadInOut>(aead: &A) -> f64 {
    let nonce = aes_gcm::aead::Nonce::<A>::try_from(&[7u8; 12][..]).unwrap();
    let mut record = vec![0x5au8; RECORD_BYTES];
    median_mb_s(|| {
        for _ in 0..RECORDS_PER_RUN {
            black_box(aead.encrypt_inout_detached(&nonce, &[0u8; 5], record.as_mut_slice().into()).unwrap());
        }
    })
}

/// Opens a sealed record; each round first copies the ciphertext back (the copy is counted).
fn raw_open<A: AeadInOut>(aead: &A) -> f64 {
    let nonce = aes_gcm::aead::Nonce::<A>::try_from(&[7u8; 12][..]).unwrap();
    let mut sealed = vec![0x5au8; RECORD_BYTES];
    let tag = aead.encrypt_inout_detached(&nonce, &[0u8; 5], sealed.as_mut_slice().into()).unwrap();
    let mut record = sealed.clone();
    median_mb_s(|| {
        for _ in 0..RECORDS_PER_RUN {
            record.copy_from_slice(&sealed);
            aead.decrypt_inout_detached(&nonce, &[0u8; 5], record.as_mut_slice().into(), &tag).unwrap();
            black_box(&record);
        }
    })
}

fn record_path(suite: &Tls13CipherSuite) -> f64 {
    let expander = suite.hkdf_provider.extract_from_secret(None, &[1u8; 32]);
    // rustls's public API only builds 32-byte `AeadKey`s; its (doc-hidden) key schedule helper
    // derives one of the suite's length, exactly as a handshake does.
    let key = rustls::internal::derive_traffic_key(expander.as_ref(), suite.aead_alg);
    let iv = rustls::internal::derive_traffic_iv(expander.as_ref());
    let mut encrypter = suite.aead_alg.encrypter(key, iv);
    let payload = vec![0x5au8; RECORD_BYTES];
    let mut seq = 0u64;
    median_mb_s(|| {
        for _ in 0..RECORDS_PER_RUN {
            let message = OutboundPlainMessage {
                typ: ContentType::ApplicationData,
                version: ProtocolVersion::TLSv1_2,
                payload: OutboundChunks::Single(&payload),
            };
            black_box(encrypter.encrypt(message, seq).unwrap());
            seq += 1;
        }
    })
}

/// Seal and open rates of `aead`, a row of the table.
fn row(name: String, aead: &impl AeadInOut, record: Option<f64>) -> (String, f64, f64, Option<f64>) {
    (name, raw(aead), raw_open(aead), record)
}

fn main() {
    assert!(hosted::gcm::install_aes_gcm(), "the AES-GCM rows need AES-NI and PCLMULQDQ");
    let installed = hosted::gcm::best().expect("installed above");
    let k16 = &[3u8; 16];
    let k32 = &[3u8; 32];
    let mut rows = vec![row("AES-128-GCM, RustCrypto".into(), &aes_gcm::Aes128Gcm::new(k16.into()), None)];
    for (name, imp) in hosted::gcm::available() {
        let record = std::ptr::eq(imp, installed).then(|| record_path(&provider::TLS13_AES_128_GCM_SHA256));
        rows.push(row(
            format!("AES-128-GCM, ours ({name})"),
            &gcm::Aes128Gcm::with_implementation(imp, k16.into()),
            record,
        ));
    }
    rows.push(row("AES-256-GCM, RustCrypto".into(), &aes_gcm::Aes256Gcm::new(k32.into()), None));
    for (name, imp) in hosted::gcm::available() {
        let record = std::ptr::eq(imp, installed).then(|| record_path(&provider::TLS13_AES_256_GCM_SHA384));
        rows.push(row(
            format!("AES-256-GCM, ours ({name})"),
            &gcm::Aes256Gcm::with_implementation(imp, k32.into()),
            record,
        ));
    }
    rows.push(row(
        "ChaCha20-Poly1305 (RustCrypto)".into(),
        &chacha20poly1305::ChaCha20Poly1305::new(k32.into()),
        Some(record_path(&provider::TLS13_CHACHA20_POLY1305_SHA256)),
    ));
    println!(
        "| 16 KiB records, MB/s (median of {RUNS}) | seal, raw | open, raw (after a 16 KiB copy) | seal, TLS 1.3 record (MessageEncrypter) |"
    );
    println!("|---|---|---|---|");
    for (name, seal, open, record) in rows {
        let record = record.map_or_else(|| "-".to_string(), |r| format!("{r:.0}"));
        println!("| {name} | {seal:.0} | {open:.0} | {record} |");
    }
}
