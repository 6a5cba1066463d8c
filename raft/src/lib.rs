//! The embedded replicated store of kuboard: an openraft group among the replicas whose log lives
//! on a fsync'd WAL and whose state machine is an MVCC key-value store in sled.
//!
//! # Layout
//!
//! The public surface: [`RaftStore`] (with [`RaftStoreConfig`], [`OpenError`]) and
//! [`RaftStoreMetrics`]; [`command`], [`codec`] and [`framing`] for other transports of the
//! product.
//!
//! - `raft_store`: [`RaftStore`], the `kuboard_storage::Store` implementation: open/shutdown,
//!   linearizable reads, writes, leases and membership operations as seen by callers, status.
//! - `open`: [`RaftStoreConfig`], [`OpenError`] and the steps of opening a member's files (the
//!   state machine rebuilt from the latest snapshot when sled finds it damaged).
//! - `member`: `MemberState`, what this member holds while it runs, shared by everything below;
//!   it imports none of them.
//! - `member_messages`: the application requests members send each other (`LeaderOp` and its
//!   answers, the formation probe).
//! - `forwarding`: `Forwarder`, how any member gets a `LeaderOp` performed by the leader of the
//!   moment (locally or forwarded), with the rules for retrying across a leader change.
//! - `leader`: `Leader`, what the leader does for them: proposals (every Raft write), read indexes,
//!   lease grants, renewals and revocations, and the lease clock.
//! - `membership`: `MembershipChanges`, the leader adding (learner first, then voter) and removing
//!   members.
//! - `formation`: how fresh members form one group, and the admission gate that keeps a wiped
//!   member from harming it.
//! - `app_handler`: `AppHandler`, the peer listener's side of the application requests.
//! - [`command`]: the records carried by the log and the state machine's answers.
//! - `mvcc`: the MVCC key-value state machine in sled (no openraft types).
//! - [`codec`]: bincode 2 encoding, every record versioned, every decode size-limited.
//! - [`framing`]: length-prefixed frames of codec records, shared by every transport.
//! - `types`: the openraft type configuration (private: openraft types stay in this crate).
//! - `log_store`: openraft's log storage on the raft-log WAL (`data_dir/raft/wal`).
//! - `wal_repair`: the check of the WAL on open: a torn last record is cut off, damage anywhere
//!   else refuses the start.
//! - `state_machine`: openraft's state machine over `mvcc`, and the snapshot files
//!   (`data_dir/raft/snapshots`).
//! - `peer`: the authenticated peer transport (`KUBOARD_RAFT_PORT`): Raft RPCs, streamed
//!   snapshots and application requests between members, openraft's only network factory, and
//!   the test-only switch that blocks chosen peers.
//! - `metrics`: [`RaftStoreMetrics`], plain numbers for `/metrics`.
//!
//! Architecture Invariant: openraft types do not leak out of this crate.

mod app_handler;
pub mod codec;
pub mod command;
mod formation;
mod forwarding;
pub mod framing;
#[doc(hidden)]
pub mod fuzzing;
mod leader;
mod log_store;
mod member;
mod member_messages;
mod membership;
mod metrics;
pub(crate) mod mvcc;
mod open;
pub(crate) mod peer;
mod raft_store;
mod state_machine;
#[doc(hidden)]
pub mod testing;
mod types;
mod wal_format;
mod wal_repair;

pub use metrics::RaftStoreMetrics;
pub use open::{OpenError, RaftStoreConfig};
pub use raft_store::RaftStore;
