//! [`RaftStore`]: the embedded group behind the `Store` contract.
//!
//! Writes, lease operations and membership changes are performed by the leader: on the leader
//! directly, on any other member forwarded to it through the peer transport (see `forwarding`).
//! Linearizable reads ask the leader for a read index (ReadIndex), wait until this member has
//! applied that far, and then read the local MVCC store; serializable reads and watches are served
//! by the local store directly. Leases are kept by the leader: it holds each lease's deadline in
//! memory and proposes the revocation of expired ones through the log, so every member deletes the
//! attached keys at the same revision.
//!
//! The peer listener: a member with a cluster secret listens on `peer_listen_addr` (with more than
//! one peer the secret is required). A one-member group without a secret does not listen at all:
//! it has nobody to talk to, and an unauthenticated listener must not exist. To grow such a group
//! later, restart it with a secret first.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kuboard_storage::*;
use openraft::async_runtime::WatchReceiver;
use openraft::{Instant as _, ServerState};

use crate::app_handler::AppHandler;
use crate::command::{Command, CommandResponse};
use crate::formation::{form_group, AdmissionGate};
use crate::forwarding::Forwarder;
use crate::leader::keep_lease_clock;
use crate::log_store::LogStore;
use crate::member::{internal, MemberStart, MemberState, Parts};
use crate::member_messages::{LeaderOp, LeaderReply};
use crate::metrics::RaftStoreMetrics;
use crate::open::{
    data_dir_error, open_state_machine, peer_config, prepare_dir, raft_config, validate, OpenError, RaftStoreConfig,
};
use crate::peer::{BlockedPeers, ClusterSecret, FileSnapshotReceiver, PeerClient, PeerNetworkFactory, PeerServer};
use crate::state_machine::{Raft, StateMachineStore};
use crate::types::PeerNode;

/// The largest command accepted into the log, etcd's default `--max-request-bytes` (1.5 MiB).
const MAX_REQUEST_BYTES: u64 = 1536 * 1024;
/// How long `open` of a one-member group waits for it to elect itself.
const SELF_ELECTION_WAIT_MIN: Duration = Duration::from_secs(10);
/// Upper bound of a membership change: adding a member waits until it has caught up, which may
/// take a snapshot transfer.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(120);

/// A handle on this replica's member of the embedded group. Cheap to clone.
#[derive(Clone)]
pub struct RaftStore {
    pub(crate) member: Arc<MemberState>,
}

