//! The server side: accepts peer connections, authenticates them, and answers their requests by
//! calling the local raft core and the application handler.
//!
//! A connection in its handshake holds a permit of the handshake budget (per source address and in
//! total); only once authenticated does it take one of the `max_connections` permits, so sources
//! that never finish a handshake cannot use up the members' budget.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::errors::Fatal;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::storage::RaftStateMachine;
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{RaftTypeConfig, Snapshot};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::config::PeerConfig;
use super::connection::write_sealed;
use super::handshake::{server_handshake, HandshakeError};
use super::network::SnapshotFinish;
use super::sealing::{OpenError, Opener, Sealer};
use super::snapshot::SnapshotReceive;
use super::stats::PeerStats;
use super::wire::{RemoteFailure, RequestBody, RequestFrame, ResponseFrame, SnapshotChunk};
use crate::codec;
use crate::framing::{decode_payload, encode_payload, FrameError};

/// The raft core as the server sees it. Implemented for `openraft::Raft`; tests implement it with
/// a fake. Every method answers a request from an authenticated peer.
pub trait RaftRpcHandler: Send + Sync + 'static {
    type Config: RaftTypeConfig<NodeId = u64>;
    /// The state machine's snapshot data type.
    type SnapshotData: Send + 'static;

    fn append_entries(
        &self,
        rpc: AppendEntriesRequest<Self::Config>,
    ) -> impl Future<Output = Result<AppendEntriesResponse<Self::Config>, Fatal<Self::Config>>> + Send;

    fn vote(
        &self,
        rpc: VoteRequest<Self::Config>,
    ) -> impl Future<Output = Result<VoteResponse<Self::Config>, Fatal<Self::Config>>> + Send;

    fn pre_vote(
        &self,
        rpc: VoteRequest<Self::Config>,
    ) -> impl Future<Output = Result<VoteResponse<Self::Config>, Fatal<Self::Config>>> + Send;

    /// Install a completely received snapshot.
    fn install_full_snapshot(
        &self,
        vote: VoteOf<Self::Config>,
        snapshot: SnapshotOf<Self::Config, Self::SnapshotData>,
    ) -> impl Future<Output = Result<SnapshotResponse<Self::Config>, Fatal<Self::Config>>> + Send;
}

impl<C, SM> RaftRpcHandler for openraft::Raft<C, SM>
where
    C: RaftTypeConfig<NodeId = u64>,
    SM: RaftStateMachine<C>,
{
    type Config = C;
    type SnapshotData = SM::SnapshotData;

    async fn append_entries(&self, rpc: AppendEntriesRequest<C>) -> Result<AppendEntriesResponse<C>, Fatal<C>> {
        openraft::Raft::append_entries(self, rpc)
            .await
            .map_err(|e| e.unwrap_fatal())
    }

    async fn vote(&self, rpc: VoteRequest<C>) -> Result<VoteResponse<C>, Fatal<C>> {
        openraft::Raft::vote(self, rpc).await.map_err(|e| e.unwrap_fatal())
    }

    async fn pre_vote(&self, rpc: VoteRequest<C>) -> Result<VoteResponse<C>, Fatal<C>> {
        openraft::Raft::pre_vote(self, rpc).await.map_err(|e| e.unwrap_fatal())
    }

    async fn install_full_snapshot(
        &self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, SM::SnapshotData>,
    ) -> Result<SnapshotResponse<C>, Fatal<C>> {
        openraft::Raft::install_full_snapshot(self, vote, snapshot).await
    }
}

/// Answers application requests from other replicas (a follower forwarding a write to the leader,
/// a follower asking the leader for a read index). Requests and answers are opaque bytes, by
/// convention codec records; an `Err` reaches the caller as `PeerError::Remote`.
pub trait AppRequestHandler: Send + Sync + 'static {
    fn handle(&self, from: u64, request: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, String>> + Send;
}

impl<T: AppRequestHandler> AppRequestHandler for Arc<T> {
    fn handle(&self, from: u64, request: Vec<u8>) -> impl Future<Output = Result<Vec<u8>, String>> + Send {
        self.as_ref().handle(from, request)
    }
}

/// A handler for servers that serve no application requests: every request is answered with an
/// error.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAppRequests;

impl AppRequestHandler for NoAppRequests {
    async fn handle(&self, _from: u64, _request: Vec<u8>) -> Result<Vec<u8>, String> {
        Err("this replica serves no application requests".to_string())
    }
}

/// The peer listener of one replica, before it is started.
pub struct PeerServer<H, R, A> {
    config: PeerConfig,
    raft: H,
    snapshots: R,
    app: A,
}

struct Shared<H: RaftRpcHandler, R: SnapshotReceive<H::SnapshotData>, A> {
    config: PeerConfig,
    raft: H,
    snapshots: R,
    app: A,
    stats: PeerStats,
}

