//! [`Leader`]: what this member does while it leads, for [`LeaderOp`]s from its own callers or
//! forwarded by another member: proposing commands through the log, answering read indexes,
//! granting, renewing and revoking leases, and the lease clock that revokes expired ones.
//! Membership changes are in `membership`.
//!
//! Every path answers [`OpError::NotLeader`] only when nothing was proposed, so that the router
//! may safely try again elsewhere.

use std::sync::Weak;
use std::time::{Duration, Instant as StdInstant};

use kuboard_storage::*;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{LinearizableReadError, RaftError};
use openraft::{ReadPolicy, ServerState};
use tokio::time::Instant;

use crate::command::{Command, CommandResponse};
use crate::member::{internal, MemberState, Parts};
use crate::member_messages::{LeaderOp, LeaderReply, OpError};
use crate::membership::MembershipChanges;

/// How many times a grant with a store-chosen id draws a new id after a collision.
const LEASE_ID_ATTEMPTS: u32 = 5;
/// How often the leader looks for expired leases.
const LEASE_TICK: Duration = Duration::from_millis(250);

/// This member acting as the leader of the group. Every operation first makes sure it still leads
/// (openraft refuses a proposal or a read index on a follower) and answers `NotLeader` otherwise.
pub(crate) struct Leader<'a> {
    member: &'a MemberState,
}

impl<'a> Leader<'a> {
    pub(crate) fn new(member: &'a MemberState) -> Self {
        Leader { member }
    }

    /// Perform `op` as the leader, finishing before `deadline`.
    pub(crate) async fn perform(&self, op: LeaderOp, deadline: Instant) -> Result<LeaderReply, OpError> {
        let parts = self
            .member
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
                self.member.lock_deadlines().map_err(OpError::Store)?.remove(&id);
                match response {
                    CommandResponse::LeaseRevoke(r) => Ok(LeaderReply::LeaseRevoke(r)),
                    _ => Err(OpError::Store(wrong_response())),
                }
            }
            LeaderOp::LeaseKeepAlive(id) => self.keep_alive(&parts, id, deadline).await,
            LeaderOp::LeaseTimeToLive { id, with_keys } => self.time_to_live(&parts, id, with_keys, deadline).await,
            LeaderOp::ReadIndex => self.read_index(&parts, deadline).await.map(LeaderReply::ReadIndex),
            LeaderOp::AddMember { id, addr } => {
                MembershipChanges::new(self.member)
                    .add(&parts, id, addr, deadline)
                    .await
            }
            LeaderOp::RemoveMember { id } => MembershipChanges::new(self.member).remove(&parts, id, deadline).await,
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
    pub(crate) async fn propose_at(
        &self,
        parts: &Parts,
        command: Command,
        deadline: Instant,
    ) -> Result<(CommandResponse, u64), OpError> {
        let result = tokio::time::timeout_at(deadline, parts.raft.client_write(command))
            .await
            .map_err(|_| OpError::Store(self.member.timeout_error()))?;
        match result {
            Ok(response) => match response.data {
                CommandResponse::Error(e) => Err(OpError::Store(e)),
                other => Ok((other, response.log_id.index)),
            },
            Err(e) => Err(self.member.write_error(e)),
        }
    }

