//! The systems under test: the embedded group (`kuboard serve` replicas with their etcd v3 API) or a
//! real etcd 3.4 cluster, one member per host of a [`Network`], driven by process signals.
//!
//! Both serve the etcd v3 API on port [`CLIENT_PORT`] of their host's address, so one client drives
//! either.

mod cluster;

pub use cluster::{Cluster, ClusterOptions, SystemKind, CLIENT_PORT};