/// A snapshot being received on one connection.
struct Inbound<W> {
    transfer: u64,
    received: u64,
    writer: W,
}

type InboundSlot<W> = Arc<tokio::sync::Mutex<Option<Inbound<W>>>>;

impl<H, R, A> PeerServer<H, R, A>
where
    H: RaftRpcHandler,
    R: SnapshotReceive<H::SnapshotData>,
    A: AppRequestHandler,
{
    pub fn new(config: PeerConfig, raft: H, snapshots: R, app: A) -> Self {
        Self {
            config,
            raft,
            snapshots,
            app,
        }
    }

    /// Bind `addr` and serve until the returned handle is shut down or dropped.
    pub async fn start(self, addr: SocketAddr) -> io::Result<PeerServerHandle> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let stats = PeerStats::default();
        let shared = Arc::new(Shared {
            config: self.config,
            raft: self.raft,
            snapshots: self.snapshots,
            app: self.app,
            stats: stats.clone(),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        tracing::info!(addr = %local_addr, node = shared.config.node_id, "peer listener started");
        let task = tokio::spawn(accept_loop(listener, shared, shutdown_rx));
        Ok(PeerServerHandle {
            local_addr,
            stats,
            shutdown_tx,
            task: Some(task),
        })
    }
}

/// A running peer listener. Dropping it stops the listener and closes every connection.
pub struct PeerServerHandle {
    local_addr: SocketAddr,
    stats: PeerStats,
    shutdown_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl PeerServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    /// Stop accepting, close every connection (requests in progress are abandoned; peers retry
    /// them elsewhere or later) and wait until the port is released.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "peer listener task failed");
            }
        }
    }
}

impl Drop for PeerServerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}

async fn accept_loop<H, R, A>(listener: TcpListener, shared: Arc<Shared<H, R, A>>, mut shutdown: watch::Receiver<bool>)
where
    H: RaftRpcHandler,
    R: SnapshotReceive<H::SnapshotData>,
    A: AppRequestHandler,
{
    let connection_limit = Arc::new(Semaphore::new(shared.config.max_connections));
    let handshakes = HandshakeBudget::new(&shared.config);
    let mut connections = JoinSet::new();
    let connection_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            _ = stop_requested(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    shared.stats.connection_accepted();
                    let Some(handshake) = handshakes.try_acquire(remote.ip()) else {
                        // One line per refusal would let the flood fill the log; the counter shows it.
                        shared.stats.handshake_over_budget();
                        tracing::debug!(%remote, "refusing a peer connection: too many handshakes in progress from its source");
                        continue;
                    };
                    connections.spawn(serve_connection(
                        shared.clone(),
                        stream,
                        remote,
                        handshake,
                        connection_limit.clone(),
                        connection_shutdown.clone(),
                    ));
                }
                Err(e) => {
                    // Typically out of file descriptors; pausing keeps the loop from spinning.
                    tracing::warn!(error = %e, "accepting a peer connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
    tracing::info!(node = shared.config.node_id, "peer listener stopped");
}

/// The budget of connections that have not completed their handshake: at most
/// `max_handshakes_per_source` from one address and `max_handshakes` in all.
struct HandshakeBudget {
    per_source_limit: usize,
    per_source: Arc<Mutex<HashMap<IpAddr, usize>>>,
    total: Arc<Semaphore>,
}

/// One connection's share of the handshake budget, given back when dropped.
struct HandshakePermit {
    source: IpAddr,
    per_source: Arc<Mutex<HashMap<IpAddr, usize>>>,
    _total: OwnedSemaphorePermit,
}

impl HandshakeBudget {
    fn new(config: &PeerConfig) -> Self {
        Self {
            per_source_limit: config.max_handshakes_per_source,
            per_source: Arc::default(),
            total: Arc::new(Semaphore::new(config.max_handshakes)),
        }
    }

    fn try_acquire(&self, source: IpAddr) -> Option<HandshakePermit> {
        // An IPv4 peer reached over an IPv6 socket counts as the same source.
        let source = source.to_canonical();
        let total = self.total.clone().try_acquire_owned().ok()?;
        let mut per_source = lock_sources(&self.per_source);
        let count = per_source.entry(source).or_insert(0);
        if *count >= self.per_source_limit {
            return None;
        }
        *count += 1;
        Some(HandshakePermit {
            source,
            per_source: self.per_source.clone(),
            _total: total,
        })
    }
}

impl Drop for HandshakePermit {
    fn drop(&mut self) {
        let mut per_source = lock_sources(&self.per_source);
        if let Some(count) = per_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                per_source.remove(&self.source);
            }
        }
    }
}

