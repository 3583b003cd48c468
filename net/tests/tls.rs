//! End-to-end TLS on the host: our `ServerSession` against rustls's client (`ClientSession`, also
//! on our provider) over an in-memory pipe.
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use net::tls::provider::{self, RandomError};
use net::tls::session::MAX_INCOMING_BYTES;
use net::tls::{CertStore, ClientSession, ServerSession, TlsError, UnixTimeSource, certified_key, server_config};
use rustls::client::{ClientSessionMemoryCache, Resumption, Tls12Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, HandshakeKind, ProtocolVersion, RootCertStore, ServerConfig, SupportedCipherSuite};

const CA: &[u8] = include_bytes!("data/ca.pem");
const DEFAULT_CHAIN: &[u8] = include_bytes!("data/default.chain.pem");
const DEFAULT_KEY: &[u8] = include_bytes!("data/default.key");
const BUCKET_CHAIN: &[u8] = include_bytes!("data/bucket.chain.pem");
const BUCKET_KEY: &[u8] = include_bytes!("data/bucket.key");
const ROTATED_CHAIN: &[u8] = include_bytes!("data/rotated.chain.pem");
const ROTATED_KEY: &[u8] = include_bytes!("data/rotated.key");

fn random(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(|_| RandomError)
}

fn now_s() -> Option<u64> {
    SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

const TIME: UnixTimeSource = UnixTimeSource(now_s);

fn our_provider() -> CryptoProvider {
    provider::provider(random)
}

struct Server {
    config: Arc<ServerConfig>,
    certs: Arc<CertStore>,
}

fn server() -> Server {
    let provider = our_provider();
    let certs = Arc::new(CertStore::with_default(certified_key(&provider, DEFAULT_CHAIN, DEFAULT_KEY).unwrap()));
    certs.replace(Some("*.bucket.rustcore.test"), certified_key(&provider, BUCKET_CHAIN, BUCKET_KEY).unwrap()).unwrap();
    let config = server_config(Arc::new(provider), certs.clone(), TIME).unwrap();
    Server { config, certs }
}

/// A std mutex for the client's session cache (rustls is built `no_std` here: see Cargo.toml).
struct StdMutex;

impl rustls::lock::MakeMutex for StdMutex {
    fn make_mutex<T: Send + 'static>(value: T) -> Arc<dyn rustls::lock::Lock<T>> {
        Arc::new(StdLock(std::sync::Mutex::new(value)))
    }
}

struct StdLock<T>(std::sync::Mutex<T>);

impl<T> std::fmt::Debug for StdLock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StdLock")
    }
}

impl<T: Send> rustls::lock::Lock<T> for StdLock<T> {
    fn lock(&self) -> Result<rustls::lock::MutexGuard<'_, T>, rustls::lock::Poisoned> {
        self.0.lock().map(|g| Box::new(g) as rustls::lock::MutexGuard<'_, T>).map_err(|_| rustls::lock::Poisoned)
    }
}

/// A client that trusts our test CA, limited to `suites` and `groups` (indices into the provider's).
fn client_config(suites: &[SupportedCipherSuite], groups: &[usize], tls12: Tls12Resumption) -> Arc<ClientConfig> {
    let full = our_provider();
    let provider = Arc::new(CryptoProvider {
        cipher_suites: suites.to_vec(),
        kx_groups: groups.iter().map(|&i| full.kx_groups[i]).collect(),
        ..full
    });
    let mut roots = RootCertStore::empty();
    roots.add(net::tls::parse_pem_chain(CA).unwrap().remove(0)).unwrap();
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let versions: Vec<_> = [&rustls::version::TLS13, &rustls::version::TLS12]
        .into_iter()
        .filter(|v| suites.iter().any(|s| s.version() == *v))
        .collect();
    let mut config = ClientConfig::builder_with_details(provider, Arc::new(TIME))
        .with_protocol_versions(&versions)
        .unwrap()
        .with_webpki_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption =
        Resumption::store(Arc::new(ClientSessionMemoryCache::new::<StdMutex>(32))).tls12_resumption(tls12);
    Arc::new(config)
}

