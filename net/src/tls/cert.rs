//! Certificates: PEM parsing (rustls-pki-types's strict `no_std` PEM reader, whose base64 decoder
//! is constant-time for private keys) and [`CertStore`], the server's certificate resolver.
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::TlsError;

/// All `CERTIFICATE` sections, in order (leaf first, then intermediates). Other sections are
/// skipped, so a combined key+chain file works; malformed PEM is an error, not a skip.
pub fn parse_pem_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|_| TlsError::BadPem)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificates);
    }
    Ok(chain)
}

/// The first private key section: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or PKCS#1.
/// Which algorithms we can use is decided later by the provider ([`TlsError::UnsupportedKey`]).
pub fn parse_pem_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey,
        _ => TlsError::BadPem,
    })
}

/// A certificate chain with its key, checked against each other.
pub fn certified_key(provider: &CryptoProvider, chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = parse_pem_chain(chain_pem)?;
    let key = provider.key_provider.load_private_key(parse_pem_key(key_pem)?).map_err(|_| TlsError::UnsupportedKey)?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(TlsError::KeyMismatch),
        Err(_) => Err(TlsError::BadCertificate),
    }
}

/// The server's certificates: a default one and any number chosen by SNI, by exact name or by a
/// one-label wildcard (`*.example.com` matches `a.example.com`, not `example.com` nor
/// `a.b.example.com`; an exact name wins over a wildcard). A client that sends no SNI, or a name
/// we hold nothing for, gets the default.
///
/// Entries can be replaced while the server runs: a handshake takes an `Arc` to the key it
/// resolved, so existing connections keep theirs and new handshakes see the replacement.
#[derive(Default)]
pub struct CertStore {
    entries: spin::RwLock<Entries>,
}

#[derive(Default)]
struct Entries {
    default: Option<Arc<CertifiedKey>>,
    exact: BTreeMap<String, Arc<CertifiedKey>>,
    /// Keyed by the parent domain: `*.example.com` is stored as `example.com`.
    wildcard: BTreeMap<String, Arc<CertifiedKey>>,
}

/// A name as we store it: lowercase DNS labels of `[a-z0-9-]`, 1..=63 bytes each, 253 at most,
/// with `wildcard`, the `*.` prefix is removed and the parent needs two labels (no `*.com`).
fn normalize(name: &str) -> Result<(bool, String), TlsError> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let (wildcard, base) = match name.strip_prefix("*.") {
        Some(parent) => (true, parent),
        None => (false, name.as_str()),
    };
    let labels_ok = base.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if !labels_ok || base.len() > 253 || (wildcard && !base.contains('.')) {
        return Err(TlsError::InvalidServerName);
    }
    Ok((wildcard, String::from(base)))
}

