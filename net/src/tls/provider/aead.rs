//! Record protection: the three AEADs for TLS 1.3 (RFC 8446 §5.2) and TLS 1.2 (RFC 5288 for
//! AES-GCM with an 8-byte explicit nonce, RFC 7905 for ChaCha20-Poly1305 with none), on RustCrypto
//! `aead` 0.6 in-place (`AeadInOut`) so a 16 KiB record is encrypted without a copy.
use alloc::boxed::Box;
use core::marker::PhantomData;

use aes_gcm::aead::{self, AeadCore, AeadInOut, KeyInit};
use rustls::crypto::cipher::UnsupportedOperationError;
use rustls::crypto::cipher::{AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, make_tls12_aad, make_tls13_aad};
use rustls::crypto::cipher::{KeyBlockShape, MessageDecrypter, MessageEncrypter, Nonce, OutboundOpaqueMessage};
use rustls::crypto::cipher::{OutboundPlainMessage, PrefixedPayload, Tls12AeadAlgorithm, Tls13AeadAlgorithm};
use rustls::{ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion};

/// All three AEADs have a 16-byte tag and a 12-byte nonce.
const TAG_LEN: usize = 16;
/// RFC 5288: TLS 1.2 AES-GCM sends the last 8 bytes of the nonce in every record.
const GCM_EXPLICIT_NONCE_LEN: usize = 8;
/// RFC 5288: the other 4 bytes (the salt) come from the key block.
const GCM_SALT_LEN: usize = 4;

/// An AEAD usable in records: the RustCrypto cipher types implement this.
pub trait RecordAead: AeadInOut + KeyInit + Send + Sync + 'static {}
impl<T: AeadInOut + KeyInit + Send + Sync + 'static> RecordAead for T {}

/// Builds the cipher. rustls derives keys of exactly `key_len()` / `key_block_shape()` bytes, so
/// a length mismatch is a bug in the suite table, not bad input.
fn cipher<A: RecordAead>(key: &[u8]) -> A {
    A::new_from_slice(key).expect("rustls derives keys of the suite's length")
}

fn nonce<A: AeadCore>(n: &[u8; 12]) -> aead::Nonce<A> {
    aead::Nonce::<A>::try_from(&n[..]).expect("all our AEADs take 12-byte nonces")
}

fn tag<A: AeadCore>(t: &[u8]) -> Result<aead::Tag<A>, Error> {
    aead::Tag::<A>::try_from(t).map_err(|_| Error::DecryptError)
}

type Secrets = fn(AeadKey, Iv) -> ConnectionTrafficSecrets;

/// TLS 1.3 AEAD algorithm `A`: nonce = IV xor sequence number, AAD = record header.
pub struct Tls13Aead<A> {
    _alg: PhantomData<fn() -> A>,
    key_len: usize,
    secrets: Secrets,
}

impl<A> Tls13Aead<A> {
    pub const fn new(key_len: usize, secrets: Secrets) -> Self {
        Self { _alg: PhantomData, key_len, secrets }
    }
}

impl<A: RecordAead> Tls13AeadAlgorithm for Tls13Aead<A> {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Tls13Record::<A> { aead: cipher(key.as_ref()), iv })
    }
    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Tls13Record::<A> { aead: cipher(key.as_ref()), iv })
    }
    fn key_len(&self) -> usize {
        self.key_len
    }
    fn extract_keys(&self, key: AeadKey, iv: Iv) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok((self.secrets)(key, iv))
    }
}

struct Tls13Record<A> {
    aead: A,
    iv: Iv,
}

