//! [`RaftStoreMetrics`]: what an operator graphs about one member of the group, as plain numbers
//! (no openraft types) for the server's `/metrics`.

use openraft::ServerState;

use crate::peer::PeerCounters;
use crate::types::TypeConfig;

/// A reading of one member's raft positions and peer transport counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftStoreMetrics {
    pub node_id: u64,
    /// `leader`, `follower`, `candidate`, `learner` or `shutdown`.
    pub state: &'static str,
    pub term: u64,
    pub leader: Option<u64>,
    /// Highest log index known to be committed.
    pub commit_index: u64,
    /// Highest log index applied to the local state machine.
    pub applied_index: u64,
    pub last_log_index: u64,
    /// Last log index covered by the current snapshot (0 without one).
    pub snapshot_index: u64,
    /// Last log index purged from the log (0 when nothing was purged).
    pub purged_index: u64,
    /// Entries held in the log: `last_log_index - purged_index`.
    pub log_entries: u64,
    /// Snapshots received from a leader and installed.
    pub snapshots_installed: u64,
    /// Peer requests that failed, on the client and the server side.
    pub peer_rpc_errors: u64,
    /// Peer handshakes refused because the cluster secret proof was wrong or missing, on both
    /// sides.
    pub peer_auth_failures: u64,
    /// Peer frames refused after the handshake because they failed their integrity check
    /// (altered, injected, replayed or reordered on the network), on both sides.
    pub peer_forged_frames: u64,
    /// Peer connections closed on arrival because their source already had as many handshakes in
    /// progress as its budget allows.
    pub peer_handshakes_over_budget: u64,
    /// True while this member has no state and waits for an existing group to send it the log
    /// (after its data directory was wiped, or before it is added).
    pub joining: bool,
    /// False while this member refuses Raft RPCs: a fresh member before it knows the group, or a
    /// member whose data was lost while the leader still remembers its log (it must be replaced).
    pub admitted: bool,
    /// How often this member found an existing group while it had no state and therefore did
    /// not initialise a new one.
    pub initialize_refusals: u64,
}

impl RaftStoreMetrics {
    pub(crate) fn add_peer_counters(&mut self, counters: PeerCounters) {
        self.peer_rpc_errors += counters.rpc_errors;
        self.peer_auth_failures += counters.auth_failures;
        self.peer_forged_frames += counters.forged_frames;
        self.peer_handshakes_over_budget += counters.handshakes_over_budget;
    }

    pub(crate) fn fill_from_raft(&mut self, metrics: &openraft::RaftMetrics<TypeConfig>) {
        self.state = match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        self.term = metrics.current_term;
        self.leader = metrics.current_leader;
        self.commit_index = metrics.local_committed.map_or(0, |id| id.index);
        self.applied_index = metrics.last_applied.map_or(0, |id| id.index);
        self.last_log_index = metrics.last_log_index.unwrap_or(0);
        self.snapshot_index = metrics.snapshot.map_or(0, |id| id.index);
        self.purged_index = metrics.purged.map_or(0, |id| id.index);
        self.log_entries = match metrics.last_log_index {
            Some(last) => last + 1 - metrics.purged.map_or(0, |id| id.index + 1),
            None => 0,
        };
    }
}
