//! The openraft type configuration of the embedded group and short names for the openraft types
//! the crate uses. Nothing here is public outside the crate.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResponse};

/// A member of the group as openraft stores it in the membership config (and therefore in the log
/// and in snapshots): where its peer listener can be reached.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct PeerNode {
    /// `host:port` of the member's peer listener.
    pub(crate) addr: String,
}

impl fmt::Display for PeerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)
    }
}

openraft::declare_raft_types!(
    /// The type configuration of kuboard's Raft group.
    pub(crate) TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = u64,
        Node = PeerNode,
);

pub(crate) type NodeId = u64;
pub(crate) type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub(crate) type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub(crate) type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub(crate) type EntryPayload = openraft::type_config::alias::PayloadOf<TypeConfig>;
pub(crate) type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
