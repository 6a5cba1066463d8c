//! Requests that only the leader can serve, and how any member gets them served: performed here
//! when this member leads, otherwise forwarded to the leader as an application request of the peer
//! transport. Callers never need to know who leads.
//!
//! Retry rules (a leader change inside a call's deadline is hidden where that is safe):
//!
//! - An operation that certainly was not performed (the target does not lead, could not be
//!   reached, or was shutting down before it started) is retried on the leader of the moment.
//! - An operation whose outcome is unknown (the connection broke or the deadline passed after it
//!   was sent) is retried only if it is idempotent (a read index, a lease keepalive, a lease
//!   time-to-live). A write with an unknown outcome is answered `Timeout` or `Unavailable`, never
//!   retried: a retry could apply it twice.

use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;

use kuboard_storage::*;
use openraft::async_runtime::WatchReceiver;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::codec;
use crate::command::{Command, CommandResponse};
use crate::peer::{AppRequestHandler, PeerError};
use crate::raft_store::{Inner, RaftStore};
use crate::types::NodeId;

/// Upper bound of an application request or answer on the wire.
const MAX_APP_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// How many times one call goes round the leader-finding loop at most (the deadline usually ends
/// it first).
const MAX_ROUTE_ATTEMPTS: u32 = 200;
/// A leader named in a "not leader" answer is tried at once this many times in a row before the
/// router waits for its own view of the group to change.
const MAX_IMMEDIATE_REDIRECTS: u32 = 3;
/// The leader gets a little less time than the caller waits, so that its answer (even a timeout)
/// arrives before the caller gives up on the connection.
const LEADER_DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// An operation only the leader performs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LeaderOp {
    /// Propose a command through the log.
    Write(Command),
    LeaseGrant(LeaseGrantRequest),
    LeaseRevoke(i64),
    LeaseKeepAlive(i64),
    LeaseTimeToLive {
        id: i64,
        with_keys: bool,
    },
    /// Confirm leadership (ReadIndex) and answer the log index a linearizable read must wait for.
    ReadIndex,
    /// Add a member: as a learner first, as a voter once it has caught up.
    AddMember {
        id: NodeId,
        addr: String,
    },
    RemoveMember {
        id: NodeId,
    },
}

impl LeaderOp {
    /// Whether performing the operation twice has the effect of performing it once, so that a
    /// call whose outcome is unknown may be repeated.
    pub(crate) fn is_idempotent(&self) -> bool {
        matches!(
            self,
            LeaderOp::ReadIndex | LeaderOp::LeaseKeepAlive(_) | LeaderOp::LeaseTimeToLive { .. }
        )
    }

    /// What the operation is, for log lines and errors (never keys or values).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            LeaderOp::Write(_) => "write",
            LeaderOp::LeaseGrant(_) => "lease grant",
            LeaderOp::LeaseRevoke(_) => "lease revoke",
            LeaderOp::LeaseKeepAlive(_) => "lease keepalive",
            LeaderOp::LeaseTimeToLive { .. } => "lease time-to-live",
            LeaderOp::ReadIndex => "read index",
            LeaderOp::AddMember { .. } => "add member",
            LeaderOp::RemoveMember { .. } => "remove member",
        }
    }
}

/// The leader's answer to a [`LeaderOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LeaderReply {
    /// The state machine's answer and the log index of the entry.
    Command(CommandResponse, u64),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseKeepAlive(LeaseKeepAliveResponse),
    LeaseTimeToLive(LeaseTimeToLiveResponse),
    ReadIndex(u64),
    Members(Vec<Member>),
}

/// Why a member did not answer a [`LeaderOp`] with a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum OpError {
    /// Not performed: this member does not lead; the leader it knows of, if any.
    NotLeader(Option<NodeId>),
    /// Not performed for a passing reason (the member is shutting down); another member may.
    NotPerformed(String),
    /// Performed, or at least attempted: this is the answer (an error of the request itself, or
    /// `Timeout`/`Unavailable` when the outcome is unknown).
    Store(StoreError),
}

