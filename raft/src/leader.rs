//! What the leader does for [`LeaderOp`]s, whether they come from this member's callers or are
//! forwarded by another member: proposing commands, keeping lease deadlines, answering read
//! indexes, changing the membership.
//!
//! Every path answers [`OpError::NotLeader`] only when nothing was proposed, so that the router
//! may safely try again elsewhere.

use std::collections::BTreeSet;
use std::time::{Duration, Instant as StdInstant};

use kuboard_storage::*;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{ChangeMembers, ReadPolicy};
use tokio::time::Instant;

use crate::command::{Command, CommandResponse};
use crate::forwarding::{LeaderOp, LeaderReply, OpError};
use crate::raft_store::{internal, Parts, RaftStore};
use crate::types::{NodeId, PeerNode, TypeConfig};

/// How many times a grant with a store-chosen id draws a new id after a collision.
const LEASE_ID_ATTEMPTS: u32 = 5;

type WriteError = RaftError<TypeConfig, ClientWriteError<TypeConfig>>;

impl RaftStore {
    /// Perform `op` as the leader, finishing before `deadline`.
    pub(crate) async fn perform(&self, op: LeaderOp, deadline: Instant) -> Result<LeaderReply, OpError> {
        let parts = self
            .parts()
            .map_err(|_| OpError::NotPerformed("the member is shutting down".into()))?;
        match op {
            LeaderOp::Write(command) => {
                let (response, index) = self.propose_at(&parts, command, deadline).await?;
                Ok(LeaderReply::Command(response, index))
            }
            LeaderOp::LeaseGrant(request) => self.grant(&parts, request, deadline).await,
            LeaderOp::LeaseRevoke(id) => {
                let response = self.propose(&parts, Command::LeaseRevoke { id }, deadline).await?;
                self.lock_deadlines().map_err(OpError::Store)?.remove(&id);
                match response {
                    CommandResponse::LeaseRevoke(r) => Ok(LeaderReply::LeaseRevoke(r)),
                    _ => Err(OpError::Store(wrong_response())),
                }
            }
            LeaderOp::LeaseKeepAlive(id) => self.keep_alive(&parts, id, deadline).await,
            LeaderOp::LeaseTimeToLive { id, with_keys } => self.time_to_live(&parts, id, with_keys, deadline).await,
            LeaderOp::ReadIndex => self.read_index(&parts, deadline).await.map(LeaderReply::ReadIndex),
            LeaderOp::AddMember { id, addr } => self.add_member_as_leader(&parts, id, addr, deadline).await,
            LeaderOp::RemoveMember { id } => self.remove_member_as_leader(&parts, id, deadline).await,
        }
    }

    /// Propose `command` through the log and return the state machine's answer.
    pub(crate) async fn propose(
        &self,
        parts: &Parts,
        command: Command,
        deadline: Instant,
    ) -> Result<CommandResponse, OpError> {
        self.propose_at(parts, command, deadline)
            .await
            .map(|(response, _)| response)
    }

    /// Propose `command` through the log; answer the state machine's answer and the entry's index.
    async fn propose_at(
        &self,
        parts: &Parts,
        command: Command,
        deadline: Instant,
    ) -> Result<(CommandResponse, u64), OpError> {
        let result = tokio::time::timeout_at(deadline, parts.raft.client_write(command))
            .await
            .map_err(|_| OpError::Store(self.timeout_error()))?;
        match result {
            Ok(response) => match response.data {
                CommandResponse::Error(e) => Err(OpError::Store(e)),
                other => Ok((other, response.log_id.index)),
            },
            Err(e) => Err(self.write_error(e)),
        }
    }

    fn write_error(&self, e: WriteError) -> OpError {
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

    /// Confirm leadership (ReadIndex: a heartbeat round with a quorum) and answer the log index
    /// every linearizable read started now must see applied.
    async fn read_index(&self, parts: &Parts, deadline: Instant) -> Result<u64, OpError> {
        let result = tokio::time::timeout_at(deadline, parts.raft.get_read_linearizer(ReadPolicy::ReadIndex))
            .await
            .map_err(|_| OpError::Store(self.timeout_error()))?;
        match result {
            Ok(linearizer) => Ok(linearizer.read_log_id().index()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => Err(OpError::NotLeader(f.leader_id)),
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(q))) => {
                Err(OpError::Store(StoreError::Unavailable(format!("no quorum: {q}"))))
            }
            Err(RaftError::Fatal(_)) => Err(OpError::Store(self.stopped_error())),
        }
    }