    /// Confirm leadership (ReadIndex: a heartbeat round with a quorum) and answer the log index
    /// every linearizable read started now must see applied.
    pub(crate) async fn read_index(&self, parts: &Parts, deadline: Instant) -> Result<u64, OpError> {
        let result = tokio::time::timeout_at(deadline, parts.raft.get_read_linearizer(ReadPolicy::ReadIndex))
            .await
            .map_err(|_| OpError::Store(self.member.timeout_error()))?;
        match result {
            Ok(linearizer) => Ok(linearizer.read_log_id().index()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => Err(OpError::NotLeader(f.leader_id)),
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(q))) => {
                Err(OpError::Store(StoreError::Unavailable(format!("no quorum: {q}"))))
            }
            Err(RaftError::Fatal(_)) => Err(OpError::Store(self.member.stopped_error())),
        }
    }

    /// Confirm leadership and wait until this member (the leader) has applied what the read
    /// index requires, so its local lease records are current.
    async fn confirm_leadership(&self, parts: &Parts, deadline: Instant) -> Result<(), OpError> {
        let index = self.read_index(parts, deadline).await?;
        self.member
            .wait_applied(parts, index, deadline)
            .await
            .map_err(OpError::Store)
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
        self.member
            .lock_deadlines()
            .map_err(OpError::Store)?
            .insert(id, StdInstant::now() + Duration::from_secs(request.ttl.max(0) as u64));
        Ok(LeaderReply::LeaseGrant(response))
    }

    async fn keep_alive(&self, parts: &Parts, id: i64, deadline: Instant) -> Result<LeaderReply, OpError> {
        // Only the leader keeps deadlines; confirming leadership also makes the lease lookup
        // below see every grant and revoke acknowledged before this call.
        self.confirm_leadership(parts, deadline).await?;
        let term = parts.raft.metrics().borrow_watched().current_term;
        let (ttl, _keys) = parts
            .kv
            .lease(id)
            .map_err(|e| OpError::Store(internal(e)))?
            .ok_or(OpError::Store(StoreError::LeaseNotFound(id)))?;
        let expired = {
            let mut deadlines = self.member.lock_deadlines().map_err(OpError::Store)?;
            let now = StdInstant::now();
            // Deadlines count only once the lease clock has set them up for this term.
            let kept_this_term = self.member.lease_term() == term;
            if kept_this_term && deadlines.get(&id).is_some_and(|due| *due <= now) {
                true
            } else {
                deadlines.insert(id, now + Duration::from_secs(ttl.max(0) as u64));
                false
            }
        };
        if expired {
            // A lease whose time is up is not renewed (etcd answers "requested lease not found");
            // its revocation, due at the clock's next tick, is made now so that every later call
            // sees it gone.
            match self.propose(parts, Command::LeaseRevoke { id }, deadline).await {
                Ok(_) | Err(OpError::Store(StoreError::LeaseNotFound(_))) => {
                    self.member.lock_deadlines().map_err(OpError::Store)?.remove(&id);
                }
                Err(e) => return Err(e),
            }
            return Err(OpError::Store(StoreError::LeaseNotFound(id)));
        }
        Ok(LeaderReply::LeaseKeepAlive(LeaseKeepAliveResponse {
            header: self.member.header(&parts.kv),
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
        let header = self.member.header(&parts.kv);
        let found = parts
            .kv
            .read_off_runtime(move |kv| kv.lease(id).map_err(internal))
            .await
            .map_err(OpError::Store)?;
        let Some((granted_ttl, keys)) = found else {
            return Ok(LeaderReply::LeaseTimeToLive(LeaseTimeToLiveResponse {
                header,
                id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            }));
        };
        let deadline = self.member.lock_deadlines().map_err(OpError::Store)?.get(&id).copied();
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
}

/// The leader's lease clock: keeps the term for headers, gives every lease a deadline when this
/// member starts a term of leadership (extended by an election timeout, as etcd does, so a
/// failover does not expire live leases), and proposes the revocation of expired leases.
///
/// Leadership is followed by term from openraft's metrics, not only sampled at each tick: a member
/// that lost leadership and won it again between two ticks starts afresh, because leases may have
/// been renewed through another leader meanwhile.
pub(crate) async fn keep_lease_clock(member: Weak<MemberState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(mut metrics) = member
        .upgrade()
        .and_then(|member| member.parts().ok())
        .map(|parts| parts.raft.metrics())
    else {
        return;
    };
    let mut last_seen = None;
    let mut ticker = tokio::time::interval(LEASE_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ticked = tokio::select! {
            _ = ticker.tick() => true,
            changed = metrics.changed() => {
                if changed.is_err() {
                    return;
                }
                false
            }
            _ = stop.changed() => return,
        };
        let (term, is_leader) = {
            let m = metrics.borrow_watched();
            (m.current_term, m.state == ServerState::Leader)
        };
        // Metrics change with every applied entry; only a change of term or role matters here.
        if !ticked && last_seen == Some((term, is_leader)) {
            continue;
        }
        last_seen = Some((term, is_leader));
        let Some(member) = member.upgrade() else { return };
        let Ok(parts) = member.parts() else { return };
        member.set_term(term);
        if !is_leader {
            if let Ok(mut deadlines) = member.lock_deadlines() {
                deadlines.clear();
                member.set_lease_term(0);
            }
            continue;
        }
        // Listed off the runtime while a long commit holds the state (see `read_off_runtime`).
        let listed = parts
            .kv
            .read_off_runtime(|kv| kv.leases().map_err(|e| StoreError::Internal(e.to_string())))
            .await;
        let leases = match listed {
            Ok(leases) => leases,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list leases; expiry is retried");
                continue;
            }
        };
        let now = StdInstant::now();
        let expired: Vec<i64> = {
            let Ok(mut deadlines) = member.lock_deadlines() else {
                return;
            };
            if member.lease_term() != term {
                deadlines.clear();
                member.set_lease_term(term);
            }
            // Leases this member has no deadline for (all of them right after it became leader)
            // get a full ttl plus an election timeout.
            deadlines.retain(|id, _| leases.iter().any(|(lease, _)| lease == id));
            for (id, ttl) in &leases {
                deadlines
                    .entry(*id)
                    .or_insert_with(|| now + Duration::from_secs((*ttl).max(0) as u64) + member.election_timeout);
            }
            deadlines
                .iter()
                .filter(|(_, deadline)| **deadline <= now)
                .map(|(id, _)| *id)
                .collect()
        };
        for id in expired {
            let deadline = tokio::time::Instant::now() + member.request_timeout();
            match Leader::new(&member)
                .propose(&parts, Command::LeaseRevoke { id }, deadline)
                .await
            {
                Ok(_) | Err(OpError::Store(StoreError::LeaseNotFound(_))) => {
                    tracing::debug!(lease = id, "lease expired and revoked");
                    member.lock_deadlines().map(|mut d| d.remove(&id)).ok();
                }
                Err(e) => {
                    tracing::warn!(lease = id, error = ?e, "cannot revoke expired lease; retrying");
                    break;
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant as StdInstant};

    use crate::raft_store::RaftStore;
    use crate::RaftStoreConfig;
    use kuboard_storage::*;

    const DEADLINE: Duration = Duration::from_secs(20);

    fn one_member(dir: &std::path::Path) -> RaftStoreConfig {
        RaftStoreConfig {
            node_id: 1,
            data_dir: dir.to_owned(),
            peers: BTreeMap::from([(1, "127.0.0.1:10082".to_owned())]),
            peer_listen_addr: "127.0.0.1:0".parse().expect("literal address"),
            cluster_secret: None,
            heartbeat_ms: 20,
            election_timeout_ms: 100,
            snapshot_threshold: 1000,
        }
    }

    /// Wait until the lease clock runs as the leader's: a lease of one second gets revoked.
    async fn wait_for_the_lease_clock(store: &RaftStore) {
        let short = store
            .lease_grant(LeaseGrantRequest { ttl: 1, id: 0 })
            .await
            .expect("grant a short lease");
        let started = std::time::Instant::now();
        while store.lease_time_to_live(short.id, false).await.expect("ttl").ttl != -1 {
            assert!(
                started.elapsed() < DEADLINE,
                "the lease clock never revoked an expired lease"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A keep-alive that reached the leader after a lease's deadline, before the lease clock had
    /// revoked the lease, renewed it: an expired lease came back to life. etcd refuses it
    /// ("requested lease not found").
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keep_alive_of_an_expired_lease_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RaftStore::open(one_member(dir.path()))
            .await
            .expect("open a one-member store");
        wait_for_the_lease_clock(&store).await;

        // The lease's time is up (as if its ttl had passed since the last renewal); the clock has
        // not revoked it yet.
        store
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 77 })
            .await
            .expect("grant lease 77");
        store
            .member
            .lock_deadlines()
            .expect("lease deadlines")
            .insert(77, StdInstant::now() - Duration::from_secs(1));
        assert_eq!(store.lease_keep_alive(77).await, Err(StoreError::LeaseNotFound(77)));
        let ttl = store.lease_time_to_live(77, false).await.expect("ttl of lease 77");
        assert_eq!(ttl.ttl, -1, "the expired lease is gone, not renewed: {ttl:?}");
        store.shutdown().await.expect("shut down");
    }
}
