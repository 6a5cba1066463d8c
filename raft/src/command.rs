//! The commands that travel through the Raft log and the responses the state machine gives.
//!
//! These are the only application records in the log. They are encoded by the codec module
//! (bincode 2, versioned, size-limited) and must stay backwards compatible once released: add new
//! variants at the end, never reorder.

use std::fmt;

use kuboard_storage::*;
use serde::{Deserialize, Serialize};

/// A state change proposed through the log. Applying the same command to the same state always
/// gives the same result on every member (no clocks, no randomness inside `apply`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactRequest),
    /// Create a lease. `id` was chosen by the proposer (non-zero); `ttl` in seconds.
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    /// Delete a lease and, in one revision, every key attached to it. Used for revoke and for
    /// expiry (the leader proposes expiry of leases whose deadline passed).
    LeaseRevoke {
        id: i64,
    },
}

/// The outcome of applying one [`Command`]. Errors from bad input (for example a put naming a
/// lease that does not exist) are results too: they change nothing and are answered to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Error(StoreError),
    /// The answer to a log entry that carries no command (the blank entry of a new leader, a
    /// membership change): the store's revision after it.
    Applied(ResponseHeader),
}

impl Command {
    /// A rough count of the bytes this command occupies, for sizing caches; not an exact encoded
    /// length.
    pub fn approximate_size(&self) -> u64 {
        fn op_size(op: &TxnOp) -> usize {
            match op {
                TxnOp::Range(r) => r.key.len() + r.range_end.len() + 32,
                TxnOp::Put(p) => p.key.len() + p.value.len() + 16,
                TxnOp::DeleteRange(d) => d.key.len() + d.range_end.len() + 8,
                TxnOp::Txn(t) => txn_size(t),
            }
        }
        fn txn_size(txn: &TxnRequest) -> usize {
            let compares: usize = txn.compare.iter().map(|c| c.key.len() + c.range_end.len() + 24).sum();
            let ops: usize = txn.success.iter().chain(txn.failure.iter()).map(op_size).sum();
            compares + ops + 8
        }
        let size = match self {
            Command::Put(p) => p.key.len() + p.value.len() + 16,
            Command::DeleteRange(d) => d.key.len() + d.range_end.len() + 8,
            Command::Txn(t) => txn_size(t),
            Command::Compact(_) | Command::LeaseGrant { .. } | Command::LeaseRevoke { .. } => 16,
        };
        size as u64
    }
}

/// Commands are shown by kind and size only: keys and values may carry session tokens or other
/// secrets, which must never reach a log line.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Put(p) => write!(f, "put(key {} B, value {} B)", p.key.len(), p.value.len()),
            Command::DeleteRange(d) => write!(f, "delete_range(key {} B)", d.key.len()),
            Command::Txn(t) => write!(
                f,
                "txn({} compares, {} success ops, {} failure ops)",
                t.compare.len(),
                t.success.len(),
                t.failure.len()
            ),
            Command::Compact(c) => write!(f, "compact(revision {})", c.revision),
            Command::LeaseGrant { id, ttl } => write!(f, "lease_grant(id {id}, ttl {ttl} s)"),
            Command::LeaseRevoke { id } => write!(f, "lease_revoke(id {id})"),
        }
    }
}
