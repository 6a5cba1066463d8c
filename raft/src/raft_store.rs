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
use openraft::{Instant as _, ServerState, SnapshotPolicy};

use crate::command::{Command, CommandResponse};
use crate::forwarding::{AppHandler, LeaderOp, LeaderReply, OpError};
use crate::log_store::LogStore;
use crate::metrics::RaftStoreMetrics;
use crate::mvcc::{KvStateMachine, MvccError};
use crate::network::{Faults, NetworkFactory};
use crate::peer::{
    ClusterSecret, FileSnapshotReceiver, PeerClient, PeerConfig, PeerNetworkFactory, PeerServer, PeerServerHandle,
    PeerStats,
};
use crate::state_machine::StateMachineStore;
use crate::types::{NodeId, PeerNode, Raft};

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
    /// The peer listener cannot bind its address.
    #[error("peer listener on {addr}: {message}")]
    Listen { addr: SocketAddr, message: String },
    #[error("open raft store: {0}")]
    Other(String),
}

/// The largest command accepted into the log, etcd's default `--max-request-bytes` (1.5 MiB).
const MAX_REQUEST_BYTES: u64 = 1536 * 1024;
/// How often the leader looks for expired leases.
const LEASE_TICK: Duration = Duration::from_millis(250);
/// How long `open` of a one-member group waits for it to elect itself.
const SELF_ELECTION_WAIT_MIN: Duration = Duration::from_secs(10);
/// How long a request waits for a leader to appear before giving up as unavailable.
const LEADER_WAIT_MIN: Duration = Duration::from_secs(5);
/// Upper bound of one write or linearizable read.
const REQUEST_TIMEOUT_MIN: Duration = Duration::from_secs(10);
/// Upper bound of a membership change: adding a member waits until it has caught up, which may
/// take a snapshot transfer.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `open` retries while a previous handle of the same state machine (in this process)
/// still holds its file lock.
const SM_LOCK_RETRY_DEADLINE: Duration = Duration::from_secs(10);
/// The name both ends of a peer connection must agree on.
const CLUSTER_NAME: &str = "kuboard";

