//! The commands that travel through the Raft log and the responses the state machine gives.
//!
//! These are the only application records in the log. They are encoded by the codec module
//! (bincode 2, versioned, size-limited) and must stay backwards compatible once released: add new
//! variants at the end, never reorder.

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
    LeaseGrant { id: i64, ttl: i64 },
    /// Delete a lease and, in one revision, every key attached to it. Used for revoke and for
    /// expiry (the leader proposes expiry of leases whose deadline passed).
    LeaseRevoke { id: i64 },
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
}
