//! The kernel's random source: a ChaCha20 stream generator seeded from the
//! CPU's entropy source (RDSEED when present, else RDRAND) and reseeded every
//! `RESEED_BYTES`, so a long uptime never rests on one seed. A CPU with
//! neither instruction cannot boot: TLS and key generation need real entropy.

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use spin::Mutex;

use crate::arch::cpu;

const RESEED_BYTES: u64 = 1 << 20;

struct State {
    generator: ChaCha20Rng,
    bytes_since_seed: u64,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntropySource {
    Rdseed,
    Rdrand,
}

fn hardware_seed() -> Option<([u8; 32], EntropySource)> {
    let mut seed = [0u8; 32];
    let use_rdseed = cpu::rdseed64().is_some();
    for chunk in seed.chunks_mut(8) {
        let word = if use_rdseed { cpu::rdseed64()? } else { cpu::rdrand64()? };
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    Some((seed, if use_rdseed { EntropySource::Rdseed } else { EntropySource::Rdrand }))
}

pub fn init() -> EntropySource {
    let Some((seed, source)) = hardware_seed() else {
        crate::fatal(format_args!("no hardware entropy: the CPU has neither RDSEED nor RDRAND (or both fail)"));
    };
    *STATE.lock() = Some(State { generator: ChaCha20Rng::from_seed(seed), bytes_since_seed: 0 });
    source
}

/// Fills `out` with cryptographically secure random bytes.
pub fn fill(out: &mut [u8]) {
    let mut guard = STATE.lock();
    let Some(state) = guard.as_mut() else {
        crate::fatal(format_args!("rng used before rng::init"));
    };
    if state.bytes_since_seed >= RESEED_BYTES
        && let Some((seed, _)) = hardware_seed()
    {
        *state = State { generator: ChaCha20Rng::from_seed(seed), bytes_since_seed: 0 };
    }
    state.generator.fill_bytes(out);
    state.bytes_since_seed += out.len() as u64;
}

pub fn next_u64() -> u64 {
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    u64::from_le_bytes(bytes)
}
