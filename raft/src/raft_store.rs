//! [`RaftStore`]: the embedded group behind the `Store` contract.
//!
//! Writes go through the Raft log (`client_write`); linearizable reads confirm leadership with
//! ReadIndex and then read the local MVCC store; serializable reads read it directly. Leases are
//! kept by the leader: it holds each lease's deadline in memory and proposes the revocation of
//! expired ones through the log, so every member deletes the attached keys at the same revision.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kuboard_storage::*;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{Instant as _, ReadPolicy, ServerState, SnapshotPolicy};

use crate::command::{Command, CommandResponse};
use crate::log_store::LogStore;
use crate::mvcc::KvStateMachine;
use crate::network::PeerNetworkFactory;
use crate::state_machine::StateMachineStore;
use crate::types::{NodeId, PeerNode, Raft, TypeConfig};

/// Everything needed to open this replica's member of the group.
#[derive(Debug, Clone)]
pub struct RaftStoreConfig {
    /// This member's id (>= 1).
    pub node_id: u64,
    /// Root of the store's files (the store uses `data_dir/raft/...`).
    pub data_dir: PathBuf,
    /// Every member of the initial group, this one included: id -> `host:port` of its peer listener.
    /// A single entry means a one-member group.
    pub peers: BTreeMap<u64, String>,
    /// Where this member's peer listener binds.
    pub peer_listen_addr: SocketAddr,
    /// Shared secret authenticating peers; required with more than one peer.
    pub cluster_secret: Option<String>,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    /// Build a snapshot (and allow purging the log behind it) every this many applied entries.
    pub snapshot_threshold: u64,
}

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory cannot be created, locked, read or written.
    #[error("data directory {path}: {message}")]
    DataDir { path: PathBuf, message: String },
    /// The files on disk are damaged beyond automatic repair.
    #[error("corrupt store data in {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// The configuration contradicts itself or what is on disk.
    #[error("invalid store configuration: {0}")]
    Config(String),
    #[error("open raft store: {0}")]
    Other(String),
}

/// The largest command accepted into the log, etcd's default `--max-request-bytes` (1.5 MiB).
const MAX_REQUEST_BYTES: u64 = 1536 * 1024;
/// How often the leader looks for expired leases.
const LEASE_TICK: Duration = Duration::from_millis(250);
/// How long `open` of a one-member group waits for it to elect itself.
const SELF_ELECTION_WAIT_MIN: Duration = Duration::from_secs(10);
/// How long a write waits for a leader to appear before giving up as unavailable.
const LEADER_WAIT_MIN: Duration = Duration::from_secs(5);
/// Upper bound of one write or linearizable read.
const REQUEST_TIMEOUT_MIN: Duration = Duration::from_secs(10);
/// How long `open` retries while a previous handle of the same state machine (in this process)
/// still holds its file lock.
const SM_LOCK_RETRY_DEADLINE: Duration = Duration::from_secs(10);

/// A handle on this replica's member of the embedded group. Cheap to clone.
#[derive(Clone)]
pub struct RaftStore {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: NodeId,
    election_timeout: Duration,
    /// `None` once shut down: dropping these handles releases the WAL and sled locks so that the
    /// same directory can be opened again in this process.
    parts: RwLock<Option<Parts>>,
    shutting_down: AtomicBool,
    /// The current term, kept by the lease task from openraft's metrics (for response headers).
    term: AtomicU64,
    /// Lease id -> deadline; filled only while this member leads.
    lease_deadlines: Mutex<HashMap<i64, Instant>>,
    stop_tx: tokio::sync::watch::Sender<bool>,
    lease_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Clone)]
struct Parts {
    raft: Raft,
    kv: KvStateMachine,
    log: LogStore,
}