/// A handle on this replica's member of the embedded group. Cheap to clone.
#[derive(Clone)]
pub struct RaftStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) node_id: NodeId,
    pub(crate) election_timeout: Duration,
    pub(crate) heartbeat: Duration,
    /// The peer list this member was started with.
    pub(crate) peers: BTreeMap<NodeId, String>,
    /// `None` once shut down: dropping these handles releases the WAL and sled locks so that the
    /// same directory can be opened again in this process.
    parts: RwLock<Option<Parts>>,
    shutting_down: AtomicBool,
    /// The current term, kept by the lease task from openraft's metrics (for response headers).
    term: AtomicU64,
    /// Lease id -> deadline; filled only while this member leads.
    lease_deadlines: Mutex<HashMap<i64, Instant>>,
    stop_tx: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The client side of the peer transport; `None` without a cluster secret.
    pub(crate) peer_client: Option<PeerClient>,
    /// The peer listener; taken out on shutdown.
    server: Mutex<Option<PeerServerHandle>>,
    /// The listener's address and counters, set once it is started.
    listener: std::sync::OnceLock<(SocketAddr, PeerStats)>,
    pub(crate) faults: Faults,
    /// True while this member has no state and waits for an existing group to send it the log.
    pub(crate) joining: AtomicBool,
    /// False while the peer listener refuses Raft RPCs (a fresh member that has not yet made sure
    /// the leader does not remember a log it lost; see `bootstrap`).
    pub(crate) admitted: Arc<AtomicBool>,
    /// How often this member, having no state, found an existing group and did not initialise.
    pub(crate) initialize_refusals: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct Parts {
    pub(crate) raft: Raft,
    pub(crate) kv: KvStateMachine,
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
    if config.peers.contains_key(&0) {
        return Err(OpenError::Config("member ids must be at least 1".into()));
    }
    if config.peers.len() > 1 && config.cluster_secret.as_deref().is_none_or(str::is_empty) {
        return Err(OpenError::Config(
            "a cluster secret is required with more than one peer".into(),
        ));
    }
    if config.heartbeat_ms == 0 || config.election_timeout_ms < config.heartbeat_ms * 3 {
        return Err(OpenError::Config(format!(
            "election timeout ({} ms) must be at least three times the heartbeat interval ({} ms), which must be positive",
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

/// Why the state machine could not be opened.
enum OpenKvError {
    /// sled found its own files damaged (or our records in them undecodable).
    Damaged(String),
    Other(String),
}

async fn open_kv(path: &Path) -> Result<KvStateMachine, OpenKvError> {
    let deadline = Instant::now() + SM_LOCK_RETRY_DEADLINE;
    loop {
        let owned = path.to_owned();
        let opened = tokio::task::spawn_blocking(move || {
            KvStateMachine::open(&owned).map_err(|e| match e {
                MvccError::Sled(sled::Error::Corruption { .. }) | MvccError::Codec { .. } | MvccError::Corrupt(_) => {
                    OpenKvError::Damaged(e.to_string())
                }
                other => OpenKvError::Other(other.to_string()),
            })
        })
        .await
        .map_err(|e| OpenKvError::Other(format!("open state machine task: {e}")))?;
        match opened {
            Ok(kv) => return Ok(kv),
            Err(OpenKvError::Other(message)) => {
                // sled holds an exclusive lock on its files; a handle being dropped on another
                // thread releases it shortly.
                let locked = message.contains("lock") || message.contains("WouldBlock");
                if locked && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                return Err(OpenKvError::Other(message));
            }
            Err(damaged) => return Err(damaged),
        }
    }
}

/// Open the state machine in `sm_dir`. The log and the snapshots are the source of truth and the
/// state machine only a derived copy: when sled finds its files damaged, they are set aside (kept
/// for a human to look at), and a fresh state machine starts from the latest snapshot; openraft
/// then applies the log entries after it again, which the log keeps (it is purged only behind a
/// durable snapshot).
async fn open_state_machine(sm_dir: &Path, snapshot_dir: &Path) -> Result<KvStateMachine, OpenError> {
    let damage = match open_kv(sm_dir).await {
        Ok(kv) => return Ok(kv),
        Err(OpenKvError::Other(message)) => {
            return Err(data_dir_error(sm_dir, format!("open state machine: {message}")));
        }
        Err(OpenKvError::Damaged(message)) => message,
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default();
    let aside = sm_dir.with_file_name(format!("sm.damaged-{stamp}"));
    std::fs::rename(sm_dir, &aside)
        .and_then(|()| std::fs::File::open(sm_dir.parent().unwrap_or(sm_dir))?.sync_all())
        .map_err(|e| data_dir_error(sm_dir, format!("set the damaged state machine aside: {e}")))?;
    tracing::error!(path = %sm_dir.display(), damaged_copy = %aside.display(), damage = %damage,
        "the state machine is damaged; rebuilding it from the latest snapshot and the raft log");
    prepare_dir(sm_dir)?;
    let kv = match open_kv(sm_dir).await {
        Ok(kv) => kv,
        Err(OpenKvError::Damaged(message) | OpenKvError::Other(message)) => {
            return Err(data_dir_error(sm_dir, format!("create a new state machine: {message}")));
        }
    };
    let restore_kv = kv.clone();
    let snapshots = snapshot_dir.to_owned();
    let restored =
        tokio::task::spawn_blocking(move || crate::state_machine::restore_latest_snapshot(&restore_kv, &snapshots))
            .await
            .map_err(|e| OpenError::Other(format!("restore snapshot task: {e}")))?
            .map_err(|e| OpenError::Corrupt {
                path: snapshot_dir.to_owned(),
                message: format!("rebuild the state machine from the latest snapshot: {e}"),
            })?;
    tracing::warn!(path = %sm_dir.display(), snapshot_last_log_id = ?restored,
        "state machine rebuilt from the snapshot; the log entries after it are applied again");
    Ok(kv)
}

fn raft_config(config: &RaftStoreConfig) -> Result<openraft::Config, OpenError> {
    let raft_config = openraft::Config {
        cluster_name: CLUSTER_NAME.to_owned(),
        heartbeat_interval: config.heartbeat_ms,
        // The configured election timeout is the longest a follower waits after the leader's last
        // heartbeat before it campaigns, as in etcd. openraft makes a follower wait for its leader
        // lease (`election_timeout_max`) plus a timer drawn from [min, max), so both are cut to fit
        // that budget: a campaign starts between 0.9 and 1.0 of the election timeout after the last
        // heartbeat. With `max = 1.5 x min` instead, failover took 2.5 to 3 election timeouts.
        election_timeout_min: config.election_timeout_ms * 2 / 5,
        election_timeout_max: config.election_timeout_ms / 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_threshold),
        // openraft purges only up to its latest snapshot, which the state machine has fsynced
        // before reporting it built, and never entries a replication stream still reads. Keeping a
        // snapshot's worth of log behind it lets a briefly lagging follower catch up from the log
        // instead of a full snapshot transfer.
        max_in_snapshot_log_to_keep: config.snapshot_threshold,
        // A member that cannot win (partitioned, stale log) asks before it raises its term, so
        // that it does not depose a healthy leader when it comes back. The peer transport carries
        // the pre-vote round.
        enable_pre_vote: Some(true),
        ..Default::default()
    };
    raft_config.validate().map_err(|e| OpenError::Config(e.to_string()))
}

fn peer_config(config: &RaftStoreConfig, secret: ClusterSecret) -> PeerConfig {
    let mut peer = PeerConfig::new(config.node_id, CLUSTER_NAME, secret);
    // A peer that is down must not hold up a caller for longer than an election takes.
    let election = Duration::from_millis(config.election_timeout_ms);
    peer.connect_timeout = peer.connect_timeout.min(election.max(Duration::from_millis(200)));
    peer
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
        let faults = Faults::default();
        let network = NetworkFactory {
            node_id: config.node_id,
            transport: peer_client.clone().map(PeerNetworkFactory::new),
            faults: faults.clone(),
        };
        let raft_config = Arc::new(raft_config(&config)?);
        let raft = Raft::new(config.node_id, raft_config, network, log.clone(), sm)
            .await
            .map_err(|e| OpenError::Other(format!("start raft: {e}")))?;

        let election_timeout = Duration::from_millis(config.election_timeout_ms);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let inner = Arc::new(Inner {
            node_id: config.node_id,
            election_timeout,
            heartbeat: Duration::from_millis(config.heartbeat_ms),
            peers: config.peers.clone(),
            parts: RwLock::new(Some(Parts {
                raft: raft.clone(),
                kv,
                log,
            })),
            shutting_down: AtomicBool::new(false),
            term: AtomicU64::new(0),
            lease_deadlines: Mutex::new(HashMap::new()),
            stop_tx,
            tasks: Mutex::new(Vec::new()),
            peer_client,
            server: Mutex::new(None),
            listener: std::sync::OnceLock::new(),
            faults,
            joining: AtomicBool::new(false),
            admitted: Arc::new(AtomicBool::new(has_state || config.peers.len() == 1)),
            initialize_refusals: AtomicU64::new(0),
        });
        let store = RaftStore { inner };

        if let Some(peer_config) = peer_config {
            let receiver = FileSnapshotReceiver {
                dir: root.join("incoming"),
            };
            let handler = AppHandler {
                store: Arc::downgrade(&store.inner),
            };
            let gate = crate::bootstrap::AdmissionGate {
                raft: raft.clone(),
                admitted: store.inner.admitted.clone(),
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
            let _ = store.inner.listener.set((server.local_addr(), server.stats().clone()));
            *store.lock_server() = Some(server);
        }

        store.spawn(lease_keeper(Arc::downgrade(&store.inner), stop_rx.clone()));
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
            store.spawn(crate::bootstrap::form_group(Arc::downgrade(&store.inner), stop_rx));
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
        if self.inner.shutting_down.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let _ = self.inner.stop_tx.send(true);
        let tasks = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .map_err(|_| internal("task list lock poisoned"))?,
        );
        for task in tasks {
            // A task may be inside a revocation write; the proposal is harmless to abandon.
            task.abort();
            let _ = task.await;
        }
        let server = self.lock_server().take();
        if let Some(server) = server {
            // Closed first so that the peers see this member go at once and elect without it.
            server.shutdown().await;
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

    /// The address the peer listener is bound to; `None` when this member has no listener (a
    /// one-member group without a cluster secret).
    pub fn peer_listen_addr(&self) -> Option<SocketAddr> {
        self.inner.listener.get().map(|(addr, _)| *addr)
    }

    /// The members of the group as this member knows them, with their roles and health.
    pub async fn members(&self) -> Result<Vec<Member>, StoreError> {
        self.member_list()
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
        let known = self.member_list()?.iter().any(|member| member.id == id);
        if known {
            self.remove_member(id).await?;
        }
        self.add_member(id, addr).await
    }

    /// A reading of this member's raft counters and positions, for the server's `/metrics`.
    pub fn metrics(&self) -> RaftStoreMetrics {
        let mut metrics = RaftStoreMetrics {
            node_id: self.inner.node_id,
            joining: self.inner.joining.load(Ordering::SeqCst),
            admitted: self.inner.admitted.load(Ordering::SeqCst),
            initialize_refusals: self.inner.initialize_refusals.load(Ordering::SeqCst),
            ..Default::default()
        };
        if let Some(client) = &self.inner.peer_client {
            metrics.add_peer_counters(client.stats().counters());
        }
        if let Some((_, stats)) = self.inner.listener.get() {
            let counters = stats.counters();
            metrics.add_peer_counters(counters);
            metrics.snapshots_installed = counters.snapshots_received;
        }
        if let Ok(parts) = self.parts() {
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
        self.inner.faults.set_blocked(peers.iter().copied());
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        self.inner
            .tasks
            .lock()
            .expect("task list lock is never poisoned: no code panics while holding it")
            .push(handle);
    }

    fn lock_server(&self) -> std::sync::MutexGuard<'_, Option<PeerServerHandle>> {
        self.inner
            .server
            .lock()
            .expect("server lock is never poisoned: no code panics while holding it")
    }

    pub(crate) fn parts(&self) -> Result<Parts, StoreError> {
        let guard = self.inner.parts.read().map_err(|_| internal("store lock poisoned"))?;
        guard.clone().ok_or(StoreError::ShuttingDown)
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    pub(crate) fn header(&self, kv: &KvStateMachine) -> ResponseHeader {
        ResponseHeader {
            revision: kv.revision(),
            member_id: self.inner.node_id,
            raft_term: self.inner.term.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        REQUEST_TIMEOUT_MIN.max(self.inner.election_timeout * 10)
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
        let timeout = self.request_timeout();
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
        let parts = self.parts()?;
        if let Err(e) = self.wait_applied(&parts, index, deadline).await {
            tracing::debug!(error = %e, index, "answering a committed write before this member applied it");
        }
        let term = response_term(&response);
        crate::state_machine::fill_header(&mut response, self.inner.node_id, term);
        Ok(response)
    }

    pub(crate) async fn wait_for_leader(&self, raft: &Raft, deadline: tokio::time::Instant) -> Result<(), StoreError> {
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

    pub(crate) fn stopped_error(&self) -> StoreError {
        if self.is_shutting_down() {
            StoreError::ShuttingDown
        } else {
            StoreError::Unavailable("the raft member has stopped".into())
        }
    }

    /// Wait until this member has applied the log up to `index`.
    pub(crate) async fn wait_applied(
        &self,
        parts: &Parts,
        index: u64,
        deadline: tokio::time::Instant,
    ) -> Result<(), StoreError> {
        let mut metrics = parts.raft.metrics();
        loop {
            let applied = metrics.borrow_watched().last_applied.map_or(0, |id| id.index);
            if applied >= index {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(self.stopped_error()),
                Err(_) => return Err(self.timeout_error()),
            }
        }
    }

    /// Make the local state machine current for a linearizable read: get a read index from the
    /// leader (confirmed with a quorum) and wait until this member has applied that far.
    async fn read_barrier(&self, parts: &Parts) -> Result<(), StoreError> {
        let timeout = self.request_timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let reply = self.route(LeaderOp::ReadIndex, timeout).await?;
        let index = expect_reply(reply, |r| {
            if let LeaderReply::ReadIndex(i) = r {
                Some(i)
            } else {
                None
            }
        })?;
        self.wait_applied(parts, index, deadline).await
    }

    /// The members as this member sees them (from its latest membership).
    pub(crate) fn member_list(&self) -> Result<Vec<Member>, StoreError> {
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
        Ok(members)
    }

    pub(crate) fn lock_deadlines(&self) -> Result<std::sync::MutexGuard<'_, HashMap<i64, Instant>>, StoreError> {
        self.inner
            .lease_deadlines
            .lock()
            .map_err(|_| internal("lease lock poisoned"))
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
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
        let parts = self.parts()?;
        if request.consistency == ReadConsistency::Linearizable {
            self.read_barrier(&parts).await?;
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

    /// Served by this member's own MVCC store: events arrive as this member applies the log, in
    /// revision order, whoever leads.
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
        let reply = self
            .route(LeaderOp::LeaseGrant(request), self.request_timeout())
            .await?;
        let mut response = expect_reply(reply, |r| {
            if let LeaderReply::LeaseGrant(g) = r {
                Some(g)
            } else {
                None
            }
        })?;
        response.header.member_id = self.inner.node_id;
        Ok(response)
    }

    async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, StoreError> {
        let reply = self.route(LeaderOp::LeaseRevoke(id), self.request_timeout()).await?;
        let mut response = expect_reply(reply, |r| {
            if let LeaderReply::LeaseRevoke(v) = r {
                Some(v)
            } else {
                None
            }
        })?;
        response.header.member_id = self.inner.node_id;
        Ok(response)
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse, StoreError> {
        let reply = self.route(LeaderOp::LeaseKeepAlive(id), self.request_timeout()).await?;
        let mut response = expect_reply(reply, |r| {
            if let LeaderReply::LeaseKeepAlive(k) = r {
                Some(k)
            } else {
                None
            }
        })?;
        response.header.member_id = self.inner.node_id;
        Ok(response)
    }

    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseTimeToLiveResponse, StoreError> {
        let reply = self
            .route(LeaderOp::LeaseTimeToLive { id, with_keys }, self.request_timeout())
            .await?;
        let mut response = expect_reply(reply, |r| {
            if let LeaderReply::LeaseTimeToLive(t) = r {
                Some(t)
            } else {
                None
            }
        })?;
        response.header.member_id = self.inner.node_id;
        Ok(response)
    }

    async fn lease_leases(&self) -> Result<LeaseLeasesResponse, StoreError> {
        let parts = self.parts()?;
        self.read_barrier(&parts).await?;
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
        let members = self.member_list()?;
        let metrics = parts.raft.metrics().borrow_watched().clone();
        let voters = metrics.membership_config.membership().voter_ids().count();
        let now = openraft::TokioInstant::now();
        let healthy = match metrics.state {
            ServerState::Leader => {
                voters == 1
                    || metrics
                        .last_quorum_acked
                        .as_ref()
                        .is_some_and(|acked| now - **acked <= self.inner.election_timeout)
            }
            ServerState::Follower | ServerState::Learner => metrics.current_leader.is_some(),
            _ => false,
        };
        Ok(StoreStatus {
            backend: BackendKind::Raft,
            member_id: self.inner.node_id,
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
            // Leases this member has no deadline for (all of them right after it became leader)
            // get a full ttl plus an election timeout.
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
            let deadline = tokio::time::Instant::now() + store.request_timeout();
            match store.propose(&parts, Command::LeaseRevoke { id }, deadline).await {
                Ok(_) | Err(OpError::Store(StoreError::LeaseNotFound(_))) => {
                    tracing::debug!(lease = id, "lease expired and revoked");
                    store.lock_deadlines().map(|mut d| d.remove(&id)).ok();
                }
                Err(e) => {
                    tracing::warn!(lease = id, error = ?e, "cannot revoke expired lease; retrying");
                    break;
                }
            }
        }
    }
}
