//! SHA-256 and SHA-384 (sha2) as rustls transcript hashes.
use alloc::boxed::Box;

use rustls::crypto::hash::{Context, Hash, HashAlgorithm, Output};
use sha2::Digest;

/// SHA-256: TLS_*_SHA256 suites and ECDSA P-256 signatures.
pub static SHA256: Sha<sha2::Sha256> = Sha::new(HashAlgorithm::SHA256);
/// SHA-384: the AES-256-GCM suites.
pub static SHA384: Sha<sha2::Sha384> = Sha::new(HashAlgorithm::SHA384);

/// A sha2 hash function `D` with its TLS name.
pub struct Sha<D> {
    algorithm: HashAlgorithm,
    _digest: core::marker::PhantomData<fn() -> D>,
}

impl<D> Sha<D> {
    const fn new(algorithm: HashAlgorithm) -> Self {
        Self { algorithm, _digest: core::marker::PhantomData }
    }
}

impl<D: Digest + Clone + Send + Sync + 'static> Hash for Sha<D> {
    fn start(&self) -> Box<dyn Context> {
        Box::new(ShaContext(D::new()))
    }
    fn hash(&self, data: &[u8]) -> Output {
        Output::new(&D::digest(data))
    }
    fn output_len(&self) -> usize {
        <D as Digest>::output_size()
    }
    fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }
}

struct ShaContext<D>(D);

impl<D: Digest + Clone + Send + Sync + 'static> Context for ShaContext<D> {
    fn fork_finish(&self) -> Output {
        Output::new(&self.0.clone().finalize())
    }
    fn fork(&self) -> Box<dyn Context> {
        Box::new(ShaContext(self.0.clone()))
    }
    fn finish(self: Box<Self>) -> Output {
        Output::new(&self.0.finalize())
    }
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-2 "abc" vectors, through the one-shot and the incremental (transcript) paths.
    #[test]
    fn sha256_and_sha384_abc() {
        let sha256_abc: [u8; 32] = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03,
            0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
        ];
        assert_eq!(SHA256.hash(b"abc").as_ref(), sha256_abc);
        let mut ctx = SHA256.start();
        ctx.update(b"a");
        let fork = ctx.fork();
        ctx.update(b"bc");
        assert_eq!(ctx.fork_finish().as_ref(), sha256_abc);
        assert_eq!(ctx.finish().as_ref(), sha256_abc);
        assert_eq!(fork.finish().as_ref(), SHA256.hash(b"a").as_ref());
        let sha384 = SHA384.hash(b"abc");
        assert_eq!(SHA384.output_len(), 48);
        assert_eq!(&sha384.as_ref()[..8], [0xcb, 0x00, 0x75, 0x3f, 0x45, 0xa3, 0x5e, 0x8b]);
    }
}
