//! [`MemberState`]: what this replica's member of the group holds while it runs, shared by every
//! part that acts on it (the `RaftStore` handle, forwarding, the leader's work, membership
//! changes, group formation, the peer listener's request handler), and the questions about it
//! that all of them ask: is it shutting down, who leads, how far has it applied, which members
//! does it know.
//!
//! This file imports none of those parts; they import it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use kuboard_storage::{Member, MemberProgress, MemberRole, ResponseHeader, StoreError};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::Instant as _;

use crate::log_store::LogStore;
use crate::member_messages::OpError;
use crate::mvcc::KvStateMachine;
use crate::peer::{BlockedPeers, PeerClient, PeerServerHandle, PeerStats};
use crate::state_machine::Raft;
use crate::types::{NodeId, TypeConfig};

/// Upper bound of one write or linearizable read.
const REQUEST_TIMEOUT_MIN: Duration = Duration::from_secs(10);
/// How long a request waits for a leader to appear before giving up as unavailable.
const LEADER_WAIT_MIN: Duration = Duration::from_secs(5);

pub(crate) type WriteError = RaftError<TypeConfig, ClientWriteError<TypeConfig>>;

/// The running parts of a member: openraft's core, the state machine's store and the log.
#[derive(Clone)]
pub(crate) struct Parts {
    pub(crate) raft: Raft,
    pub(crate) kv: KvStateMachine,
    pub(crate) log: LogStore,
}

/// The state of this replica's member of the group.
pub(crate) struct MemberState {
    pub(crate) node_id: NodeId,
    pub(crate) election_timeout: Duration,
    pub(crate) heartbeat: Duration,
    /// The peer list this member was started with.
    pub(crate) peers: BTreeMap<NodeId, String>,
    /// `None` once shut down: dropping these handles releases the WAL and sled locks so that the
    /// same directory can be opened again in this process.
    parts: RwLock<Option<Parts>>,
    shutting_down: AtomicBool,
    /// The current term, kept by the leader's lease clock from openraft's metrics (for response
    /// headers).
    term: AtomicU64,
    /// Lease id -> deadline; filled only while this member leads.
    lease_deadlines: Mutex<HashMap<i64, Instant>>,
    /// The term of leadership the lease deadlines were set up for by the lease clock, 0 for none.
    /// Changed only while holding `lease_deadlines`.
    lease_term: AtomicU64,
    stop_tx: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The client side of the peer transport; `None` without a cluster secret.
    pub(crate) peer_client: Option<PeerClient>,
    /// The peer listener; taken out on shutdown.
    server: Mutex<Option<PeerServerHandle>>,
    /// The listener's address and counters, set once it is started.
    listener: OnceLock<(SocketAddr, PeerStats)>,
    /// The test-only switch that drops this member's traffic to chosen peers.
    pub(crate) blocked_peers: BlockedPeers,
    /// True while this member has no state and waits for an existing group to send it the log.
    pub(crate) joining: AtomicBool,
    /// False while the peer listener refuses Raft RPCs (a fresh member that has not yet made sure
    /// the leader does not remember a log it lost; see `formation`).
    pub(crate) admitted: Arc<AtomicBool>,
    /// How often this member, having no state, found an existing group and did not initialise.
    pub(crate) initialize_refusals: AtomicU64,
}

/// What a member is started with; the rest of [`MemberState`] starts empty.
pub(crate) struct MemberStart {
    pub(crate) node_id: NodeId,
    pub(crate) election_timeout: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) peers: BTreeMap<NodeId, String>,
    pub(crate) parts: Parts,
    pub(crate) peer_client: Option<PeerClient>,
    pub(crate) blocked_peers: BlockedPeers,
    /// Whether the peer listener answers Raft RPCs from the start.
    pub(crate) admitted: bool,
}

