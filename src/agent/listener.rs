//! The agent server: `KUBOARD_AGENT_SERVER_TCP_PORT` of every replica. A connection must open with
//! the agent handshake ([`crate::tunnel::protocol`]) within [`HANDSHAKE_TIMEOUT`]; anything else
//! (HTTP, garbage, an oversize frame, a wrong token, a client too slow) is closed without an
//! answer or with a refusal, counted by reason, and changes nothing. An accepted connection
//! becomes an HTTP/2 connection on which this replica opens one stream per apiserver connection.
//!
//! The port takes TLS and plain connections alike, told apart by the first byte (a TLS record
//! starts with [`protocol::TLS_HANDSHAKE_BYTE`], a hello frame with 0): a TLS connection finishes
//! its TLS handshake (within the same deadline and handshake budget) and then speaks the same
//! handshake inside it. The certificate is issued by the group CA ([`AgentTls`]);
//! `KUBOARD_AGENT_SERVER_REQUIRE_TLS` refuses plain agents.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use kuboard_raft::framing::{self, FrameError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::app_store::AppStore;
use crate::clock::Clock;
use crate::clusters::cluster_registry::{self, ClusterRecord};
use crate::clusters::credential_cipher::CredentialCipher;
use crate::kube::cluster_connection::ClusterConnection;
use crate::tunnel::hub::TunnelHub;
use crate::tunnel::peer::{self, PeerAcceptError, PeerKey};
use crate::tunnel::protocol::{self, Hello, Report, Verdict};
use crate::tunnel::tunnel_stream::TunnelStream;

/// From accepting a connection to reading the agent's report.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections in their handshake at once; more are closed at once (half-open floods stay bounded).
pub const MAX_HANDSHAKES: usize = 256;
/// Keepalive pings on every tunnel; a tunnel whose ping is not answered within this is closed.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a tunnel re-reads its cluster's record: a rotated token or a deleted cluster closes it.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Flow-control window of each stream, both ways: what one stream may have in flight unread. A
/// stream whose reader stops holds at most this much buffered, and holds back only itself.
pub const STREAM_WINDOW: u32 = 512 * 1024;
/// The tunnel's window is HTTP/2's largest, so that it never limits: unread data counts against the
/// connection's window too, and a smaller one would let a few stalled streams stop every other.
/// Memory stays bounded by [`STREAM_WINDOW`] per open stream.
pub const CONNECTION_WINDOW: u32 = (1 << 31) - 1;

/// The replica's side of a tunnel (the HTTP/2 client that opens the streams).
pub fn tunnel_client() -> h2::client::Builder {
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_reset_streams(1024);
    builder
}
const MAX_ENDPOINTS: usize = 16;
/// A peer's dial through this replica's tunnel must be answered within the handshake's deadline.
const PEER_DIAL_TIMEOUT: Duration = Duration::from_secs(4);

/// A connection of the agent port, plain or TLS.
pub trait AgentIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AgentIo for T {}
type Connection = Box<dyn AgentIo>;

/// TLS on the agent port: the certificate (set once the group CA could be read) and whether plain
/// agents are refused.
#[derive(Default)]
pub struct AgentTls {
    acceptor: RwLock<Option<TlsAcceptor>>,
    /// `KUBOARD_AGENT_SERVER_REQUIRE_TLS`: an agent's hello over plain TCP is refused.
    pub require: bool,
}

impl AgentTls {
    pub fn new(require: bool) -> AgentTls {
        AgentTls {
            acceptor: RwLock::new(None),
            require,
        }
    }

    /// Serves TLS with `config` from now on.
    pub fn set_config(&self, config: Arc<ServerConfig>) {
        let acceptor = TlsAcceptor::from(config);
        match self.acceptor.write() {
            Ok(mut guard) => *guard = Some(acceptor),
            Err(poisoned) => *poisoned.into_inner() = Some(acceptor),
        }
    }

