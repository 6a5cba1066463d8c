//! The store's administration over HTTP: the members of the embedded Raft group and consistent
//! snapshots, served by every replica to administrators (the operator commands of `crate::admin`
//! call these routes).
//!
//! # Layout
//!
//! - [`members_routes`]: `/kuboard-api/system/members`, listing and changing the members of the
//!   embedded Raft group on any replica; its router and OpenAPI paths.
//! - [`snapshot_routes`]: `GET /kuboard-api/system/snapshot`; its router and OpenAPI path.
//! - [`snapshot_file`]: the snapshot file format (versioned, checksummed) and its atomic write.
//! - [`snapshot_store`]: taking a consistent snapshot of any store, restoring into an empty one.
//! - [`member_spec`]: member ids and peer addresses as operators write them (`4=10.0.0.4:10082`).
//!
//! Architecture Invariant: snapshots go through the `Store` contract only, so the embedded store and
//! an external etcd are saved and restored with one meaning.
//!
//! Architecture Invariant: membership changes are performed by the store on the leader; a refused
//! request changes nothing.

pub mod member_spec;
pub mod members_routes;
pub mod snapshot_file;
pub mod snapshot_routes;
pub mod snapshot_store;
