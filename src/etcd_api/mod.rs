//! The etcd v3 gRPC API over any [`Store`], so that operators can point `etcdctl` (3.4) and other
//! etcd clients at a kuboard replica (`KUBOARD_ETCD_API_PORT`).
//!
//! # Layout
//!
//! - [`serve`]: the entry point, with [`EtcdApiConfig`] (identity, TLS).
//! - `context`: what every service shares (store, identity, etcd's full response header).
//! - `convert`: etcd's protobuf messages to the store's types and back (sorts and filters the store
//!   does not do are finished here).
//! - `errors`: the store's errors as etcd's gRPC status codes and `etcdserver: …` messages.
//! - `kv`, `watch`, `lease`, `cluster`, `maintenance`, `auth`: one etcd service each.
//! - `access`: etcd-style authentication: the auth state shared through the store, tokens any
//!   replica can check, and the permission checks every service makes.
//! - `authority`: lets through the URL etcdctl 3.4 sends as `:authority` for `endpoint status`.
//!
//! Architecture Invariant: this module only translates. Every guarantee (linearizable reads,
//! atomic txns, ordered watches, lease expiry) is the store's; any replica serves the API because
//! the store answers the same on every member.
//!
//! Not served: membership changes, Hash, HashKV, MoveLeader, Downgrade, and the lock and election services. Snapshot
//! streams kuboard's own snapshot file when a [`SnapshotSource`] is configured.

mod access;
mod auth;
mod authority;
mod cluster;
mod context;
mod convert;
mod errors;
#[cfg(test)]
mod fuzz_tests;
mod kv;
mod lease;
mod maintenance;
mod watch;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use etcd_client::proto::{PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer};
use futures::StreamExt;
use kuboard_storage::Store;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpConnectInfo;
use tonic::transport::Server;

use self::authority::AuthorityFix;
use self::context::ApiContext;

/// A client must finish its TLS handshake within this.
const HANDSHAKE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);
/// Connections accepted (and through their handshake) that tonic has not taken yet.
const READY_QUEUE: usize = 128;

/// A connection as tonic sees it: plain or TLS, behind the authority fix.
trait Connection: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Connection for T {}
type Accepted = AuthorityFix<Box<dyn Connection>>;

/// etcd's default `--max-request-bytes` (1.5 MiB) plus its allowance for gRPC overhead.
const MAX_REQUEST_MESSAGE_BYTES: usize = 1536 * 1024 + 512 * 1024;

/// Who this member is to etcd clients.
#[derive(Debug, Clone, Default)]
pub struct EtcdApiIdentity {
    /// The cluster id in every response header; the same on every replica of a group (see
    /// [`cluster_id_from_peers`]).
    pub cluster_id: u64,
    /// The etcd API port every replica serves on, for the client URLs of `member list`
    /// (`scheme://peer-host:port`); `None` reports no client URLs except those in `client_urls`.
    pub client_port: Option<u16>,
    /// Client URLs of members, by member id, where the derived ones would be wrong (for example
    /// behind NAT). Members not named here get derived URLs.
    pub client_urls: BTreeMap<u64, Vec<String>>,
    /// The store's data directory; its size on disk is reported as etcd's "DB SIZE" (0 if `None`).
    pub data_dir: Option<PathBuf>,
}

/// TLS of the etcd API, from PEM bytes.
#[derive(Clone)]
pub struct EtcdApiTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// With a CA, every client must present a certificate signed by it (etcd's
    /// `--client-cert-auth --trusted-ca-file`).
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for EtcdApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never reaches a log.
        f.debug_struct("EtcdApiTls")
            .field("client_cert_auth", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl EtcdApiTls {
    /// Read the certificate, key and optional client CA, naming the file in any error.
    pub fn from_files(cert: &Path, key: &Path, client_ca: Option<&Path>) -> anyhow::Result<EtcdApiTls> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path).with_context(|| format!("read the etcd API {what} {}", path.display()))
        };
        Ok(EtcdApiTls {
            cert_pem: read(cert, "certificate")?,
            key_pem: read(key, "private key")?,
            client_ca_pem: client_ca.map(|path| read(path, "client CA")).transpose()?,
        })
    }
}

/// Takes a consistent snapshot of the store and returns the bytes of the snapshot file, for
/// etcd's `Maintenance.Snapshot` (`etcdctl snapshot save`). The composition root passes kuboard's
/// own snapshot (`kuboard admin snapshot save`'s file, which `kuboard admin snapshot restore`
/// reads); etcd's bbolt format is not produced.
pub type SnapshotSource =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<u8>>> + Send + 'static>> + Send + Sync>;

#[derive(Clone, Default)]
pub struct EtcdApiConfig {
    pub identity: EtcdApiIdentity,
    /// `None` serves plain gRPC (fine on loopback, the default bind address).
    pub tls: Option<EtcdApiTls>,
    /// `None` refuses `Snapshot` with a reason.
    pub snapshot: Option<SnapshotSource>,
}

impl std::fmt::Debug for EtcdApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdApiConfig")
            .field("identity", &self.identity)
            .field("tls", &self.tls)
            .field("snapshot", &self.snapshot.is_some())
            .finish()
    }
}

