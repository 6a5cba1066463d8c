//! How a fresh multi-member group forms itself, and why a member whose data was wiped can neither
//! form a second group nor harm the existing one.
//!
//! # Forming
//!
//! A member with no log and no vote probes every configured peer. It initialises the group (with
//! the configured peer list as the membership) only when a majority of the configured members,
//! itself included, answer that they are fresh too and that their peer list is the same, and no
//! member answers that it already holds state.
//!
//! Several members may initialise concurrently: each one that sees a fresh majority does. That is
//! deliberate: openraft accepts `initialize` on several members when the membership is identical
//! (the identical membership entry is the first log entry on each; the vote then elects one
//! leader), and it lets any majority form the group, so formation does not wait for one chosen
//! member that may be down. The peer-list check is what keeps the memberships identical.
//!
//! # Joining, and the admission gate
//!
//! A fresh member that finds any peer with state never initialises: a group exists. Whether it
//! may take part is decided by the leader's memory of it. A member whose data was wiped while it
//! was a member is remembered by the leader as having acknowledged log entries it no longer has;
//! answering the leader would report a log that went backwards, which breaks Raft's assumptions
//! (openraft's leader stops on it) and would let the member vote with a forgotten vote. So a fresh
//! member starts with its admission gate closed: its peer listener refuses Raft RPCs (the leader
//! sees it as unreachable) until a probe shows that the leader has no acknowledged position for it
//! (a member being formed or added for the first time, or re-added after `remove`) or that no
//! leader exists. A wiped member stays refused, says why in the log, and is brought back by an
//! operator with `kuboard admin members replace` (or `remove` then `add`), which makes the leader
//! forget it. A restart of a member that has state skips all of this.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::errors::Fatal;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};

use crate::codec;
use crate::member::MemberState;
use crate::member_messages::{AppRequest, AppResponse, ProbeReply, ReplicationView, MAX_APP_MESSAGE_BYTES};
use crate::peer::RaftRpcHandler;
use crate::state_machine::{Raft, SnapshotData};
use crate::types::{NodeId, PeerNode, TypeConfig, Vote};

/// Time a probe of one peer may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Shortest pause between two probe rounds.
const PROBE_INTERVAL_MIN: Duration = Duration::from_millis(200);
/// A member that waits to be added this long repeats its advice to the operator at WARN level.
const JOIN_ADVICE_AFTER: Duration = Duration::from_secs(30);

type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// The raft core behind the peer listener, refusing every Raft RPC while the member is not
/// admitted (see the module docs).
pub(crate) struct AdmissionGate {
    pub(crate) raft: Raft,
    pub(crate) admitted: Arc<AtomicBool>,
}

impl AdmissionGate {
    fn check(&self) -> Result<(), Fatal<TypeConfig>> {
        if self.admitted.load(Ordering::SeqCst) {
            Ok(())
        } else {
            // Reported to the sender as an unreachable member: it backs off and tries later.
            Err(Fatal::Stopped)
        }
    }
}

impl RaftRpcHandler for AdmissionGate {
    type Config = TypeConfig;
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<TypeConfig>, Fatal<TypeConfig>> {
        self.check()?;
        RaftRpcHandler::append_entries(&self.raft, rpc).await
    }

    async fn vote(&self, rpc: VoteRequest<TypeConfig>) -> Result<VoteResponse<TypeConfig>, Fatal<TypeConfig>> {
        self.check()?;
        RaftRpcHandler::vote(&self.raft, rpc).await
    }

    async fn pre_vote(&self, rpc: VoteRequest<TypeConfig>) -> Result<VoteResponse<TypeConfig>, Fatal<TypeConfig>> {
        self.check()?;
        RaftRpcHandler::pre_vote(&self.raft, rpc).await
    }

    async fn install_full_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>> {
        self.check()?;
        RaftRpcHandler::install_full_snapshot(&self.raft, vote, snapshot).await
    }
}

