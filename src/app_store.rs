//! [`AppStore`]: how the server talks to its store. Every call is timed into the store-latency
//! histogram and bounded by a deadline, so a stuck store turns into a 503 instead of a hung request.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kuboard_storage::*;

use crate::metrics::Metrics;
use crate::store_backend::StoreBackend;

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
