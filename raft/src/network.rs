//! The peer network seen from openraft: the authenticated peer transport of [`crate::peer`], with
//! a fault switch for tests in front of it.
//!
//! A one-member group without a cluster secret has no transport at all (there is nobody to talk
//! to and nothing to authenticate with): its clients answer "unreachable", which openraft treats
//! as a member to back off from, never as a reason to stop.
//!
//! [`Faults`] lets a test cut this member off from chosen peers: every Raft RPC and every
//! application request to a blocked peer fails as "unreachable" before anything is sent. A
//! partition between two members is both members blocking each other.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, RwLock};

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{OptionalSend, RaftNetworkFactory, RaftNetworkV2};

use crate::peer::{PeerConnection, PeerNetworkFactory};
use crate::state_machine::SnapshotData;
use crate::types::{NodeId, PeerNode, TypeConfig, Vote};

type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;
type Transport = PeerNetworkFactory<TypeConfig, SnapshotData>;
type TransportConnection = PeerConnection<TypeConfig, SnapshotData>;

/// The peers this member must not talk to (a test's partition). Cloning shares the set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    blocked: Arc<RwLock<HashSet<NodeId>>>,
}

impl Faults {
    pub(crate) fn is_blocked(&self, peer: NodeId) -> bool {
        self.blocked
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&peer)
    }

    pub(crate) fn set_blocked(&self, peers: impl IntoIterator<Item = NodeId>) {
        let mut blocked = self.blocked.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *blocked = peers.into_iter().collect();
    }
}

/// Creates the clients openraft uses to reach the other members.
pub(crate) struct NetworkFactory {
    /// This member's id, for error messages.
    pub(crate) node_id: NodeId,
    /// `None` for a one-member group without a cluster secret.
    pub(crate) transport: Option<Transport>,
    pub(crate) faults: Faults,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &PeerNode) -> Connection {
        let inner = match &mut self.transport {
            Some(transport) => Some(transport.new_client(target, node).await),
            None => None,
        };
        self.connection(target, node, inner)
    }

    async fn new_snapshot_client(&mut self, target: NodeId, node: &PeerNode) -> Connection {
        let inner = match &mut self.transport {
            Some(transport) => Some(transport.new_snapshot_client(target, node).await),
            None => None,
        };
        self.connection(target, node, inner)
    }
}

impl NetworkFactory {
    fn connection(&self, target: NodeId, node: &PeerNode, inner: Option<TransportConnection>) -> Connection {
        Connection {
            from: self.node_id,
            target,
            addr: node.addr.clone(),
            inner,
            faults: self.faults.clone(),
        }
    }
}

/// openraft's handle on one remote member.
pub(crate) struct Connection {
    from: NodeId,
    target: NodeId,
    addr: String,
    inner: Option<TransportConnection>,
    faults: Faults,
}

impl Connection {
    /// The transport connection, or the reason there is none for this call.
    fn transport(&mut self) -> Result<&mut TransportConnection, Unreachable<TypeConfig>> {
        if self.faults.is_blocked(self.target) {
            return Err(Unreachable::from_string(format!(
                "member {} is cut off from member {} (fault injection)",
                self.from, self.target
            )));
        }
        match &mut self.inner {
            Some(inner) => Ok(inner),
            None => Err(Unreachable::from_string(format!(
                "member {} cannot reach member {} at {}: no cluster secret is configured, so this member has no peer transport",
                self.from, self.target, self.addr
            ))),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let transport = self.transport().map_err(RPCError::Unreachable)?;
        transport.append_entries(rpc, option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let transport = self.transport().map_err(RPCError::Unreachable)?;
        transport.vote(rpc, option).await
    }

    /// Sent over the transport: openraft's default grants the pre-vote locally, which would let
    /// a member that cannot win (partitioned, stale log) raise its term and disturb the leader
    /// when it comes back.
    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let transport = self.transport().map_err(RPCError::Unreachable)?;
        transport.pre_vote(rpc, option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let transport = self.transport().map_err(StreamingError::Unreachable)?;
        transport.full_snapshot(vote, snapshot, cancel, option).await
    }
}
