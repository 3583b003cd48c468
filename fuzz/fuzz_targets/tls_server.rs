//! A TLS server session fed arbitrary bytes (as a hostile client would send)
//! returns errors, never panics, and keeps its buffers bounded.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use net::tls::rustls::ServerConfig;
use net::tls::{CertStore, ServerSession, UnixTimeSource};

fn random(out: &mut [u8]) -> Result<(), net::tls::RandomError> {
    getrandom::fill(out).map_err(|_| net::tls::RandomError)
}

fn now() -> Option<u64> {
    Some(1_795_579_200)
}

fn config() -> Arc<ServerConfig> {
    static CONFIG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(net::tls::provider(random));
            let chain = include_bytes!("../../net/tests/data/default.chain.pem");
            let key = include_bytes!("../../net/tests/data/default.key");
            let certified = net::tls::certified_key(&provider, chain, key).expect("fixture certificate");
            let store = Arc::new(CertStore::with_default(certified));
            net::tls::server_config(provider, store, UnixTimeSource(now)).expect("server config")
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut session) = ServerSession::new(config()) else { return };
    let first = data.first().copied().unwrap_or(0);
    // Both ways in: `feed` + `process` + `read`, or TlsStream's in-place
    // receive and direct reads.
    let in_place = first & 1 == 1;
    // Feed in a few uneven pieces, the way TCP delivers them.
    for piece in data.chunks(1 + first as usize * 7) {
        let mut plaintext = [0u8; 4096];
        if in_place {
            let room = session.incoming_buffer(piece.len());
            let n = room.len();
            room.copy_from_slice(&piece[..n]);
            session.commit_incoming(n);
            loop {
                match session.read_decrypting(&mut plaintext[..1 + first as usize * 13]) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        } else {
            let room = session.incoming_capacity().min(piece.len());
            if session.feed(&piece[..room]).is_err() || session.process().is_err() {
                break;
            }
            while session.read(&mut plaintext) > 0 {}
        }
        let len = session.outgoing().len();
        session.consume_outgoing(len);
    }
});
