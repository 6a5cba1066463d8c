//! The embedded replicated store of kuboard: an openraft group among the replicas whose log lives
//! on a fsync'd WAL and whose state machine is an MVCC key-value store in sled.
//!
//! # Layout
//!
//! - [`command`]: the records carried by the log and the state machine's answers.
//! - `mvcc`: the MVCC key-value state machine in sled (no openraft types).
//! - `codec`: bincode 2 encoding, every record versioned, every decode size-limited.
//! - `log_store`: openraft's log storage on the raft-log WAL.
//! - `raft_store`: [`RaftStore`], the `kuboard_storage::Store` implementation.
//!
//! Architecture Invariant: openraft types do not leak out of this crate.

pub mod codec;
pub mod command;
mod log_store;
mod raft_store;
mod types;

pub use raft_store::{OpenError, RaftStore, RaftStoreConfig};
