//! [`Trees`]: the sled trees of one generation and the keys of the default and `meta` trees;
//! [`TreeId`], the trees a commit writes; the response header every answer starts from.

use kuboard_storage::ResponseHeader;

use super::error::MvccError;
use super::keys::lease_id_key;
use super::records::decode;

/// The active generation of trees, in the default tree.
pub(super) const ACTIVE_GENERATION: &[u8] = b"active_generation";
/// Keys of the `meta` tree.
pub(super) const META_REVISION: &[u8] = b"revision";
pub(super) const META_COMPACT_REVISION: &[u8] = b"compact_revision";
pub(super) const META_RAFT: &[u8] = b"raft_meta";

/// A lease's granted ttl (seconds) and its attached keys, ascending.
pub type LeaseDetails = (i64, Vec<Vec<u8>>);

/// The trees a commit can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TreeId {
    Kv,
    History,
    Index,
    Leases,
    LeaseKeys,
    Meta,
}

pub(super) const TREE_IDS: [TreeId; 6] = [
    TreeId::Kv,
    TreeId::History,
    TreeId::Index,
    TreeId::Leases,
    TreeId::LeaseKeys,
    TreeId::Meta,
];

/// The trees of one generation.
pub(super) struct Trees {
    pub(super) generation: u64,
    pub(super) kv: sled::Tree,
    pub(super) history: sled::Tree,
    pub(super) index: sled::Tree,
    pub(super) leases: sled::Tree,
    pub(super) lease_keys: sled::Tree,
    pub(super) meta: sled::Tree,
}

impl Trees {
    pub(super) const NAMES: [&'static str; 6] = ["kv", "history", "index", "leases", "lease_keys", "meta"];

    pub(super) fn tree_name(generation: u64, name: &str) -> String {
        format!("g{generation}.{name}")
    }

    /// The generation a tree name belongs to, `None` for trees that are not ours.
    pub(super) fn generation_of(tree_name: &[u8]) -> Option<u64> {
        let name = std::str::from_utf8(tree_name).ok()?;
        let (generation, _) = name.strip_prefix('g')?.split_once('.')?;
        generation.parse().ok()
    }

    pub(super) fn open(db: &sled::Db, generation: u64) -> Result<Trees, MvccError> {
        let open = |name: &str| db.open_tree(Self::tree_name(generation, name));
        Ok(Trees {
            generation,
            kv: open("kv")?,
            history: open("history")?,
            index: open("index")?,
            leases: open("leases")?,
            lease_keys: open("lease_keys")?,
            meta: open("meta")?,
        })
    }

    pub(super) fn tree(&self, id: TreeId) -> &sled::Tree {
        match id {
            TreeId::Kv => &self.kv,
            TreeId::History => &self.history,
            TreeId::Index => &self.index,
            TreeId::Leases => &self.leases,
            TreeId::LeaseKeys => &self.lease_keys,
            TreeId::Meta => &self.meta,
        }
    }

    pub(super) fn read_counter(&self, key: &[u8], default: i64) -> Result<i64, MvccError> {
        match self.meta.get(key)? {
            Some(bytes) => decode("revision counter", &bytes),
            None => Ok(default),
        }
    }

    /// Whether lease `id` is granted.
    pub(super) fn lease_exists(&self, id: i64) -> Result<bool, MvccError> {
        Ok(self.leases.contains_key(lease_id_key(id))?)
    }
}

/// A response header at `revision`; the raft layer fills in the member and the term.
pub(super) fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        member_id: 0,
        raft_term: 0,
    }
}
