//! The records exchanged on a peer connection. Raft messages travel as nested codec records
//! (`Vec<u8>`) so that the connection layer does not depend on openraft's type configuration; the
//! typed side (`network`, `server`) encodes and decodes them.

use serde::{Deserialize, Serialize};

/// Version of the peer protocol; both ends must speak the same one. Version 2 seals every frame
/// after the handshake (`sealing`); a version 1 member is refused with a clear reason.
pub(super) const PROTOCOL_VERSION: u16 = 2;

/// Bytes of each side's handshake nonce.
pub(super) const NONCE_BYTES: usize = 32;

/// Largest handshake frame: nothing bigger is read from a peer that has not proven the secret.
pub(super) const HANDSHAKE_MAX_FRAME: usize = 1024;

/// First message of a connection, from the dialling side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ClientHello {
    pub(super) protocol: u16,
    pub(super) cluster: String,
    /// Node id of the dialling replica.
    pub(super) node_id: u64,
    /// Node id the dialling replica means to reach.
    pub(super) target: u64,
    pub(super) nonce: [u8; NONCE_BYTES],
}

/// The server's answer to [`ClientHello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum ServerHello {
    /// The server proves the secret first; the client only proves it to a server that did.
    Challenge {
        node_id: u64,
        nonce: [u8; NONCE_BYTES],
        proof: Vec<u8>,
    },
    Refused(Refusal),
}

/// The client's answer to the server's challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum ClientReply {
    /// The client's proof of the secret. A `Vec` rather than an array so that a missing or short
    /// proof decodes and is refused as an authentication failure.
    Proof(Vec<u8>),
    /// The client refuses the server (its proof was wrong), so that both ends count the failure.
    Refused(Refusal),
}

/// The server's verdict on [`ClientProof`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Verdict {
    Accepted,
    Refused(Refusal),
}

/// Why a server refused a connection; it carries nothing secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub(super) enum Refusal {
    #[error("protocol version {theirs} is not supported (this build speaks {ours})")]
    Protocol { ours: u16, theirs: u16 },
    #[error("the peer belongs to another cluster")]
    Cluster,
    #[error("the peer is node {actual}, not node {expected}")]
    WrongNode { expected: u64, actual: u64 },
    #[error("authentication failed")]
    Auth,
}

/// A request from an authenticated client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct RequestFrame {
    /// Chosen by the client, unique on the connection; the response carries it back.
    pub(super) id: u64,
    pub(super) body: RequestBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum RequestBody {
    /// An encoded `AppendEntriesRequest`.
    AppendEntries(Vec<u8>),
    /// An encoded `VoteRequest`.
    Vote(Vec<u8>),
    /// An encoded `VoteRequest` asking whether the vote would be granted.
    PreVote(Vec<u8>),
    SnapshotChunk(SnapshotChunk),
    /// Opaque bytes for the server's application handler.
    App(Vec<u8>),
}

impl RequestBody {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            RequestBody::AppendEntries(_) => "append_entries",
            RequestBody::Vote(_) => "vote",
            RequestBody::PreVote(_) => "pre_vote",
            RequestBody::SnapshotChunk(_) => "snapshot_chunk",
            RequestBody::App(_) => "app",
        }
    }
}

/// One piece of a snapshot being streamed. Chunks of one transfer arrive in order, each acknowledged
/// before the next is sent; a chunk at offset 0 starts a new transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SnapshotChunk {
    /// Chosen by the sender for each transfer so that chunks of an abandoned one are recognised.
    pub(super) transfer: u64,
    pub(super) offset: u64,
    pub(super) data: Vec<u8>,
    /// On the last chunk: the encoded vote of the sender and the snapshot's meta, which the receiver
    /// needs to install it.
    pub(super) finish: Option<Vec<u8>>,
}

/// The answer to a [`RequestFrame`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ResponseFrame {
    pub(super) id: u64,
    /// An encoded typed response, or the application handler's bytes.
    pub(super) body: Result<Vec<u8>, RemoteFailure>,
}

/// Why a server could not answer a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteFailure {
    /// The server's raft core has stopped (shut down or failed).
    #[error("raft on the peer has stopped: {0}")]
    Stopped(String),
    /// The request did not make sense to the server (undecodable, out of order, too large).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The application handler answered with an error.
    #[error("{0}")]
    Handler(String),
    /// The server could not complete the work on its side (for example writing a snapshot).
    #[error("peer failed: {0}")]
    Internal(String),
}
