//! The keystore as the S3 server uses it: `security::keystore` records kept
//! in the store's system namespace [`KEYS_NAMESPACE`] (so every change goes
//! through the journal) and held in memory for lookups. SigV4 secrets are
//! sealed with the node key, which comes from the boot archive and is never
//! written to the data disk; API keys are kept only as SHA-256 hashes.

use alloc::string::String;
use alloc::vec::Vec;

use fs::store::{Store, StoreError};
use security::apikey::ApiKey;
use security::keystore::{self, KeyKind, KeyRecord, Keystore, KeystoreError, NodeKey};
use security::sigv4::{Secret, SecretLookup};
use spin::Mutex;
use storage::block::BlockDevice;

use crate::s3::auth::KeySource;
use crate::s3::server::Principal;

pub const KEYS_NAMESPACE: &str = "keys";

/// Keys to create on first boot (from the boot archive).
#[derive(Clone, Debug, Default)]
pub struct Bootstrap {
    /// A SigV4 admin key: access key ID and secret.
    pub admin_sigv4: Option<(String, String)>,
    /// An admin API key (the admin API's bearer token), as text.
    pub admin_token: Option<String>,
}

#[derive(Debug)]
pub enum KeysError {
    Store(StoreError),
    Keystore(KeystoreError),
}

impl From<StoreError> for KeysError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<KeystoreError> for KeysError {
    fn from(error: KeystoreError) -> Self {
        Self::Keystore(error)
    }
}

pub struct StoreKeys {
    keystore: Mutex<Keystore>,
    /// Records that did not decode at load (kept on disk, never used).
    pub unreadable: usize,
}

impl StoreKeys {
    /// Loads every stored record, then creates the bootstrap keys that do
    /// not exist yet (each durable before it is usable). `random` gives the
    /// nonce for sealing.
    pub async fn open<D: BlockDevice>(
        store: &Store<D>,
        node_key: NodeKey,
        bootstrap: &Bootstrap,
        random: fn(&mut [u8]),
        now_ms: u64,
    ) -> Result<Self, KeysError> {
        let mut keystore = Keystore::new(node_key.clone());
        let mut unreadable = 0;
        let stored: Vec<Vec<u8>> = store.with_state(|state| {
            state
                .system
                .range((String::from(KEYS_NAMESPACE), String::new())..)
                .take_while(|((namespace, _), _)| namespace == KEYS_NAMESPACE)
                .map(|(_, v)| v.clone())
                .collect()
        });
        for bytes in stored {
            match KeyRecord::from_bytes(&bytes) {
                Ok(record) => {
                    let _ = keystore.insert(record);
                }
                Err(_) => unreadable += 1,
            }
        }
        let keys = Self { keystore: Mutex::new(keystore), unreadable };
        if let Some((id, secret)) = &bootstrap.admin_sigv4
            && keys.with(|k| k.get(id).is_none())
        {
            let mut nonce = [0u8; 12];
            random(&mut nonce);
            let sealed_secret = keystore::seal(&node_key, id, secret.as_bytes(), nonce)?;
            let record = KeyRecord {
                access_key_id: id.clone(),
                kind: KeyKind::SigV4 { sealed_secret },
                created_ms: now_ms,
                revoked: false,
                admin: true,
                name: String::from("bootstrap admin"),
            };
            keys.add(store, &record).await?;
        }
        if let Some(token) = &bootstrap.admin_token
            && let Ok(key) = ApiKey::parse(token)
            && keys.with(|k| k.get(key.id()).is_none())
        {
            let record = KeyRecord {
                access_key_id: String::from(key.id()),
                kind: KeyKind::ApiKey { secret_sha256: key.secret_sha256() },
                created_ms: now_ms,
                revoked: false,
                admin: true,
                name: String::from("bootstrap admin token"),
            };
            keys.add(store, &record).await?;
        }
        Ok(keys)
    }

    /// Runs `read` on the keystore.
    pub fn with<R>(&self, read: impl FnOnce(&Keystore) -> R) -> R {
        read(&self.keystore.lock())
    }

    /// Creates a SigV4 key, durable before it is returned with its secret.
    pub async fn create_sigv4<D: BlockDevice>(
        &self,
        store: &Store<D>,
        name: &str,
        admin: bool,
        random: fn(&mut [u8]),
        now_ms: u64,
    ) -> Result<(KeyRecord, String), KeysError> {
        let mut bytes = [0u8; keystore::SIGV4_RANDOM_BYTES];
        random(&mut bytes);
        let (record, secret) = self.keystore.lock().create_sigv4(name, admin, now_ms, &bytes)?;
        self.add(store, &record).await?;
        Ok((record, secret))
    }

    /// Creates an API key; the text is shown once and stored only hashed.
    pub async fn create_api_key<D: BlockDevice>(
        &self,
        store: &Store<D>,
        name: &str,
        admin: bool,
        random: fn(&mut [u8]),
        now_ms: u64,
    ) -> Result<(KeyRecord, ApiKey), KeysError> {
        let mut bytes = [0u8; security::apikey::RANDOM_BYTES];
        random(&mut bytes);
        let (record, key) = self.keystore.lock().create_api_key(name, admin, now_ms, &bytes);
        self.add(store, &record).await?;
        Ok((record, key))
    }

    /// Stores a new record, then makes it usable (never usable before it
    /// is durable).
    async fn add<D: BlockDevice>(&self, store: &Store<D>, record: &KeyRecord) -> Result<(), KeysError> {
        store.system_put(KEYS_NAMESPACE, &record.access_key_id, record.to_bytes()).await?;
        self.keystore.lock().insert(record.clone())?;
        Ok(())
    }

    /// Revokes a key: durable first, then refused. `Ok(false)`: no such key.
    pub async fn revoke<D: BlockDevice>(&self, store: &Store<D>, access_key_id: &str) -> Result<bool, KeysError> {
        let record = self.keystore.lock().get(access_key_id).cloned();
        let Some(mut record) = record else {
            return Ok(false);
        };
        record.revoked = true;
        store.system_put(KEYS_NAMESPACE, access_key_id, record.to_bytes()).await?;
        self.keystore.lock().revoke(access_key_id);
        Ok(true)
    }
}

impl KeySource for StoreKeys {
    fn sigv4_secret(&self, access_key_id: &str) -> Option<(Secret, bool)> {
        let keystore = self.keystore.lock();
        let admin = keystore.lookup(access_key_id)?.admin;
        keystore.secret_for(access_key_id).map(|secret| (secret, admin))
    }

    fn api_key(&self, presented: &str) -> Option<Principal> {
        let key = ApiKey::parse(presented).ok()?;
        let keystore = self.keystore.lock();
        let record = keystore.verify_api_key(&key).ok()?;
        Some(Principal { access_key: record.access_key_id.clone(), admin: record.admin })
    }
}
