//! The peer transport of the multi-member group: authenticated, multiplexed RPC over plain TCP
//! between the replicas' peer ports (`KUBOARD_RAFT_PORT`).
//!
//! # Layout
//!
//! - `config`: [`PeerConfig`], the transport's settings, and [`ClusterSecret`].
//! - framing: length-prefixed frames with a bounded size, the payload of every frame a codec
//!   record, in the crate's public [`crate::framing`] (shared with other transports).
//! - `wire`: the records exchanged on a connection (handshake messages, request and response
//!   envelopes, snapshot chunks).
//! - `handshake`: the mutual challenge-response proof of `KUBOARD_CLUSTER_SECRET` run on every new
//!   connection before anything else is read; it yields the connection's frame keys.
//! - `sealing`: every frame after the handshake is sealed (AES-256-GCM, keys of the connection
//!   derived from the secret and both handshake nonces, a counter nonce per direction), so a frame
//!   read, altered, injected, replayed or reordered on the path is useless or closes the connection.
//! - `connection`: one authenticated client connection multiplexing concurrent requests by id.
//! - `client`: [`PeerClient`], the per-peer connection pool with reconnect backoff and the
//!   application request path ([`PeerClient::app_request`]).
//! - `network`: [`PeerNetworkFactory`] and [`PeerConnection`], openraft's network traits on top
//!   of [`PeerClient`]: the group's only network factory.
//! - `server`: [`PeerServer`], the listener that authenticates peers and dispatches their requests
//!   to a [`RaftRpcHandler`] (implemented for `openraft::Raft`) and an [`AppRequestHandler`].
//! - `snapshot`: how snapshot data is streamed ([`SnapshotSend`] on the sender,
//!   [`SnapshotReceive`] on the receiver).
//! - `blocked_peers`: [`BlockedPeers`], the test-only switch that drops traffic to chosen peers.
//! - `stats`: [`PeerStats`], the counters an operator graphs (refused peers, broken frames, failed
//!   RPCs).
//!
//! Architecture Invariant: nothing is read from a connection beyond a small handshake frame until
//! the peer has proven that it knows the cluster secret, and the secret itself never leaves the
//! process (it is neither sent nor logged). After the handshake no frame is acted on unless it
//! opens with the connection's key as the next frame of its direction.
//!
//! Connections still in their handshake have their own budget, per source address and in total
//! (`max_handshakes_per_source`, `max_handshakes`), apart from the budget of authenticated
//! connections (`max_connections`): a source that opens connections and never finishes their
//! handshake cannot keep the members out.

// The raft core wires the transport into the group; until every part is used from there, the
// crate build would flag the parts only the tests reach.
#![allow(dead_code, unused_imports)]

mod blocked_peers;
mod client;
mod config;
mod connection;
pub(crate) mod fuzz_targets;
mod handshake;
mod network;
mod sealing;
mod server;
mod snapshot;
mod stats;
mod wire;

#[cfg(test)]
mod guard_tests;
#[cfg(test)]
mod tests;

pub use blocked_peers::BlockedPeers;
pub use client::{PeerClient, PeerError};
pub use config::{ClusterSecret, EmptySecret, PeerAddress, PeerConfig};
pub use network::{PeerConnection, PeerNetworkFactory};
pub use server::{AppRequestHandler, NoAppRequests, PeerServer, PeerServerHandle, RaftRpcHandler};
pub use snapshot::{FileSnapshotReceiver, InMemorySnapshotReceiver, SnapshotReceive, SnapshotSend};
pub use stats::{PeerCounters, PeerStats};
pub use wire::RemoteFailure;