fn lock_sources(map: &Mutex<HashMap<IpAddr, usize>>) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
    // Every operation under this lock is a single insert, update or removal, so a poisoned map is
    // still consistent.
    map.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn serve_connection<H, R, A>(
    shared: Arc<Shared<H, R, A>>,
    mut stream: TcpStream,
    remote: SocketAddr,
    handshake_permit: HandshakePermit,
    connection_limit: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) where
    H: RaftRpcHandler,
    R: SnapshotReceive<H::SnapshotData>,
    A: AppRequestHandler,
{
    let config = &shared.config;
    let stats = &shared.stats;
    let _ = stream.set_nodelay(true);
    let (peer, keys) = match tokio::time::timeout(config.handshake_timeout, server_handshake(&mut stream, config)).await
    {
        Ok(Ok(authenticated)) => authenticated,
        Ok(Err(e)) if e.is_auth_failure() => {
            stats.auth_failure();
            tracing::warn!(%remote, "refused a peer connection: {e}");
            return;
        }
        Ok(Err(e)) => {
            stats.handshake_failure();
            if matches!(&e, HandshakeError::Frame(frame) if frame.is_malformed()) {
                stats.frame_error();
            }
            tracing::info!(%remote, "refused a peer connection: {e}");
            return;
        }
        Err(_) => {
            stats.handshake_failure();
            tracing::info!(%remote, "refused a peer connection that did not complete the handshake in time");
            return;
        }
    };
    drop(handshake_permit);
    let Ok(_connection_permit) = connection_limit.try_acquire_owned() else {
        tracing::warn!(%remote, peer, limit = config.max_connections, "closing an authenticated peer connection over the limit");
        return;
    };
    stats.connection_authenticated();
    tracing::debug!(%remote, peer, "peer connection authenticated");

    let (mut read_half, write_half) = stream.into_split();
    let mut opener = Opener::new(&keys.client_to_server);
    let sealer = Sealer::new(&keys.server_to_client);
    drop(keys);
    let (responses, queue) = mpsc::channel(config.max_inflight_per_connection);
    let writer = tokio::spawn(async move {
        if let Err(e) = write_sealed(write_half, sealer, queue).await {
            tracing::debug!(peer, error = %e, "writing to a peer failed");
        }
    });
    let inflight = Arc::new(Semaphore::new(config.max_inflight_per_connection));
    let inbound: InboundSlot<R::Writer> = Arc::new(tokio::sync::Mutex::new(None));
    let mut requests = JoinSet::new();
    loop {
        let permit = tokio::select! {
            _ = stop_requested(&mut shutdown) => break,
            permit = inflight.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let frame = tokio::select! {
            _ = stop_requested(&mut shutdown) => break,
            frame = opener.read(&mut read_half, config.max_frame_bytes) => frame,
        };
        let payload = match frame {
            Ok(payload) => Ok(payload),
            Err(OpenError::Frame(e)) => Err(e),
            Err(OpenError::Forged) => {
                stats.forged_frame();
                tracing::warn!(
                    %remote,
                    peer,
                    "closing a peer connection: a frame failed its integrity check (altered, injected or replayed on the way)"
                );
                break;
            }
        };
        let request = payload.and_then(|payload| decode_payload::<RequestFrame>(&payload, config.max_frame_bytes));
        match request {
            Ok(RequestFrame { id, body }) => {
                let shared = shared.clone();
                let inbound = inbound.clone();
                let responses = responses.clone();
                requests.spawn(async move {
                    let _permit = permit;
                    let kind = body.kind();
                    let body = handle_request(&shared, peer, body, &inbound).await;
                    shared.stats.request_served();
                    if let Err(failure) = &body {
                        shared.stats.rpc_error();
                        tracing::debug!(peer, request = kind, %failure, "answered a peer request with an error");
                    }
                    let frame =
                        encode_payload(&ResponseFrame { id, body }, shared.config.max_frame_bytes).or_else(|e| {
                            let failure = RemoteFailure::Internal(format!("response not sent: {e}"));
                            encode_payload(&ResponseFrame { id, body: Err(failure) }, shared.config.max_frame_bytes)
                        });
                    match frame {
                        Ok(frame) => {
                            let _ = responses.send(frame).await;
                        }
                        Err(e) => tracing::error!(peer, request = kind, error = %e, "cannot encode a response"),
                    }
                });
            }
            Err(FrameError::Closed) => break,
            Err(e) => {
                if e.is_malformed() {
                    stats.frame_error();
                    tracing::warn!(%remote, peer, error = %e, "closing a peer connection that sent a bad frame");
                } else {
                    tracing::debug!(%remote, peer, error = %e, "peer connection failed");
                }
                break;
            }
        }
        while requests.try_join_next().is_some() {}
    }
    // Requests still in progress are abandoned with the connection; the peer sees it close.
    requests.shutdown().await;
    writer.abort();
    tracing::debug!(%remote, peer, "peer connection closed");
}

/// Resolves once the listener is asked to stop (or its handle is gone).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // An error means the handle was dropped, which asks to stop as well.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn handle_request<H, R, A>(
    shared: &Shared<H, R, A>,
    peer: u64,
    body: RequestBody,
    inbound: &InboundSlot<R::Writer>,
) -> Result<Vec<u8>, RemoteFailure>
where
    H: RaftRpcHandler,
    R: SnapshotReceive<H::SnapshotData>,
    A: AppRequestHandler,
{
    let limit = shared.config.max_frame_bytes;
    match body {
        RequestBody::AppendEntries(bytes) => {
            let rpc = decode_request(&bytes, limit)?;
            encode_response(shared.raft.append_entries(rpc).await.map_err(stopped)?)
        }
        RequestBody::Vote(bytes) => {
            let rpc = decode_request(&bytes, limit)?;
            encode_response(shared.raft.vote(rpc).await.map_err(stopped)?)
        }
        RequestBody::PreVote(bytes) => {
            let rpc = decode_request(&bytes, limit)?;
            encode_response(shared.raft.pre_vote(rpc).await.map_err(stopped)?)
        }
        RequestBody::App(bytes) => shared.app.handle(peer, bytes).await.map_err(RemoteFailure::Handler),
        RequestBody::SnapshotChunk(chunk) => receive_snapshot_chunk(shared, peer, chunk, inbound).await,
    }
}

