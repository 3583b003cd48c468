//! Server signing key: ECDSA P-256 with SHA-256, from PKCS#8 or SEC1 DER. Nonces are RFC 6979
//! deterministic, so signing needs no randomness and a bad random source cannot leak the key.
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use p256::pkcs8::DecodePrivateKey;
use rustls::pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, SignatureAlgorithm, SignatureScheme};

/// DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, 66-byte BIT STRING),
/// followed by the 65-byte uncompressed point. Lets rustls check that a key matches its
/// certificate (`CertifiedKey::keys_match`).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Debug)]
pub struct EcdsaP256SigningKey(Arc<p256::ecdsa::SigningKey>);

impl EcdsaP256SigningKey {
    /// Accepts PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`) P-256 keys; RSA,
    /// Ed25519 and other curves are refused (`net::tls::cert` maps this to `UnsupportedKey`).
    pub fn from_der(der: &PrivateKeyDer<'_>) -> Result<Self, Error> {
        let key = match der {
            PrivateKeyDer::Pkcs8(pkcs8) => p256::ecdsa::SigningKey::from_pkcs8_der(pkcs8.secret_pkcs8_der()).ok(),
            PrivateKeyDer::Sec1(sec1) => {
                p256::SecretKey::from_sec1_der(sec1.secret_sec1_der()).ok().map(p256::ecdsa::SigningKey::from)
            }
            _ => None,
        };
        key.map(|k| Self(Arc::new(k)))
            .ok_or_else(|| Error::General(String::from("only ECDSA P-256 keys are supported")))
    }
}

impl SigningKey for EcdsaP256SigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(EcdsaP256Signer(self.0.clone())) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        let point = self.0.verifying_key().to_sec1_point(false);
        let mut spki = Vec::with_capacity(P256_SPKI_PREFIX.len() + point.as_bytes().len());
        spki.extend_from_slice(&P256_SPKI_PREFIX);
        spki.extend_from_slice(point.as_bytes());
        Some(SubjectPublicKeyInfoDer::from(spki))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

#[derive(Debug)]
struct EcdsaP256Signer(Arc<p256::ecdsa::SigningKey>);

impl Signer for EcdsaP256Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        use p256::ecdsa::signature::Signer as _;
        let signature: p256::ecdsa::Signature =
            self.0.try_sign(message).map_err(|_| Error::General(String::from("ECDSA signing failed")))?;
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}
