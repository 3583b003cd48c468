//! Access keys: their records, their serialized form, the sealing of SigV4
//! secrets, and the in-memory [`Keystore`] the request path looks keys up
//! in.
//!
//! A SigV4 secret must be recoverable (the server recomputes signatures
//! with it), so it is stored sealed: ChaCha20-Poly1305 under the node key,
//! with a caller-supplied random nonce and the access key ID as associated
//! data (a sealed secret copied into another record does not open). An API
//! key needs only its hash ([`crate::apikey`]).
//!
//! What a key may do per bucket is not here: grants live in the bucket
//! catalog (`fs::catalog::Capabilities`). This module answers "who is
//! this" and "is the key an admin"; persistence is the caller's, with
//! [`KeyRecord::to_bytes`] / [`KeyRecord::from_bytes`] (format in the crate
//! README).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};

use crate::apikey::{self, ApiKey};
use crate::sigv4::{Secret, SecretLookup};

/// The first bytes of a serialized [`KeyRecord`].
pub const RECORD_MAGIC: [u8; 2] = *b"rk";
/// The format version after the magic.
pub const RECORD_VERSION: u8 = 1;
/// Random bytes [`Keystore::create_sigv4`] needs: 15 for the access key
/// ID, 30 for the secret, 12 for the sealing nonce.
pub const SIGV4_RANDOM_BYTES: usize = 15 + 30 + 12;
/// Characters of a generated access key ID (like AWS's `AKIA...`).
const ACCESS_KEY_ID_LEN: usize = 20;
/// Base32 (RFC 4648) letters: uppercase and digits, as AWS key IDs look.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The 32-byte key that seals SigV4 secrets on this node. `Debug` hides it.
#[derive(Clone)]
pub struct NodeKey([u8; 32]);

impl NodeKey {
    pub const fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey(..)")
    }
}

/// A sealed SigV4 secret: ChaCha20-Poly1305 ciphertext with its 16-byte tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyKind {
    SigV4 { sealed_secret: SealedSecret },
    ApiKey { secret_sha256: [u8; 32] },
}

/// One access key, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The SigV4 access key ID, or the API key's ID.
    pub access_key_id: String,
    pub kind: KeyKind,
    pub created_ms: u64,
    /// A revoked key is kept (so its ID is never reused) but never found.
    pub revoked: bool,
    /// May manage keys and buckets.
    pub admin: bool,
    /// A label for people.
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeystoreError {
    /// Bytes that are not a serialized record of a known version.
    InvalidRecord,
    /// The sealed secret does not open under this node key and ID.
    UnsealFailed,
    /// Encryption refused the input (only for absurd lengths).
    SealFailed,
    /// No usable key by that ID (unknown, revoked, or of the other kind).
    UnknownKey,
    /// The API key's secret does not match.
    WrongSecret,
    /// A key with that ID exists already.
    DuplicateKey,
}

impl KeystoreError {
    /// The S3 error code for errors met while authenticating a request.
    pub const fn s3_code(&self) -> &'static str {
        match self {
            KeystoreError::UnknownKey => "InvalidAccessKeyId",
            KeystoreError::WrongSecret => "AccessDenied",
            KeystoreError::InvalidRecord
            | KeystoreError::UnsealFailed
            | KeystoreError::SealFailed
            | KeystoreError::DuplicateKey => "InternalError",
        }
    }

    pub const fn http_status(&self) -> u16 {
        match self {
            KeystoreError::UnknownKey | KeystoreError::WrongSecret => 403,
            _ => 500,
        }
    }
}

impl fmt::Display for KeystoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({})", self.s3_code())
    }
}

/// Seals `secret` for `access_key_id` with a fresh random `nonce` (never
/// reuse one under the same node key).
pub fn seal(
    node_key: &NodeKey,
    access_key_id: &str,
    secret: &[u8],
    nonce: [u8; 12],
) -> Result<SealedSecret, KeystoreError> {
    let cipher = ChaCha20Poly1305::new(&Key::from(node_key.0));
    let ciphertext = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: secret, aad: access_key_id.as_bytes() })
        .map_err(|_| KeystoreError::SealFailed)?;
    Ok(SealedSecret { nonce, ciphertext })
}

