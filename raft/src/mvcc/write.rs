//! The pending writes of one command and their conversion into one atomic commit.
//!
//! A [`WriteTxn`] keeps an overlay of the latest state, so that the operations of a transaction see
//! the writes of the operations before them (etcd 3.4), and the list of changes in the order they
//! were made: the change at position `n` gets sub-revision `n` of the command's one revision.

use kuboard_storage::{
    DeleteRangeRequest, DeleteRangeResponse, Event, EventKind, KeyValue, PutRequest, PutResponse, RangeRequest,
    RangeResponse, StoreError,
};
use sled::{Batch, IVec};

use super::error::MvccError;
use super::keys::{index_key, lease_key_entry, revision_key};
use super::range::{self, Overlay};
use super::records::{decode, encode, HistoryRecord, IndexEntry, KvRecord};
use super::trees::{header, TreeId, Trees, TREE_IDS};
use crate::command::CommandResponse;

/// Everything one command, or a group of consecutive commands, changes, applied as one sled
/// transaction. A later write of a key in the group replaces an earlier one in the batch.
pub(super) struct Commit {
    batches: [Option<Batch>; 6],
    /// The last revision the commands made, if they wrote keys.
    pub new_revision: Option<i64>,
    pub new_compact_revision: Option<i64>,
    /// Whether to build watch events (only when someone watches).
    collect_events: bool,
    /// Every revision made, with its events (empty unless collected), ascending.
    pub revisions: Vec<(i64, Vec<Event>)>,
}

impl Commit {
    pub fn new(collect_events: bool) -> Commit {
        Commit {
            batches: Default::default(),
            new_revision: None,
            new_compact_revision: None,
            collect_events,
            revisions: Vec::new(),
        }
    }

    fn batch(&mut self, tree: TreeId) -> &mut Batch {
        let position = TREE_IDS
            .iter()
            .position(|&id| id == tree)
            .expect("every tree id is listed");
        self.batches[position].get_or_insert_with(Batch::default)
    }

    pub fn insert(&mut self, tree: TreeId, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.batch(tree).insert(key, value);
    }

    pub fn remove(&mut self, tree: TreeId, key: impl Into<IVec>) {
        self.batch(tree).remove(key);
    }

    /// The trees written and their batches, in a fixed order.
    pub fn take_batches(&mut self) -> (Vec<TreeId>, Vec<Batch>) {
        let mut ids = Vec::new();
        let mut batches = Vec::new();
        for (id, batch) in TREE_IDS.iter().zip(self.batches.iter_mut()) {
            if let Some(batch) = batch.take() {
                ids.push(*id);
                batches.push(batch);
            }
        }
        (ids, batches)
    }
}

/// One change of one key: its new version (`None` for a deletion) and the version it replaced.
struct Change {
    key: Vec<u8>,
    kv: Option<KvRecord>,
    prev: Option<KvRecord>,
}

/// The latest state as seen by the operations of one command.
pub(super) struct WriteTxn<'a> {
    trees: &'a Trees,
    base_revision: i64,
    overlay: Overlay,
    changes: Vec<Change>,
}

