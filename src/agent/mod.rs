//! The agent tunnel: `kuboard agent` runs inside a cluster whose apiserver the replicas cannot reach
//! and keeps one tunnel to every replica's agent port; a replica opens one multiplexed stream per
//! apiserver connection through it.
//!
//! - [`protocol`]: the handshake frames (over `kuboard_raft::framing`) and the token hash.
//! - [`tunnel_stream`]: one HTTP/2 stream as a byte stream (`AsyncRead + AsyncWrite`), with
//!   per-stream flow control.
//! - [`hub`]: this replica's live tunnels, by cluster; what the apiserver connector dials through.
//! - [`listener`]: the agent server on `KUBOARD_AGENT_SERVER_TCP_PORT`.
//! - [`agent_main`]: the `kuboard agent` process; [`agent_health`]: its health and metrics endpoints.

pub mod agent_health;
pub mod agent_main;
pub mod hub;
pub mod listener;
pub mod protocol;
pub mod tunnel_stream;
