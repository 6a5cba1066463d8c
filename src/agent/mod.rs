//! The agent tunnel: `kuboard agent` runs inside a cluster whose apiserver the replicas cannot reach
//! and keeps one tunnel to every replica's agent port; a replica opens one multiplexed stream per
//! apiserver connection through it.
//!
//! The tunnel itself (handshake frames, streams, the hub of live tunnels that the apiserver
//! connector dials through) is in [`crate::tunnel`], which `kube` uses; this folder holds the two
//! ends that use `kube` in turn:
//!
//! - [`listener`]: the agent server on `KUBOARD_AGENT_SERVER_TCP_PORT`.
//! - [`agent_main`]: the `kuboard agent` process; [`agent_health`]: its health and metrics endpoints.

pub mod agent_health;
pub mod agent_main;
pub mod listener;
