//! Counters of the peer transport, shared by every task of one client or server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Live counters of one side (client or server) of the peer transport. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct PeerStats {
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    connections_accepted: AtomicU64,
    connections_authenticated: AtomicU64,
    connections_dialed: AtomicU64,
    auth_failures: AtomicU64,
    handshake_failures: AtomicU64,
    handshakes_over_budget: AtomicU64,
    frame_errors: AtomicU64,
    forged_frames: AtomicU64,
    rpc_errors: AtomicU64,
    requests_served: AtomicU64,
    snapshots_received: AtomicU64,
}

/// A reading of [`PeerStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// TCP connections the server accepted (before the handshake).
    pub connections_accepted: u64,
    /// Connections that completed the handshake, on either side.
    pub connections_authenticated: u64,
    /// TCP connections the client opened.
    pub connections_dialed: u64,
    /// Handshakes refused because a proof of the cluster secret was wrong or missing.
    pub auth_failures: u64,
    /// Handshakes that failed for another reason: deadline, malformed message, wrong cluster,
    /// wrong node, protocol version.
    pub handshake_failures: u64,
    /// Connections closed on arrival because their source (or all sources together) already had
    /// as many handshakes in progress as the budget allows.
    pub handshakes_over_budget: u64,
    /// Connections closed because a frame was oversized or could not be decoded.
    pub frame_errors: u64,
    /// Frames after the handshake that failed their integrity check: altered, injected, replayed
    /// or reordered on the path. Each closes its connection; each is counted in `frame_errors` too.
    pub forged_frames: u64,
    /// Requests that failed: on the client every failed RPC, on the server every request answered
    /// with an error.
    pub rpc_errors: u64,
    /// Requests the server answered.
    pub requests_served: u64,
    /// Snapshots the server received completely and handed to the raft core.
    pub snapshots_received: u64,
}

impl PeerStats {
    pub fn counters(&self) -> PeerCounters {
        let c = &self.counters;
        PeerCounters {
            connections_accepted: c.connections_accepted.load(Ordering::Relaxed),
            connections_authenticated: c.connections_authenticated.load(Ordering::Relaxed),
            connections_dialed: c.connections_dialed.load(Ordering::Relaxed),
            auth_failures: c.auth_failures.load(Ordering::Relaxed),
            handshake_failures: c.handshake_failures.load(Ordering::Relaxed),
            handshakes_over_budget: c.handshakes_over_budget.load(Ordering::Relaxed),
            frame_errors: c.frame_errors.load(Ordering::Relaxed),
            forged_frames: c.forged_frames.load(Ordering::Relaxed),
            rpc_errors: c.rpc_errors.load(Ordering::Relaxed),
            requests_served: c.requests_served.load(Ordering::Relaxed),
            snapshots_received: c.snapshots_received.load(Ordering::Relaxed),
        }
    }

    pub(super) fn connection_accepted(&self) {
        self.counters.connections_accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn connection_authenticated(&self) {
        self.counters.connections_authenticated.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn connection_dialed(&self) {
        self.counters.connections_dialed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn auth_failure(&self) {
        self.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn handshake_failure(&self) {
        self.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn handshake_over_budget(&self) {
        self.counters.handshakes_over_budget.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn frame_error(&self) {
        self.counters.frame_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn forged_frame(&self) {
        self.counters.forged_frames.fetch_add(1, Ordering::Relaxed);
        self.counters.frame_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn rpc_error(&self) {
        self.counters.rpc_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn request_served(&self) {
        self.counters.requests_served.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot_received(&self) {
        self.counters.snapshots_received.fetch_add(1, Ordering::Relaxed);
    }
}
