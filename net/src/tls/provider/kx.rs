//! ECDHE groups: X25519 (x25519-dalek) and secp256r1 (p256). Ephemeral secrets come from the
//! injected [`RandomSource`]; a failing source fails the handshake rather than weakening it.
use alloc::boxed::Box;

use p256::elliptic_curve::Generate;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::{Error, NamedGroup, PeerMisbehaved};

use super::{RandomRng, RandomSource};

#[derive(Debug)]
pub struct X25519 {
    pub(super) random: RandomSource,
}

impl SupportedKxGroup for X25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut secret = [0u8; 32];
        (self.random)(&mut secret).map_err(|_| Error::FailedToGetRandomBytes)?;
        Ok(Box::new(X25519Exchange::from_secret(secret)))
    }
    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

struct X25519Exchange {
    secret: x25519_dalek::StaticSecret,
    public: x25519_dalek::PublicKey,
}

impl X25519Exchange {
    fn from_secret(secret: [u8; 32]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(secret);
        let public = x25519_dalek::PublicKey::from(&secret);
        Self { secret, public }
    }
}

impl ActiveKeyExchange for X25519Exchange {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        let peer: [u8; 32] = peer.try_into().map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = self.secret.diffie_hellman(&peer.into());
        // RFC 8446 §7.4.2: refuse small-order points (an all-zero shared secret).
        if !shared.was_contributory() {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared.as_bytes()[..]))
    }
    fn pub_key(&self) -> &[u8] {
        self.public.as_bytes()
    }
    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

#[derive(Debug)]
pub struct SecP256r1 {
    pub(super) random: RandomSource,
}

/// RFC 8446 §4.2.8.2: P-256 key shares are uncompressed points, 0x04 || x || y.
const P256_UNCOMPRESSED_LEN: usize = 65;

impl SupportedKxGroup for SecP256r1 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = p256::ecdh::EphemeralSecret::try_generate_from_rng(&mut RandomRng(self.random))
            .map_err(|_| Error::FailedToGetRandomBytes)?;
        let public = secret.public_key().to_sec1_bytes();
        Ok(Box::new(P256Exchange { secret, public }))
    }
    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

struct P256Exchange {
    secret: p256::ecdh::EphemeralSecret,
    public: Box<[u8]>,
}

impl ActiveKeyExchange for P256Exchange {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        // from_sec1_bytes checks the point is on the curve and not the identity.
        if peer.len() != P256_UNCOMPRESSED_LEN || peer[0] != 0x04 {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        let peer = p256::PublicKey::from_sec1_bytes(peer).map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = self.secret.diffie_hellman(&peer);
        Ok(SharedSecret::from(&shared.raw_secret_bytes()[..]))
    }
    fn pub_key(&self) -> &[u8] {
        &self.public
    }
    fn group(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let v: alloc::vec::Vec<u8> =
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
        v.try_into().unwrap()
    }

    /// RFC 7748 §6.1: both public keys and the shared secret, both directions.
    #[test]
    fn x25519_rfc7748() {
        let alice =
            X25519Exchange::from_secret(hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
        let bob =
            X25519Exchange::from_secret(hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));
        assert_eq!(alice.pub_key(), hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
        assert_eq!(bob.pub_key(), hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
        let shared = hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        let bob_pub = bob.public.to_bytes();
        let alice_pub = alice.public.to_bytes();
        assert_eq!(Box::new(alice).complete(&bob_pub).unwrap().secret_bytes(), shared);
        assert_eq!(Box::new(bob).complete(&alice_pub).unwrap().secret_bytes(), shared);
    }

    #[test]
    fn x25519_refuses_small_order_and_bad_lengths() {
        let me = || Box::new(X25519Exchange::from_secret([0x42; 32]));
        assert!(me().complete(&[0u8; 32]).is_err());
        assert!(me().complete(&[9u8; 31]).is_err());
    }

    fn counter_random(buf: &mut [u8]) -> Result<(), super::super::RandomError> {
        use core::sync::atomic::{AtomicU8, Ordering};
        static NEXT: AtomicU8 = AtomicU8::new(1);
        for b in buf {
            *b = NEXT.fetch_add(7, Ordering::Relaxed);
        }
        Ok(())
    }

    #[test]
    fn p256_agreement_and_bad_points() {
        let group = SecP256r1 { random: counter_random };
        let a = group.start().unwrap();
        let b = group.start().unwrap();
        let (a_pub, b_pub) = (a.pub_key().to_vec(), b.pub_key().to_vec());
        assert_eq!(a_pub.len(), 65);
        let s1 = a.complete(&b_pub).unwrap();
        let s2 = b.complete(&a_pub).unwrap();
        assert_eq!(s1.secret_bytes(), s2.secret_bytes());
        let mut off_curve = b_pub.clone();
        off_curve[64] ^= 1;
        assert!(group.start().unwrap().complete(&off_curve).is_err());
        assert!(group.start().unwrap().complete(&b_pub[..33]).is_err());
    }

    #[test]
    fn failing_random_fails_key_generation() {
        fn broken(_: &mut [u8]) -> Result<(), super::super::RandomError> {
            Err(super::super::RandomError)
        }
        assert!(X25519 { random: broken }.start().is_err());
        assert!(SecP256r1 { random: broken }.start().is_err());
    }
}
