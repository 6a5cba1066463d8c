//! HTTPS on the web port: a listener for `axum::serve` that yields connections only after their
//! TLS handshake. Handshakes run concurrently, each bounded in time, so a slow or silent client
//! cannot hold up the others.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// A client must finish its handshake within this.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Connections whose handshake finished but that axum has not taken yet.
const READY_QUEUE: usize = 128;

/// Why the certificate or key cannot be used; names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("KUBOARD_TLS_CERT={path:?}: expected a PEM certificate chain ({message})")]
    Cert { path: String, message: String },
    #[error("KUBOARD_TLS_KEY={path:?}: expected a PEM private key matching the certificate ({message})")]
    Key { path: String, message: String },
}

/// Reads the certificate chain and key and builds the server's TLS configuration (ring provider,
/// TLS 1.2 and 1.3, HTTP/1.1 by ALPN).
pub fn load_server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let cert_path = tls.cert_path.display().to_string();
    let key_path = tls.key_path.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_path)
        .and_then(|certs| certs.collect())
        .map_err(|error| TlsSetupError::Cert {
            path: cert_path.clone(),
            message: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::Cert {
            path: cert_path,
            message: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_path).map_err(|error| TlsSetupError::Key {
        path: key_path.clone(),
        message: error.to_string(),
    })?;
    server_config(certs, key).map_err(|error| TlsSetupError::Key {
        path: key_path,
        message: error.to_string(),
    })
}

/// The server's TLS configuration for a certificate chain and its key (ring provider, TLS 1.2 and
/// 1.3, HTTP/1.1 by ALPN).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, tokio_rustls::rustls::Error> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections, completes their handshakes in separate tasks and hands the finished
/// ones to axum. Dropping it stops accepting.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    accept_task: JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(READY_QUEUE);
        let acceptor = TlsAcceptor::from(config);
        let accept_task = tokio::spawn(async move {
            // Ends when axum drops the listener (the task is aborted) or nobody takes connections.
            while !sender.is_closed() {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(%error, "accepting a TLS connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let _ = sender.send((tls_stream, peer)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local_addr,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task is gone only when the listener is being dropped; never yield again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
