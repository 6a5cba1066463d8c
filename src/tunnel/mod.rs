//! The agent tunnel's transport, shared by both of its ends (`crate::agent`) and by the apiserver
//! connector (`crate::kube::endpoint_connector`), which dials through it as it dials TCP + TLS.
//!
//! - [`protocol`]: the handshake frames (over `kuboard_raft::framing`) and the token hash.
//! - [`tunnel_stream`]: one HTTP/2 stream as a byte stream (`AsyncRead + AsyncWrite`), with
//!   per-stream flow control.
//! - [`hub`]: this replica's live tunnels, by cluster; what the apiserver connector dials through.
//! - [`presence`]: which replica holds tunnels of which cluster (in the store, under leases).
//! - [`peer`]: forwarding a dial through a peer replica that holds a tunnel, authenticated with
//!   the group's key.

pub mod hub;
pub mod peer;
pub mod presence;
pub mod protocol;
pub mod tunnel_stream;