impl RaftStore {
    /// Open (or create) this member's store and start taking part in the group.
    ///
    /// A fresh one-member group initialises itself at once. A fresh member of a larger group
    /// starts its peer listener and forms the group with its peers in the background (see
    /// `bootstrap`): `open` returns before a leader exists, and requests wait for one within their
    /// deadline. A restart never re-initialises.
    pub async fn open(config: RaftStoreConfig) -> Result<RaftStore, OpenError> {
        validate(&config)?;
        let root = config.data_dir.join("raft");
        let (wal_dir, sm_dir, snapshot_dir) = (root.join("wal"), root.join("sm"), root.join("snapshots"));
        for dir in [&config.data_dir, &root, &wal_dir, &sm_dir, &snapshot_dir] {
            prepare_dir(dir)?;
        }

        let wal = wal_dir.clone();
        let log = tokio::task::spawn_blocking(move || LogStore::open(&wal))
            .await
            .map_err(|e| OpenError::Other(format!("open raft log task: {e}")))?
            .map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock => data_dir_error(&wal_dir, "the raft log is in use by another process"),
                io::ErrorKind::InvalidData => OpenError::Corrupt {
                    path: wal_dir.clone(),
                    message: e.to_string(),
                },
                _ => data_dir_error(&wal_dir, format!("open raft log: {e}")),
            })?;
        let has_state = log.has_state().map_err(|e| data_dir_error(&wal_dir, e))?;
        let kv = open_state_machine(&sm_dir, &snapshot_dir).await?;
        let sm =
            StateMachineStore::open(kv.clone(), &snapshot_dir, config.node_id).map_err(|e| OpenError::Corrupt {
                path: root.clone(),
                message: e.to_string(),
            })?;

        let secret = match config.cluster_secret.as_deref() {
            Some(secret) if !secret.is_empty() => {
                Some(ClusterSecret::new(secret).map_err(|e| OpenError::Config(e.to_string()))?)
            }
            _ => None,
        };
        let peer_config = secret.map(|secret| peer_config(&config, secret));
        let peer_client = peer_config.clone().map(PeerClient::new);
        if let Some(client) = &peer_client {
            for (id, addr) in config.peers.iter().filter(|(id, _)| **id != config.node_id) {
                client.set_peer_address(*id, addr.clone());
            }
        }
        let blocked_peers = BlockedPeers::default();
        let network = PeerNetworkFactory::new(config.node_id, peer_client.clone(), blocked_peers.clone());
        let raft_config = Arc::new(raft_config(&config)?);
        let raft = Raft::new(config.node_id, raft_config, network, log.clone(), sm)
            .await
            .map_err(|e| OpenError::Other(format!("start raft: {e}")))?;

        let election_timeout = Duration::from_millis(config.election_timeout_ms);
        let (member, stop_rx) = MemberState::new(MemberStart {
            node_id: config.node_id,
            election_timeout,
            heartbeat: Duration::from_millis(config.heartbeat_ms),
            peers: config.peers.clone(),
            parts: Parts {
                raft: raft.clone(),
                kv,
                log,
            },
            peer_client,
            blocked_peers,
            admitted: has_state || config.peers.len() == 1,
        });
        let store = RaftStore { member };

        if let Some(peer_config) = peer_config {
            let receiver = FileSnapshotReceiver {
                dir: root.join("incoming"),
            };
            let handler = AppHandler {
                member: Arc::downgrade(&store.member),
            };
            let gate = AdmissionGate {
                raft: raft.clone(),
                admitted: store.member.admitted.clone(),
            };
            let started = PeerServer::new(peer_config, gate, receiver, handler)
                .start(config.peer_listen_addr)
                .await;
            let server = match started {
                Ok(server) => server,
                Err(e) => {
                    // Release the files so that a corrected configuration can open them again.
                    let _ = store.shutdown().await;
                    return Err(OpenError::Listen {
                        addr: config.peer_listen_addr,
                        message: e.to_string(),
                    });
                }
            };
            store.member.set_listener(server.local_addr(), server.stats().clone());
            *store.member.lock_server() = Some(server);
        }

        store
            .member
            .spawn(keep_lease_clock(Arc::downgrade(&store.member), stop_rx.clone()));
        if has_state {
            tracing::info!(node_id = config.node_id, "raft store reopened");
        } else if config.peers.len() == 1 {
            let members = BTreeMap::from([(
                config.node_id,
                PeerNode {
                    addr: config.peers[&config.node_id].clone(),
                },
            )]);
            tracing::info!(node_id = config.node_id, "initialising a new one-member raft group");
            if let Err(e) = raft.initialize(members).await {
                let _ = store.shutdown().await;
                return Err(OpenError::Other(format!("initialise raft group: {e}")));
            }
        } else {
            store.member.spawn(form_group(Arc::downgrade(&store.member), stop_rx));
        }

        if config.peers.len() == 1 {
            // A one-member group elects itself within an election timeout; wait for it so the
            // first request after open does not race the election.
            let wait = SELF_ELECTION_WAIT_MIN.max(election_timeout * 10);
            let elected = raft
                .wait(Some(wait))
                .state(ServerState::Leader, "one-member group elects itself")
                .await;
            if let Err(e) = elected {
                let _ = store.shutdown().await;
                return Err(OpenError::Other(format!(
                    "the one-member group did not elect itself: {e}"
                )));
            }
        }
        Ok(store)
    }

    /// Stop taking part in the group: close the peer listener, finish in-flight writes, flush the
    /// log and the state machine.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        let Some(tasks) = self.member.begin_shutdown()? else {
            return Ok(());
        };
        for task in tasks {
            // A task may be inside a revocation write; the proposal is harmless to abandon.
            task.abort();
            let _ = task.await;
        }
        let server = self.member.lock_server().take();
        if let Some(server) = server {
            // Closed first so that the peers see this member go at once and elect without it.
            server.shutdown().await;
        }
        let parts = self.member.take_parts()?;
        let Some(parts) = parts else {
            return Ok(());
        };
        let Parts { raft, kv, log } = parts;
        raft.shutdown().await.map_err(|e| internal(format!("stop raft: {e}")))?;
        drop(raft);
        log.sync().await.map_err(|e| internal(format!("flush raft log: {e}")))?;
        drop(log);
        // The last handle on the state machine goes with the flush task, which releases sled's
        // lock (watch streams still open keep their own handles).
        tokio::task::spawn_blocking(move || kv.flush())
            .await
            .map_err(|e| internal(format!("flush state machine task: {e}")))?
            .map_err(|e| internal(format!("flush state machine: {e}")))?;
        tracing::info!(node_id = self.member.node_id, "raft store shut down");
        Ok(())
    }

    /// Why this member stopped by itself (its log or state machine could not be written: a full
    /// disk, an fsync error), or `None` while it runs or once it is being shut down on purpose. A
    /// member stopped this way takes no further part in the group until its replica restarts, so
    /// the replica must not look alive.
    pub fn failure(&self) -> Option<String> {
        if self.member.is_shutting_down() {
            return None;
        }
        let parts = self.member.parts().ok()?;
        let metrics = parts.raft.metrics();
        let failure = match &metrics.borrow_watched().running_state {
            Err(fatal) => Some(fatal.to_string()),
            Ok(()) => None,
        };
        failure
    }

    /// Resolves when this member stops by itself, with the reason [`RaftStore::failure`] gives;
    /// never resolves for a member that runs on or is shut down on purpose.
    pub async fn stopped_by_failure(&self) -> String {
        let Ok(parts) = self.member.parts() else {
            return std::future::pending().await;
        };
        let mut metrics = parts.raft.metrics();
        drop(parts);
        loop {
            if let Some(reason) = self.failure() {
                return reason;
            }
            if metrics.changed().await.is_err() {
                // The core is gone without a recorded error: only a shutdown on purpose ends it so.
                if self.member.is_shutting_down() {
                    return std::future::pending().await;
                }
                return self.failure().unwrap_or_else(|| "the raft member stopped".to_string());
            }
        }
    }

    /// The address the peer listener is bound to; `None` when this member has no listener (a
    /// one-member group without a cluster secret).
    pub fn peer_listen_addr(&self) -> Option<SocketAddr> {
        self.member.listener().map(|(addr, _)| *addr)
    }

    /// The members of the group as this member knows them, with their roles and health.
    pub async fn members(&self) -> Result<Vec<Member>, StoreError> {
        self.member.member_list()
    }

    /// Add member `id`, listening for peers at `addr`, to the group: the leader replicates to it as
    /// a learner until it has caught up (by snapshot if needed), then makes it a voter. Performed
    /// by the leader whichever member is called. Answers the new member list.
    pub async fn add_member(&self, id: u64, addr: String) -> Result<Vec<Member>, StoreError> {
        let reply = self.route(LeaderOp::AddMember { id, addr }, MEMBERSHIP_TIMEOUT).await?;
        expect_reply(reply, |r| if let LeaderReply::Members(m) = r { Some(m) } else { None })
    }

    /// Remove member `id` from the group (a voter or a learner). Performed by the leader whichever
    /// member is called. Answers the new member list.
    pub async fn remove_member(&self, id: u64) -> Result<Vec<Member>, StoreError> {
        let reply = self.route(LeaderOp::RemoveMember { id }, MEMBERSHIP_TIMEOUT).await?;
        expect_reply(reply, |r| if let LeaderReply::Members(m) = r { Some(m) } else { None })
    }

    /// Replace member `id` by a fresh member with the same id at `addr` (the way back for a member
    /// whose data directory was lost): remove, then add. Answers the new member list.
    pub async fn replace_member(&self, id: u64, addr: String) -> Result<Vec<Member>, StoreError> {
        let known = self.member.member_list()?.iter().any(|member| member.id == id);
        if known {
            self.remove_member(id).await?;
        }
        self.add_member(id, addr).await
    }

    /// A reading of this member's raft counters and positions, for the server's `/metrics`.
    pub fn metrics(&self) -> RaftStoreMetrics {
        let mut metrics = RaftStoreMetrics {
            node_id: self.member.node_id,
            joining: self.member.joining.load(Ordering::SeqCst),
            admitted: self.member.admitted.load(Ordering::SeqCst),
            initialize_refusals: self.member.initialize_refusals.load(Ordering::SeqCst),
            ..Default::default()
        };
        if let Some(client) = &self.member.peer_client {
            metrics.add_peer_counters(client.stats().counters());
        }
        if let Some((_, stats)) = self.member.listener() {
            let counters = stats.counters();
            metrics.add_peer_counters(counters);
            metrics.snapshots_installed = counters.snapshots_received;
        }
        if let Ok(parts) = self.member.parts() {
            let raft_metrics = parts.raft.metrics().borrow_watched().clone();
            metrics.fill_from_raft(&raft_metrics);
        }
        metrics
    }

    /// Test hook: cut this member off from `peers` (every Raft RPC and application request to
    /// them fails as unreachable before it is sent); an empty list heals. A partition between two
    /// members is both of them blocking each other.
    #[doc(hidden)]
    pub fn set_blocked_peers(&self, peers: &[u64]) {
        self.member.blocked_peers.set_blocked(peers.iter().copied());
    }

    /// The state machine's history as it stands on this member: entries kept (every write and
    /// deletion still readable at some retained revision, plus what a compaction has not removed
    /// yet; a scan, for tests and measurements) and whether a removal is still under way.
    #[doc(hidden)]
    pub fn history_entries(&self) -> Result<(usize, bool), StoreError> {
        let parts = self.member.parts()?;
        Ok((parts.kv.history_entries(), parts.kv.purge_pending()))
    }

    /// Test hook: build a snapshot now and wait (up to `timeout`) until it covers at least the
    /// entries applied when it was asked for; returns the index it covers.
    #[doc(hidden)]
    pub async fn build_snapshot_now(&self, timeout: Duration) -> Result<u64, StoreError> {
        let parts = self.member.parts()?;
        let mut metrics = parts.raft.metrics();
        let applied = metrics.borrow_watched().last_applied.map_or(0, |id| id.index);
        parts
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| internal(format!("trigger a snapshot: {e}")))?;
        let covered = tokio::time::timeout(timeout, async {
            loop {
                let index = metrics.borrow_watched().snapshot.map_or(0, |id| id.index);
                if index >= applied {
                    return Ok(index);
                }
                if metrics.changed().await.is_err() {
                    return Err(internal("raft stopped while a snapshot was built"));
                }
            }
        })
        .await
        .map_err(|_| internal(format!("no snapshot covering index {applied} within {timeout:?}")))?;
        covered
    }

    /// Get `op` performed by the leader of the moment (see `forwarding`).
    async fn route(&self, op: LeaderOp, timeout: Duration) -> Result<LeaderReply, StoreError> {
        Forwarder::new(&self.member).route(op, timeout).await
    }

    /// Get a command proposed through the log by the leader and return the state machine's answer.
    async fn write(&self, command: Command) -> Result<CommandResponse, StoreError> {
        let size = command.approximate_size();
        if size > MAX_REQUEST_BYTES {
            // Refused before it takes a log entry: a huge entry slows every member's log and
            // snapshot, as etcd's --max-request-bytes guards against.
            return Err(StoreError::InvalidArgument(format!(
                "request of about {size} bytes exceeds the limit of {MAX_REQUEST_BYTES} bytes"
            )));
        }
        let timeout = self.member.request_timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let reply = self.route(LeaderOp::Write(command), timeout).await?;
        let (mut response, index) = expect_reply(reply, |r| {
            if let LeaderReply::Command(response, index) = r {
                Some((response, index))
            } else {
                None
            }
        })?;
        // As in etcd, a write returns once the member that was called has applied it too, so
        // that its serializable reads and watches see the caller's own writes. The write is
        // committed whatever happens here: a member that cannot catch up in time still answers.
        let parts = self.member.parts()?;
        if let Err(e) = self.member.wait_applied(&parts, index, deadline).await {
            tracing::debug!(error = %e, index, "answering a committed write before this member applied it");
        }
        let term = response_term(&response);
        crate::state_machine::fill_header(&mut response, self.member.node_id, term);
        Ok(response)
    }

    /// Make the local state machine current for a linearizable read: get a read index from the
    /// leader (confirmed with a quorum) and wait until this member has applied that far.
    async fn read_barrier(&self, parts: &Parts) -> Result<(), StoreError> {
        let timeout = self.member.request_timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let reply = self.route(LeaderOp::ReadIndex, timeout).await?;
        let index = expect_reply(reply, |r| {
            if let LeaderReply::ReadIndex(i) = r {
                Some(i)
            } else {
                None
            }
        })?;
        self.member.wait_applied(parts, index, deadline).await
    }
}

