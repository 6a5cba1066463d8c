//! The MVCC key-value state machine: etcd 3.4's revision semantics on sled, without openraft.
//!
//! # Layout
//!
//! - `mod.rs`: [`KvStateMachine`], the handle the raft layer holds: open, apply, reads, watch,
//!   snapshot export/install. No other file of `mvcc/` imports it.
//! - `shared`: the state every handle shares (database, locks, active trees, counters, watch hub).
//! - `trees`: the sled trees of one generation, the meta keys, the response header.
//! - `error`: [`MvccError`].
//! - `keys`: byte layouts of the tree keys (revision keys, the escaped key index, lease keys).
//! - `records`: the persisted records, each encoded with [`crate::codec`].
//! - `write`: the pending writes of one command (an overlay that later operations of a txn see)
//!   and their conversion into one atomic commit.
//! - `range`: reads of the latest state (through the overlay) and of older revisions.
//! - `txn`: validation, compares and execution of transactions.
//! - `compaction`, `lease`: the `Compact` and lease commands; `purge`: the thread that removes
//!   compacted history in bounded batches.
//! - `watch_hub`: the broadcast of committed revisions; `watch`: the watch streams (history
//!   replay, then live).
//! - `snapshot`: export and atomic install of a point-in-time copy.
//!
//! # Trees (one set per generation, `g<N>.<name>`)
//!
//! - `kv`: key -> latest live version (what a read at the current revision needs, one range scan).
//! - `history`: `(revision, sub_revision)` -> the write (a put or a tombstone).
//! - `index`: `(key, revision, sub_revision)` -> tombstone flag, to find the version of a key
//!   visible at any retained revision with one seek.
//! - `leases`: lease id -> granted ttl; `lease_keys`: `(lease id, key)` for every attached key.
//! - `meta`: the revision, the compaction revision and the raft layer's opaque meta bytes.
//!
//! The default tree holds the active generation; installing a snapshot builds the next generation
//! beside the active one and switches with one insert, so a crash leaves the old or the new state.
//!
//! Architecture Invariant: every `apply` (and every run of grouped commands of `apply_group`) is
//! one sled transaction over every tree it changes, including the meta bytes; reads never see half
//! of a command.

mod compaction;
mod error;
mod keys;
mod lease;
mod purge;
mod range;
mod records;
mod shared;
mod snapshot;
mod trees;
mod txn;
mod watch;
mod watch_hub;
mod write;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kuboard_storage::{CompactResponse, RangeRequest, RangeResponse, StoreError, WatchRequest, WatchStream};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::command::{Command, CommandResponse};
use compaction::PurgeCursor;
pub use error::MvccError;
use records::{decode, encode};
use shared::{lock, read, write, Shared, Wake};
pub use snapshot::ExportPrelude;
pub use trees::LeaseDetails;
use trees::{header, TreeId, Trees, ACTIVE_GENERATION, META_COMPACT_REVISION, META_RAFT, META_REVISION};
use watch_hub::WatchHub;
use write::Commit;

/// How often an idle watch that asked for progress notifications gets one (etcd's default).
const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(600);

/// The MVCC key-value state machine. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct KvStateMachine {
    inner: Arc<Shared>,
}