    fn acceptor(&self) -> Option<TlsAcceptor> {
        match self.acceptor.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[derive(Clone)]
pub struct AgentServer {
    pub hub: Arc<TunnelHub>,
    pub store: AppStore,
    pub cipher: CredentialCipher,
    pub clock: Clock,
    pub replica_id: u64,
    /// The group's key: peers that prove it may dial through this replica's tunnels. `None`
    /// refuses every peer.
    pub peer_key: Option<PeerKey>,
    pub tls: Arc<AgentTls>,
}

/// A connection past its handshake.
enum Accepted {
    /// An agent's tunnel: the socket, the cluster and the token digest that was accepted.
    Agent(Connection, String, String),
    /// A peer replica's forwarded connection, and the stream through this replica's tunnel.
    Peer(Connection, String, TunnelStream),
}

#[derive(Debug)]
enum Refusal {
    /// Counted but not answered: not an agent.
    Silent(&'static str),
    /// Answered with a verdict: an agent with a wrong token or a cluster that does not take agents.
    Answered(&'static str, String),
}

impl AgentServer {
    /// Accepts agent connections until `shutdown` turns true.
    pub async fn run(self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "agent port: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                self.count_refusal("too_many_handshakes");
                drop(socket);
                continue;
            };
            let server = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, server.handshake(socket)).await;
                drop(permit);
                match handshake {
                    Err(_) => server.count_refusal("timeout"),
                    Ok(Err(refusal)) => {
                        let reason = match &refusal {
                            Refusal::Silent(reason) | Refusal::Answered(reason, _) => *reason,
                        };
                        tracing::info!(%peer, reason, "agent connection refused");
                        server.count_refusal(reason);
                    }
                    Ok(Ok(Accepted::Agent(socket, cluster, digest))) => {
                        server.serve_tunnel(socket, peer, cluster, digest, shutdown).await
                    }
                    Ok(Ok(Accepted::Peer(socket, cluster, stream))) => {
                        server.serve_forwarded(socket, cluster, stream, shutdown).await
                    }
                }
            });
        }
    }

    fn count_refusal(&self, reason: &str) {
        self.hub.metrics.handshake_failures.with_label_values(&[reason]).inc();
    }

    /// Finishes TLS when the connection opens with a TLS record, then runs the handshake inside it
    /// (or on the plain socket). The caller's deadline covers both.
    async fn handshake(&self, socket: TcpStream) -> Result<Accepted, Refusal> {
        let mut first = [0u8; 1];
        match socket.peek(&mut first).await {
            Ok(0) | Err(_) => return Err(Refusal::Silent("closed")),
            Ok(_) => {}
        }
        if first[0] != protocol::TLS_HANDSHAKE_BYTE {
            return self.speak(Box::new(socket), false).await;
        }
        let acceptor = self.tls.acceptor().ok_or(Refusal::Silent("tls_not_ready"))?;
        match acceptor.accept(socket).await {
            Ok(stream) => self.speak(Box::new(stream), true).await,
            Err(_) => Err(Refusal::Silent("tls_handshake")),
        }
    }

    /// Reads the hello, checks the token, answers, reads the report and records it. Returns the
    /// connection, the cluster and the token digest that was accepted.
    async fn speak(&self, mut socket: Connection, over_tls: bool) -> Result<Accepted, Refusal> {
        let hello: Hello = framing::read_record(&mut socket, protocol::HELLO_LIMIT)
            .await
            .map_err(|error| Refusal::Silent(frame_reason(&error)))?;
        if hello.magic == peer::PEER_MAGIC {
            // Peers prove the group's key either way, and carry only TLS to the apiservers.
            return self.peer_handshake(socket, &hello).await;
        }
        if hello.magic != protocol::MAGIC {
            return Err(Refusal::Silent("bad_magic"));
        }
        let verdict = if !over_tls && self.tls.require {
            Err(Refusal::Answered(
                "tls_required",
                "this replica takes agents over TLS only (KUBOARD_AGENT_SERVER_REQUIRE_TLS): give the agent \
                 KUBOARD_AGENT_SERVER_CA (the manifest Kuboard makes carries it)"
                    .into(),
            ))
        } else {
            self.check_hello(&hello).await
        };
        let answer = match &verdict {
            Ok(_) => Verdict::Accepted {
                replica: self.replica_id.to_string(),
            },
            Err(Refusal::Answered(_, message)) => Verdict::Refused {
                reason: message.clone(),
            },
            Err(Refusal::Silent(_)) => Verdict::Refused {
                reason: "internal error".into(),
            },
        };
        framing::write_record(&mut socket, &answer, protocol::HELLO_LIMIT)
            .await
            .map_err(|_| Refusal::Silent("closed"))?;
        let digest = verdict?;
        let report: Report = framing::read_record(&mut socket, protocol::REPORT_LIMIT)
            .await
            .map_err(|error| Refusal::Silent(frame_reason(&error)))?;
        self.record_report(&hello.cluster, &digest, &report).await?;
        Ok(Accepted::Agent(socket, hello.cluster, digest))
    }

    /// A peer replica forwarding a dial: both prove the group's key, then this replica dials
    /// through its own tunnel (never through another peer) and answers.
    async fn peer_handshake(&self, mut socket: Connection, hello: &Hello) -> Result<Accepted, Refusal> {
        let key = self.peer_key.as_ref().ok_or(Refusal::Silent("peer_disabled"))?;
        let own = self.replica_id.to_string();
        let request = peer::accept_peer(&mut socket, hello, key, &own)
            .await
            .map_err(|error| {
                Refusal::Silent(match error {
                    PeerAcceptError::Version => "version",
                    PeerAcceptError::Malformed => "malformed",
                    PeerAcceptError::WrongProof => "peer_proof",
                    PeerAcceptError::Frame(error) => frame_reason(&error),
                })
            })?;
        let forwards = &self.hub.metrics.peer_forwards;
        let dial = self
            .hub
            .dial(&request.cluster, &request.authority, PEER_DIAL_TIMEOUT)
            .await;
        let (verdict, stream) = match dial {
            Ok(stream) => (Verdict::Accepted { replica: own.clone() }, Some(stream)),
            Err(error) => (
                Verdict::Refused {
                    reason: error.to_string(),
                },
                None,
            ),
        };
        let outcome = if stream.is_some() { "ok" } else { "failed" };
        forwards.with_label_values(&[&request.cluster, "in", outcome]).inc();
        framing::write_record(&mut socket, &verdict, protocol::HELLO_LIMIT)
            .await
            .map_err(|_| Refusal::Silent("closed"))?;
        match stream {
            Some(stream) => Ok(Accepted::Peer(socket, request.cluster, stream)),
            // Answered: the refusal is the peer's to report; nothing more to count here.
            None => Err(Refusal::Answered("peer_no_tunnel", "no tunnel".into())),
        }
    }

    /// Copies bytes both ways between a peer's socket and this replica's tunnel stream until either
    /// side ends (or the replica shuts down); dropping both closes the other ends.
    async fn serve_forwarded(
        &self,
        mut socket: Connection,
        cluster: String,
        mut stream: TunnelStream,
        mut shutdown: watch::Receiver<bool>,
    ) {
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut socket, &mut stream) => {
                if let Err(error) = result {
                    tracing::debug!(cluster, %error, "forwarded apiserver connection ended");
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }

    async fn check_hello(&self, hello: &Hello) -> Result<String, Refusal> {
        if hello.version != protocol::VERSION {
            return Err(Refusal::Answered(
                "version",
                format!(
                    "protocol version {} is not supported (expected {})",
                    hello.version,
                    protocol::VERSION
                ),
            ));
        }
        let refused = || Refusal::Answered("wrong_token", "unknown cluster or wrong agent token".into());
        let stored = cluster_registry::get_cluster(&self.store, &hello.cluster)
            .await
            .map_err(|_| Refusal::Silent("store"))?
            .ok_or_else(refused)?;
        let registration = stored.record.agent.as_ref().ok_or_else(refused)?;
        if !protocol::token_matches(&hello.cluster, &hello.token, &registration.token_digest) {
            return Err(refused());
        }
        Ok(registration.token_digest.clone())
    }

    /// Stores the apiservers and credentials the agent reported, when they differ from the
    /// record's; the record must still carry the token digest that was accepted.
    async fn record_report(&self, cluster: &str, digest: &str, report: &Report) -> Result<(), Refusal> {
        let bad = |message: String| Refusal::Answered("bad_report", message);
        if report.endpoints.is_empty() || report.endpoints.len() > MAX_ENDPOINTS {
            return Err(bad("expected 1 to 16 apiserver URLs".into()));
        }
        for _ in 0..5 {
            let stored = cluster_registry::get_cluster(&self.store, cluster)
                .await
                .map_err(|_| Refusal::Silent("store"))?
                .ok_or(Refusal::Silent("cluster_deleted"))?;
            if stored.record.agent.as_ref().map(|agent| agent.token_digest.as_str()) != Some(digest) {
                return Err(Refusal::Silent("token_rotated"));
            }
            let current = cluster_registry::open_credentials(&self.cipher, &stored.record)
                .map_err(|_| Refusal::Silent("store"))?;
            if stored.record.endpoints == report.endpoints && current == report.credentials {
                return Ok(());
            }
            let now = self.clock.now_unix();
            let mut record: ClusterRecord = cluster_registry::seal_record(
                &self.cipher,
                cluster,
                stored.record.description.clone(),
                report.endpoints.clone(),
                &report.credentials,
                stored.record.created_at,
                now,
            );
            record.agent = stored.record.agent.clone();
            ClusterConnection::from_record(&record, &report.credentials)
                .and_then(|connection| connection.check_usable())
                .map_err(|error| bad(format!("the reported apiservers cannot be used: {error}")))?;
            if cluster_registry::write_cluster(&self.store, &record, Some(stored.mod_revision))
                .await
                .map_err(|_| Refusal::Silent("store"))?
            {
                tracing::info!(
                    cluster,
                    endpoints = report.endpoints.len(),
                    "agent cluster's apiservers recorded"
                );
                return Ok(());
            }
        }
        Err(Refusal::Silent("store_conflict"))
    }

    async fn serve_tunnel(
        &self,
        socket: Connection,
        peer: SocketAddr,
        cluster: String,
        digest: String,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let handshake = tunnel_client().handshake::<_, Bytes>(socket).await;
        let (sender, mut connection) = match handshake {
            Ok(pair) => pair,
            Err(error) => {
                tracing::info!(%peer, cluster, %error, "agent tunnel: HTTP/2 set-up failed");
                self.count_refusal("http2");
                return;
            }
        };
        let ping_pong = connection.ping_pong();
        let id = self.hub.add(&cluster, sender);
        self.hub.metrics.tunnel_connects.with_label_values(&[&cluster]).inc();
        tracing::info!(%peer, cluster, tunnels = self.hub.tunnel_count(&cluster), "agent tunnel up");
        let why = tokio::select! {
            result = &mut connection => match result {
                Ok(()) => "closed by the agent".to_string(),
                Err(error) => format!("failed: {error}"),
            },
            reason = keepalive(ping_pong) => reason,
            reason = self.watch_registration(&cluster, &digest) => reason,
            _ = shutdown.wait_for(|stop| *stop) => "replica shutting down".to_string(),
        };
        self.hub.remove(&cluster, id);
        // Dropping the connection closes the socket; nothing here waits on the agent.
        drop(connection);
        tracing::info!(%peer, cluster, why, "agent tunnel down");
    }

    async fn watch_registration(&self, cluster: &str, digest: &str) -> String {
        loop {
            tokio::time::sleep(RECHECK_INTERVAL).await;
            match cluster_registry::get_cluster(&self.store, cluster).await {
                Ok(None) => return "the cluster was deleted".into(),
                Ok(Some(stored)) => {
                    if stored.record.agent.as_ref().map(|agent| agent.token_digest.as_str()) != Some(digest) {
                        return "the agent token was rotated".into();
                    }
                }
                // The store being unavailable does not end working tunnels.
                Err(_) => {}
            }
        }
    }
}