/// The term a command response was produced in (every header of one response carries the same).
fn response_term(response: &CommandResponse) -> u64 {
    match response {
        CommandResponse::Put(r) => r.header.raft_term,
        CommandResponse::DeleteRange(r) => r.header.raft_term,
        CommandResponse::Txn(r) => r.header.raft_term,
        CommandResponse::Compact(r) => r.header.raft_term,
        CommandResponse::LeaseGrant(r) => r.header.raft_term,
        CommandResponse::LeaseRevoke(r) => r.header.raft_term,
        CommandResponse::Applied(header) => header.raft_term,
        CommandResponse::Error(_) => 0,
    }
}

fn expect_reply<T>(reply: LeaderReply, pick: impl FnOnce(LeaderReply) -> Option<T>) -> Result<T, StoreError> {
    pick(reply).ok_or_else(|| internal("the leader answered with a reply of another kind"))
}

fn expect_response<T>(
    response: CommandResponse,
    pick: impl FnOnce(CommandResponse) -> Option<T>,
) -> Result<T, StoreError> {
    pick(response).ok_or_else(|| internal("the state machine answered with a response of another kind"))
}

/// Refuse a txn comparing an empty key before it takes a log entry, as etcd's API layer does
/// ("key is not provided"); everything else about a txn is checked where it is applied.
fn check_compare_keys(txn: &TxnRequest) -> Result<(), StoreError> {
    if txn.compare.iter().any(|c| c.key.is_empty()) {
        return Err(StoreError::InvalidArgument("key is not provided".into()));
    }
    for op in txn.success.iter().chain(txn.failure.iter()) {
        if let TxnOp::Txn(nested) = op {
            check_compare_keys(nested)?;
        }
    }
    Ok(())
}

