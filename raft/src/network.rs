//! The peer transport seen from openraft: a factory of clients, one per remote member, addressed by
//! the peer address carried in the membership ([`PeerNode`]).
//!
//! The authenticated peer RPC on `KUBOARD_RAFT_PORT` is not built yet: a one-member group never
//! calls the factory, and in a larger group every RPC fails with a clear "unreachable" error so
//! that openraft backs off and retries instead of panicking.

use std::future::Future;

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{OptionalSend, RaftNetworkFactory, RaftNetworkV2};

use crate::state_machine::SnapshotData;
use crate::types::{NodeId, PeerNode, TypeConfig, Vote};

type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// Creates the clients openraft uses to reach the other members.
pub(crate) struct PeerNetworkFactory {
    /// This member's id, for error messages.
    pub(crate) node_id: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> PeerClient {
        PeerClient {
            from: self.node_id,
            target,
            addr: node.addr.clone(),
        }
    }
}

/// A client of one remote member.
pub(crate) struct PeerClient {
    from: NodeId,
    target: NodeId,
    addr: String,
}

impl PeerClient {
    fn unreachable(&self) -> Unreachable<TypeConfig> {
        Unreachable::from_string(format!(
            "member {} cannot reach member {} at {}: the peer transport is not available in this build",
            self.from, self.target, self.addr
        ))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: Vote,
        _snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(self.unreachable()))
    }
}
