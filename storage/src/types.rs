//! Requests, responses and records of the store contract, shaped after etcd v3's KV, Watch and
//! Lease services so that the embedded store and an external etcd have one meaning.
//!
//! Revisions are `i64` as in etcd. A revision of `0` in a request means "the current revision".
//! Lease id `0` means "no lease".

use serde::{Deserialize, Serialize};

/// One stored key with its MVCC metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeyValue {
    pub key: Vec<u8>,
    /// Empty when the range asked for keys only.
    pub value: Vec<u8>,
    /// Revision of the last creation of this key.
    pub create_revision: i64,
    /// Revision of the last modification of this key.
    pub mod_revision: i64,
    /// Number of modifications since the last creation (1 after creation).
    pub version: i64,
    /// Lease the key is attached to, `0` for none.
    pub lease: i64,
}

/// Facts about the store at the moment it answered, attached to every response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResponseHeader {
    /// The store's revision when the response was produced (after a write: the revision it made).
    pub revision: i64,
    /// The id of the member that answered.
    pub member_id: u64,
    /// The Raft term when the response was produced (0 when the backend does not say).
    pub raft_term: u64,
}

/// Read consistency of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ReadConsistency {
    /// The read reflects every write acknowledged before it started (ReadIndex). The default.
    #[default]
    Linearizable,
    /// The read is served from the answering member's local state, which may lag.
    Serializable,
}

/// Order of the keys of a range response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SortOrder {
    /// Ascending by key (the natural order).
    #[default]
    Ascend,
    /// Descending by key.
    Descend,
}

/// Read the keys in `[key, range_end)` (see [`crate::keys`] for the conventions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// Maximum number of keys returned; `0` means no limit.
    pub limit: i64,
    /// Read as of this revision; `0` means the current revision.
    pub revision: i64,
    pub consistency: ReadConsistency,
    /// Order of the returned keys. `limit` keeps the first keys in this order.
    pub sort_order: SortOrder,
    /// Return only the count, no key-values.
    pub count_only: bool,
    /// Return keys and metadata without values.
    pub keys_only: bool,
}

impl RangeRequest {
    /// A linearizable read of one key.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        RangeRequest {
            key: key.into(),
            ..Default::default()
        }
    }

    /// A linearizable read of every key starting with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key = prefix.into();
        let range_end = crate::keys::prefix_end(&key);
        RangeRequest {
            key,
            range_end,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RangeResponse {
    pub header: ResponseHeader,
    /// The key-values found (none when `count_only`).
    pub kvs: Vec<KeyValue>,
    /// True when `limit` cut the result and more keys lie in the range.
    pub more: bool,
    /// Number of keys in the range (before `limit`).
    pub count: i64,
}

/// Set `key` to `value`, creating it if absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PutRequest {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// Attach the key to this lease; `0` for none. The lease must exist.
    pub lease: i64,
    /// Return the previous key-value, if any.
    pub prev_kv: bool,
}

impl PutRequest {
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PutResponse {
    pub header: ResponseHeader,
    pub prev_kv: Option<KeyValue>,
}

/// Delete the keys in `[key, range_end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeleteRangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

impl DeleteRangeRequest {
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        }
    }

    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key = prefix.into();
        let range_end = crate::keys::prefix_end(&key);
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeleteRangeResponse {
    pub header: ResponseHeader,
    /// Number of keys deleted. A delete that removes nothing does not bump the revision.
    pub deleted: i64,
    pub prev_kvs: Vec<KeyValue>,
}

/// How a compare relates the stored field to the given one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// Which field of the key a compare looks at, and the value to compare it with.
///
/// A missing key has version, create revision and mod revision `0`, lease `0` and compares as
/// an absent value (every `Value` comparison on a missing key is false), as in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
    Value(Vec<u8>),
    Lease(i64),
}

/// One condition of a transaction. With a non-empty `range_end` the condition must hold for every
/// key in the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub result: CompareResult,
    pub target: CompareTarget,
}

impl Compare {
    pub fn new(key: impl Into<Vec<u8>>, result: CompareResult, target: CompareTarget) -> Self {
        Compare {
            key: key.into(),
            range_end: Vec::new(),
            result,
            target,
        }
    }
}

/// One operation inside a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOpResponse {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
}

/// If every compare holds, run `success`, else `failure`; atomically, as one revision at most.
///
/// A transaction may not write the same key twice (etcd's "duplicate key given in txn request").
///
/// Decoding refuses nesting deeper than [`MAX_DECODED_TXN_NESTING`] levels (see [`nesting`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(from = "nesting::Counted<TxnRequestFields>")]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(from = "nesting::Counted<TxnResponseFields>")]
pub struct TxnResponse {
    pub header: ResponseHeader,
    /// True when every compare held and `success` ran.
    pub succeeded: bool,
    /// One response per operation of the branch that ran, in order.
    pub responses: Vec<TxnOpResponse>,
}

/// Discard the history before `revision`; reads and watches before it fail with `Compacted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CompactRequest {
    pub revision: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CompactResponse {
    pub header: ResponseHeader,
}

/// Watch the keys in `[key, range_end)` from `start_revision` (`0`: from the next revision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WatchRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub start_revision: i64,
    /// Attach the previous key-value to each event.
    pub prev_kv: bool,
    /// Send an empty response with the current revision now and then while idle.
    pub progress_notify: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Put,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// For a delete: the key with `mod_revision` set to the deleting revision and an empty value.
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

