//! openraft's network traits on top of [`PeerClient`]: every Raft RPC becomes one request on the
//! target's reused connection; a snapshot becomes a sequence of acknowledged chunks on a separate
//! connection. This is the group's only network factory.
//!
//! Two cases answer "unreachable" without sending anything, which openraft treats as a member to
//! back off from, never as a reason to stop: a peer blocked by the test-only [`BlockedPeers`]
//! switch, and any peer of a one-member group without a cluster secret, which has no transport at
//! all (there is nobody to talk to and nothing to authenticate with).

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use openraft::entry::RaftEntry;
use openraft::errors::{ErrorSource, NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::{RaftTypeConfig, StorageError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::blocked_peers::BlockedPeers;
use super::client::{Lane, PeerClient, PeerError};
use super::config::PeerAddress;
use super::snapshot::SnapshotSend;
use super::wire::{RequestBody, SnapshotChunk};
use crate::codec;

/// Smallest snapshot chunk sent, whatever openraft asks for, so that a tiny configured chunk size
/// does not turn a snapshot into millions of round trips.
const MIN_SNAPSHOT_CHUNK: usize = 4096;

/// Bytes a request frame adds around an encoded Raft request: the record's version byte, the
/// request id, the body's variant and the payload's length, with room to spare.
const REQUEST_FRAME_OVERHEAD: usize = 64;

/// Largest encoded length of a varint.
const VARINT_MAX_BYTES: usize = 10;

/// Largest encoded append-entries request that still fits in a frame of `max_frame_bytes`.
fn append_request_limit(max_frame_bytes: usize) -> usize {
    max_frame_bytes.saturating_sub(REQUEST_FRAME_OVERHEAD)
}

/// What the last chunk of a snapshot carries besides data.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(super) struct SnapshotFinish<C: RaftTypeConfig> {
    pub(super) vote: VoteOf<C>,
    pub(super) meta: SnapshotMetaOf<C>,
}

/// openraft's network factory for a group whose members talk through [`PeerClient`]. `D` is the
/// state machine's snapshot data type.
pub struct PeerNetworkFactory<C, D> {
    /// This member's id, for error messages.
    node_id: u64,
    /// `None` for a one-member group without a cluster secret.
    client: Option<PeerClient>,
    blocked: BlockedPeers,
    _types: PhantomData<fn() -> (C, D)>,
}

impl<C, D> PeerNetworkFactory<C, D> {
    /// The network of member `node_id`, talking through `client` (none without a cluster secret)
    /// except to the peers `blocked` names.
    pub fn new(node_id: u64, client: Option<PeerClient>, blocked: BlockedPeers) -> Self {
        Self {
            node_id,
            client,
            blocked,
            _types: PhantomData,
        }
    }
}

impl<C, D> Clone for PeerNetworkFactory<C, D> {
    fn clone(&self) -> Self {
        Self::new(self.node_id, self.client.clone(), self.blocked.clone())
    }
}

impl<C, D> PeerNetworkFactory<C, D>
where
    C: RaftTypeConfig<NodeId = u64>,
    C::Node: PeerAddress,
{
    fn connection(&self, target: u64, node: &C::Node, lane: Lane) -> PeerConnection<C, D> {
        let addr = node.peer_address();
        if let Some(client) = &self.client {
            // Membership is the authority on addresses: a member that moved is reached at its new one.
            client.set_peer_address(target, addr.clone());
        }
        PeerConnection {
            from: self.node_id,
            client: self.client.clone(),
            blocked: self.blocked.clone(),
            target,
            addr,
            lane,
            _types: PhantomData,
        }
    }
}

impl<C, D> RaftNetworkFactory<C> for PeerNetworkFactory<C, D>
where
    C: RaftTypeConfig<NodeId = u64>,
    C::Node: PeerAddress,
    D: SnapshotSend,
{
    type Network = PeerConnection<C, D>;

    async fn new_client(&mut self, target: u64, node: &C::Node) -> Self::Network {
        self.connection(target, node, Lane::Raft)
    }

    async fn new_snapshot_client(&mut self, target: u64, node: &C::Node) -> Self::Network {
        self.connection(target, node, Lane::Snapshot)
    }
}

/// openraft's handle for talking to one member. Connections belong to the shared [`PeerClient`],
/// so dropping and recreating this handle costs no reconnect.
pub struct PeerConnection<C, D> {
    from: u64,
    client: Option<PeerClient>,
    blocked: BlockedPeers,
    target: u64,
    addr: String,
    lane: Lane,
    _types: PhantomData<fn() -> (C, D)>,
}

impl<C, D> PeerConnection<C, D>
where
    C: RaftTypeConfig<NodeId = u64>,
{
    /// The client to send through, or why nothing can be sent to the target now.
    fn client(&self) -> Result<&PeerClient, Unreachable<C>> {
        if self.blocked.is_blocked(self.target) {
            return Err(Unreachable::from_string(format!(
                "member {} is blocked from member {} (fault injection)",
                self.from, self.target
            )));
        }
        self.client.as_ref().ok_or_else(|| {
            Unreachable::from_string(format!(
                "member {} cannot reach member {} at {}: no cluster secret is configured, so this member has no \
                 peer transport",
                self.from, self.target, self.addr
            ))
        })
    }

    async fn typed_call<Resp: DeserializeOwned>(
        &self,
        action: RPCTypes,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<Resp, RPCError<C>> {
        let client = self.client().map_err(RPCError::Unreachable)?;
        let bytes = client
            .call(self.target, self.lane, body, timeout)
            .await
            .map_err(|e| self.rpc_error(action, e))?;
        self.decode_response(client, &bytes)
    }

    fn decode_response<Resp: DeserializeOwned>(&self, client: &PeerClient, bytes: &[u8]) -> Result<Resp, RPCError<C>> {
        codec::decode_with_limit(bytes, client.config().max_frame_bytes).map_err(|e| {
            client.stats().rpc_error();
            RPCError::Network(NetworkError::from_string(format!(
                "undecodable response from peer {}: {e}",
                self.target
            )))
        })
    }

    /// How many of `rpc`'s first entries fit in an encoded request of at most `limit` bytes; at
    /// least one, or an error naming the entry that can never be sent.
    fn entries_within(&self, rpc: &mut AppendEntriesRequest<C>, limit: usize) -> Result<usize, RPCError<C>> {
        let entries = std::mem::take(&mut rpc.entries);
        let base = self.encode_request(&*rpc);
        rpc.entries = entries;
        // The entries' count is a varint that grows by at most this many bytes.
        let mut used = base?.len() + VARINT_MAX_BYTES;
        let mut keep = 0;
        for entry in &rpc.entries {
            // Each entry encodes as the record's body without the record's version byte.
            let size = self.encode_request(entry)?.len() - 1;
            if used + size > limit {
                break;
            }
            used += size;
            keep += 1;
        }
        if keep == 0 {
            let first = rpc
                .entries
                .first()
                .map(|entry| entry.log_id().to_string())
                .unwrap_or_default();
            return Err(RPCError::Network(NetworkError::from_string(format!(
                "log entry {first} alone exceeds the peer frame limit of {limit} bytes; it cannot be replicated to \
                 member {}",
                self.target
            ))));
        }
        Ok(keep)
    }

    fn encode_request<T: Serialize>(&self, value: &T) -> Result<Vec<u8>, RPCError<C>> {
        codec::encode(value).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    /// Map a transport failure to the error openraft reacts to correctly: `Unreachable` makes it
    /// back off, `Network` makes it retry soon, `Timeout` is reported as such.
    fn rpc_error(&self, action: RPCTypes, error: PeerError) -> RPCError<C> {
        match error {
            PeerError::Timeout { target, timeout } => RPCError::Timeout(Timeout {
                action,
                id: self.from,
                target,
                timeout,
            }),
            e if e.is_unreachable() => RPCError::Unreachable(Unreachable::new(&e)),
            e => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

impl<C, D> RaftNetworkV2<C> for PeerConnection<C, D>
where
    C: RaftTypeConfig<NodeId = u64>,
    D: SnapshotSend,
{
    type SnapshotData = D;

    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let mut encoded = self.encode_request(&rpc)?;
        // A batch too large for one frame is cut to the prefix that fits and reported as a partial
        // success: openraft then sends the rest from there. Sending it whole would fail the same
        // way on every retry and stall replication to this member for good.
        let mut cut_at = None;
        if let Some(client) = &self.client {
            let limit = append_request_limit(client.config().max_frame_bytes);
            if encoded.len() > limit {
                let keep = self.entries_within(&mut rpc, limit)?;
                rpc.entries.truncate(keep);
                cut_at = rpc.entries.last().map(|entry| entry.log_id());
                encoded = self.encode_request(&rpc)?;
            }
        }
        let body = RequestBody::AppendEntries(encoded);
        let response = self
            .typed_call(RPCTypes::AppendEntries, body, option.hard_ttl())
            .await?;
        Ok(match (cut_at, response) {
            (Some(last), AppendEntriesResponse::Success) => AppendEntriesResponse::PartialSuccess(Some(last)),
            (_, response) => response,
        })
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        let body = RequestBody::Vote(self.encode_request(&rpc)?);
        self.typed_call(RPCTypes::Vote, body, option.hard_ttl()).await
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        let body = RequestBody::PreVote(self.encode_request(&rpc)?);
        self.typed_call(RPCTypes::Vote, body, option.hard_ttl()).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Self::SnapshotData>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let client = self.client().map_err(StreamingError::Unreachable)?;
        let mut cancel = std::pin::pin!(cancel);
        let config = client.config().clone();
        let chunk_size = option
            .snapshot_chunk_size()
            .unwrap_or(config.snapshot_chunk_bytes)
            .min(config.snapshot_chunk_bytes)
            .min(config.max_frame_bytes / 2)
            .max(MIN_SNAPSHOT_CHUNK);
        let signature = snapshot.meta.signature();
        let read_error = |e: std::io::Error| {
            StreamingError::StorageError(StorageError::read_snapshot(
                Some(signature.clone()),
                C::ErrorSource::from_error(&e),
            ))
        };
        let finish = SnapshotFinish::<C> {
            vote,
            meta: snapshot.meta,
        };
        let finish = codec::encode(&finish).map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let mut reader = snapshot.snapshot.into_reader().await.map_err(read_error)?;
        // A fresh id per transfer lets the receiver tell chunks of this transfer from a stale one.
        let transfer: u64 = rand::random();
        let mut offset = 0u64;
        loop {
            let data = read_chunk(&mut reader, chunk_size).await.map_err(read_error)?;
            let last = data.len() < chunk_size;
            let data_len = data.len() as u64;
            let chunk = SnapshotChunk {
                transfer,
                offset,
                data,
                finish: last.then(|| finish.clone()),
            };
            // Installing happens while the last chunk is being answered and takes far longer than
            // receiving one chunk.
            let timeout = if last {
                option.hard_ttl().max(config.snapshot_install_timeout)
            } else {
                option.hard_ttl()
            };
            let call = client.call(self.target, self.lane, RequestBody::SnapshotChunk(chunk), timeout);
            let reply = tokio::select! {
                closed = &mut cancel => return Err(StreamingError::Closed(closed)),
                reply = call => reply,
            };
            let bytes = reply.map_err(|e| StreamingError::from(self.rpc_error(RPCTypes::InstallSnapshot, e)))?;
            offset += data_len;
            if last {
                return self.decode_response(client, &bytes).map_err(StreamingError::from);
            }
        }
    }
}

/// Read up to `size` bytes, fewer only at the end of the data.
async fn read_chunk<R: AsyncRead + Unpin>(reader: &mut R, size: usize) -> std::io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(size);
    let mut limited = reader.take(size as u64);
    limited.read_to_end(&mut chunk).await?;
    Ok(chunk)
}