impl<'a> WriteTxn<'a> {
    pub fn new(trees: &'a Trees, base_revision: i64) -> WriteTxn<'a> {
        Self::on_pending(trees, base_revision, Overlay::new())
    }

    /// A command applied after earlier commands of the same group whose writes are not in the
    /// trees yet: `pending` holds their latest versions of the keys they wrote (`base_revision`
    /// already counts them). Only the `kv` tree may have pending writes: commands that read other
    /// trees are not grouped.
    pub fn on_pending(trees: &'a Trees, base_revision: i64, pending: Overlay) -> WriteTxn<'a> {
        WriteTxn {
            trees,
            base_revision,
            overlay: pending,
            changes: Vec::new(),
        }
    }

    /// The revision every write of this command gets.
    pub fn write_revision(&self) -> i64 {
        self.base_revision + 1
    }

    /// The store's revision as the operations see it: the write revision once something changed.
    pub fn current_revision(&self) -> i64 {
        if self.changes.is_empty() {
            self.base_revision
        } else {
            self.write_revision()
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<KvRecord>, MvccError> {
        if let Some(pending) = self.overlay.get(key) {
            return Ok(pending.clone());
        }
        match self.trees.kv.get(key)? {
            Some(bytes) => Ok(Some(decode("kv record", &bytes)?)),
            None => Ok(None),
        }
    }

    /// Put a key. The caller has validated the request and checked that its lease exists.
    pub fn put(&mut self, request: &PutRequest) -> Result<PutResponse, MvccError> {
        let prev = self.get(&request.key)?;
        let revision = self.write_revision();
        let record = KvRecord {
            value: request.value.clone(),
            create_revision: prev.as_ref().map_or(revision, |prev| prev.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |prev| prev.version + 1),
            lease: request.lease,
        };
        let prev_kv = if request.prev_kv {
            prev.as_ref().map(|prev| prev.to_key_value(&request.key, false))
        } else {
            None
        };
        self.overlay.insert(request.key.clone(), Some(record.clone()));
        self.changes.push(Change {
            key: request.key.clone(),
            kv: Some(record),
            prev,
        });
        Ok(PutResponse {
            header: header(revision),
            prev_kv,
        })
    }

    /// Delete the keys of a range. The caller has validated the request.
    pub fn delete_range(&mut self, request: &DeleteRangeRequest) -> Result<DeleteRangeResponse, MvccError> {
        let entries = range::latest_entries(self.trees, &self.overlay, &request.key, &request.range_end)?;
        let mut prev_kvs = Vec::new();
        for (key, record) in &entries {
            if request.prev_kv {
                prev_kvs.push(record.to_key_value(key, false));
            }
            self.delete_existing(key.clone(), record.clone());
        }
        Ok(DeleteRangeResponse {
            header: header(self.current_revision()),
            deleted: entries.len() as i64,
            prev_kvs,
        })
    }

    /// Delete a key known to exist with version `record`.
    pub fn delete_existing(&mut self, key: Vec<u8>, record: KvRecord) {
        self.overlay.insert(key.clone(), None);
        self.changes.push(Change {
            key,
            kv: None,
            prev: Some(record),
        });
    }

    /// A range inside a transaction: at the current revision it sees the earlier writes.
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, MvccError> {
        let result = if request.revision == 0 {
            range::range_latest(self.trees, Some(&self.overlay), request)?
        } else if request.revision == self.base_revision {
            range::range_latest(self.trees, None, request)?
        } else {
            range::range_at(self.trees, request.revision, request)?
        };
        Ok(RangeResponse {
            header: header(self.current_revision()),
            kvs: result.kvs,
            more: result.more,
            count: result.count,
        })
    }

    /// Turn the changes into the commit's batches and watch events. Gives back the overlay (the
    /// pending writes of the group, this command's included).
    pub fn into_commit(self, commit: &mut Commit) -> Result<Overlay, MvccError> {
        if self.changes.is_empty() {
            return Ok(self.overlay);
        }
        let revision = self.write_revision();
        let mut events = Vec::new();
        for (sub_revision, change) in self.changes.into_iter().enumerate() {
            let sub_revision = sub_revision as i64;
            let Change { key, kv, prev } = change;
            let history = HistoryRecord { key, kv };
            commit.insert(
                TreeId::History,
                &revision_key(revision, sub_revision)[..],
                encode("history record", &history)?,
            );
            let HistoryRecord { key, kv } = history;
            let entry = IndexEntry {
                tombstone: kv.is_none(),
            };
            commit.insert(
                TreeId::Index,
                index_key(&key, revision, sub_revision),
                encode("index entry", &entry)?,
            );
            match &kv {
                Some(record) => commit.insert(TreeId::Kv, key.as_slice(), encode("kv record", record)?),
                None => commit.remove(TreeId::Kv, key.as_slice()),
            }
            let prev_lease = prev.as_ref().map_or(0, |prev| prev.lease);
            let new_lease = kv.as_ref().map_or(0, |record| record.lease);
            if prev_lease != new_lease {
                if prev_lease != 0 {
                    commit.remove(TreeId::LeaseKeys, lease_key_entry(prev_lease, &key));
                }
                if new_lease != 0 {
                    commit.insert(TreeId::LeaseKeys, lease_key_entry(new_lease, &key), IVec::default());
                }
            }
            if commit.collect_events {
                let prev_kv = prev.map(|prev| prev.to_key_value(&key, false));
                let event = match kv {
                    Some(record) => Event {
                        kind: EventKind::Put,
                        kv: record.to_key_value(&key, false),
                        prev_kv,
                    },
                    None => Event {
                        kind: EventKind::Delete,
                        kv: KeyValue {
                            key,
                            mod_revision: revision,
                            ..Default::default()
                        },
                        prev_kv,
                    },
                };
                events.push(event);
            }
        }
        commit.new_revision = Some(revision);
        commit.revisions.push((revision, events));
        Ok(self.overlay)
    }
}

pub(super) fn validate_put(request: &PutRequest) -> Result<(), StoreError> {
    if request.key.is_empty() {
        return Err(StoreError::InvalidArgument("key is not provided".to_string()));
    }
    Ok(())
}

pub(super) fn validate_delete_range(request: &DeleteRangeRequest) -> Result<(), StoreError> {
    if request.key.is_empty() && request.range_end.is_empty() {
        return Err(StoreError::InvalidArgument("key is not provided".to_string()));
    }
    Ok(())
}

/// Apply a put on top of the group's `pending` writes (which it extends).
pub(super) fn apply_put(
    trees: &Trees,
    base_revision: i64,
    request: &PutRequest,
    commit: &mut Commit,
    pending: &mut Overlay,
) -> Result<CommandResponse, MvccError> {
    if let Err(error) = validate_put(request) {
        return Ok(CommandResponse::Error(error));
    }
    if request.lease != 0 && !trees.lease_exists(request.lease)? {
        return Ok(CommandResponse::Error(StoreError::LeaseNotFound(request.lease)));
    }
    let mut txn = WriteTxn::on_pending(trees, base_revision, std::mem::take(pending));
    let response = txn.put(request)?;
    *pending = txn.into_commit(commit)?;
    Ok(CommandResponse::Put(response))
}

/// Apply a range deletion on top of the group's `pending` writes (which it extends).
pub(super) fn apply_delete_range(
    trees: &Trees,
    base_revision: i64,
    request: &DeleteRangeRequest,
    commit: &mut Commit,
    pending: &mut Overlay,
) -> Result<CommandResponse, MvccError> {
    if let Err(error) = validate_delete_range(request) {
        return Ok(CommandResponse::Error(error));
    }
    let mut txn = WriteTxn::on_pending(trees, base_revision, std::mem::take(pending));
    let response = txn.delete_range(request)?;
    *pending = txn.into_commit(commit)?;
    Ok(CommandResponse::DeleteRange(response))
}