/// What one probe round learned.
enum Round {
    /// This member has state now (a leader reached it): nothing left to do.
    Joined,
    /// A majority of the configured members is fresh and agrees on the peer list.
    FormNow,
    /// Another member holds the group's state.
    GroupExists {
        holders: Vec<NodeId>,
        leader: Option<NodeId>,
        /// What the leader said about this member, if the leader answered.
        leader_view: Option<ReplicationView>,
    },
    /// Not enough members answered yet.
    Waiting { fresh: usize, answered: usize },
    /// A peer was started with another peer list: forming now could split the group.
    PeerListMismatch { peer: NodeId },
}

/// Run until this member belongs to a group or the store stops.
pub(crate) async fn form_group(member: Weak<MemberState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut logged_exists = false;
    let mut logged_wiped = false;
    let mut logged_mismatch = false;
    let mut waiting_since = tokio::time::Instant::now();
    let mut advised_at: Option<tokio::time::Instant> = None;
    loop {
        let Some(member) = member.upgrade() else { return };
        let id = member.node_id;
        let interval = PROBE_INTERVAL_MIN.max(member.heartbeat * 4);
        match probe_round(&member).await {
            Round::Joined => {
                member.joining.store(false, Ordering::SeqCst);
                member.admitted.store(true, Ordering::SeqCst);
                tracing::info!(node_id = id, "this member has received the group's state");
                return;
            }
            Round::FormNow => {
                member.admitted.store(true, Ordering::SeqCst);
                initialise(&member).await;
                return;
            }
            Round::GroupExists {
                holders,
                leader,
                leader_view,
            } => {
                member.joining.store(true, Ordering::SeqCst);
                if !logged_exists {
                    logged_exists = true;
                    waiting_since = tokio::time::Instant::now();
                    member.initialize_refusals.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(
                        node_id = id,
                        ?holders,
                        ?leader,
                        "this member has no raft state but the group already exists: it does not start a new \
                         group and waits for the leader to send it the log"
                    );
                }
                let addr = member.peers.get(&id).cloned().unwrap_or_default();
                let advice = format!(
                    "run on a running member: `kuboard admin members replace {id} {addr}` (or `kuboard admin \
                     members remove {id}` then `kuboard admin members add {id} {addr}`)"
                );
                match leader_view {
                    Some(ReplicationView::Acknowledged(index)) => {
                        // The leader remembers log entries this member no longer has: its data
                        // was lost. Answering the leader now would report a log going backwards.
                        member.admitted.store(false, Ordering::SeqCst);
                        if !logged_wiped {
                            logged_wiped = true;
                            advised_at = Some(tokio::time::Instant::now());
                            tracing::warn!(
                                node_id = id,
                                leader = ?leader,
                                acknowledged_index = index,
                                "this member's data directory was lost while it was a member of the group (the \
                                 leader remembers entries up to index {index} on it). It refuses to take part \
                                 until it is replaced; {advice}"
                            );
                        }
                    }
                    Some(ReplicationView::NothingAcknowledged) | Some(ReplicationView::NotLeader) | None
                        if leader.is_none() =>
                    {
                        // No leader now: whoever is elected next starts without memory of this
                        // member's old log.
                        member.admitted.store(true, Ordering::SeqCst);
                    }
                    Some(ReplicationView::NothingAcknowledged) => {
                        if !member.admitted.swap(true, Ordering::SeqCst) && logged_wiped {
                            tracing::info!(
                                node_id = id,
                                "the leader has forgotten this member's lost log: it takes part again"
                            );
                        }
                    }
                    Some(ReplicationView::NotLeader) | None => {
                        tracing::debug!(
                            node_id = id,
                            ?leader,
                            "the leader did not answer the probe; asking again"
                        );
                    }
                }
                let advise = advised_at.map_or(waiting_since.elapsed() >= JOIN_ADVICE_AFTER, |at| {
                    at.elapsed() >= JOIN_ADVICE_AFTER
                });
                if advise {
                    advised_at = Some(tokio::time::Instant::now());
                    tracing::warn!(
                        node_id = id,
                        "this member is still waiting to be added to the existing group. If its data directory \
                         was lost or it was removed, {advice}"
                    );
                }
            }
            Round::PeerListMismatch { peer } => {
                if !logged_mismatch {
                    logged_mismatch = true;
                    tracing::error!(
                        node_id = id,
                        peer,
                        "member {peer} was started with another KUBOARD_RAFT_PEERS list; the group is not formed \
                         until every member is started with the same list"
                    );
                }
            }
            Round::Waiting { fresh, answered } => {
                tracing::debug!(
                    fresh,
                    answered,
                    "waiting for a majority of fresh members to form the group"
                );
            }
        }
        drop(member);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn probe_round(member: &MemberState) -> Round {
    let Ok(parts) = member.parts() else {
        return Round::Waiting { fresh: 0, answered: 0 };
    };
    if parts.raft.is_initialized().await.unwrap_or(false) {
        return Round::Joined;
    }
    let me = member.node_id;
    let others: Vec<NodeId> = member.peers.keys().copied().filter(|id| *id != me).collect();
    let probes = others.iter().map(|peer| probe(member, *peer, PROBE_TIMEOUT));
    let replies: Vec<ProbeReply> = futures::future::join_all(probes)
        .await
        .into_iter()
        .zip(&others)
        .filter_map(|(reply, peer)| match reply {
            Ok(reply) => Some(reply),
            Err(e) => {
                tracing::debug!(peer, error = %e, "peer did not answer the formation probe");
                None
            }
        })
        .collect();
    let mut fresh = 1;
    let mut holders = Vec::new();
    let mut leader = None;
    for reply in &replies {
        if reply.has_state {
            holders.push(reply.member);
            leader = leader.or(reply.leader);
        } else if reply.configured_peers != member.peers {
            return Round::PeerListMismatch { peer: reply.member };
        } else {
            fresh += 1;
        }
    }
    // Checked again: a leader may have reached this member while the probes were out.
    if parts.raft.is_initialized().await.unwrap_or(false) {
        return Round::Joined;
    }
    if !holders.is_empty() {
        let leader_view = leader.and_then(|leader| {
            replies
                .iter()
                .find(|reply| reply.member == leader)
                .map(|reply| reply.replication_to_you)
        });
        return Round::GroupExists {
            holders,
            leader,
            leader_view,
        };
    }
    if fresh > member.peers.len() / 2 {
        return Round::FormNow;
    }
    Round::Waiting {
        fresh,
        answered: replies.len(),
    }
}

async fn initialise(member: &MemberState) {
    let Ok(parts) = member.parts() else { return };
    let members: BTreeMap<NodeId, PeerNode> = member
        .peers
        .iter()
        .map(|(id, addr)| (*id, PeerNode { addr: addr.clone() }))
        .collect();
    tracing::info!(
        node_id = member.node_id,
        members = members.len(),
        "a majority of the configured members is fresh: initialising the raft group"
    );
    if let Err(e) = parts.raft.initialize(members).await {
        // NotAllowed means this member received the group's state meanwhile, which is the goal;
        // anything else is reported and left to the next start.
        tracing::info!(error = %e, "the group was not initialised here");
    }
}

/// Ask member `target` what it holds.
async fn probe(member: &MemberState, target: NodeId, timeout: Duration) -> Result<ProbeReply, String> {
    let Some(client) = &member.peer_client else {
        return Err("no peer transport".into());
    };
    if member.blocked_peers.is_blocked(target) {
        return Err(format!("member {target} is blocked (fault injection)"));
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

/// What this member holds, for peer `asking` that is forming or joining the group.
pub(crate) async fn probe_reply(
    member: &MemberState,
    asking: NodeId,
) -> Result<ProbeReply, kuboard_storage::StoreError> {
    let parts = member.parts()?;
    let has_state = parts.raft.is_initialized().await.map_err(|_| member.stopped_error())?;
    let (leader, replication_to_you) = {
        let metrics = parts.raft.metrics();
        let metrics = openraft::async_runtime::WatchReceiver::borrow_watched(&metrics);
        let view = match &metrics.replication {
            None => ReplicationView::NotLeader,
            Some(replication) => match replication.get(&asking).copied().flatten() {
                Some(matched) => ReplicationView::Acknowledged(matched.index),
                None => ReplicationView::NothingAcknowledged,
            },
        };
        (metrics.current_leader, view)
    };
    Ok(ProbeReply {
        member: member.node_id,
        has_state,
        configured_peers: member.peers.clone(),
        leader,
        replication_to_you,
    })
}