/// Opens a sealed secret; fails on a wrong node key, a wrong ID or any
/// altered byte.
pub fn unseal(node_key: &NodeKey, access_key_id: &str, sealed: &SealedSecret) -> Result<Secret, KeystoreError> {
    let cipher = ChaCha20Poly1305::new(&Key::from(node_key.0));
    cipher
        .decrypt(&Nonce::from(sealed.nonce), Payload { msg: &sealed.ciphertext, aad: access_key_id.as_bytes() })
        .map(Secret::new)
        .map_err(|_| KeystoreError::UnsealFailed)
}

impl KeyRecord {
    /// `RECORD_MAGIC`, `RECORD_VERSION`, then the record in postcard.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::from(RECORD_MAGIC);
        bytes.push(RECORD_VERSION);
        match postcard::to_extend(self, bytes) {
            Ok(bytes) => bytes,
            // Serializing into a Vec fails only on allocation failure,
            // which aborts before it gets here.
            Err(_) => unreachable!("postcard into a Vec cannot fail"),
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeystoreError> {
        let body = bytes.strip_prefix(&RECORD_MAGIC[..]).ok_or(KeystoreError::InvalidRecord)?;
        let body = body.strip_prefix(&[RECORD_VERSION][..]).ok_or(KeystoreError::InvalidRecord)?;
        match postcard::take_from_bytes(body) {
            Ok((record, [])) => Ok(record),
            _ => Err(KeystoreError::InvalidRecord),
        }
    }
}

/// Every key of the node, by ID, with the node key to open SigV4 secrets.
#[derive(Debug)]
pub struct Keystore {
    node_key: NodeKey,
    records: BTreeMap<String, KeyRecord>,
}

impl Keystore {
    pub fn new(node_key: NodeKey) -> Self {
        Self { node_key, records: BTreeMap::new() }
    }

    /// Adds a record (at boot, from storage, or a new key). A second record
    /// with the same ID is refused: IDs are never reused, even revoked.
    pub fn insert(&mut self, record: KeyRecord) -> Result<(), KeystoreError> {
        if self.records.contains_key(&record.access_key_id) {
            return Err(KeystoreError::DuplicateKey);
        }
        self.records.insert(record.access_key_id.clone(), record);
        Ok(())
    }

    /// Marks a key revoked; returns the updated record for the caller to
    /// persist, `None` if there is no such key.
    pub fn revoke(&mut self, access_key_id: &str) -> Option<&KeyRecord> {
        let record = self.records.get_mut(access_key_id)?;
        record.revoked = true;
        Some(record)
    }

    /// The record by ID, revoked or not.
    pub fn get(&self, access_key_id: &str) -> Option<&KeyRecord> {
        self.records.get(access_key_id)
    }

    /// The record of a usable (not revoked) key.
    pub fn lookup(&self, access_key_id: &str) -> Option<&KeyRecord> {
        self.records.get(access_key_id).filter(|record| !record.revoked)
    }