impl<A: RecordAead> MessageEncrypter for Tls13Record<A> {
    fn encrypt(&mut self, msg: OutboundPlainMessage<'_>, seq: u64) -> Result<OutboundOpaqueMessage, Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_chunks(&msg.payload);
        // TLSInnerPlaintext: content || real content type (no padding).
        payload.extend_from_slice(&msg.typ.to_array());
        let nonce_bytes = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(total_len);
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce::<A>(&nonce_bytes), &aad, payload.as_mut().into())
            .map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(&tag);
        Ok(OutboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

impl<A: RecordAead> MessageDecrypter for Tls13Record<A> {
    fn decrypt<'a>(&mut self, mut msg: InboundOpaqueMessage<'a>, seq: u64) -> Result<InboundPlainMessage<'a>, Error> {
        let payload = &mut msg.payload;
        let len = payload.len();
        if len < TAG_LEN {
            return Err(Error::DecryptError);
        }
        let nonce_bytes = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(len);
        let (body, tag_bytes) = payload.split_at_mut(len - TAG_LEN);
        let tag = tag::<A>(tag_bytes)?;
        self.aead
            .decrypt_inout_detached(&nonce::<A>(&nonce_bytes), &aad, body.into(), &tag)
            .map_err(|_| Error::DecryptError)?;
        payload.truncate(len - TAG_LEN);
        msg.into_tls13_unpadded_message()
    }
}

/// TLS 1.2 AES-GCM (RFC 5288): 4-byte salt from the key block, 8-byte explicit nonce per record.
pub struct Tls12Gcm<A> {
    _alg: PhantomData<fn() -> A>,
    key_len: usize,
    secrets: Secrets,
}

impl<A> Tls12Gcm<A> {
    pub const fn new(key_len: usize, secrets: Secrets) -> Self {
        Self { _alg: PhantomData, key_len, secrets }
    }
}

/// salt || explicit: `extra` is 8 random bytes from rustls, so explicit nonces are
/// random-start-plus-sequence (as in rustls's own providers) and never repeat under one key.
fn gcm_iv(salt: &[u8], explicit: &[u8]) -> Iv {
    let mut full = [0u8; 12];
    full[..GCM_SALT_LEN].copy_from_slice(salt);
    full[GCM_SALT_LEN..].copy_from_slice(explicit);
    Iv::new(full)
}

impl<A: RecordAead> Tls12AeadAlgorithm for Tls12Gcm<A> {
    fn encrypter(&self, key: AeadKey, iv: &[u8], extra: &[u8]) -> Box<dyn MessageEncrypter> {
        Box::new(Tls12GcmEncrypter::<A> { aead: cipher(key.as_ref()), iv: gcm_iv(iv, extra) })
    }
    fn decrypter(&self, key: AeadKey, iv: &[u8]) -> Box<dyn MessageDecrypter> {
        let mut salt = [0u8; GCM_SALT_LEN];
        salt.copy_from_slice(iv);
        Box::new(Tls12GcmDecrypter::<A> { aead: cipher(key.as_ref()), salt })
    }
    fn key_block_shape(&self) -> KeyBlockShape {
        KeyBlockShape {
            enc_key_len: self.key_len,
            fixed_iv_len: GCM_SALT_LEN,
            explicit_nonce_len: GCM_EXPLICIT_NONCE_LEN,
        }
    }
    fn extract_keys(
        &self,
        key: AeadKey,
        iv: &[u8],
        explicit: &[u8],
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok((self.secrets)(key, gcm_iv(iv, explicit)))
    }
}

struct Tls12GcmEncrypter<A> {
    aead: A,
    iv: Iv,
}