fn all_suites_client() -> Arc<ClientConfig> {
    client_config(provider::ALL_CIPHER_SUITES, &[0, 1], Tls12Resumption::SessionIdOrTickets)
}

fn connect(config: &Arc<ClientConfig>, server: &Server, name: &str) -> (ClientSession, ServerSession) {
    let mut client = ClientSession::new(config.clone(), ServerName::try_from(name.to_string()).unwrap()).unwrap();
    let mut server = ServerSession::new(server.config.clone()).unwrap();
    pump(&mut client, &mut server).unwrap();
    assert!(!client.is_handshaking() && !server.is_handshaking());
    (client, server)
}

/// Moves bytes both ways until neither side has anything left to send (or room to take it).
fn pump(client: &mut ClientSession, server: &mut ServerSession) -> Result<(), TlsError> {
    for _ in 0..1000 {
        client.process()?;
        let n = client.outgoing().len().min(server.incoming_capacity());
        server.feed(&client.outgoing()[..n])?;
        client.consume_outgoing(n);
        server.process()?;
        let m = server.outgoing().len().min(client.incoming_capacity());
        client.feed(&server.outgoing()[..m])?;
        server.consume_outgoing(m);
        if n == 0 && m == 0 {
            client.process()?;
            return Ok(());
        }
    }
    panic!("pump did not settle");
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Sends `len` bytes each way at once, in odd-sized writes, and checks what arrives.
fn transfer(client: &mut ClientSession, server: &mut ServerSession, len: usize) {
    let up = pattern(len, 1 + len as u32);
    let down = pattern(len, 7 + len as u32);
    let (mut up_sent, mut down_sent) = (0, 0);
    let (mut up_got, mut down_got) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 20_000];
    for _ in 0..100_000 {
        if up_got.len() == len && down_got.len() == len {
            assert!(up_got == up && down_got == down, "corrupted transfer");
            return;
        }
        up_sent += client.write(&up[up_sent..len.min(up_sent + 50_001)]).unwrap();
        down_sent += server.write(&down[down_sent..len.min(down_sent + 70_003)]).unwrap();
        pump(client, server).unwrap();
        loop {
            let n = server.read(&mut buf);
            up_got.extend_from_slice(&buf[..n]);
            let m = client.read(&mut buf);
            down_got.extend_from_slice(&buf[..m]);
            if n == 0 && m == 0 {
                break;
            }
        }
    }
    panic!("transfer stalled: up {} down {}", up_got.len(), down_got.len());
}

const MIB: usize = 1 << 20;

/// Every suite (3 TLS 1.3 + 3 TLS 1.2) with each key exchange group, 1 MiB each way.
#[test]
fn every_suite_and_group_transfers_1_mib_each_way() {
    let server_side = server();
    for suite in provider::ALL_CIPHER_SUITES {
        for (group, group_name) in [(0, rustls::NamedGroup::X25519), (1, rustls::NamedGroup::secp256r1)] {
            let config = client_config(&[*suite], &[group], Tls12Resumption::SessionIdOrTickets);
            let (mut client, mut server) = connect(&config, &server_side, "s3.rustcore.test");
            assert_eq!(server.cipher_suite(), Some(suite.suite()));
            assert_eq!(client.cipher_suite(), Some(suite.suite()));
            assert_eq!(server.protocol_version(), Some(suite.version().version));
            assert_eq!(server.alpn_protocol(), Some(&b"http/1.1"[..]));
            assert_eq!(server.server_name(), Some("s3.rustcore.test"));
            assert_eq!(server.handshake_kind(), Some(HandshakeKind::Full));
            assert_eq!(client.key_exchange_group(), Some(group_name), "{:?}", suite.suite());
            transfer(&mut client, &mut server, MIB);
            client.close();
            pump(&mut client, &mut server).unwrap();
            assert!(server.peer_closed());
            assert_eq!(server.write(b"late"), Ok(4), "half-closed: the server may still answer");
            server.close();
            pump(&mut client, &mut server).unwrap();
            assert!(server.is_closed() && client.is_closed());
            assert_eq!(server.write(b"x"), Err(TlsError::Closed));
        }
    }
}