/// Issues the agent port's certificate from the group CA once the store answers (the same wait as
/// the HTTPS port's) and serves TLS with it from then on. Until then a TLS agent is closed and
/// counted as `tls_not_ready` (it redials); plain agents are served meanwhile unless TLS is
/// required. The operator's `KUBOARD_TLS_CERT` is not used here: the manifests pin the group CA.
pub async fn serve_tls_when_ready(
    tls: Arc<AgentTls>,
    source: crate::tls::https_port::CertificateSource,
    mut shutdown: watch::Receiver<bool>,
) {
    match crate::tls::https_port::group_certificate(&source, &mut shutdown).await {
        Ok(Some((config, _))) => {
            tls.set_config(config);
            tracing::info!("agent port: TLS served with a certificate of the group CA");
        }
        Ok(None) => {}
        Err(reason) => tracing::error!(%reason, "agent port: no TLS, agents that pin the group CA cannot connect"),
    }
}

/// Pings every [`PING_INTERVAL`]; returns when a ping is not answered in time.
pub async fn keepalive(ping_pong: Option<h2::PingPong>) -> String {
    let Some(mut ping_pong) = ping_pong else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(PING_INTERVAL).await;
        match tokio::time::timeout(PING_TIMEOUT, ping_pong.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return format!("keepalive failed: {error}"),
            Err(_) => return format!("no keepalive answer within {PING_TIMEOUT:?}"),
        }
    }
}

fn frame_reason(error: &FrameError) -> &'static str {
    match error {
        FrameError::TooLarge { .. } => "oversize_frame",
        FrameError::Empty | FrameError::Decode(_) => "malformed",
        FrameError::Closed | FrameError::Io(_) => "closed",
    }
}
