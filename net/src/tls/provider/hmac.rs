//! HMAC-SHA256/384 (hmac crate): rustls derives the TLS 1.3 HKDF and the TLS 1.2 PRF from it
//! (`HkdfUsingHmac`, `PrfUsingHmac`), so those need no code of ours.
use alloc::boxed::Box;

use hmac::{KeyInit, Mac};
use rustls::crypto::hmac::{Hmac, Key, Tag};

macro_rules! hmac_sha {
    ($name:ident, $static:ident, $key:ident, $digest:ty, $len:expr) => {
        /// HMAC over the named SHA-2 function.
        pub struct $name;

        pub static $static: $name = $name;

        impl Hmac for $name {
            fn with_key(&self, key: &[u8]) -> Box<dyn Key> {
                // HMAC takes keys of any length (long ones are hashed first): this cannot fail.
                Box::new($key(hmac::Hmac::<$digest>::new_from_slice(key).expect("HMAC takes any key length")))
            }
            fn hash_output_len(&self) -> usize {
                $len
            }
        }

        struct $key(hmac::Hmac<$digest>);

        impl Key for $key {
            fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> Tag {
                let mut mac = self.0.clone();
                mac.update(first);
                for part in middle {
                    mac.update(part);
                }
                mac.update(last);
                Tag::new(&mac.finalize().into_bytes())
            }
            fn tag_len(&self) -> usize {
                $len
            }
        }
    };
}

hmac_sha!(HmacSha256, HMAC_SHA256, HmacSha256Key, sha2::Sha256, 32);
hmac_sha!(HmacSha384, HMAC_SHA384, HmacSha384Key, sha2::Sha384, 48);

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::tls13::{Hkdf, HkdfUsingHmac};

    fn hex(s: &str) -> alloc::vec::Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 4231 test case 2, through the rustls `Hmac` trait (split across the three parts).
    #[test]
    fn hmac_sha256_rfc4231_case_2() {
        let key = HMAC_SHA256.with_key(b"Jefe");
        let tag = key.sign_concat(b"what do ya", &[b" want "], b"for nothing?");
        assert_eq!(tag.as_ref(), hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
        let tag384 = HMAC_SHA384.with_key(b"Jefe").sign(&[b"what do ya want for nothing?"]);
        assert_eq!(
            tag384.as_ref(),
            hex("af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649")
        );
    }

    /// RFC 5869 test case 1, through the rustls `Hkdf` that the TLS 1.3 suites use.
    #[test]
    fn hkdf_sha256_rfc5869_case_1() {
        let hkdf = HkdfUsingHmac(&HMAC_SHA256);
        let expander = hkdf.extract_from_secret(Some(&hex("000102030405060708090a0b0c")), &[0x0b; 22]);
        let mut okm = [0u8; 42];
        expander.expand_slice(&[&hex("f0f1f2f3f4"), &hex("f5f6f7f8f9")], &mut okm).unwrap();
        assert_eq!(
            okm.to_vec(),
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
    }
}