    /// Confirm leadership and wait until this member (the leader) has applied what the read
    /// index requires, so its local lease records are current.
    async fn confirm_leadership(&self, parts: &Parts, deadline: Instant) -> Result<(), OpError> {
        let index = self.read_index(parts, deadline).await?;
        self.wait_applied(parts, index, deadline).await.map_err(OpError::Store)
    }

    async fn grant(
        &self,
        parts: &Parts,
        request: LeaseGrantRequest,
        deadline: Instant,
    ) -> Result<LeaderReply, OpError> {
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
            let command = Command::LeaseGrant { id, ttl: request.ttl };
            match self.propose(parts, command, deadline).await {
                Err(OpError::Store(StoreError::LeaseExists(_))) if request.id == 0 && attempts < LEASE_ID_ATTEMPTS => {
                    continue
                }
                result => break (id, result?),
            }
        };
        let CommandResponse::LeaseGrant(response) = response else {
            return Err(OpError::Store(wrong_response()));
        };
        self.lock_deadlines()
            .map_err(OpError::Store)?
            .insert(id, StdInstant::now() + Duration::from_secs(request.ttl.max(0) as u64));
        Ok(LeaderReply::LeaseGrant(response))
    }

    async fn keep_alive(&self, parts: &Parts, id: i64, deadline: Instant) -> Result<LeaderReply, OpError> {
        // Only the leader keeps deadlines; confirming leadership also makes the lease lookup
        // below see every grant and revoke acknowledged before this call.
        self.confirm_leadership(parts, deadline).await?;
        let (ttl, _keys) = parts
            .kv
            .lease(id)
            .map_err(|e| OpError::Store(internal(e)))?
            .ok_or(OpError::Store(StoreError::LeaseNotFound(id)))?;
        self.lock_deadlines()
            .map_err(OpError::Store)?
            .insert(id, StdInstant::now() + Duration::from_secs(ttl.max(0) as u64));
        Ok(LeaderReply::LeaseKeepAlive(LeaseKeepAliveResponse {
            header: self.header(&parts.kv),
            id,
            ttl,
        }))
    }

    async fn time_to_live(
        &self,
        parts: &Parts,
        id: i64,
        with_keys: bool,
        deadline: Instant,
    ) -> Result<LeaderReply, OpError> {
        self.confirm_leadership(parts, deadline).await?;
        let header = self.header(&parts.kv);
        let Some((granted_ttl, keys)) = parts.kv.lease(id).map_err(|e| OpError::Store(internal(e)))? else {
            return Ok(LeaderReply::LeaseTimeToLive(LeaseTimeToLiveResponse {
                header,
                id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            }));
        };
        let deadline = self.lock_deadlines().map_err(OpError::Store)?.get(&id).copied();
        let ttl = deadline.map_or(granted_ttl, |d| remaining_secs(d, StdInstant::now()));
        let keys = if with_keys { keys } else { Vec::new() };
        Ok(LeaderReply::LeaseTimeToLive(LeaseTimeToLiveResponse {
            header,
            id,
            ttl,
            granted_ttl,
            keys,
        }))
    }

    /// Add member `id` at `addr`: as a learner first, which the leader brings up to date (by
    /// snapshot if the log it needs is purged), then as a voter.
    async fn add_member_as_leader(
        &self,
        parts: &Parts,
        id: NodeId,
        addr: String,
        deadline: Instant,
    ) -> Result<LeaderReply, OpError> {
        if id == 0 {
            return Err(OpError::Store(StoreError::InvalidArgument(
                "member id must be at least 1".into(),
            )));
        }
        if addr.trim().is_empty() {
            return Err(OpError::Store(StoreError::InvalidArgument(
                "the new member's peer address must not be empty".into(),
            )));
        }
        self.require_leader(parts)?;
        let (voters, existing_addr) = {
            let metrics = parts.raft.metrics();
            let metrics = WatchReceiver::borrow_watched(&metrics);
            let membership = metrics.membership_config.membership();
            (
                membership.voter_ids().collect::<BTreeSet<_>>(),
                membership.get_node(&id).map(|n| n.addr.clone()),
            )
        };
        if let Some(existing) = existing_addr {
            if existing != addr {
                return Err(OpError::Store(StoreError::InvalidArgument(format!(
                    "member {id} is already known at {existing}; replace it to move it to {addr}"
                ))));
            }
            if voters.contains(&id) {
                tracing::info!(member = id, "member is already a voter; nothing to add");
                return Ok(LeaderReply::Members(self.members_now()?));
            }
        }
        tracing::info!(member = id, %addr, "adding a member as a learner; it catches up before it votes");
        let node = PeerNode { addr };
        let added = tokio::time::timeout_at(deadline, parts.raft.add_learner(id, node, true))
            .await
            .map_err(|_| OpError::Store(self.timeout_error()))?;
        let added = added.map_err(|e| self.write_error(e))?;
        // openraft's blocking add returns once the learner is within its replication lag
        // threshold, which a small log always is; a voter should hold the log first.
        self.wait_replicated_to(parts, id, added.log_id.index, deadline).await?;
        tracing::info!(member = id, "the new member caught up; making it a voter");
        let promoted = tokio::time::timeout_at(
            deadline,
            parts
                .raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false),
        )
        .await
        .map_err(|_| OpError::Store(self.timeout_error()))?;
        promoted.map_err(|e| self.write_error(e))?;
        tracing::info!(member = id, "member added");
        Ok(LeaderReply::Members(self.members_now()?))
    }

    async fn remove_member_as_leader(
        &self,
        parts: &Parts,
        id: NodeId,
        deadline: Instant,
    ) -> Result<LeaderReply, OpError> {
        self.require_leader(parts)?;
        let (voters, known) = {
            let metrics = parts.raft.metrics();
            let metrics = WatchReceiver::borrow_watched(&metrics);
            let membership = metrics.membership_config.membership();
            (
                membership.voter_ids().collect::<BTreeSet<_>>(),
                membership.get_node(&id).is_some(),
            )
        };
        if !known {
            return Err(OpError::Store(StoreError::InvalidArgument(format!(
                "there is no member {id}"
            ))));
        }
        let change = if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(OpError::Store(StoreError::InvalidArgument(format!(
                    "member {id} is the only voter; the group cannot remove it"
                ))));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        tracing::info!(member = id, "removing a member");
        let removed = tokio::time::timeout_at(deadline, parts.raft.change_membership(change, false))
            .await
            .map_err(|_| OpError::Store(self.timeout_error()))?;
        removed.map_err(|e| self.write_error(e))?;
        tracing::info!(member = id, "member removed");
        Ok(LeaderReply::Members(self.members_now()?))
    }

    /// Wait until member `id` has acknowledged the log up to `index` to this leader.
    async fn wait_replicated_to(
        &self,
        parts: &Parts,
        id: NodeId,
        index: u64,
        deadline: Instant,
    ) -> Result<(), OpError> {
        let mut metrics = parts.raft.metrics();
        loop {
            let (matched, leading) = {
                let m = WatchReceiver::borrow_watched(&metrics);
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|replication| replication.get(&id).copied().flatten())
                    .map(|log_id| log_id.index);
                (matched, m.current_leader == Some(self.inner.node_id))
            };
            if matched.is_some_and(|matched| matched >= index) {
                return Ok(());
            }
            if !leading {
                return Err(OpError::Store(StoreError::Unavailable(format!(
                    "leadership moved while member {id} was catching up; it is a learner now, add it again"
                ))));
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(OpError::Store(self.stopped_error())),
                Err(_) => {
                    return Err(OpError::Store(StoreError::Timeout {
                        millis: deadline.saturating_duration_since(Instant::now()).as_millis() as u64,
                    }))
                }
            }
        }
    }

    /// Refuse early (with nothing proposed) when this member does not lead.
    fn require_leader(&self, parts: &Parts) -> Result<(), OpError> {
        let metrics = parts.raft.metrics();
        let leader = WatchReceiver::borrow_watched(&metrics).current_leader;
        if leader == Some(self.inner.node_id) {
            Ok(())
        } else {
            Err(OpError::NotLeader(leader))
        }
    }

    fn members_now(&self) -> Result<Vec<Member>, OpError> {
        self.member_list().map_err(OpError::Store)
    }
}

fn wrong_response() -> StoreError {
    internal("the state machine answered with a response of another kind")
}

/// Seconds left until `deadline`, rounded up, at least 0.
fn remaining_secs(deadline: StdInstant, now: StdInstant) -> i64 {
    let left = deadline.saturating_duration_since(now);
    (left.as_millis().div_ceil(1000)) as i64
}
