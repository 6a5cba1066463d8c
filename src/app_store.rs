//! [`AppStore`]: how the server talks to its store. Every call is timed into the store-latency
//! histogram and bounded by a deadline, so a stuck store turns into a 503 instead of a hung request.
//!
//! Records are changed by compare-and-swap: a write states what it expects of the key
//! ([`KeyExpectation`]: absent, or unchanged since it was read) and is refused, changing nothing,
//! when another replica or request got there first. [`AppStore::create_if_absent`],
//! [`AppStore::replace_if_unchanged`], [`AppStore::put_if`] and [`AppStore::delete_if_unchanged`]
//! are the only shapes of conditional write the server uses; each is one transaction of one
//! compare and one operation.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kuboard_storage::*;

use crate::metrics::Metrics;
use crate::store_backend::StoreBackend;

/// What a conditional write expects of its key at the moment it is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyExpectation {
    /// The key does not exist: never written, or deleted since (its create revision is 0).
    Absent,
    /// The key exists and was last written at this mod revision (the one it was read at, > 0). A
    /// key deleted and written again has a newer mod revision, so it does not match.
    UnchangedSince(i64),
}

impl KeyExpectation {
    /// The expectation for a key read as `read`: unchanged since that read, or still absent.
    pub fn from_read(read: Option<&KeyValue>) -> KeyExpectation {
        match read {
            Some(kv) => KeyExpectation::UnchangedSince(kv.mod_revision),
            None => KeyExpectation::Absent,
        }
    }

    fn compare(self, key: Vec<u8>) -> Compare {
        let target = match self {
            KeyExpectation::Absent => CompareTarget::CreateRevision(0),
            KeyExpectation::UnchangedSince(mod_revision) => CompareTarget::ModRevision(mod_revision),
        };
        Compare::new(key, CompareResult::Equal, target)
    }
}

/// Longest time one store call may take before the request gives up on it.
const STORE_CALL_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct AppStore {
    backend: Arc<StoreBackend>,
    metrics: Arc<Metrics>,
}

impl AppStore {
    pub fn new(backend: Arc<StoreBackend>, metrics: Arc<Metrics>) -> AppStore {
        AppStore { backend, metrics }
    }

    /// Why the store stopped by itself (see [`StoreBackend::failure`]), or `None`.
    pub fn failure(&self) -> Option<String> {
        self.backend.failure()
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(STORE_CALL_DEADLINE, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout {
                millis: STORE_CALL_DEADLINE.as_millis() as u64,
            }),
        };
        self.metrics
            .store_op_duration
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            self.metrics
                .store_op_errors
                .with_label_values(&[op, error_kind(error)])
                .inc();
        }
        result
    }

    /// A linearizable read of one key.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let response = self.timed("range", self.backend.range(RangeRequest::key(key))).await?;
        Ok(response.kvs.into_iter().next())
    }

    /// A linearizable read of every key under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        Ok(self
            .timed("range", self.backend.range(RangeRequest::prefix(prefix)))
            .await?
            .kvs)
    }

    pub async fn put(&self, request: PutRequest) -> Result<PutResponse, StoreError> {
        self.timed("put", self.backend.put(request)).await
    }

    pub async fn delete_key(&self, key: &str) -> Result<DeleteRangeResponse, StoreError> {
        self.timed("delete_range", self.backend.delete_range(DeleteRangeRequest::key(key)))
            .await
    }

    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, StoreError> {
        self.timed("txn", self.backend.txn(request)).await
    }

    /// Writes `put` if its key is as `expected`. Returns true when written; false when the key was
    /// not as expected, and then nothing changed. The write and the check are one transaction, so
    /// of two replicas expecting the same state, at most one writes. A `put.lease` that does not
    /// exist (expired, revoked) is an error ([`StoreError::LeaseNotFound`]) and writes nothing.
    pub async fn put_if(&self, expected: KeyExpectation, put: PutRequest) -> Result<bool, StoreError> {
        let request = TxnRequest {
            compare: vec![expected.compare(put.key.clone())],
            success: vec![TxnOp::Put(put)],
            failure: vec![],
        };
        Ok(self.txn(request).await?.succeeded)
    }

    /// Writes `put` only if its key does not exist ([`KeyExpectation::Absent`]): the "create" of a
    /// name that must stay unique (a user, a cluster, an election key). Returns false, changing
    /// nothing, when the key exists.
    pub async fn create_if_absent(&self, put: PutRequest) -> Result<bool, StoreError> {
        self.put_if(KeyExpectation::Absent, put).await
    }

    /// Writes `put` only if its key still has the mod revision it was read at
    /// ([`KeyExpectation::UnchangedSince`]): the "update" of a read-modify-write. Returns false,
    /// changing nothing, when the key changed or vanished since; the caller reads again or gives up.
    pub async fn replace_if_unchanged(&self, mod_revision: i64, put: PutRequest) -> Result<bool, StoreError> {
        self.put_if(KeyExpectation::UnchangedSince(mod_revision), put).await
    }

    /// Deletes `key` only if it still has the mod revision it was read at. Returns false, changing
    /// nothing, when the key changed or vanished since, so a record rewritten by someone else after
    /// the decision to delete it survives.
    pub async fn delete_if_unchanged(&self, key: &str, mod_revision: i64) -> Result<bool, StoreError> {
        let request = TxnRequest {
            compare: vec![KeyExpectation::UnchangedSince(mod_revision).compare(key.as_bytes().to_vec())],
            success: vec![TxnOp::DeleteRange(DeleteRangeRequest::key(key))],
            failure: vec![],
        };
        Ok(self.txn(request).await?.succeeded)
    }

    pub async fn lease_grant(&self, ttl_seconds: i64) -> Result<LeaseGrantResponse, StoreError> {
        self.timed(
            "lease_grant",
            self.backend.lease_grant(LeaseGrantRequest {
                ttl: ttl_seconds,
                id: 0,
            }),
        )
        .await
    }

    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, StoreError> {
        self.timed("lease_revoke", self.backend.lease_revoke(id)).await
    }

    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse, StoreError> {
        self.timed("lease_keep_alive", self.backend.lease_keep_alive(id)).await
    }

    pub async fn status(&self) -> Result<StoreStatus, StoreError> {
        self.timed("status", self.backend.status()).await
    }

    /// Compact the store's history below `revision` (see `crate::auto_compaction`).
    pub async fn compact(&self, revision: i64) -> Result<CompactResponse, StoreError> {
        self.timed("compact", self.backend.compact(CompactRequest { revision }))
            .await
    }
}

