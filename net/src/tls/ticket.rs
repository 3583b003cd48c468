//! Session tickets (RFC 5077 / RFC 8446 §4.6.1): the resumption state sealed with
//! ChaCha20-Poly1305 under a server-only key, so TLS 1.3 resumption needs no server memory.
//! Ticket = nonce (12, random) || ciphertext || tag (16). Random 96-bit nonces stay far from
//! collisions for the 2^32 tickets that one key may seal; the key rotates every
//! [`TICKET_LIFETIME_S`] and the previous one is still accepted, as in rustls's own rotator.
use alloc::vec::Vec;
use core::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use rustls::crypto::SecureRandom;
use rustls::server::ProducesTickets;

use super::{TlsError, UnixTimeSource};

/// Ticket lifetime announced to clients, and the key rotation period.
pub const TICKET_LIFETIME_S: u32 = 6 * 60 * 60;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

pub(crate) struct Ticketer {
    random: &'static dyn SecureRandom,
    time: UnixTimeSource,
    keys: spin::RwLock<Keys>,
}

struct Keys {
    current: ChaCha20Poly1305,
    previous: Option<ChaCha20Poly1305>,
    /// Unix seconds at which `current` retires; `None` while the clock is unknown.
    rotate_at_s: Option<u64>,
}

impl fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticketer(ChaCha20-Poly1305)")
    }
}

fn new_key(random: &dyn SecureRandom) -> Result<ChaCha20Poly1305, rustls::Error> {
    let mut key = [0u8; 32];
    random.fill(&mut key)?;
    let cipher = ChaCha20Poly1305::new(&key.into());
    key.fill(0);
    Ok(cipher)
}

impl Ticketer {
    pub(crate) fn new(random: &'static dyn SecureRandom, time: UnixTimeSource) -> Result<Self, TlsError> {
        let current = new_key(random)?;
        let rotate_at_s = time.now_s().map(|now| now + u64::from(TICKET_LIFETIME_S));
        Ok(Self { random, time, keys: spin::RwLock::new(Keys { current, previous: None, rotate_at_s }) })
    }

    /// Retires the current key when its period is over. A failing random source keeps the old
    /// key (tickets keep working) and retries on the next ticket.
    fn maybe_rotate(&self) {
        let Some(now) = self.time.now_s() else { return };
        if self.keys.read().rotate_at_s.is_some_and(|at| now < at) {
            return;
        }
        let mut keys = self.keys.write();
        if keys.rotate_at_s.is_some_and(|at| now < at) {
            return; // another core rotated first
        }
        if keys.rotate_at_s.is_some() {
            let Ok(fresh) = new_key(self.random) else { return };
            let old = core::mem::replace(&mut keys.current, fresh);
            keys.previous = Some(old);
        }
        keys.rotate_at_s = Some(now + u64::from(TICKET_LIFETIME_S));
    }
}

impl ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        TICKET_LIFETIME_S
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.maybe_rotate();
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let mut ticket = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        ticket.extend_from_slice(&nonce);
        ticket.extend_from_slice(plain);
        let tag = self
            .keys
            .read()
            .current
            .encrypt_inout_detached(&Nonce::from(nonce), &[], (&mut ticket[NONCE_LEN..]).into())
            .ok()?;
        ticket.extend_from_slice(&tag);
        Some(ticket)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, rest) = ticket.split_at(NONCE_LEN);
        let (sealed, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = Nonce::try_from(nonce).ok()?;
        let tag = Tag::try_from(tag).ok()?;
        let keys = self.keys.read();
        for key in core::iter::once(&keys.current).chain(keys.previous.as_ref()) {
            let mut plain = sealed.to_vec();
            if key.decrypt_inout_detached(&nonce, &[], plain.as_mut_slice().into(), &tag).is_ok() {
                return Some(plain);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicU64, Ordering};

    static NOW_S: AtomicU64 = AtomicU64::new(1_000_000);

    fn clock() -> Option<u64> {
        Some(NOW_S.load(Ordering::Relaxed))
    }

    fn random(buf: &mut [u8]) -> Result<(), crate::tls::RandomError> {
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        for chunk in buf.chunks_mut(8) {
            let v = COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }

    #[test]
    fn seal_open_tamper_and_rotate() {
        let provider = crate::tls::provider(random);
        let ticketer = Ticketer::new(provider.secure_random, UnixTimeSource(clock)).unwrap();
        let t1 = ticketer.encrypt(b"session state").unwrap();
        assert_eq!(ticketer.decrypt(&t1).unwrap(), b"session state");
        let mut bad = t1.clone();
        bad[20] ^= 1;
        assert!(ticketer.decrypt(&bad).is_none());
        assert!(ticketer.decrypt(&t1[..20]).is_none());
        // One rotation: the old ticket still opens. Two: it does not.
        NOW_S.fetch_add(u64::from(TICKET_LIFETIME_S), Ordering::Relaxed);
        let t2 = ticketer.encrypt(b"newer").unwrap();
        assert_eq!(ticketer.decrypt(&t1).unwrap(), b"session state");
        NOW_S.fetch_add(u64::from(TICKET_LIFETIME_S), Ordering::Relaxed);
        assert!(ticketer.encrypt(b"newest").is_some());
        assert!(ticketer.decrypt(&t1).is_none());
        assert_eq!(ticketer.decrypt(&t2).unwrap(), b"newer");
    }
}
