//! The systems under test: the embedded group (`kuboard serve` replicas with their etcd v3 API) or a
//! real etcd 3.4 cluster, one member per host of a [`Network`], driven by process signals.
//!
//! Both serve the etcd v3 API on port [`CLIENT_PORT`] of their host's address, so one client drives
//! either.

mod agent_site;
mod audit_db;
mod cluster;
mod http;
mod member_layout;

pub use agent_site::{AGENT_CLUSTER, AGENT_PORT};
pub use audit_db::AUDIT_DB_PORT;
pub use cluster::{
    AuditPolicyChoice, Cluster, ClusterFeatures, ClusterOptions, SystemKind, ADMIN_PASSWORD, CLIENT_PORT, WEB_PORT,
};
