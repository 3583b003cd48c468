//! Differential: each one-pass AES-GCM this CPU runs (`hosted::gcm::available()`: AES-NI, and the
//! sixteen-block VAES code on AVX-512 CPUs) against RustCrypto's, on any key, nonce, AAD and text.
//! Both must produce the same ciphertext and tag, open it, and refuse it with one bit flipped (and
//! ours must then release no plaintext).
#![no_main]

use aes_gcm::aead::{AeadInOut, KeyInit, Nonce, Tag};
use libfuzzer_sys::fuzz_target;
use net::tls::provider::gcm::{Accelerated, Aes128Gcm, Aes256Gcm};

fuzz_target!(|data: &[u8]| {
    static IMPLEMENTATIONS: std::sync::OnceLock<Vec<(&'static str, &'static Accelerated)>> = std::sync::OnceLock::new();
    let implementations = IMPLEMENTATIONS.get_or_init(|| {
        let all = hosted::gcm::available();
        assert!(!all.is_empty(), "this machine has AES-NI");
        all
    });
    let Some((&mode, rest)) = data.split_first() else { return };
    if rest.len() < 32 + 12 + 3 {
        return;
    }
    let (key, rest) = rest.split_at(32);
    let (nonce, rest) = rest.split_at(12);
    let (aad_len, flip, body) = (usize::from(rest[0]) * 4, u16::from_le_bytes([rest[1], rest[2]]), &rest[3..]);
    let (aad, text) = body.split_at(aad_len.min(body.len()));
    for &(_, imp) in implementations {
        if mode & 1 == 0 {
            let ours = Aes128Gcm::with_implementation(imp, key[..16].try_into().unwrap());
            check(&ours, &aes_gcm::Aes128Gcm::new_from_slice(&key[..16]).unwrap(), nonce, aad, text, flip);
        } else {
            let ours = Aes256Gcm::with_implementation(imp, key.try_into().unwrap());
            check(&ours, &aes_gcm::Aes256Gcm::new_from_slice(key).unwrap(), nonce, aad, text, flip);
        }
    }
});

fn check<Ours: AeadInOut, Theirs: AeadInOut>(
    ours: &Ours,
    theirs: &Theirs,
    nonce: &[u8],
    aad: &[u8],
    text: &[u8],
    flip: u16,
) {
    let our_nonce = Nonce::<Ours>::try_from(nonce).unwrap();
    let their_nonce = Nonce::<Theirs>::try_from(nonce).unwrap();

    let mut sealed = text.to_vec();
    let tag = ours.encrypt_inout_detached(&our_nonce, aad, sealed.as_mut_slice().into()).unwrap();
    let mut reference = text.to_vec();
    let reference_tag = theirs.encrypt_inout_detached(&their_nonce, aad, reference.as_mut_slice().into()).unwrap();
    assert_eq!(sealed, reference);
    assert_eq!(tag.as_slice(), reference_tag.as_slice());

    let mut opened = sealed.clone();
    ours.decrypt_inout_detached(&our_nonce, aad, opened.as_mut_slice().into(), &tag).unwrap();
    assert_eq!(opened, text);

    // One bit flipped somewhere in ciphertext || tag.
    let at = usize::from(flip >> 3) % (sealed.len() + tag.len());
    let mut bad = sealed.clone();
    let mut bad_tag = Tag::<Ours>::try_from(tag.as_slice()).unwrap();
    if at < bad.len() {
        bad[at] ^= 1 << (flip & 7);
    } else {
        bad_tag[at - bad.len()] ^= 1 << (flip & 7);
    }
    let their_bad_tag = Tag::<Theirs>::try_from(bad_tag.as_slice()).unwrap();
    let mut their_bad = bad.clone();
    assert!(ours.decrypt_inout_detached(&our_nonce, aad, bad.as_mut_slice().into(), &bad_tag).is_err());
    assert!(bad.iter().all(|&b| b == 0), "a refused open released plaintext");
    assert!(theirs.decrypt_inout_detached(&their_nonce, aad, their_bad.as_mut_slice().into(), &their_bad_tag).is_err());
}