fn data_dir_error(path: &Path, e: impl std::fmt::Display) -> OpenError {
    OpenError::DataDir {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn validate(config: &RaftStoreConfig) -> Result<(), OpenError> {
    if config.node_id == 0 {
        return Err(OpenError::Config("node id must be at least 1".into()));
    }
    if !config.peers.contains_key(&config.node_id) {
        return Err(OpenError::Config(format!(
            "the peer list does not name this member ({})",
            config.node_id
        )));
    }
    if config.peers.len() > 1 && config.cluster_secret.as_deref().is_none_or(str::is_empty) {
        return Err(OpenError::Config(
            "a cluster secret is required with more than one peer".into(),
        ));
    }
    if config.heartbeat_ms == 0 || config.election_timeout_ms <= config.heartbeat_ms * 2 {
        return Err(OpenError::Config(format!(
            "election timeout ({} ms) must exceed twice the heartbeat interval ({} ms), which must be positive",
            config.election_timeout_ms, config.heartbeat_ms
        )));
    }
    if config.snapshot_threshold == 0 {
        return Err(OpenError::Config("snapshot threshold must be at least 1".into()));
    }
    Ok(())
}

/// Create `dir` and prove it is writable, so that a read-only or misowned data directory is
/// reported as such and not as an obscure error of the WAL or sled.
fn prepare_dir(dir: &Path) -> Result<(), OpenError> {
    std::fs::create_dir_all(dir).map_err(|e| data_dir_error(dir, format!("cannot create: {e}")))?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok").map_err(|e| data_dir_error(dir, format!("not writable: {e}")))?;
    std::fs::remove_file(&probe).map_err(|e| data_dir_error(dir, format!("not writable: {e}")))?;
    Ok(())
}

async fn open_kv(path: &Path) -> Result<KvStateMachine, OpenError> {
    let deadline = Instant::now() + SM_LOCK_RETRY_DEADLINE;
    loop {
        let owned = path.to_owned();
        let opened = tokio::task::spawn_blocking(move || KvStateMachine::open(&owned).map_err(|e| e.to_string()))
            .await
            .map_err(|e| OpenError::Other(format!("open state machine task: {e}")))?;
        match opened {
            Ok(kv) => return Ok(kv),
            Err(message) => {
                // sled holds an exclusive lock on its files; a handle being dropped on another
                // thread releases it shortly.
                let locked = message.contains("lock") || message.contains("WouldBlock");
                if locked && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                return Err(data_dir_error(path, format!("open state machine: {message}")));
            }
        }
    }
}

fn raft_config(config: &RaftStoreConfig) -> Result<openraft::Config, OpenError> {
    let raft_config = openraft::Config {
        cluster_name: "kuboard".to_owned(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_timeout_ms,
        election_timeout_max: config.election_timeout_ms + config.election_timeout_ms / 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_threshold),
        // Keep a snapshot's worth of log so a briefly lagging follower catches up from the log.
        max_in_snapshot_log_to_keep: config.snapshot_threshold,
        ..Default::default()
    };
    raft_config.validate().map_err(|e| OpenError::Config(e.to_string()))
}

impl RaftStore {
    /// Open (or create) this member's store and start taking part in the group. A fresh one-member
    /// group initialises itself; a restart never re-initialises.
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
        let kv = open_kv(&sm_dir).await?;
        let sm =
            StateMachineStore::open(kv.clone(), &snapshot_dir, config.node_id).map_err(|e| OpenError::Corrupt {
                path: root.clone(),
                message: e.to_string(),
            })?;

        let raft_config = Arc::new(raft_config(&config)?);
        let network = PeerNetworkFactory {
            node_id: config.node_id,
        };
        let raft = Raft::new(config.node_id, raft_config, network, log.clone(), sm)
            .await
            .map_err(|e| OpenError::Other(format!("start raft: {e}")))?;

        if has_state {
            tracing::info!(node_id = config.node_id, "raft store reopened");
        } else {
            let members: BTreeMap<NodeId, PeerNode> = config
                .peers
                .iter()
                .map(|(id, addr)| (*id, PeerNode { addr: addr.clone() }))
                .collect();
            tracing::info!(
                node_id = config.node_id,
                members = members.len(),
                "initialising a new raft group"
            );
            raft.initialize(members)
                .await
                .map_err(|e| OpenError::Other(format!("initialise raft group: {e}")))?;
        }

        let election_timeout = Duration::from_millis(config.election_timeout_ms);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let inner = Arc::new(Inner {
            node_id: config.node_id,
            election_timeout,
            parts: RwLock::new(Some(Parts {
                raft: raft.clone(),
                kv,
                log,
            })),
            shutting_down: AtomicBool::new(false),
            term: AtomicU64::new(0),
            lease_deadlines: Mutex::new(HashMap::new()),
            stop_tx,
            lease_task: Mutex::new(None),
        });
        let task = tokio::spawn(lease_keeper(Arc::downgrade(&inner), stop_rx));
        *inner
            .lease_task
            .lock()
            .expect("lease task lock is never poisoned: no code panics while holding it") = Some(task);
        let store = RaftStore { inner };

        if config.peers.len() == 1 {
            // A one-member group elects itself within an election timeout; wait for it so the
            // first request after open does not race the election.
            let wait = SELF_ELECTION_WAIT_MIN.max(election_timeout * 10);
            raft.wait(Some(wait))
                .state(ServerState::Leader, "one-member group elects itself")
                .await
                .map_err(|e| OpenError::Other(format!("the one-member group did not elect itself: {e}")))?;
        }
        Ok(store)
    }

    /// Stop taking part in the group: finish in-flight writes, flush the log and the state
    /// machine, close the peer listener.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        if self.inner.shutting_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let _ = self.inner.stop_tx.send(true);
        let task = self
            .inner
            .lease_task
            .lock()
            .map_err(|_| internal("lease task lock poisoned"))?
            .take();
        if let Some(task) = task {
            // The task may be inside a revocation write; the proposal is harmless to abandon.
            task.abort();
            let _ = task.await;
        }
        let parts = self
            .inner
            .parts
            .write()
            .map_err(|_| internal("store lock poisoned"))?
            .take();
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
        tracing::info!(node_id = self.inner.node_id, "raft store shut down");
        Ok(())
    }

    fn parts(&self) -> Result<Parts, StoreError> {
        let guard = self.inner.parts.read().map_err(|_| internal("store lock poisoned"))?;
        guard.clone().ok_or(StoreError::ShuttingDown)
    }

    fn header(&self, kv: &KvStateMachine) -> ResponseHeader {
        ResponseHeader {
            revision: kv.revision(),
            member_id: self.inner.node_id,
            raft_term: self.inner.term.load(Ordering::Relaxed),
        }
    }

    fn request_timeout(&self) -> Duration {
        REQUEST_TIMEOUT_MIN.max(self.inner.election_timeout * 10)
    }

    /// Propose `command` through the log and return the state machine's answer.
    async fn write(&self, command: Command) -> Result<CommandResponse, StoreError> {
        let size = command.approximate_size();
        if size > MAX_REQUEST_BYTES {
            // Refused before it takes a log entry: a huge entry slows every member's log and
            // snapshot, as etcd's --max-request-bytes guards against.
            return Err(StoreError::InvalidArgument(format!(
                "request of about {size} bytes exceeds the limit of {MAX_REQUEST_BYTES} bytes"
            )));
        }
        let parts = self.parts()?;
        let timeout = self.request_timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let result = tokio::time::timeout_at(deadline, parts.raft.client_write(command.clone()))
                .await
                .map_err(|_| StoreError::Timeout {
                    millis: timeout.as_millis() as u64,
                })?;
            match result {
                Ok(response) => {
                    return match response.data {
                        CommandResponse::Error(e) => Err(e),
                        other => Ok(other),
                    }
                }
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))
                    if forward.leader_id.is_none() && attempts < 100 =>
                {
                    // No leader known yet (an election is running): wait for one, then retry.
                    self.wait_for_leader(&parts.raft, deadline).await?;
                }
                Err(e) => return Err(self.map_write_error(e)),
            }
        }
    }

    async fn wait_for_leader(&self, raft: &Raft, deadline: tokio::time::Instant) -> Result<(), StoreError> {
        let wait = LEADER_WAIT_MIN.max(self.inner.election_timeout * 5);
        let deadline = deadline.min(tokio::time::Instant::now() + wait);
        let mut metrics = raft.metrics();
        loop {
            if metrics.borrow_watched().current_leader.is_some() {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(self.stopped_error()),
                Err(_) => return Err(StoreError::Unavailable("no leader elected".into())),
            }
        }
    }

    fn stopped_error(&self) -> StoreError {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            StoreError::ShuttingDown
        } else {
            StoreError::Unavailable("the raft member has stopped".into())
        }
    }

    fn map_write_error(&self, e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> StoreError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_leader(f.leader_id),
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => {
                StoreError::Unavailable("leader changed while the write was in flight; its outcome is unknown".into())
            }
            RaftError::APIError(other) => internal(other),
            RaftError::Fatal(fatal) => {
                if !self.inner.shutting_down.load(Ordering::SeqCst) {
                    tracing::error!(error = %fatal, "raft member stopped");
                }
                self.stopped_error()
            }
        }
    }

    /// Confirm (ReadIndex) that this member leads and its state machine has applied everything
    /// committed before the call.
    async fn ensure_linearizable(&self, raft: &Raft) -> Result<(), StoreError> {
        let timeout = self.request_timeout();
        let result = tokio::time::timeout(timeout, raft.ensure_linearizable(ReadPolicy::ReadIndex))
            .await
            .map_err(|_| StoreError::Timeout {
                millis: timeout.as_millis() as u64,
            })?;
        match result {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => Err(not_leader(f.leader_id)),
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(q))) => {
                Err(StoreError::Unavailable(format!("no quorum: {q}")))
            }
            Err(RaftError::Fatal(_)) => Err(self.stopped_error()),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn not_leader(leader: Option<NodeId>) -> StoreError {
    match leader {
        // Forwarding to the leader comes with the peer transport.
        Some(leader) => StoreError::Unavailable(format!("this member does not lead; member {leader} does")),
        None => StoreError::Unavailable("no leader elected".into()),
    }
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

/// Seconds left until `deadline`, rounded up, at least 0.
fn remaining_secs(deadline: Instant, now: Instant) -> i64 {
    let left = deadline.saturating_duration_since(now);
    (left.as_millis().div_ceil(1000)) as i64
}

impl Store for RaftStore {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError> {
        let parts = self.parts()?;
        if request.consistency == ReadConsistency::Linearizable {
            self.ensure_linearizable(&parts.raft).await?;
        }
        let mut response = parts.kv.range(&request)?;
        response.header.member_id = self.inner.node_id;
        response.header.raft_term = self.inner.term.load(Ordering::Relaxed);
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

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream, StoreError> {
        let parts = self.parts()?;
        let stream = parts.kv.watch(request)?;
        let inner = self.inner.clone();
        let stream = stream.map(move |item| {
            item.map(|mut response| {
                response.header.member_id = inner.node_id;
                response.header.raft_term = inner.term.load(Ordering::Relaxed);
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
        // The proposer chooses the id so that applying the command stays deterministic. A random
        // id that happens to be taken is drawn again (a bounded number of times).
        let mut attempts = 0;
        let (id, response) = loop {
            attempts += 1;
            let id = if request.id == 0 {
                rand::random::<i64>().checked_abs().unwrap_or(1).max(1)
            } else {
                request.id
            };
            match self.write(Command::LeaseGrant { id, ttl: request.ttl }).await {
                Err(StoreError::LeaseExists(_)) if request.id == 0 && attempts < 5 => continue,
                result => break (id, result?),
            }
        };
        let response = expect_response(response, |r| {
            if let CommandResponse::LeaseGrant(g) = r {
                Some(g)
            } else {
                None
            }
        })?;
        self.lock_deadlines()?
            .insert(id, Instant::now() + Duration::from_secs(request.ttl as u64));
        Ok(response)
    }

    async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, StoreError> {
        let response = self.write(Command::LeaseRevoke { id }).await?;
        let response = expect_response(response, |r| {
            if let CommandResponse::LeaseRevoke(v) = r {
                Some(v)
            } else {
                None
            }
        })?;
        self.lock_deadlines()?.remove(&id);
        Ok(response)
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse, StoreError> {
        let parts = self.parts()?;
        // Only the leader keeps deadlines; confirming leadership also makes the lease lookup
        // below see every grant and revoke acknowledged before this call.
        self.ensure_linearizable(&parts.raft).await?;
        let (ttl, _keys) = parts
            .kv
            .lease(id)
            .map_err(internal)?
            .ok_or(StoreError::LeaseNotFound(id))?;
        self.lock_deadlines()?
            .insert(id, Instant::now() + Duration::from_secs(ttl.max(0) as u64));
        Ok(LeaseKeepAliveResponse {
            header: self.header(&parts.kv),
            id,
            ttl,
        })
    }

    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseTimeToLiveResponse, StoreError> {
        let parts = self.parts()?;
        self.ensure_linearizable(&parts.raft).await?;
        let header = self.header(&parts.kv);
        let Some((granted_ttl, keys)) = parts.kv.lease(id).map_err(internal)? else {
            return Ok(LeaseTimeToLiveResponse {
                header,
                id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            });
        };
        let deadline = self.lock_deadlines()?.get(&id).copied();
        let ttl = deadline.map_or(granted_ttl, |d| remaining_secs(d, Instant::now()));
        let keys = if with_keys { keys } else { Vec::new() };
        Ok(LeaseTimeToLiveResponse {
            header,
            id,
            ttl,
            granted_ttl,
            keys,
        })
    }

    async fn lease_leases(&self) -> Result<LeaseLeasesResponse, StoreError> {
        let parts = self.parts()?;
        self.ensure_linearizable(&parts.raft).await?;
        let ids = parts
            .kv
            .leases()
            .map_err(internal)?
            .into_iter()
            .map(|(id, _ttl)| id)
            .collect();
        Ok(LeaseLeasesResponse {
            header: self.header(&parts.kv),
            ids,
        })
    }

    async fn status(&self) -> Result<StoreStatus, StoreError> {
        let parts = self.parts()?;
        let metrics = parts.raft.metrics().borrow_watched().clone();
        let me = self.inner.node_id;
        let leader = metrics.current_leader;
        let membership = metrics.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let now = openraft::TokioInstant::now();
        let fresh = self.inner.election_timeout;
        let mut members = Vec::new();
        for (id, node) in membership.nodes() {
            let role = if Some(*id) == leader {
                MemberRole::Leader
            } else if voters.contains(id) {
                MemberRole::Follower
            } else {
                MemberRole::Learner
            };
            let healthy = if *id == me {
                true
            } else if let Some(heartbeat) = &metrics.heartbeat {
                // The leader knows when each member last answered it.
                heartbeat
                    .get(id)
                    .and_then(|acked| *acked)
                    .is_some_and(|acked| now - *acked <= fresh)
            } else {
                // A follower only knows the leader is alive while it keeps hearing from it.
                Some(*id) == leader
            };
            members.push(Member {
                id: *id,
                address: node.addr.clone(),
                role,
                healthy,
            });
        }
        let healthy = match metrics.state {
            ServerState::Leader => {
                voters.len() == 1
                    || metrics
                        .last_quorum_acked
                        .as_ref()
                        .is_some_and(|acked| now - **acked <= fresh)
            }
            ServerState::Follower | ServerState::Learner => leader.is_some(),
            _ => false,
        };
        Ok(StoreStatus {
            backend: BackendKind::Raft,
            member_id: me,
            members,
            leader,
            revision: parts.kv.revision(),
            compact_revision: parts.kv.compact_revision(),
            raft_term: metrics.current_term,
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
            healthy,
        })
    }
}

impl RaftStore {
    fn lock_deadlines(&self) -> Result<std::sync::MutexGuard<'_, HashMap<i64, Instant>>, StoreError> {
        self.inner
            .lease_deadlines
            .lock()
            .map_err(|_| internal("lease lock poisoned"))
    }
}

/// The leader's lease clock: keeps the term for headers, gives every lease a deadline when this
/// member becomes leader (extended by an election timeout, as etcd does, so a failover does not
/// expire live leases), and proposes the revocation of expired leases.
async fn lease_keeper(inner: std::sync::Weak<Inner>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut was_leader = false;
    let mut ticker = tokio::time::interval(LEASE_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        let store = RaftStore { inner };
        let Ok(parts) = store.parts() else { return };
        let (term, is_leader) = {
            let metrics = parts.raft.metrics();
            let m = metrics.borrow_watched();
            (m.current_term, m.state == ServerState::Leader)
        };
        store.inner.term.store(term, Ordering::Relaxed);
        if !is_leader {
            if was_leader {
                store.lock_deadlines().map(|mut d| d.clear()).ok();
            }
            was_leader = false;
            continue;
        }
        let leases = match parts.kv.leases() {
            Ok(leases) => leases,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list leases; expiry is retried");
                continue;
            }
        };
        let now = Instant::now();
        let expired: Vec<i64> = {
            let Ok(mut deadlines) = store.lock_deadlines() else {
                return;
            };
            if !was_leader {
                deadlines.clear();
            }
            // Leases this member has no deadline for (all of them right after it became
            // leader, or granted through another member) get a full ttl plus an election timeout.
            deadlines.retain(|id, _| leases.iter().any(|(lease, _)| lease == id));
            for (id, ttl) in &leases {
                deadlines
                    .entry(*id)
                    .or_insert_with(|| now + Duration::from_secs((*ttl).max(0) as u64) + store.inner.election_timeout);
            }
            deadlines
                .iter()
                .filter(|(_, deadline)| **deadline <= now)
                .map(|(id, _)| *id)
                .collect()
        };
        was_leader = true;
        for id in expired {
            match store.write(Command::LeaseRevoke { id }).await {
                Ok(_) | Err(StoreError::LeaseNotFound(_)) => {
                    tracing::debug!(lease = id, "lease expired and revoked");
                    store.lock_deadlines().map(|mut d| d.remove(&id)).ok();
                }
                Err(e) => {
                    tracing::warn!(lease = id, error = %e, "cannot revoke expired lease; retrying");
                    break;
                }
            }
        }
    }
}