impl Store for RaftStore {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError> {
        let parts = self.member.parts()?;
        if request.consistency == ReadConsistency::Linearizable {
            self.read_barrier(&parts).await?;
        }
        let mut response = parts.kv.read_off_runtime(move |kv| kv.range(&request)).await?;
        response.header.member_id = self.member.node_id;
        response.header.raft_term = self.member.term();
        Ok(response)
    }

    async fn put(&self, request: PutRequest) -> Result<PutResponse, StoreError> {
        let response = self.write(Command::Put(request)).await?;
        expect_response(
            response,
            |r| if let CommandResponse::Put(p) = r { Some(p) } else { None },
        )
    }

    async fn delete_range(&self, request: DeleteRangeRequest) -> Result<DeleteRangeResponse, StoreError> {
        let response = self.write(Command::DeleteRange(request)).await?;
        expect_response(response, |r| {
            if let CommandResponse::DeleteRange(d) = r {
                Some(d)
            } else {
                None
            }
        })
    }

    async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, StoreError> {
        check_compare_keys(&request)?;
        let response = self.write(Command::Txn(request)).await?;
        expect_response(
            response,
            |r| if let CommandResponse::Txn(t) = r { Some(t) } else { None },
        )
    }

    async fn compact(&self, request: CompactRequest) -> Result<CompactResponse, StoreError> {
        let response = self.write(Command::Compact(request)).await?;
        expect_response(response, |r| {
            if let CommandResponse::Compact(c) = r {
                Some(c)
            } else {
                None
            }
        })
    }

