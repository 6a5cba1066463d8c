//! The [`Store`](crate::Store) on an external etcd v3 cluster (etcd 3.4 or later).
//!
//! # Layout
//!
//! - [`EtcdStoreConfig`], [`EtcdConnectError`]: endpoints, TLS, auth, key prefix, timeouts.
//! - [`EtcdStore`]: the store; every request is confined to the key prefix.
//! - `prefix`: the translation of relative keys and ranges to absolute ones.
//! - `error_class`: etcd-client's errors sorted into the cases callers tell apart.
//! - `connect_options`: the configuration checked, its TLS files read.
//!
//! # What the prefix does not cover
//!
//! etcd has no namespaces, so three things stay cluster-wide:
//!
//! - **Revisions** are etcd's global revisions: other users of a shared etcd bump them too.
//! - **Compaction** is global: [`Store::compact`](crate::Store::compact) compacts the whole etcd
//!   history. `EtcdStore` compacts only when asked, never on its own; on an etcd shared with
//!   Kubernetes the apiserver already compacts (every 5 minutes by default) and kuboard should leave
//!   compaction to it.
//! - **Leases** are cluster-wide ids. `lease_leases` lists every lease of the cluster, and revoking a
//!   lease deletes every key attached to it; kuboard only attaches its own keys to its own leases.
//!   `lease_time_to_live` lists only the attached keys inside the prefix.

mod config;
mod connect_options;
mod error_class;
mod prefix;
mod store;

pub use config::{EtcdConnectError, EtcdStoreConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX, DEFAULT_REQUEST_TIMEOUT};
pub use store::EtcdStore;