impl CertStore {
    /// An empty store: handshakes fail (no certificate) until one is added.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_default(key: CertifiedKey) -> Self {
        let store = Self::new();
        store.entries.write().default = Some(Arc::new(key));
        store
    }

    /// Installs `key` for the SNI name `sni` (exact, or `*.parent` wildcard), or as the default
    /// with `None`, replacing what was there.
    pub fn replace(&self, sni: Option<&str>, key: CertifiedKey) -> Result<(), TlsError> {
        let key = Arc::new(key);
        match sni {
            None => self.entries.write().default = Some(key),
            Some(name) => {
                let (wildcard, base) = normalize(name)?;
                let mut entries = self.entries.write();
                let map = if wildcard { &mut entries.wildcard } else { &mut entries.exact };
                map.insert(base, key);
            }
        }
        Ok(())
    }

    /// Removes an entry; returns whether there was one.
    pub fn remove(&self, sni: Option<&str>) -> Result<bool, TlsError> {
        let mut entries = self.entries.write();
        Ok(match sni {
            None => entries.default.take().is_some(),
            Some(name) => {
                let (wildcard, base) = normalize(name)?;
                let map = if wildcard { &mut entries.wildcard } else { &mut entries.exact };
                map.remove(&base).is_some()
            }
        })
    }

    /// The key a handshake naming `sni` gets.
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let entries = self.entries.read();
        if let Some(name) = sni {
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            if let Some(key) = entries.exact.get(&name) {
                return Some(key.clone());
            }
            if let Some((_, parent)) = name.split_once('.')
                && let Some(key) = entries.wildcard.get(parent)
            {
                return Some(key.clone());
            }
        }
        entries.default.clone()
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.entries.read();
        f.debug_struct("CertStore")
            .field("default", &entries.default.is_some())
            .field("exact", &entries.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &entries.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(client_hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_CHAIN: &[u8] = include_bytes!("../../tests/data/default.chain.pem");
    const DEFAULT_KEY: &[u8] = include_bytes!("../../tests/data/default.key");
    const BUCKET_CHAIN: &[u8] = include_bytes!("../../tests/data/bucket.chain.pem");
    const BUCKET_KEY: &[u8] = include_bytes!("../../tests/data/bucket.key");

    fn provider() -> CryptoProvider {
        crate::tls::provider(|buf| {
            buf.fill(0x5a);
            Ok(())
        })
    }

    #[test]
    fn pem_chain_and_keys() {
        assert_eq!(parse_pem_chain(DEFAULT_CHAIN).unwrap().len(), 2);
        assert!(matches!(parse_pem_key(DEFAULT_KEY).unwrap(), PrivateKeyDer::Pkcs8(_)));
        assert!(matches!(parse_pem_key(BUCKET_KEY).unwrap(), PrivateKeyDer::Sec1(_)));
        assert_eq!(parse_pem_chain(DEFAULT_KEY), Err(TlsError::NoCertificates));
        assert_eq!(parse_pem_key(DEFAULT_CHAIN), Err(TlsError::NoPrivateKey));
        assert_eq!(parse_pem_chain(b""), Err(TlsError::NoCertificates));
        // Corrupt base64 inside a section, a missing END line, a truncated file.
        let mut corrupt = DEFAULT_CHAIN.to_vec();
        corrupt[40] = b'!';
        assert_eq!(parse_pem_chain(&corrupt), Err(TlsError::BadPem));
        assert_eq!(parse_pem_chain(&DEFAULT_CHAIN[..DEFAULT_CHAIN.len() / 2]), Err(TlsError::BadPem));
        assert!(parse_pem_key(&DEFAULT_KEY[..DEFAULT_KEY.len() - 30]).is_err());
    }

    #[test]
    fn key_checks() {
        let p = provider();
        certified_key(&p, DEFAULT_CHAIN, DEFAULT_KEY).unwrap();
        certified_key(&p, BUCKET_CHAIN, BUCKET_KEY).unwrap();
        assert_eq!(certified_key(&p, DEFAULT_CHAIN, BUCKET_KEY).err(), Some(TlsError::KeyMismatch));
        // A well-formed PKCS#8 blob that is not P-256 (Ed25519, RFC 8410 §10.3).
        let ed25519 = b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        assert_eq!(certified_key(&p, DEFAULT_CHAIN, ed25519).err(), Some(TlsError::UnsupportedKey));
    }

    #[test]
    fn sni_lookup_rules() {
        let p = provider();
        let default = certified_key(&p, DEFAULT_CHAIN, DEFAULT_KEY).unwrap();
        let bucket = certified_key(&p, BUCKET_CHAIN, BUCKET_KEY).unwrap();
        let store = CertStore::with_default(default);
        store.replace(Some("*.Bucket.rustcore.test"), bucket.clone()).unwrap();
        store.replace(Some("exact.rustcore.test"), bucket).unwrap();
        let is_bucket = |name: Option<&str>| {
            store.lookup(name).unwrap().cert.len() == 2
                && store.lookup(name).unwrap().cert[0] == parse_pem_chain(BUCKET_CHAIN).unwrap()[0]
        };
        assert!(is_bucket(Some("photos.bucket.rustcore.test")));
        assert!(is_bucket(Some("PHOTOS.bucket.rustcore.test.")));
        assert!(is_bucket(Some("exact.rustcore.test")));
        assert!(!is_bucket(Some("bucket.rustcore.test")));
        assert!(!is_bucket(Some("a.photos.bucket.rustcore.test")));
        assert!(!is_bucket(None));
        for bad in ["*.com", "a..b", "-a.b", "*.*.a.b", "a.b*", ""] {
            assert_eq!(store.remove(Some(bad)), Err(TlsError::InvalidServerName), "{bad}");
        }
        assert_eq!(store.remove(Some("localhost")), Ok(false));
        assert!(store.remove(Some("*.bucket.rustcore.test")).unwrap());
        assert!(!is_bucket(Some("photos.bucket.rustcore.test")));
    }
}