/// A batch of events, all of one revision or of consecutive revisions, in revision order.
/// An empty batch is a progress notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WatchResponse {
    pub header: ResponseHeader,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LeaseGrantRequest {
    /// Time to live in seconds (at least 1).
    pub ttl: i64,
    /// Requested lease id; `0` lets the store choose.
    pub id: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LeaseGrantResponse {
    pub header: ResponseHeader,
    pub id: i64,
    pub ttl: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LeaseRevokeResponse {
    pub header: ResponseHeader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LeaseKeepAliveResponse {
    pub header: ResponseHeader,
    pub id: i64,
    /// The renewed time to live in seconds.
    pub ttl: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LeaseTimeToLiveResponse {
    pub header: ResponseHeader,
    pub id: i64,
    /// Remaining seconds; `-1` when the lease does not exist.
    pub ttl: i64,
    pub granted_ttl: i64,
    /// Keys attached to the lease, when asked for.
    pub keys: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LeaseLeasesResponse {
    pub header: ResponseHeader,
    pub ids: Vec<i64>,
}

/// Which backend serves the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendKind {
    /// The embedded Raft group among the replicas.
    Raft,
    /// An external etcd cluster.
    Etcd,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Raft => "raft",
            BackendKind::Etcd => "etcd",
        }
    }
}

/// The role a member plays in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberRole {
    Leader,
    Follower,
    /// Receives the log but does not vote.
    Learner,
    /// Known member whose role this member cannot tell (unreachable, or candidate).
    Unknown,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Leader => "leader",
            MemberRole::Follower => "follower",
            MemberRole::Learner => "learner",
            MemberRole::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    /// Peer address (`host:port`) or client URL for etcd members.
    pub address: String,
    pub role: MemberRole,
    /// True when the answering member has heard from it recently (always true for itself).
    pub healthy: bool,
    /// False when the answering member cannot tell whether this member is alive (a follower about
    /// the other followers): `healthy` is then false for want of news, not because of a failure.
    #[serde(default = "health_known_default")]
    pub health_known: bool,
    /// What the answering member knows of this member's log and state machine.
    #[serde(default)]
    pub progress: MemberProgress,
}

fn health_known_default() -> bool {
    true
}

/// One member's Raft position as the answering member knows it: every field is `None` where the
/// answering member cannot know it (a member knows its own term, commit and applied index and
/// revision; the leader knows up to which index each other member's log matches its own; an etcd
/// endpoint answers its own status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberProgress {
    pub term: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub revision: Option<i64>,
    /// The last log index the leader knows this member holds (the leader's replication state).
    pub matched_index: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    pub backend: BackendKind,
    /// The id of the member that answered.
    pub member_id: u64,
    pub members: Vec<Member>,
    pub leader: Option<u64>,
    pub revision: i64,
    pub compact_revision: i64,
    pub raft_term: u64,
    /// Applied Raft index (0 when the backend does not say).
    pub applied_index: u64,
    /// True when the store can serve linearizable requests now (a leader with a quorum is known).
    pub healthy: bool,
}

/// Deepest transaction nesting any decoder accepts. Nested transactions decode recursively, so a
/// crafted record of a few kilobytes nesting thousands of levels would otherwise overflow the stack
/// of whoever decodes it (a WAL replay, a peer, an API server). Stores may enforce a lower limit on
/// what they apply.
pub const MAX_DECODED_TXN_NESTING: usize = 64;

/// The fields of [`TxnRequest`], decoded under a nesting count.
#[derive(Deserialize)]
#[doc(hidden)]
pub struct TxnRequestFields {
    compare: Vec<Compare>,
    success: Vec<TxnOp>,
    failure: Vec<TxnOp>,
}

impl From<TxnRequestFields> for TxnRequest {
    fn from(fields: TxnRequestFields) -> Self {
        TxnRequest {
            compare: fields.compare,
            success: fields.success,
            failure: fields.failure,
        }
    }
}

/// The fields of [`TxnResponse`], decoded under a nesting count.
#[derive(Deserialize)]
#[doc(hidden)]
pub struct TxnResponseFields {
    header: ResponseHeader,
    succeeded: bool,
    responses: Vec<TxnOpResponse>,
}

impl From<TxnResponseFields> for TxnResponse {
    fn from(fields: TxnResponseFields) -> Self {
        TxnResponse {
            header: fields.header,
            succeeded: fields.succeeded,
            responses: fields.responses,
        }
    }
}

/// A per-thread count of how deep the decoder is inside nested transactions.
#[doc(hidden)]
pub mod nesting {
    use std::cell::Cell;

    use serde::{Deserialize, Deserializer};

    use super::MAX_DECODED_TXN_NESTING;

    thread_local! {
        static DEPTH: Cell<usize> = const { Cell::new(0) };
    }

    /// A value decoded one nesting level deeper; refused past the limit before its fields are read.
    pub struct Counted<T>(pub T);

    struct Level;

    impl Level {
        fn enter() -> Option<Level> {
            DEPTH.with(|depth| {
                if depth.get() >= MAX_DECODED_TXN_NESTING {
                    None
                } else {
                    depth.set(depth.get() + 1);
                    Some(Level)
                }
            })
        }
    }

    impl Drop for Level {
        fn drop(&mut self) {
            DEPTH.with(|depth| depth.set(depth.get() - 1));
        }
    }

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Counted<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let _level = Level::enter().ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "transaction nested deeper than {MAX_DECODED_TXN_NESTING} levels"
                ))
            })?;
            T::deserialize(deserializer).map(Counted)
        }
    }

    impl<T> Counted<T> {
        pub(crate) fn into_inner(self) -> T {
            self.0
        }
    }
}

impl From<nesting::Counted<TxnRequestFields>> for TxnRequest {
    fn from(counted: nesting::Counted<TxnRequestFields>) -> Self {
        counted.into_inner().into()
    }
}

impl From<nesting::Counted<TxnResponseFields>> for TxnResponse {
    fn from(counted: nesting::Counted<TxnResponseFields>) -> Self {
        counted.into_inner().into()
    }
}
