//! Signature verification: ECDSA P-256 with SHA-256 only, the one scheme our certificates use.
//! Needed by our own test client and, later, client-certificate authentication.
use rustls::SignatureScheme;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm, alg_id};

#[derive(Debug)]
struct EcdsaP256Sha256;

impl SignatureVerificationAlgorithm for EcdsaP256Sha256 {
    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }
    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA256
    }
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        use p256::ecdsa::signature::Verifier;
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature = p256::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &signature).map_err(|_| InvalidSignature)
    }
}

static ECDSA_P256_SHA256: &dyn SignatureVerificationAlgorithm = &EcdsaP256Sha256;

pub static ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[ECDSA_P256_SHA256],
    mapping: &[(SignatureScheme::ECDSA_NISTP256_SHA256, &[ECDSA_P256_SHA256])],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::cert::parse_pem_key;
    use crate::tls::provider::sign::EcdsaP256SigningKey;
    use rustls::sign::SigningKey;

    const MESSAGE: &[u8] = include_bytes!("../../../tests/data/ecdsa-msg.bin");
    const OPENSSL_SIGNATURE: &[u8] = include_bytes!("../../../tests/data/ecdsa-msg.sig");
    const PUBLIC_POINT: &[u8] = include_bytes!("../../../tests/data/default.pub.sec1");
    const KEY_PEM: &[u8] = include_bytes!("../../../tests/data/default.key");

    /// A signature made by `openssl dgst -sha256 -sign` verifies; a changed message does not.
    #[test]
    fn verifies_openssl_signature() {
        EcdsaP256Sha256.verify_signature(PUBLIC_POINT, MESSAGE, OPENSSL_SIGNATURE).unwrap();
        assert!(EcdsaP256Sha256.verify_signature(PUBLIC_POINT, b"another message", OPENSSL_SIGNATURE).is_err());
        assert!(EcdsaP256Sha256.verify_signature(PUBLIC_POINT, MESSAGE, &OPENSSL_SIGNATURE[1..]).is_err());
    }

    /// Our signer's output verifies under the matching public key (taken from its SPKI).
    #[test]
    fn sign_then_verify() {
        let key = EcdsaP256SigningKey::from_der(&parse_pem_key(KEY_PEM).unwrap()).unwrap();
        let spki = key.public_key().unwrap();
        assert_eq!(&spki.as_ref()[26..], PUBLIC_POINT);
        let signer = key.choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256]).unwrap();
        let signature = signer.sign(b"handshake transcript").unwrap();
        EcdsaP256Sha256.verify_signature(PUBLIC_POINT, b"handshake transcript", &signature).unwrap();
        assert!(key.choose_scheme(&[SignatureScheme::RSA_PSS_SHA256]).is_none());
    }
}