#[test]
fn sni_chooses_the_certificate() {
    let server_side = server();
    let config = all_suites_client();
    let bucket_leaf = net::tls::parse_pem_chain(BUCKET_CHAIN).unwrap().remove(0);
    let default_leaf = net::tls::parse_pem_chain(DEFAULT_CHAIN).unwrap().remove(0);
    let (client, server) = connect(&config, &server_side, "photos.bucket.rustcore.test");
    assert_eq!(client.peer_certificates().unwrap()[0], bucket_leaf);
    assert_eq!(server.server_name(), Some("photos.bucket.rustcore.test"));
    let (client, _) = connect(&config, &server_side, "s3.rustcore.test");
    assert_eq!(client.peer_certificates().unwrap()[0], default_leaf);
    assert_eq!(client.peer_certificates().unwrap().len(), 2, "leaf + CA");
}

#[test]
fn certificate_replacement_at_run_time() {
    let server_side = server();
    let config = client_config(provider::ALL_CIPHER_SUITES, &[0], Tls12Resumption::Disabled);
    let default_leaf = net::tls::parse_pem_chain(DEFAULT_CHAIN).unwrap().remove(0);
    let rotated_leaf = net::tls::parse_pem_chain(ROTATED_CHAIN).unwrap().remove(0);
    let (mut old_client, mut old_server) = connect(&config, &server_side, "localhost");
    assert_eq!(old_client.peer_certificates().unwrap()[0], default_leaf);

    let rotated = certified_key(&our_provider(), ROTATED_CHAIN, ROTATED_KEY).unwrap();
    server_side.certs.replace(None, rotated).unwrap();

    // A new client (no session to resume) sees the new certificate...
    let fresh = client_config(provider::ALL_CIPHER_SUITES, &[0], Tls12Resumption::Disabled);
    let (new_client, _) = connect(&fresh, &server_side, "localhost");
    assert_eq!(new_client.peer_certificates().unwrap()[0], rotated_leaf);
    // ...while the connection made before keeps working.
    transfer(&mut old_client, &mut old_server, 100_000);
}

#[test]
fn resumption_tls13_tickets_and_tls12_session_ids() {
    let server_side = server();
    let cases = [
        (&provider::ALL_CIPHER_SUITES[..1], Tls12Resumption::SessionIdOrTickets, ProtocolVersion::TLSv1_3),
        (&provider::ALL_CIPHER_SUITES[3..4], Tls12Resumption::SessionIdOnly, ProtocolVersion::TLSv1_2),
        (&provider::ALL_CIPHER_SUITES[4..5], Tls12Resumption::SessionIdOrTickets, ProtocolVersion::TLSv1_2),
    ];
    for (suites, tls12, version) in cases {
        let config = client_config(suites, &[0], tls12);
        let (mut client, mut server) = connect(&config, &server_side, "s3.rustcore.test");
        assert!(!server.handshake_was_resumed());
        transfer(&mut client, &mut server, 1000); // the client takes in the TLS 1.3 tickets
        let (mut client, mut server) = connect(&config, &server_side, "s3.rustcore.test");
        assert_eq!(server.protocol_version(), Some(version));
        assert!(server.handshake_was_resumed(), "{version:?} {tls12:?}");
        assert!(client.handshake_was_resumed());
        assert_eq!(server.server_name(), Some("s3.rustcore.test"));
        transfer(&mut client, &mut server, 10_000);
    }
}