async fn receive_snapshot_chunk<H, R, A>(
    shared: &Shared<H, R, A>,
    peer: u64,
    chunk: SnapshotChunk,
    inbound: &InboundSlot<R::Writer>,
) -> Result<Vec<u8>, RemoteFailure>
where
    H: RaftRpcHandler,
    R: SnapshotReceive<H::SnapshotData>,
    A: AppRequestHandler,
{
    let mut slot = inbound.lock().await;
    if chunk.offset == 0 {
        // A transfer starting over replaces any earlier one the sender gave up on.
        *slot = None;
        let writer = shared
            .snapshots
            .begin()
            .await
            .map_err(|e| internal("start receiving a snapshot", e))?;
        *slot = Some(Inbound {
            transfer: chunk.transfer,
            received: 0,
            writer,
        });
    }
    let Some(transfer) = slot.as_mut() else {
        return Err(RemoteFailure::BadRequest(
            "snapshot chunk without a transfer in progress".to_string(),
        ));
    };
    if transfer.transfer != chunk.transfer || transfer.received != chunk.offset {
        *slot = None;
        return Err(RemoteFailure::BadRequest("snapshot chunk out of order".to_string()));
    }
    let received = transfer.received.saturating_add(chunk.data.len() as u64);
    if received > shared.config.max_snapshot_bytes {
        *slot = None;
        return Err(RemoteFailure::BadRequest(format!(
            "snapshot exceeds the limit of {} bytes",
            shared.config.max_snapshot_bytes
        )));
    }
    if let Err(e) = transfer.writer.write_all(&chunk.data).await {
        *slot = None;
        return Err(internal("write a snapshot chunk", e));
    }
    transfer.received = received;
    let Some(finish) = chunk.finish else {
        return Ok(Vec::new());
    };

    let Inbound {
        mut writer, received, ..
    } = slot
        .take()
        .expect("the transfer was checked above while holding the lock");
    drop(slot);
    let SnapshotFinish { vote, meta } =
        decode_request::<SnapshotFinish<H::Config>>(&finish, shared.config.max_frame_bytes)?;
    writer
        .shutdown()
        .await
        .map_err(|e| internal("complete a received snapshot", e))?;
    let data = shared
        .snapshots
        .finish(writer)
        .await
        .map_err(|e| internal("complete a received snapshot", e))?;
    tracing::info!(peer, bytes = received, "received a snapshot; installing it");
    let response = shared
        .raft
        .install_full_snapshot(vote, Snapshot { meta, snapshot: data })
        .await
        .map_err(stopped)?;
    shared.stats.snapshot_received();
    encode_response(response)
}

fn decode_request<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, RemoteFailure> {
    codec::decode_with_limit(bytes, limit).map_err(|e| RemoteFailure::BadRequest(e.to_string()))
}

fn encode_response<T: Serialize>(value: T) -> Result<Vec<u8>, RemoteFailure> {
    codec::encode(&value).map_err(|e| RemoteFailure::Internal(e.to_string()))
}

fn stopped<C: RaftTypeConfig>(fatal: Fatal<C>) -> RemoteFailure {
    RemoteFailure::Stopped(fatal.to_string())
}

fn internal(action: &str, error: io::Error) -> RemoteFailure {
    tracing::warn!(error = %error, "cannot {action}");
    RemoteFailure::Internal(format!("{action}: {error}"))
}
