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
//!   time-to-live). A write with an unknown outcome is answered `Timeout` or `Interrupted`, never
//!   retried: a retry could apply it twice.

use std::time::Duration;

use kuboard_storage::*;
use openraft::async_runtime::WatchReceiver;
use tokio::time::Instant;

use crate::codec;
use crate::leader::Leader;
use crate::member::MemberState;
use crate::member_messages::{AppRequest, AppResponse, LeaderOp, LeaderReply, OpError, MAX_APP_MESSAGE_BYTES};
use crate::peer::PeerError;
use crate::state_machine::Raft;
use crate::types::NodeId;

/// How many times one call goes round the leader-finding loop at most (the deadline usually ends
/// it first).
const MAX_ROUTE_ATTEMPTS: u32 = 200;
/// A leader named in a "not leader" answer is tried at once this many times in a row before the
/// router waits for its own view of the group to change.
const MAX_IMMEDIATE_REDIRECTS: u32 = 3;
/// The leader gets a little less time than the caller waits, so that its answer (even a timeout)
/// arrives before the caller gives up on the connection.
const LEADER_DEADLINE_MARGIN: Duration = Duration::from_millis(100);

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

/// Gets [`LeaderOp`]s performed by the leader of the moment on behalf of this member's callers.
pub(crate) struct Forwarder<'a> {
    member: &'a MemberState,
}

impl<'a> Forwarder<'a> {
    pub(crate) fn new(member: &'a MemberState) -> Self {
        Forwarder { member }
    }

    /// Get `op` performed by the leader of the moment, within `timeout`.
    pub(crate) async fn route(&self, op: LeaderOp, timeout: Duration) -> Result<LeaderReply, StoreError> {
        let raft = self.member.parts()?.raft;
        let deadline = Instant::now() + timeout;
        let me = self.member.node_id;
        let mut redirect: Option<NodeId> = None;
        let mut redirects = 0u32;
        let mut last_failure = String::from("no leader elected");
        for _ in 0..MAX_ROUTE_ATTEMPTS {
            if self.member.is_shutting_down() {
                return Err(StoreError::ShuttingDown);
            }
            let known = raft.metrics().borrow_watched().current_leader;
            let Some(target) = redirect.take().or(known) else {
                self.member.wait_for_leader(&raft, deadline).await?;
                continue;
            };
            let attempt = if target == me {
                Attempt::from(Leader::new(self.member).perform(op.clone(), deadline).await)
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
    async fn pause_for_leader_change(&self, raft: &Raft, previous: NodeId, deadline: Instant) -> bool {
        let pause = (self.member.heartbeat * 2).max(Duration::from_millis(20));
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
        let Some(client) = &self.member.peer_client else {
            return Attempt::NotSent("this member has no peer transport (no cluster secret)".into());
        };
        if self.member.blocked_peers.is_blocked(target) {
            return Attempt::NotSent(format!("member {target} is cut off (fault injection)"));
        }
        match self.member.member_address(target) {
            Some(addr) => client.set_peer_address(target, addr),
            None => return Attempt::NotSent(format!("no address is known for member {target}")),
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Attempt::Unknown(self.member.timeout_error());
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
            Err(e) => failed_forward(e, op.kind(), self.member.timeout_error()),
        }
    }
}

/// What a forwarding failure of the peer transport says about the operation: not sent, refused,
/// or sent with its outcome unknown. An unknown outcome is answered as one (`Timeout`,
/// `Interrupted`), never as `Unavailable`, which tells the client that nothing was performed.
fn failed_forward(error: PeerError, kind: &str, timeout: StoreError) -> Attempt {
    match error {
        e if e.is_unreachable() => Attempt::NotSent(e.to_string()),
        PeerError::RequestTooLarge { message, .. } => Attempt::Failed(StoreError::InvalidArgument(message)),
        PeerError::Remote { failure, .. } => {
            // The leader refused the request before performing it (it could not decode it).
            Attempt::Failed(StoreError::Internal(format!(
                "the leader refused the request: {failure}"
            )))
        }
        PeerError::Timeout { .. } => Attempt::Unknown(timeout),
        e => Attempt::Unknown(StoreError::Interrupted(format!(
            "{e}; the {kind} may or may not have been applied"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout() -> StoreError {
        StoreError::Timeout { millis: 10_000 }
    }

    /// A forwarded write whose connection broke after it was sent may have been applied by the
    /// leader: the client must hear "unknown" (etcd's "request timed out"), not "no leader".
    #[test]
    fn a_forwarded_write_whose_connection_closes_after_sending_is_reported_as_unknown() {
        let lost = PeerError::ConnectionLost {
            target: 2,
            message: "connection closed by the peer".into(),
        };
        match failed_forward(lost, "put", timeout()) {
            Attempt::Unknown(StoreError::Interrupted(message)) => {
                assert!(message.contains("may or may not have been applied"), "{message}")
            }
            Attempt::Unknown(other) => panic!("an unknown outcome answered as {other:?}"),
            _ => panic!("a write sent before the connection broke was not treated as unknown"),
        }
        assert!(matches!(
            failed_forward(
                PeerError::Timeout {
                    target: 2,
                    timeout: Duration::from_secs(1)
                },
                "put",
                timeout()
            ),
            Attempt::Unknown(StoreError::Timeout { .. })
        ));
        let backing_off = PeerError::BackingOff {
            target: 2,
            retry_in: Duration::from_millis(100),
        };
        assert!(matches!(
            failed_forward(backing_off, "put", timeout()),
            Attempt::NotSent(_)
        ));
    }
}
