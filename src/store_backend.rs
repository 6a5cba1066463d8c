//! The composition root of the store: a closed set of backends behind the `Store` contract.
//!
//! # Layout
//!
//! - [`StoreBackend`]: the embedded Raft member or the external etcd, chosen by the settings.
//! - [`etcd_backend`]: the external etcd, connected in the background so that a replica never hangs
//!   at start on an unreachable etcd.

pub mod etcd_backend;

use kuboard_raft::{OpenError, RaftStore, RaftStoreConfig};
use kuboard_storage::*;

use crate::config::{RaftConfig, StoreSelection};
use etcd_backend::EtcdBackend;

/// The store backend this replica runs.
pub enum StoreBackend {
    /// A member of the embedded Raft group.
    Raft(RaftStore),
    /// A client of an external etcd cluster, confined to the key prefix.
    Etcd(EtcdBackend),
    /// An in-process store for the server's own unit tests.
    #[cfg(test)]
    Memory(crate::memory_store::MemoryStore),
}

/// Why the selected backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum BackendOpenError {
    #[error(transparent)]
    Raft(#[from] OpenError),
}

impl BackendOpenError {
    /// True when the operator's settings (not the machine) are at fault: the process exits with 2.
    pub fn is_configuration_error(&self) -> bool {
        matches!(
            self,
            BackendOpenError::Raft(OpenError::Config(_)) | BackendOpenError::Raft(OpenError::DataDir { .. })
        )
    }
}

impl StoreBackend {
    /// Opens the selected backend. The embedded store is open (and, alone, elected) on return; the
    /// external etcd is connected in the background, so this never waits for the network.
    pub async fn open(
        selection: &StoreSelection,
        data_dir: &std::path::Path,
    ) -> Result<StoreBackend, BackendOpenError> {
        match selection {
            StoreSelection::Raft(raft) => Ok(StoreBackend::Raft(
                RaftStore::open(raft_store_config(raft, data_dir)).await?,
            )),
            StoreSelection::Etcd(etcd) => Ok(StoreBackend::Etcd(EtcdBackend::start(etcd))),
        }
    }

    pub fn kind(&self) -> BackendKind {
        match self {
            StoreBackend::Raft(_) => BackendKind::Raft,
            StoreBackend::Etcd(_) => BackendKind::Etcd,
            #[cfg(test)]
            StoreBackend::Memory(_) => BackendKind::Raft,
        }
    }

    /// Why the store stopped by itself and cannot go on in this process (the embedded member's log
    /// or state machine could not be written), or `None`. An external etcd never stops this way:
    /// its outages are waited out.
    pub fn failure(&self) -> Option<String> {
        match self {
            StoreBackend::Raft(store) => store.failure(),
            StoreBackend::Etcd(_) => None,
            #[cfg(test)]
            StoreBackend::Memory(_) => None,
        }
    }

    /// Resolves when the store stops by itself (see [`StoreBackend::failure`]), with the reason.
    pub async fn stopped_by_failure(&self) -> String {
        match self {
            StoreBackend::Raft(store) => store.stopped_by_failure().await,
            _ => std::future::pending().await,
        }
    }

    /// Finishes in-flight writes and flushes everything to disk.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        match self {
            StoreBackend::Raft(store) => store.shutdown().await,
            StoreBackend::Etcd(etcd) => {
                etcd.shutdown();
                Ok(())
            }
            #[cfg(test)]
            StoreBackend::Memory(_) => Ok(()),
        }
    }
}

pub fn raft_store_config(raft: &RaftConfig, data_dir: &std::path::Path) -> RaftStoreConfig {
    RaftStoreConfig {
        node_id: raft.node_id,
        data_dir: data_dir.to_path_buf(),
        peers: raft.peers.clone(),
        peer_listen_addr: raft.listen_addr,
        cluster_secret: raft.cluster_secret.as_ref().map(|secret| secret.expose().to_string()),
        heartbeat_ms: raft.heartbeat_ms,
        election_timeout_ms: raft.election_timeout_ms,
        snapshot_threshold: raft.snapshot_threshold,
    }
}

/// Calls the same method on whichever backend this is.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            StoreBackend::Raft($store) => $call,
            StoreBackend::Etcd(etcd) => {
                let $store = etcd.store()?;
                $call
            }
            #[cfg(test)]
            StoreBackend::Memory($store) => $call,
        }
    };
}

impl Store for StoreBackend {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError> {
        dispatch!(self, store => store.range(request).await)
    }
    async fn put(&self, request: PutRequest) -> Result<PutResponse, StoreError> {
        dispatch!(self, store => store.put(request).await)
    }
    async fn delete_range(&self, request: DeleteRangeRequest) -> Result<DeleteRangeResponse, StoreError> {
        dispatch!(self, store => store.delete_range(request).await)
    }
    async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, StoreError> {
        dispatch!(self, store => store.txn(request).await)
    }
    async fn compact(&self, request: CompactRequest) -> Result<CompactResponse, StoreError> {
        dispatch!(self, store => store.compact(request).await)
    }
    async fn watch(&self, request: WatchRequest) -> Result<WatchStream, StoreError> {
        dispatch!(self, store => store.watch(request).await)
    }
    async fn lease_grant(&self, request: LeaseGrantRequest) -> Result<LeaseGrantResponse, StoreError> {
        dispatch!(self, store => store.lease_grant(request).await)
    }
    async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, StoreError> {
        dispatch!(self, store => store.lease_revoke(id).await)
    }
    async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse, StoreError> {
        dispatch!(self, store => store.lease_keep_alive(id).await)
    }
    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseTimeToLiveResponse, StoreError> {
        dispatch!(self, store => store.lease_time_to_live(id, with_keys).await)
    }
    async fn lease_leases(&self) -> Result<LeaseLeasesResponse, StoreError> {
        dispatch!(self, store => store.lease_leases().await)
    }
    async fn status(&self) -> Result<StoreStatus, StoreError> {
        dispatch!(self, store => store.status().await)
    }
}
