//! One S3 client connection: HTTP/1.1 keep-alive over TCP or TLS (hyper's
//! connection-level client, no pool), reconnecting after a failure.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::sigv4::{Signer, UNSIGNED_PAYLOAD};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where to connect and what to call the server.
pub struct Endpoint {
    pub addr: SocketAddr,
    /// TLS configuration and the name the certificate must hold (which
    /// need not resolve: we connect to `addr`).
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// The `Host` header, signed.
    pub host: String,
}

impl Endpoint {
    pub fn tls_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, Error> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A response: status, body bytes received, and the body itself when asked.
pub struct Reply {
    pub status: u16,
    pub body_bytes: u64,
    pub body: Option<Vec<u8>>,
}

pub struct Connection {
    endpoint: Arc<Endpoint>,
    signer: Signer,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// TLS version and cipher suite of the last handshake, for the report.
    pub negotiated: Option<String>,
    /// Requests retried on a new connection after the old one failed.
    pub reconnects: u64,
}

impl Connection {
    pub fn new(endpoint: Arc<Endpoint>, signer: Signer) -> Connection {
        Connection { endpoint, signer, sender: None, negotiated: None, reconnects: 0 }
    }

    /// Opens the connection now (so a timed cell does not include it).
    pub async fn connect(&mut self) -> Result<(), Error> {
        let stream = TcpStream::connect(self.endpoint.addr).await?;
        stream.set_nodelay(true)?;
        let sender = match &self.endpoint.tls {
            Some((config, name)) => {
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let tls = connector.connect(name.clone(), stream).await?;
                let (_, session) = tls.get_ref();
                self.negotiated = Some(format!(
                    "{:?} {:?}",
                    session.protocol_version().map_or("?".into(), |v| format!("{v:?}")),
                    session.negotiated_cipher_suite().map_or("?".into(), |s| format!("{:?}", s.suite()))
                ));
                handshake(tls).await?
            }
            None => handshake(stream).await?,
        };
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one signed request; `path` is URI-encoded, `query` canonical.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        body: Bytes,
        keep_body: bool,
    ) -> Result<Reply, Error> {
        let reused = self.sender.as_ref().is_some_and(|s| !s.is_closed());
        let result = self.try_request(method, path, query, body.clone(), keep_body).await;
        if result.is_err() {
            // The connection may be half-used: start a new one next time.
            self.sender = None;
            // A server may close an idle keep-alive connection as a request
            // leaves: like other S3 clients, retry once on a new connection
            // (every request of the bench is idempotent). Counted.
            if reused {
                self.reconnects += 1;
                let retry = self.try_request(method, path, query, body, keep_body).await;
                if retry.is_err() {
                    self.sender = None;
                }
                return retry;
            }
        }
        result
    }

    async fn try_request(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        body: Bytes,
        keep_body: bool,
    ) -> Result<Reply, Error> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().expect("connected above");
        sender.ready().await?;
        let unix_s = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let signature = self.signer.sign(method, path, query, &self.endpoint.host, unix_s);
        let uri = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
        let request = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", &self.endpoint.host)
            .header("x-amz-date", signature.amz_date)
            .header("x-amz-content-sha256", UNSIGNED_PAYLOAD)
            .header("authorization", signature.authorization)
            .header("content-length", body.len())
            .body(Full::new(body))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let mut incoming = response.into_body();
        // Error bodies are short and say why: keep them for the report.
        let keep = keep_body || !(200..300).contains(&status);
        let (mut body_bytes, mut kept) = (0u64, keep.then(Vec::new));
        while let Some(frame) = incoming.frame().await {
            if let Ok(data) = frame?.into_data() {
                body_bytes += data.len() as u64;
                if let Some(kept) = &mut kept {
                    kept.extend_from_slice(&data);
                }
            }
        }
        Ok(Reply { status, body_bytes, body: kept })
    }
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}
