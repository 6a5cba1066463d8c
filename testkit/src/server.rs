//! One fake apiserver instance: a listener (TLS or plain) serving the shared state, with the knobs the
//! balancer tests need (readiness, latency, injected failures) and a stop/restart on the same port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::rustls;
use tower::ServiceExt as _;

use crate::auth::{self, UserInfo};
use crate::handlers::{self, AppState};
use crate::store::SharedState;

/// TLS material of an instance, PEM-encoded.
#[derive(Clone)]
pub struct TlsSettings {
    pub server_cert_pem: String,
    pub server_key_pem: String,
    /// Client certificates signed by this CA authenticate their CN as user and O as groups. Clients
    /// without a certificate are still accepted (they may carry a bearer token).
    pub client_ca_pem: Option<String>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never reaches a log.
        formatter
            .debug_struct("TlsSettings")
            .field("client_ca", &self.client_ca_pem.is_some())
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct InstanceConfig {
    /// Shown in `/readyz` failures and logs.
    pub name: String,
    /// `127.0.0.1:0` picks a free port; a restart reuses the port first bound.
    pub bind: SocketAddr,
    /// `None` serves plain HTTP (then only bearer tokens authenticate).
    pub tls: Option<TlsSettings>,
}

/// Per-instance behaviour switches, shared with the request handlers.
#[derive(Debug, Default)]
pub struct InstanceControls {
    not_ready: AtomicBool,
    latency_millis: AtomicU64,
    failure_code: AtomicU16,
    requests: AtomicU64,
}

impl InstanceControls {
    pub fn is_ready(&self) -> bool {
        !self.not_ready.load(Ordering::SeqCst)
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_millis.load(Ordering::SeqCst))
    }

    /// The status every non-health request currently fails with, if any.
    pub fn failure_code(&self) -> Option<u16> {
        Some(self.failure_code.load(Ordering::SeqCst)).filter(|c| *c != 0)
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// Marks requests with the identity of the connection's client certificate.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionIdentity(pub Option<UserInfo>);

struct Running {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A running (or stopped) fake apiserver instance.
pub struct FakeApiServer {
    pub name: String,
    state: Arc<SharedState>,
    controls: Arc<InstanceControls>,
    tls: Option<Arc<rustls::ServerConfig>>,
    address: SocketAddr,
    running: tokio::sync::Mutex<Option<Running>>,
}

fn rustls_config(tls: &TlsSettings) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certificates = CertificateDer::pem_slice_iter(tls.server_cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("parse the server certificate PEM")?;
    let key = PrivateKeyDer::from_pem_slice(tls.server_key_pem.as_bytes()).context("parse the server key PEM")?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("choose TLS versions")?;
    let builder = match &tls.client_ca_pem {
        Some(ca_pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                roots
                    .add(certificate.context("parse the client CA PEM")?)
                    .context("add the client CA")?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .context("build the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certificates, key)
        .context("load the server certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl FakeApiServer {
    /// Binds and starts serving `state`.
    pub async fn start(state: Arc<SharedState>, config: InstanceConfig) -> anyhow::Result<FakeApiServer> {
        let tls = config.tls.as_ref().map(rustls_config).transpose()?;
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("bind {}", config.bind))?;
        let address = listener.local_addr().context("read the bound address")?;
        let server = FakeApiServer {
            name: config.name,
            state,
            controls: Arc::new(InstanceControls::default()),
            tls,
            address,
            running: tokio::sync::Mutex::new(None),
        };
        server.serve(listener).await;
        Ok(server)
    }

    /// `https://127.0.0.1:PORT` (or `http://` without TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn controls(&self) -> &InstanceControls {
        &self.controls
    }

    pub fn state(&self) -> &Arc<SharedState> {
        &self.state
    }

    /// Makes `/readyz` fail (or pass again); other requests are served as before.
    pub fn set_ready(&self, ready: bool) {
        self.controls.not_ready.store(!ready, Ordering::SeqCst);
    }

    /// Delays every request (health checks included) by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.controls
            .latency_millis
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// Makes every request except `/readyz`, `/livez`, `/healthz` fail with `code` (e.g. 503), or
    /// serve normally again with `None`.
    pub fn fail_requests(&self, code: Option<u16>) {
        self.controls.failure_code.store(code.unwrap_or(0), Ordering::SeqCst);
    }

    /// How many requests this instance received.
    pub fn request_count(&self) -> u64 {
        self.controls.requests.load(Ordering::Relaxed)
    }

    pub async fn is_running(&self) -> bool {
        self.running.lock().await.is_some()
    }

    /// Closes the listener and every open connection (watches, log streams and exec sessions end), as
    /// when an apiserver process dies. The state stays with the other instances.
    pub async fn stop(&self) {
        let running = self.running.lock().await.take();
        if let Some(running) = running {
            running.shutdown.send_replace(true);
            // The accept loop aborts its connections and drops the listener before it returns.
            let _ = running.task.await;
            tracing::info!(instance = %self.name, address = %self.address, "fake apiserver stopped");
        }
    }

    /// Serves again on the same address after `stop`.
    pub async fn restart(&self) -> anyhow::Result<()> {
        if self.is_running().await {
            return Ok(());
        }
        // The port was just released; a moment of retrying covers sockets the kernel still holds.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.address).await {
                Ok(listener) => break listener,
                Err(error) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%error, "rebind waits for the port");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error).with_context(|| format!("rebind {}", self.address)),
            }
        };
        self.serve(listener).await;
        Ok(())
    }

    async fn serve(&self, listener: TcpListener) {
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let app = AppState {
            state: self.state.clone(),
            controls: self.controls.clone(),
            instance_name: self.name.clone(),
            shutdown: shutdown_receiver.clone(),
        };
        let router = Router::new().fallback(handlers::handle).with_state(app);
        let task = tokio::spawn(accept_loop(listener, router, self.tls.clone(), shutdown_receiver));
        *self.running.lock().await = Some(Running { shutdown, task });
        tracing::info!(instance = %self.name, url = %self.url(), "fake apiserver serving");
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        Some(config) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(config);
                            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
                            let Ok(Ok(stream)) = handshake else { return };
                            let identity = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|certificates| certificates.first())
                                .and_then(|certificate| auth::user_from_certificate(certificate));
                            serve_connection(stream, router, identity).await;
                        }
                        None => serve_connection(stream, router, None).await,
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection<I>(io: I, router: Router, identity: Option<UserInfo>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let identity = ConnectionIdentity(identity);
    let service = router.map_request(move |mut request: http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(identity.clone());
        request.map(Body::new)
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    // Errors here are clients going away mid-request; nothing to act on.
    let _ = builder
        .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
        .await;
}
