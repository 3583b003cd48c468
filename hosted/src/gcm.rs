//! AES-GCM behind `net::tls::provider::gcm` on the CPU's instructions, checked at run time (the
//! host build targets baseline x86-64): the sixteen-block VAES code on CPUs with AVX-512, VAES and
//! VPCLMULQDQ, else the eight-block AES-NI code.
use net::tls::provider::gcm::{self, AesKey, GcmKey};

/// AES-NI, PCLMULQDQ, SSSE3 and SSE4.1 (SSE2 is baseline x86-64). Private, like [`VAES`]: calling
/// either on a CPU without its features is undefined behaviour, so they are handed out only by
/// [`best`] and [`available`], after the check.
static AES_NI: gcm::Accelerated = gcm::Accelerated { new_key, seal: seal_ni, open: open_ni };
/// [`AES_NI`]'s features and AVX-512F/BW/VL, VAES and VPCLMULQDQ; its keys are [`AES_NI`]'s.
static VAES: gcm::Accelerated = gcm::Accelerated { new_key, seal: seal_vaes, open: open_vaes };

fn has_aes_ni() -> bool {
    std::is_x86_feature_detected!("aes")
        && std::is_x86_feature_detected!("pclmulqdq")
        && std::is_x86_feature_detected!("ssse3")
        && std::is_x86_feature_detected!("sse4.1")
}

fn has_vaes() -> bool {
    has_aes_ni()
        && std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("vaes")
        && std::is_x86_feature_detected!("vpclmulqdq")
}

/// The fastest implementation this CPU runs, if any.
pub fn best() -> Option<&'static gcm::Accelerated> {
    if has_vaes() {
        Some(&VAES)
    } else if has_aes_ni() {
        Some(&AES_NI)
    } else {
        None
    }
}

/// Every implementation this CPU runs, named, AES-NI first (tests and benchmarks).
pub fn available() -> Vec<(&'static str, &'static gcm::Accelerated)> {
    let mut all = Vec::new();
    if has_aes_ni() {
        all.push(("AES-NI", &AES_NI));
    }
    if has_vaes() {
        all.push(("VAES", &VAES));
    }
    all
}

/// Installs the fastest one-pass AES-GCM the CPU supports; returns whether there was one.
pub fn install_aes_gcm() -> bool {
    match best() {
        Some(accelerated) => {
            gcm::install(*accelerated);
            true
        }
        None => false,
    }
}

fn new_key(key: AesKey<'_>) -> GcmKey {
    // SAFETY: reachable only through AES_NI and VAES, which `best` and `available` hand out after
    // the CPU reported AES-NI, PCLMULQDQ, SSSE3 and SSE4.1, all that the function is compiled for.
    unsafe { gcm::new_key_ni(key) }
}

fn seal_ni(key: &GcmKey, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    // SAFETY: as in `new_key`.
    unsafe { gcm::seal_ni(key, nonce, aad, data) }
}

fn open_ni(key: &GcmKey, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; 16]) -> bool {
    // SAFETY: as in `new_key`.
    unsafe { gcm::open_ni(key, nonce, aad, data, tag) }
}

fn seal_vaes(key: &GcmKey, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    // SAFETY: reachable only through VAES, which `best` and `available` hand out after the CPU
    // reported every feature the function is compiled for (`has_vaes`).
    unsafe { gcm::seal_vaes(key, nonce, aad, data) }
}

fn open_vaes(key: &GcmKey, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; 16]) -> bool {
    // SAFETY: as in `seal_vaes`.
    unsafe { gcm::open_vaes(key, nonce, aad, data, tag) }
}

#[cfg(test)]
mod tests {
    use aes_gcm::aead::{AeadInOut, Key, KeyInit};
    use net::tls::provider::gcm::{Accelerated, Aes128, Aes256, AesGcm};
    use net::tls::provider::{Aes128Gcm, Aes256Gcm};

    /// The implementations every test runs: AES-NI, which every CPU of the machines this runs on
    /// has, and VAES where the CPU has AVX-512 (it is said when it is left out).
    fn implementations() -> Vec<(&'static str, &'static Accelerated)> {
        let all = super::available();
        assert!(!all.is_empty(), "this machine has AES-NI and PCLMULQDQ");
        if all.len() == 1 {
            eprintln!("no AVX-512 VAES on this CPU: only the AES-NI code is tested");
        }
        all
    }