    /// Served by this member's own MVCC store: events arrive as this member applies the log, in
    /// revision order, whoever leads.
    async fn watch(&self, request: WatchRequest) -> Result<WatchStream, StoreError> {
        let parts = self.member.parts()?;
        let stream = parts.kv.watch(request)?;
        let member = self.member.clone();
        let stream = stream.map(move |item| {
            item.map(|mut response| {
                response.header.member_id = member.node_id;
                response.header.raft_term = member.term();
                response
            })
        });
        Ok(Box::pin(stream))
    }

    async fn lease_grant(&self, request: LeaseGrantRequest) -> Result<LeaseGrantResponse, StoreError> {
        if request.ttl < 1 {
            return Err(StoreError::InvalidArgument(format!(
                "lease ttl must be at least 1 s, got {}",
                request.ttl
            )));
        }
        if request.id < 0 {
            return Err(StoreError::InvalidArgument(format!(
                "lease id must not be negative, got {}",
                request.id
            )));
        }
        let reply = self
            .route(LeaderOp::LeaseGrant(request), self.member.request_timeout())
            .await?;
        let mut response = expect_reply(reply, |r| {
            if let LeaderReply::LeaseGrant(g) = r {
                Some(g)
            } else {
                None
            }
        })?;
        response.header.member_id = self.member.node_id;
        Ok(response)
    }