impl<A: RecordAead> MessageEncrypter for Tls12GcmEncrypter<A> {
    fn encrypt(&mut self, msg: OutboundPlainMessage<'_>, seq: u64) -> Result<OutboundOpaqueMessage, Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        let nonce_bytes = Nonce::new(&self.iv, seq).0;
        let aad = make_tls12_aad(seq, msg.typ, msg.version, msg.payload.len());
        payload.extend_from_slice(&nonce_bytes[GCM_SALT_LEN..]);
        payload.extend_from_chunks(&msg.payload);
        let tag = self
            .aead
            .encrypt_inout_detached(
                &nonce::<A>(&nonce_bytes),
                &aad,
                (&mut payload.as_mut()[GCM_EXPLICIT_NONCE_LEN..]).into(),
            )
            .map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(&tag);
        Ok(OutboundOpaqueMessage::new(msg.typ, msg.version, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + GCM_EXPLICIT_NONCE_LEN + TAG_LEN
    }
}

struct Tls12GcmDecrypter<A> {
    aead: A,
    salt: [u8; GCM_SALT_LEN],
}

impl<A: RecordAead> MessageDecrypter for Tls12GcmDecrypter<A> {
    fn decrypt<'a>(&mut self, mut msg: InboundOpaqueMessage<'a>, seq: u64) -> Result<InboundPlainMessage<'a>, Error> {
        let (typ, version) = (msg.typ, msg.version);
        let payload = &mut msg.payload;
        if payload.len() < GCM_EXPLICIT_NONCE_LEN + TAG_LEN {
            return Err(Error::DecryptError);
        }
        let plain_len = payload.len() - GCM_EXPLICIT_NONCE_LEN - TAG_LEN;
        let mut nonce_bytes = [0u8; 12];
        nonce_bytes[..GCM_SALT_LEN].copy_from_slice(&self.salt);
        nonce_bytes[GCM_SALT_LEN..].copy_from_slice(&payload[..GCM_EXPLICIT_NONCE_LEN]);
        let aad = make_tls12_aad(seq, typ, version, plain_len);
        let (body, tag_bytes) = payload[GCM_EXPLICIT_NONCE_LEN..].split_at_mut(plain_len);
        let tag = tag::<A>(tag_bytes)?;
        self.aead
            .decrypt_inout_detached(&nonce::<A>(&nonce_bytes), &aad, body.into(), &tag)
            .map_err(|_| Error::DecryptError)?;
        payload.copy_within(GCM_EXPLICIT_NONCE_LEN..GCM_EXPLICIT_NONCE_LEN + plain_len, 0);
        payload.truncate(plain_len);
        Ok(msg.into_plain_message())
    }
}

/// TLS 1.2 ChaCha20-Poly1305 (RFC 7905): 12-byte IV from the key block, nonce = IV xor sequence.
pub struct Tls12ChaCha;

type ChaCha = chacha20poly1305::ChaCha20Poly1305;

impl Tls12AeadAlgorithm for Tls12ChaCha {
    fn encrypter(&self, key: AeadKey, iv: &[u8], _extra: &[u8]) -> Box<dyn MessageEncrypter> {
        Box::new(Tls12ChaChaRecord { aead: cipher::<ChaCha>(key.as_ref()), iv: Iv::copy(iv) })
    }
    fn decrypter(&self, key: AeadKey, iv: &[u8]) -> Box<dyn MessageDecrypter> {
        Box::new(Tls12ChaChaRecord { aead: cipher::<ChaCha>(key.as_ref()), iv: Iv::copy(iv) })
    }
    fn key_block_shape(&self) -> KeyBlockShape {
        KeyBlockShape { enc_key_len: 32, fixed_iv_len: 12, explicit_nonce_len: 0 }
    }
    fn extract_keys(
        &self,
        key: AeadKey,
        iv: &[u8],
        _explicit: &[u8],
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv: Iv::copy(iv) })
    }
}

struct Tls12ChaChaRecord {
    aead: ChaCha,
    iv: Iv,
}

