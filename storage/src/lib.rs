//! The store contract of kuboard: an etcd-v3-shaped key-value store shared by all replicas.
//!
//! # Layout
//!
//! - [`types`]: requests, responses and records, one meaning for every backend.
//! - [`error`]: [`StoreError`], the cases a caller must tell apart.
//! - [`store`]: the [`Store`] trait and its correctness rules.
//! - [`keys`]: helpers for key ranges (prefix ends, etcd's range conventions).
//! - [`conformance`]: the backend-agnostic suite every backend must pass.
//! - [`etcd`]: [`etcd::EtcdStore`], the backend on an external etcd cluster, confined to a key prefix.
//! - `testing` (feature `test-util`): a real etcd cluster launcher for tests.
//!
//! Architecture Invariant: this crate knows nothing of Raft, HTTP or JSON.

pub mod conformance;
pub mod error;
pub mod etcd;
pub mod keys;
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod types;

pub use error::StoreError;
pub use store::{Store, WatchStream};
pub use types::*;
