//! [`BlockedPeers`]: the test-only fault switch that drops this member's traffic to chosen peers.
//! Every Raft RPC, forwarded request and formation probe to a blocked peer fails as "unreachable"
//! before anything is sent, so a test can partition a group without touching the network; a
//! partition between two members is both of them blocking each other. Nothing in the product
//! sets it: only `RaftStore::set_blocked_peers`, hidden from the docs, does.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// The peers this member must not talk to. Cloning shares the set.
#[derive(Debug, Clone, Default)]
pub struct BlockedPeers {
    blocked: Arc<RwLock<HashSet<u64>>>,
}

impl BlockedPeers {
    pub fn is_blocked(&self, peer: u64) -> bool {
        self.blocked
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&peer)
    }

    /// Block exactly `peers` from now on; an empty list heals.
    pub fn set_blocked(&self, peers: impl IntoIterator<Item = u64>) {
        let mut blocked = self.blocked.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *blocked = peers.into_iter().collect();
    }
}