    /// All records in ID order.
    pub fn iter(&self) -> impl Iterator<Item = &KeyRecord> {
        self.records.values()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Creates a SigV4 key from `random` (see [`SIGV4_RANDOM_BYTES`]):
    /// returns the record (to persist and [`Keystore::insert`]) and the
    /// secret access key text, to show the user once. The ID is 20 base32
    /// characters starting `RC`; the secret 40 base64 characters, like
    /// AWS's.
    pub fn create_sigv4(
        &self,
        name: &str,
        admin: bool,
        created_ms: u64,
        random: &[u8; SIGV4_RANDOM_BYTES],
    ) -> Result<(KeyRecord, String), KeystoreError> {
        let (id_bytes, rest) = random.split_at(15);
        let (secret_bytes, nonce_bytes) = rest.split_at(30);
        let mut access_key_id = String::from("RC");
        // 15 bytes = 120 bits = 24 base32 digits; the first 18 are used.
        let mut bits: u128 = 0;
        for &byte in id_bytes {
            bits = (bits << 8) | u128::from(byte);
        }
        for i in 0..ACCESS_KEY_ID_LEN - 2 {
            access_key_id.push(char::from(BASE32[((bits >> (115 - 5 * i)) & 31) as usize]));
        }
        let secret = STANDARD.encode(secret_bytes);
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(nonce_bytes);
        let sealed_secret = seal(&self.node_key, &access_key_id, secret.as_bytes(), nonce)?;
        let record = KeyRecord {
            access_key_id,
            kind: KeyKind::SigV4 { sealed_secret },
            created_ms,
            revoked: false,
            admin,
            name: String::from(name),
        };
        Ok((record, secret))
    }

    /// Creates an API key from `random`: the record (to persist and insert)
    /// and the key, whose [`ApiKey::to_text`] is shown to the user once.
    pub fn create_api_key(
        &self,
        name: &str,
        admin: bool,
        created_ms: u64,
        random: &[u8; apikey::RANDOM_BYTES],
    ) -> (KeyRecord, ApiKey) {
        let key = ApiKey::generate(random);
        let record = KeyRecord {
            access_key_id: String::from(key.id()),
            kind: KeyKind::ApiKey { secret_sha256: key.secret_sha256() },
            created_ms,
            revoked: false,
            admin,
            name: String::from(name),
        };
        (record, key)
    }

    /// The record of a presented API key, if it is known, not revoked and
    /// its secret matches.
    pub fn verify_api_key(&self, key: &ApiKey) -> Result<&KeyRecord, KeystoreError> {
        let record = self.lookup(key.id()).ok_or(KeystoreError::UnknownKey)?;
        match &record.kind {
            KeyKind::ApiKey { secret_sha256 } if key.verify(secret_sha256) => Ok(record),
            KeyKind::ApiKey { .. } => Err(KeystoreError::WrongSecret),
            KeyKind::SigV4 { .. } => Err(KeystoreError::UnknownKey),
        }
    }
}

impl SecretLookup for Keystore {
    /// The unsealed secret of a usable SigV4 key. A secret that does not
    /// unseal (a foreign node key, a damaged record) counts as unknown.
    fn secret_for(&self, access_key_id: &str) -> Option<Secret> {
        match &self.lookup(access_key_id)?.kind {
            KeyKind::SigV4 { sealed_secret } => unseal(&self.node_key, access_key_id, sealed_secret).ok(),
            KeyKind::ApiKey { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::{format, vec};

    use proptest::prelude::*;

    use super::*;
    use crate::sigv4::{EMPTY_SHA256_HEX, Request, SigV4Error, verify};

    const NODE: NodeKey = NodeKey::new([7; 32]);

    fn random<const N: usize>(seed: u8) -> [u8; N] {
        core::array::from_fn(|i| seed ^ (i as u8).wrapping_mul(13))
    }

    #[test]
    fn seal_and_unseal() {
        let secret = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let sealed = seal(&NODE, "AKID", secret, [1; 12]).unwrap();
        assert_eq!(sealed.ciphertext.len(), secret.len() + 16);
        assert_eq!(unseal(&NODE, "AKID", &sealed).unwrap().as_bytes(), secret);
        assert_eq!(unseal(&NODE, "AKIE", &sealed), Err(KeystoreError::UnsealFailed));
        assert_eq!(unseal(&NodeKey::new([8; 32]), "AKID", &sealed), Err(KeystoreError::UnsealFailed));
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert_eq!(unseal(&NODE, "AKID", &flipped), Err(KeystoreError::UnsealFailed));
        let mut renonced = sealed;
        renonced.nonce[0] ^= 1;
        assert_eq!(unseal(&NODE, "AKID", &renonced), Err(KeystoreError::UnsealFailed));
    }

    #[test]
    fn records_round_trip() {
        let store = Keystore::new(NODE);
        let (sigv4, _) = store.create_sigv4("ci", true, 1_700_000_000_000, &random(1)).unwrap();
        let (api, _) = store.create_api_key("script", false, 1_700_000_000_001, &random(2));
        for record in [sigv4, api] {
            let bytes = record.to_bytes();
            assert_eq!(&bytes[..3], b"rk\x01");
            assert_eq!(KeyRecord::from_bytes(&bytes), Ok(record.clone()));
            // Every truncation and a trailing byte are refused.
            for cut in 0..bytes.len() {
                assert_eq!(KeyRecord::from_bytes(&bytes[..cut]), Err(KeystoreError::InvalidRecord), "cut {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(KeyRecord::from_bytes(&longer), Err(KeystoreError::InvalidRecord));
            let mut other_version = bytes;
            other_version[2] = 2;
            assert_eq!(KeyRecord::from_bytes(&other_version), Err(KeystoreError::InvalidRecord));
        }
    }

    #[test]
    fn sigv4_keys_verify_requests() {
        let mut store = Keystore::new(NODE);
        let (record, secret) = store.create_sigv4("ci", false, 0, &random(3)).unwrap();
        let id = record.access_key_id.clone();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("RC") && id.bytes().all(|b| BASE32.contains(&b)));
        assert_eq!(secret.len(), 40);
        store.insert(record.clone()).unwrap();
        assert_eq!(store.insert(record), Err(KeystoreError::DuplicateKey));
        assert_eq!(store.secret_for(&id).unwrap().as_bytes(), secret.as_bytes());

        // Sign a request with the secret the user was shown.
        let date = "20130524T000000Z";
        let scope = "20130524/us-east-1/s3/aws4_request";
        let key = crate::sigv4::signing_key(secret.as_bytes(), "20130524", "us-east-1", "s3");
        let canonical = format!(
            "GET\n/b/k\n\nhost:h\nx-amz-content-sha256:{EMPTY_SHA256_HEX}\nx-amz-date:{date}\n\n\
             host;x-amz-content-sha256;x-amz-date\n{EMPTY_SHA256_HEX}"
        );
        let sts = crate::sigv4::string_to_sign(date, scope, &canonical);
        let signature = crate::hex::encode(&crate::sigv4::hmac_sha256(&key, &[sts.as_bytes()]));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={id}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, \
             Signature={signature}"
        );
        let headers = [
            ("host", "h"),
            ("x-amz-content-sha256", EMPTY_SHA256_HEX),
            ("x-amz-date", date),
            ("authorization", auth.as_str()),
        ];
        let request = Request { method: "GET", path: "/b/k", query: "", headers: &headers };
        assert_eq!(verify(&request, 1_369_353_600, &store).unwrap().access_key_id, id);

        assert!(store.revoke(&id).unwrap().revoked);
        assert_eq!(verify(&request, 1_369_353_600, &store), Err(SigV4Error::UnknownAccessKey));
        assert!(store.get(&id).is_some() && store.lookup(&id).is_none());
        assert!(store.revoke("nope").is_none());
    }

    #[test]
    fn api_keys_verify() {
        let mut store = Keystore::new(NODE);
        let (record, key) = store.create_api_key("script", true, 0, &random(4));
        store.insert(record).unwrap();
        let presented = ApiKey::parse(&key.to_text()).unwrap();
        let found = store.verify_api_key(&presented).unwrap();
        assert!(found.admin);
        // Same ID, other secret.
        let mut forged_text = key.to_text();
        let last = forged_text.pop().unwrap();
        forged_text.push(if last == 'A' { 'Q' } else { 'A' });
        let forged = ApiKey::parse(&forged_text).unwrap();
        assert_eq!(store.verify_api_key(&forged), Err(KeystoreError::WrongSecret));
        // An API key is not a SigV4 secret, and the other way round.
        assert!(store.secret_for(key.id()).is_none());
        let (sigv4, _) = store.create_sigv4("x", false, 0, &random(5)).unwrap();
        let sigv4_id = sigv4.access_key_id.clone();
        store.insert(sigv4).unwrap();
        let mut as_api: [u8; apikey::RANDOM_BYTES] = random(6);
        as_api[..8].copy_from_slice(&[0; 8]);
        assert_eq!(store.verify_api_key(&ApiKey::generate(&as_api)), Err(KeystoreError::UnknownKey));
        assert!(store.lookup(&sigv4_id).is_some());
        store.revoke(key.id());
        assert_eq!(store.verify_api_key(&presented), Err(KeystoreError::UnknownKey));
        assert_eq!(store.len(), 2);
        assert_eq!(store.iter().count(), 2);
        assert!(!store.is_empty());
        assert_eq!(vec![KeystoreError::UnknownKey.http_status()], vec![403]);
    }

    proptest! {
        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn from_bytes_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = KeyRecord::from_bytes(&bytes);
            if bytes.len() >= 3 {
                bytes[..3].copy_from_slice(b"rk\x01");
            }
            let _ = KeyRecord::from_bytes(&bytes);
        }
    }
}