#[test]
fn key_update_mid_stream() {
    let server_side = server();
    let config = all_suites_client();
    let (mut client, mut server) = connect(&config, &server_side, "s3.rustcore.test");
    assert_eq!(server.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    transfer(&mut client, &mut server, 100_000);
    client.update_keys().unwrap();
    transfer(&mut client, &mut server, 100_000);
    server.update_keys().unwrap();
    transfer(&mut client, &mut server, 100_000);
    client.update_keys().unwrap();
    server.update_keys().unwrap();
    transfer(&mut client, &mut server, 100_000);

    let tls12 = client_config(&provider::ALL_CIPHER_SUITES[3..4], &[0], Tls12Resumption::Disabled);
    let (_, mut server) = connect(&tls12, &server_side, "s3.rustcore.test");
    assert_eq!(server.update_keys(), Err(TlsError::KeyUpdateUnavailable));
}

#[test]
fn write_before_handshake_is_refused() {
    let mut server = ServerSession::new(server().config).unwrap();
    assert_eq!(server.write(b"early"), Err(TlsError::HandshakeNotComplete));
    assert_eq!(server.update_keys(), Err(TlsError::HandshakeNotComplete));
    assert!(server.is_handshaking());
}

/// TLS 1.3 lets a client send data right behind its Finished. When the server gets that data
/// in the same reads as the Finished and more of it than the plaintext bound (a busy server: a
/// TCG guest), the handshake still completes, with every byte readable afterwards. (It used to
/// stay "handshaking" until the incoming buffer was full, and the connection failed.)
#[test]
fn data_behind_the_finished_beyond_the_plaintext_bound() {
    let config = all_suites_client();
    let mut client = ClientSession::new(config, ServerName::try_from("s3.rustcore.test").unwrap()).unwrap();
    let mut server = ServerSession::new(server().config).unwrap();
    // ClientHello -> server flight -> client Finished, nothing fed back to the server yet.
    client.process().unwrap();
    server.feed(client.outgoing()).unwrap();
    client.consume_outgoing(client.outgoing().len());
    server.process().unwrap();
    client.feed(server.outgoing()).unwrap();
    server.consume_outgoing(server.outgoing().len());
    client.process().unwrap();
    assert!(!client.is_handshaking() && server.is_handshaking());
    let data = pattern(200 * 1024, 3);
    let mut sent = 0;
    while sent < data.len() {
        sent += client.write(&data[sent..]).unwrap();
    }
    // The server takes what fits and processes it, as `TlsStream` does, without reading.
    let mut wire = client.outgoing().to_vec();
    let take = wire.len().min(server.incoming_capacity());
    server.feed(&wire[..take]).unwrap();
    wire.drain(..take);
    server.process().unwrap();
    assert!(!server.is_handshaking(), "the handshake completes with the Finished");
    // Then the rest, reading as it goes.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    for _ in 0..10_000 {
        let n = server.read(&mut buf);
        got.extend_from_slice(&buf[..n]);
        let take = wire.len().min(server.incoming_capacity());
        server.feed(&wire[..take]).unwrap();
        wire.drain(..take);
        server.process().unwrap();
        if got.len() == data.len() {
            break;
        }
    }
    assert!(got == data, "got {} of {} bytes", got.len(), data.len());
}

/// The copy-saving path `TlsStream` uses: ciphertext received in place (`incoming_buffer`,
/// `commit_incoming`) in odd-sized pieces, plaintext decrypted straight into odd-sized reads
/// (`read_decrypting`), with the data, a KeyUpdate and close_notify all arriving intact and in
/// order.
#[test]
fn in_place_receive_and_direct_reads() {
    let (mut client, mut server) = connect(&all_suites_client(), &server(), "s3.rustcore.test");
    let data = pattern(3 * MIB + 12_345, 11);
    let mut sent = 0;
    let mut wire = Vec::new();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 100_000];
    let sizes = [1usize, 7, 5_000, 16 * 1024 + 5, 70_001, 100_000];
    for step in 0..100_000 {
        if sent < data.len() {
            sent += client.write(&data[sent..data.len().min(sent + 40_000)]).unwrap();
            if sent == data.len() {
                client.close();
            } else if step == 3 {
                client.update_keys().unwrap();
            }
            client.process().unwrap();
            wire.extend_from_slice(client.outgoing());
            client.consume_outgoing(client.outgoing().len());
        }
        let piece = wire.len().min(sizes[step % sizes.len()]);
        let room = server.incoming_buffer(piece);
        let n = room.len();
        room.copy_from_slice(&wire[..n]);
        server.commit_incoming(n);
        wire.drain(..n);
        let want = sizes[(step + 3) % sizes.len()];
        let read = server.read_decrypting(&mut buf[..want]).unwrap();
        got.extend_from_slice(&buf[..read]);
        assert!(server.readable() <= net::tls::session::MAX_PLAINTEXT_BYTES + MAX_INCOMING_BYTES);
        if server.peer_closed() && server.readable() == 0 && wire.is_empty() && read == 0 {
            break;
        }
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data, "corrupted transfer");
}

