//! How a fresh multi-member group forms itself, and why a member whose data was wiped cannot form
//! a second one.
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
//! A member that finds any peer with state never initialises: a group exists, and this member is
//! either about to receive its log from the leader (it is in the membership) or was removed or
//! wiped and has to be added back by an operator (`kuboard admin members add` / `replace`). It
//! keeps waiting and says so in the log. A restart of a member that has state skips all of this.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use crate::raft_store::{Inner, RaftStore};
use crate::types::{NodeId, PeerNode};

/// Time a probe of one peer may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Shortest pause between two probe rounds.
const PROBE_INTERVAL_MIN: Duration = Duration::from_millis(200);
/// A member that waits to be added this long repeats its advice to the operator at WARN level.
const JOIN_ADVICE_AFTER: Duration = Duration::from_secs(30);

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
    },
    /// Not enough members answered yet.
    Waiting { fresh: usize, answered: usize },
    /// A peer was started with another peer list: forming now could split the group.
    PeerListMismatch { peer: NodeId },
}

/// Run until this member belongs to a group or the store stops.
pub(crate) async fn form_group(store: Weak<Inner>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut logged_exists = false;
    let mut logged_mismatch = false;
    let mut waiting_since = tokio::time::Instant::now();
    let mut advised_at: Option<tokio::time::Instant> = None;
    loop {
        let Some(inner) = store.upgrade() else { return };
        let store_now = RaftStore { inner };
        let interval = PROBE_INTERVAL_MIN.max(store_now.inner.heartbeat * 4);
        let round = probe_round(&store_now).await;
        match round {
            Round::Joined => {
                store_now.inner.joining.store(false, Ordering::SeqCst);
                tracing::info!(
                    node_id = store_now.inner.node_id,
                    "this member has received the group's state"
                );
                return;
            }
            Round::FormNow => {
                initialise(&store_now).await;
                return;
            }
            Round::GroupExists { holders, leader } => {
                store_now.inner.joining.store(true, Ordering::SeqCst);
                if !logged_exists {
                    logged_exists = true;
                    waiting_since = tokio::time::Instant::now();
                    store_now.inner.initialize_refusals.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(
                        node_id = store_now.inner.node_id,
                        ?holders,
                        ?leader,
                        "this member has no raft state but the group already exists: it does not start a new \
                         group and waits for the leader to send it the log"
                    );
                }
                let advise = advised_at.map_or(waiting_since.elapsed() >= JOIN_ADVICE_AFTER, |at| {
                    at.elapsed() >= JOIN_ADVICE_AFTER
                });
                if advise {
                    advised_at = Some(tokio::time::Instant::now());
                    let id = store_now.inner.node_id;
                    let addr = store_now.inner.peers.get(&id).cloned().unwrap_or_default();
                    tracing::warn!(
                        node_id = id,
                        "this member is still waiting to be added to the existing group. If its data directory \
                         was lost or it was removed, run on a running member: `kuboard admin members remove {id}` \
                         then `kuboard admin members add {id} {addr}` (or `kuboard admin members replace {id} {addr}`)"
                    );
                }
            }
            Round::PeerListMismatch { peer } => {
                if !logged_mismatch {
                    logged_mismatch = true;
                    tracing::error!(
                        node_id = store_now.inner.node_id,
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
        drop(store_now);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn probe_round(store: &RaftStore) -> Round {
    let Ok(parts) = store.parts() else {
        return Round::Waiting { fresh: 0, answered: 0 };
    };
    if parts.raft.is_initialized().await.unwrap_or(false) {
        return Round::Joined;
    }
    let me = store.inner.node_id;
    let others: Vec<NodeId> = store.inner.peers.keys().copied().filter(|id| *id != me).collect();
    let probes = others.iter().map(|peer| store.probe(*peer, PROBE_TIMEOUT));
    let replies = futures::future::join_all(probes).await;
    let mut fresh = 1;
    let mut answered = 0;
    let mut holders = Vec::new();
    let mut leader = None;
    for (peer, reply) in others.iter().zip(replies) {
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                tracing::debug!(peer, error = %e, "peer did not answer the formation probe");
                continue;
            }
        };
        answered += 1;
        if reply.has_state {
            holders.push(*peer);
            leader = leader.or(reply.leader);
        } else if reply.configured_peers != store.inner.peers {
            return Round::PeerListMismatch { peer: *peer };
        } else {
            fresh += 1;
        }
    }
    // Checked again: a leader may have reached this member while the probes were out.
    if parts.raft.is_initialized().await.unwrap_or(false) {
        return Round::Joined;
    }
    if !holders.is_empty() {
        return Round::GroupExists { holders, leader };
    }
    if fresh > store.inner.peers.len() / 2 {
        return Round::FormNow;
    }
    Round::Waiting { fresh, answered }
}

async fn initialise(store: &RaftStore) {
    let Ok(parts) = store.parts() else { return };
    let members: BTreeMap<NodeId, PeerNode> = store
        .inner
        .peers
        .iter()
        .map(|(id, addr)| (*id, PeerNode { addr: addr.clone() }))
        .collect();
    tracing::info!(
        node_id = store.inner.node_id,
        members = members.len(),
        "a majority of the configured members is fresh: initialising the raft group"
    );
    match parts.raft.initialize(members).await {
        Ok(()) => {}
        Err(e) => {
            // NotAllowed means this member received the group's state meanwhile, which is the
            // goal; anything else is reported and left to the next start.
            tracing::info!(error = %e, "the group was not initialised here");
        }
    }
}

impl RaftStore {
    /// What this member holds, for a peer that is forming the group.
    pub(crate) async fn probe_reply(&self) -> Result<crate::forwarding::ProbeReply, kuboard_storage::StoreError> {
        let parts = self.parts()?;
        let has_state = parts.raft.is_initialized().await.map_err(|_| self.stopped_error())?;
        let leader = {
            let metrics = parts.raft.metrics();
            let leader = openraft::async_runtime::WatchReceiver::borrow_watched(&metrics).current_leader;
            leader
        };
        Ok(crate::forwarding::ProbeReply {
            member: self.inner.node_id,
            has_state,
            configured_peers: self.inner.peers.clone(),
            leader,
        })
    }
}
