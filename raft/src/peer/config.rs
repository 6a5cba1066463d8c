//! [`PeerConfig`]: the settings of the peer transport; [`ClusterSecret`], the secret every member
//! proves it knows; [`PeerAddress`], where a member's listener is read from openraft's node record.

use std::fmt;
use std::time::Duration;

/// The shared secret every replica of a group holds (`KUBOARD_CLUSTER_SECRET`). Its `Debug` output
/// is redacted so that it cannot reach a log by accident.
#[derive(Clone)]
pub struct ClusterSecret(Vec<u8>);

/// The secret was empty: an empty key would let anyone who knows the protocol pass the handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cluster secret must not be empty")]
pub struct EmptySecret;

impl ClusterSecret {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, EmptySecret> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(EmptySecret);
        }
        Ok(Self(secret))
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

/// Settings of the peer transport, shared by the client and the server side of one replica.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// This replica's node id; sent in the handshake and bound into its proof.
    pub node_id: u64,
    /// Name of the group; both ends must agree, so that two groups sharing a secret by mistake
    /// still refuse each other.
    pub cluster: String,
    pub secret: ClusterSecret,
    /// Time a new connection has to complete the handshake, on either side.
    pub handshake_timeout: Duration,
    /// Time to establish the TCP connection to a peer (bounded further by the RPC's own timeout).
    pub connect_timeout: Duration,
    /// Largest frame accepted from an authenticated peer; a larger one closes the connection.
    pub max_frame_bytes: usize,
    /// Largest snapshot chunk sent; openraft's `snapshot_max_chunk_size` may ask for less.
    pub snapshot_chunk_bytes: usize,
    /// Largest snapshot a receiver accepts in total.
    pub max_snapshot_bytes: u64,
    /// Time the receiver may take to install a completely received snapshot. openraft's
    /// `install_snapshot_timeout` is meant for one chunk and is far too short for installing.
    pub snapshot_install_timeout: Duration,
    /// Requests one connection may have in progress on the server; more wait (backpressure).
    pub max_inflight_per_connection: usize,
    /// Authenticated connections the server holds at once.
    pub max_connections: usize,
    /// Connections still in their handshake that the server holds at once, from all sources.
    pub max_handshakes: usize,
    /// Connections still in their handshake that the server holds at once from one source address;
    /// more from that address are closed at once. A member dials at most one connection per lane.
    pub max_handshakes_per_source: usize,
    /// First delay before redialling a peer that could not be reached; doubles up to
    /// `reconnect_backoff_max`.
    pub reconnect_backoff_min: Duration,
    pub reconnect_backoff_max: Duration,
}

impl PeerConfig {
    /// Settings with defaults suited to replicas on one LAN.
    pub fn new(node_id: u64, cluster: impl Into<String>, secret: ClusterSecret) -> Self {
        Self {
            node_id,
            cluster: cluster.into(),
            secret,
            handshake_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(2),
            max_frame_bytes: crate::codec::DEFAULT_DECODE_LIMIT,
            snapshot_chunk_bytes: 1024 * 1024,
            max_snapshot_bytes: 16 * 1024 * 1024 * 1024,
            snapshot_install_timeout: Duration::from_secs(60),
            max_inflight_per_connection: 256,
            max_connections: 256,
            max_handshakes: 64,
            max_handshakes_per_source: 8,
            reconnect_backoff_min: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
        }
    }
}

/// Where a member's peer listener is reached, read from openraft's node record of the member.
pub trait PeerAddress {
    /// `host:port` of the member's peer listener.
    fn peer_address(&self) -> String;
}

impl PeerAddress for crate::types::PeerNode {
    fn peer_address(&self) -> String {
        self.addr.clone()
    }
}

impl PeerAddress for openraft::BasicNode {
    fn peer_address(&self) -> String {
        self.addr.clone()
    }
}