#[test]
fn incoming_bound() {
    let mut server = ServerSession::new(server().config).unwrap();
    assert_eq!(server.feed(&vec![0x16; MAX_INCOMING_BYTES + 1]), Err(TlsError::IncomingBufferFull));
    server.feed(&[0x16; 100]).unwrap();
    assert_eq!(server.incoming_capacity(), MAX_INCOMING_BYTES - 100);
    // In place: never more than the capacity, and a commit takes at most what the last
    // `incoming_buffer` gave out, once (stale bytes never become input).
    assert_eq!(server.incoming_buffer(usize::MAX).len(), MAX_INCOMING_BYTES - 100);
    assert_eq!(server.incoming_buffer(10).len(), 10);
    server.commit_incoming(1_000);
    assert_eq!(server.incoming_capacity(), MAX_INCOMING_BYTES - 110);
    server.commit_incoming(10);
    assert_eq!(server.incoming_capacity(), MAX_INCOMING_BYTES - 110);
}

/// The client's first flight (its ClientHello record).
fn client_hello() -> Vec<u8> {
    let mut client =
        ClientSession::new(all_suites_client(), ServerName::try_from("s3.rustcore.test").unwrap()).unwrap();
    client.process().unwrap();
    client.outgoing().to_vec()
}

/// Garbage, truncated and bit-flipped ClientHellos end in an error or a wait for more bytes,
/// never a panic, and a failed session stays failed.
#[test]
fn garbage_and_truncated_input_never_panics() {
    let config = server().config;
    let hello = client_hello();
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..300 {
        let len = (next() % 3000) as usize;
        let garbage: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let mut server = ServerSession::new(config.clone()).unwrap();
        server.feed(&garbage).unwrap();
        let _ = server.process();
    }
    // Plausible record headers with random bodies.
    let mut rejected = 0;
    for _ in 0..300 {
        let body_len = (next() % 600) as usize;
        let mut record = vec![0x16, 0x03, 0x01, (body_len >> 8) as u8, body_len as u8, 0x01];
        record.extend((1..body_len).map(|_| next() as u8));
        let mut server = ServerSession::new(config.clone()).unwrap();
        server.feed(&record).unwrap();
        match server.process() {
            Err(e) => {
                rejected += 1;
                assert!(server.is_closed());
                assert_eq!(server.process(), Err(e), "errors are sticky");
            }
            // A random handshake length larger than the record: rustls waits for the rest.
            Ok(()) => assert!(server.is_handshaking() && server.server_name().is_none()),
        }
    }
    assert!(rejected > 100, "only {rejected} of 300 random ClientHellos rejected");
    // Every truncation of a real ClientHello: waits for more (no output, no error).
    for cut in 0..hello.len() {
        let mut server = ServerSession::new(config.clone()).unwrap();
        server.feed(&hello[..cut]).unwrap();
        server.process().unwrap();
        assert!(server.outgoing().is_empty() && server.is_handshaking());
        assert!(server.server_name().is_none());
    }
    // Every single-bit flip of a real ClientHello: handled one way or the other.
    for bit in 0..hello.len() * 8 {
        let mut flipped = hello.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let mut server = ServerSession::new(config.clone()).unwrap();
        server.feed(&flipped).unwrap();
        let _ = server.process();
    }
    // Garbage after a good handshake: a decrypt failure, and the alert is queued for the peer.
    let server_side = server();
    let (_, mut server) = connect(&all_suites_client(), &server_side, "s3.rustcore.test");
    server.feed(&[0x17, 0x03, 0x03, 0x00, 0x20]).unwrap();
    server.feed(&[0xAA; 0x20]).unwrap();
    assert!(matches!(server.process(), Err(TlsError::Rustls(rustls::Error::DecryptError))));
    assert!(!server.outgoing().is_empty(), "fatal alert queued");
}