/// Reopen a database just dropped in this process. sled's background flusher keeps the file lock
/// for a moment after the last handle is dropped, so an immediate reopen can find it still locked.
#[cfg(test)]
pub(crate) fn reopen_after_drop(path: &Path) -> KvStateMachine {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match KvStateMachine::open(path) {
            Ok(machine) => return machine,
            Err(error) => {
                let text = error.to_string();
                let locked = text.contains("lock") || text.contains("WouldBlock");
                assert!(
                    locked && std::time::Instant::now() < deadline,
                    "reopen state machine: {text}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// Bytes of sled's page cache.
const SLED_CACHE_CAPACITY: u64 = 16 * 1024 * 1024;

impl KvStateMachine {
    /// Open or create the sled database at `path` (a directory).
    pub fn open(path: &Path) -> Result<KvStateMachine, MvccError> {
        // sled's default page cache is 1 GiB and grows towards it; a dashboard's state is small, and
        // a replica's idle memory is a target (under 64 MiB), so the cache is kept modest.
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(SLED_CACHE_CAPACITY)
            .open()?;
        let generation = match db.get(ACTIVE_GENERATION)? {
            Some(bytes) => decode::<u64>("active generation", &bytes)?,
            None => 0,
        };
        // Trees of another generation are leftovers of an install that crashed before switching,
        // or of the generation an install replaced.
        for name in db.tree_names() {
            if Trees::generation_of(&name).is_some_and(|other| other != generation) {
                db.drop_tree(&name)?;
            }
        }
        let trees = Trees::open(&db, generation)?;
        let revision = trees.read_counter(META_REVISION, 1)?;
        let compact_revision = trees.read_counter(META_COMPACT_REVISION, 0)?;
        let inner = Arc::new(Shared {
            db,
            apply_lock: Mutex::new(()),
            history_lock: RwLock::new(()),
            state: RwLock::new(Arc::new(trees)),
            revision: AtomicI64::new(revision),
            compact_revision: AtomicI64::new(compact_revision),
            hub: WatchHub::new(),
            progress_interval_millis: AtomicU64::new(DEFAULT_PROGRESS_INTERVAL.as_millis() as u64),
            // A removal interrupted by a restart starts over: what is left below the compaction
            // revision is what it did not reach.
            purge: Mutex::new(PurgeCursor::towards(compact_revision)),
            purge_wake: Arc::new(Wake::default()),
        });
        purge::start(&inner)?;
        Ok(KvStateMachine { inner })
    }

    /// Apply one command atomically together with `meta` (tests; the raft layer applies groups).
    /// Bad input is answered with `CommandResponse::Error` and changes nothing but `meta`.
    #[cfg(test)]
    pub fn apply(&self, command: &Command, meta: &[u8]) -> Result<CommandResponse, MvccError> {
        let mut responses = self.apply_group(&[(Some(command), meta.to_vec())])?;
        responses
            .pop()
            .ok_or_else(|| MvccError::Corrupt("no answer for an applied command".to_string()))
    }

    /// Apply consecutive log entries, each a command or nothing (blank and membership entries),
    /// with the meta bytes to store if it is the last entry written. The answers are those of
    /// [`KvStateMachine::apply`] one entry at a time, in order.
    ///
    /// Runs of puts, deletions, transactions that read the latest state only, and entries without
    /// a command go into one sled transaction with the meta of their last entry: sled writes its
    /// log out for every transaction, so this is what keeps a busy member's state machine from
    /// issuing one disk write per entry. A later command of a run sees the writes of the earlier
    /// ones through an overlay of the `kv` tree; commands that read other trees (transactions
    /// reading at a revision, compaction, leases) end the run and are applied alone. Reads see a run's revisions only once all of it is committed, and its watch
    /// events are published revision by revision afterwards.
    pub fn apply_group(&self, entries: &[(Option<&Command>, Vec<u8>)]) -> Result<Vec<CommandResponse>, MvccError> {
        let _apply = lock(&self.inner.apply_lock);
        let trees = read(&self.inner.state).clone();
        let collect_events = self.inner.hub.has_watchers();
        let mut responses = Vec::with_capacity(entries.len());
        let mut run = Commit::new(collect_events);
        let mut pending = range::Overlay::new();
        let mut base = self.revision();
        let mut run_meta: Option<&[u8]> = None;
        for (command, meta) in entries {
            let response = match command {
                None => CommandResponse::Applied(header(base)),
                Some(Command::Put(request)) => write::apply_put(&trees, base, request, &mut run, &mut pending)?,
                Some(Command::DeleteRange(request)) => {
                    write::apply_delete_range(&trees, base, request, &mut run, &mut pending)?
                }
                Some(Command::Txn(request)) if txn::reads_latest_only(request) => {
                    txn::apply_txn(&trees, base, self.compact_revision(), request, &mut run, &mut pending)?
                }
                Some(command) => {
                    if let Some(last_meta) = run_meta.take() {
                        self.commit(std::mem::replace(&mut run, Commit::new(collect_events)), last_meta)?;
                        pending.clear();
                    }
                    responses.push(self.apply_alone(command, meta)?);
                    base = self.revision();
                    continue;
                }
            };
            if let Some(revision) = run.new_revision {
                base = revision;
            }
            run_meta = Some(meta);
            responses.push(response);
        }
        if let Some(last_meta) = run_meta {
            self.commit(run, last_meta)?;
        }
        Ok(responses)
    }

    /// Apply one command in a transaction of its own. The caller holds `apply_lock`.
    fn apply_alone(&self, command: &Command, meta: &[u8]) -> Result<CommandResponse, MvccError> {
        let trees = read(&self.inner.state).clone();
        let base = self.revision();
        let compacted = self.compact_revision();
        let mut commit = Commit::new(self.inner.hub.has_watchers());
        let mut pending = range::Overlay::new();
        let response = match command {
            Command::Put(request) => write::apply_put(&trees, base, request, &mut commit, &mut pending)?,
            Command::DeleteRange(request) => {
                write::apply_delete_range(&trees, base, request, &mut commit, &mut pending)?
            }
            Command::Txn(request) => txn::apply_txn(&trees, base, compacted, request, &mut commit, &mut pending)?,
            Command::Compact(request) => match compaction::compact(base, compacted, request.revision, &mut commit) {
                Ok(()) => CommandResponse::Compact(CompactResponse { header: header(base) }),
                Err(error) => CommandResponse::Error(error),
            },
            Command::LeaseGrant { id, ttl } => lease::apply_grant(&trees, base, *id, *ttl, &mut commit)?,
            Command::LeaseRevoke { id } => lease::apply_revoke(&trees, base, *id, &mut commit)?,
        };
        self.commit(commit, meta)?;
        Ok(response)
    }

    /// Persist `meta` alone, as for blank and membership log entries (tests).
    #[cfg(test)]
    pub fn apply_meta(&self, meta: &[u8]) -> Result<(), MvccError> {
        self.apply_group(&[(None, meta.to_vec())]).map(drop)
    }

    /// Commit the writes of one command or run of commands and `meta` in one sled transaction,
    /// then publish their events. The caller holds `apply_lock`, which keeps publications in
    /// revision order.
    fn commit(&self, mut commit: Commit, meta: &[u8]) -> Result<(), MvccError> {
        commit.insert(TreeId::Meta, META_RAFT, meta);
        if let Some(revision) = commit.new_revision {
            commit.insert(TreeId::Meta, META_REVISION, encode("revision counter", &revision)?);
        }
        if let Some(revision) = commit.new_compact_revision {
            commit.insert(
                TreeId::Meta,
                META_COMPACT_REVISION,
                encode("revision counter", &revision)?,
            );
        }
        let state = write(&self.inner.state);
        let (ids, batches) = commit.take_batches();
        let trees: Vec<&sled::Tree> = ids.iter().map(|&id| state.tree(id)).collect();
        trees[..]
            .transaction(|views| {
                for (view, batch) in views.iter().zip(&batches) {
                    view.apply_batch(batch)?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|error| match error {
                TransactionError::Storage(error) => MvccError::Sled(error),
                TransactionError::Abort(()) => MvccError::Corrupt("commit transaction aborted".to_string()),
            })?;
        if let Some(revision) = commit.new_revision {
            self.inner.revision.store(revision, Ordering::SeqCst);
        }
        if let Some(revision) = commit.new_compact_revision {
            self.inner.compact_revision.store(revision, Ordering::SeqCst);
        }
        drop(state);
        if let Some(revision) = commit.new_compact_revision {
            *lock(&self.inner.purge) = PurgeCursor::towards(revision);
            self.inner.purge_wake.raise();
        }
        for (revision, events) in commit.revisions {
            self.inner.hub.publish(revision, events);
        }
        Ok(())
    }

    /// The meta stored with the last applied entry, `None` on a fresh database.
    pub fn meta(&self) -> Result<Option<Vec<u8>>, MvccError> {
        Ok(read(&self.inner.state).meta.get(META_RAFT)?.map(|bytes| bytes.to_vec()))
    }

    /// Read from the local state (the raft layer ensures linearizability before calling).
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, StoreError> {
        range::validate_range(request)?;
        let state = read(&self.inner.state);
        let current = self.revision();
        let compacted = self.compact_revision();
        let revision = if request.revision == 0 {
            current
        } else {
            request.revision
        };
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision < compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                compact_revision: compacted,
            });
        }
        let result = if revision == current {
            range::range_latest(&state, None, request)?
        } else {
            range::range_at(&state, revision, request)?
        };
        Ok(RangeResponse {
            header: header(current),
            kvs: result.kvs,
            more: result.more,
            count: result.count,
        })
    }

    /// The current revision (1 on a fresh store, like etcd).
    pub fn revision(&self) -> i64 {
        self.inner.revision.load(Ordering::SeqCst)
    }

    /// The compaction revision, 0 if never compacted.
    pub fn compact_revision(&self) -> i64 {
        self.inner.compact_revision.load(Ordering::SeqCst)
    }

    /// True while a commit (or a snapshot install) holds the state: a read now would wait for it.
    /// Callers on an async runtime then read from a blocking thread, so that a long commit (a
    /// delete of thousands of keys) never holds a runtime worker.
    pub fn is_busy(&self) -> bool {
        match self.inner.state.try_read() {
            Ok(_) => false,
            Err(std::sync::TryLockError::WouldBlock) => true,
            // A poisoned lock is read through (see `shared::read`); it is not busy.
            Err(std::sync::TryLockError::Poisoned(_)) => false,
        }
    }

    /// Runs `read` on this state machine without holding an async worker while a commit is in
    /// progress: at once when the state is free, on a blocking thread when it is busy.
    pub async fn read_off_runtime<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&KvStateMachine) -> Result<T, StoreError> + Send + 'static,
    {
        if !self.is_busy() {
            return read(self);
        }
        let kv = self.clone();
        tokio::task::spawn_blocking(move || read(&kv))
            .await
            .map_err(|error| StoreError::Internal(format!("read task: {error}")))?
    }

    /// Every lease with its granted ttl (seconds), ascending by id.
    pub fn leases(&self) -> Result<Vec<(i64, i64)>, MvccError> {
        lease::list(&read(&self.inner.state))
    }

    /// The granted ttl and attached keys of one lease, `None` if absent.
    pub fn lease(&self, id: i64) -> Result<Option<LeaseDetails>, MvccError> {
        lease::get(&read(&self.inner.state), id)
    }

    /// Entries in the history (writes and deletions kept for reads at older revisions), counted
    /// by a scan of the history tree.
    pub fn history_entries(&self) -> usize {
        read(&self.inner.state).history.len()
    }

    /// True while history below the compaction revision is still being removed.
    pub fn purge_pending(&self) -> bool {
        lock(&self.inner.purge).resume.is_some()
    }

    /// Write a consistent point-in-time copy of the whole state to `writer` (tests).
    #[cfg(test)]
    pub fn export_snapshot(&self, writer: &mut dyn std::io::Write) -> Result<(), MvccError> {
        snapshot::export(&self.inner, writer, &mut |_, _| Ok(()))
    }

    /// Write a consistent point-in-time copy of the whole state to `writer`, after what `prelude`
    /// writes given the meta bytes stored with that state. Applies go on while the copy is
    /// written.
    pub fn export_snapshot_with(
        &self,
        writer: &mut dyn std::io::Write,
        prelude: ExportPrelude<'_>,
    ) -> Result<(), MvccError> {
        snapshot::export(&self.inner, writer, prelude)
    }

    /// Replace the whole state with a snapshot, atomically.
    pub fn install_snapshot(&self, reader: &mut dyn std::io::Read) -> Result<(), MvccError> {
        snapshot::install(&self.inner, reader)
    }

    /// Flush sled to disk (best effort durability: the raft log is the source of truth).
    pub fn flush(&self) -> Result<(), MvccError> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// Start a watch: history from `start_revision` (0: from the next revision), then live events.
    pub fn watch(&self, request: WatchRequest) -> Result<WatchStream, StoreError> {
        watch::start(&self.inner, request)
    }

    /// Shorten the interval of progress notifications (tests).
    #[cfg(test)]
    fn set_progress_interval(&self, interval: Duration) {
        self.inner
            .progress_interval_millis
            .store(interval.as_millis() as u64, Ordering::SeqCst);
    }
}
