//! AES-NI and PCLMULQDQ behind `net::tls::provider::gcm`, when the CPU has them (checked at run
//! time: the host build targets baseline x86-64).
use net::tls::provider::gcm::{self, AesKey, GcmKey};

static ONE_PASS: gcm::Accelerated = gcm::Accelerated { new_key, seal, open };

/// Installs the one-pass AES-GCM if the CPU supports it; returns whether it did.
pub fn install_aes_gcm() -> bool {
    let supported = std::is_x86_feature_detected!("aes")
        && std::is_x86_feature_detected!("pclmulqdq")
        && std::is_x86_feature_detected!("ssse3")
        && std::is_x86_feature_detected!("sse4.1");
    if supported {
        gcm::install(ONE_PASS);
    }
    supported
}

fn new_key(key: AesKey<'_>) -> GcmKey {
    // SAFETY: installed only after the CPU reported AES-NI, PCLMULQDQ, SSSE3 and SSE4.1, all that
    // the function is compiled for (SSE2 is baseline x86-64).
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

#[cfg(test)]
mod tests {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use net::tls::provider::{Aes128Gcm, Aes256Gcm};

    /// Installs the AES-NI code; every CPU of the machines this runs on has it.
    fn accelerated() {
        assert!(super::install_aes_gcm(), "this machine has AES-NI and PCLMULQDQ");
        assert!(Aes128Gcm::new_from_slice(&[0; 16]).unwrap().is_accelerated());
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn seal<A: AeadInOut + KeyInit>(key: &[u8], nonce: &[u8], aad: &[u8], text: &[u8]) -> Vec<u8> {
        let aead = A::new_from_slice(key).unwrap();
        let mut buf = text.to_vec();
        let nonce = aes_gcm::aead::Nonce::<A>::try_from(nonce).unwrap();
        let tag = aead.encrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into()).unwrap();
        buf.extend_from_slice(&tag);
        buf
    }

    fn open<A: AeadInOut + KeyInit>(key: &[u8], nonce: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let aead = A::new_from_slice(key).unwrap();
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
        accelerated();
        let start = std::time::Instant::now();
        let clock = || start.elapsed().as_nanos() as u64;
        let comparison = net::tls::provider::speed::compare_gcm(&super::ONE_PASS, &clock);
        assert!(comparison.accelerated_mb_s > 0 && comparison.portable_mb_s > 0, "{comparison:?}");
    }

    /// The GCM specification's test cases (McGrew and Viega, appendix B): 1-4 for AES-128 and
    /// 13-16 for AES-256 (96-bit IVs).
    #[test]
    fn specification_test_vectors() {
        accelerated();
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
        for (key, iv, aad, plain, cipher, tag) in cases {
            let (key, iv, aad, plain) = (hex(key), hex(iv), hex(aad), hex(plain));
            let mut expected = hex(cipher);
            expected.extend_from_slice(&hex(tag));
            let sealed = if key.len() == 16 {
                seal::<Aes128Gcm>(&key, &iv, &aad, &plain)
            } else {
                seal::<Aes256Gcm>(&key, &iv, &aad, &plain)
            };
            assert_eq!(sealed, expected, "key {} bytes, text {} bytes", key.len(), plain.len());
        }
    }

    /// Every length from 0 to 300 bytes (the wide loop, its remainder, partial blocks) and AAD of 0
    /// to 40 bytes, against RustCrypto's implementation; every tampered byte is refused.
    #[test]
    fn agrees_with_rustcrypto_and_refuses_tampering() {
        accelerated();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut byte = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        };
        for len in (0..300).chain([1023, 1024, 16 * 1024, 16 * 1024 + 1]) {
            let key: Vec<u8> = (0..32).map(|_| byte()).collect();
            let nonce: Vec<u8> = (0..12).map(|_| byte()).collect();
            let aad: Vec<u8> = (0..len % 41).map(|_| byte()).collect();
            let text: Vec<u8> = (0..len).map(|_| byte()).collect();
            let ours = seal::<Aes128Gcm>(&key[..16], &nonce, &aad, &text);
            assert_eq!(ours, seal::<aes_gcm::Aes128Gcm>(&key[..16], &nonce, &aad, &text), "AES-128, {len} bytes");
            assert_eq!(open::<Aes128Gcm>(&key[..16], &nonce, &aad, &ours).as_deref(), Some(&text[..]));
            let ours = seal::<Aes256Gcm>(&key, &nonce, &aad, &text);
            assert_eq!(ours, seal::<aes_gcm::Aes256Gcm>(&key, &nonce, &aad, &text), "AES-256, {len} bytes");
            assert_eq!(open::<Aes256Gcm>(&key, &nonce, &aad, &ours).as_deref(), Some(&text[..]));
            let mut bad = ours.clone();
            let at = usize::from(byte()) % bad.len();
            bad[at] ^= 1 << (byte() % 8);
            assert_eq!(open::<Aes256Gcm>(&key, &nonce, &aad, &bad), None, "a flipped bit at {at} of {len}");
            if !aad.is_empty() {
                let mut bad_aad = aad.clone();
                bad_aad[0] ^= 0x80;
                assert_eq!(open::<Aes256Gcm>(&key, &nonce, &bad_aad, &ours), None);
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
        accelerated();
        let mut byte = rng(0x1234_5678_9abc_def1);
        let lens = [0usize, 1, 15, 16, 17, 31, 127, 128, 129, 255, 256, 257, 1000, 16384, 16385, 16401];
        let aads = [0usize, 1, 5, 12, 13, 15, 16, 17, 29, 32, 33, 47, 63, 64, 65, 100, 255, 256, 257, 1000];
        for &len in &lens {
            for &alen in &aads {
                let key: Vec<u8> = (0..32).map(|_| byte()).collect();
                let nonce: Vec<u8> = (0..12).map(|_| byte()).collect();
                let aad: Vec<u8> = (0..alen).map(|_| byte()).collect();
                let text: Vec<u8> = (0..len).map(|_| byte()).collect();
                for k in [&key[..16], &key[..]] {
                    let (ours, theirs) = if k.len() == 16 {
                        (seal::<Aes128Gcm>(k, &nonce, &aad, &text), seal::<aes_gcm::Aes128Gcm>(k, &nonce, &aad, &text))
                    } else {
                        (seal::<Aes256Gcm>(k, &nonce, &aad, &text), seal::<aes_gcm::Aes256Gcm>(k, &nonce, &aad, &text))
                    };
                    assert_eq!(ours, theirs, "key {} len {len} aad {alen}", k.len());
                    let opened = if k.len() == 16 {
                        open::<Aes128Gcm>(k, &nonce, &aad, &theirs)
                    } else {
                        open::<Aes256Gcm>(k, &nonce, &aad, &theirs)
                    };
                    assert_eq!(opened.as_deref(), Some(&text[..]));
                }
            }
        }
    }

    #[test]
    fn every_flipped_bit_of_ciphertext_tag_aad_or_nonce_is_refused() {
        accelerated();
        let mut byte = rng(0xdead_beef_cafe_f00d);
        for len in [0usize, 1, 16, 37, 128, 129, 200] {
            let key: Vec<u8> = (0..16).map(|_| byte()).collect();
            let nonce: Vec<u8> = (0..12).map(|_| byte()).collect();
            let aad: Vec<u8> = (0..13).map(|_| byte()).collect();
            let text: Vec<u8> = (0..len).map(|_| byte()).collect();
            let sealed = seal::<Aes128Gcm>(&key, &nonce, &aad, &text);
            for at in 0..sealed.len() {
                for bit in 0..8 {
                    let mut bad = sealed.clone();
                    bad[at] ^= 1 << bit;
                    assert_eq!(open::<Aes128Gcm>(&key, &nonce, &aad, &bad), None);
                }
            }
            for at in 0..aad.len() {
                let mut bad = aad.clone();
                bad[at] ^= 1;
                assert_eq!(open::<Aes128Gcm>(&key, &nonce, &bad, &sealed), None);
            }
            let mut bad_nonce = nonce.clone();
            bad_nonce[11] ^= 1;
            assert_eq!(open::<Aes128Gcm>(&key, &bad_nonce, &aad, &sealed), None);
            // Truncated / extended AAD (length block)
            assert_eq!(open::<Aes128Gcm>(&key, &nonce, &aad[..12], &sealed), None);
        }
    }

    /// Both values of H's top bit (the folded carry of the key setup) and many key schedules.
    #[test]
    fn many_keys_agree_with_rustcrypto() {
        accelerated();
        let mut byte = rng(0x0bad_c0de_1234_4321);
        for _ in 0..5000 {
            let key: Vec<u8> = (0..32).map(|_| byte()).collect();
            let nonce: Vec<u8> = (0..12).map(|_| byte()).collect();
            let len = usize::from(byte()) + 100;
            let text: Vec<u8> = (0..len).map(|_| byte()).collect();
            let aad: Vec<u8> = (0..usize::from(byte()) % 40).map(|_| byte()).collect();
            assert_eq!(
                seal::<Aes128Gcm>(&key[..16], &nonce, &aad, &text),
                seal::<aes_gcm::Aes128Gcm>(&key[..16], &nonce, &aad, &text)
            );
            assert_eq!(
                seal::<Aes256Gcm>(&key, &nonce, &aad, &text),
                seal::<aes_gcm::Aes256Gcm>(&key, &nonce, &aad, &text)
            );
        }
    }

    /// `InOutBuf` with distinct buffers: the input is copied first, a refused open zeroes the output.
    #[test]
    fn separate_input_and_output_buffers() {
        use aes_gcm::aead::inout::InOutBuf;
        accelerated();
        let mut byte = rng(42);
        for len in [0usize, 5, 16, 130, 300] {
            let key: Vec<u8> = (0..16).map(|_| byte()).collect();
            let nonce = aes_gcm::aead::Nonce::<Aes128Gcm>::try_from(&[9u8; 12][..]).unwrap();
            let text: Vec<u8> = (0..len).map(|_| byte()).collect();
            let aead = Aes128Gcm::new_from_slice(&key).unwrap();
            let mut out = vec![0xeeu8; len];
            let tag = aead.encrypt_inout_detached(&nonce, b"hdr", InOutBuf::new(&text, &mut out).unwrap()).unwrap();
            let mut expected = seal::<aes_gcm::Aes128Gcm>(&key, &nonce, b"hdr", &text);
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
