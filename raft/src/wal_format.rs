//! How the raft log is laid out in the `raft-log` WAL: the raft-log type parameters, the newtypes
//! that carry openraft's log ids, payloads and votes as [`crate::codec`] records inside raft-log's
//! length-prefixed records, the flush callback, and the chunk sizes. Shared by `log_store`, which
//! writes and reads the WAL, and `wal_repair`, which checks it on open.

use std::io;

use openraft::storage::IOFlushed;
use raft_log::codeq::{Decode, Encode};

use crate::codec;
use crate::types::{EntryPayload, LogId, TypeConfig, Vote};

/// Size at which raft-log closes a chunk file and starts the next one (raft-log's default is
/// 1 GiB). It bounds two things: the disk the log keeps behind the last snapshot, since a purge
/// removes whole chunks only, and memory, since raft-log keeps the payload of every entry of the
/// open chunk in its cache (only entries of closed chunks can be evicted, purged or not). With
/// 64 MiB a replica's RSS climbed by ~170 MB before the first chunk closed in the hour-long soak;
/// 8 MiB keeps that to a few tens of MB and still closes a chunk only every few minutes under a
/// busy dashboard's writes.
pub(crate) const CHUNK_MAX_SIZE: usize = 8 * 1024 * 1024;

/// Buffer raft-log reads a chunk through when it replays it on open (its default is 64 MiB,
/// allocated for every chunk).
pub(crate) const REPLAY_READ_BUFFER: usize = 1024 * 1024;

/// The raft-log type parameters. Its codec traits cannot be implemented on openraft's types here
/// (orphan rule), hence the newtypes below, each encoded by [`crate::codec`] inside a
/// length-prefixed raft-log record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct WalTypes;

impl raft_log::Types for WalTypes {
    type LogId = WalLogId;
    type LogPayload = WalPayload;
    type Vote = WalVote;
    type Callback = FlushCallback;
    type UserData = ();

    fn log_index(log_id: &WalLogId) -> u64 {
        log_id.0.index
    }

    fn payload_size(payload: &WalPayload) -> u64 {
        match &payload.0 {
            EntryPayload::Normal(command) => command.approximate_size(),
            EntryPayload::Blank => 8,
            EntryPayload::Membership(_) => 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct WalLogId(pub(crate) LogId);

#[derive(Debug, Clone)]
pub(crate) struct WalPayload(pub(crate) EntryPayload);

/// Ordered as openraft orders votes: raft-log refuses to store a vote that is not greater than or
/// equal to the stored one, which is exactly the rule a voter must keep.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd)]
pub(crate) struct WalVote(pub(crate) Vote);

macro_rules! codec_newtype {
    ($name:ident) => {
        impl Encode for $name {
            fn encode<W: io::Write>(&self, w: W) -> Result<usize, io::Error> {
                let bytes = codec::encode(&self.0).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                bytes.encode(w)
            }
        }

        impl Decode for $name {
            fn decode<R: io::Read>(r: R) -> Result<Self, io::Error> {
                let bytes = Vec::<u8>::decode(r)?;
                codec::decode(&bytes)
                    .map($name)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            }
        }
    };
}

codec_newtype!(WalLogId);
codec_newtype!(WalPayload);
codec_newtype!(WalVote);

/// Called by raft-log's flush thread once the flushed records are on disk (after `fdatasync`
/// when the flush asked for a sync).
pub(crate) enum FlushCallback {
    /// Completes an openraft append.
    Append(IOFlushed<TypeConfig>),
    /// Wakes a task waiting for the flush.
    Wait(tokio::sync::oneshot::Sender<io::Result<()>>),
}

impl raft_log::Callback for FlushCallback {
    fn send(self, res: Result<(), io::Error>) {
        match self {
            FlushCallback::Append(flushed) => flushed.io_completed(res),
            FlushCallback::Wait(tx) => {
                // The waiter may have been cancelled; nothing is left to tell then.
                let _ = tx.send(res);
            }
        }
    }
}
