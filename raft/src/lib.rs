//! The embedded replicated store of kuboard: an openraft group among the replicas whose log lives
//! on a fsync'd WAL and whose state machine is an MVCC key-value store in sled.
//!
//! # Layout
//!
//! - [`command`]: the records carried by the log and the state machine's answers.
//! - `mvcc`: the MVCC key-value state machine in sled (no openraft types).
//! - `codec`: bincode 2 encoding, every record versioned, every decode size-limited.
//! - `types`: the openraft type configuration (private: openraft types stay in this crate).
//! - `log_store`: openraft's log storage on the raft-log WAL (`data_dir/raft/wal`).
//! - `state_machine`: openraft's state machine over `mvcc`, and the snapshot files
//!   (`data_dir/raft/snapshots`).
//! - `network`: the peer clients openraft uses (the transport itself is not wired in yet).
//! - `raft_store`: [`RaftStore`], the `kuboard_storage::Store` implementation: open/shutdown,
//!   writes through the log, ReadIndex reads, the leader's lease clock, status.
//!
//! Architecture Invariant: openraft types do not leak out of this crate.

pub mod codec;
pub mod command;
mod log_store;
pub(crate) mod mvcc;
mod network;
pub(crate) mod peer;
mod raft_store;
mod state_machine;
#[doc(hidden)]
pub mod testing;
mod types;

pub use raft_store::{OpenError, RaftStore, RaftStoreConfig};
