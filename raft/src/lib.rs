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
//! - `peer`: the authenticated peer transport (`KUBOARD_RAFT_PORT`): Raft RPCs, streamed
//!   snapshots and application requests between members.
//! - `network`: openraft's view of the peer transport, with a fault switch for tests.
//! - `forwarding`: operations only the leader performs and how any member gets them performed
//!   (locally or forwarded), with the rules for retrying across a leader change.
//! - `leader`: what the leader does for them: proposals, lease deadlines, read indexes,
//!   membership changes.
//! - `bootstrap`: how fresh members form one group, and why a wiped member cannot form another.
//! - `metrics`: [`RaftStoreMetrics`], plain numbers for `/metrics`.
//! - `raft_store`: [`RaftStore`], the `kuboard_storage::Store` implementation: open/shutdown,
//!   the peer listener, linearizable reads, the leader's lease clock, status, membership
//!   operations.
//!
//! Architecture Invariant: openraft types do not leak out of this crate.

mod bootstrap;
pub mod codec;
pub mod command;
mod forwarding;
mod leader;
mod log_store;
mod metrics;
pub(crate) mod mvcc;
mod network;
pub(crate) mod peer;
mod raft_store;
mod state_machine;
#[doc(hidden)]
pub mod testing;
mod types;

pub use metrics::RaftStoreMetrics;
pub use raft_store::{OpenError, RaftStore, RaftStoreConfig};