    #[test]
    fn installs_the_fastest_implementation() {
        assert!(super::install_aes_gcm(), "this machine has AES-NI and PCLMULQDQ");
        assert!(Aes128Gcm::new_from_slice(&[0; 16]).unwrap().is_accelerated());
    }

    fn ours128(imp: &'static Accelerated, key: &[u8]) -> AesGcm<Aes128> {
        AesGcm::with_implementation(imp, &Key::<Aes128Gcm>::try_from(key).unwrap())
    }

    fn ours256(imp: &'static Accelerated, key: &[u8]) -> AesGcm<Aes256> {
        AesGcm::with_implementation(imp, &Key::<Aes256Gcm>::try_from(key).unwrap())
    }

    /// Ours on `imp`, AES-128 or AES-256 by the key's length.
    fn seal(imp: &'static Accelerated, key: &[u8], nonce: &[u8], aad: &[u8], text: &[u8]) -> Vec<u8> {
        if key.len() == 16 {
            seal_with(&ours128(imp, key), nonce, aad, text)
        } else {
            seal_with(&ours256(imp, key), nonce, aad, text)
        }
    }

    fn open(imp: &'static Accelerated, key: &[u8], nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if key.len() == 16 {
            open_with(&ours128(imp, key), nonce, aad, sealed)
        } else {
            open_with(&ours256(imp, key), nonce, aad, sealed)
        }
    }

    /// RustCrypto's, the reference.
    fn seal_reference(key: &[u8], nonce: &[u8], aad: &[u8], text: &[u8]) -> Vec<u8> {
        if key.len() == 16 {
            seal_with(&aes_gcm::Aes128Gcm::new_from_slice(key).unwrap(), nonce, aad, text)
        } else {
            seal_with(&aes_gcm::Aes256Gcm::new_from_slice(key).unwrap(), nonce, aad, text)
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn seal_with<A: AeadInOut>(aead: &A, nonce: &[u8], aad: &[u8], text: &[u8]) -> Vec<u8> {
        let mut buf = text.to_vec();
        let nonce = aes_gcm::aead::Nonce::<A>::try_from(nonce).unwrap();
        let tag = aead.encrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into()).unwrap();
        buf.extend_from_slice(&tag);
        buf
    }

    fn open_with<A: AeadInOut>(aead: &A, nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (body, tag) = sealed.split_at(sealed.len() - 16);
        let mut buf = body.to_vec();
        let nonce = aes_gcm::aead::Nonce::<A>::try_from(nonce).unwrap();
        let tag = aes_gcm::aead::Tag::<A>::try_from(tag).unwrap();
        match aead.decrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into(), &tag) {
            Ok(()) => Some(buf),
            Err(_) => {
                assert!(buf.iter().all(|&b| b == 0), "a failed open released plaintext");
                None
            }
        }
    }

    /// The measurement the kernel installs by: both rates are measured (which wins is not
    /// asserted: a timed figure belongs in a benchmark, not a test).
    #[test]
    fn both_implementations_can_be_measured_side_by_side() {
        let start = std::time::Instant::now();
        let clock = || start.elapsed().as_nanos() as u64;
        for (name, imp) in implementations() {
            // A rate is whole MB/s over a few milliseconds: a thread descheduled for most of them
            // (seen under `cargo xtask test` beside a build) reads 0. Ten such windows in a row
            // would be a broken implementation, not a busy machine.
            let measured = (0..10)
                .map(|_| net::tls::provider::speed::compare_gcm(imp, &clock))
                .find(|comparison| comparison.accelerated_mb_s > 0 && comparison.portable_mb_s > 0);
            assert!(measured.is_some(), "{name}: no window measured both");
        }
    }

    /// The GCM specification's test cases (McGrew and Viega, appendix B): 1-4 for AES-128 and
    /// 13-16 for AES-256 (96-bit IVs).
    #[test]
    fn specification_test_vectors() {
        let k128 = "feffe9928665731c6d6a8f9467308308";
        let k256 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
        let iv = "cafebabefacedbaddecaf888";
        let p = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
        let p60 = &p[..120];
        let aad = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
        let cases: [(&str, &str, &str, &str, &str, &str); 6] = [
            (
                "00000000000000000000000000000000",
                "000000000000000000000000",
                "",
                "",
                "",
                "58e2fccefa7e3061367f1d57a4e7455a",
            ),
            (
                "00000000000000000000000000000000",
                "000000000000000000000000",
                "",
                "00000000000000000000000000000000",
                "0388dace60b6a392f328c2b971b2fe78",
                "ab6e47d42cec13bdf53a67b21257bddf",
            ),
            (
                k128,
                iv,
                "",
                p,
                "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
                "4d5c2af327cd64a62cf35abd2ba6fab4",
            ),
            (
                k128,
                iv,
                aad,
                p60,
                "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
                "5bc94fbc3221a5db94fae95ae7121a47",
            ),
            (
                k256,
                iv,
                "",
                p,
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
                "b094dac5d93471bdec1a502270e3cc6c",
            ),
            (
                k256,
                iv,
                aad,
                p60,
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                "76fc6ece0f4e1768cddf8853bb2d551b",
            ),
        ];
        for (name, imp) in implementations() {
            for (key, iv, aad, plain, cipher, tag) in cases {
                let (key, iv, aad, plain) = (hex(key), hex(iv), hex(aad), hex(plain));
                let mut expected = hex(cipher);
                expected.extend_from_slice(&hex(tag));
                let sealed = seal(imp, &key, &iv, &aad, &plain);
                assert_eq!(sealed, expected, "{name}, key {} bytes, text {} bytes", key.len(), plain.len());
                assert_eq!(open(imp, &key, &iv, &aad, &sealed), Some(plain));
            }
        }
    }

    /// `imp` seals as RustCrypto does and opens what it sealed.
    fn assert_agrees(name: &str, imp: &'static Accelerated, key: &[u8], nonce: &[u8], aad: &[u8], text: &[u8]) {
        let ours = seal(imp, key, nonce, aad, text);
        let context = format!("{name}, key {} bytes, {} bytes, AAD {} bytes", key.len(), text.len(), aad.len());
        assert_eq!(ours, seal_reference(key, nonce, aad, text), "{context}");
        assert_eq!(open(imp, key, nonce, aad, &ours).as_deref(), Some(text), "{context}");
    }

    /// Every length from 0 to 300 bytes (the wide loop, its remainder, partial blocks) and AAD of 0
    /// to 40 bytes, against RustCrypto's implementation; every tampered byte is refused.
    #[test]
    fn agrees_with_rustcrypto_and_refuses_tampering() {
        for (name, imp) in implementations() {
            let mut byte = rng(0x9e37_79b9_7f4a_7c15);
            for len in (0..300).chain([1023, 1024, 16 * 1024, 16 * 1024 + 1]) {
                let key: Vec<u8> = (0..32).map(|_| byte()).collect();
                let nonce: Vec<u8> = (0..12).map(|_| byte()).collect();
                let aad: Vec<u8> = (0..len % 41).map(|_| byte()).collect();
                let text: Vec<u8> = (0..len).map(|_| byte()).collect();
                for k in [&key[..16], &key[..]] {
                    assert_agrees(name, imp, k, &nonce, &aad, &text);
                }
                let ours = seal(imp, &key, &nonce, &aad, &text);
                let mut bad = ours.clone();
                let at = usize::from(byte()) % bad.len();
                bad[at] ^= 1 << (byte() % 8);
                assert_eq!(open(imp, &key, &nonce, &aad, &bad), None, "{name}: a flipped bit at {at} of {len}");
                if !aad.is_empty() {
                    let mut bad_aad = aad.clone();
                    bad_aad[0] ^= 0x80;
                    assert_eq!(open(imp, &key, &nonce, &bad_aad, &ours), None);
                }
            }
        }
    }

    fn rng(seed: u64) -> impl FnMut() -> u8 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        }
    }

    /// AAD up to 1,000 bytes (TLS uses 5 and 13) against texts across the eight-block step and
    /// record sizes; ours opens what RustCrypto sealed.
    #[test]
    fn long_aad_and_tls_record_shapes_agree_both_ways() {
        let lens = [0usize, 1, 15, 16, 17, 31, 127, 128, 129, 255, 256, 257, 1000, 16384, 16385, 16401];
        let aads = [0usize, 1, 5, 12, 13, 15, 16, 17, 29, 32, 33, 47, 63, 64, 65, 100, 255, 256, 257, 1000];
        for (name, imp) in implementations() {
            let mut byte = rng(0x1234_5678_9abc_def1);
            for &len in &lens {
                for &alen in &aads {
                    let key: Vec<u8> = (0..32).map(|_| byte()).collect();
                    let nonce: Vec<u8> = (0..12).map(|_| byte()).collect();
                    let aad: Vec<u8> = (0..alen).map(|_| byte()).collect();
                    let text: Vec<u8> = (0..len).map(|_| byte()).collect();
                    for k in [&key[..16], &key[..]] {
                        let theirs = seal_reference(k, &nonce, &aad, &text);
                        assert_eq!(
                            seal(imp, k, &nonce, &aad, &text),
                            theirs,
                            "{name}, key {} len {len} aad {alen}",
                            k.len()
                        );
                        assert_eq!(open(imp, k, &nonce, &aad, &theirs).as_deref(), Some(&text[..]));
                    }
                }
            }
        }
    }

    #[test]
    fn every_flipped_bit_of_ciphertext_tag_aad_or_nonce_is_refused() {
        for (_, imp) in implementations() {
            every_flipped_bit_is_refused(imp);
        }
    }

    fn every_flipped_bit_is_refused(imp: &'static Accelerated) {
        let mut byte = rng(0xdead_beef_cafe_f00d);
        // 256 and 273: one sixteen-block step of the VAES code, alone and with a partial block.
        for len in [0usize, 1, 16, 37, 128, 129, 200, 256, 273] {
            let key: Vec<u8> = (0..16).map(|_| byte()).collect();
            let nonce: Vec<u8> = (0..12).map(|_| byte()).collect();
            let aad: Vec<u8> = (0..13).map(|_| byte()).collect();
            let text: Vec<u8> = (0..len).map(|_| byte()).collect();
            let sealed = seal(imp, &key, &nonce, &aad, &text);
            for at in 0..sealed.len() {
                for bit in 0..8 {
                    let mut bad = sealed.clone();
                    bad[at] ^= 1 << bit;
                    assert_eq!(open(imp, &key, &nonce, &aad, &bad), None);
                }
            }
            for at in 0..aad.len() {
                let mut bad = aad.clone();
                bad[at] ^= 1;
                assert_eq!(open(imp, &key, &nonce, &bad, &sealed), None);
            }
            let mut bad_nonce = nonce.clone();
            bad_nonce[11] ^= 1;
            assert_eq!(open(imp, &key, &bad_nonce, &aad, &sealed), None);
            // Truncated / extended AAD (length block)
            assert_eq!(open(imp, &key, &nonce, &aad[..12], &sealed), None);
        }
    }

    /// Both values of H's top bit (the folded carry of the key setup) and many key schedules.
    #[test]
    fn many_keys_agree_with_rustcrypto() {
        for (name, imp) in implementations() {
            let mut byte = rng(0x0bad_c0de_1234_4321);
            for _ in 0..5000 {
                let key: Vec<u8> = (0..32).map(|_| byte()).collect();
                let nonce: Vec<u8> = (0..12).map(|_| byte()).collect();
                let len = usize::from(byte()) + 100;
                let text: Vec<u8> = (0..len).map(|_| byte()).collect();
                let aad: Vec<u8> = (0..usize::from(byte()) % 40).map(|_| byte()).collect();
                for k in [&key[..16], &key[..]] {
                    assert_eq!(seal(imp, k, &nonce, &aad, &text), seal_reference(k, &nonce, &aad, &text), "{name}");
                }
            }
        }
    }

    /// Every length 0..=2048 with a random AAD of 0..=100 bytes, and every AAD length for the
    /// lengths within two bytes of a multiple of 128 (the eight- and sixteen-block steps' edges):
    /// seal agrees with RustCrypto's, open takes it back.
    #[test]
    fn every_length_to_2048_and_aad_to_100_agree_with_rustcrypto() {
        for (name, imp) in implementations() {
            let mut byte = rng(0x5eed_0fa1_11e4_7001);
            let near_steps = (0..=2048usize).filter(|len| matches!(len % 128, 0..=2 | 126..=127));
            let cases = (0..=2048usize)
                .map(|len| (len, usize::from(byte()) % 101))
                .chain(near_steps.flat_map(|len| (0..=100).map(move |alen| (len, alen))));
            for (len, alen) in cases.collect::<Vec<_>>() {
                let key: Vec<u8> = (0..32).map(|_| byte()).collect();
                let nonce: Vec<u8> = (0..12).map(|_| byte()).collect();
                let aad: Vec<u8> = (0..alen).map(|_| byte()).collect();
                let text: Vec<u8> = (0..len).map(|_| byte()).collect();
                for k in [&key[..16], &key[..]] {
                    assert_agrees(name, imp, k, &nonce, &aad, &text);
                }
            }
        }
    }

    /// The two implementations share keys and open each other's records; a tampered record is
    /// refused by both.
    #[test]
    fn vaes_and_aes_ni_open_each_others_records() {
        let all = implementations();
        let mut byte = rng(0xc055_0be7_0000_0001);
        for len in [0usize, 15, 128, 255, 256, 257, 511, 1000, 4096, 16385] {
            let key: Vec<u8> = (0..32).map(|_| byte()).collect();
            let nonce: Vec<u8> = (0..12).map(|_| byte()).collect();
            let aad: Vec<u8> = (0..13).map(|_| byte()).collect();
            let text: Vec<u8> = (0..len).map(|_| byte()).collect();
            for k in [&key[..16], &key[..]] {
                for &(sealer, sealing) in &all {
                    let sealed = seal(sealing, k, &nonce, &aad, &text);
                    let mut bad = sealed.clone();
                    let at = usize::from(byte()) % bad.len();
                    bad[at] ^= 1 << (byte() % 8);
                    for &(opener, opening) in &all {
                        let opened = open(opening, k, &nonce, &aad, &sealed);
                        assert_eq!(
                            opened.as_deref(),
                            Some(&text[..]),
                            "sealed by {sealer}, opened by {opener}, {len} bytes"
                        );
                        assert_eq!(open(opening, k, &nonce, &aad, &bad), None, "{sealer} to {opener}, flipped {at}");
                    }
                }
            }
        }
    }

    /// `InOutBuf` with distinct buffers: the input is copied first, a refused open zeroes the output.
    #[test]
    fn separate_input_and_output_buffers() {
        for (_, imp) in implementations() {
            separate_buffers(imp);
        }
    }

    fn separate_buffers(imp: &'static Accelerated) {
        use aes_gcm::aead::inout::InOutBuf;
        let mut byte = rng(42);
        for len in [0usize, 5, 16, 130, 300, 600] {
            let key: Vec<u8> = (0..16).map(|_| byte()).collect();
            let nonce = aes_gcm::aead::Nonce::<Aes128Gcm>::try_from(&[9u8; 12][..]).unwrap();
            let text: Vec<u8> = (0..len).map(|_| byte()).collect();
            let aead = ours128(imp, &key);
            let mut out = vec![0xeeu8; len];
            let tag = aead.encrypt_inout_detached(&nonce, b"hdr", InOutBuf::new(&text, &mut out).unwrap()).unwrap();
            let mut expected = seal_reference(&key, &nonce, b"hdr", &text);
            let etag = expected.split_off(len);
            assert_eq!(out, expected);
            assert_eq!(&tag[..], &etag[..]);
            let mut plain = vec![0u8; len];
            aead.decrypt_inout_detached(&nonce, b"hdr", InOutBuf::new(&out, &mut plain).unwrap(), &tag).unwrap();
            assert_eq!(plain, text);
            let mut bad = tag;
            bad[0] ^= 1;
            let mut plain2 = vec![0x77u8; len];
            assert!(
                aead.decrypt_inout_detached(&nonce, b"hdr", InOutBuf::new(&out, &mut plain2).unwrap(), &bad).is_err()
            );
            assert!(plain2.iter().all(|&b| b == 0));
        }
    }
}