/// The rustls configuration of the etcd API: HTTP/2 by ALPN, client certificates checked against
/// the CA when one is configured.
fn server_tls(tls: &EtcdApiTls) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&tls.cert_pem)
        .collect::<Result<_, _>>()
        .context("read the certificate chain")?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in the certificate file");
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem).context("read the private key")?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &tls.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                roots
                    .add(cert.context("read the client CA")?)
                    .context("use the client CA")?;
            }
            anyhow::ensure!(!roots.is_empty(), "no certificate in the client CA file");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("build the client certificate check")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("the private key does not match the certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accept connections, finish TLS handshakes (each in its own task, bounded in time, so that a
/// silent client holds up nobody) and hand them to tonic behind the authority fix. Ends, closing
/// the port, when the API starts stopping.
async fn accept_connections(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    ready: tokio::sync::mpsc::Sender<Accepted>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    while !ready.is_closed() && !*stopping.borrow() {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accepting an etcd API connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small request-response messages (keep-alives, single puts) must not wait for Nagle's delay.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "TCP_NODELAY not set");
        }
        let info = connect_info(&stream);
        let Some(acceptor) = acceptor.clone() else {
            let _ = ready.send(AuthorityFix::new(Box::new(stream), info)).await;
            continue;
        };
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => {
                    let common_name = tls_stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|certificate| common_name(certificate));
                    let connection = AuthorityFix::new(Box::new(tls_stream) as Box<dyn Connection>, info);
                    let _ = ready.send(connection.with_common_name(common_name)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "etcd API TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "etcd API TLS handshake timed out"),
            }
        });
    }
}

/// The subject common name of a client certificate (the first one, as etcd takes it), which
/// stands for a user of the etcd API's authentication when a request carries no token.
fn common_name(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let name = parsed.subject().iter_common_name().next()?.as_str().ok()?;
    (!name.is_empty()).then(|| name.to_string())
}

fn connect_info(stream: &TcpStream) -> TcpConnectInfo {
    use tonic::transport::server::Connected;
    stream.connect_info()
}

/// A cluster id every replica derives alike from the group's initial peer list
/// (`KUBOARD_RAFT_PEERS`), as etcd derives its own from the initial cluster.
pub fn cluster_id_from_peers(peers: &BTreeMap<u64, String>) -> u64 {
    let mut hasher = Sha256::new();
    for (id, address) in peers {
        hasher.update(format!("{id}={address};").as_bytes());
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// Serve etcd's KV, Watch, Lease, Cluster and Maintenance services over `store` on `listener` until
/// `shutdown` completes; then stop taking connections, end open watch and keep-alive streams with
/// etcd's "server stopped" (clients move to another endpoint) and let other open calls finish.
///
/// The caller binds the listener (loopback unless configured otherwise), so that a taken port is
/// an error at start and tests can bind port 0.
pub async fn serve<S, F>(store: S, listener: TcpListener, config: EtcdApiConfig, shutdown: F) -> anyhow::Result<()>
where
    S: Store + Clone,
    F: Future<Output = ()> + Send + 'static,
{
    let status = store
        .status()
        .await
        .context("read the store's status for the etcd API")?;
    let local_addr = listener.local_addr().context("read the etcd API listener's address")?;
    let (stop_streams, stopping) = tokio::sync::watch::channel(false);
    let ctx_stopping = stopping.clone();
    let ctx = ApiContext {
        stopping,
        store,
        identity: Arc::new(config.identity),
        member_id: status.member_id,
        client_scheme: if config.tls.is_some() { "https" } else { "http" },
        auth: Arc::new(access::AuthCache::default()),
    };
    let tls = config
        .tls
        .as_ref()
        .map(server_tls)
        .transpose()
        .context("configure TLS of the etcd API (certificate, key or client CA)")?;
    let tls_enabled = tls.is_some();
    let router = Server::builder()
        .add_service(
            PbKvServer::new(kv::KvService { ctx: ctx.clone() })
                .max_decoding_message_size(MAX_REQUEST_MESSAGE_BYTES)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            PbWatchServer::new(watch::WatchService { ctx: ctx.clone() })
                .max_decoding_message_size(MAX_REQUEST_MESSAGE_BYTES)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            PbLeaseServer::new(lease::LeaseService { ctx: ctx.clone() })
                .max_decoding_message_size(MAX_REQUEST_MESSAGE_BYTES),
        )
        .add_service(PbClusterServer::new(cluster::ClusterService { ctx: ctx.clone() }))
        .add_service(auth::AuthService { ctx: ctx.clone() })
        .add_service(
            PbMaintenanceServer::new(maintenance::MaintenanceService {
                ctx,
                snapshot: config.snapshot.clone(),
            })
            .max_encoding_message_size(usize::MAX),
        );
    let (ready, accepted) = tokio::sync::mpsc::channel(READY_QUEUE);
    let accept_task = tokio::spawn(accept_connections(listener, tls, ready, ctx_stopping));
    let incoming = ReceiverStream::new(accepted).map(Ok::<_, std::io::Error>);
    tracing::info!(
        address = %local_addr,
        tls = tls_enabled,
        client_cert_auth = config.tls.as_ref().is_some_and(|tls| tls.client_ca_pem.is_some()),
        "serving the etcd v3 API"
    );
    let served = router
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            let _ = stop_streams.send(true);
        })
        .await;
    // The listener lives in the accept task: once it has ended, the port is closed.
    accept_task.abort();
    let _ = accept_task.await;
    served.context("serve the etcd v3 API")?;
    tracing::info!(address = %local_addr, "etcd v3 API stopped");
    Ok(())
}
