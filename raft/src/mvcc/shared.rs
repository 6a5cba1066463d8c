//! [`Shared`]: the state every handle of one state machine shares (the sled database, the locks
//! that order applies, exports and installs, the active trees, the revision counters, the watch
//! hub), and lock helpers that tolerate poisoning.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::compaction::PurgeCursor;
use super::trees::Trees;
use super::watch_hub::WatchHub;

/// What every handle of one state machine shares.
pub(super) struct Shared {
    pub(super) db: sled::Db,
    /// Serialises every state change (apply, install) and the start of an export.
    pub(super) apply_lock: Mutex<()>,
    /// Held shared by a snapshot export while it streams history; the purge batches of a
    /// compaction and install, which remove history, take it exclusively.
    pub(super) history_lock: RwLock<()>,
    /// The active trees. Readers hold it shared for the whole read so that a read sees one
    /// revision; a commit holds it exclusively while the sled transaction runs.
    pub(super) state: RwLock<Arc<Trees>>,
    /// Written only while `state` is held exclusively.
    pub(super) revision: AtomicI64,
    pub(super) compact_revision: AtomicI64,
    pub(super) hub: WatchHub,
    pub(super) progress_interval_millis: AtomicU64,
    /// How far the removal of compacted history has come (see `compaction`).
    pub(super) purge: Mutex<PurgeCursor>,
    /// Wakes the purge thread; shared with it outside `Shared`, so that the thread does not keep
    /// the database open.
    pub(super) purge_wake: Arc<Wake>,
}

/// A flag with a condition variable: one side raises it, the other waits for it.
#[derive(Default)]
pub(super) struct Wake {
    raised: Mutex<bool>,
    ready: Condvar,
}

impl Wake {
    pub(super) fn raise(&self) {
        *lock(&self.raised) = true;
        self.ready.notify_all();
    }

    /// Waits up to `timeout` for the flag and lowers it; true if it was raised.
    pub(super) fn wait(&self, timeout: Duration) -> bool {
        let raised = lock(&self.raised);
        let (mut raised, _) = self
            .ready
            .wait_timeout_while(raised, timeout, |raised| !*raised)
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *raised)
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data lives in sled and is consistent whatever a panicking holder did.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