/// An application request between members.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum AppRequest {
    /// Perform an operation as the leader, within `timeout_ms`.
    Leader { op: LeaderOp, timeout_ms: u64 },
    /// Tell a member that is forming the group what you hold (see `bootstrap`).
    Probe,
}

/// What a member holds, as told to a member that is forming the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProbeReply {
    pub(crate) member: NodeId,
    /// The member has a log or a vote: it belongs to a group already.
    pub(crate) has_state: bool,
    /// The peer list the member was started with.
    pub(crate) configured_peers: BTreeMap<NodeId, String>,
    pub(crate) leader: Option<NodeId>,
    /// What the answering member, if it leads, knows of its replication to the asking member.
    pub(crate) replication_to_you: ReplicationView,
}

/// A leader's knowledge of its replication to one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ReplicationView {
    /// The answering member does not lead.
    NotLeader,
    /// The leader has no acknowledged log position for the member (never reached it in this term,
    /// or the member is not in the membership).
    NothingAcknowledged,
    /// The member acknowledged the log up to this index to the current leader.
    Acknowledged(u64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum AppResponse {
    Leader(Result<LeaderReply, OpError>),
    Probe(ProbeReply),
}

/// Serves other members' application requests. Holds the store weakly: the store owns the peer
/// listener that owns this handler.
pub(crate) struct AppHandler {
    pub(crate) store: Weak<Inner>,
}

impl AppRequestHandler for AppHandler {
    async fn handle(&self, from: u64, request: Vec<u8>) -> Result<Vec<u8>, String> {
        let request: AppRequest =
            codec::decode_with_limit(&request, MAX_APP_MESSAGE_BYTES).map_err(|e| format!("bad request: {e}"))?;
        let response = match self.store.upgrade() {
            None => match request {
                AppRequest::Leader { .. } => {
                    AppResponse::Leader(Err(OpError::NotPerformed("the member is shutting down".into())))
                }
                AppRequest::Probe => return Err("the member is shutting down".into()),
            },
            Some(inner) => {
                let store = RaftStore { inner };
                match request {
                    AppRequest::Leader { op, timeout_ms } => {
                        tracing::debug!(from, op = op.kind(), "performing a forwarded request");
                        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
                        AppResponse::Leader(store.perform(op, deadline).await)
                    }
                    AppRequest::Probe => AppResponse::Probe(store.probe_reply(from).await.map_err(|e| e.to_string())?),
                }
            }
        };
        codec::encode(&response).map_err(|e| e.to_string())
    }
}

/// What one attempt to get an operation performed came to.
enum Attempt {
    Done(LeaderReply),
    /// Certainly not performed; the leader named by the answer, if any.
    NotLeader(Option<NodeId>),
    /// Certainly not performed.
    NotSent(String),
    /// Sent, outcome unknown.
    Unknown(StoreError),
    /// The definitive answer is an error.
    Failed(StoreError),
}

impl From<Result<LeaderReply, OpError>> for Attempt {
    fn from(result: Result<LeaderReply, OpError>) -> Self {
        match result {
            Ok(reply) => Attempt::Done(reply),
            Err(OpError::NotLeader(leader)) => Attempt::NotLeader(leader),
            Err(OpError::NotPerformed(why)) => Attempt::NotSent(why),
            Err(OpError::Store(e)) => Attempt::Failed(e),
        }
    }
}

impl RaftStore {
    /// Get `op` performed by the leader of the moment, within `timeout`.
    pub(crate) async fn route(&self, op: LeaderOp, timeout: Duration) -> Result<LeaderReply, StoreError> {
        let raft = self.parts()?.raft;
        let deadline = Instant::now() + timeout;
        let me = self.inner.node_id;
        let mut redirect: Option<NodeId> = None;
        let mut redirects = 0u32;
        let mut last_failure = String::from("no leader elected");
        for _ in 0..MAX_ROUTE_ATTEMPTS {
            if self.is_shutting_down() {
                return Err(StoreError::ShuttingDown);
            }
            let known = raft.metrics().borrow_watched().current_leader;
            let Some(target) = redirect.take().or(known) else {
                self.wait_for_leader(&raft, deadline).await?;
                continue;
            };
            let attempt = if target == me {
                Attempt::from(self.perform(op.clone(), deadline).await)
            } else {
                self.forward(target, &op, deadline).await
            };
            match attempt {
                Attempt::Done(reply) => return Ok(reply),
                Attempt::Failed(e) => return Err(e),
                Attempt::NotLeader(named) => {
                    last_failure = format!("member {target} does not lead");
                    if let Some(next) = named.filter(|next| *next != target) {
                        if redirects < MAX_IMMEDIATE_REDIRECTS {
                            redirects += 1;
                            redirect = Some(next);
                            continue;
                        }
                    }
                }
                Attempt::NotSent(why) => last_failure = why,
                Attempt::Unknown(e) if op.is_idempotent() => last_failure = e.to_string(),
                Attempt::Unknown(e) => return Err(e),
            }
            redirects = 0;
            if !self.pause_for_leader_change(&raft, target, deadline).await {
                return Err(StoreError::Unavailable(format!(
                    "{} not served within {} ms: {last_failure}",
                    op.kind(),
                    timeout.as_millis()
                )));
            }
        }
        Err(StoreError::Unavailable(format!(
            "{} not served after {MAX_ROUTE_ATTEMPTS} attempts: {last_failure}",
            op.kind()
        )))
    }

    /// Wait until the known leader is another one than `previous` or a short while has passed
    /// (the same leader may be reachable again). False when the deadline has passed.
    async fn pause_for_leader_change(&self, raft: &crate::types::Raft, previous: NodeId, deadline: Instant) -> bool {
        let pause = (self.inner.heartbeat * 2).max(Duration::from_millis(20));
        let until = deadline.min(Instant::now() + pause);
        let mut metrics = raft.metrics();
        loop {
            let leader = metrics.borrow_watched().current_leader;
            if leader.is_some_and(|leader| leader != previous) {
                return true;
            }
            match tokio::time::timeout_at(until, metrics.changed()).await {
                Ok(Ok(())) => continue,
                // The member stopped; the next attempt reports it.
                Ok(Err(_)) => return Instant::now() < deadline,
                Err(_) => return Instant::now() < deadline,
            }
        }
    }

    /// Send `op` to member `target` and wait for its answer until `deadline`.
    async fn forward(&self, target: NodeId, op: &LeaderOp, deadline: Instant) -> Attempt {
        let Some(client) = &self.inner.peer_client else {
            return Attempt::NotSent("this member has no peer transport (no cluster secret)".into());
        };
        if self.inner.faults.is_blocked(target) {
            return Attempt::NotSent(format!("member {target} is cut off (fault injection)"));
        }
        match self.member_address(target) {
            Some(addr) => client.set_peer_address(target, addr),
            None => return Attempt::NotSent(format!("no address is known for member {target}")),
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Attempt::Unknown(self.timeout_error());
        }
        let leader_time = remaining.saturating_sub(LEADER_DEADLINE_MARGIN.min(remaining / 10));
        let request = AppRequest::Leader {
            op: op.clone(),
            timeout_ms: leader_time.as_millis() as u64,
        };
        let bytes = match codec::encode(&request) {
            Ok(bytes) => bytes,
            Err(e) => return Attempt::Failed(StoreError::Internal(format!("encode a forwarded request: {e}"))),
        };
        match client.app_request(target, bytes, remaining).await {
            Ok(answer) => match codec::decode_with_limit::<AppResponse>(&answer, MAX_APP_MESSAGE_BYTES) {
                Ok(AppResponse::Leader(result)) => Attempt::from(result),
                Ok(AppResponse::Probe(_)) => {
                    Attempt::Unknown(StoreError::Internal("the leader answered with a probe reply".into()))
                }
                Err(e) => Attempt::Unknown(StoreError::Internal(format!("undecodable answer from the leader: {e}"))),
            },
            Err(e) if e.is_unreachable() => Attempt::NotSent(e.to_string()),
            Err(PeerError::RequestTooLarge { message, .. }) => Attempt::Failed(StoreError::InvalidArgument(message)),
            Err(PeerError::Remote { failure, .. }) => {
                // The leader refused the request before performing it (it could not decode it).
                Attempt::Failed(StoreError::Internal(format!(
                    "the leader refused the request: {failure}"
                )))
            }
            Err(PeerError::Timeout { .. }) => Attempt::Unknown(self.timeout_error()),
            Err(e) => Attempt::Unknown(StoreError::Unavailable(format!(
                "{e}; the {} may or may not have been applied",
                op.kind()
            ))),
        }
    }

    /// The peer address of member `id`: the membership is the authority, the configured peer list
    /// covers members the membership does not name yet.
    fn member_address(&self, id: NodeId) -> Option<String> {
        let from_membership = self.parts().ok().and_then(|parts| {
            let metrics = parts.raft.metrics();
            let metrics = metrics.borrow_watched();
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|node| node.addr.clone())
        });
        from_membership.or_else(|| self.inner.peers.get(&id).cloned())
    }

    /// Ask member `target` what it holds (used while forming the group).
    pub(crate) async fn probe(&self, target: NodeId, timeout: Duration) -> Result<ProbeReply, String> {
        let Some(client) = &self.inner.peer_client else {
            return Err("no peer transport".into());
        };
        if self.inner.faults.is_blocked(target) {
            return Err(format!("member {target} is cut off (fault injection)"));
        }
        let bytes = codec::encode(&AppRequest::Probe).map_err(|e| e.to_string())?;
        let answer = client
            .app_request(target, bytes, timeout)
            .await
            .map_err(|e| e.to_string())?;
        match codec::decode_with_limit::<AppResponse>(&answer, MAX_APP_MESSAGE_BYTES) {
            Ok(AppResponse::Probe(reply)) => Ok(reply),
            Ok(AppResponse::Leader(_)) => Err("answered a probe with a leader reply".into()),
            Err(e) => Err(format!("undecodable probe reply: {e}")),
        }
    }

    pub(crate) fn timeout_error(&self) -> StoreError {
        StoreError::Timeout {
            millis: self.request_timeout().as_millis() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Only operations whose repetition is harmless may be retried after an unknown outcome.
    #[test]
    fn only_reads_and_renewals_are_retried_after_an_unknown_outcome() {
        let check = |op: LeaderOp, expected: bool| assert_eq!(op.is_idempotent(), expected, "{op:?}");
        check(LeaderOp::ReadIndex, true);
        check(LeaderOp::LeaseKeepAlive(7), true);
        check(LeaderOp::LeaseTimeToLive { id: 7, with_keys: true }, true);
        check(LeaderOp::Write(Command::Put(PutRequest::new("k", "v"))), false);
        check(LeaderOp::LeaseGrant(LeaseGrantRequest { ttl: 5, id: 0 }), false);
        check(LeaderOp::LeaseRevoke(7), false);
        check(
            LeaderOp::AddMember {
                id: 4,
                addr: "a:1".into(),
            },
            false,
        );
        check(LeaderOp::RemoveMember { id: 4 }, false);
    }

    #[test]
    fn messages_round_trip_through_the_codec() {
        let request = AppRequest::Leader {
            op: LeaderOp::Write(Command::Put(PutRequest::new("k", "v"))),
            timeout_ms: 1500,
        };
        let bytes = codec::encode(&request).expect("encode");
        let back: AppRequest = codec::decode_with_limit(&bytes, MAX_APP_MESSAGE_BYTES).expect("decode");
        assert!(matches!(back, AppRequest::Leader { timeout_ms: 1500, .. }));

        let response = AppResponse::Leader(Err(OpError::NotLeader(Some(3))));
        let bytes = codec::encode(&response).expect("encode");
        let back: AppResponse = codec::decode_with_limit(&bytes, MAX_APP_MESSAGE_BYTES).expect("decode");
        assert!(matches!(back, AppResponse::Leader(Err(OpError::NotLeader(Some(3))))));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_the_message_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = codec::decode_with_limit::<AppRequest>(&bytes, MAX_APP_MESSAGE_BYTES);
            let _ = codec::decode_with_limit::<AppResponse>(&bytes, MAX_APP_MESSAGE_BYTES);
        }
    }
}