    async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, StoreError> {
        let reply = self
            .route(LeaderOp::LeaseRevoke(id), self.member.request_timeout())
            .await?;
        let mut response = expect_reply(reply, |r| {
            if let LeaderReply::LeaseRevoke(v) = r {
                Some(v)
            } else {
                None
            }
        })?;
        response.header.member_id = self.member.node_id;
        Ok(response)
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse, StoreError> {
        let reply = self
            .route(LeaderOp::LeaseKeepAlive(id), self.member.request_timeout())
            .await?;
        let mut response = expect_reply(reply, |r| {
            if let LeaderReply::LeaseKeepAlive(k) = r {
                Some(k)
            } else {
                None
            }
        })?;
        response.header.member_id = self.member.node_id;
        Ok(response)
    }

    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseTimeToLiveResponse, StoreError> {
        let reply = self
            .route(
                LeaderOp::LeaseTimeToLive { id, with_keys },
                self.member.request_timeout(),
            )
            .await?;
        let mut response = expect_reply(reply, |r| {
            if let LeaderReply::LeaseTimeToLive(t) = r {
                Some(t)
            } else {
                None
            }
        })?;
        response.header.member_id = self.member.node_id;
        Ok(response)
    }

    async fn lease_leases(&self) -> Result<LeaseLeasesResponse, StoreError> {
        let parts = self.member.parts()?;
        self.read_barrier(&parts).await?;
        let ids = parts
            .kv
            .leases()
            .map_err(internal)?
            .into_iter()
            .map(|(id, _ttl)| id)
            .collect();
        Ok(LeaseLeasesResponse {
            header: self.member.header(&parts.kv),
            ids,
        })
    }

    async fn status(&self) -> Result<StoreStatus, StoreError> {
        let parts = self.member.parts()?;
        let members = self.member.member_list()?;
        let metrics = parts.raft.metrics().borrow_watched().clone();
        let voters = metrics.membership_config.membership().voter_ids().count();
        let now = openraft::TokioInstant::now();
        let healthy = match metrics.state {
            ServerState::Leader => {
                voters == 1
                    || metrics
                        .last_quorum_acked
                        .as_ref()
                        .is_some_and(|acked| now - **acked <= self.member.election_timeout)
            }
            ServerState::Follower | ServerState::Learner => metrics.current_leader.is_some(),
            _ => false,
        };
        Ok(StoreStatus {
            backend: BackendKind::Raft,
            member_id: self.member.node_id,
            members,
            leader: metrics.current_leader,
            revision: parts.kv.revision(),
            compact_revision: parts.kv.compact_revision(),
            raft_term: metrics.current_term,
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
            healthy,
        })
    }
}