impl MemberState {
    /// The state of a member that has just opened its files, and the receiver that tells its
    /// background tasks to stop.
    pub(crate) fn new(start: MemberStart) -> (Arc<MemberState>, tokio::sync::watch::Receiver<bool>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let member = MemberState {
            node_id: start.node_id,
            election_timeout: start.election_timeout,
            heartbeat: start.heartbeat,
            peers: start.peers,
            parts: RwLock::new(Some(start.parts)),
            shutting_down: AtomicBool::new(false),
            term: AtomicU64::new(0),
            lease_deadlines: Mutex::new(HashMap::new()),
            lease_term: AtomicU64::new(0),
            stop_tx,
            tasks: Mutex::new(Vec::new()),
            peer_client: start.peer_client,
            server: Mutex::new(None),
            listener: OnceLock::new(),
            blocked_peers: start.blocked_peers,
            joining: AtomicBool::new(false),
            admitted: Arc::new(AtomicBool::new(start.admitted)),
            initialize_refusals: AtomicU64::new(0),
        };
        (Arc::new(member), stop_rx)
    }

    /// The running parts, or `ShuttingDown` once they are gone.
    pub(crate) fn parts(&self) -> Result<Parts, StoreError> {
        let guard = self.parts.read().map_err(|_| internal("store lock poisoned"))?;
        guard.clone().ok_or(StoreError::ShuttingDown)
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Start shutting down: tell the background tasks to stop and hand them over to be awaited.
    /// `None` when shutdown had already begun.
    pub(crate) fn begin_shutdown(&self) -> Result<Option<Vec<tokio::task::JoinHandle<()>>>, StoreError> {
        if self.shutting_down.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        let _ = self.stop_tx.send(true);
        let mut tasks = self.tasks.lock().map_err(|_| internal("task list lock poisoned"))?;
        Ok(Some(std::mem::take(&mut *tasks)))
    }

    /// Take the running parts out, so that dropping them releases the files.
    pub(crate) fn take_parts(&self) -> Result<Option<Parts>, StoreError> {
        Ok(self.parts.write().map_err(|_| internal("store lock poisoned"))?.take())
    }

    /// Run `task` until shutdown.
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        self.tasks
            .lock()
            .expect("task list lock is never poisoned: no code panics while holding it")
            .push(handle);
    }