impl MessageEncrypter for Tls12ChaChaRecord {
    fn encrypt(&mut self, msg: OutboundPlainMessage<'_>, seq: u64) -> Result<OutboundOpaqueMessage, Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        let nonce_bytes = Nonce::new(&self.iv, seq).0;
        let aad = make_tls12_aad(seq, msg.typ, msg.version, msg.payload.len());
        payload.extend_from_chunks(&msg.payload);
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce::<ChaCha>(&nonce_bytes), &aad, payload.as_mut().into())
            .map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(&tag);
        Ok(OutboundOpaqueMessage::new(msg.typ, msg.version, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + TAG_LEN
    }
}

impl MessageDecrypter for Tls12ChaChaRecord {
    fn decrypt<'a>(&mut self, mut msg: InboundOpaqueMessage<'a>, seq: u64) -> Result<InboundPlainMessage<'a>, Error> {
        let (typ, version) = (msg.typ, msg.version);
        let payload = &mut msg.payload;
        let len = payload.len();
        if len < TAG_LEN {
            return Err(Error::DecryptError);
        }
        let plain_len = len - TAG_LEN;
        let nonce_bytes = Nonce::new(&self.iv, seq).0;
        let aad = make_tls12_aad(seq, typ, version, plain_len);
        let (body, tag_bytes) = payload.split_at_mut(plain_len);
        let tag = tag::<ChaCha>(tag_bytes)?;
        self.aead
            .decrypt_inout_detached(&nonce::<ChaCha>(&nonce_bytes), &aad, body.into(), &tag)
            .map_err(|_| Error::DecryptError)?;
        payload.truncate(plain_len);
        Ok(msg.into_plain_message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::{Aes128Gcm, Aes256Gcm};

    fn hex(s: &str) -> alloc::vec::Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Seals `plain` in place and checks ciphertext and tag, then opens it again and checks that
    /// a flipped tag bit is refused.
    fn check<A: RecordAead>(key: &str, nonce_hex: &str, aad: &str, plain: &[u8], ct: &str, tag_hex: &str) {
        let aead: A = cipher(&hex(key));
        let n: [u8; 12] = hex(nonce_hex).try_into().unwrap();
        let mut buf = plain.to_vec();
        let t = aead.encrypt_inout_detached(&nonce::<A>(&n), &hex(aad), buf.as_mut_slice().into()).unwrap();
        assert_eq!(buf, hex(ct));
        assert_eq!(t.to_vec(), hex(tag_hex));
        let mut bad = t.to_vec();
        bad[0] ^= 1;
        let mut copy = buf.clone();
        let bad = tag::<A>(&bad).unwrap();
        assert!(aead.decrypt_inout_detached(&nonce::<A>(&n), &hex(aad), copy.as_mut_slice().into(), &bad).is_err());
        aead.decrypt_inout_detached(&nonce::<A>(&n), &hex(aad), buf.as_mut_slice().into(), &t).unwrap();
        assert_eq!(buf, plain);
    }

    /// RFC 8439 §2.8.2.
    #[test]
    fn chacha20_poly1305_rfc8439() {
        check::<ChaCha>(
            "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
            "070000004041424344454647",
            "50515253c0c1c2c3c4c5c6c7",
            b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, \
sunscreen would be it.",
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b\
1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116",
            "1ae10b594f09e26a7e902ecbd0600691",
        );
    }

    const GCM_PLAIN: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525\
b16aedf5aa0de657ba637b39";
    const GCM_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

    /// McGrew & Viega GCM spec test case 4 (AES-128, with AAD, 60-byte plaintext).
    #[test]
    fn aes128_gcm_test_case_4() {
        check::<Aes128Gcm>(
            "feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888",
            GCM_AAD,
            &hex(GCM_PLAIN),
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa05\
1ba30b396a0aac973d58e091",
            "5bc94fbc3221a5db94fae95ae7121a47",
        );
    }

    /// McGrew & Viega GCM spec test case 16 (AES-256, with AAD, 60-byte plaintext).
    #[test]
    fn aes256_gcm_test_case_16() {
        check::<Aes256Gcm>(
            "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888",
            GCM_AAD,
            &hex(GCM_PLAIN),
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838\
c5f61e6393ba7a0abcc9f662",
            "76fc6ece0f4e1768cddf8853bb2d551b",
        );
    }

    /// A TLS 1.3 record through the `MessageEncrypter`/`MessageDecrypter` path: round trip, the
    /// inner content type restored, a tampered record refused.
    #[test]
    fn tls13_record_round_trip_and_tamper() {
        use rustls::crypto::cipher::{InboundOpaqueMessage, OutboundChunks};
        // rustls's public API builds only 32-byte `AeadKey`s: use AES-256.
        let alg = Tls13Aead::<Aes256Gcm>::new(32, |key, iv| ConnectionTrafficSecrets::Aes256Gcm { key, iv });
        let mut enc = alg.encrypter(AeadKey::from([7u8; 32]), Iv::new([9u8; 12]));
        let mut dec = alg.decrypter(AeadKey::from([7u8; 32]), Iv::new([9u8; 12]));
        let plain = OutboundPlainMessage {
            typ: ContentType::ApplicationData,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(b"hello records"),
        };
        let sealed = enc.encrypt(plain, 5).unwrap().encode();
        let mut body = sealed[5..].to_vec();
        let opened = dec
            .decrypt(InboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, &mut body), 5);
        assert_eq!(opened.unwrap().payload, b"hello records");
        let mut body = sealed[5..].to_vec();
        body[0] ^= 0x80;
        let opened = dec
            .decrypt(InboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, &mut body), 5);
        assert!(opened.is_err());
    }
}
