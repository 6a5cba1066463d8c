//! [`RaftStore`]: the embedded group behind the `Store` contract.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use kuboard_storage::*;

/// Everything needed to open this replica's member of the group.
#[derive(Debug, Clone)]
pub struct RaftStoreConfig {
    /// This member's id (>= 1).
    pub node_id: u64,
    /// Root of the store's files (the store uses `data_dir/raft/...`).
    pub data_dir: PathBuf,
    /// Every member of the initial group, this one included: id -> `host:port` of its peer listener.
    /// A single entry means a one-member group.
    pub peers: BTreeMap<u64, String>,
    /// Where this member's peer listener binds.
    pub peer_listen_addr: SocketAddr,
    /// Shared secret authenticating peers; required with more than one peer.
    pub cluster_secret: Option<String>,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    /// Build a snapshot (and allow purging the log behind it) every this many applied entries.
    pub snapshot_threshold: u64,
}

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory cannot be created, locked, read or written.
    #[error("data directory {path}: {message}")]
    DataDir { path: PathBuf, message: String },
    /// The files on disk are damaged beyond automatic repair.
    #[error("corrupt store data in {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// The configuration contradicts itself or what is on disk.
    #[error("invalid store configuration: {0}")]
    Config(String),
    #[error("open raft store: {0}")]
    Other(String),
}

/// A handle on this replica's member of the embedded group. Cheap to clone.
#[derive(Clone)]
pub struct RaftStore {}

impl RaftStore {
    /// Open (or create) this member's store and start taking part in the group. A fresh one-member
    /// group initialises itself; a restart never re-initialises.
    pub async fn open(config: RaftStoreConfig) -> Result<RaftStore, OpenError> {
        let _ = config;
        todo!("RaftStore::open")
    }

    /// Stop taking part in the group: finish in-flight writes, flush the log and the state
    /// machine, close the peer listener.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        todo!("RaftStore::shutdown")
    }
}

impl Store for RaftStore {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError> {
        let _ = request;
        todo!()
    }
    async fn put(&self, request: PutRequest) -> Result<PutResponse, StoreError> {
        let _ = request;
        todo!()
    }
    async fn delete_range(&self, request: DeleteRangeRequest) -> Result<DeleteRangeResponse, StoreError> {
        let _ = request;
        todo!()
    }
    async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, StoreError> {
        let _ = request;
        todo!()
    }
    async fn compact(&self, request: CompactRequest) -> Result<CompactResponse, StoreError> {
        let _ = request;
        todo!()
    }
    async fn watch(&self, request: WatchRequest) -> Result<WatchStream, StoreError> {
        let _ = request;
        todo!()
    }
    async fn lease_grant(&self, request: LeaseGrantRequest) -> Result<LeaseGrantResponse, StoreError> {
        let _ = request;
        todo!()
    }
    async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, StoreError> {
        let _ = id;
        todo!()
    }
    async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse, StoreError> {
        let _ = id;
        todo!()
    }
    async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseTimeToLiveResponse, StoreError> {
        let _ = (id, with_keys);
        todo!()
    }
    async fn lease_leases(&self) -> Result<LeaseLeasesResponse, StoreError> {
        todo!()
    }
    async fn status(&self) -> Result<StoreStatus, StoreError> {
        todo!()
    }
}