    pub(crate) fn lock_server(&self) -> MutexGuard<'_, Option<PeerServerHandle>> {
        self.server
            .lock()
            .expect("server lock is never poisoned: no code panics while holding it")
    }

    /// The peer listener's address and counters, once it is started.
    pub(crate) fn listener(&self) -> Option<&(SocketAddr, PeerStats)> {
        self.listener.get()
    }

    pub(crate) fn set_listener(&self, addr: SocketAddr, stats: PeerStats) {
        let _ = self.listener.set((addr, stats));
    }

    pub(crate) fn term(&self) -> u64 {
        self.term.load(Ordering::Relaxed)
    }

    pub(crate) fn set_term(&self, term: u64) {
        self.term.store(term, Ordering::Relaxed);
    }

    pub(crate) fn header(&self, kv: &KvStateMachine) -> ResponseHeader {
        ResponseHeader {
            revision: kv.revision(),
            member_id: self.node_id,
            raft_term: self.term(),
        }
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        REQUEST_TIMEOUT_MIN.max(self.election_timeout * 10)
    }

    pub(crate) fn timeout_error(&self) -> StoreError {
        StoreError::Timeout {
            millis: self.request_timeout().as_millis() as u64,
        }
    }

    pub(crate) fn stopped_error(&self) -> StoreError {
        if self.is_shutting_down() {
            StoreError::ShuttingDown
        } else {
            StoreError::Unavailable("the raft member has stopped".into())
        }
    }

    /// The answer to a proposal or membership change that openraft refused or lost.
    pub(crate) fn write_error(&self, e: WriteError) -> OpError {
        match e {
            // Refused before the entry was appended: nothing to undo, safe to send elsewhere.
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => OpError::NotLeader(f.leader_id),
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => OpError::Store(StoreError::Unavailable(
                "the leader changed while the request was in flight; it may or may not have been applied".into(),
            )),
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                OpError::Store(StoreError::Unavailable(format!("membership change refused: {e}")))
            }
            RaftError::APIError(other) => OpError::Store(internal(other)),
            RaftError::Fatal(fatal) => {
                if !self.is_shutting_down() {
                    tracing::error!(error = %fatal, "raft member stopped");
                }
                OpError::Store(self.stopped_error())
            }
        }
    }

    /// Refuse early (with nothing proposed) when this member does not lead.
    pub(crate) fn require_leader(&self, parts: &Parts) -> Result<(), OpError> {
        let metrics = parts.raft.metrics();
        let leader = WatchReceiver::borrow_watched(&metrics).current_leader;
        if leader == Some(self.node_id) {
            Ok(())
        } else {
            Err(OpError::NotLeader(leader))
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

    pub(crate) async fn wait_for_leader(&self, raft: &Raft, deadline: tokio::time::Instant) -> Result<(), StoreError> {
        let wait = LEADER_WAIT_MIN.max(self.election_timeout * 5);
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

    /// The members as this member sees them (from its latest membership).
    pub(crate) fn member_list(&self) -> Result<Vec<Member>, StoreError> {
        let parts = self.parts()?;
        let metrics = parts.raft.metrics().borrow_watched().clone();
        let me = self.node_id;
        let leader = metrics.current_leader;
        let membership = metrics.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let now = openraft::TokioInstant::now();
        let fresh = self.election_timeout;
        let mut members = Vec::new();
        for (id, node) in membership.nodes() {
            let role = if Some(*id) == leader {
                MemberRole::Leader
            } else if voters.contains(id) {
                MemberRole::Follower
            } else {
                MemberRole::Learner
            };
            let (healthy, health_known) = if *id == me {
                (true, true)
            } else if let Some(heartbeat) = &metrics.heartbeat {
                // The leader knows when each member last answered it.
                let healthy = heartbeat
                    .get(id)
                    .and_then(|acked| *acked)
                    .is_some_and(|acked| now - *acked <= fresh);
                (healthy, true)
            } else {
                // A follower only knows the leader is alive while it keeps hearing from it; of the
                // other members it knows nothing.
                (Some(*id) == leader, Some(*id) == leader)
            };
            let progress = if *id == me {
                MemberProgress {
                    term: Some(metrics.current_term),
                    commit_index: metrics.local_committed.map(|log| log.index),
                    applied_index: metrics.last_applied.map(|log| log.index),
                    revision: Some(parts.kv.revision()),
                    matched_index: None,
                }
            } else {
                MemberProgress {
                    // The leader's replication state: the last index each member's log holds.
                    matched_index: metrics
                        .replication
                        .as_ref()
                        .and_then(|replication| replication.get(id).copied().flatten())
                        .map(|log| log.index),
                    ..MemberProgress::default()
                }
            };
            members.push(Member {
                id: *id,
                address: node.addr.clone(),
                role,
                healthy,
                health_known,
                progress,
            });
        }
        Ok(members)
    }

    /// The peer address of member `id`: the membership is the authority, the configured peer list
    /// covers members the membership does not name yet.
    pub(crate) fn member_address(&self, id: NodeId) -> Option<String> {
        let from_membership = self.parts().ok().and_then(|parts| {
            let metrics = parts.raft.metrics();
            let metrics = metrics.borrow_watched();
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|node| node.addr.clone())
        });
        from_membership.or_else(|| self.peers.get(&id).cloned())
    }

    /// The leader's lease deadlines (lease id -> when it expires).
    pub(crate) fn lock_deadlines(&self) -> Result<MutexGuard<'_, HashMap<i64, Instant>>, StoreError> {
        self.lease_deadlines.lock().map_err(|_| internal("lease lock poisoned"))
    }

    /// The term of leadership the lease deadlines belong to (0: none); read it while holding
    /// [`Self::lock_deadlines`].
    pub(crate) fn lease_term(&self) -> u64 {
        self.lease_term.load(Ordering::Relaxed)
    }

    /// Record which term of leadership the lease deadlines belong to; call it while holding
    /// [`Self::lock_deadlines`].
    pub(crate) fn set_lease_term(&self, term: u64) {
        self.lease_term.store(term, Ordering::Relaxed);
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}
