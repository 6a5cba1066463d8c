//! Test helpers shared by this crate's tests and other crates' tests (feature `test-util`).
//!
//! # Layout
//!
//! - [`EtcdCluster`]: a real etcd 3.4 cluster of N members on loopback ports in a temporary directory.

mod etcd_cluster;

pub use etcd_cluster::{EtcdClientTls, EtcdCluster, EtcdClusterOptions, ETCD_BINARY};
