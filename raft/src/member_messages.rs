//! The application requests members send each other over the peer transport, beside Raft's own
//! RPCs: an operation for the leader to perform ([`LeaderOp`], answered by [`LeaderReply`] or
//! [`OpError`]) and the probe of a member that is forming the group ([`ProbeReply`]). Every
//! message is a codec record of at most [`MAX_APP_MESSAGE_BYTES`].

use std::collections::BTreeMap;

use kuboard_storage::*;
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResponse};
use crate::types::NodeId;

/// Upper bound of an application request or answer on the wire: what one peer frame carries once
/// the response frame's own bytes are counted. The member that answers and the member that decodes
/// use this one limit, so that an answer that is sent is also read (an operation performed by the
/// leader is never reported to the caller as failed because its answer was judged too large).
pub(crate) const MAX_APP_MESSAGE_BYTES: usize = crate::codec::DEFAULT_DECODE_LIMIT - APP_FRAME_OVERHEAD;

/// Bytes a response frame adds around an application answer (version byte, request id, result
/// variant and length), with room to spare.
const APP_FRAME_OVERHEAD: usize = 1024;

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
    /// Tell a member that is forming the group what you hold (see `formation`).
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec;
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
