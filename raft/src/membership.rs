//! [`MembershipChanges`]: how the leader adds and removes members. `RaftStore::add_member`,
//! `remove_member` and `replace_member` reach it on whichever member they are called, through
//! `forwarding` and `leader`.
//!
//! A member is added as a learner first, which the leader brings up to date (by snapshot if the
//! log it needs is purged), and becomes a voter only once it holds the log; the last voter is
//! never removed.

use std::collections::BTreeSet;

use kuboard_storage::*;
use openraft::async_runtime::WatchReceiver;
use openraft::ChangeMembers;
use tokio::time::Instant;

use crate::member::{MemberState, Parts};
use crate::member_messages::{LeaderReply, OpError};
use crate::types::{NodeId, PeerNode};

/// The membership changes this member performs while it leads.
pub(crate) struct MembershipChanges<'a> {
    member: &'a MemberState,
}

impl<'a> MembershipChanges<'a> {
    pub(crate) fn new(member: &'a MemberState) -> Self {
        MembershipChanges { member }
    }

    /// Add member `id` at `addr`: as a learner first, which the leader brings up to date (by
    /// snapshot if the log it needs is purged), then as a voter.
    pub(crate) async fn add(
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
        self.member.require_leader(parts)?;
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
            .map_err(|_| OpError::Store(self.member.timeout_error()))?;
        let added = added.map_err(|e| self.member.write_error(e))?;
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
        .map_err(|_| OpError::Store(self.member.timeout_error()))?;
        promoted.map_err(|e| self.member.write_error(e))?;
        tracing::info!(member = id, "member added");
        Ok(LeaderReply::Members(self.members_now()?))
    }

    pub(crate) async fn remove(&self, parts: &Parts, id: NodeId, deadline: Instant) -> Result<LeaderReply, OpError> {
        self.member.require_leader(parts)?;
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
            .map_err(|_| OpError::Store(self.member.timeout_error()))?;
        removed.map_err(|e| self.member.write_error(e))?;
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
                (matched, m.current_leader == Some(self.member.node_id))
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
                Ok(Err(_)) => return Err(OpError::Store(self.member.stopped_error())),
                Err(_) => {
                    return Err(OpError::Store(StoreError::Timeout {
                        millis: deadline.saturating_duration_since(Instant::now()).as_millis() as u64,
                    }))
                }
            }
        }
    }

    fn members_now(&self) -> Result<Vec<Member>, OpError> {
        self.member.member_list().map_err(OpError::Store)
    }
}
