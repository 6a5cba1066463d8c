//! The store's errors.

use thiserror::Error;

/// What can go wrong with a store operation. Callers match on the variant; the message is for humans.
#[derive(Debug, Clone, Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    /// The requested revision has been compacted away.
    #[error("required revision {requested} has been compacted (compacted up to {compact_revision})")]
    Compacted { requested: i64, compact_revision: i64 },
    /// The requested revision is newer than the store's current revision.
    #[error("required revision {requested} is a future revision (current {current})")]
    FutureRevision { requested: i64, current: i64 },
    /// The lease does not exist (never granted, revoked or expired).
    #[error("lease {0} not found")]
    LeaseNotFound(i64),
    /// A lease with this id already exists.
    #[error("lease {0} already exists")]
    LeaseExists(i64),
    /// The request is malformed (empty key, negative limit, too large value, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// This member cannot serve the request and does not know who can (no leader, no quorum).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The request did not finish within its deadline; it may or may not have been applied.
    #[error("store request timed out after {millis} ms")]
    Timeout { millis: u64 },
    /// The connection to the store broke while the request was in flight: it may or may not have been
    /// applied, as with [`StoreError::Timeout`], but the outcome was known to be lost at once.
    #[error("store connection broke during the request, which may or may not have been applied: {0}")]
    Interrupted(String),
    /// The store is shutting down.
    #[error("store is shutting down")]
    ShuttingDown,
    /// A fault inside the backend (disk, codec, a bug). Details are in the server log.
    #[error("internal store error: {0}")]
    Internal(String),
}

impl StoreError {
    /// True when retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Timeout { .. } | StoreError::Interrupted(_)
        )
    }
}