/// A short, stable label for an error, for metrics.
pub fn error_kind(error: &StoreError) -> &'static str {
    match error {
        StoreError::Compacted { .. } => "compacted",
        StoreError::FutureRevision { .. } => "future_revision",
        StoreError::LeaseNotFound(_) => "lease_not_found",
        StoreError::LeaseExists(_) => "lease_exists",
        StoreError::InvalidArgument(_) => "invalid_argument",
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Timeout { .. } => "timeout",
        StoreError::Interrupted(_) => "interrupted",
        StoreError::ShuttingDown => "shutting_down",
        StoreError::Internal(_) => "internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_store::MemoryStore;

    /// Every rule of the helpers, in turn, on one store (each scenario uses its own key).
    async fn check_helpers(store: &AppStore) {
        create_if_absent_writes_once(store).await;
        replace_if_unchanged_needs_the_revision_read(store).await;
        put_if_follows_the_read(store).await;
        delete_if_unchanged_spares_a_rewritten_key(store).await;
    }

    #[tokio::test]
    async fn helpers_on_the_memory_store() {
        let store = AppStore::new(
            Arc::new(StoreBackend::Memory(MemoryStore::default())),
            Arc::new(Metrics::new(1)),
        );
        check_helpers(&store).await;
    }

    /// The same rules on a real one-member Raft store, whose transactions go through the log.
    #[tokio::test]
    async fn helpers_on_the_raft_store() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = kuboard_raft::RaftStoreConfig {
            node_id: 1,
            data_dir: dir.path().to_owned(),
            peers: std::collections::BTreeMap::from([(1, "127.0.0.1:10082".to_owned())]),
            peer_listen_addr: "127.0.0.1:0".parse().expect("literal address"),
            cluster_secret: None,
            heartbeat_ms: 20,
            election_timeout_ms: 100,
            snapshot_threshold: 10_000,
        };
        let raft = kuboard_raft::RaftStore::open(config)
            .await
            .expect("open a one-member store");
        let backend = Arc::new(StoreBackend::Raft(raft));
        let store = AppStore::new(backend.clone(), Arc::new(Metrics::new(1)));
        check_helpers(&store).await;
        backend.shutdown().await.expect("shut the store down");
    }

    async fn value(store: &AppStore, key: &str) -> Option<(Vec<u8>, i64)> {
        let kv = store.get(key).await.expect("read");
        kv.map(|kv| (kv.value, kv.lease))
    }

    async fn create_if_absent_writes_once(store: &AppStore) {
        assert!(store
            .create_if_absent(PutRequest::new("create", "one"))
            .await
            .expect("create"));
        assert!(!store
            .create_if_absent(PutRequest::new("create", "two"))
            .await
            .expect("second create"));
        assert_eq!(value(store, "create").await, Some((b"one".to_vec(), 0)));

        // A deleted key is absent again.
        store.delete_key("create").await.expect("delete");
        assert!(store
            .create_if_absent(PutRequest::new("create", "three"))
            .await
            .expect("create again"));
        assert_eq!(value(store, "create").await, Some((b"three".to_vec(), 0)));
    }

    async fn replace_if_unchanged_needs_the_revision_read(store: &AppStore) {
        store.put(PutRequest::new("replace", "one")).await.expect("put");
        let read = store.get("replace").await.expect("read").expect("present");

        // Someone else writes in between: the stale revision is refused and changes nothing.
        store.put(PutRequest::new("replace", "theirs")).await.expect("put");
        assert!(!store
            .replace_if_unchanged(read.mod_revision, PutRequest::new("replace", "mine"))
            .await
            .expect("stale replace"));
        assert_eq!(value(store, "replace").await, Some((b"theirs".to_vec(), 0)));

        let fresh = store.get("replace").await.expect("read").expect("present");
        assert!(store
            .replace_if_unchanged(fresh.mod_revision, PutRequest::new("replace", "mine"))
            .await
            .expect("replace"));
        assert_eq!(value(store, "replace").await, Some((b"mine".to_vec(), 0)));

        // A key that vanished is not replaced (not recreated either).
        let last = store.get("replace").await.expect("read").expect("present");
        store.delete_key("replace").await.expect("delete");
        assert!(!store
            .replace_if_unchanged(last.mod_revision, PutRequest::new("replace", "ghost"))
            .await
            .expect("replace of a deleted key"));
        assert_eq!(value(store, "replace").await, None);
    }

    async fn put_if_follows_the_read(store: &AppStore) {
        let absent = KeyExpectation::from_read(store.get("put-if").await.expect("read").as_ref());
        assert_eq!(absent, KeyExpectation::Absent);
        assert!(store
            .put_if(absent, PutRequest::new("put-if", "one"))
            .await
            .expect("put_if"));
        assert!(!store
            .put_if(absent, PutRequest::new("put-if", "two"))
            .await
            .expect("stale put_if"));

        let read = store.get("put-if").await.expect("read").expect("present");
        let unchanged = KeyExpectation::from_read(Some(&read));
        assert_eq!(unchanged, KeyExpectation::UnchangedSince(read.mod_revision));
        let lease = store.lease_grant(60).await.expect("lease").id;
        let put = PutRequest {
            lease,
            ..PutRequest::new("put-if", "leased")
        };
        assert!(store.put_if(unchanged, put).await.expect("put_if with a lease"));
        assert_eq!(value(store, "put-if").await, Some((b"leased".to_vec(), lease)));

        // A lease that no longer exists is an error, and nothing is written.
        store.lease_revoke(lease).await.expect("revoke");
        assert_eq!(value(store, "put-if").await, None, "revoking the lease removed its key");
        let put = PutRequest {
            lease,
            ..PutRequest::new("put-if", "orphan")
        };
        let error = store
            .create_if_absent(put)
            .await
            .expect_err("a revoked lease is refused");
        assert!(
            matches!(error, StoreError::LeaseNotFound(id) if id == lease),
            "{error:?}"
        );
        assert_eq!(value(store, "put-if").await, None);
    }

    async fn delete_if_unchanged_spares_a_rewritten_key(store: &AppStore) {
        store.put(PutRequest::new("delete", "one")).await.expect("put");
        let read = store.get("delete").await.expect("read").expect("present");
        store.put(PutRequest::new("delete", "rewritten")).await.expect("put");
        assert!(!store
            .delete_if_unchanged("delete", read.mod_revision)
            .await
            .expect("stale delete"));
        assert_eq!(value(store, "delete").await, Some((b"rewritten".to_vec(), 0)));

        let fresh = store.get("delete").await.expect("read").expect("present");
        assert!(store
            .delete_if_unchanged("delete", fresh.mod_revision)
            .await
            .expect("delete"));
        assert_eq!(value(store, "delete").await, None);
        assert!(!store
            .delete_if_unchanged("delete", fresh.mod_revision)
            .await
            .expect("delete again"));
    }

    #[tokio::test]
    async fn store_errors_pass_through() {
        let memory = MemoryStore::default();
        let store = AppStore::new(
            Arc::new(StoreBackend::Memory(memory.clone())),
            Arc::new(Metrics::new(1)),
        );
        memory.set_unavailable(true);
        for result in [
            store.create_if_absent(PutRequest::new("unavailable", "v")).await,
            store.replace_if_unchanged(1, PutRequest::new("unavailable", "v")).await,
            store.delete_if_unchanged("unavailable", 1).await,
        ] {
            assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
        }
        memory.set_unavailable(false);
        assert_eq!(value(&store, "unavailable").await, None);
    }
}
