//! The [`Store`] trait: the one contract every backend implements.

use std::future::Future;
use std::pin::Pin;

use futures::Stream;

use crate::error::StoreError;
use crate::types::*;

/// The events of one watch, in revision order. Ends with an error (for example
/// [`StoreError::Compacted`] when the start revision is gone) or when dropped by the caller.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, StoreError>> + Send + 'static>>;

/// An etcd-v3-shaped key-value store.
///
/// Correctness rules every backend must keep (checked by [`crate::conformance`]):
///
/// - Every successful mutation (put, a delete that deleted something, a txn whose branch wrote)
///   makes exactly one new revision, strictly greater than every earlier one; reads never go back.
/// - A successful write is durable and visible to every linearizable read that starts after it
///   returns, on any member.
/// - Linearizable reads (the default) reflect every write acknowledged before the read started.
/// - A txn is atomic: its compares and its branch see one state and produce at most one revision.
/// - A watch delivers every event of its range from its start revision, in order, once, with no
///   gap; a start revision below the compaction point fails with [`StoreError::Compacted`].
/// - Keys attached to a lease are deleted, in one revision, when the lease expires or is revoked.
/// - Bad input returns [`StoreError::InvalidArgument`] and changes nothing.
pub trait Store: Send + Sync + 'static {
    fn range(&self, request: RangeRequest) -> impl Future<Output = Result<RangeResponse, StoreError>> + Send;

    fn put(&self, request: PutRequest) -> impl Future<Output = Result<PutResponse, StoreError>> + Send;

    fn delete_range(
        &self,
        request: DeleteRangeRequest,
    ) -> impl Future<Output = Result<DeleteRangeResponse, StoreError>> + Send;

    fn txn(&self, request: TxnRequest) -> impl Future<Output = Result<TxnResponse, StoreError>> + Send;

    fn compact(&self, request: CompactRequest) -> impl Future<Output = Result<CompactResponse, StoreError>> + Send;

    fn watch(&self, request: WatchRequest) -> impl Future<Output = Result<WatchStream, StoreError>> + Send;

    fn lease_grant(
        &self,
        request: LeaseGrantRequest,
    ) -> impl Future<Output = Result<LeaseGrantResponse, StoreError>> + Send;

    fn lease_revoke(&self, id: i64) -> impl Future<Output = Result<LeaseRevokeResponse, StoreError>> + Send;

    /// Renew the lease once, returning its new time to live.
    fn lease_keep_alive(&self, id: i64) -> impl Future<Output = Result<LeaseKeepAliveResponse, StoreError>> + Send;

    fn lease_time_to_live(
        &self,
        id: i64,
        with_keys: bool,
    ) -> impl Future<Output = Result<LeaseTimeToLiveResponse, StoreError>> + Send;

    fn lease_leases(&self) -> impl Future<Output = Result<LeaseLeasesResponse, StoreError>> + Send;

    /// Backend, members, leader, revision and health, as seen by the answering member.
    fn status(&self) -> impl Future<Output = Result<StoreStatus, StoreError>> + Send;
}
