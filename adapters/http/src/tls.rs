//! HTTPS with rustls (ring provider): a listener that completes TLS
//! handshakes concurrently and hands finished connections to axum.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;
use crate::conn::{Gate, Guarded, Peer};
use crate::error::HttpError;

/// A TLS handshake must finish within this time.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Handshakes in progress at once per listener.
const MAX_HANDSHAKES: usize = 256;

/// The SHA-256 fingerprint of the first certificate of a PEM file.
pub fn fingerprint(cert_path: &std::path::Path) -> Result<String, HttpError> {
    let first = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| {
            HttpError::Tls(format!(
                "cannot read certificates from {}: {e}",
                cert_path.display()
            ))
        })?
        .next()
        .ok_or_else(|| HttpError::Tls(format!("no certificate in {}", cert_path.display())))?
        .map_err(|e| {
            HttpError::Tls(format!(
                "invalid certificate in {}: {e}",
                cert_path.display()
            ))
        })?;
    Ok(halyard_cluster_model::secret::fingerprint(first.as_ref()))
}

/// Reads the PEM certificate chain and key and builds the acceptor.
pub fn acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor, HttpError> {
    let tls = |what: &str, p: &std::path::Path, e: &dyn std::fmt::Display| {
        HttpError::Tls(format!("{what} {}: {e}", p.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert_path)
        .map_err(|e| tls("cannot read certificates from", &cfg.cert_path, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls("invalid certificate in", &cfg.cert_path, &e))?;
    if certs.is_empty() {
        return Err(tls("no certificate in", &cfg.cert_path, &"empty"));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key_path)
        .map_err(|e| tls("cannot read the private key from", &cfg.key_path, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut sc = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls("certificate and key do not fit:", &cfg.cert_path, &e))?;
    sc.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(sc)))
}

/// Accepts TCP connections and runs their handshakes in parallel; a slow
/// or silent client never holds up the others.
#[derive(Debug)]
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<Guarded<TcpStream>>, SocketAddr)>,
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor, gate: Gate) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            let mut handshakes = JoinSet::new();
            loop {
                tokio::select! {
                    r = tcp.accept(), if handshakes.len() < MAX_HANDSHAKES => match r {
                        Ok((stream, peer)) => {
                            // Full: the stream is dropped, which closes it.
                            let Some(stream) = gate.admit(stream) else {
                                tracing::debug!(%peer, "connection refused: too many open");
                                continue;
                            };
                            let acceptor = acceptor.clone();
                            let tx = tx.clone();
                            handshakes.spawn(async move {
                                match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                                    Ok(Ok(tls)) => {
                                        let _ = tx.send((tls, peer)).await;
                                    }
                                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
                }
            }
        });
        Ok(TlsListener { rx, local, task })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Stops the accept loop and, with its JoinSet, every handshake.
        self.task.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<Guarded<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(s: IncomingStream<'_, TlsListener>) -> Self {
        Peer(*s.remote_addr())
    }
}
